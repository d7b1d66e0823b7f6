/**
 * IPVS events read from the manager's counters (pure): drift found and
 * repaired, reconciles failing, and succeeding again. The composition root
 * compares two readings of IpvsManager.stats() taken a moment apart, so the
 * manager itself needs no hook for the history; a burst between two readings
 * is one event that says how many.
 */
import type { IpvsManagerStats } from '../ipvs/manager.js';
import type { EventInput } from './history.js';

/** What the events need of the manager's counters. */
export type IpvsCounters = Pick<IpvsManagerStats, 'reconciles' | 'failedReconciles' | 'drift' | 'lastError'>;

export function ipvsChangeEvents(previous: IpvsCounters | undefined, next: IpvsCounters | undefined): EventInput[] {
  if (next === undefined) return [];
  const before: IpvsCounters = previous ?? { reconciles: 0, failedReconciles: 0, drift: 0, lastError: undefined };
  const events: EventInput[] = [];
  const drift = next.drift - before.drift;
  if (drift > 0) {
    events.push({
      kind: 'ipvs-drift',
      level: 'warn',
      message: `IPVS drift: ${drift} difference(s) between the kernel and pybal's table (changed behind pybal's back); repairing`,
    });
  }
  const failed = next.failedReconciles - before.failedReconciles;
  if (failed > 0) {
    const times = failed > 1 ? ` (${failed} times)` : '';
    events.push({ kind: 'ipvs-error', level: 'error', message: `IPVS reconcile failed${times}: ${next.lastError ?? 'unknown error'}; retrying` });
  } else if (before.lastError !== undefined && next.lastError === undefined && next.reconciles > before.reconciles) {
    events.push({ kind: 'ipvs-recovered', level: 'info', message: 'IPVS reconcile succeeded again: the kernel has what pybal wants' });
  }
  return events;
}
