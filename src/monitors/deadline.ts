/**
 * Deadlines driven by the injected clock (AbortSignal.timeout would ignore a
 * manual clock).
 */
import type { Clock } from '../runtime/clock.js';

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
  /** Releases the timer and the parent listener; call when the work is over. */
  dispose(): void;
}

/**
 * A signal that aborts after timeoutMs (never when timeoutMs <= 0), or when
 * the parent aborts, whichever comes first.
 */
export function createDeadline(clock: Clock, timeoutMs: number, parent?: AbortSignal): Deadline {
  const controller = new AbortController();
  const onParent = (): void => controller.abort(parent?.reason);
  if (parent?.aborted) controller.abort(parent.reason);
  else parent?.addEventListener('abort', onParent, { once: true });
  const timer = timeoutMs > 0 ? clock.setTimeout(() => controller.abort(new DeadlineError(timeoutMs)), timeoutMs) : undefined;
  return {
    signal: controller.signal,
    dispose() {
      timer?.cancel();
      parent?.removeEventListener('abort', onParent);
    },
  };
}

/** Resolves never; rejects with the signal's reason once it aborts. */
export function abortPromise(signal: AbortSignal): { promise: Promise<never>; dispose(): void } {
  let onAbort = (): void => undefined;
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  // The race that uses it may already be settled; the rejection is expected.
  promise.catch(() => undefined);
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}

/** "5 s", "0.25 s": durations as PyBal's messages show them. */
export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}
