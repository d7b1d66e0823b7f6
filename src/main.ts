/**
 * The composition root: the only place that opens files, sockets, netlink
 * and timers for the daemon and wires the components together.
 */
import { execFile } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { PybalMetrics } from './api/metrics.js';
import { createApiServer, DEFAULT_SOCKET_PATH, type ApiServer } from './api/server.js';
import type { BgpStatusValue, DaemonSnapshot } from './api/types.js';
import { formatPrefix } from './bgp/address.js';
import { speakerOptionsFromConfig } from './bgp/announcements.js';
import { BgpSpeaker, type Route } from './bgp/speaker.js';
import { loadConfig } from './config/load-config.js';
import type { Config, GlobalConfig, ServiceConfig } from './config/types.js';
import { Coordinator } from './coordinator/coordinator.js';
import { createMonitorFactory } from './coordinator/monitor-factory.js';
import { resolveHost } from './coordinator/resolver.js';
import type { CreateMonitorFn } from './coordinator/types.js';
import { Daemon, describeReload, type RouteTarget } from './daemon.js';
import { createIpvsClient } from './ipvs/client.js';
import { createLazyIpvsKernel } from './ipvs/lazy-kernel.js';
import { IpvsManager } from './ipvs/manager.js';
import { interfacesSendingRedirects, natRedirectWarning } from './ipvs/redirects.js';
import { createFpingPinger, createRunLimiter } from './monitors/index.js';
import { createPoolSource } from './pool/create-source.js';
import { createSystemClock, type Clock } from './runtime/clock.js';
import { errorMessage, formatProblem } from './runtime/errors.js';
import { createLogger, type LogFormat, type Logger } from './runtime/logger.js';
import { readVersion } from './runtime/version.js';

export interface DaemonOptions {
  readonly configFile: string;
  readonly dryRun: boolean;
  readonly debug: boolean;
  /** A path, or '-' for standard error. */
  readonly logFile: string;
  readonly logFormat: LogFormat;
  /** The Unix socket `pybal status` reads (default /run/pybal/pybal.sock). */
  readonly controlSocket?: string;
}

/** Signals the daemon reacts to; process by default, a fake in tests. */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

/** How often routes are re-offered to the speaker (health changes go at once; this catches IPVS becoming ready). */
const ROUTE_TICK_MS = 1000;
/** How long shutdown waits for the routers to hear the withdrawals and the Cease. */
const BGP_SHUTDOWN_MS = 2000;

function hostIpv4Addresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && a.family === 'IPv4')
    .map((a) => (a as { address: string }).address);
}

/** Best effort, as ipvsadm does: the ip_vs module may not be loaded yet. */
function loadIpvsModule(log: Logger): Promise<void> {
  return new Promise((resolve) => {
    execFile('modprobe', ['ip_vs'], { timeout: 10_000 }, (error) => {
      if (error) log.debug(`modprobe ip_vs: ${errorMessage(error)}`);
      resolve();
    });
  });
}

/** The BGP keys a running speaker depends on: a change to any of them restarts it. */
function bgpSettings(global: GlobalConfig, services: readonly ServiceConfig[]): string {
  const { instrumentation: _i, instrumentationIps: _ii, instrumentationPort: _ip, runcommandMaxConcurrent: _r, ...bgp } = global;
  const families = [...new Set(services.filter((s) => s.bgp).map((s) => s.family))].sort();
  return JSON.stringify({ bgp, families });
}

/**
 * Routes reach the speaker only once IPVS has been programmed: announcing a
 * VIP this director cannot forward would attract traffic into a black hole.
 */
class GatedRoutes implements RouteTarget {
  private routes: readonly Route[] = [];

  constructor(
    private readonly speaker: BgpSpeaker,
    private readonly ipvsReady: () => boolean,
  ) {}

  setAnnouncements(routes: readonly Route[]): void {
    this.routes = routes;
    this.offer();
  }

  offer(): void {
    if (this.ipvsReady()) this.speaker.setAnnouncements(this.routes);
  }
}

/** The BGP side: a speaker while `bgp` is on (and not in dry run), rebuilt when its settings change. */
class BgpSide {
  private speaker: BgpSpeaker | undefined;
  private gate: GatedRoutes | undefined;
  private settings = '';

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly dryRun: boolean,
    private readonly ipvsReady: () => boolean,
  ) {}

  /** Starts, restarts or stops the speaker for this configuration; returns where routes go. */
  async configure(global: GlobalConfig, services: readonly ServiceConfig[]): Promise<RouteTarget | undefined> {
    const wanted = global.bgp && services.some((s) => s.bgp);
    const settings = wanted ? bgpSettings(global, services) : '';
    if (settings === this.settings) return this.gate;
    await this.shutdown('configuration changed');
    this.settings = settings;
    if (!wanted) return undefined;
    if (this.dryRun) {
      this.log.info('Dry run: BGP is not started; the routes it would announce are logged');
      let said = '';
      return {
        setAnnouncements: (routes) => {
          const text = routes.map((r) => formatPrefix(r.prefix)).join(', ') || 'nothing';
          // Publishes follow every pool and health change: say only what changed.
          if (text !== said) this.log.info(`Dry run: would announce ${text}`);
          said = text;
        },
      };
    }
    try {
      const speaker = new BgpSpeaker(speakerOptionsFromConfig(global, services, { clock: this.clock, logger: this.log, hostIpv4Addresses: hostIpv4Addresses() }));
      await speaker.start();
      this.speaker = speaker;
      this.gate = new GatedRoutes(speaker, this.ipvsReady);
      return this.gate;
    } catch (error) {
      this.log.error(`BGP could not start: ${errorMessage(error)}`);
      this.settings = '';
      return undefined;
    }
  }

  tick(): void {
    this.gate?.offer();
  }

  status(global: GlobalConfig): BgpStatusValue {
    return { enabled: this.speaker !== undefined, localAsn: this.speaker ? global.bgpLocalAsn : undefined, peers: this.speaker?.status() ?? [] };
  }

  async shutdown(reason: string): Promise<void> {
    const speaker = this.speaker;
    this.speaker = undefined;
    this.gate = undefined;
    this.settings = '';
    if (speaker) await speaker.shutdown(reason, BGP_SHUTDOWN_MS);
  }
}

/**
 * Runs the daemon until SIGTERM or SIGINT. Resolves with the exit status:
 * 0 after a clean shutdown, 1 when the configuration is invalid.
 */
export async function runDaemon(options: DaemonOptions, signals: SignalSource = process): Promise<number> {
  const logHandle = await createLogger({
    file: options.logFile,
    format: options.logFormat,
    level: options.debug ? 'debug' : 'info',
  });
  const log = logHandle.logger;
  const configLog = log.child({ component: 'config' });
  const clock = createSystemClock();
  const startedAtWallMs = clock.wallNow();

  const loaded = await loadConfig(options.configFile);
  for (const warning of loaded.warnings) configLog.warn(formatProblem(warning));
  if (!loaded.config) {
    for (const error of loaded.errors) configLog.error(formatProblem(error));
    configLog.fatal(`${options.configFile}: ${loaded.errors.length} error(s); not starting`);
    await logHandle.close();
    return 1;
  }
  let config: Config = loaded.config;
  log.info(
    `pybal ${readVersion()} starting with ${config.file}: ${config.services.length} service(s)` +
      (options.dryRun ? ' (dry run: nothing will be changed in the kernel)' : ''),
  );

  // IPVS: one netlink client, opened (and reopened) as the manager needs it.
  const ipvsLog = log.child({ component: 'ipvs' });
  const checkNatRedirects = async (services: readonly ServiceConfig[]): Promise<void> => {
    const warning = natRedirectWarning(services, await interfacesSendingRedirects());
    if (warning !== undefined) ipvsLog.warn(warning);
  };
  await checkNatRedirects(config.services);
  await loadIpvsModule(ipvsLog);
  const kernel = createLazyIpvsKernel(() => createIpvsClient({ clock, logger: ipvsLog }));
  const ipvs = new IpvsManager({ kernel, clock, logger: ipvsLog, dryRun: options.dryRun, resyncIntervalMs: config.global.ipvsResyncIntervalMs });
  const ipvsReady = (): boolean => {
    const s = ipvs.stats();
    return s.reconciles > s.failedReconciles;
  };

  // Monitors share one command limiter and one batch pinger.
  const metrics = new PybalMetrics();
  const runLimiter = createRunLimiter(config.global.runcommandMaxConcurrent);
  const pinger = createFpingPinger({ clock, logger: log.child({ component: 'ping' }) });
  const monitorsFor = (service: ServiceConfig): CreateMonitorFn => {
    const factory = createMonitorFactory({
      clock,
      logger: log.child({ service: service.name }),
      runLimiter,
      pinger,
      onResult: (target, result) => metrics.recordResult(service.name, target.host, result),
    });
    return (monitorConfig, target, onReport) =>
      factory(monitorConfig, target, (report) => {
        metrics.recordReport(service.name, target.host, { ...report, kind: monitorConfig.kind, atMs: clock.now() });
        onReport(report);
      });
  };

  const daemon = new Daemon(config, {
    logger: log,
    createPoolSource: (service) =>
      createPoolSource(service.poolUrl, { clock, logger: log.child({ service: service.name, component: 'pool' }) }),
    createCoordinator: (service, onChange) =>
      new Coordinator(service, {
        clock,
        logger: log.child({ service: service.name }),
        createMonitor: monitorsFor(service),
        resolve: resolveHost,
        onChange,
      }),
    ipvs,
    defer: (fn) => clock.setTimeout(fn, 0),
  });

  const bgp = new BgpSide(clock, log.child({ component: 'bgp' }), options.dryRun, ipvsReady);
  const snapshot = (): DaemonSnapshot => ({
    version: readVersion(),
    startedAtWallMs,
    dryRun: options.dryRun,
    services: daemon.snapshots(),
    bgp: bgp.status(daemon.globalConfig),
    ipvs: ipvs.stats(),
  });
  const api: ApiServer = createApiServer({ snapshot, metrics, logger: log });
  const listenApi = async (global: GlobalConfig): Promise<void> => {
    if (global.instrumentation) await api.listen({ ips: global.instrumentationIps, port: global.instrumentationPort });
  };
  await api.listenUnix(options.controlSocket ?? DEFAULT_SOCKET_PATH);
  await listenApi(config.global);

  ipvs.start();
  daemon.start();
  daemon.setRouteTarget(await bgp.configure(config.global, config.services));
  let routeTick = clock.setTimeout(function tick() {
    bgp.tick();
    routeTick = clock.setTimeout(tick, ROUTE_TICK_MS);
  }, ROUTE_TICK_MS);

  // SIGHUP: reopen the log (logrotate) and re-read pybal.conf. One reload at a time.
  let reloading = Promise.resolve();
  const reload = async (): Promise<void> => {
    await logHandle.reopen();
    log.info(`SIGHUP: reopened the log file; re-reading ${options.configFile}`);
    const next = await loadConfig(options.configFile);
    for (const warning of next.warnings) configLog.warn(formatProblem(warning));
    if (!next.config) {
      for (const error of next.errors) configLog.error(formatProblem(error));
      configLog.error(`${options.configFile}: ${next.errors.length} error(s); keeping the running configuration`);
      return;
    }
    const previous = config;
    config = next.config;
    const summary = await daemon.reload(config);
    configLog.info(describeReload(summary));
    await checkNatRedirects(config.services);
    daemon.setRouteTarget(await bgp.configure(config.global, config.services));
    if (JSON.stringify(previous.global.instrumentationIps) !== JSON.stringify(config.global.instrumentationIps) ||
      previous.global.instrumentationPort !== config.global.instrumentationPort ||
      previous.global.instrumentation !== config.global.instrumentation) {
      await api.closeTcp();
      await listenApi(config.global);
    }
    if (previous.global.ipvsResyncIntervalMs !== config.global.ipvsResyncIntervalMs) {
      ipvs.setResyncInterval(config.global.ipvsResyncIntervalMs);
      configLog.info(`IPVS resync interval is now ${config.global.ipvsResyncIntervalMs / 1000} s`);
    }
    if (previous.global.runcommandMaxConcurrent !== config.global.runcommandMaxConcurrent) {
      configLog.warn('runcommand-max-concurrent changes take effect at the next restart');
    }
  };

  await new Promise<void>((resolve) => {
    const onHangup = (): void => {
      reloading = reloading.then(reload).catch((error: unknown) => log.error({ err: error }, 'Reload failed; keeping the running configuration'));
    };
    const onStop = (signal: NodeJS.Signals): void => {
      log.info(`${signal}: shutting down`);
      signals.off('SIGHUP', onHangup);
      signals.off('SIGTERM', onTerm);
      signals.off('SIGINT', onInt);
      resolve();
    };
    const onTerm = (): void => onStop('SIGTERM');
    const onInt = (): void => onStop('SIGINT');
    signals.on('SIGHUP', onHangup);
    signals.on('SIGTERM', onTerm);
    signals.on('SIGINT', onInt);
  });

  // Withdraw first, so that the routers move traffic away while IPVS still
  // forwards it; the IPVS table is left as it is (traffic keeps flowing if
  // pybal is restarted), as PyBal does.
  await reloading;
  routeTick.cancel();
  await bgp.shutdown('pybal is shutting down');
  await daemon.stop();
  await ipvs.stop();
  kernel.close();
  await pinger.stop();
  await api.close();
  log.info('Stopped');
  await logHandle.close();
  return 0;
}
