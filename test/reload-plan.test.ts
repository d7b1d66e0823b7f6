/**
 * The reload planner, by table: for each kind of change, what each component
 * must do. The daemon only executes these plans (test/daemon, test/e2e).
 */
import { describe, expect, it } from 'vitest';
import type { Config, GlobalConfig, ServiceConfig } from '../src/config/types.js';
import { bgpSessionSettings, bgpWanted, describePlan, planReload, planReloadSteps, planService, type ReloadPlan } from '../src/reload-plan.js';
import { proxyFetchConfig, udpConfig } from './monitors/support/configs.js';
import { globalConfig, serviceConfig } from './support/config-fixtures.js';

const proxyFetch = proxyFetchConfig({ urls: ['http://localhost/'] });

const web = serviceConfig('web', '192.0.2.11', { monitors: [proxyFetch] });
const base: Config = { file: 'pybal.conf', global: globalConfig({ bgpPeerAddresses: ['192.0.2.1'] }), services: [web] };
const withService = (change: Partial<ServiceConfig>): Config => ({ ...base, services: [{ ...web, ...change }] });
const withGlobal = (change: Partial<GlobalConfig>): Config => ({ ...base, global: { ...base.global, ...change } });
const SYNC = { mode: 'both', interface: 'eth0', syncId: 1, group: undefined, port: undefined, ttl: undefined } as const;
const withGlobalSync = (change: Partial<NonNullable<GlobalConfig['ipvsSync']>>): Config => withGlobal({ ipvsSync: { ...SYNC, ...change } });

/** The plan's shape in one line per service, for the table. */
function summary(plan: ReloadPlan): Record<string, unknown> {
  return {
    services: plan.services.map((s) => {
      const flags = (['ipvs', 'monitors', 'pool', 'policy', 'announce'] as const).filter((f) => s[f]);
      return `${s.name} ${s.action}${s.action === 'update' || s.action === 'replace' ? ` [${s.keys.join(' ')}] ${flags.join(',')}` : ''}`;
    }),
    bgp: plan.bgp,
    api: plan.api,
    resync: plan.ipvsResyncIntervalMs,
    stats: plan.ipvsStatsIntervalMs,
    runcommand: plan.runcommandMaxConcurrent,
    history: plan.eventHistorySize,
    sync: plan.ipvsSync,
    deferred: plan.deferred,
    atRestart: plan.atRestart,
    drain: plan.drain,
  };
}

describe('planReload', () => {
  const keep = { bgp: 'keep', api: false, resync: undefined, stats: undefined, runcommand: undefined, history: undefined, sync: false, deferred: [], atRestart: [], drain: undefined };
  const cases: [string, Config, Record<string, unknown>][] = [
    ['nothing changed', base, { services: ['web keep'], ...keep }],
    ['the section moved in the file', withService({ source: { file: 'pybal.conf', line: 99 } }), { services: ['web keep'], ...keep }],
    ['scheduler', withService({ scheduler: 'rr' }), { services: ['web update [scheduler] ipvs'], ...keep }],
    [
      'a monitor option',
      withService({ monitors: [{ ...proxyFetch, intervalMs: 1000 }] }),
      { services: ['web update [proxyfetch.interval] monitors'], ...keep },
    ],
    ['the port (the checks target it too)', withService({ port: 8080 }), { services: ['web update [port] ipvs,monitors'], ...keep }],
    ['tunnelling', withService({ forwardMethod: 'tunnel' }), { services: ['web update [forward-method tunnel-type tunnel-checksum] ipvs'], ...keep }],
    ['a firewall mark (a new kernel service)', withService({ fwmark: 3 }), { services: ['web update [fwmark] ipvs'], ...keep }],
    [
      'turning data-path checks on (the monitors change: they now reach the VIP)',
      withService({ dataPathMonitors: ['ProxyFetch'] }),
      { services: ['web update [proxyfetch.datapath] monitors'], ...keep },
    ],
    ['the datapath-fwmark-base (at restart)', { ...base, global: { ...base.global, dataPathFwmarkBase: 0x1000 } }, { services: ['web keep'], ...keep, atRestart: ['datapath-fwmark-base'] }],
    ["the real servers' port (the checks target it too)", withService({ forwardMethod: 'nat', realPort: 8080 }), { services: ['web update [forward-method real-port] ipvs,monitors'], ...keep }],
    ['the connection thresholds', withService({ upperThreshold: 10, lowerThreshold: 5 }), { services: ['web update [upper-threshold lower-threshold] ipvs'], ...keep }],
    [
      'a persistence engine',
      withService({ protocol: 'udp', persistenceTimeoutSec: 60, persistenceEngine: 'sip' }),
      { services: ['web update [protocol persistence-timeout persistence-engine] ipvs'], ...keep },
    ],
    ['dry-run (read at start only)', withGlobal({ dryRun: true }), { services: ['web keep'], ...keep, atRestart: ['dry-run'] }],
    ['the pool URL', withService({ poolUrl: 'file:///etc/pybal/pools/y' }), { services: ['web update [config] pool'], ...keep }],
    ['the depool threshold', withService({ depoolThreshold: 0.7 }), { services: ['web update [depool-threshold] policy'], ...keep }],
    ['the service MED', withService({ bgpMed: 50 }), { services: ['web update [bgp-med] announce'], ...keep, bgp: 'announce' }],
    ['the VIP, same family', withService({ ip: '192.0.2.12' }), { services: ['web update [ip] ipvs,announce'], ...keep, bgp: 'announce' }],
    [
      'the VIP, other family (sessions restart for IPv6)',
      withService({ ip: '2001:db8::11', family: 6 }),
      { services: ['web replace [ip] ipvs,announce'], ...keep, bgp: 'restart' },
    ],
    ['the sync daemons appear', withGlobal({ ipvsSync: SYNC }), { services: ['web keep'], ...keep, sync: true }],
    ['ipvs-resync-interval alone', withGlobal({ ipvsResyncIntervalMs: 5000 }), { services: ['web keep'], ...keep, resync: 5000 }],
    ['ipvs-stats-interval alone', withGlobal({ ipvsStatsIntervalMs: 2500 }), { services: ['web keep'], ...keep, stats: 2500 }],
    ['ipvs-stats-interval off', withGlobal({ ipvsStatsIntervalMs: 0 }), { services: ['web keep'], ...keep, stats: 0 }],
    ['the global MED', withGlobal({ bgpMed: 100 }), { services: ['web keep'], ...keep, bgp: 'announce' }],
    ['communities, AS path, next hop', withGlobal({ bgpCommunities: [{ asn: 64600, value: 1 }], bgpAsPath: [64600, 64601], bgpNexthopIpv4: '192.0.2.99' }), { services: ['web keep'], ...keep, bgp: 'announce' }],
    ['bgp-drain on (drain: UPDATEs, no session reset)', withGlobal({ bgpDrain: true }), { services: ['web keep'], ...keep, bgp: 'announce', drain: true }],
    ['bgp-drain-med alone (an attribute)', withGlobal({ bgpDrainMed: 1000 }), { services: ['web keep'], ...keep, bgp: 'announce' }],
    ['the local ASN', withGlobal({ bgpLocalAsn: 64601 }), { services: ['web keep'], ...keep, bgp: 'restart' }],
    ['the peers', withGlobal({ bgpPeerAddresses: ['192.0.2.1', '192.0.2.2'] }), { services: ['web keep'], ...keep, bgp: 'restart' }],
    ['the hold time', withGlobal({ bgpHoldTimeSec: 90 }), { services: ['web keep'], ...keep, bgp: 'restart' }],
    ['the router id', withGlobal({ bgpRouterId: '192.0.2.200' }), { services: ['web keep'], ...keep, bgp: 'restart' }],
    ['the listen addresses', withGlobal({ bgpLocalIps: ['192.0.2.11'] }), { services: ['web keep'], ...keep, bgp: 'restart' }],
    ['bgp off', withGlobal({ bgp: false }), { services: ['web keep'], ...keep, bgp: 'stop' }],
    ['instrumentation port', withGlobal({ instrumentationPort: 9191 }), { services: ['web keep'], ...keep, api: true }],
    ['runcommand-max-concurrent', withGlobal({ runcommandMaxConcurrent: 8 }), { services: ['web keep'], ...keep, runcommand: 8 }],
    ['event-history-size', withGlobal({ eventHistorySize: 50 }), { services: ['web keep'], ...keep, history: 50 }],
    ['bgp-connect-retry (no session reset for it)', withGlobal({ bgpConnectRetryMs: 9000 }), { services: ['web keep'], ...keep, deferred: ['bgp-connect-retry'] }],
    [
      'a service added on a new VIP, same family',
      { ...base, services: [web, serviceConfig('api', '192.0.2.12')] },
      { services: ['web keep', 'api add'], ...keep, bgp: 'announce' },
    ],
    [
      'the first IPv6 service (a new family to negotiate)',
      { ...base, services: [web, serviceConfig('web6', '2001:db8::11')] },
      { services: ['web keep', 'web6 add'], ...keep, bgp: 'restart' },
    ],
    ['a service removed', { ...base, services: [] }, { services: ['web remove'], ...keep, bgp: 'stop' }],
  ];
  it.each(cases)('%s', (_what, next, expected) => {
    expect(summary(planReload(base, next))).toEqual(expected);
  });

  it('edits a tunnelled service in place for a new tunnel type, port or checksum', () => {
    const ipip = withService({ forwardMethod: 'tunnel' });
    const gue = withService({ forwardMethod: 'tunnel', tunnel: { type: 'gue', port: 6080, checksum: 'csum' } });
    expect(summary(planReload(ipip, gue)).services).toEqual(['web update [tunnel-type tunnel-checksum tunnel-port] ipvs']);
  });

  it('bgp-drain off again undrains; unchanged, it says nothing about the drain (a drain asked at run time stays)', () => {
    const drained = withGlobal({ bgpDrain: true });
    expect(planReload(drained, base)).toMatchObject({ bgp: 'announce', drain: false, globalKeys: ['bgp-drain'] });
    expect(planReload(drained, drained)).toMatchObject({ bgp: 'keep', drain: undefined, globalKeys: [] });
    // With a session key changed too, the sessions restart and the drain applies all the same.
    expect(planReload(base, withGlobal({ bgpDrain: true, bgpHoldTimeSec: 90 }))).toMatchObject({ bgp: 'restart', drain: true });
    expect(describePlan(planReload(base, drained))).toContain('[global] changed: bgp-drain');
  });

  it('plans 1,000 services as a job that yields at each service, to the plan made in one go', () => {
    const many = (scheduler: ServiceConfig['scheduler']): Config => ({
      ...base,
      services: Array.from({ length: 1000 }, (_, i) => serviceConfig(`s${i}`, `192.0.2.${(i % 250) + 1}`, { port: 80 + Math.floor(i / 250), scheduler: i === 500 ? scheduler : 'wrr' })),
    });
    const job = planReloadSteps(many('wrr'), many('rr'));
    let steps = 0;
    let next = job.next();
    for (; !next.done; next = job.next()) steps++;
    expect(steps).toBe(1000);
    expect(next.value).toEqual(planReload(many('wrr'), many('rr')));
    expect(describePlan(next.value)[0]).toBe('Configuration reloaded: 0 added, 0 removed, 1 changed, 999 unchanged; changed: s500');
  });

  it('starts BGP when it is turned on', () => {
    expect(planReload(withGlobal({ bgp: false }), base).bgp).toBe('start');
  });

  it('names why the sessions restart', () => {
    expect(planReload(base, withGlobal({ bgpHoldTimeSec: 90, bgpMed: 5 })).bgpRestartReasons).toEqual(['bgp-hold-time']);
    expect(planReload(base, { ...base, services: [web, serviceConfig('web6', '2001:db8::11')] }).bgpRestartReasons).toEqual([
      'announced address families',
    ]);
  });
});

describe('planService', () => {
  it('lists every changed key as the file spells it', () => {
    const after = { ...web, scheduler: 'rr' as const, monitors: [{ ...proxyFetch, timeoutMs: 2000, urls: ['http://localhost/x'] }] };
    expect(planService(web, after).keys).toEqual(['scheduler', 'proxyfetch.url', 'proxyfetch.timeout']);
  });

  it('sees a monitor added to the list', () => {
    const plan = planService(web, { ...web, monitors: [proxyFetch, udpConfig()] });
    expect(plan.keys).toContain('monitors');
    expect(plan.monitors).toBe(true);
    expect(plan.ipvs).toBe(false);
  });
});

describe('bgpSessionSettings', () => {
  it('is empty while nothing announces, and ignores attribute keys', () => {
    expect(bgpSessionSettings(globalConfig({ bgp: false }), [web])).toBe('');
    expect(bgpSessionSettings(globalConfig(), [{ ...web, bgp: false }])).toBe('');
    expect(bgpSessionSettings(globalConfig({ bgpMed: 7, ipvsResyncIntervalMs: 1000 }), [web])).toBe(bgpSessionSettings(globalConfig(), [web]));
    expect(bgpSessionSettings(globalConfig({ bgpDrain: true, bgpDrainMed: 7 }), [web])).toBe(bgpSessionSettings(globalConfig(), [web]));
  });

  it('is not empty exactly when bgpWanted (what the daemon asks at a start and a reload) says so', () => {
    for (const [global, services] of [
      [globalConfig({ bgp: false }), [web]],
      [globalConfig(), [{ ...web, bgp: false }]],
      [globalConfig(), []],
      [globalConfig(), [web]],
      [globalConfig(), [{ ...web, bgp: false }, serviceConfig('api', '192.0.2.12')]],
    ] as const) {
      expect(bgpWanted(global, services)).toBe(bgpSessionSettings(global, services) !== '');
    }
    expect(bgpWanted(globalConfig(), [web])).toBe(true);
    expect(bgpWanted(globalConfig({ bgp: false }), [web])).toBe(false);
  });
});

describe('describePlan', () => {
  it('says the counts, then per changed service the keys that changed', () => {
    const next: Config = {
      ...base,
      global: { ...base.global, ipvsResyncIntervalMs: 5000 },
      services: [{ ...web, scheduler: 'rr', monitors: [{ ...proxyFetch, intervalMs: 1000 }] }, serviceConfig('api', '192.0.2.12')],
    };
    expect(describePlan(planReload(base, next))).toEqual([
      'Configuration reloaded: 1 added, 0 removed, 1 changed, 0 unchanged; added: api; changed: web',
      'Service web changed: scheduler, proxyfetch.interval',
      '[global] changed: ipvs-resync-interval',
    ]);
    expect(describePlan(planReload(base, base))).toEqual(['Configuration reloaded: 0 added, 0 removed, 0 changed, 1 unchanged']);
  });
});

describe('planReload: the sync daemons', () => {
  it('a changed sync key sets the daemons again; the same keys do not; BGP and the services are untouched', () => {
    const running = withGlobalSync({});
    for (const change of [{ syncId: 2 }, { ttl: 3 }, { mode: 'master' as const }, { interface: 'eth1' }, { group: '239.0.0.1' }, { port: 8850 }]) {
      const plan = planReload(running, withGlobalSync(change));
      expect(plan.ipvsSync, JSON.stringify(change)).toBe(true);
      expect(plan.bgp).toBe('keep');
      expect(plan.services.map((x) => x.action)).toEqual(['keep']);
    }
    expect(planReload(running, withGlobalSync({})).ipvsSync).toBe(false);
    // Gone from the file: the plan says so (main.ts leaves the daemons running).
    expect(planReload(running, base).ipvsSync).toBe(true);
  });
});

describe('planService: data-path checks', () => {
  it('restarts the monitors when the VIP or the forwarding method of a service checked through the data path changes (its checks connect to the VIP by that method)', () => {
    const checked = { ...web, dataPathMonitors: ['ProxyFetch' as const] };
    expect(planService(checked, { ...checked, ip: '192.0.2.99' }).monitors).toBe(true);
    expect(planService(checked, { ...checked, forwardMethod: 'tunnel' }).monitors).toBe(true);
    // A plainly checked service's monitors check the servers' addresses: a new VIP leaves them be.
    expect(planService(web, { ...web, ip: '192.0.2.99' }).monitors).toBe(false);
  });
});
