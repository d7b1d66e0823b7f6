import { describe, expect, it, vi } from 'vitest';
import type { MonitorConfig, ServiceConfig } from '../../src/config/types.js';
import { Coordinator, RESOLVE_REFRESH_MS } from '../../src/coordinator/coordinator.js';
import { flushAsync, ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { idleConnectionConfig, proxyFetchConfig } from '../monitors/support/configs.js';
import { fakeMonitors, fakeResolver, poolEvent, serviceConfig } from './support/fakes.js';
import { countTurns } from '../support/turns.js';

const PROXY = proxyFetchConfig();
const IDLE = idleConnectionConfig();

function setup(service: Partial<ServiceConfig> = {}, monitors: readonly MonitorConfig[] = [PROXY]) {
  const clock = new ManualClock();
  const log = createMemoryLogger('debug');
  const fakes = fakeMonitors();
  const resolver = fakeResolver();
  for (let i = 1; i <= 9; i++) resolver.answers.set(`mw${i}`, [`192.0.2.${i}`]);
  let changes = 0;
  const coordinator = new Coordinator(serviceConfig({ monitors, ...service }), {
    clock,
    logger: log.logger.child({ service: 'text_80' }),
    createMonitor: fakes.create,
    resolve: resolver.resolve,
    onChange: () => changes++,
    random: () => 0.5, // no jitter: exact retry delays
  });
  return {
    clock,
    log,
    fakes,
    resolver,
    coordinator,
    changes: () => changes,
    pooled: () => coordinator.pooledServers().map((s) => s.host),
    server: (host: string) => {
      const s = coordinator.snapshot().servers.find((x) => x.host === host);
      if (!s) throw new Error(`no server ${host} in the snapshot`);
      return s;
    },
    /** Log lines since the last call. */
    newLines: (() => {
      let seen = 0;
      return () => {
        const lines = log.lines().filter((l) => !l.includes(' DEBUG: '));
        const fresh = lines.slice(seen);
        seen = lines.length;
        return fresh;
      };
    })(),
  };
}

describe('Coordinator startup', () => {
  it('pools enabled servers before their first results, monitors disabled ones too, in the service family', async () => {
    const t = setup();
    expect(t.coordinator.snapshot().awaitingPool).toBe(true);
    expect(t.pooled()).toEqual([]);
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2:5', 'mw3:10:disabled'));
    expect(t.coordinator.snapshot()).toMatchObject({ awaitingPool: false, initializing: true });
    await flushAsync();
    expect(t.coordinator.snapshot()).toMatchObject({ awaitingPool: false, initializing: false });
    expect(t.coordinator.pooledServers()).toEqual([
      { host: 'mw1', address: '192.0.2.1', weight: 10 },
      { host: 'mw2', address: '192.0.2.2', weight: 5 },
    ]);
    expect(t.coordinator.healthy()).toBe(true);
    // Monitors created and started at once for every server, disabled included, on the resolved address and service port.
    expect(t.fakes.all.map((m) => [m.target.host, m.target.ip, m.target.port, m.target.family, m.started])).toEqual([
      ['mw1', '192.0.2.1', 80, 4, true],
      ['mw2', '192.0.2.2', 80, 4, true],
      ['mw3', '192.0.2.3', 80, 4, true],
    ]);
    expect(t.resolver.calls.every((c) => c.family === 4)).toBe(true);
    const lines = t.log.lines();
    expect(lines).toContain('[text_80] INFO: Added 3 server(s): 2 enabled server(s) and 1 disabled server(s)');
    expect(lines).toContain('[text_80] INFO: Initialization complete');
    expect(lines.some((l) => l.includes('CRITICAL'))).toBe(false);
    expect(t.server('mw1')).toMatchObject({ enabled: true, up: true, pooled: true, pooledDown: false, monitors: [{ kind: 'ProxyFetch', up: undefined, reason: '' }] });
    expect(t.changes()).toBeGreaterThan(0);
  });

  it("checks the real servers' own port when NAT maps the VIP's port to another", async () => {
    const t = setup({ forwardMethod: 'nat', realPort: 8080 });
    t.coordinator.onPoolEvent(poolEvent('mw1'));
    await flushAsync();
    expect(t.fakes.all.map((m) => [m.target.host, m.target.port])).toEqual([['mw1', 8080]]);
  });

  it('first results that are all up confirm the server (master firstChecksCompleted); a first failure depools', async () => {
    const t = setup({}, [PROXY, IDLE]);
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3'));
    await flushAsync();
    t.newLines();
    t.fakes.report('mw1', true, 'ok', 'ProxyFetch');
    expect(t.newLines().filter((l) => l.includes('INFO'))).toEqual([]); // one monitor still has no result
    t.fakes.report('mw1', true, 'ok', 'IdleConnection');
    expect(t.newLines()).toContain('[text_80] INFO: Server mw1 (enabled/up/pooled) is up');
    const changesBefore = t.changes();
    t.fakes.report('mw2', false, 'Connection refused', 'IdleConnection');
    expect(t.changes()).toBeGreaterThan(changesBefore);
    expect(t.newLines()).toEqual([
      '[text_80] ERROR: Monitoring instance IdleConnection reports server mw2 (enabled/up/pooled) down: Connection refused',
      '[text_80] INFO: Depooling server mw2',
    ]);
    expect(t.pooled()).toEqual(['mw1', 'mw3']);
    // Still down while the other monitor is up; then up when both are.
    t.fakes.report('mw2', true, 'ok', 'ProxyFetch');
    expect(t.server('mw2')).toMatchObject({ up: false, pooled: false });
    t.fakes.report('mw2', true, 'ok', 'IdleConnection');
    expect(t.newLines()).toContain('[text_80] INFO: Server mw2 (enabled/partially up/not pooled) is up');
    expect(t.pooled()).toEqual(['mw1', 'mw2', 'mw3']);
  });

  it('a service without monitors has its servers up and pooled (PyBal would call them down)', async () => {
    const t = setup({}, []);
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2'));
    await flushAsync();
    expect(t.pooled()).toEqual(['mw1', 'mw2']);
    expect(t.coordinator.healthy()).toBe(true);
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2:3'));
    expect(t.coordinator.pooledServers()[1]).toEqual({ host: 'mw2', address: '192.0.2.2', weight: 3 });
  });
});

describe('Coordinator depool threshold', () => {
  it('keeps half pooled with all failing, shows pooled-down, counts, then drains them as others recover', async () => {
    const t = setup();
    const hosts = ['mw1', 'mw2', 'mw3', 'mw4'];
    t.coordinator.onPoolEvent(poolEvent(...hosts));
    await flushAsync();
    t.fakes.reportAll(hosts, false, 'HTTP 503');
    expect(t.pooled()).toEqual(['mw3', 'mw4']);
    const snap = t.coordinator.snapshot();
    expect(snap.servers.map((s) => [s.host, s.up, s.pooled, s.pooledDown])).toEqual([
      ['mw1', false, false, false],
      ['mw2', false, false, false],
      ['mw3', false, true, true],
      ['mw4', false, true, true],
    ]);
    expect(snap.couldNotDepoolTotal).toBe(2);
    expect(snap.canDepool).toBe(false);
    expect(t.coordinator.healthy()).toBe(false);
    expect(t.log.lines()).toContain('[text_80] ERROR: Could not depool server mw3 because of too many down!');
    expect(t.log.lines()).toContain('[text_80] ERROR: Monitoring instance ProxyFetch reports server mw4 (enabled/up/pooled) down: HTTP 503');

    t.newLines();
    t.fakes.report('mw1', true);
    expect(t.pooled()).toEqual(['mw1', 'mw3', 'mw4']); // 1 up of 4 < 2: nothing drained yet
    expect(t.coordinator.healthy()).toBe(true);
    t.fakes.report('mw2', true);
    expect(t.pooled()).toEqual(['mw1', 'mw2']);
    expect(t.newLines()).toEqual([
      '[text_80] INFO: Server mw1 (enabled/partially up/not pooled) is up',
      '[text_80] INFO: Repooling server mw1',
      '[text_80] INFO: Server mw2 (enabled/partially up/not pooled) is up',
      '[text_80] INFO: Repooling server mw2',
      '[text_80] INFO: Depooling previously pooled but down server mw3',
      '[text_80] INFO: Depooling previously pooled but down server mw4',
    ]);
    expect(t.coordinator.snapshot().servers.some((s) => s.pooledDown)).toBe(false);

    // A pooled-down server coming back is left pooled.
    t.fakes.reportAll(['mw1', 'mw2'], false);
    expect(t.pooled()).toEqual(['mw1', 'mw2']);
    expect(t.coordinator.snapshot().couldNotDepoolTotal).toBe(4);
    t.newLines();
    t.fakes.report('mw1', true);
    expect(t.newLines()).toEqual([
      '[text_80] INFO: Server mw1 (enabled/partially up/pooled) is up',
      '[text_80] INFO: Leaving previously pooled but down server mw1 pooled',
    ]);
    expect(t.server('mw1')).toMatchObject({ pooled: true, pooledDown: false });
    expect(t.server('mw2')).toMatchObject({ pooled: true, pooledDown: true });
  });

  it('a pool change can never leave fewer pooled than the rule demands: disabling forces down servers in', async () => {
    const t = setup();
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3', 'mw4'));
    await flushAsync();
    t.fakes.reportAll(['mw3', 'mw4'], false);
    expect(t.pooled()).toEqual(['mw1', 'mw2']);
    t.newLines();
    t.coordinator.onPoolEvent(poolEvent('mw1:10:disabled', 'mw2', 'mw3', 'mw4'));
    expect(t.pooled()).toEqual(['mw2', 'mw3']);
    expect(t.server('mw3')).toMatchObject({ pooled: true, pooledDown: true });
    expect(t.newLines()).toEqual([
      '[text_80] INFO: Merged disabled server mw1, weight 10',
      '[text_80] INFO: Depooling disabled server mw1',
      '[text_80] WARN: Forcing mw3 to be pooled to meet depool threshold',
    ]);
    // Disabled monitors keep running.
    expect(t.fakes.live('mw1')).toHaveLength(1);
    t.coordinator.onPoolEvent(poolEvent('mw1:10:disabled', 'mw2:10:disabled', 'mw3:10:disabled', 'mw4:10:disabled'));
    expect(t.pooled()).toEqual([]);
    expect(t.log.lines()).toContain('[text_80] CRITICAL: Could not ensure depool threshold; insufficient enabled & ready servers.');
  });
});

describe('Coordinator pool changes', () => {
  it('disable keeps monitoring and leaves IPVS; re-enable of a healthy server repools; remove forgets; add monitors and pools', async () => {
    const t = setup();
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3'));
    await flushAsync();
    t.fakes.reportAll(['mw1', 'mw2', 'mw3'], true);
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2:10:disabled', 'mw3'));
    expect(t.pooled()).toEqual(['mw1', 'mw3']);
    expect(t.server('mw2')).toMatchObject({ enabled: false, up: true, pooled: false });
    expect(t.fakes.live('mw2')).toHaveLength(1);
    // §10.1: PyBal master's assertion would leave it unpooled forever.
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3'));
    expect(t.pooled()).toEqual(['mw1', 'mw2', 'mw3']);

    const mw3 = t.fakes.live('mw3')[0]!;
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw4'));
    expect(mw3.stopped).toBe(true);
    expect(t.coordinator.snapshot().servers.map((s) => s.host)).toEqual(['mw1', 'mw2', 'mw4']);
    expect(t.log.lines()).toContain('[text_80] INFO: Removing server mw3 (no longer found in new configuration)');
    expect(t.log.lines()).toContain('[text_80] INFO: New enabled server mw4, weight 10');
    mw3.report(false); // a late report from a forgotten server's monitor is ignored
    await flushAsync();
    expect(t.pooled()).toEqual(['mw1', 'mw2', 'mw4']);
    expect(t.fakes.live('mw4')).toHaveLength(1);
    t.fakes.report('mw4', false);
    expect(t.pooled()).toEqual(['mw1', 'mw2']);
  });

  it('§10.1: an update before any first result depools nothing', async () => {
    const t = setup();
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2'));
    await flushAsync();
    t.coordinator.onPoolEvent(poolEvent('mw1:20', 'mw2'));
    expect(t.coordinator.pooledServers()).toEqual([
      { host: 'mw1', address: '192.0.2.1', weight: 20 },
      { host: 'mw2', address: '192.0.2.2', weight: 10 },
    ]);
  });

  it('weight 0 keeps the server in IPVS with weight 0 (drain)', async () => {
    const t = setup();
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2'));
    await flushAsync();
    t.coordinator.onPoolEvent(poolEvent('mw1:0', 'mw2'));
    expect(t.coordinator.pooledServers()).toContainEqual({ host: 'mw1', address: '192.0.2.1', weight: 0 });
    expect(t.log.lines()).toContain('[text_80] INFO: Merged enabled server mw1, weight 0');
  });

  it('a pool source error is shown while the last pool stays in force', async () => {
    const t = setup();
    t.coordinator.onPoolEvent(poolEvent('mw1'));
    await flushAsync();
    t.coordinator.onPoolEvent({ type: 'error', message: 'pool file missing' });
    expect(t.coordinator.snapshot().poolError).toBe('pool file missing');
    expect(t.pooled()).toEqual(['mw1']);
    t.coordinator.onPoolEvent({ type: 'recovered' });
    expect(t.coordinator.snapshot().poolError).toBeUndefined();
  });
});

describe('Coordinator resolution', () => {
  it('a failed resolution is retried with doubling backoff, and the server is monitored and pooled once it resolves', async () => {
    const t = setup();
    t.resolver.answers.set('new1', 'ENOTFOUND new1');
    t.coordinator.onPoolEvent(poolEvent('mw1', 'new1'));
    await flushAsync();
    expect(t.pooled()).toEqual(['mw1']);
    expect(t.server('new1')).toMatchObject({ address: undefined, resolveError: 'ENOTFOUND new1', pooled: false, monitors: [] });
    // A failed first attempt ends initialization: the daemon may publish the service without it.
    expect(t.coordinator.snapshot().initializing).toBe(false);
    expect(t.log.lines()).toContain('[text_80] ERROR: Initialization failed for server new1: ENOTFOUND new1 (retrying in 1.0 s)');
    expect(t.fakes.live('new1')).toEqual([]);

    await t.clock.advanceAsync(999);
    expect(t.resolver.calls.filter((c) => c.host === 'new1')).toHaveLength(1);
    await t.clock.advanceAsync(1);
    expect(t.resolver.calls.filter((c) => c.host === 'new1')).toHaveLength(2);
    expect(t.log.lines()).toContain('[text_80] ERROR: Initialization failed for server new1: ENOTFOUND new1 (retrying in 2.0 s)');

    t.resolver.answers.set('new1', ['192.0.2.77']);
    await t.clock.advanceAsync(2000);
    expect(t.coordinator.pooledServers()).toContainEqual({ host: 'new1', address: '192.0.2.77', weight: 10 });
    expect(t.server('new1').resolveError).toBeUndefined();
    expect(t.fakes.live('new1').map((m) => m.target.ip)).toEqual(['192.0.2.77']);
  });

  it('a changed address is followed: monitors restart on it and the pool shows it', async () => {
    const t = setup();
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2'));
    await flushAsync();
    t.fakes.reportAll(['mw1', 'mw2'], true);
    const old = t.fakes.live('mw1')[0]!;
    // Another address that still includes the current one: kept.
    t.resolver.answers.set('mw1', ['192.0.2.50', '192.0.2.1']);
    await t.clock.advanceAsync(RESOLVE_REFRESH_MS);
    expect(old.stopped).toBe(false);
    t.resolver.answers.set('mw1', ['192.0.2.51']);
    await t.clock.advanceAsync(RESOLVE_REFRESH_MS);
    expect(old.stopped).toBe(true);
    expect(t.fakes.live('mw1').map((m) => m.target.ip)).toEqual(['192.0.2.51']);
    expect(t.coordinator.pooledServers()).toContainEqual({ host: 'mw1', address: '192.0.2.51', weight: 10 });
    expect(t.log.lines()).toContain('[text_80] INFO: Server mw1 address changed from 192.0.2.1 to 192.0.2.51; restarting its monitors');
    // A failed re-resolution keeps the address.
    t.resolver.answers.set('mw1', 'SERVFAIL');
    await t.clock.advanceAsync(RESOLVE_REFRESH_MS);
    expect(t.server('mw1')).toMatchObject({ address: '192.0.2.51', pooled: true, resolveError: 'SERVFAIL' });
    await t.clock.advanceAsync(RESOLVE_REFRESH_MS);
    const warnings = t.log.lines().filter((l) => l.includes('Could not resolve server mw1 again'));
    expect(warnings).toEqual(['[text_80] WARN: Could not resolve server mw1 again: SERVFAIL; keeping 192.0.2.51']);
    expect(t.resolver.calls.filter((c) => c.host === 'mw1')).toHaveLength(5);
    t.resolver.answers.set('mw1', ['192.0.2.51']);
    await t.clock.advanceAsync(RESOLVE_REFRESH_MS);
    expect(t.server('mw1').resolveError).toBeUndefined();
  });

  it('an empty answer or a resolver that throws is a failed resolution, not a crash', async () => {
    const t = setup();
    t.resolver.answers.set('empty', []);
    t.coordinator.onPoolEvent(poolEvent('mw1', 'empty'));
    await flushAsync();
    expect(t.log.lines()).toContain('[text_80] ERROR: Initialization failed for server empty: no IPv4 address for empty (retrying in 1.0 s)');
    const throwing = new Coordinator(serviceConfig(), {
      clock: t.clock,
      logger: t.log.logger.child({ service: 'throwing' }),
      createMonitor: t.fakes.create,
      resolve: () => {
        throw new Error('resolver bug');
      },
      onChange: () => undefined,
      random: () => 0.5,
    });
    throwing.onPoolEvent(poolEvent('mw1'));
    await flushAsync();
    expect(throwing.snapshot().servers[0]).toMatchObject({ resolveError: 'resolver bug', pooled: false });
    await throwing.stop();
    await t.coordinator.stop();
    expect(t.clock.pendingCount()).toBe(0);
  });

  it('IPv6 services resolve in family 6', async () => {
    const t = setup({ ip: '2001:db8::80', family: 6 });
    t.resolver.answers.set('mw1', ['2001:db8::1']);
    t.coordinator.onPoolEvent(poolEvent('mw1'));
    await flushAsync();
    expect(t.resolver.calls).toEqual([{ host: 'mw1', family: 6 }]);
    expect(t.fakes.live('mw1')[0]?.target).toMatchObject({ ip: '2001:db8::1', family: 6 });
  });

  it('a monitor that cannot be created counts as down and does not crash the coordinator', async () => {
    const t = setup();
    const failing = new Coordinator(serviceConfig({ monitors: [PROXY] }), {
      clock: t.clock,
      logger: t.log.logger.child({ service: 'broken' }),
      createMonitor: () => {
        throw new Error('bad url');
      },
      resolve: t.resolver.resolve,
      onChange: () => undefined,
    });
    failing.onPoolEvent(poolEvent('mw1', 'mw2'));
    await flushAsync();
    expect(failing.snapshot().servers.map((s) => [s.host, s.up, s.pooled, s.monitors[0]?.reason])).toEqual([
      ['mw1', false, true, 'cannot start ProxyFetch: bad url'],
      ['mw2', false, false, 'cannot start ProxyFetch: bad url'],
    ]);
    expect(failing.snapshot().servers[0]?.pooledDown).toBe(true); // forced in by the threshold (1 of 2 at .5)
    expect(t.log.lines()).toContain('[broken] ERROR: Monitoring instance ProxyFetch for server mw2 cannot start ProxyFetch: bad url');
    expect(failing.healthy()).toBe(false);
    await failing.stop();
  });
});

describe('Coordinator stop', () => {
  it('stops every monitor, aborts resolutions, cancels timers and ignores later events', async () => {
    const t = setup();
    t.resolver.answers.set('slow', 'hang');
    t.resolver.answers.set('bad', 'NXDOMAIN');
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'slow', 'bad'));
    await flushAsync();
    expect(t.clock.pendingCount()).toBeGreaterThan(0);
    const monitors = [...t.fakes.all];
    await t.coordinator.stop();
    expect(monitors.every((m) => m.stopped)).toBe(true);
    expect(t.resolver.aborted).toBe(1);
    expect(t.clock.pendingCount()).toBe(0);
    const before = t.changes();
    monitors[0]!.report(false);
    t.coordinator.onPoolEvent(poolEvent('mw3'));
    await flushAsync();
    expect(t.changes()).toBe(before);
    expect(t.fakes.all).toHaveLength(monitors.length);
  });
});

describe('Coordinator reconfigured by a reload', () => {
  it('keeps a known-down server out of the pool when its monitors change, until every new monitor says up', async () => {
    const t = setup({ depoolThreshold: 0.5 }, [PROXY]);
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3', 'mw4'));
    await flushAsync();
    t.fakes.reportAll(['mw1', 'mw2', 'mw3', 'mw4'], true);
    t.fakes.report('mw2', false, 'Connection refused');
    expect(t.pooled()).toEqual(['mw1', 'mw3', 'mw4']);
    const before = t.fakes.all.length;

    const faster = { ...PROXY, intervalMs: 1000 };
    t.coordinator.reconfigure({ ...t.coordinator.service, monitors: [faster, IDLE] }, { monitors: true, policy: false });
    // New monitors for every server, on the new settings; the old ones stopped.
    expect(t.fakes.all.slice(0, before).every((m) => m.stopped)).toBe(true);
    expect(t.fakes.all.slice(before).map((m) => [m.target.host, m.config])).toEqual(
      ['mw1', 'mw2', 'mw3', 'mw4'].flatMap((h) => [[h, faster], [h, IDLE]]),
    );
    // mw2 is still down and not pooled: a reload never pools a known-down server again.
    expect(t.pooled()).toEqual(['mw1', 'mw3', 'mw4']);
    expect(t.server('mw2')).toMatchObject({ up: false, pooled: false });
    // One new monitor up is not enough for a held-down server...
    t.fakes.report('mw2', true, 'ok', 'ProxyFetch');
    expect(t.pooled()).toEqual(['mw1', 'mw3', 'mw4']);
    // ...every one is.
    t.fakes.report('mw2', true, 'ok', 'IdleConnection');
    expect(t.pooled()).toEqual(['mw1', 'mw2', 'mw3', 'mw4']);
    // Up servers stayed pooled throughout, and still leave when a new monitor fails.
    t.fakes.report('mw3', false, 'timeout', 'IdleConnection');
    expect(t.pooled()).toEqual(['mw1', 'mw2', 'mw4']);
  });

  it('applies a new depool threshold at once, and keeps servers and monitors when only other keys changed', async () => {
    const t = setup({ depoolThreshold: 0.5 }, [PROXY]);
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3', 'mw4'));
    await flushAsync();
    t.fakes.reportAll(['mw1', 'mw2', 'mw3', 'mw4'], true);
    t.fakes.report('mw1', false);
    t.fakes.report('mw2', false);
    t.fakes.report('mw3', false);
    // Two must stay pooled under 0.5: mw3 is pooled down.
    expect(t.pooled()).toEqual(['mw3', 'mw4']);
    const monitors = t.fakes.all.length;
    t.coordinator.reconfigure({ ...t.coordinator.service, depoolThreshold: 1, scheduler: 'rr' }, { monitors: false, policy: true });
    expect(t.fakes.all).toHaveLength(monitors);
    expect(t.pooled()).toEqual(['mw1', 'mw2', 'mw3', 'mw4']);
    expect(t.coordinator.service.scheduler).toBe('rr');
  });

  it('a replacement seeded with known health starts a known-down server down, and pools it once its monitors say up', async () => {
    const clock = new ManualClock();
    const log = createMemoryLogger('debug');
    const fakes = fakeMonitors();
    const resolver = fakeResolver();
    for (let i = 1; i <= 3; i++) resolver.answers.set(`mw${i}`, [`192.0.2.${i}`]);
    const coordinator = new Coordinator(serviceConfig({ monitors: [PROXY], depoolThreshold: 0.3 }), {
      clock,
      logger: log.logger,
      createMonitor: fakes.create,
      resolve: resolver.resolve,
      onChange: () => undefined,
      knownHealth: new Map([
        ['mw1', true],
        ['mw2', false],
      ]),
    });
    coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3'));
    await flushAsync();
    // mw1 known up and mw3 unknown: optimistic, as PyBal; mw2 known down: not pooled.
    expect(coordinator.pooledServers().map((s) => s.host)).toEqual(['mw1', 'mw3']);
    expect(coordinator.health()).toEqual(new Map([['mw1', true], ['mw2', false], ['mw3', true]]));
    fakes.report('mw2', true);
    expect(coordinator.pooledServers().map((s) => s.host)).toEqual(['mw1', 'mw2', 'mw3']);
  });
});

describe('Coordinator at scale', () => {
  it('decides a new pool once, when the last first resolution is in, not once per server', async () => {
    const pending = new Map<string, (addresses: readonly string[]) => void>();
    const log = createMemoryLogger('debug');
    const fakes = fakeMonitors();
    const coordinator = new Coordinator(serviceConfig({ monitors: [PROXY] }), {
      clock: new ManualClock(),
      logger: log.logger,
      createMonitor: fakes.create,
      resolve: (host) => new Promise((resolve) => pending.set(host, resolve)),
      onChange: () => undefined,
    });
    coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3'));
    await flushAsync();
    pending.get('mw1')?.(['192.0.2.1']);
    pending.get('mw2')?.(['192.0.2.2']);
    await flushAsync();
    // Resolved and monitored, but the policy waits for mw3 (nothing is published meanwhile).
    expect(fakes.all.map((m) => m.target.host)).toEqual(['mw1', 'mw2']);
    expect(coordinator.snapshot().initializing).toBe(true);
    expect(coordinator.pooledServers()).toEqual([]);
    pending.get('mw3')?.(['192.0.2.3']);
    await flushAsync();
    expect(coordinator.snapshot().initializing).toBe(false);
    expect(coordinator.pooledServers().map((s) => s.host)).toEqual(['mw1', 'mw2', 'mw3']);
    expect(log.lines().filter((l) => l.includes('Pooling server'))).toHaveLength(3);
    expect(log.lines().filter((l) => l.includes('Initialization complete'))).toHaveLength(1);
    await coordinator.stop();
  });
});

describe('Coordinator lookups', () => {
  it('aborts at stop the lookups still under way, and not those that ended (their controllers are let go)', async () => {
    const pending = new Map<string, (addresses: readonly string[]) => void>();
    const signals = new Map<string, AbortSignal>();
    const fakes = fakeMonitors();
    const coordinator = new Coordinator(serviceConfig({ monitors: [PROXY] }), {
      clock: new ManualClock(),
      logger: createMemoryLogger('debug').logger,
      createMonitor: fakes.create,
      // As the daemon's resolver: an abort ends the lookup.
      resolve: (host, _family, signal) => {
        signals.set(host, signal);
        return new Promise((resolve, reject) => {
          pending.set(host, resolve);
          signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
        });
      },
      onChange: () => undefined,
    });
    coordinator.onPoolEvent(poolEvent('mw1', 'mw2'));
    await flushAsync();
    pending.get('mw1')?.(['192.0.2.1']);
    await flushAsync();
    expect(fakes.all.map((m) => m.target.host)).toEqual(['mw1']);
    await coordinator.stop();
    expect(signals.get('mw1')?.aborted).toBe(false);
    expect(signals.get('mw2')?.aborted).toBe(true);
  });
});

describe('Coordinator change notices', () => {
  it('tells the daemon only about reports that change what it publishes, and still depools a failing server after many', async () => {
    const t = setup({}, [PROXY, IDLE]);
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3', 'mw4'));
    await flushAsync();
    t.fakes.reportAll(['mw1', 'mw2', 'mw3', 'mw4'], true);
    const settled = t.changes();
    // Confirmations: every monitor again, many times; nothing to publish.
    for (let i = 0; i < 50; i++) t.fakes.reportAll(['mw1', 'mw2', 'mw3', 'mw4'], true);
    expect(t.changes()).toBe(settled);
    // A failure still reaches the daemon and leaves the pool.
    t.fakes.report('mw2', false, 'connection refused', 'ProxyFetch');
    expect(t.changes()).toBe(settled + 1);
    expect(t.pooled()).toEqual(['mw1', 'mw3', 'mw4']);
    // The other monitor agreeing changes nothing more; recovery of one monitor alone neither.
    t.fakes.report('mw2', false, 'reset', 'IdleConnection');
    t.fakes.report('mw2', true, 'ok', 'ProxyFetch');
    expect(t.changes()).toBe(settled + 1);
    // Both up again: it is repooled, and the daemon hears of it.
    t.fakes.report('mw2', true, 'ok', 'IdleConnection');
    expect(t.changes()).toBe(settled + 2);
    expect(t.pooled()).toEqual(['mw1', 'mw2', 'mw3', 'mw4']);
    expect(t.coordinator.ready()).toBe(true);
  });

  it('is ready once the first pool is known and every first resolution ended', async () => {
    const t = setup();
    expect(t.coordinator.ready()).toBe(false);
    t.resolver.answers.set('slow', 'hang');
    t.coordinator.onPoolEvent(poolEvent('mw1', 'slow'));
    await flushAsync();
    expect(t.coordinator.ready()).toBe(false);
    expect(t.coordinator.snapshot().initializing).toBe(true);
    t.coordinator.onPoolEvent(poolEvent('mw1'));
    await flushAsync();
    expect(t.coordinator.ready()).toBe(true);
    expect(t.pooled()).toEqual(['mw1']);
  });
});

describe('Coordinator monitor starts', () => {
  it('paces first checks through startDelayMs and presumes up only the first pool\'s servers the kernel had pooled', async () => {
    const fakes = fakeMonitors();
    const resolver = fakeResolver();
    for (let i = 1; i <= 4; i++) resolver.answers.set(`mw${i}`, [`192.0.2.${i}`]);
    const delays: string[] = [];
    let nextDelay = 0;
    const coordinator = new Coordinator(serviceConfig({ monitors: [PROXY, IDLE] }), {
      clock: new ManualClock(),
      logger: createMemoryLogger('debug').logger,
      createMonitor: fakes.create,
      resolve: resolver.resolve,
      onChange: () => undefined,
      startDelayMs: (config) => {
        delays.push(config.kind);
        return (nextDelay += 100);
      },
      // The kernel had mw1 and mw4 (and mw3's old address, which is not its address now).
      pooledAtStart: (address) => address === '192.0.2.1' || address === '192.0.2.4',
    });
    coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3'));
    await flushAsync();
    const options = (host: string) => fakes.live(host).map((m) => m.startOptions);
    expect(options('mw1')).toEqual([
      { delayMs: 100, assumeUp: true },
      { delayMs: 200, assumeUp: true },
    ]);
    expect(options('mw2')).toEqual([
      { delayMs: 300, assumeUp: false },
      { delayMs: 400, assumeUp: false },
    ]);
    expect(delays).toEqual(['ProxyFetch', 'IdleConnection', 'ProxyFetch', 'IdleConnection', 'ProxyFetch', 'IdleConnection']);
    // mw4 joins with a later pool: whatever the kernel had at start, it is checked as new.
    coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3', 'mw4'));
    await flushAsync();
    expect(options('mw4').map((o) => o?.assumeUp)).toEqual([false, false]);
    await coordinator.stop();
  });
});

describe('Coordinator large pools in slices', () => {
  const hosts = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `10.1.${((i + from) >> 8) & 255}.${(i + from) & 255}`);

  function sliced() {
    const fakes = fakeMonitors();
    const log = createMemoryLogger('info');
    let changes = 0;
    let lookMs = 0;
    const coordinator = new Coordinator(serviceConfig({ monitors: [PROXY] }), {
      clock: new ManualClock(),
      logger: log.logger,
      createMonitor: fakes.create,
      resolve: () => Promise.reject(new Error('IP addresses need no lookup')),
      onChange: () => changes++,
      // Every look at the clock ends a slice, and each look finds 1 ms more,
      // which keeps the stride between looks at 1: a slice per step, the same
      // on a loaded machine as on an idle one.
      slicing: { budgetMs: 0, now: () => (lookMs += 1) },
    });
    const settle = async (): Promise<number> => {
      let turns = 0;
      while (!coordinator.ready() && turns < 10_000) {
        await flushAsync(1);
        turns++;
      }
      return turns;
    };
    return { fakes, log, coordinator, settle, changes: () => changes };
  }

  it('applies a pool of 3,000 over many turns, ready only at the end, with what came meanwhile applied after, in order', async () => {
    const t = sliced();
    t.coordinator.onPoolEvent(poolEvent(...hosts(3000)));
    expect(t.coordinator.ready()).toBe(false);
    const turns = await t.settle();
    expect(turns).toBeGreaterThan(10);
    expect(t.coordinator.pooledServers()).toHaveLength(3000);
    // 3,000 servers pooled at once: one summary line, not 3,000.
    expect(t.log.lines().filter((l) => l.includes('Pooling server'))).toEqual([expect.stringContaining('Pooling server: 3000 servers (each at debug level)')]);
    expect(t.coordinator.healthy()).toBe(true);

    // A new pool: 500 servers go, 500 come, one weight changes.
    const next = [...hosts(2500, 500), ...hosts(500, 3000)];
    const event = poolEvent(...next.map((h) => (h === '10.1.3.232' ? `${h}:7` : h)));
    t.coordinator.onPoolEvent(event);
    expect(t.coordinator.ready()).toBe(false);
    // Meanwhile one server fails and recovers, another fails; a server being removed fails too.
    t.fakes.report('10.1.4.0', false, 'refused');
    t.fakes.report('10.1.4.0', true);
    t.fakes.report('10.1.4.1', false, 'refused');
    t.fakes.report('10.1.0.1', false, 'refused');
    // Still answering as before the job, snapshots too (without a pass over the servers).
    expect(t.coordinator.healthy()).toBe(true);
    expect(t.coordinator.snapshot({ servers: false }).canDepool).toBe(true);
    await t.settle();
    const pooled = new Map(t.coordinator.pooledServers().map((s) => [s.host, s.weight]));
    expect(pooled.size).toBe(2999);
    expect(pooled.has('10.1.4.0')).toBe(true);
    expect(pooled.has('10.1.4.1')).toBe(false);
    expect(pooled.has('10.1.0.1')).toBe(false);
    expect(pooled.get('10.1.3.232')).toBe(7);
    expect(pooled.has('10.1.11.255')).toBe(true);
    // The removed servers' monitors stopped; the new ones' started.
    expect(t.fakes.live('10.1.0.1')).toEqual([]);
    expect(t.fakes.live('10.1.11.255')).toHaveLength(1);
    const lines = t.log.lines().join('\n');
    expect(lines).toContain('Merged enabled server 10.1.3.232, weight 7');
    expect(lines).toContain('Removing server 10.1.0.1 (no longer found in new configuration)');
    expect(lines).toContain('Depooling server 10.1.4.1');
    await t.coordinator.stop();
  });

  it('stops a small service (9 servers) without a look at the clock (each a system call in the lab guest), every monitor stopped', async () => {
    const t = setup();
    const ten = Array.from({ length: 9 }, (_, i) => `mw${i + 1}`);
    t.coordinator.onPoolEvent(poolEvent(...ten));
    await flushAsync();
    expect(ten.every((h) => t.fakes.live(h).length === 1)).toBe(true);
    const reads = vi.spyOn(performance, 'now');
    try {
      await t.coordinator.stop();
      expect(reads).not.toHaveBeenCalled();
    } finally {
      reads.mockRestore();
    }
    expect(ten.filter((h) => t.fakes.live(h).length > 0)).toEqual([]);
  });

  it('stops 3,000 servers\' monitors over many turns, every one of them', async () => {
    const t = sliced();
    const all = hosts(3000);
    t.coordinator.onPoolEvent(poolEvent(...all));
    await t.settle();
    expect(all.every((h) => t.fakes.live(h).length === 1)).toBe(true);
    const turns = countTurns();
    await t.coordinator.stop();
    turns.stop();
    expect(turns.count()).toBeGreaterThan(10);
    expect(all.filter((h) => t.fakes.live(h).length > 0)).toEqual([]);
  });

  it('a weight change alone reaches what is published, and the policy still acts afterwards', async () => {
    const t = sliced();
    const all = hosts(2000);
    t.coordinator.onPoolEvent(poolEvent(...all));
    await t.settle();
    const before = t.changes();
    t.coordinator.onPoolEvent(poolEvent(...all.map((h) => (h === '10.1.2.3' ? `${h}:7` : h))));
    await t.settle();
    expect(t.changes()).toBeGreaterThan(before);
    expect(t.coordinator.pooledServers().find((s) => s.host === '10.1.2.3')?.weight).toBe(7);
    t.fakes.report('10.1.2.3', false, 'refused');
    expect(t.coordinator.pooledServers().find((s) => s.host === '10.1.2.3')).toBeUndefined();
    await t.coordinator.stop();
  });

  it('a pool edit is not starved by reports that keep arriving faster than they are replayed', async () => {
    const t = sliced();
    const all = hosts(2000);
    t.coordinator.onPoolEvent(poolEvent(...all));
    // Reports come in while the pool is applied: they are held, and replayed after it.
    let held = 0;
    while (!t.coordinator.ready()) {
      await flushAsync(1);
      for (const m of t.fakes.all.filter((x) => x.started && !x.stopped).slice(0, 200)) {
        m.report(true);
        held++;
      }
    }
    expect(held).toBeGreaterThan(1000);
    // A weight edit while 300 reports a turn keep coming (more than a replay slice takes).
    t.coordinator.onPoolEvent(poolEvent(...all.map((h) => (h === '10.1.1.1' ? `${h}:3` : h))));
    let seenAt: number | undefined;
    for (let turn = 0; turn < 200 && seenAt === undefined; turn++) {
      const live = t.fakes.all.filter((x) => x.started && !x.stopped);
      for (let i = 0; i < 300; i++) live[(turn * 300 + i) % live.length]!.report(true);
      await flushAsync(1);
      if (t.coordinator.ready() && t.coordinator.pooledServers().find((s) => s.host === '10.1.1.1')?.weight === 3) seenAt = turn;
    }
    expect(seenAt, 'the weight edit never applied while reports kept coming').toBeDefined();
    await t.coordinator.stop();
  });

  it('skips a pool that was superseded while another was being applied', async () => {
    const t = sliced();
    t.coordinator.onPoolEvent(poolEvent(...hosts(2000)));
    t.coordinator.onPoolEvent(poolEvent(...hosts(2000), '10.9.9.9'));
    t.coordinator.onPoolEvent(poolEvent(...hosts(1999), '10.9.9.8'));
    await t.settle();
    const pooled = t.coordinator.pooledServers().map((s) => s.host);
    expect(pooled).toHaveLength(2000);
    expect(pooled).toContain('10.9.9.8');
    expect(pooled).not.toContain('10.9.9.9');
    expect(t.log.lines().join('\n')).not.toContain('10.9.9.9');
    await t.coordinator.stop();
  });

  it('stops in the middle of a job without leaving monitors running', async () => {
    const t = sliced();
    t.coordinator.onPoolEvent(poolEvent(...hosts(3000)));
    for (let i = 0; i < 5; i++) await flushAsync(1);
    await t.coordinator.stop();
    await flushAsync(20);
    expect(t.fakes.all.filter((m) => m.started && !m.stopped)).toEqual([]);
  });
});

describe('Coordinator: keeping depooled servers (mh with fallback, for directors that must agree)', () => {
  it('lists every server with an address, depooled and disabled ones at weight 0, in address order whatever the pool order', async () => {
    const t = setup({ depoolThreshold: 0.1 });
    t.coordinator.onPoolEvent(poolEvent('mw3', 'mw1:5', 'mw2:10:disabled', 'mw4'));
    await flushAsync();
    t.fakes.report('mw4', false, 'Connection refused');
    await flushAsync();
    expect(t.pooled()).toEqual(['mw3', 'mw1']);
    expect(t.coordinator.pooledServers({ keepDepooled: true })).toEqual([
      { host: 'mw1', address: '192.0.2.1', weight: 5 },
      { host: 'mw2', address: '192.0.2.2', weight: 0 },
      { host: 'mw3', address: '192.0.2.3', weight: 10 },
      { host: 'mw4', address: '192.0.2.4', weight: 0 },
    ]);
    // Back up: its weight, in the same place.
    t.fakes.report('mw4', true);
    await flushAsync();
    expect(t.coordinator.pooledServers({ keepDepooled: true }).map((s) => [s.host, s.weight])).toEqual([
      ['mw1', 5],
      ['mw2', 0],
      ['mw3', 10],
      ['mw4', 10],
    ]);
  });
});

describe('Coordinator.snapshotSteps', () => {
  it('takes the same snapshot as snapshot(), a few servers per step, each server as it is at its step', async () => {
    const t = setup();
    const hosts = Array.from({ length: 200 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
    t.coordinator.onPoolEvent(poolEvent(...hosts));
    await flushAsync();
    t.fakes.reportAll(hosts, true);
    await flushAsync();
    const whole = t.coordinator.snapshot();
    expect(whole.servers).toHaveLength(200);

    let steps = 0;
    const job = t.coordinator.snapshotSteps();
    let next = job.next();
    for (; !next.done; next = job.next()) steps++;
    expect(next.value).toEqual(whole);
    expect(steps).toBeGreaterThanOrEqual(3);

    // A server that goes down between two steps: one taken before says up, one taken after says down.
    const later = t.coordinator.snapshotSteps();
    expect(later.next().done).toBe(false); // the first 64 are taken
    t.fakes.report(hosts[3]!, false);
    t.fakes.report(hosts[150]!, false);
    await flushAsync();
    let rest = later.next();
    while (!rest.done) rest = later.next();
    const byHost = new Map(rest.value.servers.map((s) => [s.host, s]));
    expect(byHost.get(hosts[3]!)?.up).toBe(true);
    expect(byHost.get(hosts[150]!)?.up).toBe(false);
    expect(rest.value.servers.map((s) => s.host)).toEqual(hosts);
    // Without servers: no step at all.
    expect(t.coordinator.snapshotSteps({ servers: false }).next()).toMatchObject({ done: true, value: { servers: [] } });
  });
});
