/**
 * One kept copy of each string among many equal ones. A string kept for a
 * while (a check's reason, held until the next check) outlives the young
 * generation and is promoted; 1,000 checks a second made as many old-space
 * strings to collect, though most were equal to one kept already (the same
 * URL, the same error, a duration to the millisecond). Interned, the copy
 * a check made dies young and the kept one is shared.
 *
 * Bounded: when it holds `max` strings it starts afresh, so a stream of
 * distinct strings (a reason that names a changing figure) keeps at most
 * `max` of them alive.
 */
export class Interner {
  private readonly kept = new Map<string, string>();

  constructor(private readonly max: number) {}

  /** The kept string equal to s (s itself the first time). */
  intern(s: string): string {
    const kept = this.kept.get(s);
    if (kept !== undefined) return kept;
    if (this.kept.size >= this.max) this.kept.clear();
    this.kept.set(s, s);
    return s;
  }

  get size(): number {
    return this.kept.size;
  }
}

/**
 * `s` as a string of its own. V8 makes a substring of 13 characters or more
 * (a slice, a regular expression's match, a line cut from a file) a view into
 * the string it was cut from, and keeps that whole string alive with it: a
 * host read from a pool file kept the text of the read it came from, and
 * every edit of a pool of 20,000 lines left another text behind (1.3 MB of
 * heap each, in the daemon) for as long as one server read from it stayed. What is kept from a
 * big text goes through this. (JSON's copy keeps every code unit, lone
 * surrogates too.)
 */
export function ownCopy(s: string): string {
  return s.length < 13 ? s : (JSON.parse(JSON.stringify(s)) as string);
}
