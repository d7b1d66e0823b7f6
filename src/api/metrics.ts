/**
 * Prometheus metrics with PyBal's names and labels (§8.2), plus IPVS ones.
 * Monitor counters are fed as results arrive (recordReport/recordResult);
 * everything else is refreshed from the daemon snapshot at scrape time
 * (update), so that series of removed services and peers disappear.
 */
import { readdir } from 'node:fs/promises';

import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { CheckResult, MonitorReport } from '../monitors/types.js';
import { finish, sliced, turn, type SliceOptions } from '../runtime/sliced.js';
import { BlockPool, renderRegistry, renderRegistryBlocks } from './exposition.js';
import { add, counterOf, extraOf, MonitorSeries, MonitorSeriesMetric, type Picker } from './server-series.js';
import {
  pickActive,
  pickBytes,
  pickConnections,
  pickInactive,
  pickPackets,
  pickQuiet,
  RowsMetric,
  TrafficRows,
  type TrafficRow,
} from './traffic-series.js';
import type { DaemonSnapshot } from './types.js';
import { readVersion } from '../runtime/version.js';

type Labels = Record<string, string>;

const SERVICE = ['service'] as const;
/** prom-client's (and prometheus_client's) count of the process's open file descriptors. */
const OPEN_FDS = 'process_open_fds';
/**
 * A scrape's slices are shorter than the daemon's SLICE_BUDGET_MS: it is
 * background work, and on a loaded host a slice also absorbs a young-generation
 * GC pause or a moment without a CPU, which must not take a hold past 20 ms.
 */
const SCRAPE_SLICE_MS = 10;
/** Servers the update job walks between two chances to end a slice. */
const SERVERS_PER_STEP = 64;

export interface MetricsOptions {
  /** Node process metrics (CPU, memory, event loop) under their standard names. Default true. */
  readonly processMetrics?: boolean;
}

/** PyBal's `result` label value. */
function resultLabel(ok: boolean): string {
  return ok ? 'successful' : 'failed';
}

function seconds(ms: number): number {
  return ms / 1000;
}

/** Who shares one scrape's blocks: callers of scrape() that have not yet said written(), and whether one abandoned them. */
interface ScrapeShare {
  users: number;
  spoiled: boolean;
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

  // Per monitor of each server: kept on MonitorSeries objects, made into samples at scrape time
  // (registered here, between the service and the BGP metrics, as PyBal orders them).
  private readonly monitorMetrics = [
    this.monitorMetric('pybal_monitor_up_transitions_total', 'Monitor transitions to up', 'counter', counterOf((m) => m.upTransitions)),
    this.monitorMetric('pybal_monitor_down_transitions_total', 'Monitor transitions to down', 'counter', counterOf((m) => m.downTransitions)),
    this.monitorMetric('pybal_monitor_up_results_total', 'Successful monitor checks', 'counter', counterOf((m) => m.upResults)),
    this.monitorMetric('pybal_monitor_down_results_total', 'Failed monitor checks', 'counter', counterOf((m) => m.downResults)),
    this.monitorMetric('pybal_monitor_status', 'Monitor status (1 up, 0 down)', 'gauge', (m, emit) => {
      if (m.status !== undefined) emit(m.labels, m.status);
    }),
    this.monitorMetric('pybal_monitor_proxyfetch_request_duration_seconds', 'ProxyFetch request duration', 'gauge', durationsOf('ProxyFetch')),
    this.monitorMetric('pybal_monitor_dnsquery_request_duration_seconds', 'DNSQuery request duration', 'gauge', durationsOf('DNSQuery')),
    this.monitorMetric('pybal_monitor_runcommand_run_duration_seconds', 'RunCommand run duration', 'gauge', durationsOf('RunCommand')),
    this.monitorMetric('pybal_monitor_idleconnection_connections_failed_total', 'IdleConnection connection failures', 'counter', extraOf((m) => m.idleFailed)),
    this.monitorMetric('pybal_monitor_idleconnection_connections_lost_total', 'IdleConnection connections lost', 'counter', extraOf((m) => m.idleLost)),
  ];

  private readonly bgpEnabled = this.gauge('pybal_bgp_enabled', 'Whether BGP is enabled', []);
  // New: drained for maintenance (pybal drain, bgp-drain): every VIP announced with GRACEFUL_SHUTDOWN and bgp-drain-med.
  private readonly bgpDrained = this.gauge('pybal_bgp_drained', 'Whether this director is drained: every VIP announced with GRACEFUL_SHUTDOWN and bgp-drain-med (0/1)', []);
  private readonly bgpEstablished = this.gauge('pybal_bgp_session_established', 'BGP session established (0/1)', ['local_asn', 'peer']);
  // New: the BFD session with each peer, where bgp-bfd runs it.
  private readonly bgpBfdUp = this.gauge('pybal_bgp_bfd_up', 'BFD session with the BGP peer up (0/1), where bgp-bfd runs one', ['local_asn', 'peer']);
  private readonly bgpStateCount = this.gauge('pybal_bgp_session_state_count', 'BGP sessions per FSM state', [
    'local_asn',
    'state',
    'local_ip',
    'remote_ip',
    'side',
  ]);
  // New: what the peers sent that the sessions survived (RFC 7606, RFC 7313), from the speaker's totals.
  private readonly bgpUpdateErrors = this.counter('pybal_bgp_update_errors_total', 'Received UPDATEs treated as withdraw, and attributes discarded, the session kept (RFC 7606)', [
    'local_asn',
    'peer',
    'action',
  ]);
  private readonly bgpRouteRefreshesIgnored = this.counter('pybal_bgp_route_refreshes_ignored_total', 'Received ROUTE-REFRESH messages ignored (unknown subtype, family not negotiated)', [
    'local_asn',
    'peer',
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

  private readonly loopStalls = this.counter('pybal_event_loop_stalls_total', 'Times the main event loop was held over 100 ms (the API, pool files and IPVS waited)', [], false);
  private readonly loopLongest = this.gauge('pybal_event_loop_longest_stall_seconds', 'The longest the main event loop was held since start', [], false);
  private readonly checksLoopStalls = this.counter('pybal_checks_thread_event_loop_stalls_total', "Times the checks thread's event loop was held over 100 ms (checks started and were read late)", [], false);
  private readonly checksLoopLongest = this.gauge('pybal_checks_thread_event_loop_longest_stall_seconds', "The longest the checks thread's event loop was held since start", [], false);
  // The checks thread's own V8 heap (nodejs_heap_size_* are the main thread's): the process's RSS holds both.
  private readonly checksHeapUsed = this.gauge('pybal_checks_thread_heap_used_bytes', "The checks thread's JS heap in use", [], false);
  private readonly checksHeapTotal = this.gauge('pybal_checks_thread_heap_size_bytes', "The checks thread's JS heap, as V8 holds it", [], false);
  // The C heap (malloc, every thread): sockets, Buffers, messages between threads, V8's scratch memory.
  private readonly mallocHeap = this.gauge('pybal_malloc_heap_bytes', "The C heap's arenas and own mappings, as glibc holds them (trimmed free pages included)", [], false);
  private readonly mallocInUse = this.gauge('pybal_malloc_in_use_bytes', 'The C heap allocated', [], false);
  private readonly mallocTrims = this.counter('pybal_malloc_trims_total', "Times the C heap's free pages were given back to the kernel (malloc_trim)", [], false);

  // New: the kernel's IPVS counters (ipvs-stats-interval), per service and per server, from the
  // snapshot at scrape time; registered only while some were read (see traffic-series.ts for the names).
  private serviceTraffic: readonly TrafficRow[] = [];
  private serverTraffic: readonly TrafficRow[] = [];
  private readonly serviceTrafficRows = new TrafficRows();
  private readonly serverTrafficRows = new TrafficRows();
  private readonly trafficMetrics = [
    this.rowsMetric('pybal_ipvs_service_connections_total', 'Connections IPVS scheduled for the service (kernel counter)', 'counter', false, pickConnections),
    this.rowsMetric('pybal_ipvs_service_packets_total', 'Packets IPVS forwarded for the service, by direction (kernel counter)', 'counter', false, pickPackets),
    this.rowsMetric('pybal_ipvs_service_bytes_total', 'Bytes IPVS forwarded for the service, by direction (kernel counter)', 'counter', false, pickBytes),
    this.rowsMetric('pybal_ipvs_server_connections_total', 'Connections IPVS scheduled to the real server (kernel counter)', 'counter', true, pickConnections),
    this.rowsMetric('pybal_ipvs_server_packets_total', 'Packets IPVS forwarded for the real server, by direction (kernel counter)', 'counter', true, pickPackets),
    this.rowsMetric('pybal_ipvs_server_bytes_total', 'Bytes IPVS forwarded for the real server, by direction (kernel counter)', 'counter', true, pickBytes),
    this.rowsMetric('pybal_ipvs_server_active_connections', "The real server's connections in ESTABLISHED state (IPVS ActiveConn)", 'gauge', true, pickActive),
    this.rowsMetric('pybal_ipvs_server_inactive_connections', "The real server's connections in any other state (IPVS InActConn)", 'gauge', true, pickInactive),
    this.rowsMetric('pybal_ipvs_server_quiet', 'Pooled and up, yet no traffic while its siblings get some (1), else 0', 'gauge', true, pickQuiet),
  ];

  /** Series fed per server, by service then host, so forgetServer can drop them. */
  private readonly servers = new Map<string, Map<string, ServerRecord>>();
  /** Counts update jobs: a server record not seen by the latest one belongs to a server the snapshot no longer has. */
  private generation = 0;
  /** Update jobs running now, and the servers forgotten meanwhile (by serverKey). */
  private jobsRunning = 0;
  private readonly forgottenDuringJob = new Set<string>();
  /** The scrape running now, which later scrapes share, and how many share it. */
  private scraping: { readonly text: Promise<readonly Buffer[]>; readonly share: ScrapeShare } | undefined;
  /** A scrape's blocks, from its end until every request that asked for them said written(). */
  private readonly shares = new WeakMap<readonly Buffer[], ScrapeShare>();
  /** Blocks that one scrape's text is written into and the next written over (see BlockPool). */
  private readonly blocks = new BlockPool();

  constructor(options: MetricsOptions = {}) {
    // The standard names (process_*, nodejs_*), as PyBal's prometheus_client
    // gives process_*: the usual dashboards and alerts work unchanged. The
    // event-loop lag is sampled every 20 ms, as the stall watch ticks, not
    // every 10 (prom-client's default): each sample wakes the main thread,
    // and 100 wakes a second were a third of an idle daemon's wakes.
    if (options.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
      // prom-client counts them with readdirSync('/proc/self/fd') in the scrape: with a connection
      // per server (IdleConnection), 10,000 names read on the event loop. The same count, read off it.
      if (this.registry.getSingleMetric(OPEN_FDS) !== undefined) {
        this.registry.removeSingleMetric(OPEN_FDS);
        new Gauge({
          name: OPEN_FDS,
          help: 'Number of open file descriptors.',
          registers: [this.registry],
          async collect() {
            // The directory's own descriptor, open while it is read, is not counted.
            const fds = await readdir('/proc/self/fd').catch(() => undefined);
            if (fds !== undefined) this.set(fds.length - 1);
          },
        });
      }
    }
    this.gauge('pybal_build_info', 'The running pybal: its version and the Node.js that runs it (always 1)', ['version', 'nodejs_version']).set(
      { version: readVersion(), nodejs_version: process.versions.node },
      1,
    );
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** A monitor's first result or a transition (PyBal's resultUp/resultDown). */
  recordReport(service: string, host: string, report: MonitorReport): void {
    const monitor = this.monitor(service, host, report.kind);
    if (report.up) monitor.upTransitions += 1;
    else monitor.downTransitions += 1;
    this.setStatus(monitor, report.up, this.generation + 0.5);
  }

  /** Every check result: a counter increment, and for some kinds a duration or a failure reason. */
  recordResult(service: string, host: string, result: CheckResult): void {
    const monitor = this.monitor(service, host, result.kind);
    if (result.ok) monitor.upResults += 1;
    else monitor.downResults += 1;
    switch (result.kind) {
      case 'ProxyFetch':
        for (const url of result.urls ?? []) {
          const label = resultLabel(url.ok);
          monitor.setDuration(label, 'url', url.url, seconds(url.durationMs));
        }
        break;
      case 'DNSQuery': {
        const label = resultLabel(result.ok);
        monitor.setDuration(label, undefined, undefined, seconds(result.durationMs));
        break;
      }
      case 'RunCommand': {
        const label = resultLabel(result.ok);
        const exitcode = result.exitCode == null ? 'none' : String(result.exitCode);
        monitor.setDuration(label, 'exitcode', exitcode, seconds(result.durationMs));
        break;
      }
      case 'IdleConnection': {
        const reason = result.errorCode ?? 'unknown';
        if (result.event === 'connect-failed') monitor.countIdle('failed', reason);
        if (result.event === 'connection-lost') monitor.countIdle('lost', reason);
        break;
      }
      default:
        break;
    }
  }

  /** Drops every series of a server that left its pool (or whose service was removed). */
  forgetServer(service: string, host: string): void {
    // An update job running now must not bring it back from its (older) snapshot.
    if (this.jobsRunning > 0) this.forgottenDuringJob.add(serverKey(service, host));
    const hosts = this.servers.get(service);
    if (!hosts?.has(host)) return;
    hosts.delete(host);
    if (hosts.size === 0) this.servers.delete(service);
  }

  /**
   * Refreshes everything derived from the snapshot, at once; call right
   * before render(). The daemon scrapes with scrape(), which does the same in slices.
   */
  update(snapshot: DaemonSnapshot): void {
    finish(this.updateJob(snapshot));
  }

  /**
   * One scrape: takes a snapshot, updates from it and renders, in slices
   * that each hold the event loop at most SCRAPE_SLICE_MS. Scrapes asked
   * while one runs share its text rather than doing the work again.
   *
   * The blocks are reused by a later scrape once each caller has said
   * written(blocks, true); a caller that never says it leaves them to the
   * collector. Nothing may read them after written().
   */
  scrape(snapshot: () => DaemonSnapshot | Promise<DaemonSnapshot>, options: SliceOptions = {}): Promise<readonly Buffer[]> {
    if (this.scraping) {
      this.scraping.share.users++;
      return this.scraping.text;
    }
    const share: ScrapeShare = { users: 1, spoiled: false };
    // Background work: checks are not held back for it (see controlPlaneWaiting).
    const slicing = { budgetMs: SCRAPE_SLICE_MS, background: true, ...options };
    const run = (async (): Promise<readonly Buffer[]> => {
      // The generation is taken before the snapshot, which may be taken in slices: a
      // report that comes meanwhile is newer than it, and a server forgotten meanwhile stays so.
      const generation = this.beginUpdate();
      let job: Generator<unknown, void, undefined>;
      try {
        // The snapshot costs O(servers) too: the update starts on a turn of its own.
        const taken = await snapshot();
        job = this.updateSteps(taken, generation);
      } catch (error) {
        this.endUpdate();
        throw error;
      }
      await turn();
      await sliced(job, slicing);
      // Blocks of bytes, never joined into one (see renderRegistryBlocks).
      const blocks = await renderRegistryBlocks(this.registry, slicing, this.blocks);
      this.shares.set(blocks, share);
      return blocks;
    })();
    this.scraping = { text: run, share };
    const clear = (): void => {
      if (this.scraping?.text === run) this.scraping = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  /**
   * A caller of scrape() is done with its blocks: `reusable` when no write
   * of them can still be under way (written out in full, or never begun),
   * false when the writing was abandoned part-way (the client went), after
   * which the blocks are never reused.
   */
  written(blocks: readonly Buffer[], reusable: boolean): void {
    const share = this.shares.get(blocks);
    if (share === undefined) return;
    if (!reusable) share.spoiled = true;
    if (--share.users > 0) return;
    this.shares.delete(blocks);
    if (!share.spoiled) this.blocks.give(blocks);
  }

  /**
   * update() as a job; the snapshot's generation is taken at once (what the
   * daemon records from then on is newer than the snapshot). The per-service
   * gauges are worked out first and set in one step at the end (a render
   * never sees them half done); a monitor's status is only written when it
   * differs from the gauge and no report newer than the snapshot set it.
   */
  private updateJob(snapshot: DaemonSnapshot): Generator<unknown, void, undefined> {
    return this.updateSteps(snapshot, this.beginUpdate());
  }

  /** An update begins: its generation (see updateJob); endUpdate (by updateSteps) when it is done. */
  private beginUpdate(): number {
    this.jobsRunning++;
    return ++this.generation;
  }

  private endUpdate(): void {
    if (--this.jobsRunning === 0) this.forgottenDuringJob.clear();
  }

  private *updateSteps(snapshot: DaemonSnapshot, generation: number): Generator<unknown, void, undefined> {
    try {
      yield* this.updateServers(snapshot, generation);
    } finally {
      this.endUpdate();
    }
    this.updateBgp(snapshot);
    this.updateIpvs(snapshot);
    this.updateEventLoop(snapshot);
  }

  private *updateServers(snapshot: DaemonSnapshot, generation: number): Generator<unknown, void, undefined> {
    const perService: { readonly labels: Labels; readonly values: readonly number[]; readonly couldNotDepool: number }[] = [];
    const serviceTraffic: TrafficRow[] = [];
    const serverTraffic: TrafficRow[] = [];
    let n = 0;
    for (const service of snapshot.services) {
      if (service.traffic !== undefined) {
        serviceTraffic.push(this.serviceTrafficRows.row(service.name, () => ({ service: service.name }), service.traffic));
      }
      let enabled = 0;
      let up = 0;
      let pooled = 0;
      let pooledDown = 0;
      for (const server of service.servers) {
        if (server.enabled) enabled++;
        if (server.up) up++;
        if (server.pooled) pooled++;
        if (server.pooledDown) pooledDown++;
        if (server.traffic !== undefined) {
          serverTraffic.push(this.serverTrafficRows.row(serverKey(service.name, server.host), () => ({ service: service.name, host: server.host }), server.traffic, server.quiet));
        }
        const record = this.servers.get(service.name)?.get(server.host);
        if (record && record.seen < generation) record.seen = generation;
        if (this.forgottenDuringJob.size === 0 || !this.forgottenDuringJob.has(serverKey(service.name, server.host))) {
          for (const monitor of server.monitors) {
            if (monitor.up === undefined) continue;
            this.setStatus(this.monitor(service.name, server.host, monitor.kind), monitor.up, generation);
          }
        }
        if (++n % SERVERS_PER_STEP === 0) yield;
      }
      perService.push({
        labels: { service: service.name },
        values: [service.servers.length, enabled, up, pooled, service.canDepool ? 1 : 0, pooledDown, service.depoolThreshold],
        couldNotDepool: service.couldNotDepoolTotal,
      });
    }
    // Servers the daemon forgot to forget: their series must not outlive them.
    // (Those that got series after the snapshot was taken carry its generation and stay.)
    const stale: [string, string][] = [];
    for (const [service, hosts] of this.servers) {
      for (const [host, record] of hosts) {
        if (record.seen < generation) stale.push([service, host]);
        if (++n % SERVERS_PER_STEP === 0) yield;
      }
    }
    for (const [service, host] of stale) this.forgetServer(service, host);
    this.setTraffic(serviceTraffic, serverTraffic);

    const gauges = [
      this.serviceServers,
      this.serviceEnabled,
      this.serviceUp,
      this.servicePooled,
      this.serviceCanDepool,
      this.servicePooledDown,
      this.serviceThreshold,
    ];
    for (const gauge of gauges) gauge.reset();
    this.couldNotDepool.reset();
    for (const { labels, values, couldNotDepool } of perService) {
      for (const [i, gauge] of gauges.entries()) gauge.set(labels, values[i] ?? 0);
      this.couldNotDepool.inc(labels, couldNotDepool);
    }
  }

  /** The counters' rows of this update; their metrics are registered while there are any. */
  private setTraffic(services: readonly TrafficRow[], servers: readonly TrafficRow[]): void {
    this.serviceTraffic = services;
    this.serverTraffic = servers;
    this.serviceTrafficRows.settle();
    this.serverTrafficRows.settle();
    const wanted = services.length > 0 || servers.length > 0;
    for (const metric of this.trafficMetrics) {
      const registered = this.registry.getSingleMetric(metric.name) !== undefined;
      if (wanted && !registered) this.registry.registerMetric(metric as unknown as Metric);
      else if (!wanted && registered) this.registry.removeSingleMetric(metric.name);
    }
  }

  private updateEventLoop({ eventLoop, checksEventLoop, checksHeap, mallocHeap }: DaemonSnapshot): void {
    this.setLoop(eventLoop, this.loopStalls, this.loopLongest);
    this.setLoop(checksEventLoop, this.checksLoopStalls, this.checksLoopLongest);
    if (checksHeap !== undefined) {
      this.registerOnce(this.checksHeapUsed, this.checksHeapTotal);
      this.checksHeapUsed.set(checksHeap.usedBytes);
      this.checksHeapTotal.set(checksHeap.totalBytes);
    }
    if (mallocHeap !== undefined) {
      this.registerOnce(this.mallocHeap, this.mallocInUse, this.mallocTrims);
      this.mallocHeap.set(mallocHeap.heapBytes);
      this.mallocInUse.set(mallocHeap.inUseBytes);
      this.mallocTrims.reset();
      this.mallocTrims.inc(mallocHeap.trims);
    }
  }

  /** Registered with the first figures: a snapshot without them (tests, fakes) shows neither. */
  private setLoop(stats: DaemonSnapshot['eventLoop'], stalls: Counter, longest: Gauge): void {
    if (stats === undefined) return;
    this.registerOnce(stalls, longest);
    stalls.reset();
    stalls.inc(stats.stalls);
    longest.set(stats.longestMs / 1000);
  }

  /** Registers metrics made unregistered, together, the first time (the first one's name tells). */
  private registerOnce(first: Counter | Gauge, ...rest: (Counter | Gauge)[]): void {
    if (this.registry.getSingleMetric((first as unknown as { name: string }).name)) return;
    for (const metric of [first, ...rest]) this.registry.registerMetric(metric);
  }

  /** The exposition text, formatted in slices (the same text as registry.metrics()). */
  async render(slicing: SliceOptions = {}): Promise<string> {
    return renderRegistry(this.registry, slicing);
  }

  private updateBgp({ bgp }: DaemonSnapshot): void {
    this.bgpEnabled.set(bgp.enabled ? 1 : 0);
    this.bgpDrained.set(bgp.drained ? 1 : 0);
    this.bgpEstablished.reset();
    this.bgpBfdUp.reset();
    this.bgpStateCount.reset();
    this.bgpUpdateErrors.reset();
    this.bgpRouteRefreshesIgnored.reset();
    const localAsn = bgp.localAsn === undefined ? '' : String(bgp.localAsn);
    for (const peer of bgp.peers) {
      this.bgpEstablished.set({ local_asn: localAsn, peer: peer.peer }, peer.state === 'Established' ? 1 : 0);
      if (peer.bfd !== undefined) this.bgpBfdUp.set({ local_asn: localAsn, peer: peer.peer }, peer.bfd.state === 'Up' ? 1 : 0);
      // The speaker keeps the totals: each counter is set to them (reset above, then one increment).
      this.bgpUpdateErrors.inc({ local_asn: localAsn, peer: peer.peer, action: 'treat-as-withdraw' }, peer.updatesTreatedAsWithdraw);
      this.bgpUpdateErrors.inc({ local_asn: localAsn, peer: peer.peer, action: 'attribute-discard' }, peer.attributesDiscarded);
      this.bgpRouteRefreshesIgnored.inc({ local_asn: localAsn, peer: peer.peer }, peer.routeRefreshesIgnored);
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

  /**
   * Sets a monitor's status gauge, unless it already has that value. `asOf`
   * says how new the knowledge is: a snapshot's generation, or for a report
   * the latest snapshot's generation plus a half (newer than that snapshot,
   * older than the next); a snapshot older than the value leaves it alone.
   */
  private setStatus(monitor: MonitorSeries, up: boolean, asOf: number): void {
    const value = up ? 1 : 0;
    if (monitor.status !== undefined && (monitor.status === value || monitor.statusAsOf > asOf)) return;
    monitor.status = value;
    monitor.statusAsOf = asOf;
  }

  /** A monitor's series object, made with its first value. */
  private monitor(service: string, host: string, kind: string): MonitorSeries {
    const record = this.record(service, host);
    for (const monitor of record.monitors ?? []) if (monitor.kind === kind) return monitor;
    const monitor = new MonitorSeries(service, host, kind);
    record.monitors = add(record.monitors, monitor);
    return monitor;
  }

  /** A server's record, made when it has its first series (seen by the update job running now, if any). */
  private record(service: string, host: string): ServerRecord {
    let hosts = this.servers.get(service);
    if (!hosts) {
      hosts = new Map();
      this.servers.set(service, hosts);
    }
    let record = hosts.get(host);
    if (!record) {
      record = { monitors: undefined, seen: this.generation };
      hosts.set(host, record);
    }
    return record;
  }

  private monitorMetric(
    name: string,
    help: string,
    type: 'counter' | 'gauge',
    pick: Picker<MonitorSeries>,
  ): MonitorSeriesMetric {
    const metric = new MonitorSeriesMetric(name, help, type, () => this.servers.values(), pick);
    this.registry.registerMetric(metric as unknown as Metric);
    return metric;
  }

  private rowsMetric(name: string, help: string, type: 'counter' | 'gauge', perServer: boolean, pick: ConstructorParameters<typeof RowsMetric>[4]): RowsMetric {
    return new RowsMetric(name, help, type, () => (perServer ? this.serverTraffic : this.serviceTraffic), pick);
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

/** What the metrics keep of one server. */
interface ServerRecord {
  /** Its monitors' series, one per monitor kind (a server has one to a few: an array, not a Map). */
  monitors: MonitorSeries[] | undefined;
  /** The generation of the last update job that found it in the snapshot. */
  seen: number;
}

/** A picker for a monitor kind's duration gauge. */
function durationsOf(kind: string): Picker<MonitorSeries> {
  const pick = extraOf((m) => m.durations);
  return (monitor, emit) => {
    if (monitor.labels.monitor === kind) pick(monitor, emit);
  };
}
