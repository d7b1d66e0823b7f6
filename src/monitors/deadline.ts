/**
 * Deadlines driven by the injected clock (AbortSignal.timeout would ignore a
 * manual clock).
 */
import { setAnswerTimeout, type Clock } from '../runtime/clock.js';

/** The reason a deadline aborts with; checks turn it into "timed out after N s". */
export class DeadlineError extends Error {
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`timed out after ${formatSeconds(timeoutMs)}`);
    this.name = 'DeadlineError';
    this.timeoutMs = timeoutMs;
  }
}

export interface Deadline {
  readonly signal: AbortSignal;
  /**
   * Settles as `work` does, or rejects with the abort reason as soon as the
   * signal aborts (the work may still be running then). Call once.
   */
  race<T>(work: Promise<T>): Promise<T>;
  /** Releases the timer and the parent listener; call when the work is over. */
  dispose(): void;
}

/**
 * A signal that aborts after timeoutMs (never when timeoutMs <= 0), or when
 * the parent aborts, whichever comes first. It is run once per check, so it
 * costs one controller, one timer and one parent listener: the race is
 * settled by the deadline itself, not by another listener on its signal.
 */
export function createDeadline(clock: Clock, timeoutMs: number, parent?: AbortSignal): Deadline {
  const controller = new AbortController();
  let rejectRace: ((reason: unknown) => void) | undefined;
  const abort = (reason: unknown): void => {
    if (controller.signal.aborted) return;
    controller.abort(reason);
    rejectRace?.(reason);
  };
  const onParent = (): void => abort(parent?.reason);
  if (parent?.aborted) controller.abort(parent.reason);
  else parent?.addEventListener('abort', onParent, { once: true });
  // An answer already waiting when the time comes still wins (setAnswerTimeout).
  const timer = timeoutMs > 0 ? setAnswerTimeout(clock, () => abort(new DeadlineError(timeoutMs)), timeoutMs) : undefined;
  return {
    signal: controller.signal,
    race<T>(work: Promise<T>): Promise<T> {
      if (controller.signal.aborted) return Promise.reject(controller.signal.reason as Error);
      return new Promise<T>((resolve, reject) => {
        rejectRace = reject;
        work.then(resolve, reject);
      });
    },
    dispose() {
      rejectRace = undefined;
      timer?.cancel();
      parent?.removeEventListener('abort', onParent);
    },
  };
}

/** "5 s", "0.25 s": durations as PyBal's messages show them. */
export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}
