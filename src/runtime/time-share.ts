/**
 * A periodic job that may take at most 1/share of the time (a dump of
 * 40,000 IPVS destinations takes seconds on a slow machine, and checks, BGP
 * and the API come first): its next run comes one interval after the last,
 * or `share` times the last run's duration if that is longer. `say` hears
 * when the interval starts to stretch and when it is back, once each.
 */
export class TimeShare {
  private stretched = false;

  constructor(
    readonly share: number,
    private readonly say: (change: { readonly stretched: boolean; readonly lastMs: number; readonly delayMs: number }) => void,
  ) {}

  /** The delay before the next run, given the interval and how long the last run took. */
  delayMs(intervalMs: number, lastMs: number): number {
    const delayMs = Math.max(intervalMs, Math.ceil(lastMs * this.share));
    const stretched = delayMs > intervalMs;
    if (stretched !== this.stretched) this.say({ stretched, lastMs, delayMs });
    this.stretched = stretched;
    return delayMs;
  }
}
