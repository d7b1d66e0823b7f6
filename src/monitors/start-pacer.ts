/**
 * Spreads the first checks of many monitors started together (a cold start
 * of 10,000 servers, a pool file that adds thousands, a reload that restarts
 * every monitor) so that they do not all fire in the same instant: 2,000
 * first checks at once time out on a busy director and depool healthy
 * servers. keepalived does the same with its checkers' warm-up.
 *
 * One pacer serves the whole daemon. It hands out start slots at a steady
 * rate: a few servers start at once (a server added by hand is checked
 * straight away), a large start is spread. A monitor never waits longer
 * than its own window (its interval): once the slots run past it, the rest
 * start at a random point of the window, which spreads them as evenly as
 * the steady state will.
 */
import type { MonitorConfig } from '../config/types.js';
import type { Clock } from '../runtime/clock.js';

/** First checks per second that the pacer hands out in sequence. */
export const START_RATE_PER_SECOND = 500;
/**
 * The window of monitors without an interval (IdleConnection): none. They
 * cost nothing once connected, so a large start takes the pacer's rate however
 * long that is (20,000 connections at once, or within 10 s, hold a small
 * director's event loop for seconds), and the servers are pooled meanwhile.
 */
export const IDLE_CONNECTION_START_WINDOW_MS = Number.POSITIVE_INFINITY;

/** How long a monitor's first check may be put off: its interval, or the idle-connection window. */
export function startWindowMs(config: MonitorConfig): number {
  return 'intervalMs' in config ? config.intervalMs : IDLE_CONNECTION_START_WINDOW_MS;
}

/** Returns the delay of one monitor's first check, given how long it may wait. */
export type StartPacer = (windowMs: number) => number;

export function createStartPacer(clock: Clock, options: { readonly ratePerSecond?: number; readonly random?: () => number } = {}): StartPacer {
  const spacingMs = 1000 / (options.ratePerSecond ?? START_RATE_PER_SECOND);
  const random = options.random ?? Math.random;
  let nextFreeMs = Number.NEGATIVE_INFINITY;
  return (windowMs) => {
    const now = clock.now();
    const slotMs = Math.max(now, nextFreeMs);
    if (slotMs - now <= windowMs) {
      nextFreeMs = slotMs + spacingMs;
      return slotMs - now;
    }
    return random() * Math.max(0, windowMs);
  };
}
