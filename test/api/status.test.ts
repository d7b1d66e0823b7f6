import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PybalMetrics } from '../../src/api/metrics.js';
import { createApiServer, type ApiServer } from '../../src/api/server.js';
import type { DaemonSnapshot } from '../../src/api/types.js';
import { formatStatus, runStatus } from '../../src/cli/status.js';
import { createSilentLogger } from '../../src/runtime/logger.js';
import { daemon, monitor, NOT_DRAINED, peer, server, service } from './fixtures.js';

function capture(isTTY = false): { write(text: string): void; readonly isTTY: boolean; text(): string } {
  let text = '';
  return {
    isTTY,
    write: (chunk: string) => {
      text += chunk;
    },
    text: () => text,
  };
}

const at = (iso: string): number => Date.parse(iso);

const fixed: DaemonSnapshot = daemon(
  [
    service(
      'text-https',
      [
        server('mw1001.eqiad.wmnet', { address: '192.0.2.11', monitors: [monitor({ reason: 'Fetch successful (http://en.wikipedia.org/), 0.012 s' })] }),
        server('mw1002.eqiad.wmnet', {
          address: '192.0.2.12',
          weight: 5,
          up: false,
          pooledDown: true,
          monitors: [
            monitor({ up: false, reason: 'Connection refused', sinceWallMs: at('2026-11-22T06:00:00Z') }),
            monitor({ kind: 'IdleConnection', up: true, reason: 'Connected', sinceWallMs: at('2026-11-22T06:01:00Z') }),
          ],
        }),
        server('mw1003.eqiad.wmnet', { address: undefined, up: false, pooled: false, monitors: [], resolveError: 'ENOTFOUND' }),
        server('mw1004.eqiad.wmnet', { address: '192.0.2.14', enabled: false, pooled: false, weight: 0 }),
      ],
      { ip: '2001:db8::1', port: 443, scheduler: 'sh', canDepool: false, couldNotDepoolTotal: 2, poolError: 'etcd: connection refused' },
    ),
    service('dns', [], { protocol: 'udp', port: 53, awaitingPool: true, fwmark: 53, forwardMethod: 'nat' }),
  ],
  {
    dryRun: true,
    startedAtWallMs: at('2026-11-22T05:00:00Z'),
    bgp: {
      enabled: true,
      localAsn: 64600,
      ...NOT_DRAINED,
      peers: [
        peer('192.0.2.254', {
          establishedAtWallMs: at('2026-11-22T05:00:03Z'),
          updatesTreatedAsWithdraw: 3,
          routeRefreshesIgnored: 1,
          lastUpdateError: 'treat-as-withdraw: ORIGIN: undefined value 3 (RFC 7606 §7.1)',
        }),
        peer('2001:db8::fe', { state: 'Active', establishedAtWallMs: undefined, prefixesSent: 0, lastError: 'connect ECONNREFUSED' }),
      ],
    },
    ipvs: {
      reconciles: 12,
      failedReconciles: 1,
      requests: 40,
      failedRequests: 2,
      resyncs: 3,
      drift: 0,
      lastReconcileMs: 2.25,
      totalReconcileMs: 80,
      lastError: 'EPERM',
    },
  },
);

const EXPECTED = `pybal 2.0.0, started 2026-11-22T05:00:00.000Z (dry run: the kernel is not changed)

text-https  [2001:db8::1]:443/tcp  scheduler sh
  pooled 2/4, depool threshold 0.5, can depool: no, could not depool: 2 time(s)
  pool source error (last good pool in force): etcd: connection refused
  HOST                ADDRESS     WEIGHT  ENABLED  UP   POOLED      LAST MONITOR REASON
  mw1001.eqiad.wmnet  192.0.2.11  10      yes      yes  yes         ProxyFetch: Fetch successful (http://en.wikipedia.org/), 0.012 s
  mw1002.eqiad.wmnet  192.0.2.12  5       yes      no   yes (DOWN)  ProxyFetch: Connection refused
  mw1003.eqiad.wmnet  -           10      yes      no   no          unresolved: ENOTFOUND
  mw1004.eqiad.wmnet  192.0.2.14  0       no       yes  no          ProxyFetch: Fetch successful

dns  fwmark 53, checks 192.0.2.1:53/udp  scheduler wrr  nat
  pooled 0/0, depool threshold 0.5, can depool: yes, could not depool: 0 time(s)
  waiting for the first pool
  no servers

BGP: enabled, local AS 64600, drained: no
  PEER          STATE        ESTABLISHED SINCE         PREFIXES SENT  LAST ERROR
  192.0.2.254   Established  2026-11-22T05:00:03.000Z  2
  2001:db8::fe  Active       -                         0              connect ECONNREFUSED
  192.0.2.254 sent errors the session survived: 3 UPDATE(s) treated as withdraw, 1 ROUTE-REFRESH(es) ignored; last: treat-as-withdraw: ORIGIN: undefined value 3 (RFC 7606 §7.1)

IPVS: 12 reconcile(s) (1 failed), 40 request(s) (2 failed), 3 resync(s), 0 drift(s), last reconcile 2.3 ms
  last error: EPERM
`;

/** The last line: this daemon is degraded (exit 1), critical problems first. */
const HEALTH =
  'Health: DEGRADED: CRITICAL text-https: Servers mw1002.eqiad.wmnet are marked down but pooled; ' +
  'CRITICAL IPVS reconcile failing (1 of 12 failed): EPERM; WARNING service dns waits for its first pool; ' +
  'WARNING BGP 1 of 2 Established: 2001:db8::fe Active (connect ECONNREFUSED)';
const PRINTED = `${EXPECTED}\n${HEALTH}\n`;

let api: ApiServer;
let dir: string;

beforeEach(async () => {
  api = createApiServer({ snapshot: () => fixed, metrics: new PybalMetrics({ processMetrics: false }), logger: createSilentLogger() });
  dir = await mkdtemp(join(tmpdir(), 'pybal-status-'));
});

afterEach(async () => {
  await api.close();
  await rm(dir, { recursive: true, force: true });
});

describe('pybal status', () => {
  it('prints the daemon status from its Unix socket', async () => {
    const socket = join(dir, 'pybal.sock');
    expect(await api.listenUnix(socket)).toBe(true);
    const out = capture();
    expect(await runStatus({ socket }, out)).toBe(1);
    expect(out.text()).toBe(PRINTED);
  });

  it('prints the same from an http URL', async () => {
    const [bound] = await api.listen({ ips: ['::1'], port: 0 });
    const out = capture();
    expect(await runStatus({ url: `http://[::1]:${bound?.port}` }, out)).toBe(1);
    expect(out.text()).toBe(PRINTED);
  });

  it('colours trouble on a terminal, without breaking the alignment', async () => {
    const socket = join(dir, 'pybal.sock');
    await api.listenUnix(socket);
    const out = capture(true);
    expect(await runStatus({ socket }, out)).toBe(1);
    expect(out.text()).toContain('\u001b[31myes (DOWN)\u001b[0m');
    expect(out.text()).toContain(`\u001b[31m${HEALTH}\u001b[0m`);
    expect(out.text().replace(/\u001b\[[0-9;]*m/g, '')).toBe(PRINTED);
  });

  it('says whether the director is drained, and since when (in red on a terminal)', async () => {
    const drained = { drained: true, drainedSinceWallMs: at('2026-11-22T07:30:00Z'), drainMed: 4294967295 } as const;
    expect(formatStatus({ ...fixed, bgp: { ...fixed.bgp, ...drained } })).toContain(
      'BGP: enabled, local AS 64600, drained: yes since 2026-11-22T07:30:00.000Z (every VIP announced with GRACEFUL_SHUTDOWN 65535:0 and MED 4294967295)\n',
    );
    expect(formatStatus({ ...fixed, bgp: { ...fixed.bgp, ...drained } }, true)).toContain('local AS 64600\u001b[31m, drained: yes since');
    // BGP off: the state is still shown (it applies once BGP runs).
    expect(formatStatus({ ...fixed, bgp: { enabled: false, localAsn: undefined, peers: [], ...drained, drainMed: 1000 } })).toContain(
      'BGP: disabled, drained: yes since 2026-11-22T07:30:00.000Z (every VIP announced with GRACEFUL_SHUTDOWN 65535:0 and MED 1000)\n',
    );
    // At a start BGP waits until every service is programmed: starting, not disabled.
    expect(formatStatus({ ...fixed, bgp: { enabled: false, wanted: true, starting: true, localAsn: undefined, peers: [], ...drained } })).toContain(
      'BGP: starting once every service is programmed, drained: yes since 2026-11-22T07:30:00.000Z',
    );
    // A daemon from before drain existed sends no drain fields: nothing is said about it.
    const { drained: _d, drainedSinceWallMs: _s, drainMed: _m, ...older } = fixed.bgp;
    expect(formatStatus({ ...fixed, bgp: older as typeof fixed.bgp })).toContain('BGP: enabled, local AS 64600\n');
  });

  it("shows each service's traffic and each server's connections, and names a quiet server", () => {
    const t = (connections: number, active: number, inactive: number) => ({
      connections,
      inPackets: connections * 6,
      outPackets: connections * 4,
      inBytes: connections * 400,
      outBytes: connections * 52_000,
      connectionsPerSec: 2,
      inPacketsPerSec: 12,
      outPacketsPerSec: 8,
      inBytesPerSec: 800,
      outBytesPerSec: 104_000,
      activeConnections: active,
      inactiveConnections: inactive,
      readAtWallMs: Date.UTC(2026, 0, 1),
    });
    const web = service('web', [
      server('rs1', { address: '192.0.2.11', traffic: t(1500, 3, 40) }),
      server('rs2', { address: '192.0.2.12', traffic: t(12_345, 0, 61), quiet: { reason: 'no-replies', detail: '40 new connections and not one packet back', sinceWallMs: Date.UTC(2026, 0, 1) } }),
      server('rs3', { address: '192.0.2.13', pooled: false }),
    ], { forwardMethod: 'nat', traffic: t(13_845, 3, 101) });
    const text = formatStatus(daemon([web]));
    expect(text).toContain(
      [
        'web  192.0.2.1:80/tcp  scheduler wrr  nat',
        '  pooled 2/3, depool threshold 0.5, can depool: yes, could not depool: 0 time(s)',
        '  traffic: 13.8k conns (2/s), in 83.1k pkts 5.5M bytes (12 pkt/s, 800 B/s), out 55.4k pkts 719.9M bytes (8 pkt/s, 104.0k B/s), read 2026-01-01T00:00:00.000Z',
        '  HOST  ADDRESS     WEIGHT  ENABLED  UP   POOLED       CONNS  CONN/S  ACT/INACT  LAST MONITOR REASON',
        '  rs1   192.0.2.11  10      yes      yes  yes          1500   2       3/40       ProxyFetch: Fetch successful',
        '  rs2   192.0.2.12  10      yes      yes  yes (QUIET)  12.3k  2       0/61       ProxyFetch: Fetch successful',
        '  rs3   192.0.2.13  10      yes      yes  no           -      -       -          ProxyFetch: Fetch successful',
        '  rs2 gets no traffic while its siblings do (no-replies, since 2026-01-01T00:00:00.000Z): 40 new connections and not one packet back',
        '',
      ].join('\n'),
    );
  });

  it('says so and exits 2 when the daemon is not there', async () => {
    const socket = join(dir, 'missing.sock');
    const out = capture();
    const err = capture();
    expect(await runStatus({ socket }, out, err)).toBe(2);
    expect(out.text()).toBe('');
    expect(err.text()).toBe(
      `pybal status: cannot get the status from the daemon at ${socket}: connect ENOENT ${socket}\n` +
        'Health: UNREACHABLE: is pybal running? (Use --socket or --url to point at it.)\n',
    );
  });

  it('exits 2 on a port where nothing listens, or an answer that is not a status', async () => {
    const [bound] = await api.listen({ ips: ['127.0.0.1'], port: 0 });
    const port = bound?.port ?? 0;
    const err = capture();
    expect(await runStatus({ url: `http://127.0.0.1:${port}/pools/` }, capture(), err)).toBe(2);
    expect(err.text()).toContain(`daemon at http://127.0.0.1:${port}/pools/: HTTP 404`);
    await api.close();
    const err2 = capture();
    expect(await runStatus({ url: `http://127.0.0.1:${port}` }, capture(), err2)).toBe(2);
    expect(err2.text()).toContain('ECONNREFUSED');
  });
});
