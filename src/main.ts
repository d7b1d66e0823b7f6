/**
 * The composition root: the only place that opens files, sockets and timers
 * for the daemon and wires the components together.
 */
import { loadConfig } from './config/load-config.js';
import type { Config, ServiceConfig } from './config/types.js';
import { describePoolChange } from './coordinator/pool-diff.js';
import { createPoolSource } from './pool/create-source.js';
import type { Pool, PoolEvent, PoolSource } from './pool/types.js';
import { createSystemClock } from './runtime/clock.js';
import { formatProblem } from './runtime/errors.js';
import { createLogger, type LogFormat, type Logger } from './runtime/logger.js';
import { readVersion } from './runtime/version.js';

export interface DaemonOptions {
  readonly configFile: string;
  readonly dryRun: boolean;
  readonly debug: boolean;
  /** A path, or '-' for standard error. */
  readonly logFile: string;
  readonly logFormat: LogFormat;
}

/** Signals the daemon reacts to; process by default, a fake in tests. */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

/** One service's pool source and the last pool it delivered. */
class ServicePool {
  private pool: Pool | undefined;

  constructor(
    readonly service: ServiceConfig,
    private readonly source: PoolSource,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.source.start((event) => this.onEvent(event));
  }

  stop(): Promise<void> {
    return this.source.stop();
  }

  private onEvent(event: PoolEvent): void {
    switch (event.type) {
      case 'pool':
        for (const line of describePoolChange(this.pool, event.pool)) this.log.info(line);
        this.pool = event.pool;
        break;
      case 'error':
      case 'recovered':
        // The source logs these itself, once per change.
        break;
    }
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
  const clock = createSystemClock();

  const loaded = await loadConfig(options.configFile);
  for (const warning of loaded.warnings) log.child({ component: 'config' }).warn(formatProblem(warning));
  if (!loaded.config) {
    const configLog = log.child({ component: 'config' });
    for (const error of loaded.errors) configLog.error(formatProblem(error));
    configLog.fatal(`${options.configFile}: ${loaded.errors.length} error(s); not starting`);
    await logHandle.close();
    return 1;
  }
  const config: Config = loaded.config;
  log.info(
    `pybal ${readVersion()} starting with ${config.file}: ${config.services.length} service(s)` +
      (options.dryRun ? ' (dry run: nothing will be changed)' : ''),
  );

  const pools = config.services.map((service) => {
    const serviceLog = log.child({ service: service.name });
    const source = createPoolSource(service.poolUrl, { clock, logger: log.child({ component: 'pool', service: service.name }) });
    return new ServicePool(service, source, serviceLog);
  });
  for (const pool of pools) pool.start();

  await new Promise<void>((resolve) => {
    const onHangup = (): void => {
      void logHandle.reopen().then(() => log.info('Reopened the log file'));
    };
    const onStop = (): void => {
      signals.off('SIGHUP', onHangup);
      signals.off('SIGTERM', onStop);
      signals.off('SIGINT', onStop);
      resolve();
    };
    signals.on('SIGHUP', onHangup);
    signals.on('SIGTERM', onStop);
    signals.on('SIGINT', onStop);
  });

  log.info('Shutting down');
  await Promise.all([...pools].reverse().map((pool) => pool.stop()));
  log.info('Stopped');
  await logHandle.close();
  return 0;
}
