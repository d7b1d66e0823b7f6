/**
 * Deadlines driven by the injected clock (AbortSignal.timeout would ignore a
 * manual clock).
 */
import { setAnswerTimeout, type Clock, type Timer } from '../runtime/clock.js';

/** The reason a deadline aborts with; checks turn it into "timed out after N s". */
export class DeadlineError extends Error {
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`timed out after ${formatSeconds(timeoutMs)}`);
    this.name = 'DeadlineError';
    this.timeoutMs = timeoutMs;
  }
}

/**
 * A signal that aborts after timeoutMs (never when timeoutMs <= 0), or when
 * its owner calls abort(), whichever comes first. It is made once per check
 * (1,000 a second at 10,000 servers), so it costs one controller and one
 * timer and nothing else: the owner aborts it directly on stop instead of
 * through a listener on a parent signal (adding and removing that listener
 * cost as much as the controller), and the race is settled by the deadline
 * itself, not by another listener on its signal.
 */
export class Deadline {
  private readonly controller = new AbortController();
  private rejectRace: ((reason: unknown) => void) | undefined = undefined;
  private readonly timer: Timer | undefined;

  constructor(clock: Clock, timeoutMs: number) {
    // An answer already waiting when the time comes still wins (setAnswerTimeout).
    this.timer = timeoutMs > 0 ? setAnswerTimeout(clock, () => this.abort(new DeadlineError(timeoutMs)), timeoutMs) : undefined;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Aborts the signal and the race with `reason`, unless already aborted. */
  abort(reason: unknown): void {
    if (this.controller.signal.aborted) return;
    this.controller.abort(reason);
    this.rejectRace?.(reason);
  }

  /**
   * Settles as `work` does, or rejects with the abort reason as soon as the
   * signal aborts (the work may still be running then). Call once.
   */
  race<T>(work: Promise<T>): Promise<T> {
    const signal = this.controller.signal;
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    return new Promise<T>((resolve, reject) => {
      this.rejectRace = reject;
      work.then(resolve, reject);
    });
  }

  /** Releases the timer; call when the work is over. */
  dispose(): void {
    this.rejectRace = undefined;
    this.timer?.cancel();
  }
}

/** A Deadline (kept as the factory the checks' tests use). */
export function createDeadline(clock: Clock, timeoutMs: number): Deadline {
  return new Deadline(clock, timeoutMs);
}

/** "5 s", "0.25 s": durations as PyBal's messages show them. */
export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}
