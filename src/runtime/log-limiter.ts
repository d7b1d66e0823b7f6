/**
 * At most one log line per kind of event per interval, so that a peer or
 * server repeating the same mistake cannot flood the log. Pure: the caller
 * gives the time. The line that is let through says how many were held back
 * since the previous one; counters elsewhere keep the exact totals.
 */
export type LogAdmission = { readonly log: true; readonly suppressed: number } | { readonly log: false };

export class LogLimiter {
  private readonly kinds = new Map<string, { lastMs: number; suppressed: number }>();

  constructor(private readonly intervalMs: number) {}

  /** Whether to log an event of `kind` at `nowMs` (monotonic milliseconds). */
  admit(kind: string, nowMs: number): LogAdmission {
    const seen = this.kinds.get(kind);
    if (seen && nowMs - seen.lastMs < this.intervalMs) {
      seen.suppressed++;
      return { log: false };
    }
    const suppressed = seen?.suppressed ?? 0;
    this.kinds.set(kind, { lastMs: nowMs, suppressed: 0 });
    return { log: true, suppressed };
  }
}
