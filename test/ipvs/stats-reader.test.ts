// The IPVS counters reader against a scripted kernel and the manual clock.
import { describe, expect, it } from 'vitest';
import { IpvsStatsReader, type IpvsCountersKernel, type StatsTarget } from '../../src/ipvs/stats-reader.js';
import { ZERO_STATS } from '../../src/ipvs/format.js';
import type { KernelDest, KernelService, ServiceKey, Stats } from '../../src/ipvs/types.js';
import { ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { dest, svc } from './fixtures.js';

const web = svc(80);
const other = svc(81);

function st(values: Partial<Record<keyof Stats, number>>): Stats {
  const out: Record<string, bigint> = { ...ZERO_STATS };
  for (const [k, v] of Object.entries(values)) out[k] = BigInt(v);
  return out as unknown as Stats;
}

/** A kernel whose counters the test sets; it records what was asked. */
class FakeKernel implements IpvsCountersKernel {
  conns = new Map<string, number>([['198.51.100.1', 0], ['198.51.100.2', 0]]);
  outPkts = new Map<string, number>([['198.51.100.1', 0], ['198.51.100.2', 0]]);
  weights = new Map<string, number>([['198.51.100.1', 1], ['198.51.100.2', 1]]);
  asked: string[] = [];
  fail = false;

  listServices(): Promise<KernelService[]> {
    this.asked.push('services');
    if (this.fail) return Promise.reject(new Error('EIO'));
    const total = [...this.conns.values()].reduce((a, b) => a + b, 0);
    return Promise.resolve([
      { ...other, rawFlags: 2, stats: st({ conns: 1 }), stats64: undefined },
      { ...web, rawFlags: 2, stats: st({ conns: 1 }), stats64: st({ conns: total, inPkts: total * 5, cps: 3 }) },
    ]);
  }

  /** When set, a dump fails after decoding this many destinations (a socket error halfway). */
  failAfter: number | undefined;
  /** Called as a dump is decoded (what the daemon may do meanwhile). */
  duringDump: (() => void) | undefined;
  /** Addresses the next dumps list a second time, at their end (the kernel's walk shifted by an addition). */
  twice: string[] = [];

  async mapDests<T>(key: ServiceKey, each: (dest: KernelDest) => T): Promise<T[]> {
    const dests = await this.listDests(key);
    for (const address of this.twice) {
      const again = dests.find((d) => d.address === address);
      if (again) dests.push({ ...again, weight: again.weight + 100 });
    }
    this.duringDump?.();
    const out: T[] = [];
    for (const d of dests) {
      if (this.failAfter !== undefined && out.length === this.failAfter) throw new Error('ENOBUFS');
      out.push(each(d));
    }
    return out;
  }

  listDests(key: ServiceKey): Promise<KernelDest[]> {
    this.asked.push(`dests ${'port' in key ? key.port : ''}`);
    return Promise.resolve(
      [...this.weights].map(([address, weight], i) => ({
        ...dest(i, { address, weight, fwdMethod: 'masq' }),
        activeConns: 1,
        inactConns: 2,
        persistConns: 0,
        stats: undefined,
        stats64: st({ conns: this.conns.get(address) ?? 0, outPkts: this.outPkts.get(address) ?? 0 }),
      })),
    );
  }
}

const targets = (): StatsTarget[] => [{ name: 'web', key: web.key, scheduler: 'wrr', persistent: false }];

function setup(over: { intervalMs?: number; waitIdle?: () => Promise<void> } = {}) {
  const clock = new ManualClock();
  const log = createMemoryLogger('info');
  const kernel = new FakeKernel();
  const reader = new IpvsStatsReader({ kernel, clock, logger: log.logger, intervalMs: over.intervalMs ?? 10_000, targets, waitIdle: over.waitIdle });
  return { clock, log, kernel, reader };
}

describe('IpvsStatsReader', () => {
  it('reads the configured services only, at start and every interval, preferring the 64-bit counters', async () => {
    const { clock, kernel, reader } = setup();
    kernel.conns.set('198.51.100.1', 7);
    reader.start();
    await clock.advanceAsync(0);
    expect(kernel.asked).toEqual(['services', 'dests 80']);
    const reading = reader.latest('web');
    expect(reading?.traffic).toMatchObject({ connections: 7, inPackets: 35, connectionsPerSec: 3, readAtWallMs: clock.wallNow() });
    expect(reading?.dests.get('198.51.100.1')?.traffic).toMatchObject({ connections: 7, activeConnections: 1, inactiveConnections: 2 });
    expect(reader.latest('other')).toBeUndefined();
    await clock.advanceAsync(10_000);
    expect(kernel.asked).toEqual(['services', 'dests 80', 'services', 'dests 80']);
    expect(reader.stats()).toMatchObject({ reads: 2, failedReads: 0 });
    await reader.stop();
  });

  it('reads less often when two readings in a row take more than 1/20 of the interval, says so once, and goes back when one is quick', async () => {
    const { clock, kernel, reader, log } = setup();
    // Each dump of the destinations takes 2 s of the clock (a table of 40,000 in a slow guest).
    let dumpMs = 2_000;
    const listDests = kernel.listDests.bind(kernel);
    kernel.listDests = (key) => new Promise((resolve) => clock.setTimeout(() => resolve(listDests(key)), dumpMs));
    reader.start();
    await clock.advanceAsync(2_000);
    expect(reader.stats().reads).toBe(1);
    // One slow reading alone (the first after a large start shares the CPU with the first checks) stretches nothing.
    await clock.advanceAsync(9_000);
    expect(reader.stats().reads).toBe(1);
    expect(log.lines().some((l) => l.includes('Reading the IPVS counters took'))).toBe(false);
    await clock.advanceAsync(3_000);
    expect(reader.stats().reads).toBe(2);
    // Two in a row: 2 s x 20 = 40 s between readings instead of 10 s.
    expect(log.lines().filter((l) => l.includes('Reading the IPVS counters took 2000 ms: reading them every 40.0 s instead of every 10 s'))).toHaveLength(1);
    dumpMs = 100;
    // The third reading, 40 s after the second ended, is quick: the next comes 10 s later.
    await clock.advanceAsync(40_200);
    expect(reader.stats().reads).toBe(3);
    expect(log.lines().some((l) => l.includes('Reading the IPVS counters every 10 s again'))).toBe(true);
    await clock.advanceAsync(9_800);
    expect(reader.stats().reads).toBe(3);
    await clock.advanceAsync(200);
    expect(reader.stats().reads).toBe(4);
    await reader.stop();
  });

  it('waits until the manager is idle before each dump', async () => {
    let release = (): void => undefined;
    let idle = false;
    const waitIdle = (): Promise<void> => (idle ? Promise.resolve() : new Promise<void>((r) => (release = r)));
    const { clock, kernel, reader } = setup({ waitIdle });
    reader.start();
    await clock.advanceAsync(0);
    expect(kernel.asked).toEqual([]);
    idle = true;
    release();
    await clock.advanceAsync(0);
    expect(kernel.asked).toEqual(['services', 'dests 80']);
    await reader.stop();
  });

  it('keeps the last reading when one fails, says so once, and says when reading works again', async () => {
    const { clock, kernel, reader, log } = setup();
    kernel.conns.set('198.51.100.1', 3);
    reader.start();
    await clock.advanceAsync(0);
    kernel.fail = true;
    await clock.advanceAsync(10_000);
    await clock.advanceAsync(10_000);
    expect(reader.latest('web')?.traffic.connections).toBe(3);
    expect(reader.stats()).toMatchObject({ reads: 1, failedReads: 2, lastError: 'EIO' });
    expect(log.lines().filter((l) => l.includes('Could not read the IPVS counters'))).toHaveLength(1);
    kernel.fail = false;
    await clock.advanceAsync(10_000);
    expect(reader.stats().lastError).toBeUndefined();
    expect(log.lines().some((l) => l.includes('IPVS counters are read again'))).toBe(true);
    await reader.stop();
  });

  it('keeps one object per destination and service, its values overwritten by each reading; one no longer listed is forgotten, a new one joins', async () => {
    const { clock, kernel, reader } = setup();
    kernel.conns.set('198.51.100.1', 5);
    reader.start();
    await clock.advanceAsync(0);
    const first = reader.latest('web')!;
    const one = first.dests.get('198.51.100.1')!;
    const serviceTraffic = first.traffic;
    expect(one.traffic).toMatchObject({ connections: 5, readAtWallMs: clock.wallNow() });
    kernel.conns.set('198.51.100.1', 9);
    kernel.weights.set('198.51.100.1', 4);
    kernel.weights.delete('198.51.100.2');
    kernel.weights.set('198.51.100.3', 1);
    await clock.advanceAsync(10_000);
    const second = reader.latest('web')!;
    expect(second.dests.get('198.51.100.1')).toBe(one);
    expect(second.traffic).toBe(serviceTraffic);
    expect(one).toMatchObject({ weight: 4, traffic: { connections: 9, activeConnections: 1, inactiveConnections: 2, readAtWallMs: clock.wallNow() } });
    expect(second.traffic).toMatchObject({ connections: 9, readAtWallMs: clock.wallNow() });
    expect([...second.dests.keys()].sort()).toEqual(['198.51.100.1', '198.51.100.3']);
    expect(second.dests.get('198.51.100.3')?.traffic).toMatchObject({ connections: 0, activeConnections: 1 });
    await reader.stop();
  });

  it('leaves the last good reading as it was when one fails halfway through a dump', async () => {
    const { clock, kernel, reader } = setup();
    kernel.conns.set('198.51.100.1', 5);
    kernel.conns.set('198.51.100.2', 6);
    reader.start();
    await clock.advanceAsync(0);
    const readAt = clock.wallNow();
    kernel.conns.set('198.51.100.1', 50);
    kernel.conns.set('198.51.100.2', 60);
    kernel.weights.set('198.51.100.9', 1);
    kernel.failAfter = 1;
    await clock.advanceAsync(10_000);
    expect(reader.stats()).toMatchObject({ reads: 1, failedReads: 1, lastError: 'ENOBUFS' });
    const kept = reader.latest('web')!;
    // The first destination was decoded before the failure: its values are not taken either.
    expect(kept.dests.get('198.51.100.1')?.traffic).toMatchObject({ connections: 5, readAtWallMs: readAt });
    expect(kept.dests.get('198.51.100.2')?.traffic).toMatchObject({ connections: 6, readAtWallMs: readAt });
    expect(kept.traffic).toMatchObject({ connections: 11, readAtWallMs: readAt });
    expect(kept.dests.has('198.51.100.9')).toBe(false);
    kernel.failAfter = undefined;
    await clock.advanceAsync(10_000);
    expect(reader.latest('web')?.dests.get('198.51.100.1')?.traffic.connections).toBe(50);
    expect(reader.latest('web')?.dests.has('198.51.100.9')).toBe(true);
    await reader.stop();
  });

  it('keeps every destination of a reading during which reading was turned off and on again', async () => {
    const { clock, kernel, reader } = setup();
    reader.start();
    await clock.advanceAsync(0);
    expect(reader.latest('web')?.dests.size).toBe(2);
    kernel.conns.set('198.51.100.2', 4);
    kernel.duringDump = () => {
      kernel.duringDump = undefined;
      reader.setInterval(0);
      reader.setInterval(10_000);
    };
    await clock.advanceAsync(10_000);
    expect([...(reader.latest('web')?.dests.keys() ?? [])].sort()).toEqual(['198.51.100.1', '198.51.100.2']);
    expect(reader.latest('web')?.dests.get('198.51.100.2')?.traffic.connections).toBe(4);
    await clock.advanceAsync(10_000);
    expect(reader.latest('web')?.dests.size).toBe(2);
    await reader.stop();
  });

  it('keeps an address the dump lists twice once, with the values listed last', async () => {
    const { clock, kernel, reader } = setup();
    kernel.twice = ['198.51.100.2', '198.51.100.7'];
    kernel.weights.set('198.51.100.7', 3);
    reader.start();
    await clock.advanceAsync(0);
    const reading = reader.latest('web')!;
    expect([...reading.dests.keys()].sort()).toEqual(['198.51.100.1', '198.51.100.2', '198.51.100.7']);
    expect(reading.dests.get('198.51.100.2')?.weight).toBe(101);
    // A new one listed twice: one object too.
    expect(reading.dests.get('198.51.100.7')?.weight).toBe(103);
    await clock.advanceAsync(10_000);
    expect(reader.latest('web')?.dests.get('198.51.100.7')?.weight).toBe(103);
    await reader.stop();
  });

  it('reads nothing at interval 0; setInterval(0) stops and forgets, a new interval starts again', async () => {
    const off = setup({ intervalMs: 0 });
    off.reader.start();
    await off.clock.advanceAsync(60_000);
    expect(off.kernel.asked).toEqual([]);
    expect(off.reader.enabled).toBe(false);

    const { clock, kernel, reader } = setup();
    reader.start();
    await clock.advanceAsync(0);
    expect(reader.latest('web')).toBeDefined();
    reader.setInterval(0);
    expect(reader.latest('web')).toBeUndefined();
    await clock.advanceAsync(60_000);
    expect(kernel.asked).toHaveLength(2);
    reader.setInterval(5_000);
    await clock.advanceAsync(0);
    await clock.advanceAsync(5_000);
    expect(kernel.asked).toHaveLength(6);
    await reader.stop();
  });

  it('flags a NAT server that gets connections and sends nothing back, after a full window, and clears it when it answers', async () => {
    const { clock, kernel, reader, log } = setup();
    reader.start();
    await clock.advanceAsync(0);
    // 5 more readings make a window of 6; each interval both servers get 10 connections, only .1 answers.
    for (let i = 1; i <= 5; i++) {
      expect(reader.quiet('web')).toBeUndefined();
      kernel.conns.set('198.51.100.1', 10 * i);
      kernel.conns.set('198.51.100.2', 10 * i);
      kernel.outPkts.set('198.51.100.1', 40 * i);
      await clock.advanceAsync(10_000);
    }
    const flagged = reader.quiet('web')?.get('198.51.100.2');
    expect(flagged).toMatchObject({ reason: 'no-replies', sinceWallMs: clock.wallNow() });
    expect(reader.quiet('web')?.has('198.51.100.1')).toBe(false);
    expect(log.lines().filter((l) => l.includes('pooled server 198.51.100.2 gets no traffic'))).toHaveLength(1);
    // Still quiet: flagged since the same time, said once.
    kernel.conns.set('198.51.100.2', 70);
    await clock.advanceAsync(10_000);
    expect(reader.quiet('web')?.get('198.51.100.2')?.sinceWallMs).toBe(flagged?.sinceWallMs);
    expect(log.lines().filter((l) => l.includes('pooled server 198.51.100.2 gets no traffic'))).toHaveLength(1);
    // It answers: cleared at the next reading.
    kernel.outPkts.set('198.51.100.2', 5);
    await clock.advanceAsync(10_000);
    expect(reader.quiet('web')).toBeUndefined();
    expect(log.lines().some((l) => l.includes('server 198.51.100.2 gets traffic again'))).toBe(true);
    await reader.stop();
  });

  it('works through 2,000 destinations in slices, giving the event loop turns', async () => {
    const clock = new ManualClock();
    const kernel = new FakeKernel();
    kernel.weights = new Map(Array.from({ length: 2000 }, (_, i) => [dest(i).address, 1]));
    let turns = 0;
    const reader = new IpvsStatsReader({
      kernel,
      clock,
      logger: createMemoryLogger('info').logger,
      intervalMs: 10_000,
      targets,
      windowReadings: 2,
      slicing: { budgetMs: 0, later: (fn) => void setImmediate(() => (turns++, fn())) },
    });
    await reader.readNow();
    await reader.readNow();
    expect(reader.latest('web')?.dests.size).toBe(2000);
    expect(turns).toBeGreaterThan(4);
  });

  it('works through 300 services of 2 destinations in slices too (a chance to end one at each service)', async () => {
    const services = Array.from({ length: 300 }, (_, i) => svc(1000 + i));
    const kernel: IpvsCountersKernel = {
      listServices: () => Promise.resolve(services.map((s) => ({ ...s, rawFlags: 2, stats: st({ conns: 1 }), stats64: undefined }))),
      mapDests: <T>(_key: ServiceKey, each: (d: KernelDest) => T) =>
        Promise.resolve(
          [0, 1].map((i) => each({ ...dest(i), activeConns: 0, inactConns: 0, persistConns: 0, stats: undefined, stats64: st({ conns: 1 }) })),
        ),
    };
    let turns = 0;
    const reader = new IpvsStatsReader({
      kernel,
      clock: new ManualClock(),
      logger: createMemoryLogger('info').logger,
      intervalMs: 10_000,
      targets: () => services.map((s, i) => ({ name: `svc${i}`, key: s.key, scheduler: 'wrr', persistent: false })),
      windowReadings: 2,
      slicing: { budgetMs: 0, later: (fn) => void setImmediate(() => (turns++, fn())) },
    });
    await reader.readNow();
    // Each slice may take more steps than the one before while they are quick (up to 1,024),
    // so 300 services give a handful of turns; without a step per service they gave none.
    expect(turns).toBeGreaterThan(4);
    await reader.readNow();
    expect(services.every((_, i) => reader.latest(`svc${i}`)?.dests.size === 2)).toBe(true);
  });

  it('gives a server pooled during the window a full window', async () => {
    const { clock, kernel, reader } = setup();
    kernel.weights.set('198.51.100.2', 0);
    reader.start();
    await clock.advanceAsync(0);
    kernel.weights.set('198.51.100.2', 1);
    for (let i = 1; i <= 5; i++) {
      kernel.conns.set('198.51.100.1', 30 * i);
      await clock.advanceAsync(10_000);
    }
    // Weight 0 at the window's first reading: not yet.
    expect(reader.quiet('web')).toBeUndefined();
    kernel.conns.set('198.51.100.1', 180);
    await clock.advanceAsync(10_000);
    expect(reader.quiet('web')?.get('198.51.100.2')?.reason).toBe('no-connections');
    await reader.stop();
  });
});
