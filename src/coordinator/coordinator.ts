/**
 * One coordinator per service: follows the pool, resolves and monitors each
 * server, and decides (through decidePool) what is pooled under the depool
 * threshold. It publishes plain values and calls onChange; it never touches
 * IPVS or BGP itself.
 */
import net from 'node:net';
import type { MonitorConfig, ServiceConfig } from '../config/types.js';
import { NO_EVENTS, type EventInput, type EventSink } from '../events/history.js';
import type { Pool, PoolDelta, PoolEvent, PoolServer } from '../pool/types.js';
import type { DataPathRoute } from '../monitors/types.js';
import type { Timer } from '../runtime/clock.js';
import { errorMessage } from '../runtime/errors.js';
import { Interner } from '../runtime/interner.js';
import { finish, runSliced, sliced, type Job } from '../runtime/sliced.js';
import { applyDown, applyUp, refreshSteps, type PolicyLog, type PolicyOutput } from './decide-pool.js';
import { describePoolDiff, type PoolDiff } from './pool-diff.js';
import { literalAddresses } from './resolver.js';
import type {
  CheckSummary,
  CoordinatorApi,
  CoordinatorDeps,
  CreateMonitorFn,
  MonitorSnapshot,
  MonitorStartOptions,
  PooledServerValue,
  ServerSnapshot,
  SnapshotOptions,
  ServiceSnapshot,
} from './types.js';

/** First retry after a failed resolution; doubles per failure up to the cap. */
export const RESOLVE_RETRY_FIRST_MS = 1_000;
export const RESOLVE_RETRY_MAX_MS = 60_000;
/** Relative jitter (±) on retry delays, so that many servers do not retry in step. */
export const RESOLVE_RETRY_JITTER = 0.2;
/** How often a resolved name is looked up again, to follow address changes. */
export const RESOLVE_REFRESH_MS = 60_000;

/** Delay before resolution retry number `failures` (0-based), with jitter from random() in [0, 1). */
export function resolveRetryDelayMs(failures: number, random: () => number): number {
  const base = Math.min(RESOLVE_RETRY_MAX_MS, RESOLVE_RETRY_FIRST_MS * 2 ** Math.min(failures, 30));
  return Math.round(base * (1 + RESOLVE_RETRY_JITTER * (2 * random() - 1)));
}

interface MonitorEntry {
  readonly config: MonitorConfig;
  handle: { start(options?: MonitorStartOptions): void; stop(): Promise<void> };
  up: boolean | undefined;
  reason: string;
  sinceWallMs: number | undefined;
  /** The latest check's outcome (every check, not only transitions). */
  /** The latest check, overwritten in place by each (no object per check); snapshots copy it. */
  lastCheck: { ok: boolean; reason: string; durationMs: number } | undefined;
}

interface ServerEntry {
  readonly host: string;
  weight: number;
  enabled: boolean;
  address: string | undefined;
  resolveError: string | undefined;
  /** Its first resolution has not finished yet (PyBal: not yet initialized). */
  initializing: boolean;
  /** Resolved: it has an address, and monitors (PyBal's `ready`; derived from `address`). */
  readonly ready: boolean;
  /** It came with the coordinator's first pool: the kernel may have had it pooled before pybal started. */
  readonly fromFirstPool: boolean;
  monitors: MonitorEntry[];
  /** PyBal's server.up: the last aggregate state acted upon. */
  up: boolean;
  /**
   * Its monitors were (re)started while it was known down (a reload changed
   * them, or replaced the service): it stays down until every new monitor
   * has reported up, instead of PyBal's optimism for a server never checked.
   */
  holdDown: boolean;
  pooled: boolean;
  pooledDown: boolean;
  resolveFailures: number;
  resolveAbort: AbortController | undefined;
  resolveTimer: Timer | undefined;
  removed: boolean;
  /** Its data-path checks' firewall mark, held while its monitors run (and the service checks through the data path). */
  dataPathMark: number | undefined;
}

/**
 * A server's entry as a class: one object of a fixed shape per server, its
 * `ready` getter on the prototype (an object literal with a getter made a
 * closure per server, and 10,000 of them were kept in slow dictionary form).
 */
class Server implements ServerEntry {
  readonly host: string;
  weight: number;
  enabled: boolean;
  address: string | undefined = undefined;
  resolveError: string | undefined = undefined;
  initializing = true;
  readonly fromFirstPool: boolean;
  monitors: MonitorEntry[] = [];
  up = false;
  holdDown = false;
  pooled = false;
  pooledDown = false;
  resolveFailures = 0;
  resolveAbort: AbortController | undefined = undefined;
  resolveTimer: Timer | undefined = undefined;
  removed = false;
  dataPathMark: number | undefined = undefined;

  constructor(server: PoolServer, fromFirstPool: boolean) {
    this.host = server.host;
    this.weight = server.weight;
    this.enabled = server.enabled;
    this.fromFirstPool = fromFirstPool;
  }

  get ready(): boolean {
    return this.address !== undefined;
  }
}

/**
 * Every monitor up; before a monitor's first result it counts as up (PyBal's
 * optimism), except for a server held down, which needs every result. No
 * monitors: up.
 */
function monitorsUp(entry: ServerEntry): boolean {
  return entry.holdDown ? entry.monitors.every((m) => m.up === true) : entry.monitors.every((m) => m.up !== false);
}

/** Counted by PyBal's upServerCount: up, enabled, resolved, and still in the pool. */
function countsUp(entry: ServerEntry): boolean {
  return entry.up && entry.enabled && entry.ready && !entry.removed;
}

/** How much of each kind of work a job does between two looks at the clock (see runtime/sliced.ts). */
const SLICE_SERVERS = 512;
const SLICE_LOG_LINES = 128;
const SLICE_MONITOR_STARTS = 64;
const SLICE_HELD_EVENTS = 64;
/** A policy pass with more routine lines than this logs a summary instead (see refresh). */
const LOG_EACH_POLICY_LINE_UP_TO = 100;
/** Distinct last-check reasons kept once (a failure's may name the server: some 10,000 at 10,000 servers). */
const CHECK_REASONS_KEPT = 20_000;

/** PyBal's textStatus: enabled|disabled / up|partially up|down / pooled|not pooled. */
export function textStatus(entry: {
  readonly enabled: boolean;
  readonly up: boolean;
  readonly pooled: boolean;
  readonly monitors: readonly { readonly up: boolean | undefined }[];
}): string {
  const partial = entry.monitors.length === 0 || entry.monitors.some((m) => m.up === true);
  const health = entry.up ? 'up' : partial ? 'partially up' : 'down';
  return `${entry.enabled ? 'enabled' : 'disabled'}/${health}/${entry.pooled ? 'pooled' : 'not pooled'}`;
}

export class Coordinator implements CoordinatorApi {
  service: ServiceConfig;
  private readonly deps: CoordinatorDeps;
  private readonly random: () => number;
  private readonly events: EventSink;
  /** In pool order. */
  private servers = new Map<string, ServerEntry>();
  private pool: Pool | undefined;
  private poolError: string | undefined;
  private couldNotDepoolTotal = 0;
  /** Servers still on their first resolution (a count: asked after every resolution). */
  private initializingCount = 0;
  /**
   * PyBal's upServerCount, kept as servers change, so that a monitor's
   * report costs the same in a pool of 10 or of 100,000: every change of a
   * server's up, enabled, address or presence goes through tally().
   */
  private upEligible = 0;
  /** The servers held in IPVS by the threshold although down. */
  private readonly pooledDown = new Set<ServerEntry>();
  private stopped = false;
  /** Monitor stops and resolutions still in flight, for stop(). */
  private readonly inFlight = new Set<Promise<unknown>>();

  /** Health by host that a replaced coordinator knew: a server known down starts held down. */
  private readonly knownHealth: ReadonlyMap<string, boolean>;

  /**
   * Large pools are applied in slices (runtime/sliced.ts), so that 100,000
   * servers never hold the event loop. While a pool application or a policy
   * pass is under way, the state is not consistent: the daemon is told the
   * service is not ready (it keeps what it published), healthy() answers as
   * before the job, and monitor reports and resolutions wait in `held`, to
   * run in order once it is done.
   */
  private busy = false;
  /** The job under way leaves the servers' state inconsistent until it ends. */
  private unsettled = false;
  /** The latest pool not applied yet (an older one still waiting is skipped). */
  private pendingPool: Pool | undefined;
  /** What the source said changed in pendingPool (used only if its base is the pool in force then). */
  private pendingDelta: PoolDelta | undefined;
  /** A policy pass asked for while busy. */
  private pendingRefresh: { reportShortfall: boolean } | undefined;
  /** Monitor restarts (a reload) waiting for the job under way. */
  private pendingRestart = false;
  private held: (() => void)[] = [];
  private heldNext = 0;
  private healthyBefore = false;
  /** canDepool as the job under way found it (snapshots during a job answer that, as healthy() does). */
  private canDepoolBefore = false;

  constructor(service: ServiceConfig, deps: CoordinatorDeps) {
    this.service = service;
    this.deps = deps;
    this.random = deps.random ?? Math.random;
    this.events = deps.events ?? NO_EVENTS;
    this.knownHealth = deps.knownHealth ?? new Map();
  }

  /**
   * A reload changed this service in place. Its servers stay, with their
   * pooled state; with `monitors`, every server's monitors restart and each
   * keeps its last known state until the new ones report (a known-down
   * server is not pooled again); with `policy`, the depool threshold is
   * applied again. Everything else (IPVS attributes, BGP) is read from the
   * new configuration by whoever publishes it.
   */
  reconfigure(service: ServiceConfig, changes: { readonly monitors: boolean; readonly policy: boolean }): void {
    if (this.stopped) return;
    this.service = service;
    if (changes.monitors) this.pendingRestart = true;
    if (changes.monitors || changes.policy) this.requestRefresh(!this.initializing());
    else this.pump();
    this.notify();
  }

  /** Each server's last known health (PyBal's `up`), by host. */
  health(): Map<string, boolean> {
    const known = new Map<string, boolean>();
    for (const s of this.servers.values()) if (s.ready) known.set(s.host, s.up);
    return known;
  }

  onPoolEvent(event: PoolEvent): void {
    if (this.stopped) return;
    if (event.type === 'error') {
      this.poolError = event.message;
    } else if (event.type === 'recovered') {
      this.poolError = undefined;
    } else {
      this.poolError = undefined;
      this.pendingPool = event.pool;
      this.pendingDelta = event.changedFrom;
      this.pump();
    }
    this.notify();
  }

  forEachPooled(visit: (host: string, address: string, weight: number) => void): void {
    for (const s of this.servers.values()) if (s.pooled && s.address !== undefined) visit(s.host, s.address, s.weight);
  }

  serverCount(): number {
    return this.servers.size;
  }

  forEachDataPathProbe(visit: (host: string, address: string, mark: number) => void): void {
    for (const s of this.servers.values()) if (s.dataPathMark !== undefined && s.address !== undefined) visit(s.host, s.address, s.dataPathMark);
  }

  pooledServers(options: { readonly keepDepooled?: boolean } = {}): readonly PooledServerValue[] {
    const pooled: PooledServerValue[] = [];
    for (const s of this.servers.values()) {
      if (s.address === undefined) continue;
      if (s.pooled) pooled.push({ host: s.host, address: s.address, weight: s.weight });
      else if (options.keepDepooled) pooled.push({ host: s.host, address: s.address, weight: 0 });
    }
    // One order on every director, whatever the order of health events: the
    // kernel adds destinations in this order, and mh's table depends on it.
    if (options.keepDepooled) pooled.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    return pooled;
  }

  healthy(): boolean {
    if (this.unsettled) return this.healthyBefore;
    for (const s of this.servers.values()) if (s.pooled && s.up) return true;
    return false;
  }

  /**
   * Its first pool is known, every server had its first resolution, and no
   * pool application or policy pass is half done: what it publishes is complete.
   */
  ready(): boolean {
    return this.pool !== undefined && !this.initializing() && !this.unsettled && this.pendingPool === undefined;
  }

  snapshot(options: SnapshotOptions = {}): ServiceSnapshot {
    return finish(this.snapshotSteps(options));
  }

  /**
   * The snapshot, a few servers per step. A server is taken whole, as it is
   * at its step; the service's own figures at the end. Servers that join or
   * leave meanwhile may or may not be in it (a later snapshot has them right).
   */
  *snapshotSteps(options: SnapshotOptions = {}): Generator<unknown, ServiceSnapshot, undefined> {
    const svc = this.service;
    const servers: ServerSnapshot[] = [];
    if (options.servers !== false) {
      const checks = options.checks !== false;
      let n = 0;
      for (const s of this.servers.values()) {
        servers.push(serverSnapshot(s, svc, checks));
        if (++n % SNAPSHOT_SERVERS_PER_STEP === 0) yield;
      }
    }
    return {
      name: svc.name,
      protocol: svc.protocol,
      ip: svc.ip,
      port: svc.port,
      fwmark: svc.fwmark,
      forwardMethod: svc.forwardMethod,
      scheduler: svc.scheduler,
      depoolThreshold: svc.depoolThreshold,
      servers,
      // The kept count answers at once; while a job leaves it half done, the answer from before the job.
      canDepool: this.unsettled ? this.canDepoolBefore : this.canDepoolNow(),
      couldNotDepoolTotal: this.couldNotDepoolTotal,
      poolError: this.poolError,
      awaitingPool: this.pool === undefined,
      initializing: this.initializing(),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.held = [];
    const entries = [...this.servers.values()];
    for (const entry of entries) this.detach(entry);
    // In slices: 10,000 servers' stops held the lab guest's event loop for a second when their
    // connections were closed on this thread. A server's stop is light now (its monitors'
    // stops go to the checks thread), so the clock is first looked at after as many as a
    // slice starts: a service of 10 stops without a look (1,000 of them made 3,000, each a
    // system call in the guest).
    await sliced(
      (function* (coordinator: Coordinator): Job {
        for (const entry of entries) {
          coordinator.free(entry);
          yield;
        }
      })(this),
      { firstLookSteps: SLICE_MONITOR_STARTS, ...this.deps.slicing },
    );
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  // --- pool changes ---

  /**
   * Applies a pool, in slices: what changed is worked out first (nothing is
   * touched meanwhile), then taken in one step (removed servers leave, new
   * ones join, weights and enabled flags change), then the removed servers'
   * monitors stop, the new ones resolve, and one policy pass runs.
   */
  /**
   * Applies a complete pool. With `delta` (the pool in force, with only its
   * hosts changed, same hosts in the same order), only those hosts are
   * looked at: a weight edited in a pool of 40,000 costs one server, not a
   * pass over all of them.
   */
  private *applyPool(next: Pool, delta?: PoolDelta): Job {
    const previous = this.servers;
    const first = this.pool === undefined;
    let ordered = new Map<string, ServerEntry>();
    const added: ServerEntry[] = [];
    const changed: (readonly [ServerEntry, PoolServer])[] = [];
    let n = 0;
    if (delta !== undefined) {
      // The same servers in the same order: the entries stay as they are.
      ordered = previous;
      for (const host of delta.hosts) {
        const entry = previous.get(host);
        const server = next.get(host);
        if (entry !== undefined && server !== undefined && (entry.weight !== server.weight || entry.enabled !== server.enabled)) changed.push([entry, server]);
      }
    } else {
      for (const server of next.values()) {
        let entry = previous.get(server.host);
        if (!entry) {
          entry = this.newEntry(server, first);
          added.push(entry);
        } else if (entry.weight !== server.weight || entry.enabled !== server.enabled) {
          changed.push([entry, server]);
        }
        ordered.set(server.host, entry);
        if (++n % SLICE_SERVERS === 0) yield;
      }
    }
    const removed: ServerEntry[] = [];
    if (ordered.size - added.length !== previous.size) {
      for (const entry of previous.values()) {
        if (!next.has(entry.host)) removed.push(entry);
        if (++n % SLICE_SERVERS === 0) yield;
      }
    }
    // Only weights changed: the policy has nothing to decide (it never looks at weights).
    const policyChanged = first || added.length > 0 || removed.length > 0 || changed.some(([entry, after]) => entry.enabled !== after.enabled);
    const diff: PoolDiff = {
      added: added.map((e) => next.get(e.host)!),
      changed: changed.map(([entry, after]) => [{ host: entry.host, weight: entry.weight, enabled: entry.enabled }, after] as const),
      removed: removed.map((e) => ({ host: e.host, weight: e.weight, enabled: e.enabled })),
    };
    yield;
    const log = this.deps.logger;
    const lines = describePoolDiff(diff, first ? next : undefined);
    for (const line of lines) {
      log.info(line);
      if (++n % SLICE_LOG_LINES === 0) yield;
    }
    if (first || lines.length > 0) this.events.emit(poolAppliedEvent(this.service.name, diff, lines, first));
    // The new pool, in one step.
    for (const entry of removed) this.detach(entry);
    for (const [entry, after] of changed) {
      this.tally(entry, () => {
        entry.weight = after.weight;
        entry.enabled = after.enabled;
      });
    }
    this.initializingCount += added.length;
    this.servers = ordered;
    this.pool = next;
    yield;
    for (const entry of removed) {
      this.free(entry);
      if (++n % SLICE_MONITOR_STARTS === 0) yield;
    }
    for (const entry of added) {
      this.resolve(entry);
      if (++n % SLICE_MONITOR_STARTS === 0) yield;
    }
    this.reportDataPathRate();
    if (!policyChanged) return;
    // This pass covers any asked for meanwhile.
    this.pendingRefresh = undefined;
    yield* this.refresh(!this.initializing());
  }

  private newEntry(server: PoolServer, fromFirstPool: boolean): ServerEntry {
    return new Server(server, fromFirstPool);
  }

  /** A server leaves the pool: it no longer counts, and whatever it still reports is ignored. */
  private detach(entry: ServerEntry): void {
    this.settleInitialization(entry);
    this.tally(entry, () => (entry.removed = true));
    this.pooledDown.delete(entry);
  }

  /** Stops what a detached server still runs: its monitors, resolution and timers. */
  private free(entry: ServerEntry): void {
    entry.resolveAbort?.abort(new Error('server released'));
    entry.resolveTimer?.cancel();
    entry.resolveTimer = undefined;
    this.stopMonitors(entry);
  }

  /** Restarts every resolved server's monitors (a reload changed them); each keeps its state. */
  private *restartMonitors(): Job {
    let n = 0;
    for (const entry of [...this.servers.values()]) {
      if (!entry.ready || entry.removed) continue;
      this.tally(entry, () => {
        this.stopMonitors(entry);
        this.startMonitors(entry, { keepState: true });
      });
      if (++n % SLICE_MONITOR_STARTS === 0) yield;
    }
  }

  // --- jobs ---

  /** Runs what waits, one job at a time: monitor restarts, the latest pool, a policy pass, then held events. */
  private pump(): void {
    while (!this.busy && !this.stopped) {
      let job: Job;
      let unsettling = true;
      if (this.pendingRestart) {
        this.pendingRestart = false;
        job = this.restartMonitors();
      } else if (this.pendingPool !== undefined) {
        const next = this.pendingPool;
        const delta = this.pendingDelta;
        this.pendingPool = this.pendingDelta = undefined;
        job = this.applyPool(next, delta?.base === this.pool ? delta : undefined);
      } else if (this.pendingRefresh !== undefined) {
        const { reportShortfall } = this.pendingRefresh;
        this.pendingRefresh = undefined;
        job = this.refresh(reportShortfall);
      } else if (this.heldNext < this.held.length) {
        // Held events keep the state consistent between them: the daemon may publish meanwhile.
        unsettling = false;
        job = this.replayHeld();
      } else {
        return;
      }
      if (unsettling) {
        this.healthyBefore = this.healthy();
        this.canDepoolBefore = this.canDepoolNow();
      }
      this.busy = true;
      this.unsettled = unsettling;
      let synchronous = true;
      let release: (() => void) | undefined;
      const finished = runSliced(
        job,
        (error) => {
          this.busy = false;
          this.unsettled = false;
          if (error !== undefined) this.deps.logger.error({ err: error }, 'Internal error while applying a pool or the depool policy');
          if (synchronous) return;
          // It ended in a later slice: what waits runs now, and the daemon hears of the result.
          release?.();
          this.notify();
          this.pump();
        },
        this.deps.slicing,
      );
      synchronous = false;
      if (finished) continue;
      this.track(new Promise<void>((resolve) => (release = resolve)));
      return;
    }
  }

  /**
   * Replays the events held when it starts, no more: those that arrive
   * meanwhile wait for the next replay, after any pool or policy pass that
   * came in between (20,000 monitors reporting as they start would otherwise
   * keep one replay going, and a pool edit waiting behind it, for as long as
   * they report).
   */
  private *replayHeld(): Job {
    const end = this.held.length;
    while (this.heldNext < end && !this.stopped) {
      const event = this.held[this.heldNext++]!;
      event();
      if (this.heldNext % SLICE_HELD_EVENTS === 0) yield;
    }
    this.held = this.held.slice(end);
    this.heldNext = 0;
  }

  /** Runs `event` now, or after the job under way (in order with others held). */
  private whenSettled(event: () => void): void {
    if (this.unsettled || this.heldNext < this.held.length) {
      this.held.push(event);
      if (!this.busy) this.pump();
      return;
    }
    event();
  }

  /** Asks for a policy pass over the whole pool: now when nothing else runs, else after. */
  private requestRefresh(reportShortfall: boolean): void {
    this.pendingRefresh = { reportShortfall: reportShortfall || (this.pendingRefresh?.reportShortfall ?? false) };
    this.pump();
  }

  private initializing(): boolean {
    return this.initializingCount > 0;
  }

  /** The server's first resolution is over (done, failed, or it was removed); true if it was pending. */
  private settleInitialization(entry: ServerEntry): boolean {
    if (!entry.initializing) return false;
    entry.initializing = false;
    this.initializingCount--;
    return true;
  }

  // --- resolution ---

  private resolve(entry: ServerEntry): void {
    entry.resolveTimer = undefined;
    if (entry.removed || this.stopped) return;
    // An IP address needs no lookup: it is taken at once, without a promise
    // per server (a pool of 100,000 addresses would queue 100,000 of them).
    const literal = literalAddresses(entry.host, this.service.family);
    if (literal instanceof Error) return this.resolveFailed(entry, literal);
    if (literal !== undefined) return this.resolved(entry, literal);
    const abort = new AbortController();
    entry.resolveAbort = abort;
    // A lookup that ended has nothing left to abort: its controller is let go (a pool of
    // 10,000 host names kept 10,000 of them, and each stop aborted every one, an Error
    // and an event apiece).
    const settled = (): boolean => {
      if (entry.resolveAbort === abort) entry.resolveAbort = undefined;
      return !abort.signal.aborted;
    };
    // A resolver that throws synchronously is a failed resolution like any other.
    const work = new Promise<readonly string[]>((resolve) => resolve(this.deps.resolve(entry.host, this.service.family, abort.signal)))
      .then(
        (addresses) => {
          if (settled()) this.whenSettled(() => this.resolved(entry, addresses));
        },
        (error: unknown) => {
          if (settled()) this.whenSettled(() => this.resolveFailed(entry, error));
        },
      )
      .catch((error: unknown) => this.deps.logger.error({ err: error }, `Internal error handling the resolution of ${entry.host}`));
    this.track(work);
  }

  private scheduleResolve(entry: ServerEntry, delayMs: number): void {
    entry.resolveTimer = this.deps.clock.setTimeout(() => this.resolve(entry), delayMs);
  }

  private resolved(entry: ServerEntry, addresses: readonly string[]): void {
    if (entry.removed || this.stopped) return;
    if (addresses.length === 0) {
      this.resolveFailed(entry, new Error(`no IPv${this.service.family} address for ${entry.host}`));
      return;
    }
    const hadError = entry.resolveError !== undefined;
    const wasInitializing = this.settleInitialization(entry);
    entry.resolveFailures = 0;
    entry.resolveError = undefined;
    let changed = wasInitializing || hadError;
    const first = addresses[0];
    if (first !== undefined && (entry.address === undefined || !addresses.includes(entry.address))) {
      if (entry.address !== undefined) {
        this.deps.logger.info(`Server ${entry.host} address changed from ${entry.address} to ${first}; restarting its monitors`);
      }
      this.tally(entry, () => {
        this.stopMonitors(entry);
        entry.address = first;
        this.startMonitors(entry);
      });
      changed = true;
    }
    if (!net.isIP(entry.host)) this.scheduleResolve(entry, RESOLVE_REFRESH_MS);
    if (changed) this.afterResolution(wasInitializing);
  }

  private resolveFailed(entry: ServerEntry, error: unknown): void {
    if (entry.removed || this.stopped) return;
    const wasInitializing = this.settleInitialization(entry);
    const message = errorMessage(error);
    const changed = wasInitializing || entry.resolveError !== message;
    entry.resolveError = message;
    if (entry.address === undefined) {
      // Not in service until it resolves: retry with backoff, saying so each time.
      const delayMs = resolveRetryDelayMs(entry.resolveFailures++, this.random);
      this.deps.logger.error(`Initialization failed for server ${entry.host}: ${message} (retrying in ${(delayMs / 1000).toFixed(1)} s)`);
      this.scheduleResolve(entry, delayMs);
    } else {
      // It keeps working on its known address: look again at the usual pace, log only a new error.
      if (changed) this.deps.logger.warn(`Could not resolve server ${entry.host} again: ${message}; keeping ${entry.address}`);
      this.scheduleResolve(entry, RESOLVE_REFRESH_MS);
    }
    if (changed) this.afterResolution(wasInitializing);
  }

  private afterResolution(wasInitializing: boolean): void {
    const stillInitializing = this.initializing();
    if (wasInitializing && !stillInitializing) this.deps.logger.info('Initialization complete');
    // While other first resolutions are pending, the policy waits for the
    // last one: one pass over the pool, not one per server (a pool of 10,000
    // would cost 10,000 passes over 10,000 servers). Nothing reaches IPVS
    // before then anyway (the daemon publishes a service once it is ready).
    if (!(wasInitializing && stillInitializing)) this.requestRefresh(!stillInitializing);
    this.notify();
  }

  // --- monitors ---

  /**
   * Starts a server's monitors. A first start is optimistic (PyBal: up until
   * a monitor says otherwise) unless a replaced coordinator knew the server
   * down; with `keepState` (a restart by reload) the server keeps its state,
   * and if down it is held down until every new monitor reports up.
   */
  private startMonitors(entry: ServerEntry, { keepState = false } = {}): void {
    const address = entry.address;
    if (address === undefined) return;
    const knownDown = keepState ? !entry.up : this.knownHealth.get(entry.host) === false;
    const plain = { host: entry.host, ip: address, port: this.service.realPort ?? this.service.port, family: this.service.family };
    const viaDataPath = this.dataPathTarget(entry, plain);
    entry.monitors = this.service.monitors.map((config) => {
      const target = viaDataPath !== undefined && this.service.dataPathMonitors.includes(config.kind) ? viaDataPath : plain;
      const monitor: MonitorEntry = {
        config,
        handle: NOT_MADE,
        up: undefined,
        reason: '',
        sinceWallMs: undefined,
        lastCheck: undefined,
      };
      try {
        const [onReport, onCheck] = this.callbacks(entry, monitor);
        monitor.handle = this.deps.createMonitor(config, target, onReport, onCheck);
      } catch (error) {
        this.monitorBroken(entry, monitor, error);
      }
      return monitor;
    });
    entry.holdDown = knownDown && entry.monitors.length > 0;
    // Optimistic, as PyBal: up until a monitor says otherwise (a held-down server: down until all say up).
    if (!keepState) entry.up = !entry.holdDown && monitorsUp(entry);
    // A server the kernel had pooled at start, on its first monitors: up until `fall` failures say otherwise.
    const assumeUp = !keepState && !knownDown && entry.fromFirstPool && (this.deps.pooledAtStart?.(address) ?? false);
    for (const monitor of entry.monitors) {
      const options: MonitorStartOptions = { delayMs: this.deps.startDelayMs?.(monitor.config) ?? 0, assumeUp };
      try {
        monitor.handle.start(options);
      } catch (error) {
        this.monitorBroken(entry, monitor, error);
        entry.up = false;
      }
    }
  }

  /**
   * A monitor's report and check callbacks. Made here, they keep one small
   * context (the coordinator, the server, the monitor) for as long as the
   * monitor runs, not startMonitors' (its targets and the rest), at 10,000
   * servers a few MB.
   */
  private callbacks(entry: ServerEntry, monitor: MonitorEntry): readonly [Parameters<CreateMonitorFn>[2], (result: CheckSummary) => void] {
    return [(report) => this.whenSettled(() => this.onReport(entry, monitor, report)), (result) => recordCheck(monitor, result)];
  }

  /**
   * The target of a server's data-path monitors, with a firewall mark taken
   * for it (given back by stopMonitors); undefined when the service has none,
   * or no mark is left (its monitors then check at its address, and say so).
   */
  private dataPathTarget<T extends { readonly host: string; readonly ip: string; readonly port: number; readonly family: 4 | 6 }>(entry: ServerEntry, plain: T): (T & { readonly dataPath: DataPathRoute }) | undefined {
    const dataPath = this.deps.dataPath;
    const service = this.service;
    if (dataPath === undefined || service.dataPathMonitors.length === 0 || service.forwardMethod === 'nat') return undefined;
    const mark = entry.dataPathMark ?? dataPath.acquire();
    if (mark === undefined) {
      this.deps.logger.error(`No firewall mark left for the data-path checks of ${entry.host} (datapath-fwmark-base): checking it at its own address`);
      return undefined;
    }
    entry.dataPathMark = mark;
    return {
      ...plain,
      // The VIP's port: a firewall-mark service keeps it, and so does the server behind direct routing or a tunnel.
      port: service.port,
      dataPath: { vip: service.ip, mark, method: service.forwardMethod, source: dataPath.source, ready: () => dataPath.programmed(mark) },
    };
  }

  /** New TCP connections a second that the data-path checks of this pool make to the VIP (IdleConnection holds one: not counted). */
  private reportDataPathRate(): void {
    const report = this.deps.dataPath?.connectionRate;
    if (report === undefined || this.service.dataPathMonitors.length === 0) return;
    let perServer = 0;
    for (const m of this.service.monitors) {
      // ProxyFetch with check_all fetches every URL each round, on a connection each.
      if ((m.kind !== 'ProxyFetch' && m.kind !== 'TCPConnect') || !this.service.dataPathMonitors.includes(m.kind)) continue;
      const connections = m.kind === 'ProxyFetch' && m.checkAll ? m.urls.length : 1;
      perServer += (connections * 1000) / Math.max(1, m.intervalMs);
    }
    report.call(this.deps.dataPath, perServer * this.servers.size);
  }

  /** A monitor that cannot be created or started is a failing check, not a crash. */
  private monitorBroken(entry: ServerEntry, monitor: MonitorEntry, error: unknown): void {
    const kind = monitor.config.kind;
    monitor.up = false;
    monitor.reason = `cannot start ${kind}: ${errorMessage(error)}`;
    monitor.sinceWallMs = this.deps.clock.wallNow();
    this.deps.logger.error(`Monitoring instance ${kind} for server ${entry.host} ${monitor.reason}`);
  }

  private stopMonitors(entry: ServerEntry): void {
    const monitors = entry.monitors;
    entry.monitors = [];
    if (entry.dataPathMark !== undefined) {
      this.deps.dataPath?.release(entry.dataPathMark);
      entry.dataPathMark = undefined;
    }
    for (const monitor of monitors) {
      const failed = (error: unknown): void => this.deps.logger.warn({ err: error }, `Stopping ${monitor.config.kind} of ${entry.host} failed`);
      try {
        this.track(monitor.handle.stop().catch(failed));
      } catch (error) {
        failed(error);
      }
    }
  }

  private onReport(entry: ServerEntry, monitor: MonitorEntry, report: { readonly up: boolean; readonly reason: string; readonly firstCheck: boolean }): void {
    if (this.stopped || entry.removed || !entry.monitors.includes(monitor)) return;
    const wasUp = monitor.up;
    monitor.up = report.up;
    // The same string as its check's, kept once (at 10,000 servers each kept two copies of their own).
    monitor.reason = checkReasons.intern(report.reason);
    monitor.sinceWallMs = this.deps.clock.wallNow();
    const kind = monitor.config.kind;
    // The status as PyBal prints it: this monitor's new state, the server's previous one.
    const status = textStatus(entry);
    const log = this.deps.logger;
    const nowUp = monitorsUp(entry);
    // PyBal master: the last monitor to finish its first check confirms an optimistic up.
    const firstChecksCompleted = report.firstCheck && entry.monitors.every((m) => m.up !== undefined);
    let changed = false;
    if (!report.up) {
      const message = `Monitoring instance ${kind} reports server ${entry.host} (${status}) down: ${report.reason}`;
      log.error(message);
      // A transition only: a monitor reports down on every failed check while down.
      if (wasUp !== false) this.events.emit({ kind: 'monitor-down', level: 'error', service: this.service.name, server: entry.host, up: false, message });
      if (entry.up) {
        this.tally(entry, () => (entry.up = false));
        this.serverDown(entry);
        changed = true;
      }
    } else {
      const message = `Monitoring instance ${kind} reports server ${entry.host} (${status}) up: ${report.reason}`;
      log.debug(message);
      // Back from down (a first result of up is no news: 10,000 of them at start).
      if (wasUp === false) this.events.emit({ kind: 'monitor-up', level: 'info', service: this.service.name, server: entry.host, up: nowUp, message });
      if (nowUp && (!entry.up || firstChecksCompleted)) {
        log.info(`Server ${entry.host} (${status}) is up`);
        changed = !entry.up || !entry.pooled || entry.pooledDown || this.pooledDown.size > 0;
        this.tally(entry, () => (entry.up = true));
        this.serverUp(entry);
      }
    }
    // Once every monitor has spoken, a held-down server follows the usual rule again.
    if (entry.holdDown && entry.monitors.every((m) => m.up !== undefined)) entry.holdDown = false;
    // A report that changed nothing the daemon publishes (a confirmation, a
    // second monitor agreeing) costs it nothing: the API reads snapshots itself.
    if (changed) this.notify();
  }

  // --- policy ---

  /** Counts the server in upEligible as `mutate` changes it. */
  private tally(entry: ServerEntry, mutate: () => void): void {
    const before = countsUp(entry);
    mutate();
    this.upEligible += Number(countsUp(entry)) - Number(before);
  }

  /** PyBal's canDepool() from the kept count: as many up as the threshold asks of every server. */
  private canDepoolNow(): boolean {
    return this.upEligible >= this.servers.size * this.service.depoolThreshold;
  }

  /** The server just went down: the 'down' rule, in constant time. */
  private serverDown(entry: ServerEntry): void {
    const out: PolicyOutput = { logs: [], couldNotDepool: 0 };
    applyDown(entry, this.canDepoolNow(), out);
    if (entry.pooledDown) this.pooledDown.add(entry);
    this.record(out);
  }

  /** The server just went up: the 'up' rule, costing only the pooled-down servers it drains. */
  private serverUp(entry: ServerEntry): void {
    const out: PolicyOutput = { logs: [], couldNotDepool: 0 };
    const drained = applyUp(entry, countsUp(entry), this.canDepoolNow(), this.pooledDown, out);
    if (!entry.pooledDown) this.pooledDown.delete(entry);
    for (const other of drained) this.pooledDown.delete(other as ServerEntry);
    this.record(out);
  }

  /** A pass over the whole pool (the pool, a resolution or the policy changed), in slices. */
  private *refresh(reportShortfall: boolean): Job {
    const servers = [...this.servers.values()];
    const logs: PolicyLog[] = [];
    yield* refreshSteps(servers, this.service.depoolThreshold, reportShortfall, logs);
    let upEligible = 0;
    this.pooledDown.clear();
    let n = 0;
    for (const entry of servers) {
      if (entry.pooledDown) this.pooledDown.add(entry);
      if (countsUp(entry)) upEligible++;
      if (++n % SLICE_SERVERS === 0) yield;
    }
    this.upEligible = upEligible;
    // A pass that moves thousands of servers (a first pool of 10,000) says so
    // in a few lines; each server's line goes to debug. Errors and warnings
    // (a server forced in, a shortfall) are always said one by one.
    const routine = logs.filter((l) => l.level === 'info');
    const summarise = routine.length > LOG_EACH_POLICY_LINE_UP_TO;
    for (const line of logs) {
      if (summarise && line.level === 'info') {
        this.deps.logger.debug(line.message);
        this.recordPolicy(line);
      } else {
        this.logPolicy(line);
      }
      if (++n % SLICE_LOG_LINES === 0) yield;
    }
    if (summarise) {
      const byAction = new Map<string, number>();
      for (const { message } of routine) {
        const action = message.replace(/ \S+$/, '');
        byAction.set(action, (byAction.get(action) ?? 0) + 1);
      }
      for (const [action, count] of byAction) this.deps.logger.info(`${action}: ${count} servers (each at debug level)`);
    }
  }

  private record(out: PolicyOutput): void {
    this.couldNotDepoolTotal += out.couldNotDepool;
    for (const line of out.logs) this.logPolicy(line);
  }

  private logPolicy(line: PolicyLog): void {
    this.recordPolicy(line);
    const log = this.deps.logger;
    if (line.level === 'critical') log.fatal(line.message);
    else log[line.level](line.message);
  }

  /** A policy line that changed a server, as an event (also when the line itself is summarised in the log). */
  private recordPolicy({ level, message, host, change }: PolicyLog): void {
    if (change === undefined) return;
    const kind = change === 'held' ? 'depool-held' : change;
    const state = change === 'held' ? { up: false, pooled: true } : { pooled: change === 'pooled' };
    this.events.emit({ kind, level: level === 'info' ? 'info' : level === 'warn' ? 'warn' : 'error', service: this.service.name, server: host, ...state, message });
  }

  /** Tells the daemon; its failure must not break a monitor's or the source's callback. */
  private notify(): void {
    try {
      this.deps.onChange();
    } catch (error) {
      this.deps.logger.error({ err: error }, 'onChange listener failed');
    }
  }

  private track(work: Promise<unknown>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }
}

/** The event of a pool applied: its counts, and the log's first line (the summary of a first pool, else the first change). */
function poolAppliedEvent(service: string, diff: PoolDiff, lines: readonly string[], first: boolean): EventInput {
  const counts = `${diff.added.length} added, ${diff.removed.length} removed, ${diff.changed.length} changed`;
  const more = lines.length > 1 ? ` (and ${lines.length - 1} more)` : '';
  const message = first ? `First pool applied: ${lines[0] ?? 'no server'}` : `Pool applied: ${counts}: ${lines[0] ?? ''}${more}`;
  return { kind: 'pool-applied', level: 'info', service, message };
}

/** A monitor's handle until it is made (or when making it threw). */
const NOT_MADE: MonitorEntry['handle'] = { start: () => undefined, stop: () => Promise.resolve() };

/**
 * The last checks' reasons, one copy of each: 10,000 servers share a few
 * (one URL's successes differ only in their duration, to the millisecond).
 * Every coordinator's, so that the bound holds for the daemon.
 */
const checkReasons = new Interner(CHECK_REASONS_KEPT);

/** Keeps a monitor's latest check: 1,000 checks a second allocate nothing here, and keep no string of their own. */
/** Servers a snapshot takes between two chances to end a slice. */
const SNAPSHOT_SERVERS_PER_STEP = 64;

/**
 * A server as a snapshot takes it; with each monitor's latest check (a copy:
 * the monitor's own is overwritten by the next check) only when asked, as a
 * scrape of 10,000 servers does not (some 0.5 MB less that lives as long as
 * the scrape).
 */
function serverSnapshot(s: ServerEntry, svc: ServiceConfig, checks: boolean): ServerSnapshot {
  return {
    host: s.host,
    address: s.address,
    weight: s.weight,
    enabled: s.enabled,
    up: s.up,
    pooled: s.pooled,
    pooledDown: s.pooledDown,
    monitors: s.monitors.map((m) => {
      const monitor: MonitorSnapshot =
        m.lastCheck === undefined || !checks
          ? { kind: m.config.kind, up: m.up, reason: m.reason, sinceWallMs: m.sinceWallMs }
          : { kind: m.config.kind, up: m.up, reason: m.reason, sinceWallMs: m.sinceWallMs, lastCheck: { ...m.lastCheck } };
      return s.dataPathMark !== undefined && svc.dataPathMonitors.includes(m.config.kind) ? { ...monitor, dataPath: true } : monitor;
    }),
    resolveError: s.resolveError,
  };
}

function recordCheck(monitor: MonitorEntry, result: CheckSummary): void {
  const reason = checkReasons.intern(result.reason);
  const last = monitor.lastCheck;
  if (last === undefined) {
    monitor.lastCheck = { ok: result.ok, reason, durationMs: result.durationMs };
    return;
  }
  last.ok = result.ok;
  last.reason = reason;
  last.durationMs = result.durationMs;
}
