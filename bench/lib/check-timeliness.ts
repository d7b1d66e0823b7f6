/**
 * How well a checker kept to its interval, judged only from when each real
 * server received its checks (so any two checkers are judged the same way,
 * at the servers). Pure.
 *
 * - On time: the share of server-time in the window during which the
 *   server's latest check was at most `toleranceFactor` intervals old. A
 *   checker that checks every server every interval (with jitter below the
 *   tolerance) scores 1; one that falls behind by half its interval or more
 *   loses the time each server spends stale. The checks before the window
 *   count for its beginning, so the record must start at least
 *   `toleranceFactor` intervals before the window does.
 * - Gaps: between successive checks of one server, the later one in the
 *   window, in intervals (p50, p99, worst).
 */
import { percentile } from './stats.js';

export interface CheckWindow {
  readonly startMs: number;
  /** Exclusive. */
  readonly endMs: number;
}

export interface Timeliness {
  readonly servers: number;
  /** Checks received in the window by the listed servers. */
  readonly checks: number;
  readonly checksPerSecond: number;
  /** 0..1, see above. */
  readonly onTimeShare: number;
  /** Servers that received no check in the window. */
  readonly unchecked: number;
  /** Gaps in intervals; NaN when there is none. */
  readonly gapP50: number;
  readonly gapP99: number;
  readonly gapMax: number;
}


/** Milliseconds of [window) covered by [check, check + freshMs] for some check (times sorted ascending). */
export function freshMs(times: readonly number[], window: CheckWindow, freshForMs: number): number {
  let covered = 0;
  let coveredUntil = -Infinity;
  for (const t of times) {
    const from = Math.max(t, window.startMs, coveredUntil);
    const to = Math.min(t + freshForMs, window.endMs);
    if (to > from) covered += to - from;
    coveredUntil = Math.max(coveredUntil, t + freshForMs);
  }
  return covered;
}

/**
 * Judges the checks that `servers` received (`timesByServer`: each server's
 * request times in ms, any order; servers absent got none) over `window`.
 */
export function measureTimeliness(
  timesByServer: Readonly<Record<string, readonly number[]>>,
  servers: readonly string[],
  window: CheckWindow,
  intervalMs: number,
  toleranceFactor = 1.5,
): Timeliness {
  const spanMs = window.endMs - window.startMs;
  if (!(spanMs > 0) || !(intervalMs > 0)) throw new Error('the window and the interval must be positive');
  const inWindow = (t: number): boolean => t >= window.startMs && t < window.endMs;
  let checks = 0;
  let unchecked = 0;
  let covered = 0;
  const gaps: number[] = [];
  for (const server of servers) {
    const times = [...(timesByServer[server] ?? [])].sort((a, b) => a - b);
    const n = times.filter(inWindow).length;
    checks += n;
    if (n === 0) unchecked += 1;
    covered += freshMs(times, window, toleranceFactor * intervalMs);
    for (let i = 1; i < times.length; i++) {
      if (inWindow(times[i]!)) gaps.push((times[i]! - times[i - 1]!) / intervalMs);
    }
  }
  gaps.sort((a, b) => a - b);
  return {
    servers: servers.length,
    checks,
    checksPerSecond: checks / (spanMs / 1000),
    onTimeShare: servers.length === 0 ? NaN : covered / (servers.length * spanMs),
    unchecked,
    gapP50: percentile(gaps, 50),
    gapP99: percentile(gaps, 99),
    gapMax: gaps.length === 0 ? NaN : gaps[gaps.length - 1]!,
  };
}
