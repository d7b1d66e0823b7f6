/**
 * The monitor contract. A monitor watches one real server and reports up/down
 * transitions with a reason; it never reads or writes coordinator or server
 * state ("monitors report, coordinators decide"). Everything crossing this
 * boundary is a plain value.
 */
import type { AddressFamily, MonitorKind } from '../config/types.js';
import type { Clock } from '../runtime/clock.js';
import type { LineLogger } from '../runtime/logger.js';
import type { Pinger } from './pinger.js';
import type { RunLimiter } from './run-limiter.js';

/** The real server a monitor checks. */
export interface MonitorTarget {
  /** The server's name as the pool gives it (substituted for `server.host`). */
  readonly host: string;
  /** Its address, in the service's family (substituted for `server.ip`). */
  readonly ip: string;
  /** The service port: where checks connect, as PyBal. */
  readonly port: number;
  readonly family: AddressFamily;
  /** Set when this monitor checks through the data path (datapath-check). */
  readonly dataPath?: DataPathRoute;
}

/**
 * How a data-path check reaches its server: to the VIP and the service port,
 * from a socket carrying the server's firewall mark, which the kernel's IPVS
 * forwards (by the service's method) to the one destination of that mark's
 * probe service: the server, as client traffic reaches it.
 */
export interface DataPathRoute {
  readonly vip: string;
  readonly mark: number;
  readonly method: 'dr' | 'tunnel';
  /** The address checks leave from (datapath-source-ipv4/-6); undefined: the kernel's choice towards the server. */
  readonly source: string | undefined;
  /** Whether the probe service is in the kernel: until it is, the server is checked at its own address. */
  ready(): boolean;
}

export type HealthState = 'up' | 'down';

/** Sent on the first result and on every transition (PyBal's resultUp/resultDown). */
export interface MonitorReport {
  readonly kind: MonitorKind;
  readonly up: boolean;
  readonly reason: string;
  /** True for the first result after start. */
  readonly firstCheck: boolean;
  /** Clock time of the result (monotonic ms). */
  readonly atMs: number;
}

/** One fetched URL of a ProxyFetch round (for the per-URL duration metric). */
export interface UrlResult {
  readonly url: string;
  readonly ok: boolean;
  readonly reason: string;
  readonly durationMs: number;
}

/**
 * Every single check result, whether or not it changed the state: what the
 * daemon needs for PyBal's per-check metrics (results totals, request and run
 * durations, IdleConnection failure counters).
 */
export interface CheckResult {
  readonly kind: MonitorKind;
  readonly ok: boolean;
  readonly reason: string;
  readonly durationMs: number;
  /** ProxyFetch: each URL fetched this round. */
  readonly urls?: readonly UrlResult[];
  /** RunCommand: the exit code, null when killed by a signal or not started. */
  readonly exitCode?: number | null;
  /** IdleConnection: what happened to the connection. */
  readonly event?: 'connected' | 'connect-failed' | 'connection-lost';
  /** IdleConnection: error class for the `reason` label (ECONNREFUSED, ETIMEDOUT, ...). */
  readonly errorCode?: string;
}

/** How a monitor begins. */
export interface StartOptions {
  /**
   * The first check (or connection) waits this long: the daemon spreads
   * the first checks of a large start over the interval (start-pacer.ts).
   */
  readonly delayMs?: number;
  /**
   * The server is known good already (the kernel had it pooled when pybal
   * started): the monitor starts from 'up', so that it reports a failure
   * only after `fall` of them instead of at the first one.
   */
  readonly assumeUp?: boolean;
}

export interface Monitor {
  readonly kind: MonitorKind;
  /** Starts checking; the first check runs at once unless options say otherwise. Idempotent. */
  start(options?: StartOptions): void;
  /** Cancels in-flight work; resolves once no socket, timer or process is left. */
  stop(): Promise<void>;
  /** The reported state, undefined before the first result. */
  state(): HealthState | undefined;
}

export interface MonitorDeps {
  readonly clock: Clock;
  /** Read when needed, not kept: the checks thread's deps make one when asked. */
  readonly logger: LineLogger;
  /** Called as a method of these deps (`deps.onReport(report)`, health.ts): the checks thread's is a method. */
  readonly onReport: (report: MonitorReport) => void;
  /** Called as a method of these deps (`deps.onResult?.(result)`): the daemon's is a method, not a bound function. */
  readonly onResult?: (result: CheckResult) => void;
  /** Shared cap on concurrent commands (RunCommand); without it each monitor runs unthrottled. */
  readonly runLimiter?: RunLimiter;
  /** Shared batch pinger (Ping); without it the monitor owns a private one. */
  readonly pinger?: Pinger;
  /** Random source in [0, 1) for jitter and URL choice; Math.random by default. */
  readonly random?: () => number;
  /** Shared admission of check starts (admission.ts); without it a due check starts at once. */
  readonly admit?: () => Promise<void>;
  /** The same admission in its callback form (Admission.call): `fn` is called when the check may start. Preferred by periodic monitors where given. */
  readonly admitCall?: (fn: () => void) => void;
  /** Who answers ARP for a VIP (arp-theft.ts), for data-path checks of IPv4 direct routing; none: not looked at. */
  readonly arpWatch?: ArpWatchLike;
}

/** What data-path checks ask of the ARP watch (arp-theft.ts). */
export interface ArpWatchLike {
  /** Starts watching whether serverIp answers ARP for vip; returns the end of that interest. */
  watch(vip: string, serverIp: string): () => void;
  /** The latest verdict; undefined while unknown. */
  answers(vip: string, serverIp: string): { readonly answered: boolean; readonly mac: string; readonly device: string } | undefined;
}

/** What one check concluded. */
export interface CheckOutcome {
  readonly ok: boolean;
  readonly reason: string;
  readonly urls?: readonly UrlResult[];
  readonly exitCode?: number | null;
  /** How long the check took, from the start time it was given, when it timed itself (saves the wrapper a clock read). */
  readonly durationMs?: number;
}
