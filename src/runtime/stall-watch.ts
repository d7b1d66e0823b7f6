/**
 * Watches the event loop for stalls: a timer that should fire every
 * `periodMs` notices when it fires late. A stall over the threshold (100 ms:
 * BGP keepalives, the API and checks all wait while the loop is held) is
 * counted, the longest is kept, and a warning says so, at most once per
 * `logEveryMs` with the count since the last line, so that an operator
 * tailing the log sees it without being flooded.
 */
import { performance } from 'node:perf_hooks';
import type { LineLogger } from './logger.js';

export const STALL_THRESHOLD_MS = 100;

export interface StallStats {
  /** Stalls over the threshold since start. */
  readonly stalls: number;
  /** The longest stall seen (ms), over the threshold or not. */
  readonly longestMs: number;
}

export interface StallWatch {
  stats(): StallStats;
  stop(): void;
}

export interface StallWatchOptions {
  readonly logger: Pick<LineLogger, 'warn'>;
  /** Whose loop it is and who waited while it was held, for the warning (default: the main thread's). */
  readonly loop?: { readonly name: string; readonly waited: string };
  readonly periodMs?: number;
  readonly thresholdMs?: number;
  readonly logEveryMs?: number;
  /** Wall time in ms; performance.now by default. */
  readonly now?: () => number;
  /** A repeating timer; setInterval by default (unref'd: it never keeps the process alive). */
  readonly every?: Every;
}

/** A repeating timer: calls fn every ms until the cancel it returns is called. */
export type Every = (fn: () => void, ms: number) => () => void;

/** setInterval, unref'd: it never keeps the process alive. */
export const everyUnref: Every = (fn, ms) => {
  const timer = setInterval(fn, ms);
  timer.unref();
  return () => clearInterval(timer);
};

export function startStallWatch(options: StallWatchOptions): StallWatch {
  const periodMs = options.periodMs ?? 20;
  const thresholdMs = options.thresholdMs ?? STALL_THRESHOLD_MS;
  const logEveryMs = options.logEveryMs ?? 10_000;
  const { name, waited } = options.loop ?? { name: 'The event loop', waited: 'the API, pool files and IPVS waited' };
  const now = options.now ?? (() => performance.now());
  const every = options.every ?? everyUnref;
  let last = now();
  let stalls = 0;
  let longestMs = 0;
  let unlogged = 0;
  let unloggedWorstMs = 0;
  let lastLogMs = Number.NEGATIVE_INFINITY;
  const cancel = every(() => {
    const at = now();
    const lateMs = at - last - periodMs;
    last = at;
    if (lateMs > longestMs) longestMs = lateMs;
    if (lateMs <= thresholdMs) return;
    stalls++;
    unlogged++;
    unloggedWorstMs = Math.max(unloggedWorstMs, lateMs);
    if (at - lastLogMs < logEveryMs) return;
    options.logger.warn(
      unlogged === 1
        ? `${name} was held for ${Math.round(lateMs)} ms (${waited})`
        : `${name} was held over ${thresholdMs} ms ${unlogged} times, at worst ${Math.round(unloggedWorstMs)} ms (${waited})`,
    );
    lastLogMs = at;
    unlogged = 0;
    unloggedWorstMs = 0;
  }, periodMs);
  return { stats: () => ({ stalls, longestMs }), stop: cancel };
}
