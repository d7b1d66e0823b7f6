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
  if (previous === undefined) {
    const enabled = [...next.values()].filter((s) => s.enabled).length;
    return [`Added ${next.size} server(s): ${enabled} enabled server(s) and ${next.size - enabled} disabled server(s)`];
  }
  const { added, removed, changed } = diffPools(previous, next);
  return [
    ...added.map((s) => `New ${state(s)} server ${s.host}, weight ${s.weight}`),
    ...changed.map(([, s]) => `Merged ${state(s)} server ${s.host}, weight ${s.weight}`),
    ...removed.map((s) => `Removing server ${s.host} (no longer found in new configuration)`),
  ];
}
