/**
 * The kernel's IPVS connection-sync daemons, kept as pybal.conf's
 * `ipvs-sync-*` keys say (`ipvsadm --start-daemon` for a director that runs
 * pybal). A master sends the connections this director balances to a
 * multicast group; a backup takes those of the other directors in, so that
 * when the routers move a VIP here, the connections already established
 * through another director keep their real server.
 *
 * Without `ipvs-sync-daemon` pybal leaves the daemons alone (an operator's
 * own `ipvsadm --start-daemon` stands); `none` stops any. pybal sets them at
 * start, after a reload that changes a key, and at every IPVS resync (a
 * daemon stopped by hand is started again). It leaves them running when it
 * stops, as it leaves the IPVS table: connections keep syncing across a
 * restart.
 */
import type { IpvsSyncConfig } from '../config/types.js';
import { errorMessage } from '../runtime/errors.js';
import type { Logger } from '../runtime/logger.js';
import type { SyncDaemon, SyncState } from './types.js';

/** What the kernel answers about sync daemons (IpvsClient). */
export interface SyncDaemonKernel {
  daemons(): Promise<SyncDaemon[]>;
  startDaemon(d: SyncDaemon): Promise<void>;
  stopDaemon(state: SyncState): Promise<void>;
}

/** The kernel's defaults for what pybal.conf leaves out (ip_vs_sync.c, ip_vs.h). */
export const SYNC_DEFAULTS = { group: '224.0.0.81', port: 8848, ttl: 1 } as const;

const STATES: readonly SyncState[] = ['master', 'backup'];

/** The daemons a configuration asks for, the kernel's defaults filled in. */
export function wantedDaemons(config: IpvsSyncConfig): SyncDaemon[] {
  const states: SyncState[] = config.mode === 'both' ? ['master', 'backup'] : config.mode === 'none' ? [] : [config.mode];
  return states.map((state) => ({
    state,
    mcastIfn: config.interface,
    syncId: config.syncId,
    syncMaxLen: 0,
    mcastGroup: config.group ?? SYNC_DEFAULTS.group,
    mcastPort: config.port ?? SYNC_DEFAULTS.port,
    mcastTtl: config.ttl ?? SYNC_DEFAULTS.ttl,
  }));
}

/**
 * Whether a running daemon is the one wanted. A kernel that does not report
 * the group, port or TTL (before Linux 4.3) matches on the rest. A backup's
 * TTL is not its own to use, so it is not compared.
 */
export function sameDaemon(have: SyncDaemon, want: SyncDaemon): boolean {
  return (
    have.state === want.state &&
    have.mcastIfn === want.mcastIfn &&
    have.syncId === want.syncId &&
    (have.mcastGroup === '' || have.mcastGroup.toLowerCase() === want.mcastGroup.toLowerCase()) &&
    (have.mcastPort === 0 || have.mcastPort === want.mcastPort) &&
    (want.state === 'backup' || have.mcastTtl === 0 || have.mcastTtl === want.mcastTtl)
  );
}

/** `master on eth0, sync id 3, group 224.0.0.81 port 8848 ttl 1`, as the log says it. */
export function describeDaemon(d: SyncDaemon): string {
  const group = d.mcastGroup === '' ? '' : `, group ${d.mcastGroup}`;
  const port = d.mcastPort === 0 ? '' : ` port ${d.mcastPort}`;
  const ttl = d.state === 'master' && d.mcastTtl !== 0 ? ` ttl ${d.mcastTtl}` : '';
  return `${d.state} on ${d.mcastIfn}, sync id ${d.syncId}${group}${port}${ttl}`;
}

export interface SyncDaemonKeeperOptions {
  readonly kernel: SyncDaemonKernel;
  readonly logger: Logger;
  /** Say what would change, change nothing. */
  readonly dryRun: boolean;
}

/**
 * Keeps the daemons as the configuration says. Each check reads the kernel's
 * daemons and starts, stops or restarts (a changed interface, id, group,
 * port or TTL) only what differs; a check that finds them right says
 * nothing. A failure is logged once until it changes or clears, so a
 * director whose sync interface is missing logs it once, not every resync.
 */
export class SyncDaemonKeeper {
  private config: IpvsSyncConfig | undefined;
  private lastError = '';
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly options: SyncDaemonKeeperOptions) {}

  /** A new configuration (undefined: leave the daemons alone); checks at once. */
  set(config: IpvsSyncConfig | undefined): Promise<void> {
    this.config = config;
    return this.check();
  }

  /** Sets the daemons as the last configuration says; one check at a time, never rejects. */
  check(): Promise<void> {
    this.running = this.running.then(() => this.checkNow());
    return this.running;
  }

  /** No further checks; resolves when the one running (if any) is done. The daemons keep running. */
  stop(): Promise<void> {
    this.config = undefined;
    return this.running;
  }

  private async checkNow(): Promise<void> {
    const config = this.config;
    if (config === undefined) return;
    const { kernel, logger, dryRun } = this.options;
    const errors: string[] = [];
    let have: SyncDaemon[];
    try {
      have = await kernel.daemons();
    } catch (error) {
      this.report([`could not read the kernel's sync daemons: ${errorMessage(error)}`]);
      return;
    }
    const want = wantedDaemons(config);
    for (const state of STATES) {
      const running = have.find((d) => d.state === state);
      const wanted = want.find((d) => d.state === state);
      if (running === undefined && wanted === undefined) continue;
      if (running !== undefined && wanted !== undefined && sameDaemon(running, wanted)) continue;
      if (dryRun) {
        if (running) logger.info(`Dry run: would stop the IPVS sync daemon ${describeDaemon(running)}`);
        if (wanted) logger.info(`Dry run: would start the IPVS sync daemon ${describeDaemon(wanted)}`);
        continue;
      }
      try {
        if (running) {
          await kernel.stopDaemon(state);
          logger.info(`Stopped the IPVS sync daemon ${describeDaemon(running)}${wanted ? ' (to start it as configured)' : ''}`);
        }
        if (wanted) {
          await kernel.startDaemon(wanted);
          logger.info(`Started the IPVS sync daemon ${describeDaemon(wanted)}`);
        }
      } catch (error) {
        const text = errorMessage(error);
        const hint = wanted && /ENODEV|No such device/.test(text) ? ` (this director has no interface ${wanted.mcastIfn})` : '';
        errors.push(`could not ${wanted ? `start the IPVS sync daemon ${describeDaemon(wanted)}` : `stop the IPVS ${state} sync daemon`}: ${text}${hint}`);
      }
    }
    this.report(errors);
  }

  private report(errors: readonly string[]): void {
    const text = errors.join('; ');
    if (text === this.lastError) return;
    if (text === '') this.options.logger.info('The IPVS sync daemons are as configured again');
    else this.options.logger.error(`${text[0]!.toUpperCase()}${text.slice(1)}; connections will not be synced until this is fixed (retried at every IPVS resync)`);
    this.lastError = text;
  }
}
