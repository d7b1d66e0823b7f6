import { describe, expect, it } from 'vitest';
import type { Route } from '../../src/bgp/pack.js';
import { ipvsChangeEvents, type IpvsCounters } from '../../src/events/ipvs-changes.js';
import { diffOfferedRoutes } from '../../src/events/route-changes.js';

const counters = (over: Partial<IpvsCounters> = {}): IpvsCounters => ({ reconciles: 5, failedReconciles: 0, drift: 0, lastError: undefined, ...over });

describe('ipvsChangeEvents', () => {
  it('says drift found and repaired, with how many differences', () => {
    expect(ipvsChangeEvents(counters(), counters({ drift: 3, reconciles: 6 }))).toEqual([
      expect.objectContaining({ kind: 'ipvs-drift', level: 'warn', message: expect.stringContaining('3 difference(s)') }),
    ]);
  });

  it('says a reconcile failed with its error, then that reconciles succeed again', () => {
    const failing = counters({ failedReconciles: 1, reconciles: 6, lastError: 'EPERM' });
    expect(ipvsChangeEvents(counters(), failing)).toEqual([expect.objectContaining({ kind: 'ipvs-error', level: 'error', message: 'IPVS reconcile failed: EPERM; retrying' })]);
    expect(ipvsChangeEvents(failing, counters({ failedReconciles: 3, reconciles: 8, lastError: 'EPERM' }))[0]?.message).toBe('IPVS reconcile failed (2 times): EPERM; retrying');
    expect(ipvsChangeEvents(failing, counters({ failedReconciles: 1, reconciles: 7 }))).toEqual([expect.objectContaining({ kind: 'ipvs-recovered', level: 'info' })]);
  });

  it('says nothing while nothing changed, and nothing without a manager', () => {
    expect(ipvsChangeEvents(counters(), counters({ reconciles: 9 }))).toEqual([]);
    expect(ipvsChangeEvents(counters(), undefined)).toEqual([]);
  });
});

describe('diffOfferedRoutes', () => {
  const route = (address: string): Route => ({ prefix: { family: 4, address, length: 32 }, nextHop: '192.0.2.254', asPath: [64600], med: 0, communities: [] }) as Route;

  it('names the prefixes that start and stop being offered; attribute changes are not announcements', () => {
    const first = diffOfferedRoutes(new Set(), [route('192.0.2.1'), route('192.0.2.2')]);
    expect(first.announced).toEqual(['192.0.2.1/32', '192.0.2.2/32']);
    expect(first.withdrawn).toEqual([]);
    const second = diffOfferedRoutes(first.offered, [{ ...route('192.0.2.2'), med: 50 }, route('192.0.2.3')]);
    expect(second.announced).toEqual(['192.0.2.3/32']);
    expect(second.withdrawn).toEqual(['192.0.2.1/32']);
    expect(diffOfferedRoutes(second.offered, [route('192.0.2.2'), route('192.0.2.3')])).toMatchObject({ announced: [], withdrawn: [] });
  });
});
