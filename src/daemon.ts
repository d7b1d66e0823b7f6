/**
 * The daemon's moving parts, wired by value: one coordinator per service fed
 * by its pool source, the IPVS manager given the pooled servers of every
 * ready service, and the BGP speaker given the routes the services' health
 * allows. main.ts creates the I/O pieces and hands them in; this class only
 * decides who is told what, and when.
 */
import type { Route } from './bgp/speaker.js';
import { planRoutes, routesFromPlan, type DrainState, type PlannedRoute } from './bgp/announcements.js';
import type { Config, GlobalConfig, ServiceConfig } from './config/types.js';
import type { SnapshotScope } from './api/types.js';
import type { CoordinatorApi, ServiceSnapshot } from './coordinator/types.js';
import { NO_EVENTS, type EventSink } from './events/history.js';
import { diffOfferedRoutes } from './events/route-changes.js';
import type { DesiredService } from './ipvs/diff.js';
import { DesiredServiceBuilder, probeServiceFor, takePooled, type PooledServer, type PooledServers } from './ipvs/desired.js';
import type { Pool, PoolSource } from './pool/types.js';
import { describePlan, type ReloadPlan } from './reload-plan.js';
import { readMonotonic } from './runtime/clock.js';
import type { Logger } from './runtime/logger.js';
import { finish, runSliced, SLICE_BUDGET_MS, sliced, turn, type Job, type SliceOptions } from './runtime/sliced.js';

/** What the daemon needs of the IPVS manager. */
export interface IpvsTarget {
  /**
   * Every service to manage. `changed`, when given: the set is the last one
   * with only these added or replaced (see IpvsManager.setDesired).
   */
  setDesired(services: readonly DesiredService[], changed?: readonly DesiredService[]): void;
  /** The kernel has this desired service (adopted or written); see IpvsManager.isProgrammed. */
  isProgrammed(key: DesiredService['key']): boolean;
}

/** What the daemon needs of the BGP speaker. */
export interface RouteTarget {
  setAnnouncements(routes: readonly Route[]): void;
}

export interface DaemonDeps {
  readonly logger: Logger;
  /** `lastGoodPool`: what the source it replaces delivered (see ReporterSeed). */
  readonly createPoolSource: (service: ServiceConfig, lastGoodPool?: Pool) => PoolSource;
  /**
   * `onChange` must be called whenever the coordinator's published values may
   * have changed. `knownHealth` seeds a coordinator that replaces another.
   */
  readonly createCoordinator: (service: ServiceConfig, onChange: () => void, knownHealth?: ReadonlyMap<string, boolean>) => CoordinatorApi;
  readonly ipvs: IpvsTarget;
  /** Schedules `fn` soon, once, after the current burst of changes (coalescing). */
  readonly defer: (fn: () => void) => void;
  /** Wall-clock milliseconds, for the time the director was drained. */
  readonly wallNow: () => number;
  /** How a deferred publish's builds are sliced (runtime/sliced.ts); the defaults by default. */
  readonly slicing?: SliceOptions;
  /** Where reloads, drains and route changes are recorded; none: not recorded. */
  readonly events?: EventSink;
}

/** What setDrained did: the state now, and whether it changed. */
export interface DrainChange {
  readonly changed: boolean;
  readonly state: DrainState;
}

/**
 * One service while it runs. The object lives as long as the service: a
 * reload that changes the service updates it in place, so that the
 * coordinator's change callback (which marks this object dirty) keeps
 * reaching what is published.
 */
interface ServiceRuntime {
  config: ServiceConfig;
  readonly coordinator: CoordinatorApi;
  source: PoolSource;
  /** The desired IPVS state last built, reused while nothing changed (the manager skips it cheaply). */
  desired: DesiredService | undefined;
  /** The configuration `desired` was built from: a route waits until it matches the current one. */
  desiredFor: ServiceConfig | undefined;
  dirty: boolean;
  /** Builds `desired`, saying what changed since the last one (see DesiredServiceBuilder). */
  readonly builder: DesiredServiceBuilder;
  /** A build a deferred publish made in slices, for the configuration it was made for: the next publish takes it. */
  prebuilt: { readonly config: ServiceConfig; readonly desired: DesiredService } | undefined;
  /** The probe services of its data-path checks, by firewall mark (ipvs/desired.ts, probeServiceFor), built from `desiredFor`. */
  probes: Map<number, DesiredService>;
}

/** Who drained or undrained the director when pybal.conf did (at start, or by a reload). */
const DRAINED_BY_CONFIG = 'bgp-drain in pybal.conf';

export class Daemon {
  private global: GlobalConfig;
  private services = new Map<string, ServiceRuntime>();
  private routeTarget: RouteTarget | undefined;
  private publishQueued = false;
  /** A deferred publish is building in slices (see publishSoon). */
  private building = false;
  /** Counts reloads: the services (which there are, their configurations) change only with one. */
  private servicesVersion = 0;
  /**
   * The servicesVersion of the last publish. A publish after a reload (or the
   * first) names the whole set anew: services may have been added, removed or
   * re-keyed. Otherwise a publish can only add services or replace their
   * desired state, and it tells the manager which.
   */
  private publishedVersion: number | undefined;
  private plannedRoutes: { global: GlobalConfig; drained: boolean; services: number; plan: readonly PlannedRoute[] } | undefined;
  private stopped = false;
  /**
   * Drained for maintenance (bgp-drain, `pybal drain`): the routes carry
   * GRACEFUL_SHUTDOWN and bgp-drain-med. Since when, while drained.
   */
  private drain: { drained: boolean; sinceWallMs: number | undefined };
  private readonly bgpLog: Logger;
  private readonly events: EventSink;
  /** The prefixes last offered to the route target (for announce and withdraw events). */
  private offered: ReadonlySet<string> = new Set();

  /**
   * A daemon with a runtime (its coordinator and pool source, not started)
   * for each configured service, made in slices: the 1,000 of a large site
   * made in one go held the event loop about 0.4 s in the lab guest.
   */
  static async create(config: Config, deps: DaemonDeps): Promise<Daemon> {
    const daemon = new Daemon(config.global, deps);
    await sliced(daemon.makeRuntimesSteps(config.services, daemon.services), deps.slicing);
    return daemon;
  }

  private constructor(
    global: GlobalConfig,
    private readonly deps: DaemonDeps,
  ) {
    this.global = global;
    this.bgpLog = deps.logger.child({ component: 'bgp' });
    this.events = deps.events ?? NO_EVENTS;
    this.drain = { drained: global.bgpDrain, sinceWallMs: global.bgpDrain ? deps.wallNow() : undefined };
  }

  /** Makes a runtime for each service into `into`, a step each. */
  private *makeRuntimesSteps(services: readonly ServiceConfig[], into: Map<string, ServiceRuntime>): Job {
    for (const service of services) {
      into.set(service.name, this.createRuntime(service));
      yield;
    }
  }

  /** Starts every pool source (and so every coordinator). */
  start(): void {
    if (this.drain.drained) this.logDrain(true, DRAINED_BY_CONFIG);
    for (const runtime of this.services.values()) this.startSource(runtime);
    this.schedulePublish();
  }

  drainState(): DrainState {
    return { drained: this.drain.drained, drainedSinceWallMs: this.drain.sinceWallMs, drainMed: this.global.bgpDrainMed };
  }

  /**
   * Drains the director (every VIP stays announced, less preferred) or
   * undrains it; `by` says who asked, for the log. The routers hear of it at
   * the next publish, as UPDATEs on the sessions that are up.
   */
  setDrained(drained: boolean, by: string): DrainChange {
    if (this.drain.drained === drained) {
      const since = this.drain.sinceWallMs === undefined ? '' : ` since ${new Date(this.drain.sinceWallMs).toISOString()}`;
      this.bgpLog.info({ by }, drained ? `Already drained${since}: nothing to do` : 'Not drained: nothing to do');
      return { changed: false, state: this.drainState() };
    }
    this.drain = { drained, sinceWallMs: drained ? this.deps.wallNow() : undefined };
    this.logDrain(drained, by);
    this.schedulePublish();
    return { changed: true, state: this.drainState() };
  }

  /** Where routes go; undefined while BGP is off. Announcements follow at the next publish. */
  setRouteTarget(target: RouteTarget | undefined): void {
    this.routeTarget = target;
    this.schedulePublish();
  }

  /** Publishes soon: something the routes depend on changed (the IPVS manager programmed a service). */
  refresh(): void {
    this.schedulePublish();
  }

  get globalConfig(): GlobalConfig {
    return this.global;
  }

  serviceConfigs(): ServiceConfig[] {
    return [...this.services.values()].map((r) => r.config);
  }

  /** The services' names, in the order of their snapshots (the configuration's). */
  serviceNames(): string[] {
    return [...this.services.keys()];
  }

  /** Every service's snapshot; or one service's (`service`); or without servers (`servers: false`). */
  snapshots(scope: SnapshotScope = {}): ServiceSnapshot[] {
    return finish(this.snapshotsSteps(scope));
  }

  /**
   * snapshots() as a job, a few servers per step (see CoordinatorApi.snapshotSteps)
   * and a step at most per service: a service yields every 64 of its own servers,
   * so 1,000 services of 10 were one step: a scrape held the lab guest's event
   * loop 0.8 s.
   */
  *snapshotsSteps(scope: SnapshotScope = {}): Generator<unknown, ServiceSnapshot[], undefined> {
    const runtimes = scope.service === undefined ? [...this.services.values()] : [this.services.get(scope.service)].filter((r) => r !== undefined);
    const snapshots: ServiceSnapshot[] = [];
    for (const r of runtimes) {
      snapshots.push(yield* r.coordinator.snapshotSteps({ servers: scope.servers ?? true, checks: scope.checks ?? true }));
      yield;
    }
    return snapshots;
  }

  /**
   * The routes the services' health allows now, for the services the kernel
   * has as configured (a VIP is announced once it is programmed).
   */
  routes(): Route[] {
    return routesFromPlan(
      this.routePlan(),
      (s) => this.services.get(s.name)?.coordinator.healthy() ?? false,
      (s) => this.programmed(s),
    );
  }

  /** The routes as the configuration and the drain make them (planRoutes), kept until either changes. */
  private routePlan(): readonly PlannedRoute[] {
    const drained = this.drain.drained;
    const kept = this.plannedRoutes;
    if (kept !== undefined && kept.global === this.global && kept.drained === drained && kept.services === this.servicesVersion) return kept.plan;
    const plan = planRoutes(this.global, this.serviceConfigs(), { drained });
    this.plannedRoutes = { global: this.global, drained, services: this.servicesVersion, plan };
    return plan;
  }

  /** Every configured service is in the kernel as configured (graceful restart: the table is ready). */
  allProgrammed(): boolean {
    return this.serviceConfigs().every((s) => this.programmed(s));
  }

  /**
   * allProgrammed, for a caller that asks after every reconcile until it is
   * true (the start-up, the BGP side's graceful restart): the services before
   * the first one `scan` last found not programmed are not looked at again
   * until every later one is, and then every service is, once. At 1,000
   * services, looking at all of them each time took 0.5 s of a cold start.
   */
  allProgrammedScan(scan: { from: number }): boolean {
    let i = 0;
    for (const runtime of this.services.values()) {
      if (i++ < scan.from) continue;
      if (!this.programmed(runtime.config)) {
        scan.from = i - 1;
        return false;
      }
    }
    // Every later one is; one before may have changed since (a pool edit, a reload): all once.
    scan.from = 0;
    return this.allProgrammed();
  }

  /** How many configured services are in the kernel as configured. */
  programmedCount(): number {
    return this.serviceConfigs().filter((s) => this.programmed(s)).length;
  }

  /** The kernel has the service as its current configuration wants it. */
  private programmed(s: ServiceConfig): boolean {
    const runtime = this.services.get(s.name);
    return runtime?.desired !== undefined && runtime.desiredFor === runtime.config && this.deps.ipvs.isProgrammed(runtime.desired.key);
  }

  /**
   * Executes a reload plan (see reload-plan.ts) against `config`: services
   * are added, removed, changed in place or replaced as it says; unchanged
   * services are not touched at all. Resolves once what was stopped has stopped.
   */
  async reload(config: Config, plan: ReloadPlan): Promise<void> {
    // The services it adds are made first, in slices, before anything changes
    // (1,000 made in one go held the event loop about 0.4 s in the lab guest).
    const added = new Set(plan.services.filter((step) => step.action === 'add').map((step) => step.name));
    const made = new Map<string, ServiceRuntime>();
    await sliced(this.makeRuntimesSteps(config.services.filter((s) => added.has(s.name)), made), this.deps.slicing);
    if (this.stopped) return;
    this.global = config.global;
    this.events.emit({ kind: 'reload', level: 'info', message: describePlan(plan).join('; ') });
    // bgp-drain applies when the file changes it; a drain asked at run time otherwise stays.
    if (plan.drain !== undefined) this.setDrained(plan.drain, DRAINED_BY_CONFIG);
    const next = new Map(config.services.map((s) => [s.name, s]));
    const stopping: Promise<void>[] = [];
    for (const step of plan.services) {
      const runtime = this.services.get(step.name);
      const service = next.get(step.name);
      if (step.action === 'remove') {
        if (!runtime) continue;
        this.services.delete(step.name);
        stopping.push(this.stopRuntime(runtime));
      } else if (!service) {
        continue;
      } else if (step.action === 'add' || !runtime) {
        const fresh = made.get(service.name) ?? this.createRuntime(service);
        this.services.set(service.name, fresh);
        this.startSource(fresh);
      } else if (step.action === 'update') {
        runtime.config = service;
        runtime.dirty = true;
        runtime.coordinator.reconfigure(service, step);
        if (step.pool) {
          // The new source judges its reads against the pool the coordinator has.
          const lastGood = runtime.source.status().pool;
          stopping.push(runtime.source.stop());
          runtime.source = this.deps.createPoolSource(service, lastGood);
          this.startSource(runtime);
        }
      } else if (step.action === 'replace') {
        // Its address family changed: a new coordinator, told which servers
        // were known down. The old kernel service stays desired until the new
        // one is ready, so that nothing is removed before its successor is there.
        const fresh = this.createRuntime(service, runtime.coordinator.health());
        fresh.desired = runtime.desired;
        fresh.desiredFor = runtime.desiredFor;
        this.services.set(service.name, fresh);
        stopping.push(this.stopRuntime(runtime));
        this.startSource(fresh);
      }
    }
    // Snapshots and routes follow the file's order.
    const ordered = new Map<string, ServiceRuntime>();
    for (const service of config.services) {
      const runtime = this.services.get(service.name);
      if (runtime) ordered.set(service.name, runtime);
    }
    this.services = ordered;
    this.servicesVersion++;
    this.schedulePublish();
    await Promise.all(stopping);
  }

  /** Stops every coordinator and pool source; the IPVS table is left as it is. */
  async stop(): Promise<void> {
    this.stopped = true;
    // All at once, but started a slice's worth per turn: each stop closes its
    // servers' connections as soon as it starts, and 1,000 services of 10
    // started together held the event loop for 2 s in the lab guest.
    const stopping: Promise<void>[] = [];
    let sliceStart = readMonotonic();
    for (const runtime of [...this.services.values()].reverse()) {
      stopping.push(this.stopRuntime(runtime));
      if (readMonotonic() - sliceStart < SLICE_BUDGET_MS) continue;
      await turn();
      sliceStart = readMonotonic();
    }
    await Promise.all(stopping);
  }

  /** Publishes now (for tests and shutdown paths); normally publishing is deferred. */
  publishNow(): void {
    this.publish(true);
  }

  /**
   * Tells the IPVS manager and the BGP speaker what every service wants. A
   * service that changed is built now with `buildNow`; otherwise only if a
   * deferred publish built it already (prebuilt), and the rest wait for the
   * next deferred publish.
   */
  private publish(buildNow: boolean): void {
    this.publishQueued = false;
    if (this.stopped) return;
    const desired: DesiredService[] = [];
    const changed: DesiredService[] = [];
    let probeRemoved = false;
    let changedSince = false;
    for (const runtime of this.services.values()) {
      const prebuilt = runtime.prebuilt;
      runtime.prebuilt = undefined;
      const fresh = prebuilt !== undefined && prebuilt.config === runtime.config;
      if (fresh || runtime.dirty || runtime.desired === undefined) {
        const before = runtime.desired;
        let built = true;
        if (fresh) {
          // Built from the servers of a moment ago; what changed since (dirty again) is the next publish's.
          runtime.desired = prebuilt.desired;
          changedSince ||= runtime.dirty;
        } else if (runtime.coordinator.ready()) {
          // Ready: its first pool is read and every server had its first
          // resolution attempt. Before that, publishing would remove servers
          // the kernel already has (a restart must not flap anything).
          if (buildNow) {
            runtime.dirty = false;
            const { pooled, ordered, expected } = pooledOf(runtime);
            runtime.desired = runtime.builder.build(runtime.config, pooled, ordered, expected);
          } else {
            // Changed after the deferred publish's builds went past it: it keeps what it has until the next.
            changedSince = true;
            built = false;
          }
        } else {
          built = false;
        }
        if (built) {
          probeRemoved = this.updateProbes(runtime, changed) || probeRemoved;
          runtime.desiredFor = runtime.config;
        }
        if (runtime.desired !== before && runtime.desired !== undefined) changed.push(runtime.desired);
      }
      // A service whose first pool is not known yet is not named to the
      // manager, so whatever the kernel has for it stays as it is.
      if (runtime.desired) desired.push(runtime.desired);
      for (const probe of runtime.probes.values()) desired.push(probe);
    }
    // A probe service gone (a server left, or its checks restarted) is a removal: only the whole set says it.
    this.deps.ipvs.setDesired(desired, this.publishedVersion === this.servicesVersion && !probeRemoved ? changed : undefined);
    this.publishedVersion = this.servicesVersion;
    if (changedSince) this.schedulePublish();
    if (this.routeTarget === undefined) {
      this.offered = new Set();
      return;
    }
    const routes = this.routes();
    this.routeTarget.setAnnouncements(routes);
    this.recordRouteChanges(routes);
  }

  /**
   * A deferred publish: the services that changed are built first, in
   * slices (a first pool of 10,000 servers took 0.45 s of the event loop in
   * the lab guest to build at once), each from its servers taken at one
   * moment; then they are published with the rest. A service that changes
   * meanwhile is published as it was built, or as it was, and again in the
   * next deferred publish, right after.
   */
  private publishSoon(): void {
    if (this.building) return; // it publishes when it is done
    this.building = true;
    runSliced(
      this.prebuildSteps(),
      (error) => {
        this.building = false;
        if (error !== undefined) this.deps.logger.error({ err: error }, 'Internal error while building the desired IPVS state');
        // Also after a publishNow meanwhile: that one did not have these builds.
        this.publish(false);
      },
      this.deps.slicing,
    );
  }

  private *prebuildSteps(): Generator<void, void, undefined> {
    for (const runtime of [...this.services.values()]) {
      if (this.stopped) return;
      // Replaced by a reload meanwhile, not ready, or nothing to build.
      if (this.services.get(runtime.config.name) !== runtime || !(runtime.dirty || runtime.desired === undefined) || !runtime.coordinator.ready()) continue;
      const config = runtime.config;
      const { pooled, ordered, expected } = pooledOf(runtime);
      const taken = takePooled(pooled, ordered, expected);
      runtime.dirty = false;
      const desired = yield* runtime.builder.buildSteps(config, taken, ordered !== undefined);
      // Another build of it came first (a publishNow meanwhile), or a reload changed it: the next publish builds it again.
      if (desired === undefined || runtime.config !== config) runtime.dirty = true;
      else runtime.prebuilt = { config, desired };
      yield;
    }
  }

  /**
   * The probe services of a service's data-path checks, one per server that
   * holds a firewall mark, kept by mark; the new or changed ones join
   * `changed`. Returns whether one went away.
   */
  private updateProbes(runtime: ServiceRuntime, changed: DesiredService[]): boolean {
    const before = runtime.probes;
    if (before.size === 0 && runtime.config.dataPathMonitors.length === 0) return false;
    const config = runtime.config;
    const probes = new Map<number, DesiredService>();
    runtime.coordinator.forEachDataPathProbe((_host, address, mark) => {
      const was = before.get(mark);
      // The same object while nothing changed: the manager skips it at once.
      // desiredFor: the configuration the probes were last built from (a reload may change how they forward).
      if (was !== undefined && was.destinations[0]?.address === address && runtime.desiredFor === config) {
        probes.set(mark, was);
        return;
      }
      const probe = probeServiceFor(config, address, mark);
      probes.set(mark, probe);
      changed.push(probe);
    });
    runtime.probes = probes;
    for (const mark of before.keys()) if (!probes.has(mark)) return true;
    return false;
  }

  /**
   * Takes every data-path probe service out of the kernel (at shutdown): they
   * only serve pybal's own checks. The services themselves stay as PyBal
   * leaves them.
   */
  withdrawProbes(): void {
    let any = false;
    const desired: DesiredService[] = [];
    for (const runtime of this.services.values()) {
      any ||= runtime.probes.size > 0;
      runtime.probes = new Map();
      if (runtime.desired) desired.push(runtime.desired);
    }
    if (any) this.deps.ipvs.setDesired(desired);
  }

  /** What started or stopped being offered to the routers since the last publish, as events. */
  private recordRouteChanges(routes: readonly Route[]): void {
    const changes = diffOfferedRoutes(this.offered, routes);
    this.offered = changes.offered;
    for (const prefix of changes.announced) this.events.emit({ kind: 'bgp-announce', level: 'info', message: `Announcing ${prefix}` });
    for (const prefix of changes.withdrawn) this.events.emit({ kind: 'bgp-withdraw', level: 'warn', message: `Withdrawing ${prefix}` });
  }

  private logDrain(drained: boolean, by: string): void {
    let message: string;
    if (!this.global.bgp) {
      const what = drained ? 'Drained' : 'Undrained';
      message = `${what}, but BGP is off (bgp = no): no VIP is announced, so no router is told`;
      this.bgpLog.warn({ by }, message);
    } else if (drained) {
      message = `Drained: every VIP now announced with GRACEFUL_SHUTDOWN (65535:0) and MED ${this.global.bgpDrainMed}; the routers will move traffic to the other directors`;
      this.bgpLog.info({ by }, message);
    } else {
      message = 'Undrained: every VIP now announced with its configured MED and communities; the routers may move traffic back to this director';
      this.bgpLog.info({ by }, message);
    }
    this.events.emit({ kind: 'drain', level: drained ? 'warn' : 'info', message: `${message} (by ${by})` });
  }

  private createRuntime(service: ServiceConfig, knownHealth?: ReadonlyMap<string, boolean>): ServiceRuntime {
    const runtime: ServiceRuntime = {
      config: service,
      coordinator: this.deps.createCoordinator(
        service,
        () => {
          runtime.dirty = true;
          this.schedulePublish();
        },
        knownHealth,
      ),
      source: this.deps.createPoolSource(service),
      desired: undefined,
      desiredFor: undefined,
      dirty: true,
      builder: new DesiredServiceBuilder(),
      prebuilt: undefined,
      probes: new Map(),
    };
    return runtime;
  }

  private startSource(runtime: ServiceRuntime): void {
    const source = runtime.source;
    source.start((event) => {
      // Events of a source that a reload replaced are not this service's any more.
      if (runtime.source === source) runtime.coordinator.onPoolEvent(event);
    });
  }

  /** Stops the source and the coordinator, both from this call on (a stopped coordinator ignores what the source still sends). */
  private async stopRuntime(runtime: ServiceRuntime): Promise<void> {
    await Promise.all([runtime.source.stop(), runtime.coordinator.stop()]);
  }

  private schedulePublish(): void {
    if (this.publishQueued || this.stopped) return;
    this.publishQueued = true;
    this.deps.defer(() => this.publishSoon());
  }
}

/**
 * What a service publishes: its pooled servers, how many there may be, and
 * (mh with fallback) the whole list in the kernel's order.
 */
function pooledOf(runtime: ServiceRuntime): { pooled: PooledServers; ordered: readonly PooledServer[] | undefined; expected: number } {
  const coordinator = runtime.coordinator;
  const keepDepooled = keepsDepooledServers(runtime.config);
  return {
    pooled: (visit) => coordinator.forEachPooled(visit),
    ordered: keepDepooled ? coordinator.pooledServers({ keepDepooled }) : undefined,
    expected: coordinator.serverCount(),
  };
}

/**
 * mh (Maglev) with its fallback flag: depooled and disabled servers stay in
 * IPVS at weight 0, every server added in address order. The kernel's mh
 * table depends on the order of the destination list and on each
 * destination's last weight above 0, not on its weight now; so two directors
 * with the same pool build the same table whatever each saw fail and when,
 * and a flow that moves between them behind ECMP keeps its real server. The
 * fallback sends the flows of a weight-0 server to the next in the table, the
 * same on both; without it they would be refused, so plain mh keeps PyBal's
 * way (a depooled server leaves IPVS).
 */
export function keepsDepooledServers(service: ServiceConfig): boolean {
  return service.scheduler === 'mh' && service.schedulerFlags.includes('fallback');
}
