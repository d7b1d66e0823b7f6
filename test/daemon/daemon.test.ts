/**
 * The daemon's wiring with controllable coordinators and sources: who is
 * told what, and what a reload touches. The real components are proven
 * end to end in the lab (test/e2e).
 */
import { describe, expect, it } from 'vitest';
import type { Route } from '../../src/bgp/speaker.js';
import type { Config, ServiceConfig } from '../../src/config/types.js';
import type { CoordinatorApi, PooledServerValue, ServiceSnapshot } from '../../src/coordinator/types.js';
import { Daemon } from '../../src/daemon.js';
import { EventHistory } from '../../src/events/history.js';
import { planReload } from '../../src/reload-plan.js';
import type { DesiredService } from '../../src/ipvs/diff.js';
import type { Pool, PoolEvent, PoolSource } from '../../src/pool/types.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import type { SliceOptions } from '../../src/runtime/sliced.js';
import { countTurns } from '../support/turns.js';
import { globalConfig, serviceConfig } from '../support/config-fixtures.js';

class FakeCoordinator implements CoordinatorApi {
  pooled: PooledServerValue[] = [];
  isHealthy = true;
  awaitingPool = true;
  initializing = false;
  stopped = false;
  events: PoolEvent[] = [];
  reconfigured: { monitors: boolean; policy: boolean }[] = [];
  known: ReadonlyMap<string, boolean>;

  constructor(
    public service: ServiceConfig,
    private readonly onChange: () => void,
    knownHealth?: ReadonlyMap<string, boolean>,
  ) {
    this.known = knownHealth ?? new Map();
  }

  reconfigure(service: ServiceConfig, changes: { readonly monitors: boolean; readonly policy: boolean }): void {
    this.service = service;
    this.reconfigured.push({ monitors: changes.monitors, policy: changes.policy });
  }

  health(): ReadonlyMap<string, boolean> {
    return new Map(this.pooled.map((p) => [p.host, this.isHealthy]));
  }

  onPoolEvent(event: PoolEvent): void {
    this.events.push(event);
  }

  set(pooled: PooledServerValue[], healthy = true): void {
    this.pooled = pooled;
    this.isHealthy = healthy;
    this.awaitingPool = false;
    this.onChange();
  }

  pooledServers(): readonly PooledServerValue[] {
    return this.pooled;
  }

  forEachPooled(visit: (host: string, address: string, weight: number) => void): void {
    for (const p of this.pooled) visit(p.host, p.address, p.weight);
  }

  serverCount(): number {
    return this.pooled.length;
  }

  /** The servers checked through the data path, with their marks. */
  probes: { host: string; address: string; mark: number }[] = [];
  forEachDataPathProbe(visit: (host: string, address: string, mark: number) => void): void {
    for (const p of this.probes) visit(p.host, p.address, p.mark);
  }

  ready(): boolean {
    return !this.awaitingPool && !this.initializing;
  }

  healthy(): boolean {
    return this.isHealthy;
  }

  *snapshotSteps(): Generator<unknown, ServiceSnapshot, undefined> {
    return this.snapshot();
  }

  snapshot(): ServiceSnapshot {
    const s = this.service;
    return {
      name: s.name,
      protocol: s.protocol,
      ip: s.ip,
      port: s.port,
      fwmark: s.fwmark,
      forwardMethod: s.forwardMethod,
      scheduler: s.scheduler,
      depoolThreshold: s.depoolThreshold,
      servers: this.pooled.map((p) => ({
        host: p.host,
        address: p.address,
        weight: p.weight,
        enabled: true,
        up: true,
        pooled: true,
        pooledDown: false,
        monitors: [],
        resolveError: undefined,
      })),
      canDepool: true,
      couldNotDepoolTotal: 0,
      poolError: undefined,
      awaitingPool: this.awaitingPool,
      initializing: this.initializing,
    };
  }

  /** Synchronous work a stop does as it starts (closing connections), in busy ms. */
  stopCostMs = 0;
  async stop(): Promise<void> {
    const until = performance.now() + this.stopCostMs;
    while (performance.now() < until);
    this.stopped = true;
  }
}

class FakeSource implements PoolSource {
  started = 0;
  stopped = 0;
  listener: ((event: PoolEvent) => void) | undefined;
  /** What it has delivered, as its status says. */
  pool: Pool | undefined;
  constructor(
    readonly url: string,
    readonly lastGoodPool?: Pool,
  ) {}
  start(listener: (event: PoolEvent) => void): void {
    this.started++;
    this.listener = listener;
  }
  async stop(): Promise<void> {
    this.stopped++;
  }
  status() {
    return { url: this.url, pool: this.pool, error: undefined };
  }
}

async function setup(services: ServiceConfig[], global = globalConfig({ bgp: false }), slicing?: SliceOptions) {
  const coordinators: FakeCoordinator[] = [];
  const sources: FakeSource[] = [];
  const desiredCalls: (readonly DesiredService[])[] = [];
  /** What each publish said had changed (undefined: the whole set is new). */
  const changedCalls: (readonly DesiredService[] | undefined)[] = [];
  const routeCalls: (readonly Route[])[] = [];
  const queue: (() => void)[] = [];
  const config: Config = { file: 'pybal.conf', global, services };
  // What the kernel has: services (by VIP) that a fake reconcile programmed.
  const programmed = new Set<string>();
  let wallMs = 1_700_000_000_000;
  const log = createMemoryLogger();
  const events = new EventHistory(100, () => wallMs);
  const daemon = await Daemon.create(config, {
    logger: log.logger,
    createPoolSource: (s, lastGoodPool) => {
      const source = new FakeSource(s.poolUrl, lastGoodPool);
      sources.push(source);
      return source;
    },
    createCoordinator: (s, onChange, knownHealth) => {
      const c = new FakeCoordinator(s, onChange, knownHealth);
      coordinators.push(c);
      return c;
    },
    ipvs: {
      setDesired: (d, changed) => {
        desiredCalls.push(d);
        changedCalls.push(changed);
      },
      isProgrammed: (key) => 'address' in key && programmed.has(key.address) },
    defer: (fn) => queue.push(fn),
    wallNow: () => wallMs,
    events,
    slicing,
  });
  daemon.setRouteTarget({ setAnnouncements: (r) => routeCalls.push(r) });
  const flush = (): void => {
    while (queue.length > 0) queue.shift()?.();
  };
  /** The kernel now has every service last desired (what the IPVS manager's event says). */
  const program = (): void => {
    flush();
    for (const d of desiredCalls.at(-1) ?? []) if ('address' in d.key) programmed.add(d.key.address);
    daemon.refresh();
    flush();
  };
  const setWallMs = (ms: number): void => {
    wallMs = ms;
  };
  return { daemon, coordinators, sources, desiredCalls, changedCalls, routeCalls, flush, program, programmed, config, log, setWallMs, events };
}

const server = (host: string, address: string, weight = 10): PooledServerValue => ({ host, address, weight });

describe('Daemon', () => {
  it('names a service to IPVS only once its first pool is known', async () => {
    const t = await setup([serviceConfig('text', '192.0.2.11'), serviceConfig('upload', '192.0.2.12')]);
    t.daemon.start();
    t.flush();
    expect(t.sources.map((s) => s.started)).toEqual([1, 1]);
    expect(t.desiredCalls.at(-1)).toEqual([]);

    t.coordinators[0]?.set([server('mw1', '198.51.100.1'), server('mw2', '198.51.100.2', 0)]);
    t.flush();
    const desired = t.desiredCalls.at(-1) ?? [];
    expect(desired).toHaveLength(1);
    expect(desired[0]?.destinations.map((d) => [d.address, d.weight])).toEqual([
      ['198.51.100.1', 10],
      ['198.51.100.2', 0],
    ]);
  });

  it('takes a snapshot of many small services in steps of at most one service each', async () => {
    // A service yields every 64 of its own servers: 1,000 services of 10 were one step of a scrape.
    const t = await setup(Array.from({ length: 40 }, (_, i) => serviceConfig(`s${i}`, `192.0.2.${i + 1}`)));
    const job = t.daemon.snapshotsSteps();
    let steps = 0;
    let next = job.next();
    for (; !next.done; next = job.next()) steps++;
    expect(steps).toBeGreaterThanOrEqual(40);
    expect(next.value.map((s) => s.name)).toEqual(t.daemon.snapshots().map((s) => s.name));
    expect(next.value).toHaveLength(40);
  });

  it('makes the services\' runtimes in slices, other events running between them, all there and none started once made', async () => {
    const services = Array.from({ length: 40 }, (_, i) => serviceConfig(`s${i}`, `192.0.2.${i + 1}`));
    let nowMs = 0;
    const turns = countTurns();
    // Each look at the clock ends a slice.
    const t = await setup(services, undefined, { budgetMs: 0, now: () => (nowMs += 1) });
    turns.stop();
    expect(turns.count()).toBeGreaterThan(2);
    expect(t.daemon.serviceConfigs().map((s) => s.name)).toEqual(services.map((s) => s.name));
    expect([t.coordinators.length, t.sources.length]).toEqual([40, 40]);
    expect(t.sources.every((s) => s.started === 0)).toBe(true);
    t.daemon.start();
    expect(t.sources.every((s) => s.started === 1)).toBe(true);
  });

  it('a reload makes the services it adds in slices before it changes anything, then starts them with the rest of the reload', async () => {
    const text = serviceConfig('text', '192.0.2.11');
    let nowMs = 0;
    const t = await setup([text], undefined, { budgetMs: 0, now: () => (nowMs += 1) });
    t.daemon.start();
    const more = Array.from({ length: 40 }, (_, i) => serviceConfig(`s${i}`, `192.0.2.${i + 20}`));
    const next: Config = { file: 'pybal.conf', global: t.config.global, services: [text, ...more] };
    const turns = countTurns();
    // What the daemon has a turn into the reload, while it makes them.
    let during: { names: string[]; made: number; started: number } | undefined;
    setImmediate(() => {
      during = { names: t.daemon.serviceConfigs().map((c) => c.name), made: t.sources.length - 1, started: t.sources.slice(1).filter((s) => s.started > 0).length };
    });
    await t.daemon.reload(next, planReload(t.config, next));
    turns.stop();
    expect(turns.count()).toBeGreaterThan(2);
    // Some made, none started, the old set still the daemon's.
    expect(during?.names).toEqual(['text']);
    expect(during?.made).toBeGreaterThan(0);
    expect(during?.started).toBe(0);
    expect(t.daemon.serviceConfigs().map((c) => c.name)).toEqual(['text', ...more.map((c) => c.name)]);
    expect(t.sources.map((s) => s.started)).toEqual([1, ...more.map(() => 1)]);
  });

  describe('a large pool', () => {
    // Each look at the clock ends a slice: the builds take many turns whatever this host's speed.
    const sliced = () => {
      let nowMs = 0;
      return setup([serviceConfig('big', '192.0.2.11'), serviceConfig('small', '192.0.2.12')], undefined, { budgetMs: 0, now: () => (nowMs += 1) });
    };
    const big = Array.from({ length: 5_000 }, (_, i) => server(`mw${i}`, `198.51.${100 + (i >> 8)}.${i & 255}`));
    const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
    const weights = (d: DesiredService | undefined): string[] => (d?.destinations ?? []).map((x) => `${x.address}=${x.weight}`);
    /** Turns the event loop (running what the daemon defers) until `done`. */
    const until = async (t: Awaited<ReturnType<typeof setup>>, done: () => boolean): Promise<void> => {
      for (let i = 0; i < 10_000 && !done(); i++) {
        t.flush();
        await turn();
      }
      expect(done()).toBe(true);
    };

    it('is built in slices, other events running between them, and published whole once built', async () => {
      const t = await sliced();
      t.daemon.start();
      t.coordinators[1]?.set([server('up1', '198.51.99.9')]);
      t.flush();
      const before = t.desiredCalls.length;
      const turns = countTurns();
      t.coordinators[0]?.set(big);
      t.flush();
      // The deferred publish is building: nothing is published until the whole pool is built.
      expect(t.desiredCalls.length).toBe(before);
      await until(t, () => t.desiredCalls.length > before);
      turns.stop();
      expect(turns.count()).toBeGreaterThan(10);
      expect(t.desiredCalls.length).toBe(before + 1);
      const published = t.desiredCalls.at(-1)!;
      expect(published.map((d) => ('address' in d.key ? d.key.address : ''))).toEqual(['192.0.2.11', '192.0.2.12']);
      expect(weights(published[0])).toEqual(big.map((b) => `${b.address}=10`));
      expect(weights(published[1])).toEqual(['198.51.99.9=10']);
    });

    it('publishes the servers of one moment, never a mix, and what changed meanwhile right after', async () => {
      const t = await sliced();
      t.daemon.start();
      t.coordinators[0]?.set(big);
      await until(t, () => t.desiredCalls.at(-1)?.length === 1);
      const before = t.desiredCalls.length;
      // A weight edit of the last server starts a build; halfway through it, the first server leaves
      // and the last one's weight changes again (the coordinator moves on while the daemon builds).
      const edited = big.map((b, i) => (i === big.length - 1 ? { ...b, weight: 3 } : b));
      t.coordinators[0]?.set(edited);
      t.flush();
      for (let i = 0; i < 3; i++) await turn();
      expect(t.desiredCalls.length).toBe(before);
      const later = edited.slice(1).map((b, i) => (i === edited.length - 2 ? { ...b, weight: 4 } : b));
      t.coordinators[0]?.set(later);
      await until(t, () => t.desiredCalls.length >= before + 2);
      // First the edit as it was when the build began (every server, the last at 3), then the later state.
      expect(weights(t.desiredCalls[before]![0])).toEqual(edited.map((b) => `${b.address}=${b.weight}`));
      expect(weights(t.desiredCalls[before + 1]![0])).toEqual(later.map((b) => `${b.address}=${b.weight}`));
      for (let i = 0; i < 50; i++) {
        t.flush();
        await turn();
      }
      expect(t.desiredCalls.length).toBe(before + 2);
    });

    it('gives way to a publish made at once meanwhile, and ends with the latest state', async () => {
      const t = await sliced();
      t.daemon.start();
      t.coordinators[0]?.set(big);
      t.flush();
      for (let i = 0; i < 5; i++) await turn();
      const half = big.slice(0, 2_500);
      t.coordinators[0]?.set(half);
      t.daemon.publishNow();
      expect(weights(t.desiredCalls.at(-1)?.[0])).toEqual(half.map((b) => `${b.address}=10`));
      const count = t.desiredCalls.length;
      for (let i = 0; i < 2_000; i++) {
        t.flush();
        await turn();
      }
      // The build under way gave up; what is published after is still the latest state.
      expect(t.desiredCalls.length).toBeGreaterThanOrEqual(count);
      for (const call of t.desiredCalls.slice(count - 1)) expect(weights(call[0])).toEqual(half.map((b) => `${b.address}=10`));
    });
  });

  it('coalesces a burst of changes into one publish and reuses unchanged services', async () => {
    const t = await setup([serviceConfig('text', '192.0.2.11'), serviceConfig('upload', '192.0.2.12')]);
    t.daemon.start();
    t.coordinators[0]?.set([server('mw1', '198.51.100.1')]);
    t.coordinators[1]?.set([server('up1', '198.51.100.9')]);
    t.coordinators[0]?.set([server('mw1', '198.51.100.1'), server('mw3', '198.51.100.3')]);
    const before = t.desiredCalls.length;
    t.flush();
    expect(t.desiredCalls.length - before).toBe(1);
    const first = t.desiredCalls.at(-1) ?? [];

    // Only `text` changes: `upload` is handed over as the very same object.
    t.coordinators[0]?.set([server('mw1', '198.51.100.1')]);
    t.flush();
    const second = t.desiredCalls.at(-1) ?? [];
    expect(second[1]).toBe(first[1]);
    expect(second[0]).not.toBe(first[0]);
  });

  it('stops every service, starting a slice of them per turn of the event loop (each stop closes its connections at once)', async () => {
    const t = await setup(Array.from({ length: 12 }, (_, i) => serviceConfig(`s${i}`, `192.0.2.${i + 1}`)));
    t.daemon.start();
    t.flush();
    // Each stop takes 20 ms of the loop as it starts, more than a slice: one per turn.
    for (const c of t.coordinators) c.stopCostMs = 20;
    let turns = 0;
    const stoppedAtTurn: number[] = [];
    for (const c of t.coordinators) {
      const stop = c.stop.bind(c);
      c.stop = () => {
        stoppedAtTurn.push(turns);
        return stop();
      };
    }
    let ticking = true;
    const tick = (): void => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    await t.daemon.stop();
    ticking = false;
    expect(t.coordinators.every((c) => c.stopped)).toBe(true);
    expect(t.sources.every((s) => s.stopped === 1)).toBe(true);
    expect(stoppedAtTurn).toHaveLength(12);
    // Never two stops in one turn: other events (BGP, the API) ran between them.
    for (let i = 1; i < stoppedAtTurn.length; i++) expect(stoppedAtTurn[i]!).toBeGreaterThan(stoppedAtTurn[i - 1]!);
  });

  it('tells IPVS which services a publish added or replaced, and names the whole set anew after a reload', async () => {
    const text = serviceConfig('text', '192.0.2.11');
    const t = await setup([text, serviceConfig('upload', '192.0.2.12')]);
    t.daemon.start();
    t.flush();
    expect(t.changedCalls.at(-1)).toBeUndefined(); // the first publish names the whole (empty) set
    t.coordinators[0]?.set([server('mw1', '198.51.100.1')]);
    t.flush();
    expect(t.changedCalls.at(-1)).toEqual(t.desiredCalls.at(-1));
    t.coordinators[1]?.set([server('up1', '198.51.100.9')]);
    t.flush();
    const both = t.desiredCalls.at(-1) ?? [];
    expect(both).toHaveLength(2);
    expect(t.changedCalls.at(-1)).toEqual([both[1]]);
    expect(t.changedCalls.at(-1)?.[0]).toBe(both[1]);
    // A weight edit on text: only text's new state, and the set still has both.
    t.coordinators[0]?.set([server('mw1', '198.51.100.1', 7)]);
    t.flush();
    const edited = t.desiredCalls.at(-1) ?? [];
    expect(t.changedCalls.at(-1)).toEqual([edited[0]]);
    expect(edited[0]?.destinations.map((d) => d.weight)).toEqual([7]);
    expect(edited[1]).toBe(both[1]);
    // Nothing changed: nothing to look at.
    t.daemon.refresh();
    t.flush();
    expect(t.changedCalls.at(-1)).toEqual([]);
    // A reload that removes upload: the whole set, without it, so that IPVS deletes it.
    const next: Config = { file: 'pybal.conf', global: t.config.global, services: [text] };
    await t.daemon.reload(next, planReload(t.config, next));
    t.flush();
    expect(t.changedCalls.at(-1)).toBeUndefined();
    expect((t.desiredCalls.at(-1) ?? []).map((d) => ('address' in d.key ? d.key.address : ''))).toEqual(['192.0.2.11']);
    // And after it, changes are told one by one again.
    t.coordinators[0]?.set([server('mw1', '198.51.100.1'), server('mw2', '198.51.100.2')]);
    t.flush();
    expect(t.changedCalls.at(-1)).toEqual(t.desiredCalls.at(-1));
  });

  it('announces routes as the services health allows, with withdraw-when-down', async () => {
    const global = globalConfig({ bgp: true });
    const t = await setup([serviceConfig('text', '192.0.2.11', { bgpWithdrawWhenDown: true }), serviceConfig('dns', '192.0.2.53')], global);
    t.daemon.start();
    t.coordinators[0]?.set([server('mw1', '198.51.100.1')], true);
    t.coordinators[1]?.set([server('ns1', '198.51.100.5')], false);
    t.program();
    const announced = (): string[] => (t.routeCalls.at(-1) ?? []).map((r) => JSON.stringify(r.prefix));
    expect(announced()).toHaveLength(2);
    expect(announced()[0]).toContain('192.0.2.11');
    expect(announced()[1]).toContain('192.0.2.53');

    t.coordinators[0]?.set([], false);
    t.flush();
    // text withdraws when down; dns has no withdraw-when-down and stays announced.
    expect(announced()).toHaveLength(1);
    expect(announced()[0]).toContain('192.0.2.53');
  });

  it('announces a VIP only once the kernel has its service, and a service added by a reload likewise', async () => {
    const text = serviceConfig('text', '192.0.2.11');
    const t = await setup([text], globalConfig({ bgp: true }));
    t.daemon.start();
    t.coordinators[0]?.set([server('mw1', '198.51.100.1')]);
    t.flush();
    const announced = (): string[] => (t.routeCalls.at(-1) ?? []).map((r) => r.prefix.address);
    // Handed to IPVS, not yet programmed: nothing is announced.
    expect(t.desiredCalls.at(-1)).toHaveLength(1);
    expect(announced()).toEqual([]);
    t.program();
    expect(announced()).toEqual(['192.0.2.11']);

    const next: Config = { file: 'pybal.conf', global: t.config.global, services: [text, serviceConfig('upload', '192.0.2.12')] };
    await t.daemon.reload(next, planReload(t.config, next));
    t.coordinators[1]?.set([server('up1', '198.51.100.9')]);
    t.flush();
    // upload is desired now, but not programmed: its VIP waits; text's stays.
    expect((t.desiredCalls.at(-1) ?? []).map((d) => ('address' in d.key ? d.key.address : ''))).toEqual(['192.0.2.11', '192.0.2.12']);
    expect(announced()).toEqual(['192.0.2.11']);
    t.program();
    expect(announced()).toEqual(['192.0.2.11', '192.0.2.12']);
  });

  it('allProgrammedScan says what allProgrammed says, looking again only from the first service it found not programmed', async () => {
    const services = Array.from({ length: 5 }, (_, i) => serviceConfig(`s${i}`, `192.0.2.${11 + i}`));
    const t = await setup(services);
    t.daemon.start();
    t.coordinators.forEach((c, i) => c.set([server(`mw${i}`, `198.51.100.${i + 1}`)]));
    // The publish may take more than one turn (its slices end on the clock): until every service is desired.
    for (let i = 0; i < 1_000 && (t.desiredCalls.at(-1)?.length ?? 0) < services.length; i++) {
      t.flush();
      await new Promise((r) => setImmediate(r));
    }
    expect(t.desiredCalls.at(-1)).toHaveLength(services.length);
    let looks = 0;
    const has = t.programmed.has.bind(t.programmed);
    t.programmed.has = (address: string) => {
      looks++;
      return has(address);
    };
    const scan = { from: 0 };
    const both = (): boolean => {
      const scanned = t.daemon.allProgrammedScan(scan);
      expect(scanned).toBe(t.daemon.allProgrammed());
      return scanned;
    };
    expect(both()).toBe(false);
    // The kernel takes them out of order, and one at a time.
    for (const address of ['192.0.2.15', '192.0.2.11', '192.0.2.12', '192.0.2.13']) {
      t.programmed.add(address);
      looks = 0;
      expect(t.daemon.allProgrammedScan(scan)).toBe(false);
      // Never the first services again once they were found programmed.
      expect(looks).toBeLessThanOrEqual(3);
    }
    t.programmed.add('192.0.2.14');
    expect(both()).toBe(true);
    // One taken out again before the scan's place: not missed.
    t.programmed.delete('192.0.2.11');
    expect(both()).toBe(false);
    t.programmed.add('192.0.2.11');
    expect(both()).toBe(true);
  });

  it('after an unchanged reload, every coordinator change still reaches IPVS', async () => {
    const text = serviceConfig('text', '192.0.2.11');
    const t = await setup([text]);
    t.daemon.start();
    t.coordinators[0]?.set([server('mw1', '198.51.100.1'), server('mw2', '198.51.100.2')]);
    t.flush();
    const same: Config = { file: 'pybal.conf', global: t.config.global, services: [{ ...text, source: { file: 'pybal.conf', line: 9 } }] };
    for (let i = 0; i < 3; i++) await t.daemon.reload(same, planReload(t.config, same));
    expect(t.coordinators).toHaveLength(1);
    expect(t.coordinators[0]?.reconfigured).toEqual([]);
    // A depool and a weight change after the reloads reach the desired state.
    t.coordinators[0]?.set([server('mw1', '198.51.100.1', 30)]);
    t.flush();
    expect((t.desiredCalls.at(-1) ?? [])[0]?.destinations.map((d) => [d.address, d.weight])).toEqual([['198.51.100.1', 30]]);
  });

  it('changes a service in place: same coordinator and source, new IPVS attributes, monitors restarted when they changed', async () => {
    const text = serviceConfig('text', '192.0.2.11');
    const upload = serviceConfig('upload', '192.0.2.12');
    const t = await setup([text, upload]);
    t.daemon.start();
    for (const c of t.coordinators) c.set([server(`${c.service.name}1`, '198.51.100.1')]);
    t.flush();
    const before = t.desiredCalls.at(-1) ?? [];
    const udp = { kind: 'UDP', intervalMs: 1000, icmpTimeoutMs: 20_000, rise: 1, fall: 1 } as const;
    const next: Config = {
      file: 'pybal.conf',
      global: t.config.global,
      services: [{ ...text, scheduler: 'rr' }, { ...upload, monitors: [udp], depoolThreshold: 0.7 }],
    };
    await t.daemon.reload(next, planReload(t.config, next));
    expect(t.coordinators).toHaveLength(2);
    expect(t.coordinators.map((c) => c.stopped)).toEqual([false, false]);
    expect(t.sources.map((s) => [s.started, s.stopped])).toEqual([
      [1, 0],
      [1, 0],
    ]);
    expect(t.coordinators.map((c) => c.reconfigured)).toEqual([[{ monitors: false, policy: false }], [{ monitors: true, policy: true }]]);
    t.flush();
    const after = t.desiredCalls.at(-1) ?? [];
    expect(after.map((d) => d.scheduler)).toEqual(['rr', 'wrr']);
    expect(after[0]?.destinations).toEqual(before[0]?.destinations);
    // And it keeps reacting afterwards.
    t.coordinators[1]?.set([]);
    t.flush();
    expect((t.desiredCalls.at(-1) ?? [])[1]?.destinations).toEqual([]);
  });

  it('a new pool URL swaps the source under the same coordinator; the old source is not listened to', async () => {
    const text = serviceConfig('text', '192.0.2.11');
    const t = await setup([text]);
    t.daemon.start();
    const next: Config = { file: 'pybal.conf', global: t.config.global, services: [{ ...text, poolUrl: 'file:///etc/pybal/pools/y' }] };
    await t.daemon.reload(next, planReload(t.config, next));
    expect(t.sources.map((s) => [s.url, s.started, s.stopped])).toEqual([
      ['file:///etc/pybal/pools/x', 1, 1],
      ['file:///etc/pybal/pools/y', 1, 0],
    ]);
    const pool = { type: 'pool', pool: new Map(), problems: [] } as const;
    t.sources[0]?.listener?.(pool);
    expect(t.coordinators[0]?.events).toEqual([]);
    t.sources[1]?.listener?.(pool);
    expect(t.coordinators[0]?.events).toEqual([pool]);
  });

  it('gives the source of a new pool URL the last good pool of the old one, so that its first read cannot empty the service', async () => {
    const text = serviceConfig('text', '192.0.2.11');
    const t = await setup([text]);
    t.daemon.start();
    const old: Pool = new Map([['mw1', { host: 'mw1', weight: 10, enabled: true }]]);
    if (t.sources[0]) t.sources[0].pool = old;
    const next: Config = { file: 'pybal.conf', global: t.config.global, services: [{ ...text, poolUrl: 'file:///etc/pybal/pools/empty' }] };
    await t.daemon.reload(next, planReload(t.config, next));
    expect(t.sources.map((s) => [s.url, s.lastGoodPool])).toEqual([
      ['file:///etc/pybal/pools/x', undefined],
      ['file:///etc/pybal/pools/empty', old],
    ]);
    // (test/pool/source-reporter.test.ts: a seeded source refuses an empty first read.)
  });

  it('replaces a service whose address family changed, seeding the new coordinator with the health the old one knew', async () => {
    const text = serviceConfig('text', '192.0.2.11');
    const t = await setup([text]);
    t.daemon.start();
    t.coordinators[0]?.set([server('mw1', '198.51.100.1')], false);
    t.flush();
    const before = t.desiredCalls.at(-1) ?? [];
    const next: Config = { file: 'pybal.conf', global: t.config.global, services: [serviceConfig('text', '2001:db8::11')] };
    await t.daemon.reload(next, planReload(t.config, next));
    expect(t.coordinators.map((c) => c.stopped)).toEqual([true, false]);
    expect(t.coordinators[1]?.known).toEqual(new Map([['mw1', false]]));
    t.flush();
    // The old kernel service stays desired until the new coordinator is ready.
    expect(t.desiredCalls.at(-1)?.[0]).toBe(before[0]);
    t.coordinators[1]?.set([server('mw1', '2001:db8::1')]);
    t.flush();
    expect(t.desiredCalls.at(-1)?.[0]?.key).toEqual({ family: 6, protocol: 'tcp', address: '2001:db8::11', port: 80 });
  });

  it('removes and adds services as the plan says, in the file order', async () => {
    const text = serviceConfig('text', '192.0.2.11');
    const dns = serviceConfig('dns', '192.0.2.53', { protocol: 'udp', port: 53 });
    const t = await setup([text, dns]);
    t.daemon.start();
    for (const c of t.coordinators) c.set([server(`${c.service.name}1`, '198.51.100.1')]);
    t.flush();
    const next: Config = { file: 'pybal.conf', global: t.config.global, services: [serviceConfig('ssh', '192.0.2.22', { port: 22 }), text] };
    await t.daemon.reload(next, planReload(t.config, next));
    expect(t.coordinators.map((c) => [c.service.name, c.stopped])).toEqual([
      ['text', false],
      ['dns', true],
      ['ssh', false],
    ]);
    expect(t.daemon.serviceConfigs().map((s) => s.name)).toEqual(['ssh', 'text']);
    // GET /pools lists these names: the snapshots' order, which is the file's.
    expect(t.daemon.serviceNames()).toEqual(['ssh', 'text']);
    expect(t.daemon.snapshots().map((s) => s.name)).toEqual(['ssh', 'text']);
    t.flush();
    // dns is no longer desired (the manager deletes it); ssh is not named until its pool is read.
    expect((t.desiredCalls.at(-1) ?? []).map((d) => ('port' in d.key ? d.key.port : 0))).toEqual([80]);
  });

  describe('drain (planned maintenance)', () => {
    const DRAINED = 'INFO: Drained: every VIP now announced with GRACEFUL_SHUTDOWN (65535:0) and MED 4294967295; the routers will move traffic to the other directors';
    const UNDRAINED = 'INFO: Undrained: every VIP now announced with its configured MED and communities; the routers may move traffic back to this director';
    /** Two VIPs announced, the last routes as `prefix med communities`. */
    async function announcing(global = globalConfig({ bgp: true, bgpMed: 10 })) {
      const t = await setup([serviceConfig('text', '192.0.2.11'), serviceConfig('upload', '192.0.2.12', { bgpMed: 20 })], global);
      t.daemon.start();
      for (const c of t.coordinators) c.set([server(`${c.service.name}1`, '198.51.100.1')]);
      t.program();
      const routes = (): string[] => (t.routeCalls.at(-1) ?? []).map((r) => `${r.prefix.address} ${r.med} ${r.communities.map((c) => `${c.asn}:${c.value}`).join(',')}`);
      const logged = (text: string): number => t.log.lines().filter((l) => l.includes(text)).length;
      return { ...t, routes, logged };
    }

    it('drains at run time: the same VIPs, with GRACEFUL_SHUTDOWN and the drain MED, at the next publish; undrain restores them', async () => {
      const t = await announcing();
      expect(t.routes()).toEqual(['192.0.2.11 10 ', '192.0.2.12 20 ']);
      expect(t.daemon.drainState()).toEqual({ drained: false, drainedSinceWallMs: undefined, drainMed: 4294967295 });

      t.setWallMs(1_700_000_123_000);
      const calls = t.routeCalls.length;
      expect(t.daemon.setDrained(true, 'POST /drain')).toEqual({ changed: true, state: { drained: true, drainedSinceWallMs: 1_700_000_123_000, drainMed: 4294967295 } });
      // Coalesced with whatever else changes: nothing is sent before the publish.
      expect(t.routeCalls.length).toBe(calls);
      t.flush();
      expect(t.routes()).toEqual(['192.0.2.11 4294967295 65535:0', '192.0.2.12 4294967295 65535:0']);
      expect(t.daemon.routes().map((r) => r.med)).toEqual([4294967295, 4294967295]);
      expect(t.logged(DRAINED)).toBe(1);
      expect(t.log.lines().find((l) => l.includes(DRAINED))).toMatch(/\[bgp\] INFO: Drained: .* by="POST \/drain"$/);

      // Health changes while drained keep the drain.
      t.coordinators[0]?.set([server('text2', '198.51.100.2')]);
      t.flush();
      expect(t.routes()).toEqual(['192.0.2.11 4294967295 65535:0', '192.0.2.12 4294967295 65535:0']);

      expect(t.daemon.setDrained(false, 'POST /undrain')).toEqual({ changed: true, state: { drained: false, drainedSinceWallMs: undefined, drainMed: 4294967295 } });
      t.flush();
      expect(t.routes()).toEqual(['192.0.2.11 10 ', '192.0.2.12 20 ']);
      expect(t.logged(UNDRAINED)).toBe(1);
    });

    it('asked twice, it changes nothing, keeps its first time and says so', async () => {
      const t = await announcing();
      t.daemon.setDrained(true, 'POST /drain');
      t.flush();
      const calls = t.routeCalls.length;
      t.setWallMs(1_700_000_999_000);
      expect(t.daemon.setDrained(true, 'POST /drain')).toEqual({ changed: false, state: { drained: true, drainedSinceWallMs: 1_700_000_000_000, drainMed: 4294967295 } });
      t.flush();
      expect(t.routeCalls.length).toBe(calls);
      expect(t.logged('INFO: Already drained since 2023-11-14T22:13:20.000Z: nothing to do')).toBe(1);
      expect(t.logged(DRAINED)).toBe(1);
      t.daemon.setDrained(false, 'POST /undrain');
      expect(t.daemon.setDrained(false, 'POST /undrain').changed).toBe(false);
      expect(t.logged('INFO: Not drained: nothing to do')).toBe(1);
    });

    it('starts drained with bgp-drain = yes: the first announcement already carries the drain', async () => {
      const t = await announcing(globalConfig({ bgp: true, bgpDrain: true, bgpDrainMed: 1000 }));
      expect(t.routeCalls.filter((r) => r.length > 0).every((r) => r.every((x) => x.med === 1000))).toBe(true);
      expect(t.routes()).toEqual(['192.0.2.11 1000 65535:0', '192.0.2.12 1000 65535:0']);
      expect(t.daemon.drainState()).toEqual({ drained: true, drainedSinceWallMs: 1_700_000_000_000, drainMed: 1000 });
      expect(t.log.lines().find((l) => l.includes('Drained:'))).toMatch(/MED 1000; .* by="bgp-drain in pybal.conf"$/);
    });

    it('a reload that changes only a service (its bgp-med) is announced with the new value, the global settings the same object', async () => {
      const t = await announcing();
      expect(t.routes()).toEqual(['192.0.2.11 10 ', '192.0.2.12 20 ']);
      const next: Config = { ...t.config, services: [t.config.services[0]!, { ...t.config.services[1]!, bgpMed: 30 }] };
      await t.daemon.reload(next, planReload(t.config, next));
      t.flush();
      expect(t.routes()).toEqual(['192.0.2.11 10 ', '192.0.2.12 30 ']);
      expect(t.daemon.routes().map((r) => r.med)).toEqual([10, 30]);
    });

    it('a reload that changes bgp-drain applies it; one that leaves it alone keeps a drain asked at run time', async () => {
      const t = await announcing();
      const withGlobal = (change: Partial<Config['global']>): Config => ({ ...t.config, global: { ...t.config.global, ...change } });
      // bgp-drain = yes in the file: drained.
      const drainedConf = withGlobal({ bgpDrain: true });
      await t.daemon.reload(drainedConf, planReload(t.config, drainedConf));
      t.flush();
      expect(t.routes()).toEqual(['192.0.2.11 4294967295 65535:0', '192.0.2.12 4294967295 65535:0']);
      // A new drain MED: the routes follow, still drained (the same key left alone).
      const lower = withGlobal({ bgpDrain: true, bgpDrainMed: 5000 });
      await t.daemon.reload(lower, planReload(drainedConf, lower));
      t.flush();
      expect(t.routes()).toEqual(['192.0.2.11 5000 65535:0', '192.0.2.12 5000 65535:0']);
      // bgp-drain = no again: undrained.
      await t.daemon.reload(t.config, planReload(lower, t.config));
      t.flush();
      expect(t.routes()).toEqual(['192.0.2.11 10 ', '192.0.2.12 20 ']);
      expect(t.logged('by="bgp-drain in pybal.conf"')).toBe(2);

      // Drained at run time; a reload that does not touch bgp-drain (a MED changed) keeps it.
      t.daemon.setDrained(true, 'POST /drain');
      const med = withGlobal({ bgpMed: 30 });
      await t.daemon.reload(med, planReload(t.config, med));
      t.flush();
      expect(t.daemon.drainState().drained).toBe(true);
      expect(t.routes()).toEqual(['192.0.2.11 4294967295 65535:0', '192.0.2.12 4294967295 65535:0']);
      // An unchanged reload (bgp-drain still absent, i.e. no, as before): still drained.
      await t.daemon.reload(med, planReload(med, med));
      expect(t.daemon.drainState().drained).toBe(true);
    });

    it('with BGP off, the state is kept and the log says no router is told', async () => {
      const t = await setup([serviceConfig('text', '192.0.2.11')], globalConfig({ bgp: false }));
      t.daemon.start();
      expect(t.daemon.setDrained(true, 'POST /drain').changed).toBe(true);
      expect(t.daemon.routes()).toEqual([]);
      expect(t.log.lines().filter((l) => l.includes('Drained'))).toEqual([
        expect.stringMatching(/\[bgp\] WARN: Drained, but BGP is off \(bgp = no\): no VIP is announced, so no router is told by="POST \/drain"$/),
      ]);
    });
  });

  it('stops every coordinator and source and publishes nothing after', async () => {
    const t = await setup([serviceConfig('text', '192.0.2.11')]);
    t.daemon.start();
    t.flush();
    const calls = t.desiredCalls.length;
    await t.daemon.stop();
    t.coordinators[0]?.set([server('mw1', '198.51.100.1')]);
    t.flush();
    expect(t.desiredCalls.length).toBe(calls);
    expect(t.coordinators[0]?.stopped).toBe(true);
    expect(t.sources[0]?.stopped).toBe(1);
  });

  describe('events for the history', () => {
    it('a reload is one event saying what it added, removed and changed, as the log does', async () => {
      const text = serviceConfig('text', '192.0.2.11');
      const dns = serviceConfig('dns', '192.0.2.53', { protocol: 'udp', port: 53 });
      const t = await setup([text, dns]);
      t.daemon.start();
      const next: Config = { file: 'pybal.conf', global: t.config.global, services: [serviceConfig('ssh', '192.0.2.22', { port: 22 }), { ...text, scheduler: 'sh' }] };
      await t.daemon.reload(next, planReload(t.config, next));
      expect(t.events.since(0)).toEqual([
        expect.objectContaining({
          kind: 'reload',
          level: 'info',
          message: 'Configuration reloaded: 1 added, 1 removed, 1 changed, 0 unchanged; added: ssh; removed: dns; changed: text; Service text changed: scheduler',
        }),
      ]);
    });

    it('a VIP offered to the routers is an announce event, one no longer offered a withdraw event', async () => {
      const t = await setup([serviceConfig('text', '192.0.2.11', { bgpWithdrawWhenDown: true })], globalConfig({ bgp: true }));
      t.daemon.start();
      t.coordinators[0]?.set([server('mw1', '198.51.100.1')], true);
      t.program();
      t.coordinators[0]?.set([server('mw1', '198.51.100.1')], false);
      t.flush();
      expect(t.events.since(0).map((e) => [e.kind, e.message])).toEqual([
        ['bgp-announce', 'Announcing 192.0.2.11/32'],
        ['bgp-withdraw', 'Withdrawing 192.0.2.11/32'],
      ]);
    });

    it('a drain is an event naming who asked', async () => {
      const t = await setup([serviceConfig('text', '192.0.2.11')], globalConfig({ bgp: true }));
      t.daemon.setDrained(true, 'POST /drain');
      expect(t.events.since(0)).toEqual([expect.objectContaining({ kind: 'drain', level: 'warn', message: expect.stringMatching(/^Drained: .* \(by POST \/drain\)$/) })]);
    });
  });
});

describe('Daemon: data-path probe services', () => {
  const keys = (services: readonly DesiredService[] | undefined): string[] =>
    (services ?? []).map((d) => ('fwmark' in d.key ? `fwmark ${d.key.fwmark} -> ${d.destinations[0]?.address}` : `${d.key.address}:${d.key.port}`));

  it('publishes one probe service per server holding a mark, says which are new, and names the whole set when one goes', async () => {
    const t = await setup([serviceConfig('web', '203.0.113.1', { dataPathMonitors: ['TCPConnect'] })]);
    t.daemon.start();
    t.flush();
    const c = t.coordinators[0]!;
    c.probes = [
      { host: 'rs1', address: '198.51.100.11', mark: 0x70b00000 },
      { host: 'rs2', address: '198.51.100.12', mark: 0x70b00001 },
    ];
    c.set([server('rs1', '198.51.100.11'), server('rs2', '198.51.100.12')]);
    t.flush();
    expect(keys(t.desiredCalls.at(-1))).toEqual(['203.0.113.1:80', `fwmark ${0x70b00000} -> 198.51.100.11`, `fwmark ${0x70b00001} -> 198.51.100.12`]);
    // A pool change that leaves the probes as they were: the same objects, none named as changed.
    const before = t.desiredCalls.at(-1)!.slice(1);
    c.set([server('rs1', '198.51.100.11', 5), server('rs2', '198.51.100.12')]);
    t.flush();
    expect(t.desiredCalls.at(-1)!.slice(1)).toEqual(before);
    expect(t.desiredCalls.at(-1)![1]).toBe(before[0]);
    expect(keys(t.changedCalls.at(-1))).toEqual(['203.0.113.1:80']);
    // rs2 gets a new address (its checks restart with a new mark): the old probe goes, so the whole set is named.
    c.probes = [
      { host: 'rs1', address: '198.51.100.11', mark: 0x70b00000 },
      { host: 'rs2', address: '198.51.100.22', mark: 0x70b00002 },
    ];
    c.set([server('rs1', '198.51.100.11', 5), server('rs2', '198.51.100.22')]);
    t.flush();
    expect(keys(t.desiredCalls.at(-1))).toEqual(['203.0.113.1:80', `fwmark ${0x70b00000} -> 198.51.100.11`, `fwmark ${0x70b00002} -> 198.51.100.22`]);
    expect(t.changedCalls.at(-1)).toBeUndefined();
  });

  it('takes every probe service out at shutdown and leaves the services themselves', async () => {
    const t = await setup([serviceConfig('web', '203.0.113.1', { dataPathMonitors: ['TCPConnect'] }), serviceConfig('plain', '203.0.113.2')]);
    t.daemon.start();
    t.flush();
    t.coordinators[0]!.probes = [{ host: 'rs1', address: '198.51.100.11', mark: 0x70b00000 }];
    t.coordinators[0]!.set([server('rs1', '198.51.100.11')]);
    t.coordinators[1]!.set([server('rs1', '198.51.100.11')]);
    t.flush();
    expect(keys(t.desiredCalls.at(-1))).toHaveLength(3);
    await t.daemon.stop();
    t.daemon.withdrawProbes();
    expect(keys(t.desiredCalls.at(-1))).toEqual(['203.0.113.1:80', '203.0.113.2:80']);
    expect(t.changedCalls.at(-1)).toBeUndefined();
  });
});
