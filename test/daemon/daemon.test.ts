/**
 * The daemon's wiring with controllable coordinators and sources: who is
 * told what, and what a reload touches. The real components are proven
 * end to end in the lab (test/e2e).
 */
import { describe, expect, it } from 'vitest';
import type { Route } from '../../src/bgp/speaker.js';
import type { Config, ServiceConfig } from '../../src/config/types.js';
import type { CoordinatorApi, PooledServerValue, ServiceSnapshot } from '../../src/coordinator/types.js';
import { Daemon, describeReload, isReady, sameService } from '../../src/daemon.js';
import type { DesiredService } from '../../src/ipvs/diff.js';
import type { PoolEvent, PoolSource } from '../../src/pool/types.js';
import { createSilentLogger } from '../../src/runtime/logger.js';
import { globalConfig, serviceConfig } from '../support/config-fixtures.js';

class FakeCoordinator implements CoordinatorApi {
  pooled: PooledServerValue[] = [];
  isHealthy = true;
  awaitingPool = true;
  initializing = false;
  stopped = false;
  events: PoolEvent[] = [];

  constructor(
    readonly service: ServiceConfig,
    private readonly onChange: () => void,
  ) {}

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

  healthy(): boolean {
    return this.isHealthy;
  }

  snapshot(): ServiceSnapshot {
    const s = this.service;
    return {
      name: s.name,
      protocol: s.protocol,
      ip: s.ip,
      port: s.port,
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

  async stop(): Promise<void> {
    this.stopped = true;
  }
}

class FakeSource implements PoolSource {
  started = 0;
  stopped = 0;
  constructor(readonly url: string) {}
  start(): void {
    this.started++;
  }
  async stop(): Promise<void> {
    this.stopped++;
  }
  status() {
    return { url: this.url, pool: undefined, error: undefined };
  }
}

function setup(services: ServiceConfig[], global = globalConfig({ bgp: false })) {
  const coordinators: FakeCoordinator[] = [];
  const sources: FakeSource[] = [];
  const desiredCalls: (readonly DesiredService[])[] = [];
  const routeCalls: (readonly Route[])[] = [];
  const queue: (() => void)[] = [];
  const config: Config = { file: 'pybal.conf', global, services };
  const daemon = new Daemon(config, {
    logger: createSilentLogger(),
    createPoolSource: (s) => {
      const source = new FakeSource(s.poolUrl);
      sources.push(source);
      return source;
    },
    createCoordinator: (s, onChange) => {
      const c = new FakeCoordinator(s, onChange);
      coordinators.push(c);
      return c;
    },
    ipvs: { setDesired: (d) => desiredCalls.push(d) },
    defer: (fn) => queue.push(fn),
  });
  daemon.setRouteTarget({ setAnnouncements: (r) => routeCalls.push(r) });
  const flush = (): void => {
    while (queue.length > 0) queue.shift()?.();
  };
  return { daemon, coordinators, sources, desiredCalls, routeCalls, flush, config };
}

const server = (host: string, address: string, weight = 10): PooledServerValue => ({ host, address, weight });

describe('Daemon', () => {
  it('names a service to IPVS only once its first pool is known', () => {
    const t = setup([serviceConfig('text', '192.0.2.11'), serviceConfig('upload', '192.0.2.12')]);
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

  it('coalesces a burst of changes into one publish and reuses unchanged services', () => {
    const t = setup([serviceConfig('text', '192.0.2.11'), serviceConfig('upload', '192.0.2.12')]);
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

  it('announces routes as the services health allows, with withdraw-when-down', () => {
    const global = globalConfig({ bgp: true });
    const t = setup([serviceConfig('text', '192.0.2.11', { bgpWithdrawWhenDown: true }), serviceConfig('dns', '192.0.2.53')], global);
    t.daemon.start();
    t.coordinators[0]?.set([server('mw1', '198.51.100.1')], true);
    t.coordinators[1]?.set([server('ns1', '198.51.100.5')], false);
    t.flush();
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

  it('leaves unchanged services untouched on reload and applies the rest', async () => {
    const text = serviceConfig('text', '192.0.2.11');
    const upload = serviceConfig('upload', '192.0.2.12');
    const dns = serviceConfig('dns', '192.0.2.53', { protocol: 'udp', port: 53 });
    const t = setup([text, upload, dns]);
    t.daemon.start();
    for (const c of t.coordinators) c.set([server(`${c.service.name}1`, '198.51.100.1')]);
    t.flush();
    const before = t.desiredCalls.at(-1) ?? [];

    const summary = await t.daemon.reload({
      file: 'pybal.conf',
      global: t.config.global,
      services: [
        { ...text, source: { file: 'pybal.conf', line: 40 } }, // moved in the file only
        { ...upload, depoolThreshold: 0.7 }, // changed
        serviceConfig('ssh', '192.0.2.22', { port: 22 }), // added
      ],
    });
    expect(summary).toEqual({ added: ['ssh'], removed: ['dns'], changed: ['upload'], unchanged: ['text'] });
    // text kept its coordinator and source; upload and dns were stopped; upload and ssh are new.
    expect(t.coordinators.map((c) => [c.service.name, c.stopped])).toEqual([
      ['text', false],
      ['upload', true],
      ['dns', true],
      ['upload', false],
      ['ssh', false],
    ]);
    expect(t.sources.map((s) => [s.started, s.stopped])).toEqual([
      [1, 0],
      [1, 1],
      [1, 1],
      [1, 0],
      [1, 0],
    ]);

    t.flush();
    const after = t.desiredCalls.at(-1) ?? [];
    // text: the same object (no IPVS work); upload: its last state is carried
    // until the new coordinator has a pool, so nothing is removed meanwhile;
    // dns: gone (the manager deletes it); ssh: not named until ready.
    expect(after).toHaveLength(2);
    expect(after[0]).toBe(before[0]);
    expect(after[1]).toBe(before[1]);

    t.coordinators[3]?.set([server('up2', '198.51.100.7')]);
    t.flush();
    expect((t.desiredCalls.at(-1) ?? [])[1]?.destinations.map((d) => d.address)).toEqual(['198.51.100.7']);
  });

  it('stops every coordinator and source and publishes nothing after', async () => {
    const t = setup([serviceConfig('text', '192.0.2.11')]);
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
});

describe('sameService', () => {
  it('ignores where the section sits in the file, nothing else', () => {
    const a = serviceConfig('text', '192.0.2.11');
    expect(sameService(a, { ...a, source: { file: 'other.conf', line: 99 } })).toBe(true);
    expect(sameService(a, { ...a, scheduler: 'rr' })).toBe(false);
    expect(sameService(a, { ...a, monitors: [{ kind: 'UDP', intervalMs: 1000, icmpTimeoutMs: 20_000, rise: 1, fall: 1 }] })).toBe(false);
  });
});

describe('isReady', () => {
  it('waits for the first pool and every first resolution attempt', () => {
    const base = new FakeCoordinator(serviceConfig('text', '192.0.2.11'), () => undefined).snapshot();
    expect(isReady(base)).toBe(false);
    expect(isReady({ ...base, awaitingPool: false })).toBe(true);
    expect(isReady({ ...base, awaitingPool: false, initializing: true })).toBe(false);
    expect(isReady({ ...base, awaitingPool: true, initializing: false })).toBe(false);
  });
});

describe('describeReload', () => {
  it('counts every kind and names what moved', () => {
    expect(describeReload({ added: ['ssh'], removed: [], changed: ['text', 'upload'], unchanged: ['dns'] })).toBe(
      'Configuration reloaded: 1 added, 0 removed, 2 changed, 1 unchanged; added: ssh; changed: text, upload',
    );
    expect(describeReload({ added: [], removed: [], changed: [], unchanged: ['dns'] })).toBe(
      'Configuration reloaded: 0 added, 0 removed, 0 changed, 1 unchanged',
    );
  });
});
