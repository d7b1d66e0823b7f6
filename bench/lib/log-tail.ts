/**
 * Follows a daemon's log file from a point on and finds the first line that
 * matches, with the time the daemon wrote on it (its text format starts
 * `YYYY-MM-DD HH:MM:SS.mmm`, local time). The pools benchmark uses it to
 * read when the kernel acknowledged a change: the daemon logs each IPVS
 * operation once the kernel's answer is in.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';

/** The wall time (ms) of a log line in pybal's text format, or undefined. */
export function logLineTime(line: string): number | undefined {
  const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{3}) /.exec(line);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s, ms] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
  return new Date(y, mo - 1, d, h, mi, s, ms).getTime();
}

export class LogTail {
  #offset: number;
  #partial = '';

  /** Starts at the file's current end: only lines written from now on are read. */
  constructor(private readonly path: string) {
    this.#offset = statSync(path, { throwIfNoEntry: false })?.size ?? 0;
  }

  /** The new complete lines since the last call. */
  read(): string[] {
    const size = statSync(this.path, { throwIfNoEntry: false })?.size ?? 0;
    if (size <= this.#offset) return [];
    const buf = Buffer.alloc(size - this.#offset);
    const fd = openSync(this.path, 'r');
    try {
      readSync(fd, buf, 0, buf.length, this.#offset);
    } finally {
      closeSync(fd);
    }
    this.#offset = size;
    const lines = (this.#partial + buf.toString('utf8')).split('\n');
    this.#partial = lines.pop() ?? '';
    return lines;
  }

  /** Polls until a line matches (resolves with it and its time) or the deadline passes (rejects). */
  async waitFor(pattern: RegExp, timeoutMs: number, pollMs = 20): Promise<{ line: string; atMs: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const line of this.read()) {
        if (!pattern.test(line)) continue;
        const atMs = logLineTime(line);
        if (atMs !== undefined) return { line, atMs };
      }
      if (Date.now() > deadline) throw new Error(`no log line matching ${pattern} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }
}
