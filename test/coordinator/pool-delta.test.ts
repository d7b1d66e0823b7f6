// A pool that comes with a delta (PoolDelta: the pool in force with only some
// hosts changed) is applied by those hosts alone, to the same effect as the
// whole pool; a delta from another pool is ignored.
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import type { Pool, PoolEvent, PoolServer } from '../../src/pool/types.js';
import { flushAsync, ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { fakeMonitors, fakeResolver, poolEvent, serviceConfig } from './support/fakes.js';

function setup() {
  const clock = new ManualClock();
  const log = createMemoryLogger();
  const resolver = fakeResolver();
  for (let i = 1; i <= 9; i++) resolver.answers.set(`mw${i}`, [`192.0.2.${i}`]);
  const coordinator = new Coordinator(serviceConfig({ monitors: [] }), {
    clock,
    logger: log.logger,
    createMonitor: fakeMonitors().create,
    resolve: resolver.resolve,
    onChange: () => undefined,
  });
  return { coordinator, log, pooled: () => coordinator.pooledServers().map((s) => `${s.host}:${s.weight}`) };
}

/** `base` with some servers replaced (same hosts, same order), as a pool event carrying that delta. */
function edited(base: Pool, changes: Record<string, Partial<PoolServer>>, deltaBase: Pool = base): PoolEvent {
  const pool = new Map<string, PoolServer>();
  for (const [host, server] of base) pool.set(host, changes[host] === undefined ? server : { ...server, ...changes[host] });
  return { type: 'pool', pool, problems: [], changedFrom: { base: deltaBase, hosts: Object.keys(changes) } };
}

describe('Coordinator: pools with a delta', () => {
  it('applies a weight and an enabled flag changed by the delta, logs them as a whole pool would, and keeps the other servers', async () => {
    const t = setup();
    const first = poolEvent('mw1', 'mw2', 'mw3') as Extract<PoolEvent, { type: 'pool' }>;
    t.coordinator.onPoolEvent(first);
    await flushAsync();
    expect(t.pooled()).toEqual(['mw1:10', 'mw2:10', 'mw3:10']);
    const before = t.coordinator.snapshot().servers;
    t.coordinator.onPoolEvent(edited(first.pool, { mw2: { weight: 7 }, mw3: { enabled: false } }));
    await flushAsync();
    expect(t.pooled()).toEqual(['mw1:10', 'mw2:7']);
    expect(t.log.lines().join('\n')).toContain('Merged enabled server mw2, weight 7');
    expect(t.log.lines().join('\n')).toMatch(/Merged disabled server mw3/);
    // The same servers, in the same order, their state kept.
    expect(t.coordinator.snapshot().servers.map((s) => [s.host, s.address])).toEqual(before.map((s) => [s.host, s.address]));
  });

  it('ignores a delta from a pool other than the one in force, and applies the whole pool', async () => {
    const t = setup();
    const first = poolEvent('mw1', 'mw2') as Extract<PoolEvent, { type: 'pool' }>;
    t.coordinator.onPoolEvent(first);
    await flushAsync();
    const other = (poolEvent('mw1', 'mw2') as Extract<PoolEvent, { type: 'pool' }>).pool;
    // The delta names mw1 only, but mw2 changed too: a coordinator trusting it would miss mw2.
    const event = edited(first.pool, { mw1: { weight: 3 }, mw2: { weight: 4 } }, other) as Extract<PoolEvent, { type: 'pool' }>;
    t.coordinator.onPoolEvent({ ...event, changedFrom: { base: other, hosts: ['mw1'] } });
    await flushAsync();
    expect(t.pooled()).toEqual(['mw1:3', 'mw2:4']);
  });
});
