/**
 * Prometheus metrics with PyBal's names and labels (§8.2), plus IPVS ones.
 * Monitor counters are fed as results arrive (recordReport/recordResult);
 * everything else is refreshed from the daemon snapshot at scrape time
 * (update), so that series of removed services and peers disappear.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { CheckResult, MonitorReport } from '../monitors/types.js';
import type { DaemonSnapshot } from './types.js';

type Labels = Record<string, string>;

const SERVICE = ['service'] as const;
const MONITOR = ['service', 'host', 'monitor'] as const;

export interface MetricsOptions {
  /** Node process metrics (CPU, memory, event loop), prefixed `pybal_`. Default true. */
  readonly processMetrics?: boolean;
}

/** PyBal's `result` label value. */
function resultLabel(ok: boolean): string {
  return ok ? 'successful' : 'failed';
}

function seconds(ms: number): number {
  return ms / 1000;
}

export class PybalMetrics {
  readonly registry = new Registry();

  private readonly serviceServers = this.gauge('pybal_service_servers', 'Number of servers in the service', SERVICE);
  private readonly serviceEnabled = this.gauge('pybal_service_servers_enabled', 'Number of enabled servers', SERVICE);
  private readonly serviceUp = this.gauge('pybal_service_servers_up', 'Number of up servers', SERVICE);
  private readonly servicePooled = this.gauge('pybal_service_servers_pooled', 'Number of pooled servers', SERVICE);
  private readonly serviceCanDepool = this.gauge('pybal_service_can_depool', 'Whether a server can be depooled (0/1)', SERVICE);
  private readonly servicePooledDown = this.gauge('pybal_service_pooled_down_servers', 'Servers down but kept pooled by the depool threshold', SERVICE);
  private readonly serviceThreshold = this.gauge('pybal_service_depool_threshold', 'The depool threshold', SERVICE);
  private readonly couldNotDepool = this.counter('pybal_service_could_not_depool_total', 'Times a down server could not be depooled', SERVICE);

  private readonly upTransitions = this.counter('pybal_monitor_up_transitions_total', 'Monitor transitions to up', MONITOR);
  private readonly downTransitions = this.counter('pybal_monitor_down_transitions_total', 'Monitor transitions to down', MONITOR);
  private readonly upResults = this.counter('pybal_monitor_up_results_total', 'Successful monitor checks', MONITOR);
  private readonly downResults = this.counter('pybal_monitor_down_results_total', 'Failed monitor checks', MONITOR);
  private readonly monitorStatus = this.gauge('pybal_monitor_status', 'Monitor status (1 up, 0 down)', MONITOR);
  private readonly proxyFetchDuration = this.gauge('pybal_monitor_proxyfetch_request_duration_seconds', 'ProxyFetch request duration', [
    ...MONITOR,
    'result',
    'url',
  ]);
  private readonly dnsQueryDuration = this.gauge('pybal_monitor_dnsquery_request_duration_seconds', 'DNSQuery request duration', [
    ...MONITOR,
    'result',
  ]);
  private readonly runCommandDuration = this.gauge('pybal_monitor_runcommand_run_duration_seconds', 'RunCommand run duration', [
    ...MONITOR,
    'result',
    'exitcode',
  ]);
  private readonly idleFailed = this.counter('pybal_monitor_idleconnection_connections_failed_total', 'IdleConnection connection failures', [
    ...MONITOR,
    'reason',
  ]);
  private readonly idleLost = this.counter('pybal_monitor_idleconnection_connections_lost_total', 'IdleConnection connections lost', [
    ...MONITOR,
    'reason',
  ]);

  private readonly bgpEnabled = this.gauge('pybal_bgp_enabled', 'Whether BGP is enabled', []);
  private readonly bgpEstablished = this.gauge('pybal_bgp_session_established', 'BGP session established (0/1)', ['local_asn', 'peer']);
  private readonly bgpStateCount = this.gauge('pybal_bgp_session_state_count', 'BGP sessions per FSM state', [
    'local_asn',
    'state',
    'local_ip',
    'remote_ip',
    'side',
  ]);

  // Registered only while there are IPVS statistics: label-less series would otherwise show a misleading 0.
  private readonly ipvsReconciles = this.counter('pybal_ipvs_reconciles_total', 'IPVS reconciles run', [], false);
  private readonly ipvsReconcileFailures = this.counter('pybal_ipvs_reconcile_failures_total', 'IPVS reconciles that failed', [], false);
  private readonly ipvsReconcileSeconds = this.counter('pybal_ipvs_reconcile_duration_seconds_total', 'Time spent reconciling IPVS', [], false);
  private readonly ipvsLastReconcile = this.gauge('pybal_ipvs_last_reconcile_duration_seconds', 'Duration of the last IPVS reconcile', [], false);
  private readonly ipvsRequests = this.counter('pybal_ipvs_requests_total', 'IPVS netlink write requests', [], false);
  private readonly ipvsRequestFailures = this.counter('pybal_ipvs_request_failures_total', 'IPVS netlink write requests that failed', [], false);
  private readonly ipvsResyncs = this.counter('pybal_ipvs_resyncs_total', 'Full IPVS dumps', [], false);
  private readonly ipvsDrift = this.counter('pybal_ipvs_drift_total', 'Differences found between the kernel and the model', [], false);

  private readonly loopStalls = this.counter('pybal_event_loop_stalls_total', 'Times the event loop was held over 100 ms (checks, BGP and the API waited)', [], false);
  private readonly loopLongest = this.gauge('pybal_event_loop_longest_stall_seconds', 'The longest the event loop was held since start', [], false);

  /** Series fed per server (monitor counters), by server key then series key, so forgetServer can drop them. */
  private readonly serverSeries = new Map<string, Map<Metric, Map<string, Labels>>>();

  constructor(options: MetricsOptions = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'pybal_' });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** A monitor's first result or a transition (PyBal's resultUp/resultDown). */
  recordReport(service: string, host: string, report: MonitorReport): void {
    const labels = { service, host, monitor: report.kind };
    this.inc(report.up ? this.upTransitions : this.downTransitions, labels);
    this.track(this.monitorStatus, labels).set(labels, report.up ? 1 : 0);
  }

  /** Every check result. */
  recordResult(service: string, host: string, result: CheckResult): void {
    const labels = { service, host, monitor: result.kind };
    this.inc(result.ok ? this.upResults : this.downResults, labels);
    switch (result.kind) {
      case 'ProxyFetch':
        for (const url of result.urls ?? []) {
          this.setGauge(this.proxyFetchDuration, { ...labels, result: resultLabel(url.ok), url: url.url }, seconds(url.durationMs));
        }
        break;
      case 'DNSQuery':
        this.setGauge(this.dnsQueryDuration, { ...labels, result: resultLabel(result.ok) }, seconds(result.durationMs));
        break;
      case 'RunCommand':
        this.setGauge(
          this.runCommandDuration,
          { ...labels, result: resultLabel(result.ok), exitcode: result.exitCode == null ? 'none' : String(result.exitCode) },
          seconds(result.durationMs),
        );
        break;
      case 'IdleConnection': {
        const reason = result.errorCode ?? 'unknown';
        if (result.event === 'connect-failed') this.inc(this.idleFailed, { ...labels, reason });
        if (result.event === 'connection-lost') this.inc(this.idleLost, { ...labels, reason });
        break;
      }
      default:
        break;
    }
  }

  /** Drops every series of a server that left its pool (or whose service was removed). */
  forgetServer(service: string, host: string): void {
    const key = serverKey(service, host);
    for (const [metric, series] of this.serverSeries.get(key) ?? []) {
      for (const labels of series.values()) (metric as Counter<string>).remove(labels);
    }
    this.serverSeries.delete(key);
  }

  /** Refreshes everything derived from the snapshot; call right before render(). */
  update(snapshot: DaemonSnapshot): void {
    for (const gauge of [
      this.serviceServers,
      this.serviceEnabled,
      this.serviceUp,
      this.servicePooled,
      this.serviceCanDepool,
      this.servicePooledDown,
      this.serviceThreshold,
      this.couldNotDepool,
    ]) {
      gauge.reset();
    }
    const known = new Set<string>();
    for (const service of snapshot.services) {
      const labels = { service: service.name };
      const servers = service.servers;
      this.serviceServers.set(labels, servers.length);
      this.serviceEnabled.set(labels, servers.filter((s) => s.enabled).length);
      this.serviceUp.set(labels, servers.filter((s) => s.up).length);
      this.servicePooled.set(labels, servers.filter((s) => s.pooled).length);
      this.serviceCanDepool.set(labels, service.canDepool ? 1 : 0);
      this.servicePooledDown.set(labels, servers.filter((s) => s.pooledDown).length);
      this.serviceThreshold.set(labels, service.depoolThreshold);
      this.couldNotDepool.inc(labels, service.couldNotDepoolTotal);
      for (const server of servers) {
        known.add(serverKey(service.name, server.host));
        for (const monitor of server.monitors) {
          if (monitor.up === undefined) continue;
          const monitorLabels = { service: service.name, host: server.host, monitor: monitor.kind };
          this.track(this.monitorStatus, monitorLabels).set(monitorLabels, monitor.up ? 1 : 0);
        }
      }
    }
    // Servers the daemon forgot to forget: their series must not outlive them.
    for (const key of [...this.serverSeries.keys()]) {
      if (!known.has(key)) {
        const [service = '', host = ''] = JSON.parse(key) as string[];
        this.forgetServer(service, host);
      }
    }
    this.updateBgp(snapshot);
    this.updateIpvs(snapshot);
    this.updateEventLoop(snapshot);
  }

  private updateEventLoop({ eventLoop }: DaemonSnapshot): void {
    if (eventLoop === undefined) return;
    if (!this.registry.getSingleMetric('pybal_event_loop_stalls_total')) {
      this.registry.registerMetric(this.loopStalls);
      this.registry.registerMetric(this.loopLongest);
    }
    this.loopStalls.reset();
    this.loopStalls.inc(eventLoop.stalls);
    this.loopLongest.set(eventLoop.longestMs / 1000);
  }

  /** The exposition text. */
  async render(): Promise<string> {
    return this.registry.metrics();
  }

  private updateBgp({ bgp }: DaemonSnapshot): void {
    this.bgpEnabled.set(bgp.enabled ? 1 : 0);
    this.bgpEstablished.reset();
    this.bgpStateCount.reset();
    const localAsn = bgp.localAsn === undefined ? '' : String(bgp.localAsn);
    for (const peer of bgp.peers) {
      this.bgpEstablished.set({ local_asn: localAsn, peer: peer.peer }, peer.state === 'Established' ? 1 : 0);
      this.bgpStateCount.inc({
        local_asn: localAsn,
        state: peer.state,
        local_ip: peer.localAddress ?? '',
        remote_ip: peer.peer,
        side: peer.side ?? '',
      });
    }
  }

  private updateIpvs({ ipvs }: DaemonSnapshot): void {
    const values: [Counter<string> | Gauge<string>, number | undefined][] = [
      [this.ipvsReconciles, ipvs?.reconciles],
      [this.ipvsReconcileFailures, ipvs?.failedReconciles],
      [this.ipvsReconcileSeconds, ipvs === undefined ? undefined : seconds(ipvs.totalReconcileMs)],
      [this.ipvsRequests, ipvs?.requests],
      [this.ipvsRequestFailures, ipvs?.failedRequests],
      [this.ipvsResyncs, ipvs?.resyncs],
      [this.ipvsDrift, ipvs?.drift],
      [this.ipvsLastReconcile, ipvs?.lastReconcileMs === undefined ? undefined : seconds(ipvs.lastReconcileMs)],
    ];
    for (const [metric, value] of values) {
      const name = (metric as unknown as { name: string }).name;
      const registered = this.registry.getSingleMetric(name) !== undefined;
      if (value === undefined) {
        if (registered) this.registry.removeSingleMetric(name);
        continue;
      }
      if (!registered) this.registry.registerMetric(metric);
      // The manager keeps the totals: counters are set to them (reset, then one increment).
      metric.reset();
      metric.inc(value);
    }
  }

  private inc(counter: Counter<string>, labels: Labels & { service: string; host: string }): void {
    this.track(counter, labels).inc(labels);
  }

  private setGauge(gauge: Gauge<string>, labels: Labels & { service: string; host: string }, value: number): void {
    this.track(gauge, labels).set(labels, value);
  }

  /** Remembers a per-server series so that forgetServer can remove it. */
  private track<M extends Metric>(metric: M, labels: Labels & { service: string; host: string }): M {
    const key = serverKey(labels.service, labels.host);
    let series = this.serverSeries.get(key);
    if (!series) {
      series = new Map();
      this.serverSeries.set(key, series);
    }
    let ofMetric = series.get(metric);
    if (!ofMetric) {
      ofMetric = new Map();
      series.set(metric, ofMetric);
    }
    ofMetric.set(JSON.stringify(labels), labels);
    return metric;
  }

  private gauge<L extends string>(name: string, help: string, labelNames: readonly L[], register = true): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: register ? [this.registry] : [] });
  }

  private counter<L extends string>(name: string, help: string, labelNames: readonly L[], register = true): Counter<L> {
    return new Counter({ name, help, labelNames, registers: register ? [this.registry] : [] });
  }
}

function serverKey(service: string, host: string): string {
  return JSON.stringify([service, host]);
}
