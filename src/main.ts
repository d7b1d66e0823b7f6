/**
 * The composition root: the only place that opens files, sockets, netlink
 * and timers for the daemon and wires the components together.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { PybalMetrics } from './api/metrics.js';
import { createApiServer, DEFAULT_SOCKET_PATH, socketAnswers, type ApiControl, type ApiServer } from './api/server.js';
import type { BgpStatusValue, DaemonSnapshot, SnapshotScope } from './api/types.js';
import { familyOf, formatPrefix, normalizeAddress } from './bgp/address.js';
import { BfdThread } from './bfd/bfd.js';
import { speakerOptionsFromConfig, type DrainState } from './bgp/announcements.js';
import { announcingThenReady, type PeerChange } from './bgp/speaker.js';
import { BgpThread, type Speaker } from './bgp/thread.js';
import { loadConfig } from './config/load-config.js';
import type { AddressFamily, Config, GlobalConfig, ServiceConfig } from './config/types.js';
import { serviceKeyFromConfig } from './ipvs/desired.js';
import { notifyReady, systemdIsRestartingUs } from './runtime/systemd.js';
import { Coordinator } from './coordinator/coordinator.js';
import { resolveHost } from './coordinator/resolver.js';
import { DataPathMarks } from './coordinator/data-path-marks.js';
import { CheckThread } from './monitors/check-thread.js';
import { connectionRateWarning, connectionsPerSecondToOneAddress, warnAcceptLocal } from './monitors/datapath-sysctls.js';
import type { CreateMonitorFn, DataPathDeps } from './coordinator/types.js';
import { Daemon, type RouteTarget } from './daemon.js';
import { EventHistory, type EventSink } from './events/history.js';
import { ipvsChangeEvents } from './events/ipvs-changes.js';
import { createIpvsClient } from './ipvs/client.js';
import { createLazyIpvsKernel } from './ipvs/lazy-kernel.js';
import { IpvsManager } from './ipvs/manager.js';
import { IpvsStatsReader } from './ipvs/stats-reader.js';
import { withTrafficSteps } from './api/traffic.js';
import { readPooledAtStart, wasPooledAtStart, type PooledAtStart } from './ipvs/pooled-at-start.js';
import { interfacesSendingRedirects, natRedirectWarning } from './ipvs/redirects.js';
import { SloppyKeeper } from './ipvs/sloppy.js';
import { SyncDaemonKeeper } from './ipvs/sync-daemons.js';
import { createStartPacer, startWindowMs } from './monitors/start-pacer.js';
import { createPoolSource } from './pool/create-source.js';
import { bgpWanted, describePlan, planReloadSteps, type BgpAction } from './reload-plan.js';
import { createSystemClock, type Clock, type Timer } from './runtime/clock.js';
import { errorMessage, formatProblem } from './runtime/errors.js';
import { createLogger, type LogFormat, type Logger } from './runtime/logger.js';
import { finish, sliced } from './runtime/sliced.js';
import { preferSmallHeap } from './runtime/heap-mode.js';
import { padCHeapForStartUp, startMallocTrim } from './runtime/malloc-trim.js';
import { startStallWatch } from './runtime/stall-watch.js';
import { readVersion } from './runtime/version.js';

export interface DaemonOptions {
  readonly configFile: string;
  readonly dryRun: boolean;
  readonly debug: boolean;
  /** A path, or '-' for standard error. */
  readonly logFile: string;
  readonly logFormat: LogFormat;
  /** Every line to standard error too (the journal under systemd). */
  readonly logStderr?: boolean;
  /** The Unix socket `pybal status` reads (default /run/pybal/pybal.sock). */
  readonly controlSocket?: string;
}

/** Signals the daemon reacts to; process by default, a fake in tests. */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

/** How often data-path checks ask who answers ARP for their VIPs. */
const ARP_WATCH_INTERVAL_MS = 10_000;
/** How long shutdown waits for the routers to hear the withdrawals and the Cease. */
const BGP_SHUTDOWN_MS = 2000;
/** How long SIGTERM waits for a reload in progress before shutting down anyway. */
const RELOAD_WAIT_ON_STOP_MS = 1000;
/**
 * The BGP thread starts once every service is programmed (start-up is
 * complete), or this long after the services start, whichever comes first.
 * Node's bootstrap of a thread takes about 1 s of CPU in the lab guest, which
 * on one CPU came out of the programming of a large start (bench:pools, 1,000
 * services with BGP on: `Start-up complete` after a median 6.65 s against
 * 7.63 s when the thread started with the daemon), and a VIP is announced
 * only once its service is programmed anyway.
 */
const BGP_START_WAIT_MAX_MS = 10_000;

function hostIpv4Addresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && a.family === 'IPv4')
    .map((a) => (a as { address: string }).address);
}

/** Best effort, as ipvsadm does: the ip_vs module may not be loaded yet (the kernel lists /proc/net/ip_vs once it is). */
function loadIpvsModule(log: Logger): Promise<void> {
  // Loaded already (or built in): a process less at every start, which the lab's guest takes 0.2 s to spawn.
  if (existsSync('/proc/net/ip_vs')) return Promise.resolve();
  return new Promise((resolve) => {
    execFile('modprobe', ['ip_vs'], { timeout: 10_000 }, (error) => {
      if (error) log.debug(`modprobe ip_vs: ${errorMessage(error)}`);
      resolve();
    });
  });
}

const DAEMON_SIGNALS: readonly NodeJS.Signals[] = ['SIGHUP', 'SIGUSR1', 'SIGTERM', 'SIGINT'];

/**
 * The daemon's signals, listened to from its first moment: until the daemon
 * can act on them they are held (a SIGHUP then would otherwise kill it, and
 * a SIGUSR1 open node's inspector), then delivered once it is running.
 */
class SignalInbox {
  private handler: ((signal: NodeJS.Signals) => void) | undefined;
  private readonly held = new Set<NodeJS.Signals>();
  private readonly listeners = new Map<NodeJS.Signals, () => void>();

  constructor(private readonly source: SignalSource) {
    for (const signal of DAEMON_SIGNALS) {
      const listener = (): void => this.deliver(signal);
      this.listeners.set(signal, listener);
      source.on(signal, listener);
    }
  }

  /** From now on signals go to `handler`; any held meanwhile go first (each once). */
  open(handler: (signal: NodeJS.Signals) => void): void {
    this.handler = handler;
    const held = [...this.held];
    this.held.clear();
    for (const signal of held) handler(signal);
  }

  close(): void {
    for (const [signal, listener] of this.listeners) this.source.off(signal, listener);
    this.listeners.clear();
    this.handler = undefined;
  }

  private deliver(signal: NodeJS.Signals): void {
    if (this.handler) this.handler(signal);
    else this.held.add(signal);
  }
}

/**
 * The BGP side: a speaker while BGP is on (and not in dry run). It executes
 * the reload planner's decision: the sessions restart only when a session
 * setting changed; otherwise new routes and attributes reach the routers as
 * UPDATEs on the sessions that stay up.
 */
class BgpSide {
  private speaker: Speaker | undefined;
  /** BFD with the peers (bgp-bfd), started and stopped with the speaker. */
  private bfd: BfdThread | undefined;
  private target: RouteTarget | undefined;
  /** Set by the final shutdown: nothing starts after it, even from a reload still running. */
  private closed = false;
  /** The configuration asks for BGP sessions (whether or not the speaker could start). */
  private wanted = false;
  /** The first start waits until every service is programmed (start); this ends the wait, saying why. */
  private endStartWait: ((why: string) => void) | undefined;
  /** Graceful restart: the families the kernel forwards already, and whether every service is programmed. */
  private table: { forwarding: () => readonly AddressFamily[]; ready: () => boolean } = { forwarding: () => [], ready: () => true };

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly dryRun: boolean,
    private readonly events?: EventSink,
  ) {}

  /**
   * The first start: the speaker's thread starts once `startedUp` resolves
   * (every service programmed), BGP_START_WAIT_MAX_MS from now, or at a
   * SIGHUP (startNow), whichever comes first; a dry run starts none and says
   * what it would announce. Nothing starts once the daemon stops (refuseStarts).
   */
  async start(global: GlobalConfig, services: readonly ServiceConfig[], startedUp: Promise<void>, programmed: () => string): Promise<RouteTarget | undefined> {
    if (!this.dryRun && !this.closed && bgpWanted(global, services)) {
      this.wanted = true;
      this.log.info(`BGP starts once every service is programmed (at most ${BGP_START_WAIT_MAX_MS / 1000} s)`);
      const since = this.clock.now();
      const wait = new AbortController();
      let ended: string | undefined;
      this.endStartWait = (why) => {
        ended ??= why;
        wait.abort();
      };
      const complete = await Promise.race([startedUp.then(() => true), this.clock.sleep(BGP_START_WAIT_MAX_MS, wait.signal).then(() => false, () => false)]);
      // Start-up first: the sleep's timer goes too.
      wait.abort();
      this.endStartWait = undefined;
      const after = `after ${((this.clock.now() - since) / 1000).toFixed(1)} s`;
      if (this.closed) return undefined;
      this.log.info(complete ? `BGP starts: every service is programmed (${after})` : `BGP starts: ${ended === undefined ? '' : `${ended}; `}${programmed()} ${after}`);
    }
    return this.apply('start', global, services);
  }

  /** A first start still waiting (start) goes ahead now, for `why`. */
  startNow(why: string): void {
    this.endStartWait?.(why);
  }

  /** The daemon stops: a first start still waiting ends, and nothing starts from here on (a reload still running included). */
  refuseStarts(): void {
    this.closed = true;
    this.endStartWait?.('stopping');
  }

  /**
   * Starts, restarts, stops or keeps the speaker as `action` says; returns
   * where routes go. A speaker that could not start is tried again at the
   * next reload.
   */
  async apply(action: BgpAction, global: GlobalConfig, services: readonly ServiceConfig[]): Promise<RouteTarget | undefined> {
    const wanted = bgpWanted(global, services);
    this.wanted = wanted;
    if (action === 'restart' || action === 'stop' || !wanted) await this.stopSpeaker('configuration changed');
    if (!wanted || this.closed) return undefined;
    if (this.target) return this.target;
    if (this.dryRun) {
      this.log.info('Dry run: BGP is not started; the routes it would announce are logged');
      // Nothing is announced before the first services are desired: not worth a line.
      let said = 'nothing';
      this.target = {
        setAnnouncements: (routes) => {
          const text = routes.map((r) => formatPrefix(r.prefix)).join(', ') || 'nothing';
          // Publishes follow every pool and health change: say only what changed.
          if (text !== said) this.log.info(`Dry run: would announce ${text}`);
          said = text;
        },
      };
      return this.target;
    }
    try {
      // The sessions run on a thread of their own: KEEPALIVEs leave on time whatever the main thread is doing.
      const speaker = await BgpThread.start({
        speaker: {
          ...speakerOptionsFromConfig(global, services, {
            clock: this.clock,
            logger: this.log,
            hostIpv4Addresses: hostIpv4Addresses(),
            forwardingFamilies: () => this.table.forwarding(),
          }),
          ...(this.events === undefined ? {} : { onPeerChange: peerChangeRecorder(this.events) }),
        },
      });
      if (this.closed) {
        await speaker.shutdown('pybal is shutting down', BGP_SHUTDOWN_MS);
        return undefined;
      }
      this.speaker = speaker;
      // End-of-RIB (graceful restart) only from a publish, after the routes it carries.
      this.target = announcingThenReady(speaker, () => this.table.ready());
      if (global.bgpBfd) await this.startBfd(global);
      return speaker;
    } catch (error) {
      this.log.error(`BGP could not start: ${errorMessage(error)}`);
      return undefined;
    }
  }

  /** The speaker's side of the status; the drain is the daemon's (see the snapshot). */
  status(global: GlobalConfig): Omit<BgpStatusValue, keyof DrainState> {
    const bfd = new Map((this.bfd?.status() ?? []).map((b) => [b.peer, b]));
    const peers = (this.speaker?.status() ?? []).map((p) => {
      const session = bfd.get(normalizeAddress(p.peer) ?? p.peer);
      return session === undefined ? p : { ...p, bfd: session };
    });
    return {
      enabled: this.speaker !== undefined,
      wanted: this.wanted && !this.dryRun,
      starting: this.endStartWait !== undefined,
      localAsn: this.speaker ? global.bgpLocalAsn : undefined,
      peers,
    };
  }

  /** How graceful restart learns the kernel's state (see FsmConfig.gracefulRestart and BgpSpeaker.markReady, which the BGP thread runs). */
  watchTable(table: { forwarding: () => readonly AddressFamily[]; ready: () => boolean }): void {
    this.table = table;
  }

  /**
   * Closes for good. Normally withdraws everything and says `reason` to the
   * peers; for a graceful restart (`keepRoutes`) the sessions close without
   * a word and the routers keep the routes until the next process is back.
   */
  async shutdown(reason: string, keepRoutes = false): Promise<void> {
    this.refuseStarts();
    if (keepRoutes && this.speaker !== undefined) {
      const speaker = this.speaker;
      const bfd = this.bfd;
      this.speaker = undefined;
      this.target = undefined;
      this.bfd = undefined;
      speaker.abandon();
      await bfd?.stop();
      return;
    }
    await this.stopSpeaker(reason);
  }

  private async stopSpeaker(reason: string): Promise<void> {
    const speaker = this.speaker;
    const bfd = this.bfd;
    this.speaker = undefined;
    this.target = undefined;
    this.bfd = undefined;
    if (speaker) await speaker.shutdown(reason, BGP_SHUTDOWN_MS);
    // After the Cease: AdminDown tells the routers the sessions end on purpose.
    await bfd?.stop();
  }

  /** BFD with every peer, from our address towards it when pybal.conf binds BGP to one. A failure leaves BGP without BFD. */
  private async startBfd(global: GlobalConfig): Promise<void> {
    const peers = global.bgpPeerAddresses.map((address) => ({
      address,
      localAddress: global.bgpLocalIps.find((ip) => ip !== '' && familyOf(ip) === familyOf(address)),
    }));
    try {
      this.bfd = await BfdThread.start({
        clock: this.clock,
        logger: this.log,
        peers,
        intervalMs: global.bgpBfdIntervalMs,
        detectMult: global.bgpBfdMultiplier,
      });
      this.log.info(
        `BFD runs with ${peers.map((p) => p.address).join(', ')}: every ${global.bgpBfdIntervalMs / 1000} s, down after ${global.bgpBfdMultiplier} missed`,
      );
    } catch (error) {
      this.log.error(`${errorMessage(error)}; BGP runs without BFD (the routers fall back on the hold timer)`);
    }
  }
}

/** BGP sessions reaching Established or leaving it, as events (the session's log says the same). */
function peerChangeRecorder(events: EventSink): (change: PeerChange) => void {
  return (change) =>
    events.emit(
      change.up
        ? { kind: 'bgp-session-up', level: 'info', peer: change.peer, message: `BGP session with ${change.peer} established` }
        : { kind: 'bgp-session-down', level: change.reason === 'stopped' ? 'info' : 'warn', peer: change.peer, message: `BGP session with ${change.peer} down: ${change.reason ?? 'unknown reason'}` },
    );
}

/** How often the IPVS manager's counters are read for drift and failure events. */
const IPVS_EVENTS_POLL_MS = 1000;
/** The longest systemd's start waits for every service to be programmed (TimeoutStartSec is 90 s). */
const READY_WAIT_MAX_MS = 30_000;
/** How often readiness looks again while a service is not programmed yet. */
const READY_POLL_MS = 100;

/**
 * Runs the daemon until SIGTERM or SIGINT. Resolves with the exit status:
 * 0 after a clean shutdown, 1 when the configuration is invalid.
 */
export async function runDaemon(options: DaemonOptions, signals: SignalSource = process): Promise<number> {
  const inbox = new SignalInbox(signals);
  const logHandle = await createLogger({
    file: options.logFile,
    format: options.logFormat,
    alsoStderr: options.logStderr ?? false,
    level: options.debug ? 'debug' : 'info',
  });
  const log = logHandle.logger;
  const configLog = log.child({ component: 'config' });
  const clock = createSystemClock();
  const startedAtWallMs = clock.wallNow();

  // One daemon at a time: a second one would fight the first over the IPVS
  // table and the BGP sessions. The first answers on the control socket.
  const socketPath = options.controlSocket ?? DEFAULT_SOCKET_PATH;
  if (await socketAnswers(socketPath)) {
    log.fatal(`Another pybal is running: it answers on ${socketPath}. Not starting a second one (stop the first, or give this one its own --control-socket)`);
    inbox.close();
    await logHandle.close();
    return 1;
  }

  // The C heap keeps more of what it frees while the daemon starts (src/runtime/malloc-trim.ts).
  const startUpPad = padCHeapForStartUp();
  const loaded = await loadConfig(options.configFile);
  for (const warning of loaded.warnings) configLog.warn(formatProblem(warning));
  if (!loaded.config) {
    startUpPad.end();
    for (const error of loaded.errors) configLog.error(formatProblem(error));
    configLog.fatal(`${options.configFile}: ${loaded.errors.length} error(s); not starting`);
    inbox.close();
    await logHandle.close();
    return 1;
  }
  let config: Config = loaded.config;
  // `pybal -n`, or `dry-run = yes` in [global] (read once, at start).
  const dryRun = options.dryRun || config.global.dryRun;
  // `memory-saving` likewise: a reload before the start is complete does not change it.
  const memorySaving = config.global.memorySaving;
  log.info(
    `pybal ${readVersion()} starting with ${config.file}: ${config.services.length} service(s)` +
      (dryRun ? ' (dry run: nothing will be changed in the kernel)' : ''),
  );

  // The last state changes, for the status page and /events (event-history-size).
  const events = new EventHistory(config.global.eventHistorySize, () => clock.wallNow());

  // IPVS: one netlink client, opened (and reopened) as the manager needs it.
  const ipvsLog = log.child({ component: 'ipvs' });
  const checkNatRedirects = async (services: readonly ServiceConfig[]): Promise<void> => {
    const warning = natRedirectWarning(services, await interfacesSendingRedirects());
    if (warning !== undefined) ipvsLog.warn(warning);
  };
  await checkNatRedirects(config.services);
  await loadIpvsModule(ipvsLog);
  const kernel = createLazyIpvsKernel(() => createIpvsClient({ clock, logger: ipvsLog }));
  // The periodic resync dumps over a socket of its own, so that the writes
  // go on meanwhile (a dump of 40,000 servers takes seconds in a slow guest).
  const resyncKernel = createLazyIpvsKernel(() => createIpvsClient({ clock, logger: ipvsLog }));
  // What the kernel balances to now, before anything is written: those
  // servers start from up (a failure needs `fall` of them). Only the first
  // configuration's services use it; a reload forgets it.
  let pooledAtStart: PooledAtStart = new Map();
  /** The families of the services the kernel had at start (graceful restart: forwarding preserved). */
  const pooledAtStartFamilies = new Set<AddressFamily>();
  try {
    pooledAtStart = await readPooledAtStart(kernel, config.services);
    for (const s of config.services) if (pooledAtStart.has(s.name)) pooledAtStartFamilies.add(s.family);
  } catch (error) {
    ipvsLog.warn(`Could not read the kernel's IPVS table at start (${errorMessage(error)}); every server starts unchecked`);
  }
  // The connection-sync daemons (ipvs-sync-*), checked again at every resync.
  const syncDaemons = new SyncDaemonKeeper({ kernel, logger: ipvsLog, dryRun });
  // net.ipv4.vs.sloppy_tcp and sloppy_sctp (ipvs-sloppy-*), checked again at every resync.
  const sloppy = new SloppyKeeper({ logger: ipvsLog, dryRun });
  // A service the kernel now has may let its VIP be announced: publish again.
  let onProgrammed = (): void => undefined;
  // Data-path checks: one firewall mark per checked server, each with a probe service pybal owns.
  const dataPathMarks = new DataPathMarks(config.global.dataPathFwmarkBase);
  const ipvs = new IpvsManager({
    kernel,
    reader: resyncKernel,
    clock,
    logger: ipvsLog,
    dryRun,
    owns: (key) => 'fwmark' in key && dataPathMarks.owns(key.fwmark),
    resyncIntervalMs: config.global.ipvsResyncIntervalMs,
    onProgrammed: () => onProgrammed(),
    onResync: () => {
      void syncDaemons.check();
      void sloppy.check(config.global, config.services, 'resync');
    },
  });
  // The kernel's counters of the configured services (ipvs-stats-interval),
  // over a netlink socket of their own: a reading never waits in the
  // manager's queue nor holds it up (see ipvs/stats-reader.ts).
  const statsKernel = createLazyIpvsKernel(() => createIpvsClient({ clock, logger: ipvsLog, recvBufferSize: 1024 * 1024, sendBufferSize: 64 * 1024 }));
  const statsReader = new IpvsStatsReader({
    kernel: statsKernel,
    clock,
    logger: ipvsLog,
    intervalMs: config.global.ipvsStatsIntervalMs,
    targets: () =>
      config.services.map((s) => ({ name: s.name, key: serviceKeyFromConfig(s), scheduler: s.scheduler, persistent: s.persistenceTimeoutSec > 0 })),
    waitIdle: () => ipvs.idle(),
  });

  const metrics = new PybalMetrics();
  // One pacer for every service: a large start spreads its first checks over their interval.
  const startPacer = createStartPacer(clock);
  // The monitors run on a thread of their own (monitors/check-thread.ts), with the
  // command limiter, the batch pinger, the admission of check starts and the ARP
  // watch they share: their work and their garbage hold neither the API, the pool
  // files nor IPVS.
  const checks = new CheckThread({
    clock,
    logger: log,
    runcommandMaxConcurrent: config.global.runcommandMaxConcurrent,
    arpWatchIntervalMs: ARP_WATCH_INTERVAL_MS,
  });
  warnAcceptLocal(config, log);
  // Each report reaches the metrics, then the coordinator's onReport; onCheck
  // (the coordinator's last check, for the status page) goes through as it is.
  const monitorsFor = (service: ServiceConfig): CreateMonitorFn =>
    checks.factory({
      logger: log.child({ service: service.name }),
      onResult: (target, result) => metrics.recordResult(service.name, target.host, result),
      onReport: (target, report) => metrics.recordReport(service.name, target.host, report),
    });

  // A dry run programs nothing: its data-path monitors check at the servers' addresses.
  const portCapacity = connectionsPerSecondToOneAddress();
  const dataPathFor = (service: ServiceConfig): DataPathDeps => {
    let warned = false;
    return {
      acquire: () => dataPathMarks.acquire(),
      release: (mark) => dataPathMarks.release(mark),
      programmed: (mark) => !dryRun && ipvs.isProgrammed({ family: service.family, fwmark: mark }),
      source: service.family === 4 ? config.global.dataPathSourceIpv4 : config.global.dataPathSourceIpv6,
      connectionRate: (perSec) => {
        const warning = connectionRateWarning(service.name, perSec, portCapacity);
        if (warning !== undefined && !warned) log.warn(warning);
        warned = warning !== undefined;
      },
    };
  };
  const daemon = await Daemon.create(config, {
    logger: log,
    createPoolSource: (service, lastGoodPool) =>
      createPoolSource(service.poolUrl, { clock, logger: log.child({ service: service.name, component: 'pool' }), lastGoodPool }),
    createCoordinator: (service, onChange, knownHealth) =>
      new Coordinator(service, {
        clock,
        logger: log.child({ service: service.name }),
        createMonitor: monitorsFor(service),
        resolve: resolveHost,
        onChange,
        knownHealth,
        startDelayMs: (monitorConfig) => startPacer(startWindowMs(monitorConfig)),
        pooledAtStart: (address) => wasPooledAtStart(pooledAtStart, service.name, address),
        events,
        dataPath: dataPathFor(service),
      }),
    // A dry run writes nothing, so nothing is ever programmed: it says what
    // it would announce once the services it would program are desired.
    // Each reconcile that programs services, and each change of the desired
    // set (a service changed is not programmed until written again), may
    // change what the data-path checks find in the kernel: they look again.
    ipvs: {
      setDesired: (services, changed) => {
        ipvs.setDesired(services, changed);
        checks.readinessChanged();
      },
      isProgrammed: (key) => dryRun || ipvs.isProgrammed(key),
    },
    defer: (fn) => clock.setTimeout(fn, 0),
    wallNow: () => clock.wallNow(),
    events,
  });
  // The publish also says End-of-RIB once every service is programmed (graceful
  // restart), after the routes it carries: never before them (see announcingThenReady).
  onProgrammed = () => {
    checks.readinessChanged();
    daemon.refresh();
  };

  const bgp = new BgpSide(clock, log.child({ component: 'bgp' }), dryRun, events);
  // Graceful restart: the kernel forwards for a family when a service of it
  // was in IPVS at start or is programmed now; the table is ready when every
  // configured service is programmed.
  const tableScan = { from: 0 };
  bgp.watchTable({
    forwarding: () => {
      const families = new Set<AddressFamily>();
      for (const s of config.services) if (pooledAtStartFamilies.has(s.family) || ipvs.isProgrammed(serviceKeyFromConfig(s))) families.add(s.family);
      return [...families];
    },
    ready: () => daemon.allProgrammedScan(tableScan),
  });
  // Says when something held the event loop long enough to delay checks, BGP or the API.
  const stallWatch = startStallWatch({ logger: log });
  // The C heap's free pages back to the kernel every 10 s (src/runtime/malloc-trim.ts).
  const mallocTrim = startMallocTrim({ unavailable: (reason) => log.info(`The C heap's free memory is not trimmed: ${reason}`) });
  // Read once: the running daemon's version, not that of a package upgraded since (and no file read per request).
  const version = readVersion();
  // The API's snapshot, as a job: requests that copy every server take it in slices (see ApiServerDeps).
  const snapshotSteps = function* (scope?: SnapshotScope): Generator<unknown, DaemonSnapshot, undefined> {
    const services = yield* daemon.snapshotsSteps(scope);
    const checksHeap = checks.heapStats();
    const { heap: malloc, trims } = mallocTrim.stats();
    return {
      version,
      startedAtWallMs,
      dryRun,
      services: statsReader.enabled ? yield* withTrafficSteps(services, statsReader) : services,
      bgp: { ...bgp.status(daemon.globalConfig), ...daemon.drainState(), announced: daemon.routes().map((r) => formatPrefix(r.prefix)) },
      ipvs: ipvs.stats(),
      ipvsSysctls: sloppy.status(),
      eventLoop: stallWatch.stats(),
      checksEventLoop: checks.loopStats(),
      ...(checksHeap === undefined ? {} : { checksHeap }),
      ...(malloc === undefined ? {} : { mallocHeap: { heapBytes: malloc.heapBytes, inUseBytes: malloc.inUseBytes, trims } }),
    };
  };
  const snapshot = (scope?: SnapshotScope): DaemonSnapshot => finish(snapshotSteps(scope));
  // Background work, as a scrape: checks are not held back for it.
  const snapshotSliced = (scope?: SnapshotScope): Promise<DaemonSnapshot> => sliced(snapshotSteps(scope), { background: true });
  // The control socket's requests (pybal drain, pybal undrain); the routes follow at the next publish.
  const control: ApiControl = {
    setDrained: (drained) => {
      const change = daemon.setDrained(drained, drained ? 'POST /drain' : 'POST /undrain');
      return { ...change.state, changed: change.changed, announced: daemon.routes().length };
    },
  };
  const api: ApiServer = createApiServer({ snapshot, snapshotSliced, serviceNames: () => daemon.serviceNames(), metrics, logger: log, control, events, clock });
  /** Listens as `global` says; false when the API is wanted and no address of it could be bound. */
  const listenApi = async (global: GlobalConfig): Promise<boolean> => {
    if (!global.instrumentation) return true;
    return (await api.listen({ ips: global.instrumentationIps, port: global.instrumentationPort })).length > 0;
  };
  await api.listenUnix(socketPath);
  await listenApi(config.global);

  ipvs.start();
  // IPVS drift and failures for the event history, read from the manager's counters.
  let ipvsSeen = ipvs.stats();
  const watchIpvs = (): void => {
    const now = ipvs.stats();
    for (const event of ipvsChangeEvents(ipvsSeen, now)) events.emit(event);
    ipvsSeen = now;
    ipvsWatch = clock.setTimeout(watchIpvs, IPVS_EVENTS_POLL_MS);
  };
  let ipvsWatch = clock.setTimeout(watchIpvs, IPVS_EVENTS_POLL_MS);
  void syncDaemons.set(config.global.ipvsSync);
  await sloppy.check(config.global, config.services, 'start');
  daemon.start();
  // The BGP thread once every service is programmed (BgpSide.start); a reload goes after it, as reloads go after each other.
  let startUpDone = (): void => undefined;
  const startedUp = new Promise<void>((resolve) => (startUpDone = resolve));
  const programmedText = (): string => `${daemon.programmedCount()} of ${config.services.length} service(s) programmed`;
  let reloading: Promise<void> = bgp.start(config.global, config.services, startedUp, programmedText).then(
    (target) => daemon.setRouteTarget(target),
    (error: unknown) => log.error({ err: error }, 'BGP could not start'),
  );
  // Start-up ends once the configuration is loaded, the API listens, the
  // kernel's table has been read (adopted, or the failure said) and every
  // configured service is programmed; a service that cannot be (a pool that
  // cannot be read, a kernel that refuses it) holds it back for
  // READY_WAIT_MAX_MS at most. Then pybal says so in the log, tells systemd
  // (Type=notify: `systemctl start pybal && ipvsadm -Ln` shows the services)
  // and starts reading the kernel's counters, whose dumps of every service
  // would otherwise compete with the programming of a large start.
  let stopping = false;
  let readyWait: Timer | undefined;
  let started = false;
  const readyAt = clock.now() + READY_WAIT_MAX_MS;
  const startupScan = { from: 0 };
  const finishStartup = (): void => {
    if (started || stopping) return;
    const programmed = daemon.allProgrammedScan(startupScan);
    if (!programmed && clock.now() < readyAt) return;
    started = true;
    startUpDone();
    startUpPad.end();
    readyWait?.cancel();
    readyWait = undefined;
    const total = config.services.length;
    const after = `${process.uptime().toFixed(1)} s after the process started`;
    const status = programmed
      ? `${total} service(s)${dryRun ? ', dry run' : ''}`
      : `${daemon.programmedCount()} of ${total} service(s) programmed after ${READY_WAIT_MAX_MS / 1000} s; the others follow when they can${dryRun ? ', dry run' : ''}`;
    if (programmed) log.info(`Start-up complete: ${total} service(s) ${dryRun ? 'desired (dry run)' : 'programmed in IPVS'}, ${after}`);
    else log.warn(`Start-up complete without every service: ${status} (${after})`);
    statsReader.start();
    if (process.env.NOTIFY_SOCKET !== undefined) {
      if (programmed) log.info(`Ready: telling systemd (${status})`);
      else log.warn(`Ready: telling systemd (${status})`);
      void notifyReady(status).then((told) => {
        if (!told) log.warn('Could not tell systemd that pybal is ready (systemd-notify failed); systemctl start may time out');
      });
    }
    // memory-saving = yes: from here on, V8 sizes the main thread's heap for memory (src/runtime/heap-mode.ts); the start keeps its defaults.
    if (memorySaving) {
      const heapNotSmall = preferSmallHeap();
      if (heapNotSmall === undefined) log.info("memory-saving: the main thread's JS heap is sized for memory from now on (V8's memory savings mode)");
      else log.warn(`memory-saving: the main thread's JS heap stays sized by V8's defaults: ${heapNotSmall}`);
    }
  };
  const pollStartup = (): void => {
    finishStartup();
    if (!started && !stopping) readyWait = clock.setTimeout(pollStartup, READY_POLL_MS);
  };
  void ipvs.firstReconciled().then(() => {
    // Looked at again whenever a reconcile programs services, and every READY_POLL_MS.
    const programmedBefore = onProgrammed;
    onProgrammed = () => {
      programmedBefore();
      finishStartup();
    };
    pollStartup();
  });

  // SIGHUP: reopen the log and re-read pybal.conf, as one transaction: a
  // configuration that does not load (one that names no service does not)
  // changes nothing; one that does is planned (reload-plan.ts) and the plan executed.
  // One reload at a time, and at most one waiting (it reads the file as it is
  // then, so a burst of SIGHUPs costs two reloads); SIGTERM does not wait for
  // one for long.
  let reloadWaiting = false;
  const reload = async (): Promise<void> => {
    await logHandle.reopen();
    log.info(`SIGHUP: reopened the log file; re-reading ${options.configFile}`);
    const next = await loadConfig(options.configFile);
    if (stopping) return;
    for (const warning of next.warnings) configLog.warn(formatProblem(warning));
    // A file with no service is one of these errors (parse-config).
    if (!next.config) {
      for (const error of next.errors) configLog.error(formatProblem(error));
      configLog.error(`${options.configFile}: ${next.errors.length} error(s); keeping the running configuration`);
      return;
    }
    // Planned in slices (1,000 services planned in one go held the event loop in the lab guest); the
    // running configuration stays in force meanwhile.
    const plan = await sliced(planReloadSteps(config, next.config));
    if (stopping) return;
    const previous = config;
    config = next.config;
    // Services added or replaced from here on start unchecked, as PyBal's do.
    pooledAtStart = new Map();
    for (const line of describePlan(plan)) configLog.info(line);
    if (plan.bgp === 'restart') configLog.warn(`BGP sessions restart: ${plan.bgpRestartReasons.join(', ')} changed`);
    for (const key of plan.deferred) configLog.warn(`${key} takes effect when the BGP sessions next start (they are not reset for it)`);
    for (const key of plan.atRestart) configLog.warn(`${key} takes effect when pybal restarts; this one keeps running as it started`);
    if (plan.runcommandMaxConcurrent !== undefined) {
      checks.setRuncommandMaxConcurrent(plan.runcommandMaxConcurrent);
      configLog.info(`RunCommand checks may now run ${plan.runcommandMaxConcurrent} at a time`);
    }
    if (plan.ipvsResyncIntervalMs !== undefined) {
      ipvs.setResyncInterval(plan.ipvsResyncIntervalMs);
      configLog.info(`IPVS resync interval is now ${plan.ipvsResyncIntervalMs / 1000} s`);
    }
    if (plan.eventHistorySize !== undefined) {
      events.resize(plan.eventHistorySize);
      configLog.info(`The event history now keeps the last ${plan.eventHistorySize} events`);
    }
    if (plan.ipvsStatsIntervalMs !== undefined) {
      statsReader.setInterval(plan.ipvsStatsIntervalMs);
      configLog.info(plan.ipvsStatsIntervalMs === 0 ? 'IPVS counters are no longer read' : `IPVS counters are now read every ${plan.ipvsStatsIntervalMs / 1000} s`);
    }
    if (plan.ipvsSync) {
      if (config.global.ipvsSync === undefined) configLog.info('ipvs-sync-daemon is no longer set: the sync daemons are left as they run');
      void syncDaemons.set(config.global.ipvsSync);
    }
    const services = daemon.reload(config, plan);
    daemon.setRouteTarget(await bgp.apply(plan.bgp, config.global, config.services));
    await services;
    if (stopping) return;
    await checkNatRedirects(config.services);
    await sloppy.check(config.global, config.services, 'reload');
    if (plan.api) {
      await api.closeTcp();
      if (!(await listenApi(config.global))) {
        // The rest of the reload stands; the API goes back where it was, and the line says so once it is there.
        const back = await listenApi(previous.global);
        log.error(
          back
            ? 'The instrumentation API cannot listen as configured (see above); it keeps its previous address'
            : 'The instrumentation API cannot listen as configured nor at its previous address (see above): it is not served',
        );
      }
    }
  };

  await new Promise<void>((resolve) => {
    inbox.open((signal) => {
      if (stopping) return;
      if (signal === 'SIGHUP') {
        // The reload goes after BGP's first start: that starts now rather than hold the reload.
        bgp.startNow('SIGHUP');
        if (reloadWaiting) return;
        reloadWaiting = true;
        reloading = reloading
          .then(() => {
            reloadWaiting = false;
            return stopping ? undefined : reload();
          })
          .catch((error: unknown) => log.error({ err: error }, 'Reload failed; keeping the running configuration'));
      } else if (signal === 'SIGUSR1') {
        // Log rotation (logrotate's postrotate) reopens the log and nothing else.
        void logHandle.reopen().then(
          () => log.info('SIGUSR1: reopened the log file'),
          (error: unknown) => log.error({ err: error }, 'SIGUSR1: could not reopen the log file'),
        );
      } else {
        // Signals stay caught until the end: a second one during shutdown is ignored, not fatal.
        stopping = true;
        // A first BGP start still waiting does not begin now.
        bgp.refuseStarts();
        log.info(`${signal}: shutting down`);
        resolve();
      }
    });
  });

  // Withdraw first, so that the routers move traffic away while IPVS still
  // forwards it; the IPVS table is left as it is (traffic keeps flowing if
  // pybal is restarted), as PyBal does. A reload still running gets a moment
  // to finish, never more: it notices the stop and starts nothing new.
  const waited = new AbortController();
  await Promise.race([reloading, clock.sleep(RELOAD_WAIT_ON_STOP_MS, waited.signal).catch(() => undefined)]);
  waited.abort();
  // BGP graceful restart keeps the routes at the routers only while systemd
  // restarts pybal; a stop, a shutdown of the host or a plain kill withdraws them.
  let keepRoutes = false;
  if (config.global.bgpGracefulRestartSec > 0 && !dryRun) {
    const probe = await systemdIsRestartingUs();
    keepRoutes = probe.restarting;
    if (keepRoutes) {
      log.info(
        `Graceful restart (${probe.why}): the BGP sessions close without withdrawing; the routers keep the routes for up to ` +
          `${config.global.bgpGracefulRestartSec} s while the IPVS table forwards on`,
      );
    } else {
      log.info(`Not a restart (${probe.why}): the routes are withdrawn`);
    }
  }
  await bgp.shutdown('pybal is shutting down', keepRoutes);
  await daemon.stop();
  // The data-path probe services serve pybal's checks only: they leave with it.
  daemon.withdrawProbes();
  await ipvs.idle();
  ipvsWatch.cancel();
  readyWait?.cancel();
  await statsReader.stop();
  await ipvs.stop();
  await syncDaemons.stop();
  stallWatch.stop();
  startUpPad.end();
  mallocTrim.stop();
  kernel.close();
  resyncKernel.close();
  statsKernel.close();
  await checks.close();
  await api.close();
  log.info('Stopped');
  await logHandle.close();
  inbox.close();
  return 0;
}
