/**
 * What changed between two pools, and the log lines PyBal's users grep for.
 * Pure.
 */
import type { Pool, PoolServer } from '../pool/types.js';

export interface PoolDiff {
  readonly added: readonly PoolServer[];
  readonly removed: readonly PoolServer[];
  /** Servers whose weight or enabled flag changed: [before, after]. */
  readonly changed: readonly (readonly [PoolServer, PoolServer])[];
}

export function diffPools(previous: Pool, next: Pool): PoolDiff {
  const added: PoolServer[] = [];
  const changed: [PoolServer, PoolServer][] = [];
  for (const server of next.values()) {
    const before = previous.get(server.host);
    if (!before) added.push(server);
    else if (before.weight !== server.weight || before.enabled !== server.enabled) changed.push([before, server]);
  }
  const removed = [...previous.values()].filter((s) => !next.has(s.host));
  return { added, removed, changed };
}

const state = (s: PoolServer): string => (s.enabled ? 'enabled' : 'disabled');

/**
 * Log lines for a pool update, in PyBal's words: the first pool is
 * summarised, later ones list each server that was added, changed or removed.
 */
export function describePoolChange(previous: Pool | undefined, next: Pool): string[] {
  return describePoolDiff(diffPools(previous ?? new Map<string, PoolServer>(), next), previous === undefined ? next : undefined);
}

/** The same lines from a diff already made; `firstPool` when the diff is the first pool's (summarised). */
export function describePoolDiff({ added, removed, changed }: PoolDiff, firstPool?: Pool): string[] {
  if (firstPool !== undefined) {
    let enabled = 0;
    for (const s of firstPool.values()) if (s.enabled) enabled++;
    return [`Added ${firstPool.size} server(s): ${enabled} enabled server(s) and ${firstPool.size - enabled} disabled server(s)`];
  }
  return [
    ...added.map((s) => `New ${state(s)} server ${s.host}, weight ${s.weight}`),
    ...changed.map(([, s]) => `Merged ${state(s)} server ${s.host}, weight ${s.weight}`),
    ...removed.map((s) => `Removing server ${s.host} (no longer found in new configuration)`),
  ];
}
