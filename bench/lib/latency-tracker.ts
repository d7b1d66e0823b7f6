/**
 * The latency of a client polling an API on a fixed period, one request at a
 * time. Pure: times are passed in (ms, any monotonic origin).
 *
 * A request is due every `periodMs`. Its latency runs from when it was due
 * (not from when it was sent: a late send is the client's delay, which is
 * counted too) until it answers. A request still in flight when the next ones
 * fall due holds them back: they are skipped, and the one in flight is
 * counted until it answers, so a stall of the server shows in full in the
 * worst figure. Until the server first answers (it is still starting), failed
 * requests are not counted; after that, a failure is counted like an answer
 * and also tallied.
 */
import { percentile } from './stats.js';

export interface LatencySummary {
  /** Requests counted (answered or failed after the server was up). */
  readonly count: number;
  /** Counted requests that failed (connection refused or reset, HTTP status >= 400). */
  readonly failures: number;
  /** Requests that failed before the server's first answer. */
  readonly beforeUp: number;
  /** When the server first answered, or undefined. */
  readonly firstAnswerMs: number | undefined;
  /** Due times passed over because a request was in flight. */
  readonly skipped: number;
  readonly worstMs: number;
  readonly medianMs: number;
  readonly p99Ms: number;
}

export class LatencyTracker {
  readonly periodMs: number;
  private nextDueMs: number;
  private inFlightDueMs: number | undefined;
  private readonly latencies: number[] = [];
  private failures = 0;
  private beforeUp = 0;
  private skipped = 0;
  private firstAnswerMs: number | undefined;

  constructor(periodMs: number, startMs: number) {
    if (!(periodMs > 0)) throw new Error(`the period must be positive, not ${periodMs}`);
    this.periodMs = periodMs;
    this.nextDueMs = startMs;
  }

  /** When the next request is due (while one is in flight: after it answers, at the earliest this). */
  get nextDue(): number {
    return this.nextDueMs;
  }

  get inFlight(): boolean {
    return this.inFlightDueMs !== undefined;
  }

  /** The request due now is sent; returns its due time. */
  send(): number {
    if (this.inFlightDueMs !== undefined) throw new Error('a request is already in flight');
    this.inFlightDueMs = this.nextDueMs;
    return this.nextDueMs;
  }

  /** The request in flight answered (`ok`) or failed at `nowMs`. */
  done(nowMs: number, ok: boolean): void {
    const due = this.inFlightDueMs;
    if (due === undefined) throw new Error('no request in flight');
    this.inFlightDueMs = undefined;
    if (ok && this.firstAnswerMs === undefined) this.firstAnswerMs = nowMs;
    if (this.firstAnswerMs === undefined) {
      this.beforeUp++;
    } else {
      this.latencies.push(nowMs - due);
      if (!ok) this.failures++;
    }
    // The next due time after the answer; those passed meanwhile are skipped.
    let next = due + this.periodMs;
    if (next <= nowMs) {
      const missed = Math.floor((nowMs - next) / this.periodMs) + 1;
      this.skipped += missed;
      next += missed * this.periodMs;
    }
    this.nextDueMs = next;
  }

  /** The figures at `nowMs`; a request in flight counts with its age so far. */
  summary(nowMs: number): LatencySummary {
    const xs = [...this.latencies];
    if (this.inFlightDueMs !== undefined && this.firstAnswerMs !== undefined) xs.push(nowMs - this.inFlightDueMs);
    xs.sort((a, b) => a - b);
    return {
      count: xs.length,
      failures: this.failures,
      beforeUp: this.beforeUp,
      firstAnswerMs: this.firstAnswerMs,
      skipped: this.skipped,
      worstMs: xs.length === 0 ? NaN : (xs[xs.length - 1] ?? NaN),
      medianMs: percentile(xs, 50),
      p99Ms: percentile(xs, 99),
    };
  }
}
