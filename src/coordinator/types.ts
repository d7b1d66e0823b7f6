/**
 * The coordinator's boundary: what it is given, what it publishes. Every
 * value crossing it is plain data (DESIGN: any boundary could become a
 * process boundary).
 */
import type { AddressFamily, ForwardMethod, MonitorConfig, MonitorKind, Protocol, Scheduler, ServiceConfig } from '../config/types.js';
import type { EventSink } from '../events/history.js';
import type { QuietServerValue, TrafficValue } from '../ipvs/types.js';
import type { PoolEvent } from '../pool/types.js';
import type { DataPathRoute } from '../monitors/types.js';
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { SliceOptions } from '../runtime/sliced.js';

/** A server the coordinator wants in IPVS. */
export interface PooledServerValue {
  readonly host: string;
  /** The resolved address, in the service's family. */
  readonly address: string;
  /** Weight 0 keeps the server in IPVS, drained. */
  readonly weight: number;
}

/** One monitor of one server, as the status page and API show it. */
export interface MonitorSnapshot {
  readonly kind: MonitorKind;
  /** undefined before its first result. */
  readonly up: boolean | undefined;
  /** The reason of its last report ('' when none yet). */
  readonly reason: string;
  /** Wall-clock ms of its last report, if any. */
  readonly sinceWallMs: number | undefined;
  /** Its latest check, whether or not it changed the state; absent before the first (or when the monitor does not say). */
  readonly lastCheck?: CheckSummary;
  /** It checks through the data path (datapath-check); absent otherwise. */
  readonly dataPath?: true;
}

/** One check's outcome as the status page shows it: the result, its reason and how long it took. */
export interface CheckSummary {
  readonly ok: boolean;
  readonly reason: string;
  readonly durationMs: number;
}

export interface ServerSnapshot {
  readonly host: string;
  /** undefined while the name is not resolved. */
  readonly address: string | undefined;
  readonly weight: number;
  readonly enabled: boolean;
  /** PyBal's `up`: every monitor up (optimistically true before the first results). */
  readonly up: boolean;
  /** In IPVS (or wanted there). */
  readonly pooled: boolean;
  /** Pooled although down, because the depool threshold forbids removing it. */
  readonly pooledDown: boolean;
  readonly monitors: readonly MonitorSnapshot[];
  /** The last resolution error, while the name does not resolve. */
  readonly resolveError: string | undefined;
  /** Its IPVS counters at the last reading (ipvs-stats-interval); absent when off, not read yet, or not in the kernel. */
  readonly traffic?: TrafficValue;
  /** Pooled and up, yet it gets no traffic while its siblings do (the quiet-server rule, ipvs/quiet-servers.ts). */
  readonly quiet?: QuietServerValue;
}

/** What a service's snapshot leaves out: its servers (`servers: false`), or each monitor's latest check (`checks: false`). */
export interface SnapshotOptions {
  readonly servers?: boolean;
  readonly checks?: boolean;
}

export interface ServiceSnapshot {
  readonly name: string;
  readonly protocol: Protocol;
  readonly ip: string;
  readonly port: number;
  /** The firewall mark of a mark service (its kernel service), else undefined. */
  readonly fwmark: number | undefined;
  readonly forwardMethod: ForwardMethod;
  readonly scheduler: Scheduler;
  readonly depoolThreshold: number;
  /** In pool order. */
  readonly servers: readonly ServerSnapshot[];
  /** PyBal's canDepool() right now. */
  readonly canDepool: boolean;
  /** Times a failing server could not be depooled (PyBal's could_not_depool_total). */
  readonly couldNotDepoolTotal: number;
  /** The pool source's current error, if it has one (the last good pool stays in force). */
  readonly poolError: string | undefined;
  /** True until the first pool has been read. */
  readonly awaitingPool: boolean;
  /**
   * True while some server of the pool is still on its first resolution:
   * pooledServers() may then lack servers that will be pooled in a moment
   * (what a startup adopting the kernel's state should wait for).
   */
  readonly initializing: boolean;
  /** The kernel service's IPVS counters at the last reading; absent when off, not read yet, or not in the kernel. */
  readonly traffic?: TrafficValue;
}

/** Resolves a server name to its addresses in one family; rejects on failure. */
export type Resolve = (host: string, family: AddressFamily, signal: AbortSignal) => Promise<readonly string[]>;

/** How a coordinator creates one monitor (the monitors registry in production, fakes in unit tests). */
export type CreateMonitorFn = (
  config: MonitorConfig,
  target: { readonly host: string; readonly ip: string; readonly port: number; readonly family: AddressFamily; readonly dataPath?: DataPathRoute },
  onReport: (report: { readonly up: boolean; readonly reason: string; readonly firstCheck: boolean }) => void,
  /** Every check's outcome (for the status page's last check); optional for fakes. */
  onCheck?: (result: CheckSummary) => void,
) => { start(options?: MonitorStartOptions): void; stop(): Promise<void> };

/** How a monitor begins (the monitors' StartOptions, as plain data). */
export interface MonitorStartOptions {
  readonly delayMs?: number;
  readonly assumeUp?: boolean;
}

export interface CoordinatorDeps {
  readonly clock: Clock;
  /** Bound to the service: log.child({ service }). */
  readonly logger: Logger;
  readonly createMonitor: CreateMonitorFn;
  readonly resolve: Resolve;
  /** Called (synchronously, possibly often) whenever pooled servers, health or the snapshot changed. */
  readonly onChange: () => void;
  /** Random source in [0, 1) for the resolution retry jitter; Math.random by default. */
  readonly random?: () => number;
  /**
   * Health by host that the coordinator this one replaces knew (a reload
   * that changed the service's address family): a server known down starts
   * down and waits for every monitor, instead of PyBal's optimistic up.
   */
  readonly knownHealth?: ReadonlyMap<string, boolean>;
  /**
   * How long a monitor's first check waits (the daemon's start pacer, which
   * spreads a large start over the interval). None: at once.
   */
  readonly startDelayMs?: (config: MonitorConfig) => number;
  /**
   * Whether the kernel had this address pooled (weight above 0) in the
   * service when pybal started. Asked for the servers of the first pool: such
   * a server's monitors start from up, so that a busy restart depools it only
   * after `fall` failures, not at the first.
   */
  readonly pooledAtStart?: (address: string) => boolean;
  /** How pool applications and policy passes are sliced (runtime/sliced.ts); tests force small slices. */
  readonly slicing?: SliceOptions;
  /** Where state changes are recorded (monitor transitions, pooling decisions, pools applied); none: not recorded. */
  readonly events?: EventSink;
  /** What data-path checks need (the service's dataPathMonitors); none: every monitor checks at the server's address. */
  readonly dataPath?: DataPathDeps;
}

/** The daemon's side of data-path checks, for one service. */
export interface DataPathDeps {
  /** One firewall mark per checked server (coordinator/data-path-marks.ts); undefined when the range is used up. */
  acquire(): number | undefined;
  release(mark: number): void;
  /** Whether the kernel has the probe service of this mark, in the service's family. */
  programmed(mark: number): boolean;
  /** datapath-source-ipv4/-ipv6 for the service's family. */
  readonly source: string | undefined;
  /**
   * Told, after each pool, how many new TCP connections a second the
   * service's data-path checks make to its VIP and port (each check one):
   * the daemon warns when that nears what the director's local ports allow.
   */
  connectionRate?(perSec: number): void;
}

/**
 * One per service. Fed complete pools by the daemon (from the service's pool
 * source); runs each server's monitors; decides what is pooled under the
 * depool threshold; publishes plain values.
 */
export interface CoordinatorApi {
  readonly service: ServiceConfig;
  /** Feeds a pool source event. */
  onPoolEvent(event: PoolEvent): void;
  /**
   * The servers that should be in IPVS now. With `keepDepooled`, every server
   * of the pool with an address, depooled or disabled ones at weight 0, in
   * address order (see Daemon: mh services with fallback).
   */
  pooledServers(options?: { readonly keepDepooled?: boolean }): readonly PooledServerValue[];
  /** Calls `visit` for each server checked through the data path: its firewall mark and address (the probe service it needs). */
  forEachDataPathProbe(visit: (host: string, address: string, mark: number) => void): void;
  /**
   * pooledServers() without keepDepooled, as calls in pool order, building
   * nothing: what the daemon compares with what it published last.
   */
  forEachPooled(visit: (host: string, address: string, weight: number) => void): void;
  /** How many servers it has: as many as forEachPooled can visit, at most (to size what takes them). */
  serverCount(): number;
  /** True when at least one pooled server is up (for BGP withdraw-when-down). */
  healthy(): boolean;
  /** With `servers: false`, the service without its servers (cheap at 100,000 servers). */
  snapshot(options?: SnapshotOptions): ServiceSnapshot;
  /** snapshot() as a job that yields every few servers (run it sliced: see ApiServerDeps.snapshotSliced). */
  snapshotSteps(options?: SnapshotOptions): Generator<unknown, ServiceSnapshot, undefined>;
  /**
   * Its first pool is known and every server in it had its first resolution
   * attempt (a snapshot's !awaitingPool && !initializing, without building one).
   */
  ready(): boolean;
  /**
   * A reload changed the service in place: takes the new configuration,
   * restarts the monitors when they changed (each server keeps its last known
   * state until they report) and applies the policy again when it changed.
   */
  reconfigure(service: ServiceConfig, changes: { readonly monitors: boolean; readonly policy: boolean }): void;
  /** Each resolved server's last known health, by host (to seed a replacement). */
  health(): ReadonlyMap<string, boolean>;
  /** Stops every monitor and resolution; resolves when nothing is left running. */
  stop(): Promise<void>;
}
