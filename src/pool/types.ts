/**
 * A pool: the real servers of one service as the pool source lists them.
 * Sources deliver complete pools, as PyBal's observers do (with, when they
 * know it, a hint of what changed: PoolDelta).
 */
import type { Problem } from '../runtime/errors.js';

export interface PoolServer {
  /** The hostname (or address) as written in the pool. */
  readonly host: string;
  /** IPVS weight, an integer >= 0 (default 10, PyBal's). Weight 0 drains. */
  readonly weight: number;
  /** false keeps the server monitored but out of IPVS (default true). */
  readonly enabled: boolean;
}

/** Servers keyed by host, in the order the source lists them. */
export type Pool = ReadonlyMap<string, PoolServer>;

/**
 * A hint that comes with a complete pool: it is `base` (a pool delivered
 * before) with the same hosts in the same order, and only the settings of
 * `hosts` may differ. A receiver that has `base` in force may look at those
 * hosts only; any other receiver ignores it (the pool is complete anyway).
 */
export interface PoolDelta {
  readonly base: Pool;
  readonly hosts: readonly string[];
}

/** What a source tells its listener. */
export type PoolEvent =
  /**
   * A complete pool that differs from the last one delivered; problems are
   * lines that were skipped or noted. When lines were skipped, the pool also
   * holds the servers of the last pool that the document lacks, and an
   * `error` event follows it.
   */
  | { readonly type: 'pool'; readonly pool: Pool; readonly problems: readonly Problem[]; readonly changedFrom?: PoolDelta }
  /**
   * The source cannot be read or parsed, its read was refused (it would empty
   * the pool), or it has skipped lines; the last good pool (for skipped lines:
   * the pool just sent) stays in force. Sent once per change of error, and
   * again after a `pool` event, which clears it.
   */
  | { readonly type: 'error'; readonly message: string }
  /** The source is good again after an error (its pool may be unchanged). */
  | { readonly type: 'recovered' };

export interface PoolSourceStatus {
  readonly url: string;
  /** The last good pool, or undefined before the first good read. */
  readonly pool: Pool | undefined;
  /** The current error, or undefined when the source reads fine. */
  readonly error: string | undefined;
}

/**
 * The interface every source presents: file://, http(s)://, etcd:// and etcd3://.
 * start() begins watching and must not throw; stop() releases every timer,
 * socket and watcher.
 */
export interface PoolSource {
  readonly url: string;
  start(listener: (event: PoolEvent) => void): void;
  stop(): Promise<void>;
  status(): PoolSourceStatus;
}
