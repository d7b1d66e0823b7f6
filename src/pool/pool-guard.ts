/**
 * The safety rules every pool source shares, decided before a pool is
 * delivered (docs/pools.md, "Safety rules"). Pure.
 *
 * 1. A document with no valid server, where the last delivered pool had
 *    some, is refused like an unreadable file: an emptied file, a file
 *    whose every line is invalid. The first read may be empty (nothing to
 *    lose), and so may a read after an empty pool.
 * 2. A document with skipped (invalid) entries never removes a server: the
 *    servers of the last delivered pool that it lacks are kept with their
 *    last entry, at their old place; its valid entries (additions, changes)
 *    apply; and the source is in error until it reads clean. A file cut
 *    mid-line is such a document.
 * 3. A clean document applies as it is, removals included.
 */
import { formatProblem, type Problem } from '../runtime/errors.js';
import type { PoolParseResult } from './pool-builder.js';
import type { Pool, PoolServer } from './types.js';

/** Kept servers named in a message; more are counted. */
export const MAX_NAMED_KEPT = 10;

export type PoolVerdict =
  /** Deliver as read: the document is clean (or the first, or replaces an empty pool). */
  | { readonly kind: 'apply'; readonly pool: Pool }
  /** Deliver `pool` (the document plus the kept servers), then report `message` as the source's error. */
  | { readonly kind: 'hold'; readonly pool: Pool; readonly kept: readonly string[]; readonly message: string }
  /** Deliver nothing: report `message` as the source's error; the last pool stays. */
  | { readonly kind: 'refuse'; readonly message: string };

/**
 * `next`'s servers in its order, with every server of `last` that `next`
 * lacks put back right after the server that preceded it in `last` (or first,
 * if none did). The coordinator keeps servers in pool order (what /pools and
 * the status page show, and the order in which the depool threshold forces
 * down servers), so a held server keeps its place and fixing the file later
 * moves nothing.
 */
export function mergeKeeping(last: Pool, next: Pool): { readonly pool: Pool; readonly kept: readonly string[] } {
  // Each kept server follows the server before it in `last` (kept or not);
  // one kept first in `last` leads. In one pass over each pool: a document
  // with 50,000 of 100,000 lines broken must not cost 50,000 searches.
  const follower = new Map<string, string>();
  let leader: string | undefined;
  const kept: string[] = [];
  let previous: string | undefined;
  for (const host of last.keys()) {
    if (!next.has(host)) {
      if (previous === undefined) leader = host;
      else follower.set(previous, host);
      kept.push(host);
    }
    previous = host;
  }
  const pool = new Map<string, PoolServer>();
  const place = (host: string | undefined): void => {
    for (let h = host; h !== undefined; h = follower.get(h)) pool.set(h, (next.get(h) ?? last.get(h)) as PoolServer);
  };
  place(leader);
  for (const host of next.keys()) place(host);
  return { pool, kept };
}

/** `3 line(s) skipped (first: file:12: key: message)`; etcd names keys, which have no line. */
export function describeSkipped(skipped: readonly Problem[]): string {
  const first = skipped[0];
  if (first === undefined) return 'nothing skipped';
  const noun = first.line === undefined ? 'key(s)' : 'line(s)';
  return `${skipped.length} ${noun} skipped (first: ${formatProblem(first)})`;
}

/** `b, d`, or the first MAX_NAMED_KEPT and `and 3 more (13 servers)`. */
function nameKept(hosts: readonly string[]): string {
  if (hosts.length <= MAX_NAMED_KEPT) return hosts.join(', ');
  return `${hosts.slice(0, MAX_NAMED_KEPT).join(', ')} and ${hosts.length - MAX_NAMED_KEPT} more (${hosts.length} servers)`;
}

/** Decides what to do with a read of `source`, given the last pool delivered (undefined before the first). */
export function decidePoolUpdate(last: Pool | undefined, result: PoolParseResult, source: string): PoolVerdict {
  const hadServers = last !== undefined && last.size > 0;
  if (hadServers && result.pool.size === 0) {
    return {
      kind: 'refuse',
      message:
        result.skipped.length > 0
          ? `${source}: no valid server: ${describeSkipped(result.skipped)}`
          : `${source}: lists no server; refusing to empty the pool (to take every server out, disable each one)`,
    };
  }
  if (result.skipped.length === 0) return { kind: 'apply', pool: result.pool };
  const { pool, kept } = last === undefined ? { pool: result.pool, kept: [] } : mergeKeeping(last, result.pool);
  const keeping = kept.length === 0 ? '' : `; keeping ${nameKept(kept)} from the last good pool until it reads clean`;
  return { kind: 'hold', pool, kept, message: `${source}: ${describeSkipped(result.skipped)}${keeping}` };
}
