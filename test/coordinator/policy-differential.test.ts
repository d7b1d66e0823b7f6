/**
 * The coordinator answers a monitor's report in constant time, from a count
 * of up servers and a set of pooled-down ones that it keeps as servers come,
 * go, resolve, and are enabled or disabled. This compares it, over long
 * random histories, with the plain rule: decidePool over every server's
 * facts, as the coordinator did before (and as PyBal does).
 */
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { decidePool, type ServerFacts } from '../../src/coordinator/decide-pool.js';
import { flushAsync, ManualClock } from '../../src/runtime/clock.js';
import type { SliceOptions } from '../../src/runtime/sliced.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { proxyFetchConfig } from '../monitors/support/configs.js';
import { createRandom } from '../support/random.js';
import { fakeMonitors, fakeResolver, poolEvent, serviceConfig } from './support/fakes.js';

const HOSTS = Array.from({ length: 12 }, (_, i) => `mw${i + 1}`);

async function history(seed: number, threshold: number, steps: number, slicing?: SliceOptions): Promise<{ reports: number; poolChanges: number }> {
  const random = createRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const fakes = fakeMonitors();
  const resolver = fakeResolver();
  HOSTS.forEach((host, i) => resolver.answers.set(host, [`192.0.2.${i + 1}`]));
  // One host never resolves: it counts in the total, never as up. One
  // hangs in its first resolution in odd seeds: the service then stays
  // initializing, and the others' resolutions are counted without a pass.
  resolver.answers.set('mw12', 'NXDOMAIN');
  if (seed % 2 === 1) resolver.answers.set('mw11', 'hang');
  const coordinator = new Coordinator(serviceConfig({ monitors: [proxyFetchConfig()], depoolThreshold: threshold }), {
    clock: new ManualClock(),
    logger: createMemoryLogger('debug').logger,
    createMonitor: fakes.create,
    resolve: resolver.resolve,
    onChange: () => undefined,
    random: () => 0.5,
    ...(slicing ? { slicing } : {}),
  });
  // The pool: each host in or out, enabled or not.
  const inPool = new Map<string, boolean>(HOSTS.map((h) => [h, random() < 0.5]));
  for (const h of HOSTS) if (random() < 0.8) inPool.delete(h);
  const applyPool = async (): Promise<void> => {
    coordinator.onPoolEvent(poolEvent(...[...inPool].map(([host, enabled]) => `${host}:10${enabled ? '' : ':disabled'}`)));
    // Sliced: every pause is a turn of the event loop; a few dozen cover a pool this small.
    await flushAsync(slicing ? 40 : 3);
  };
  inPool.set('mw1', true);
  await applyPool();
  let reports = 0;
  let poolChanges = 0;
  for (let step = 0; step < steps; step++) {
    if (random() < 0.15) {
      const host = pick(HOSTS);
      if (!inPool.has(host)) inPool.set(host, random() < 0.7);
      else if (random() < 0.5) inPool.set(host, !inPool.get(host));
      else inPool.delete(host);
      await applyPool();
      poolChanges++;
      continue;
    }
    const live = fakes.all.filter((m) => m.started && !m.stopped);
    if (live.length === 0) continue;
    const monitor = pick(live);
    const up = random() < 0.5;
    const before = coordinator.snapshot();
    const facts: ServerFacts[] = before.servers.map((s) => ({
      host: s.host,
      enabled: s.enabled,
      ready: s.address !== undefined,
      up: s.up,
      pooled: s.pooled,
      pooledDown: s.pooledDown,
    }));
    // The rule as a pass over every server (one monitor per server here).
    const server = facts.find((f) => f.host === monitor.target.host)!;
    let expected = facts;
    let couldNotDepool = 0;
    if (!up && server.up) {
      const decision = decidePool(facts.map((f) => (f === server ? { ...f, up: false } : f)), threshold, { kind: 'down', host: server.host });
      expected = [...decision.servers];
      couldNotDepool = decision.couldNotDepool;
    } else if (up && (!server.up || monitor.reports === 0)) {
      const decision = decidePool(facts.map((f) => (f === server ? { ...f, up: true } : f)), threshold, { kind: 'up', host: server.host });
      expected = [...decision.servers];
    }
    monitor.report(up);
    reports++;
    const after = coordinator.snapshot();
    const context = `seed ${seed}, threshold ${threshold}, step ${step}: ${monitor.target.host} reports ${up ? 'up' : 'down'}`;
    expect(
      after.servers.map((s) => `${s.host} ${s.pooled ? 'pooled' : '-'}${s.pooledDown ? ' down' : ''}`),
      context,
    ).toEqual(expected.map((s) => `${s.host} ${s.pooled ? 'pooled' : '-'}${s.pooledDown ? ' down' : ''}`));
    expect(after.couldNotDepoolTotal - before.couldNotDepoolTotal, context).toBe(couldNotDepool);
  }
  await coordinator.stop();
  return { reports, poolChanges };
}

describe('constant-time report handling', () => {
  for (const threshold of [0, 0.3, 0.5, 0.7, 1]) {
    it(`decides as decidePool over the whole pool, over random histories (threshold ${threshold})`, async () => {
      let reports = 0;
      let poolChanges = 0;
      for (let seed = 1; seed <= 12; seed++) {
        const ran = await history(seed * 7919 + Math.round(threshold * 10), threshold, 150);
        reports += ran.reports;
        poolChanges += ran.poolChanges;
      }
      // The histories did exercise both kinds of step.
      expect(reports).toBeGreaterThan(1000);
      expect(poolChanges).toBeGreaterThan(150);
    });
  }
});

describe('constant-time report handling after sliced pool applications', () => {
  for (const threshold of [0.5, 0.7]) {
    it(`still decides as decidePool when every pause of a job is a turn of the event loop (threshold ${threshold})`, async () => {
      let poolChanges = 0;
      for (let seed = 1; seed <= 6; seed++) poolChanges += (await history(seed * 104729 + Math.round(threshold * 10), threshold, 120, { budgetMs: 0 })).poolChanges;
      expect(poolChanges).toBeGreaterThan(60);
    });
  }
});
