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
import { createDeadline, DeadlineError } from './deadline.js';
import { createReportingHealth } from './health.js';
import type { CheckOutcome, Monitor, MonitorDeps } from './types.js';

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
  run(signal: AbortSignal, startMs: number): Promise<CheckOutcome>;
  /**
   * Waited for before the deadline starts (a slot for a command, say), so
   * that local queueing never counts against the server. Returns a release.
   */
  gate?(signal: AbortSignal): Promise<() => void>;
  /** Words the deadline failure for the check in flight (say, with its URL). */
  timeoutReason?(message: string): string;
  /** Frees what the check keeps across rounds; called once by stop(). */
  close?(): Promise<void> | void;
}

/** Relative jitter applied to each interval after the second check. */
const JITTER = 0.1;
/** Intervals below this are raised to it: an interval of 0 would check in a tight loop. */
export const MIN_INTERVAL_MS = 100;

export function createPeriodicMonitor(
  kind: MonitorKind,
  options: PeriodicOptions,
  check: PeriodicCheck,
  deps: MonitorDeps,
): Monitor {
  const { clock, logger } = deps;
  const random = deps.random ?? Math.random;
  const health = createReportingHealth(kind, options, deps);
  let started = false;
  let stopped = false;
  let timer: Timer | undefined;
  let inflight: Promise<void> | undefined;
  const stopController = new AbortController();
  let lastDueMs = 0;
  let checks = 0;

  const nextDelayMs = (): number => {
    const interval = Math.max(MIN_INTERVAL_MS, options.intervalMs);
    lastDueMs += checks === 1 ? interval * (0.5 + random()) : interval * (1 + (random() * 2 - 1) * JITTER);
    const now = clock.now();
    // Late: run now, as the latest tick due; drop any earlier ones missed meanwhile, keeping the phase.
    if (lastDueMs < now) lastDueMs += Math.floor((now - lastDueMs) / interval) * interval;
    return Math.max(0, lastDueMs - now);
  };

  const runOnce = async (): Promise<void> => {
    const stopSignal = stopController.signal;
    let release: (() => void) | undefined;
    // Before the deadline starts: waiting for admission is the director's delay, not the server's.
    if (deps.admit) await deps.admit();
    if (stopped) return;
    try {
      if (check.gate) release = await check.gate(stopSignal);
    } catch {
      return; // stopped while waiting
    }
    const startMs = clock.now();
    const deadline = createDeadline(clock, options.timeoutMs, stopSignal);
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
      else if (stopSignal.aborted) outcome = undefined;
      else outcome = { ok: false, reason: errorMessage(error) };
    } finally {
      deadline.dispose();
    }
    const durationMs = outcome?.durationMs ?? clock.now() - startMs;
    // The check must be over before the next one starts (or stop resolves); when the
    // deadline won, wait for it (it was told to stop); otherwise it is already over.
    if (deadline.signal.aborted) await work.catch(() => undefined);
    release?.();
    if (stopped || outcome === undefined) return;
    logger.debug(`${outcome.ok ? 'good' : 'bad'} check: ${outcome.reason}`);
    deps.onResult?.({ kind, durationMs, ...outcome });
    health.record(outcome.ok, outcome.reason);
  };

  const tick = (): void => {
    timer = undefined;
    if (stopped) return;
    checks += 1;
    inflight = runOnce()
      .catch((error: unknown) => logger.error({ err: error }, 'check loop failed; restarting'))
      .finally(() => {
        inflight = undefined;
        if (!stopped) timer = clock.setTimeout(tick, nextDelayMs());
      });
  };

  return {
    kind,
    start(startOptions) {
      if (started) return;
      started = true;
      if (startOptions?.assumeUp) health.presumeUp();
      const delayMs = Math.max(0, startOptions?.delayMs ?? 0);
      lastDueMs = clock.now() + delayMs;
      if (delayMs > 0) timer = clock.setTimeout(tick, delayMs);
      else tick();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      timer?.cancel();
      timer = undefined;
      stopController.abort(new Error('monitor stopped'));
      await inflight;
      await check.close?.();
    },
    state: () => health.state(),
  };
}
