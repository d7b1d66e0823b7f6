/**
 * Collects the servers and problems of one pool document, whatever its
 * format: the last entry for a host wins (as in PyBal) and the duplicate is
 * reported naming both lines. Entries that are skipped are counted apart from
 * mere notes, since a skipped entry may be a server the operator still wants
 * (source-reporter keeps such servers). Pure.
 */
import type { Problem } from '../runtime/errors.js';
import type { EntryCheck } from './entry-rules.js';
import type { Pool, PoolDelta, PoolServer } from './types.js';

export interface PoolParseResult {
  readonly pool: Pool;
  /** Entries that were skipped, duplicates and ignored keys, by line. */
  readonly problems: readonly Problem[];
  /**
   * One problem per skipped entry (the first one found in it), in document
   * order; also in `problems`. Empty when every entry was usable.
   */
  readonly skipped: readonly Problem[];
  /** What changed since a pool read before, when the reader knows (see PoolDelta). */
  readonly changedFrom?: PoolDelta;
}

export interface PoolBuilder {
  /** An entry that cannot be read at all (syntax, not a dict...): reported and skipped. */
  skip(line: number, message: string, key?: string): void;
  /** Adds a checked entry: its server (if any) and its problems. */
  add(check: EntryCheck, line: number): void;
  /** add() of an entry known clean (a line unchanged since the last read): no problems to report, nothing allocated. */
  addClean(server: PoolServer, line: number): void;
  result(): PoolParseResult;
}

export function createPoolBuilder(file: string): PoolBuilder {
  const servers = new Map<string, PoolServer>();
  // Each host's line, for a duplicate's message: kept in two arrays (a map
  // of 100,000 hosts cost as much as the pool's own), made a map at the
  // first duplicate and kept as one after it.
  const hosts: string[] = [];
  const lines: number[] = [];
  let lineOf: Map<string, number> | undefined;
  const problems: Problem[] = [];
  const skipped: Problem[] = [];
  const problem = (line: number, message: string, key?: string): Problem => {
    const p: Problem = key === undefined ? { file, line, message } : { file, line, key, message };
    problems.push(p);
    return p;
  };
  return {
    skip(line, message, key) {
      skipped.push(problem(line, message, key));
    },
    add(check, line) {
      const reported = check.problems.map((p) => problem(p.line, p.message, p.key));
      const server = check.server;
      if (server === undefined) {
        skipped.push(reported[0] ?? problem(line, 'entry skipped'));
        return;
      }
      this.addClean(server, line);
    },
    addClean(server, line) {
      if (servers.has(server.host)) {
        if (lineOf === undefined) {
          lineOf = new Map();
          for (let i = 0; i < hosts.length; i++) lineOf.set(hosts[i]!, lines[i]!);
        }
        problem(line, `${JSON.stringify(server.host)} is also on line ${lineOf.get(server.host)}; this line wins`, 'host');
        // Keep the order of the lines: the winner takes its own place.
        servers.delete(server.host);
      }
      servers.set(server.host, server);
      if (lineOf !== undefined) {
        lineOf.set(server.host, line);
      } else {
        hosts.push(server.host);
        lines.push(line);
      }
    },
    result: () => ({ pool: servers, problems, skipped }),
  };
}

/**
 * `pool` as a PoolDelta from `base`: the same hosts in the same order, with
 * the hosts whose server object differs (a reader that reuses the objects of
 * unchanged entries makes that the changed ones); undefined when the hosts
 * or their order differ. One pass, comparing by identity.
 */
export function poolDelta(base: Pool | undefined, pool: Pool): PoolDelta | undefined {
  if (base === undefined || base.size !== pool.size) return undefined;
  const hosts: string[] = [];
  const before = base.values();
  for (const server of pool.values()) {
    const was = before.next().value as PoolServer;
    if (was.host !== server.host) return undefined;
    if (was !== server) hosts.push(server.host);
  }
  return { base, hosts };
}

/** Maps an offset in a text to its 1-based line and column. */
export function createLineIndex(text: string): (offset: number) => { line: number; column: number } {
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return (offset) => {
    let low = 0;
    let high = starts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((starts[mid] as number) <= offset) low = mid;
      else high = mid - 1;
    }
    return { line: low + 1, column: offset - (starts[low] as number) + 1 };
  };
}
