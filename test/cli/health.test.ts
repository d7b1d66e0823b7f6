/** health.ts's decision, by table: one row per rule. */
import { describe, expect, it } from 'vitest';
import type { AlertsValue } from '../../src/api/alerts.js';
import type { DaemonSnapshot } from '../../src/api/types.js';
import { assessHealth, isAlertsValue, isDaemonSnapshot, type HealthProblem } from '../../src/cli/health.js';
import { formatPerfdata, formatPluginLine } from '../../src/cli/check.js';
import { formatHealthLine, formatStatus } from '../../src/cli/status.js';
import type { SloppyStatus } from '../../src/ipvs/sloppy.js';
import { daemon, peer, server, service } from '../api/fixtures.js';

/** The drain fields of a snapshot, not drained. */
const NOT_DRAINED = { drained: false, drainedSinceWallMs: undefined, drainMed: 4294967295 } as const;
const OK: AlertsValue = { status: 'ok', msg: 'All pools are healthy' };
const three = () => [server('a'), server('b'), server('c')];
const stats = (over: Partial<NonNullable<DaemonSnapshot['ipvs']>> = {}): NonNullable<DaemonSnapshot['ipvs']> => ({
  reconciles: 10,
  failedReconciles: 0,
  requests: 3,
  failedRequests: 0,
  resyncs: 1,
  drift: 0,
  lastReconcileMs: 1,
  totalReconcileMs: 10,
  lastError: undefined,
  ...over,
});
const sloppy = (over: Partial<SloppyStatus>): SloppyStatus => ({
  sysctl: 'net.ipv4.vs.sloppy_tcp',
  key: 'ipvs-sloppy-tcp',
  setting: 'unset',
  value: 0,
  services: ['web'],
  movedConnectionsReset: true,
  warning: undefined,
  ...over,
});
const bgp = (...peers: ReturnType<typeof peer>[]): DaemonSnapshot['bgp'] => ({ enabled: true, localAsn: 64600, peers, ...NOT_DRAINED });

const rows: [string, DaemonSnapshot, AlertsValue, HealthProblem[]][] = [
  ['all well', daemon([service('web', three())], { ipvs: stats(), bgp: bgp(peer('p1'), peer('p2')) }), OK, []],
  ['a down server, depooled, is load balancing at work', daemon([service('web', [server('a'), server('b', { up: false, pooled: false })])]), OK, []],
  ['IPVS failed once and recovered', daemon([service('web', three())], { ipvs: stats({ failedReconciles: 4 }) }), OK, []],
  ['BGP off (or a dry run): peers are not looked at', daemon([service('web', three())], { bgp: { enabled: false, localAsn: undefined, peers: [], ...NOT_DRAINED } }), OK, []],
  [
    'BGP configured but its speaker could not start',
    daemon([service('web', three())], { bgp: { enabled: false, wanted: true, localAsn: undefined, peers: [], ...NOT_DRAINED } }),
    OK,
    [{ level: 'critical', text: 'BGP is configured but not running: the speaker could not start (see the log)' }],
  ],
  [
    'BGP waits for the services to be programmed at a start: a warning, not the speaker failing',
    daemon([service('web', three())], { bgp: { enabled: false, wanted: true, starting: true, localAsn: undefined, peers: [], ...NOT_DRAINED } }),
    OK,
    [{ level: 'warning', text: 'BGP has not started yet: it starts once every service is programmed (at most 10 s)' }],
  ],
  ['a dry run wants no BGP', daemon([service('web', three())], { bgp: { enabled: false, wanted: false, localAsn: undefined, peers: [], ...NOT_DRAINED } }), OK, []],
  [
    "/alerts critical: PyBal's message",
    daemon([service('web', [server('a'), server('b', { up: false, pooledDown: true })])]),
    { status: 'critical', msg: 'web: Servers b are marked down but pooled' },
    [{ level: 'critical', text: 'web: Servers b are marked down but pooled' }],
  ],
  [
    '/alerts warning: its trailing ". " dropped',
    daemon([service('web', three())]),
    { status: 'warning', msg: 'Pool web is too small to allow depooling. Pool web keeps its last good pool: ENOENT. ' },
    [{ level: 'warning', text: 'Pool web is too small to allow depooling. Pool web keeps its last good pool: ENOENT' }],
  ],
  [
    'no server takes traffic: down, disabled or weight 0',
    daemon([service('web', [server('a', { up: false, pooledDown: true }), server('b', { enabled: false, pooled: false }), server('c', { weight: 0 })])]),
    OK,
    [{ level: 'critical', text: 'service web has no server that takes traffic (pooled, up and weight > 0) of 3' }],
  ],
  ['waiting for the first pool', daemon([service('dns', [], { awaitingPool: true })]), OK, [{ level: 'warning', text: 'service dns waits for its first pool' }]],
  [
    'the last IPVS reconcile failed',
    daemon([service('web', three())], { ipvs: stats({ failedReconciles: 2, lastError: 'EPERM' }) }),
    OK,
    [{ level: 'critical', text: 'IPVS reconcile failing (2 of 10 failed): EPERM' }],
  ],
  [
    'one BGP peer of two down',
    daemon([service('web', three())], { bgp: bgp(peer('p1'), peer('p2', { state: 'OpenSent' })) }),
    OK,
    [{ level: 'warning', text: 'BGP 1 of 2 Established: p2 OpenSent' }],
  ],
  [
    'the only BGP peer down',
    daemon([service('web', three())], { bgp: bgp(peer('p1', { state: 'Active', lastError: 'connect EHOSTUNREACH' })) }),
    OK,
    [{ level: 'critical', text: 'no BGP session Established: p1 Active (connect EHOSTUNREACH)' }],
  ],
  [
    'an mh service with sloppy_tcp at 0, not said to be meant: a warning',
    daemon([service('web', three())], { ipvsSysctls: [sloppy({ setting: 'unset', warning: 'net.ipv4.vs.sloppy_tcp = 0: connections moved here from another director are reset (web); set ipvs-sloppy-tcp = yes, or = no if meant' })] }),
    OK,
    [{ level: 'warning', text: 'net.ipv4.vs.sloppy_tcp = 0: connections moved here from another director are reset (web); set ipvs-sloppy-tcp = yes, or = no if meant' }],
  ],
  ['the same with ipvs-sloppy-tcp = no: meant, no problem', daemon([service('web', three())], { ipvsSysctls: [sloppy({ setting: 'no', warning: undefined })] }), OK, []],
  [
    'critical problems come first',
    daemon([service('dns', [], { awaitingPool: true })], { ipvs: stats({ lastError: 'EINVAL' }) }),
    OK,
    [
      { level: 'critical', text: 'IPVS reconcile failing (0 of 10 failed): EINVAL' },
      { level: 'warning', text: 'service dns waits for its first pool' },
    ],
  ],
];

describe('pybal status: the sloppy sysctls', () => {
  it('one line per sysctl, what pybal.conf says, and what a 0 costs', () => {
    const text = formatStatus(daemon([], { ipvsSysctls: [sloppy({}), sloppy({ sysctl: 'net.ipv4.vs.sloppy_sctp', key: 'ipvs-sloppy-sctp', setting: 'yes', value: 1, services: [], movedConnectionsReset: false })] }));
    expect(text).toContain(
      "IPVS net.ipv4.vs.sloppy_tcp = 0 (ipvs-sloppy-tcp not set: the kernel's value): connections moved here from another director are reset (web)\n" +
        'IPVS net.ipv4.vs.sloppy_sctp = 1 (ipvs-sloppy-sctp = yes)\n',
    );
    expect(formatStatus(daemon([]))).not.toContain('sloppy');
  });
});

describe('assessHealth', () => {
  it.each(rows)('%s', (_name, snapshot, alerts, problems) => {
    const health = assessHealth(snapshot, alerts);
    expect(health.problems).toEqual(problems);
    expect(health.level).toBe(problems[0]?.level ?? 'ok');
  });

  it('counts servers, pooled, down-but-pooled and BGP sessions', () => {
    const snapshot = daemon(
      [service('web', [server('a'), server('b', { up: false, pooledDown: true }), server('c', { enabled: false, pooled: false })]), service('dns', [server('d')])],
      { bgp: bgp(peer('p1'), peer('p2', { state: 'Idle' })), ipvs: stats({ failedReconciles: 1 }), eventLoop: { stalls: 2, longestMs: 140 } },
    );
    const { counts } = assessHealth(snapshot, OK);
    expect(counts).toEqual({
      services: 2,
      servers: 4,
      enabled: 3,
      up: 3,
      pooled: 3,
      pooledDown: 1,
      bgpPeers: 2,
      bgpEstablished: 1,
      ipvsFailedReconciles: 1,
      eventLoopStalls: 2,
    });
    expect(formatPerfdata(counts)).toBe(
      'services=2 servers=4 enabled=3 up=3 pooled=3 pooled_down=1 bgp_peers=2 bgp_established=1 ipvs_failed_reconciles=1c event_loop_stalls=2c',
    );
  });
});

describe('formatting', () => {
  it('a plugin line never holds a "|" or a line break outside the perfdata', () => {
    expect(formatPluginLine('Warning', 'a | b\n  c', 'x=1')).toBe('PYBAL WARNING - a / b c | x=1');
    expect(formatPluginLine('Unknown', 'nothing')).toBe('PYBAL UNKNOWN - nothing');
  });

  it("status's health line names each problem with its level", () => {
    const health = assessHealth(daemon([service('dns', [], { awaitingPool: true })], { ipvs: stats({ lastError: 'EINVAL' }) }), OK);
    expect(formatHealthLine(health)).toBe('Health: DEGRADED: CRITICAL IPVS reconcile failing (0 of 10 failed): EINVAL; WARNING service dns waits for its first pool');
    expect(formatHealthLine(health, true)).toBe(`\u001b[31m${formatHealthLine(health)}\u001b[0m`);
    expect(formatHealthLine(assessHealth(daemon([]), OK))).toBe('Health: OK');
  });

  it('answers of the wrong shape are refused', () => {
    expect(isDaemonSnapshot(daemon([]))).toBe(true);
    for (const bad of [null, 1, {}, { services: [] }, { services: [], bgp: {} }]) expect(isDaemonSnapshot(bad)).toBe(false);
    expect(isAlertsValue(OK)).toBe(true);
    for (const bad of [null, {}, { status: 'fine', msg: '' }, { status: 'ok' }]) expect(isAlertsValue(bad)).toBe(false);
  });
});
