import fs, { closeSync, openSync } from 'node:fs';

import { Counter, Gauge, Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { PybalMetrics } from '../../src/api/metrics.js';
import { readVersion } from '../../src/runtime/version.js';
import type { CheckResult, MonitorReport } from '../../src/monitors/types.js';
import { daemon, monitor, NOT_DRAINED, peer, server, service } from './fixtures.js';

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses the Prometheus text exposition back into samples; also returns each metric's TYPE. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1] ?? '', type[2] ?? '');
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key = '', value = ''] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key] = value;
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return { samples, types };
}

async function samples(metrics: PybalMetrics, name: string): Promise<Sample[]> {
  return parse(await metrics.render()).samples.filter((s) => s.name === name);
}

async function value(metrics: PybalMetrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  return (await samples(metrics, name)).find((s) => JSON.stringify(s.labels) === JSON.stringify(labels))?.value;
}

const report = (kind: MonitorReport['kind'], up: boolean): MonitorReport => ({ kind, up, reason: up ? 'ok' : 'bad', firstCheck: false, atMs: 1 });
const result = (over: Partial<CheckResult> & Pick<CheckResult, 'kind'>): CheckResult => ({ ok: true, reason: 'ok', durationMs: 250, ...over });

describe('PybalMetrics', () => {
  it('refreshes the service gauges and could-not-depool counter from the snapshot', async () => {
    const metrics = new PybalMetrics({ processMetrics: false });
    metrics.update(
      daemon([
        service(
          'text',
          [
            server('a'),
            server('b', { enabled: false, pooled: false }),
            server('c', { up: false, pooledDown: true }),
            server('d', { up: false, pooled: false }),
          ],
          { canDepool: false, couldNotDepoolTotal: 3, depoolThreshold: 0.6 },
        ),
        service('dns', [server('dns1')]),
      ]),
    );
    const text = { service: 'text' };
    expect(await value(metrics, 'pybal_service_servers', text)).toBe(4);
    expect(await value(metrics, 'pybal_service_servers_enabled', text)).toBe(3);
    expect(await value(metrics, 'pybal_service_servers_up', text)).toBe(2);
    expect(await value(metrics, 'pybal_service_servers_pooled', text)).toBe(2);
    expect(await value(metrics, 'pybal_service_can_depool', text)).toBe(0);
    expect(await value(metrics, 'pybal_service_pooled_down_servers', text)).toBe(1);
    expect(await value(metrics, 'pybal_service_depool_threshold', text)).toBe(0.6);
    expect(await value(metrics, 'pybal_service_could_not_depool_total', text)).toBe(3);
    expect(await value(metrics, 'pybal_service_can_depool', { service: 'dns' })).toBe(1);
    const { types } = parse(await metrics.render());
    expect(types.get('pybal_service_could_not_depool_total')).toBe('counter');
    expect(types.get('pybal_service_servers')).toBe('gauge');

    // A later snapshot without dns: its series are gone; the counter follows the coordinator's total.
    metrics.update(daemon([service('text', [server('a')], { couldNotDepoolTotal: 5 })]));
    expect(await value(metrics, 'pybal_service_could_not_depool_total', text)).toBe(5);
    expect(await samples(metrics, 'pybal_service_servers')).toEqual([{ name: 'pybal_service_servers', labels: text, value: 1 }]);
  });

  it('counts reports and results per service, host and monitor', async () => {
    const metrics = new PybalMetrics({ processMetrics: false });
    const labels = { service: 'text', host: 'a', monitor: 'ProxyFetch' };
    metrics.recordReport('text', 'a', report('ProxyFetch', true));
    metrics.recordReport('text', 'a', report('ProxyFetch', false));
    metrics.recordReport('text', 'a', report('ProxyFetch', true));
    for (const ok of [true, true, false, true]) {
      metrics.recordResult('text', 'a', result({ kind: 'ProxyFetch', ok, urls: [{ url: 'http://x/', ok, reason: '', durationMs: ok ? 120 : 1500 }] }));
    }
    expect(await value(metrics, 'pybal_monitor_up_transitions_total', labels)).toBe(2);
    expect(await value(metrics, 'pybal_monitor_down_transitions_total', labels)).toBe(1);
    expect(await value(metrics, 'pybal_monitor_up_results_total', labels)).toBe(3);
    expect(await value(metrics, 'pybal_monitor_down_results_total', labels)).toBe(1);
    expect(await value(metrics, 'pybal_monitor_status', labels)).toBe(1);
    expect(await value(metrics, 'pybal_monitor_proxyfetch_request_duration_seconds', { ...labels, result: 'successful', url: 'http://x/' })).toBe(0.12);
    expect(await value(metrics, 'pybal_monitor_proxyfetch_request_duration_seconds', { ...labels, result: 'failed', url: 'http://x/' })).toBe(1.5);
  });

  it('writes the monitor series as prom-client counters and gauges fed the same results would', async () => {
    // The oracle: the same metrics as prom-client objects, fed the same events.
    const registry = new Registry();
    const names = ['service', 'host', 'monitor'];
    const oracle = {
      upT: new Counter({ name: 'pybal_monitor_up_transitions_total', help: 'Monitor transitions to up', labelNames: names, registers: [registry] }),
      downT: new Counter({ name: 'pybal_monitor_down_transitions_total', help: 'Monitor transitions to down', labelNames: names, registers: [registry] }),
      upR: new Counter({ name: 'pybal_monitor_up_results_total', help: 'Successful monitor checks', labelNames: names, registers: [registry] }),
      downR: new Counter({ name: 'pybal_monitor_down_results_total', help: 'Failed monitor checks', labelNames: names, registers: [registry] }),
      status: new Gauge({ name: 'pybal_monitor_status', help: 'Monitor status (1 up, 0 down)', labelNames: names, registers: [registry] }),
      fetch: new Gauge({
        name: 'pybal_monitor_proxyfetch_request_duration_seconds',
        help: 'ProxyFetch request duration',
        labelNames: [...names, 'result', 'url'],
        registers: [registry],
      }),
      lost: new Counter({
        name: 'pybal_monitor_idleconnection_connections_lost_total',
        help: 'IdleConnection connections lost',
        labelNames: [...names, 'reason'],
        registers: [registry],
      }),
    };
    const metrics = new PybalMetrics({ processMetrics: false });
    const events: [string, string, boolean, 'ProxyFetch' | 'IdleConnection', boolean][] = [
      // host, url, report?, kind, ok
      ['a "q" \\ b', 'http://x/\n', true, 'ProxyFetch', true],
      ['a "q" \\ b', 'http://x/\n', false, 'ProxyFetch', false],
      ['c', 'http://y/', false, 'ProxyFetch', false],
      ['c', 'http://y/', true, 'ProxyFetch', false],
      ['a "q" \\ b', 'http://x/\n', false, 'ProxyFetch', true],
      ['d', '', true, 'IdleConnection', true],
      ['d', '', false, 'IdleConnection', false],
    ];
    for (const [host, url, isReport, kind, ok] of events) {
      const labels = { service: 'web', host, monitor: kind };
      if (isReport) {
        metrics.recordReport('web', host, report(kind, ok));
        (ok ? oracle.upT : oracle.downT).inc(labels);
        oracle.status.set(labels, ok ? 1 : 0);
      }
      const urls = url === '' ? undefined : [{ url, ok, reason: '', durationMs: ok ? 12 : 5000 }];
      const idle = kind === 'IdleConnection' && !ok ? { event: 'connection-lost' as const, errorCode: 'ECONNRESET' } : {};
      metrics.recordResult('web', host, result({ kind, ok, ...(urls ? { urls } : {}), ...idle }));
      (ok ? oracle.upR : oracle.downR).inc(labels);
      if (urls) oracle.fetch.set({ ...labels, result: ok ? 'successful' : 'failed', url }, ok ? 0.012 : 5);
      if (kind === 'IdleConnection' && !ok) oracle.lost.inc({ ...labels, reason: 'ECONNRESET' });
    }
    // Each metric's block, its series in a fixed order (the order of series within a metric carries no meaning).
    const blocks = (text: string): Map<string, string> =>
      new Map(
        text
          .trim()
          .split('\n\n')
          .map((block) => {
            const lines = block.split('\n');
            const name = /^# HELP (\S+)/.exec(lines[0] ?? '')?.[1] ?? '';
            return [name, [...lines.slice(0, 2), ...lines.slice(2).sort()].join('\n')];
          }),
      );
    const ours = blocks(await metrics.render());
    const theirs = blocks(await registry.metrics());
    expect(theirs.size).toBe(7);
    for (const [name, block] of theirs) expect(ours.get(name), name).toBe(block);
    // Nothing was counted for these: their blocks have no series.
    expect(ours.get('pybal_monitor_dnsquery_request_duration_seconds')).toMatch(/^# HELP .*\n# TYPE \S+ gauge$/);
    expect(ours.get('pybal_monitor_idleconnection_connections_failed_total')).toMatch(/^# HELP .*\n# TYPE \S+ counter$/);
  });

  it('records DNSQuery, RunCommand and IdleConnection specifics', async () => {
    const metrics = new PybalMetrics({ processMetrics: false });
    const base = { service: 'dns', host: 'ns1' };
    metrics.recordResult('dns', 'ns1', result({ kind: 'DNSQuery', ok: false, durationMs: 30 }));
    metrics.recordResult('dns', 'ns1', result({ kind: 'RunCommand', ok: false, exitCode: 2, durationMs: 2000 }));
    metrics.recordResult('dns', 'ns1', result({ kind: 'RunCommand', ok: false, exitCode: null, durationMs: 5000 }));
    metrics.recordResult('dns', 'ns1', result({ kind: 'IdleConnection', ok: false, event: 'connect-failed', errorCode: 'ECONNREFUSED' }));
    metrics.recordResult('dns', 'ns1', result({ kind: 'IdleConnection', ok: false, event: 'connect-failed', errorCode: 'ECONNREFUSED' }));
    metrics.recordResult('dns', 'ns1', result({ kind: 'IdleConnection', ok: false, event: 'connection-lost', errorCode: 'ECONNRESET' }));
    metrics.recordResult('dns', 'ns1', result({ kind: 'IdleConnection', ok: true, event: 'connected' }));
    expect(await value(metrics, 'pybal_monitor_dnsquery_request_duration_seconds', { ...base, monitor: 'DNSQuery', result: 'failed' })).toBe(0.03);
    expect(await value(metrics, 'pybal_monitor_runcommand_run_duration_seconds', { ...base, monitor: 'RunCommand', result: 'failed', exitcode: '2' })).toBe(2);
    expect(await value(metrics, 'pybal_monitor_runcommand_run_duration_seconds', { ...base, monitor: 'RunCommand', result: 'failed', exitcode: 'none' })).toBe(5);
    const idle = { ...base, monitor: 'IdleConnection' };
    expect(await value(metrics, 'pybal_monitor_idleconnection_connections_failed_total', { ...idle, reason: 'ECONNREFUSED' })).toBe(2);
    expect(await value(metrics, 'pybal_monitor_idleconnection_connections_lost_total', { ...idle, reason: 'ECONNRESET' })).toBe(1);
    expect(await value(metrics, 'pybal_monitor_up_results_total', idle)).toBe(1);
    expect(await value(metrics, 'pybal_monitor_down_results_total', idle)).toBe(3);
  });

  it("drops a removed server's series, by forgetServer or when the snapshot no longer has it", async () => {
    const metrics = new PybalMetrics({ processMetrics: false });
    for (const host of ['a', 'b', 'c']) {
      metrics.recordReport('text', host, report('IdleConnection', true));
      metrics.recordResult('text', host, result({ kind: 'IdleConnection', ok: false, event: 'connection-lost', errorCode: 'EPIPE' }));
    }
    const hosts = async (name: string): Promise<string[]> => (await samples(metrics, name)).map((s) => s.labels.host ?? '').sort();
    expect(await hosts('pybal_monitor_idleconnection_connections_lost_total')).toEqual(['a', 'b', 'c']);
    metrics.forgetServer('text', 'b');
    expect(await hosts('pybal_monitor_idleconnection_connections_lost_total')).toEqual(['a', 'c']);
    expect(await hosts('pybal_monitor_status')).toEqual(['a', 'c']);
    // The snapshot only has a: c goes too; a's monitor status follows the snapshot.
    metrics.update(daemon([service('text', [server('a', { monitors: [monitor({ kind: 'IdleConnection', up: false })] })])]));
    for (const name of ['pybal_monitor_up_transitions_total', 'pybal_monitor_down_results_total', 'pybal_monitor_status']) {
      expect(await hosts(name)).toEqual(['a']);
    }
    expect(await value(metrics, 'pybal_monitor_status', { service: 'text', host: 'a', monitor: 'IdleConnection' })).toBe(0);
  });

  it('exposes BGP sessions', async () => {
    const metrics = new PybalMetrics({ processMetrics: false });
    metrics.update(daemon([]));
    expect(await value(metrics, 'pybal_bgp_enabled')).toBe(0);
    expect(await samples(metrics, 'pybal_bgp_session_established')).toEqual([]);
    metrics.update(
      daemon([], {
        bgp: {
          enabled: true,
          localAsn: 64600,
          ...NOT_DRAINED,
          peers: [
            peer('192.0.2.254', { localAddress: '192.0.2.2', updatesTreatedAsWithdraw: 3, attributesDiscarded: 2, routeRefreshesIgnored: 1 }),
            peer('2001:db8::fe', { state: 'Active', side: undefined }),
          ],
        },
      }),
    );
    expect(await value(metrics, 'pybal_bgp_enabled')).toBe(1);
    expect(await value(metrics, 'pybal_bgp_session_established', { local_asn: '64600', peer: '192.0.2.254' })).toBe(1);
    expect(await value(metrics, 'pybal_bgp_session_established', { local_asn: '64600', peer: '2001:db8::fe' })).toBe(0);
    expect(await samples(metrics, 'pybal_bgp_session_state_count')).toEqual([
      {
        name: 'pybal_bgp_session_state_count',
        labels: { local_asn: '64600', state: 'Established', local_ip: '192.0.2.2', remote_ip: '192.0.2.254', side: 'active' },
        value: 1,
      },
      {
        name: 'pybal_bgp_session_state_count',
        labels: { local_asn: '64600', state: 'Active', local_ip: '', remote_ip: '2001:db8::fe', side: '' },
        value: 1,
      },
    ]);
    const errors = { local_asn: '64600', peer: '192.0.2.254' };
    expect(await value(metrics, 'pybal_bgp_update_errors_total', { ...errors, action: 'treat-as-withdraw' })).toBe(3);
    expect(await value(metrics, 'pybal_bgp_update_errors_total', { ...errors, action: 'attribute-discard' })).toBe(2);
    expect(await value(metrics, 'pybal_bgp_route_refreshes_ignored_total', errors)).toBe(1);
    expect(await value(metrics, 'pybal_bgp_route_refreshes_ignored_total', { local_asn: '64600', peer: '2001:db8::fe' })).toBe(0);
    // A peer that is gone takes its series along.
    metrics.update(daemon([], { bgp: { enabled: true, localAsn: 64600, peers: [peer('2001:db8::fe')], ...NOT_DRAINED } }));
    expect((await samples(metrics, 'pybal_bgp_update_errors_total')).map((s) => s.labels.peer)).toEqual(['2001:db8::fe', '2001:db8::fe']);
  });

  it('exposes whether the director is drained (pybal_bgp_drained 0/1), BGP on or off', async () => {
    const metrics = new PybalMetrics({ processMetrics: false });
    metrics.update(daemon([]));
    expect(await value(metrics, 'pybal_bgp_drained')).toBe(0);
    const drained = { drained: true, drainedSinceWallMs: 1_700_000_000_000, drainMed: 4294967295 };
    metrics.update(daemon([], { bgp: { enabled: true, localAsn: 64600, peers: [peer('192.0.2.254')], ...drained } }));
    expect(await value(metrics, 'pybal_bgp_drained')).toBe(1);
    metrics.update(daemon([], { bgp: { enabled: false, localAsn: undefined, peers: [], ...drained } }));
    expect(await value(metrics, 'pybal_bgp_drained')).toBe(1);
    metrics.update(daemon([]));
    expect(await value(metrics, 'pybal_bgp_drained')).toBe(0);
  });

  it('exposes the IPVS manager statistics', async () => {
    const metrics = new PybalMetrics({ processMetrics: false });
    metrics.update(daemon([]));
    expect(await samples(metrics, 'pybal_ipvs_requests_total')).toEqual([]);
    const ipvs = {
      reconciles: 12,
      failedReconciles: 1,
      requests: 40,
      failedRequests: 2,
      resyncs: 3,
      drift: 4,
      lastReconcileMs: 2.5,
      totalReconcileMs: 1500,
      lastError: undefined,
    };
    metrics.update(daemon([], { ipvs }));
    metrics.update(daemon([], { ipvs }));
    expect(await value(metrics, 'pybal_ipvs_reconciles_total')).toBe(12);
    expect(await value(metrics, 'pybal_ipvs_reconcile_failures_total')).toBe(1);
    expect(await value(metrics, 'pybal_ipvs_requests_total')).toBe(40);
    expect(await value(metrics, 'pybal_ipvs_request_failures_total')).toBe(2);
    expect(await value(metrics, 'pybal_ipvs_resyncs_total')).toBe(3);
    expect(await value(metrics, 'pybal_ipvs_drift_total')).toBe(4);
    expect(await value(metrics, 'pybal_ipvs_reconcile_duration_seconds_total')).toBe(1.5);
    expect(await value(metrics, 'pybal_ipvs_last_reconcile_duration_seconds')).toBe(0.0025);
    // No statistics any more (no manager): the series go rather than read 0.
    metrics.update(daemon([]));
    expect(parse(await metrics.render()).samples.filter((s) => s.name.startsWith('pybal_ipvs_'))).toEqual([]);
  });

  it('exposes the event loop stalls', async () => {
    const metrics = new PybalMetrics({ processMetrics: false });
    metrics.update(daemon([]));
    expect(await samples(metrics, 'pybal_event_loop_stalls_total')).toEqual([]);
    metrics.update(daemon([], { eventLoop: { stalls: 3, longestMs: 250 } }));
    metrics.update(daemon([], { eventLoop: { stalls: 4, longestMs: 250 } }));
    expect(await value(metrics, 'pybal_event_loop_stalls_total')).toBe(4);
    expect(await value(metrics, 'pybal_event_loop_longest_stall_seconds')).toBe(0.25);
    expect(parse(await metrics.render()).types.get('pybal_event_loop_stalls_total')).toBe('counter');
  });

  it("exposes the checks thread's heap once the thread has said it, and its latest figures", async () => {
    const metrics = new PybalMetrics({ processMetrics: false });
    metrics.update(daemon([], { checksEventLoop: { stalls: 0, longestMs: 0 } }));
    expect(await samples(metrics, 'pybal_checks_thread_heap_used_bytes')).toEqual([]);
    metrics.update(daemon([], { checksHeap: { usedBytes: 20_000_000, totalBytes: 26_000_000 } }));
    metrics.update(daemon([], { checksHeap: { usedBytes: 21_500_000, totalBytes: 27_000_000 } }));
    expect(await value(metrics, 'pybal_checks_thread_heap_used_bytes')).toBe(21_500_000);
    expect(await value(metrics, 'pybal_checks_thread_heap_size_bytes')).toBe(27_000_000);
    expect(parse(await metrics.render()).types.get('pybal_checks_thread_heap_size_bytes')).toBe('gauge');
  });

  it("exposes the C heap and its trims once they can be read, and their latest figures", async () => {
    const metrics = new PybalMetrics({ processMetrics: false });
    metrics.update(daemon([], {}));
    expect(await samples(metrics, 'pybal_malloc_heap_bytes')).toEqual([]);
    expect(await samples(metrics, 'pybal_malloc_trims_total')).toEqual([]);
    metrics.update(daemon([], { mallocHeap: { heapBytes: 30_000_000, inUseBytes: 12_000_000, trims: 2 } }));
    metrics.update(daemon([], { mallocHeap: { heapBytes: 31_000_000, inUseBytes: 12_500_000, trims: 3 } }));
    expect(await value(metrics, 'pybal_malloc_heap_bytes')).toBe(31_000_000);
    expect(await value(metrics, 'pybal_malloc_in_use_bytes')).toBe(12_500_000);
    expect(await value(metrics, 'pybal_malloc_trims_total')).toBe(3);
    const types = parse(await metrics.render()).types;
    expect([types.get('pybal_malloc_heap_bytes'), types.get('pybal_malloc_trims_total')]).toEqual(['gauge', 'counter']);
  });

  it('adds process metrics under their standard names and pybal_build_info, one registry per instance', async () => {
    const a = new PybalMetrics();
    const b = new PybalMetrics();
    const names = new Set(parse(await a.render()).samples.map((s) => s.name));
    expect(names.has('process_cpu_user_seconds_total')).toBe(true);
    expect(names.has('process_resident_memory_bytes')).toBe(true);
    expect(names.has('nodejs_heap_size_used_bytes')).toBe(true);
    expect([...names].filter((n) => n.startsWith('pybal_process_') || n.startsWith('pybal_nodejs_'))).toEqual([]);
    expect(await samples(a, 'pybal_build_info')).toEqual([{ name: 'pybal_build_info', labels: { version: readVersion(), nodejs_version: process.versions.node }, value: 1 }]);
    a.recordReport('s', 'h', report('Ping', true));
    expect(await samples(b, 'pybal_monitor_status')).toEqual([]);
  });

  it('counts the open file descriptors (process_open_fds) off the event loop, and counts each one', async () => {
    const metrics = new PybalMetrics();
    const sync = vi.spyOn(fs, 'readdirSync');
    const before = await value(metrics, 'process_open_fds');
    // A daemon with a connection per server has thousands: these 200 are counted too.
    const opened = Array.from({ length: 200 }, () => openSync('/dev/null', 'r'));
    try {
      const during = await value(metrics, 'process_open_fds');
      expect((during ?? 0) - (before ?? 0)).toBe(200);
    } finally {
      for (const fd of opened) closeSync(fd);
    }
    expect(await value(metrics, 'process_open_fds')).toBe(before);
    // Read with fs.promises.readdir, not with the readdirSync prom-client's own gauge calls in the scrape.
    expect(sync.mock.calls.filter(([path]) => path === '/proc/self/fd')).toEqual([]);
    sync.mockRestore();
    expect(parse(await metrics.render()).types.get('process_open_fds')).toBe('gauge');
  });
});
