/**
 * Long work in slices: a job is a generator that yields at points where it
 * may pause; the runner runs it until a slice has used its budget, then gives
 * the event loop a turn (timers, sockets: BGP keepalives, the API, checks)
 * and goes on. A job that fits in one slice finishes synchronously, so small
 * pools behave exactly as if there were no slicing.
 *
 * The budget is wall time (performance.now), not the daemon's clock: it is
 * about how long the event loop is held, which a test clock cannot say. The
 * clock is read as little as that allows (a read is a system call in the lab
 * guest, and a cold start of 1,000 services ran some 10,000 small jobs): a
 * job's first slice starts at the reading this turn already took, if any
 * (older than the slice, so the slice only ends sooner), else at its first
 * look, which comes after a few steps.
 */
import { keptMonotonic, readMonotonic } from './clock.js';
import { Fifo } from './fifo.js';

/** How long one slice may hold the event loop (the daemon's stall goal is 100 ms on a slow guest). */
export const SLICE_BUDGET_MS = 15;

/** The steps between two clock reads grow while they take under this... */
const STRIDE_LOW_MS = 0.5;
/** ...and shrink when they take over this. */
const STRIDE_HIGH_MS = 2;
const MAX_STRIDE = 1024;
/**
 * Steps a job takes before its first look at the clock. A small job (a pool
 * of 10: a few phases of a few servers) ends before it, with no read at all;
 * a cold start of 1,000 services ran some 10,000 of them. A step is a
 * bounded batch (64 monitor starts, 512 servers), so a job of heavy steps
 * overruns its first slice by a few steps at most.
 */
const FIRST_LOOK_STEPS = 4;

export interface SliceOptions {
  readonly budgetMs?: number;
  /** Wall time in ms, read afresh; performance.now by default (also for the slice's start, see above). */
  readonly now?: () => number;
  /** Runs fn after other pending events; afterTurn by default (setImmediate, within the check phase's share). */
  readonly later?: (fn: () => void) => void;
  /** Background work (a metrics scrape): it does not hold back check admission (controlPlaneWaiting). */
  readonly background?: boolean;
  /**
   * Steps before the first look at the clock (FIRST_LOOK_STEPS by default),
   * and the stride the looks start from: more for a job of light steps
   * (decoding one netlink reply), so that a small one, the common case,
   * reads no clock at all. A stats reading of 1,000 services of 10 made
   * 1,000 such jobs, each reading the clock three times.
   */
  readonly firstLookSteps?: number;
}

export type Job = Generator<unknown, void, undefined>;

/** Control-plane work waiting now (holdAdmission): a sliced job between two slices, a pool's first read. */
let held = 0;

/**
 * How much control-plane work waits now: sliced jobs waiting for their next
 * slice and other holds (holdAdmission). Check admission starts fewer checks
 * per turn while any does: a pool edit, a publish, a reconcile or a cold
 * start's pool reads go before thousands of connects that came due.
 */
export function controlPlaneWaiting(): number {
  return held;
}

/**
 * Marks control-plane work that is not a sliced job as waiting until the
 * returned release is called (once; later calls do nothing). At a cold start
 * of 1,000 services, the pool files' first reads were served at about 32 a
 * second in the lab guest while the first servers' monitors took the CPU.
 */
export function holdAdmission(): () => void {
  held++;
  return once(() => held--);
}

/** `fn`, run by the first call only. */
function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

/** Pools whose first read has no outcome yet (holdForFirstRead): a cold start, or a service a reload added. */
let firstReads = 0;

/** How many pools wait for their first read now (the checks thread starts checks slower meanwhile). */
export function firstReadsWaiting(): number {
  return firstReads;
}

/**
 * holdAdmission for a pool's first read, which is also counted apart
 * (firstReadsWaiting): until it has an outcome the service cannot be
 * programmed, and the checks on their own thread are told to go slower.
 */
export function holdForFirstRead(): () => void {
  const release = holdAdmission();
  firstReads++;
  return once(() => {
    firstReads--;
    release();
  });
}

/**
 * Runs `job` to its end, in slices, then calls `done`. An exception thrown
 * by the job ends it and goes to `done` (the caller decides what it means).
 * Returns true when the job finished synchronously.
 */
export function runSliced(job: Job, done: (error?: unknown) => void, options: SliceOptions = {}): boolean {
  const budgetMs = options.budgetMs ?? SLICE_BUDGET_MS;
  const now = options.now ?? readMonotonic;
  const startNow = options.now ?? keptMonotonic;
  const later = options.later ?? afterTurn;
  const background = options.background ?? false;
  let synchronous = true;
  // Steps between two looks at the clock: a clock read is a system call on
  // some hosts (a UML guest: some 50 us, more than a cheap step), so cheap
  // steps are counted in strides; the stride doubles while the steps between
  // two reads take under STRIDE_LOW_MS and halves when they take over
  // STRIDE_HIGH_MS, so a slice overruns its budget by little.
  const firstLookSteps = options.firstLookSteps ?? FIRST_LOOK_STEPS;
  let stride = options.firstLookSteps ?? 1;
  let firstSlice = true;
  const slice = (): void => {
    // A job's first slice starts at this turn's reading if one was taken (older than the
    // slice: the slice only ends sooner), else at its first look; a later slice, whose stride
    // may be long, reads the clock as it starts, so that the stride is judged on its first look.
    const first = firstSlice;
    firstSlice = false;
    const startMs = first ? startNow() : now();
    let endMs = startMs + budgetMs;
    // The stride is judged between fresh reads only.
    let lastMs = first && options.now === undefined ? Number.NaN : startMs;
    let untilCheck = first ? firstLookSteps : stride;
    try {
      for (;;) {
        if (job.next().done) break;
        if (--untilCheck > 0) continue;
        const t = now();
        if (Number.isNaN(endMs)) endMs = t + budgetMs;
        if (t - lastMs < STRIDE_LOW_MS) stride = Math.min(stride * 2, MAX_STRIDE);
        else if (t - lastMs > STRIDE_HIGH_MS) stride = Math.max(1, stride >> 1);
        lastMs = t;
        untilCheck = stride;
        if (t >= endMs) {
          // Waiting for its next slice, a control-plane job holds check admission back.
          const release = background ? undefined : holdAdmission();
          later(() => {
            release?.();
            slice();
          });
          synchronous = false;
          return;
        }
      }
    } catch (error) {
      done(error);
      return;
    }
    done();
  };
  slice();
  return synchronous;
}

/**
 * How long the work that waits for a turn (turn(), a sliced job's next
 * slice) may hold one check phase of the event loop, taken together. At a
 * cold start of 1,000 services in the lab guest, sixteen pool files' steps
 * and the programming's slices, each short, ran in the same check phase:
 * phases of 90 to 260 ms, in which no timer, socket or API request was seen.
 * Past this share, what is left waits for the next phase, in order.
 */
export const TURN_SHARE_MS = 30;

/**
 * Runner immediates kept queued: at most this many continuations run in one
 * check phase (a turn of the event loop costs its own system calls: too few a
 * phase, and a cold start of short steps spent its time turning the loop).
 */
const RUNNERS = 64;

/** Continuations waiting for a turn. */
const waiting = new Fifo<() => void>();
/** Runner immediates queued (each runs one continuation, or defers). */
let runners = 0;
/** When the current check phase's first runner ran (readMonotonic), or -1 between phases. */
let phaseStartMs = -1;
/** The current check phase has had its share: its other runners defer without reading the clock. */
let phaseFull = false;

function endPhase(): void {
  phaseStartMs = -1;
  phaseFull = false;
}

/** Keeps a runner queued for each waiting continuation, up to RUNNERS. */
function topUp(): void {
  while (runners < RUNNERS && runners < waiting.size) {
    runners++;
    setImmediate(runOne);
  }
}

function runOne(): void {
  runners--;
  if (waiting.size === 0) return;
  if (phaseFull) {
    topUp();
    return;
  }
  const t = readMonotonic();
  if (phaseStartMs < 0) {
    phaseStartMs = t;
    // Queued now, it runs in the next check phase before the runners queued after it.
    setImmediate(endPhase);
  } else if (t - phaseStartMs >= TURN_SHARE_MS) {
    // This phase has had its share: the runners queued now run in the next one.
    phaseFull = true;
    topUp();
    return;
  }
  const fn = waiting.shift()!;
  topUp();
  fn();
}

/**
 * Runs `fn` in the event loop's check phase (setImmediate), after what waits
 * already: the continuations of one phase run until they have held it
 * TURN_SHARE_MS (or RUNNERS of them ran), the rest in the next phases, in
 * order, with timers, sockets and API requests in between. The first of a
 * phase always runs, so everything goes on. Each runs in an immediate of
 * its own, so that what it resolves runs (microtasks) before the next one
 * looks at the clock; the time is read afresh for each (readMonotonic: the
 * reading then serves as the turn's for what `fn` does).
 */
export function afterTurn(fn: () => void): void {
  waiting.push(fn);
  topUp();
}

/** Lets the event loop run what waits (timers, sockets) before going on (see afterTurn). */
export function turn(): Promise<void> {
  return new Promise((resolve) => afterTurn(resolve));
}

/** Runs a job that returns a value to its end at once (for callers that need it synchronously). */
export function finish<T>(job: Generator<unknown, T, undefined>): T {
  for (;;) {
    const step = job.next();
    if (step.done) return step.value;
  }
}

/** Runs a job that returns a value in slices; resolves with the value, rejects with what it threw. */
export function sliced<T>(job: Generator<unknown, T, undefined>, options: SliceOptions = {}): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let value: T | undefined;
    const wrapper = (function* (): Job {
      value = yield* job;
    })();
    runSliced(wrapper, (error) => (error === undefined ? resolve(value as T) : reject(error as Error)), options);
  });
}
