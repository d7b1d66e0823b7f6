/**
 * The periodic wrapper (Seesaw's healthcheck shape): it owns interval,
 * jitter, the overall deadline, rise/fall and report-on-change, so that each
 * monitor type only says how to check once.
 *
 * - The first check runs at once, or after the start's delay (the daemon
 *   spreads a large start over the interval); the second falls between 0.5 and 1.5
 *   intervals later, so monitors started in the same millisecond spread over
 *   the interval; later checks keep their phase with ±10% jitter.
 * - Interval is measured between check starts; a check that overruns its
 *   next tick delays it (never overlaps it): the late check runs as soon as
 *   the one before ends, further ticks missed meanwhile are dropped, and the
 *   phase is kept. Dropping the late tick too would stretch failure detection
 *   by up to an interval whenever the timeout is close to the interval.
 * - The deadline covers the whole check: the wrapper reports a failure when it
 *   passes even if the check itself has not noticed yet.
 */
import { errorMessage } from '../runtime/errors.js';
import type { MonitorKind } from '../config/types.js';
import type { Timer } from '../runtime/clock.js';
import { Deadline, DeadlineError, type CheckSignal } from './deadline.js';
import { createReportingHealth, type Health } from './health.js';
import type { CheckOutcome, HealthState, Monitor, MonitorDeps, StartOptions } from './types.js';

export interface PeriodicOptions {
  readonly intervalMs: number;
  /** Overall deadline of one check; 0 or less means none. */
  readonly timeoutMs: number;
  readonly rise: number;
  readonly fall: number;
}

export interface PeriodicCheck {
  /**
   * One check. Must honour the signal; the wrapper enforces the deadline regardless.
   * startMs: the clock's time at the check's start, for a check that times itself.
   */
  run(signal: CheckSignal, startMs: number): Promise<CheckOutcome>;
  /**
   * Waited for before the deadline starts (a slot for a command, say), so
   * that local queueing never counts against the server. Returns a release.
   */
  gate?(signal: AbortSignal): Promise<() => void>;
  /** Words the deadline failure for the check in flight (say, with its URL). */
  timeoutReason?(message: string): string;
  /** Frees what the check keeps across rounds; called once by stop(). */
  close?(): Promise<void> | void;
  /**
   * After a failed check (the deadline's too): a second look that may say
   * more about it, under a deadline of its own of the same length (a
   * data-path check tries the server's own address). Resolves with the
   * outcome to record; the first one stands if it fails or times out.
   */
  explain?(outcome: CheckOutcome, signal: CheckSignal): Promise<CheckOutcome>;
}

/** Relative jitter applied to each interval after the second check. */
const JITTER = 0.1;
/** Intervals below this are raised to it: an interval of 0 would check in a tight loop. */
export const MIN_INTERVAL_MS = 100;

/** The reason a check in flight is aborted with when its monitor stops. */
const STOPPED = 'monitor stopped';

export function createPeriodicMonitor(kind: MonitorKind, options: PeriodicOptions, check: PeriodicCheck, deps: MonitorDeps): Monitor {
  return new PeriodicMonitor(kind, options, check, deps);
}

/**
 * One per server (10,000 of them), checking 1,000 times a second between
 * them: a class, so that its state is fields rather than a dozen closures
 * over contexts, and the per-check path allocates little besides the
 * check's own deadline. Stopping sets a flag and aborts the deadline in
 * flight directly; a per-monitor AbortController (with its EventTarget and
 * maps) would only serve as a parent for one listener per check.
 */
class PeriodicMonitor implements Monitor {
  private readonly health: Health;
  private readonly random: () => number;
  private started = false;
  private stopped = false;
  private timer: Timer | undefined = undefined;
  /** The tick's timer once it has fired: set again for the next tick (see Clock.setTimeout). */
  private spent: Timer | undefined = undefined;
  private inflight: Promise<void> | undefined = undefined;
  /** The deadline of the check in flight, which stop() aborts. */
  private deadline: Deadline | undefined = undefined;
  /** Aborts a gate's wait on stop; only checks with a gate (RunCommand) have one. */
  private readonly gateController: AbortController | undefined;
  private lastDueMs = 0;
  private checks = 0;
  /** tick, bound once for the clock. */
  private readonly onTick = (): void => this.tick();
  /** The round's start once admitted (deps.admitCall), bound once. */
  private readonly onAdmitted = (): void => {
    if (!this.stopped) this.inflight = this.loop();
  };

  constructor(
    readonly kind: MonitorKind,
    private readonly options: PeriodicOptions,
    private readonly check: PeriodicCheck,
    private readonly deps: MonitorDeps,
  ) {
    this.health = createReportingHealth(kind, options, deps);
    this.random = deps.random ?? Math.random;
    this.gateController = check.gate ? new AbortController() : undefined;
  }

  start(startOptions?: StartOptions): void {
    if (this.started) return;
    this.started = true;
    if (startOptions?.assumeUp) this.health.presumeUp();
    const delayMs = Math.max(0, startOptions?.delayMs ?? 0);
    this.lastDueMs = this.deps.clock.now() + delayMs;
    if (delayMs > 0) this.timer = this.deps.clock.setTimeout(this.onTick, delayMs);
    else this.tick();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    const reason = new Error(STOPPED);
    this.gateController?.abort(reason);
    this.deadline?.abort(reason);
    await this.inflight;
    await this.check.close?.();
  }

  state(): HealthState | undefined {
    return this.health.state();
  }

  private nextDelayMs(): number {
    const interval = Math.max(MIN_INTERVAL_MS, this.options.intervalMs);
    const random = this.random;
    this.lastDueMs += this.checks === 1 ? interval * (0.5 + random()) : interval * (1 + (random() * 2 - 1) * JITTER);
    const now = this.deps.clock.now();
    // Late: run now, as the latest tick due; drop any earlier ones missed meanwhile, keeping the phase.
    if (this.lastDueMs < now) this.lastDueMs += Math.floor((now - this.lastDueMs) / interval) * interval;
    return Math.max(0, this.lastDueMs - now);
  }

  private tick(): void {
    this.spent = this.timer;
    this.timer = undefined;
    if (this.stopped) return;
    this.checks += 1;
    // Waiting for admission, a round is this monitor's bound function in the
    // admission's queue and nothing else; stop() does not wait for it, and
    // once admitted after a stop it does nothing.
    if (this.deps.admitCall !== undefined) this.deps.admitCall(this.onAdmitted);
    else this.inflight = this.loop();
  }

  /** One round and the scheduling of the next, in one async function (rather than runOnce().catch().finally()). */
  private async loop(): Promise<void> {
    try {
      await this.runOnce();
    } catch (error) {
      this.deps.logger.error({ err: error }, 'check loop failed; restarting');
    }
    this.inflight = undefined;
    if (!this.stopped) this.timer = this.deps.clock.setTimeout(this.onTick, this.nextDelayMs(), this.spent);
  }

  private async runOnce(): Promise<void> {
    const { check, deps } = this;
    const clock = deps.clock;
    let release: (() => void) | undefined;
    // Before the deadline starts: waiting for admission is the director's delay, not the server's.
    // (With admitCall the round was admitted before it began: see tick.)
    if (deps.admitCall === undefined && deps.admit) {
      await deps.admit();
      if (this.stopped) return;
    }
    if (check.gate) {
      try {
        release = await check.gate(this.gateController!.signal);
      } catch {
        return; // stopped while waiting
      }
    }
    const startMs = clock.now();
    const deadline = new Deadline(clock, this.options.timeoutMs);
    // Stopped while the gate was being granted: the check starts aborted, as it would have under a stopped parent signal.
    if (this.stopped) deadline.abort(new Error(STOPPED));
    this.deadline = deadline;
    let outcome: CheckOutcome | undefined;
    let work: Promise<CheckOutcome>;
    try {
      work = check.run(deadline.signal, startMs);
    } catch (error) {
      work = Promise.reject(error); // a check that throws synchronously is a failed check too
    }
    try {
      outcome = await deadline.race(work);
    } catch (error) {
      const reason: unknown = deadline.signal.reason;
      if (reason instanceof DeadlineError) outcome = { ok: false, reason: check.timeoutReason?.(reason.message) ?? reason.message };
      else if (this.stopped) outcome = undefined;
      else outcome = { ok: false, reason: errorMessage(error) };
    } finally {
      deadline.dispose();
    }
    this.deadline = undefined;
    const durationMs = outcome?.durationMs ?? clock.now() - startMs;
    // The check must be over before the next one starts (or stop resolves); when the
    // deadline won, wait for it (it was told to stop); otherwise it is already over.
    if (deadline.signal.aborted) await work.catch(() => undefined);
    if (outcome !== undefined && !outcome.ok && check.explain !== undefined && !this.stopped) outcome = await this.explain(check.explain, outcome);
    release?.();
    if (this.stopped || outcome === undefined) return;
    // The message is built only when it is written: this runs 1,000 times a second.
    if (deps.logger.isLevelEnabled('debug')) deps.logger.debug(`${outcome.ok ? 'good' : 'bad'} check: ${outcome.reason}`);
    // A fixed shape (absent fields undefined) rather than a spread of the outcome.
    deps.onResult?.({ kind: this.kind, ok: outcome.ok, reason: outcome.reason, durationMs, urls: outcome.urls, exitCode: outcome.exitCode });
    this.health.record(outcome.ok, outcome.reason);
  }

  /** The check's second look at a failure, under its own deadline (stop aborts it too); the failure stands if that look fails. */
  private async explain(explain: NonNullable<PeriodicCheck['explain']>, failure: CheckOutcome): Promise<CheckOutcome> {
    const deadline = new Deadline(this.deps.clock, this.options.timeoutMs);
    this.deadline = deadline;
    let work: Promise<CheckOutcome>;
    try {
      work = explain.call(this.check, failure, deadline.signal);
    } catch {
      work = Promise.resolve(failure);
    }
    try {
      return await deadline.race(work);
    } catch {
      return failure;
    } finally {
      deadline.dispose();
      this.deadline = undefined;
      if (deadline.signal.aborted) await work.catch(() => undefined);
    }
  }
}
