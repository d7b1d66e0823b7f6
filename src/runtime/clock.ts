/**
 * The one injected clock. Every component that waits (monitors, BGP timers,
 * pool polling, IPVS retries) takes a Clock; only this module and the manual
 * clock touch timers. Times are monotonic milliseconds.
 */
import { TimerQueue } from './timer-queue.js';

export interface Timer {
  /** Cancels the timer; harmless when it already fired or was cancelled. */
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds (arbitrary origin). */
  now(): number;
  /** Wall-clock milliseconds since the epoch, for timestamps shown to people. */
  wallNow(): number;
  /**
   * `reuse`: a timer this clock made that has fired or was cancelled, set
   * again rather than a new one made (a clock may ignore it). A monitor's
   * tick, 1,000 a second at 10,000 servers, each alive for its interval,
   * made an object a check that lived long enough to reach V8's old
   * generation and be collected there.
   */
  setTimeout(fn: () => void, delayMs: number, reuse?: Timer): Timer;
  /** Resolves after delayMs, or rejects with the signal's reason when aborted. */
  sleep(delayMs: number, signal?: AbortSignal): Promise<void>;
}

function sleepWith(clock: Clock, delayMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      timer.cancel();
      reject(signal?.reason);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, delayMs);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The monotonic time, read once per turn of the event loop: the reading is
 * kept until the loop's check phase (a setImmediate queued by the read), so
 * the reads of one check's end (the fetch's duration, the next tick's delay,
 * the health record's time, a few awaits apart) and of the other sockets
 * answered in the same poll cost one. A clock read is a system call where
 * there is no vDSO (the lab's UML guest: some 50-100 us each, as dear as a
 * connect), and within one turn the time does not move enough to matter: a
 * turn longer than 100 ms is a stall the daemon reports. What measures time
 * spent inside one run of code (the slice budget, the stall watch) reads
 * afresh.
 */
let monotonicRead = -1;
/** See setTurnPause. */
let turnPauseMs = 0;
let pauseCell: Int32Array | undefined;
/** When the last turn that read the time began (its reading). */
let lastTurnAt = Number.NEGATIVE_INFINITY;
/** How many times this thread has slept after a turn (see turnPausesTaken). */
let pausesTaken = 0;
function endTurn(): void {
  const at = monotonicRead;
  monotonicRead = -1;
  if (pauseCell === undefined) return;
  // Only while turns come close together: the lone wakes of an idle thread
  // (its stall watch, a check now and then) would pay the sleep's system
  // calls for nothing to gather. And only after a short turn: a long one
  // found plenty waiting already, and a thread that sleeps after long turns
  // too runs its timers late (in a saturated guest, its stall watch counted
  // three times as many stalls, for the same CPU per check).
  const busy = at - lastTurnAt < 2 * turnPauseMs && performance.now() - at < turnPauseMs;
  lastTurnAt = at;
  // Nothing ever notifies the cell: this is a sleep of at most turnPauseMs.
  if (!busy) return;
  pausesTaken++;
  Atomics.wait(pauseCell, 0, 0, turnPauseMs);
}

/**
 * How many times this thread has slept after a turn since it started: what
 * endTurn decided, whatever the wall clock did meanwhile (on a loaded host a
 * turn that did not sleep can still take longer than one that did).
 */
export function turnPausesTaken(): number {
  return pausesTaken;
}

/**
 * After each turn of this thread's event loop in which the time was read
 * (something ran: a timer fired, a socket connected or answered) that began
 * less than 2 * `ms` after the last such turn and took less than `ms`, the
 * thread sleeps `ms` before it polls again (0: never). What comes in
 * meanwhile is then taken in one poll: one epoll_pwait and libuv's four
 * clock reads for many sockets, not for each (in a guest without vDSO each
 * of those is a system call). An event waits at most `ms` more, so it suits
 * a thread whose work can wait that long (the checks thread), never one
 * that answers people or peers. A thread whose turns come further apart
 * (idle, or nearly) never sleeps, nor does one after a long turn.
 */
export function setTurnPause(ms: number): void {
  turnPauseMs = ms;
  lastTurnAt = Number.NEGATIVE_INFINITY;
  pauseCell = ms > 0 ? (pauseCell ?? new Int32Array(new SharedArrayBuffer(4))) : undefined;
}

export function monotonicNow(): number {
  return monotonicRead < 0 ? readMonotonic() : monotonicRead;
}

/** This turn's reading if one was taken, else NaN (no read). */
export function keptMonotonic(): number {
  return monotonicRead < 0 ? Number.NaN : monotonicRead;
}

/** Reads the monotonic time afresh; the reading is what monotonicNow returns for the rest of this turn. */
export function readMonotonic(): number {
  if (monotonicRead < 0) setImmediate(endTurn);
  monotonicRead = performance.now();
  return monotonicRead;
}

/** The process's timers: one queue behind one Node timer (see timer-queue.ts). */
let systemTimers: TimerQueue | undefined;
function timers(): TimerQueue {
  systemTimers ??= new TimerQueue({
    read: readMonotonic,
    recent: monotonicNow,
    arm: (fn, delayMs) => setTimeout(fn, delayMs),
    disarm: (handle) => clearTimeout(handle as NodeJS.Timeout),
  });
  return systemTimers;
}

/** Lets this thread's timers fire up to `ms` late, grouped on a grid of `ms` (see TimerQueue.setSlack). */
export function setTimerSlack(ms: number): void {
  timers().setSlack(ms);
}

/** How often the wall clock is read again to follow a step of the system time (NTP, an operator). */
export const WALL_RESYNC_MS = 1_000;
let wallOffset = 0;
let wallSyncedAt = Number.NEGATIVE_INFINITY;

/**
 * Wall-clock milliseconds since the epoch, for timestamps shown to people
 * (log lines, "since" fields): the cached monotonic time plus an offset read
 * from Date.now() at most once a second. Date.now() is a system call too in
 * the guest, and a cold start of 1,000 services wrote 45,000 log lines, each
 * of which read it (about 5 s of CPU there). A step of the system clock shows
 * within a second.
 */
export function wallNow(): number {
  const mono = monotonicNow();
  if (mono - wallSyncedAt >= WALL_RESYNC_MS || mono < wallSyncedAt) {
    wallOffset = Date.now() - performance.now();
    wallSyncedAt = mono;
  }
  return Math.floor(mono + wallOffset);
}

/** The real clock: the cached readings above, and timers in one queue behind one Node timer. */
export function createSystemClock(): Clock {
  const clock: Clock = {
    now: monotonicNow,
    wallNow,
    setTimeout: (fn, delayMs, reuse) => timers().add(fn, delayMs, reuse),
    sleep: (delayMs, signal) => sleepWith(clock, delayMs, signal),
  };
  return clock;
}

interface PendingTimer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/**
 * A clock that moves only when told to. Timers fire in deadline order (ties
 * in creation order); a timer set while advancing fires in the same advance
 * when its deadline falls inside it.
 */
export class ManualClock implements Clock {
  private current: number;
  private readonly wallOrigin: number;
  private nextId = 1;
  private pending: PendingTimer[] = [];

  constructor(startMs = 0, wallOriginMs = Date.UTC(2026, 0, 1)) {
    this.current = startMs;
    this.wallOrigin = wallOriginMs - startMs;
  }

  now(): number {
    return this.current;
  }

  wallNow(): number {
    return this.wallOrigin + this.current;
  }

  setTimeout(fn: () => void, delayMs: number): Timer {
    const timer: PendingTimer = {
      id: this.nextId++,
      at: this.current + Math.max(0, delayMs),
      fn,
      cancelled: false,
    };
    this.pending.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  sleep(delayMs: number, signal?: AbortSignal): Promise<void> {
    return sleepWith(this, delayMs, signal);
  }

  /** Number of timers that have not fired or been cancelled. */
  pendingCount(): number {
    return this.pending.filter((t) => !t.cancelled).length;
  }

  /** Deadline of the next live timer, or undefined. */
  nextDeadline(): number | undefined {
    return this.takeNext(Number.POSITIVE_INFINITY, false)?.at;
  }

  /**
   * Moves time forward by `ms`, firing due timers synchronously. Promise
   * continuations started by a timer do not run before the next timer; use
   * advanceAsync when the code under test awaits between timers.
   */
  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      const next = this.takeNext(target, true);
      if (!next) break;
      this.current = next.at;
      next.fn();
    }
    this.current = target;
  }

  /**
   * Like advance, but lets pending promise work and I/O callbacks run before
   * and after each timer, so async code reacts to each firing before the next.
   */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.current + ms;
    await flushAsync();
    for (;;) {
      const next = this.takeNext(target, true);
      if (!next) break;
      this.current = next.at;
      next.fn();
      await flushAsync();
    }
    this.current = target;
    await flushAsync();
  }

  private takeNext(limit: number, remove: boolean): PendingTimer | undefined {
    this.pending = this.pending.filter((t) => !t.cancelled);
    let best: PendingTimer | undefined;
    for (const t of this.pending) {
      if (t.at > limit) continue;
      if (!best || t.at < best.at || (t.at === best.at && t.id < best.id)) best = t;
    }
    if (best && remove) this.pending = this.pending.filter((t) => t !== best);
    return best;
  }
}

/** Lets queued microtasks and immediate callbacks run. */
export async function flushAsync(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * A timeout for an answer (a check's deadline, a connect, a netlink reply,
 * the BGP hold time). When its time comes, `fn` runs one turn later: a busy
 * event loop runs expired timers before it reads sockets, so the answer may
 * already be waiting, and setImmediate runs after the loop has read them. A
 * stall of the loop is then not blamed on the other side. Cancelling stops
 * it also in that last turn.
 */
export function setAnswerTimeout(clock: Clock, fn: () => void, ms: number): Timer {
  return new AnswerTimeout(clock, fn, ms);
}

/** setAnswerTimeout's timer: one per check, so its state is fields rather than closures over a context. */
class AnswerTimeout implements Timer {
  private cancelled = false;
  private readonly timer: Timer;

  constructor(
    clock: Clock,
    private readonly fn: () => void,
    ms: number,
  ) {
    this.timer = clock.setTimeout(() => setImmediate(fireAnswerTimeout, this), ms);
  }

  cancel(): void {
    this.cancelled = true;
    this.timer.cancel();
  }

  /** The turn after the time came: runs fn unless cancelled meanwhile. */
  fire(): void {
    if (!this.cancelled) this.fn();
  }
}

function fireAnswerTimeout(timeout: AnswerTimeout): void {
  timeout.fire();
}
