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

/** A listener for a check's abort: a function, or an object with handleEvent (no closure needed). */
export type AbortListener = (() => void) | { handleEvent(): void };

/**
 * What a check may do with its deadline's signal: the part of AbortSignal the
 * monitors use. A real AbortSignal is one too (tests and one-off fetches pass
 * one).
 */
export interface CheckSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: AbortListener, options?: { readonly once?: boolean }): void;
  removeEventListener(type: 'abort', listener: AbortListener): void;
}

/**
 * A check's signal without an AbortController. Node's controller and signal
 * survive every scavenge (an AbortSignal is kept until a major GC however
 * short its life), so at 1,000 checks a second they were about 7 MB of
 * old-generation garbage in every 10 s, and an EventTarget each besides.
 * This is a plain object: aborted once, its listeners called once, in the
 * order they were added.
 */
class DeadlineSignal implements CheckSignal {
  aborted = false;
  reason: unknown = undefined;
  /** One listener (the common case: the check's socket) needs no array. */
  private first: AbortListener | undefined = undefined;
  private more: AbortListener[] | undefined = undefined;

  addEventListener(_type: 'abort', listener: AbortListener): void {
    if (this.aborted) return; // as AbortSignal: a listener added after the abort is never called
    if (this.first === undefined && this.more === undefined) this.first = listener;
    else if (this.first !== listener && !this.more?.includes(listener)) (this.more ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: AbortListener): void {
    if (this.first === listener) this.first = undefined;
    else if (this.more !== undefined) {
      const at = this.more.indexOf(listener);
      if (at >= 0) this.more.splice(at, 1);
    }
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.first === undefined ? (this.more ?? []) : [this.first, ...(this.more ?? [])];
    this.first = this.more = undefined;
    for (const listener of listeners) {
      try {
        if (typeof listener === 'function') listener();
        else listener.handleEvent();
      } catch (error) {
        // As EventTarget: one listener's failure neither stops the others nor the caller.
        process.emitWarning(`a check's abort listener threw: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
}

/**
 * A signal that aborts after timeoutMs (never when timeoutMs <= 0), or when
 * its owner calls abort(), whichever comes first. It is made once per check
 * (1,000 a second at 10,000 servers), so it costs one signal object and one
 * timer and nothing else: the owner aborts it directly on stop instead of
 * through a listener on a parent signal, and the race is settled by the
 * deadline itself, not by another listener on its signal.
 */
export class Deadline {
  private readonly abortable = new DeadlineSignal();
  private rejectRace: ((reason: unknown) => void) | undefined = undefined;
  private readonly timer: Timer | undefined;

  constructor(clock: Clock, timeoutMs: number) {
    // An answer already waiting when the time comes still wins (setAnswerTimeout).
    this.timer = timeoutMs > 0 ? setAnswerTimeout(clock, () => this.abort(new DeadlineError(timeoutMs)), timeoutMs) : undefined;
  }

  get signal(): CheckSignal {
    return this.abortable;
  }

  /** Aborts the signal and the race with `reason`, unless already aborted. */
  abort(reason: unknown): void {
    if (this.abortable.aborted) return;
    this.abortable.abort(reason);
    this.rejectRace?.(reason);
  }

  /**
   * Settles as `work` does, or rejects with the abort reason as soon as the
   * signal aborts (the work may still be running then). Call once.
   */
  race<T>(work: Promise<T>): Promise<T> {
    const signal = this.abortable;
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
