/**
 * A periodic job that may take at most 1/share of the time (a dump of
 * 40,000 IPVS destinations takes seconds on a slow machine, and checks, BGP
 * and the API come first): its next run comes one interval after the last,
 * or `share` times what a run costs if that is longer. `say` hears when the
 * interval starts to stretch and when it is back, once each.
 *
 * A run's time is its wall time, so a run held up by other work on the event
 * loop (a resync's dump while the first 20,000 servers are written) looks
 * longer than it costs. What a run costs is therefore the shorter of the last
 * two: one slow run does not stretch the interval, two in a row do.
 */
export class TimeShare {
  private stretched = false;
  private last: number | undefined;
  private previous: number | undefined;

  constructor(
    readonly share: number,
    private readonly say: (change: { readonly stretched: boolean; readonly costMs: number; readonly delayMs: number }) => void,
  ) {}

  /** A run ended after `ms`. */
  ran(ms: number): void {
    this.previous = this.last;
    this.last = ms;
  }

  /**
   * What a run costs: the shorter of the last two; 0 before there are two.
   * The first run alone does not count: it is the likeliest to be held up
   * (the first reading of the IPVS counters after a cold start of 1,000
   * services ran while the checks thread started its 10,000 first checks on
   * the same CPU: 5.5 to 8.7 s of wall time, and the next came 2 to 3
   * minutes later instead of 10 s).
   */
  costMs(): number {
    if (this.last === undefined || this.previous === undefined) return 0;
    return Math.min(this.last, this.previous);
  }

  /** The delay before the next run, given the interval. */
  delayMs(intervalMs: number): number {
    const costMs = this.costMs();
    const delayMs = Math.max(intervalMs, Math.ceil(costMs * this.share));
    const stretched = delayMs > intervalMs;
    if (stretched !== this.stretched) this.say({ stretched, costMs, delayMs });
    this.stretched = stretched;
    return delayMs;
  }
}
