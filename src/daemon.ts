/**
 * The daemon's moving parts, wired by value: one coordinator per service fed
 * by its pool source, the IPVS manager given the pooled servers of every
 * ready service, and the BGP speaker given the routes the services' health
 * allows. main.ts creates the I/O pieces and hands them in; this class only
 * decides who is told what, and when.
 */
import type { Route } from './bgp/speaker.js';
import { decideRoutes } from './bgp/announcements.js';
import type { Config, GlobalConfig, ServiceConfig } from './config/types.js';
import type { CoordinatorApi, ServiceSnapshot } from './coordinator/types.js';
import type { DesiredService } from './ipvs/diff.js';
import { desiredServiceFromConfig } from './ipvs/desired.js';
import type { PoolSource } from './pool/types.js';
import type { Logger } from './runtime/logger.js';

/** What the daemon needs of the IPVS manager. */
export interface IpvsTarget {
  setDesired(services: readonly DesiredService[]): void;
}

/** What the daemon needs of the BGP speaker. */
export interface RouteTarget {
  setAnnouncements(routes: readonly Route[]): void;
}

export interface DaemonDeps {
  readonly logger: Logger;
  readonly createPoolSource: (service: ServiceConfig) => PoolSource;
  /** `onChange` must be called whenever the coordinator's published values may have changed. */
  readonly createCoordinator: (service: ServiceConfig, onChange: () => void) => CoordinatorApi;
  readonly ipvs: IpvsTarget;
  /** Schedules `fn` soon, once, after the current burst of changes (coalescing). */
  readonly defer: (fn: () => void) => void;
}

interface ServiceRuntime {
  readonly config: ServiceConfig;
  readonly coordinator: CoordinatorApi;
  readonly source: PoolSource;
  /** The desired IPVS state last built, reused while nothing changed (the manager skips it cheaply). */
  desired: DesiredService | undefined;
  dirty: boolean;
}

/** Services compare equal when everything but where they sit in the file is equal. */
export function sameService(a: ServiceConfig, b: ServiceConfig): boolean {
  const { source: _a, ...restA } = a;
  const { source: _b, ...restB } = b;
  return JSON.stringify(restA) === JSON.stringify(restB);
}

export interface ReloadSummary {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly string[];
  readonly unchanged: readonly string[];
}

/** One log line for a reload, naming what was added, removed and changed. */
export function describeReload(summary: ReloadSummary): string {
  const kinds = ['added', 'removed', 'changed'] as const;
  const names = kinds
    .filter((kind) => summary[kind].length > 0)
    .map((kind) => `; ${kind}: ${summary[kind].join(', ')}`)
    .join('');
  return (
    `Configuration reloaded: ${summary.added.length} added, ${summary.removed.length} removed, ` +
    `${summary.changed.length} changed, ${summary.unchanged.length} unchanged${names}`
  );
}

export class Daemon {
  private global: GlobalConfig;
  private readonly services = new Map<string, ServiceRuntime>();
  private routeTarget: RouteTarget | undefined;
  private publishQueued = false;
  private stopped = false;

  constructor(
    config: Config,
    private readonly deps: DaemonDeps,
  ) {
    this.global = config.global;
    for (const service of config.services) this.addService(service);
  }

  /** Starts every pool source (and so every coordinator). */
  start(): void {
    for (const runtime of this.services.values()) this.startService(runtime);
    this.schedulePublish();
  }

  /** Where routes go; undefined while BGP is off. Announcements follow at the next publish. */
  setRouteTarget(target: RouteTarget | undefined): void {
    this.routeTarget = target;
    this.schedulePublish();
  }

  get globalConfig(): GlobalConfig {
    return this.global;
  }

  serviceConfigs(): ServiceConfig[] {
    return [...this.services.values()].map((r) => r.config);
  }

  snapshots(): ServiceSnapshot[] {
    return [...this.services.values()].map((r) => r.coordinator.snapshot());
  }

  /** The routes the services' health allows now. */
  routes(): Route[] {
    return decideRoutes(this.global, this.serviceConfigs(), (s) => this.services.get(s.name)?.coordinator.healthy() ?? false);
  }

  /**
   * Applies a new configuration: services added, removed or changed are
   * applied; unchanged services keep their coordinator, monitors and IPVS
   * state untouched.
   */
  async reload(config: Config): Promise<ReloadSummary> {
    this.global = config.global;
    const next = new Map(config.services.map((s) => [s.name, s]));
    const added: string[] = [];
    const removed: string[] = [];
    const changed: string[] = [];
    const unchanged: string[] = [];
    const stopping: Promise<void>[] = [];
    // A changed service keeps its last IPVS state until its new coordinator
    // is ready, so that a change of, say, a monitor option removes nothing.
    const carried = new Map<string, DesiredService | undefined>();
    for (const [name, runtime] of this.services) {
      const wanted = next.get(name);
      if (!wanted) {
        removed.push(name);
        this.services.delete(name);
        stopping.push(this.stopService(runtime));
      } else if (!sameService(runtime.config, wanted)) {
        changed.push(name);
        carried.set(name, runtime.desired);
        this.services.delete(name);
        stopping.push(this.stopService(runtime));
      } else {
        unchanged.push(name);
      }
    }
    await Promise.all(stopping);
    // Rebuild the map in file order so that snapshots and routes follow the file.
    const kept = new Map(this.services);
    this.services.clear();
    for (const service of config.services) {
      const existing = kept.get(service.name);
      if (existing) {
        this.services.set(service.name, { ...existing, config: service });
      } else {
        if (!changed.includes(service.name)) added.push(service.name);
        const runtime = this.addService(service);
        runtime.desired = carried.get(service.name);
        this.startService(runtime);
      }
    }
    this.schedulePublish();
    return { added, removed, changed, unchanged };
  }

  /** Stops every coordinator and pool source; the IPVS table is left as it is. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.services.values()].reverse().map((r) => this.stopService(r)));
  }

  /** Publishes now (for tests and shutdown paths); normally publishing is deferred. */
  publishNow(): void {
    this.publishQueued = false;
    if (this.stopped) return;
    const desired: DesiredService[] = [];
    for (const runtime of this.services.values()) {
      if (runtime.dirty || runtime.desired === undefined) {
        runtime.dirty = false;
        if (isReady(runtime.coordinator.snapshot())) {
          runtime.desired = desiredServiceFromConfig(
            runtime.config,
            runtime.coordinator.pooledServers().map((s) => ({ address: s.address, weight: s.weight })),
          );
        }
      }
      // A service whose first pool is not known yet is not named to the
      // manager, so whatever the kernel has for it stays as it is.
      if (runtime.desired) desired.push(runtime.desired);
    }
    this.deps.ipvs.setDesired(desired);
    this.routeTarget?.setAnnouncements(this.routes());
  }

  private addService(service: ServiceConfig): ServiceRuntime {
    const runtime: ServiceRuntime = {
      config: service,
      coordinator: this.deps.createCoordinator(service, () => {
        runtime.dirty = true;
        this.schedulePublish();
      }),
      source: this.deps.createPoolSource(service),
      desired: undefined,
      dirty: true,
    };
    this.services.set(service.name, runtime);
    return runtime;
  }

  private startService(runtime: ServiceRuntime): void {
    runtime.source.start((event) => runtime.coordinator.onPoolEvent(event));
  }

  private async stopService(runtime: ServiceRuntime): Promise<void> {
    await runtime.source.stop();
    await runtime.coordinator.stop();
  }

  private schedulePublish(): void {
    if (this.publishQueued || this.stopped) return;
    this.publishQueued = true;
    this.deps.defer(() => this.publishNow());
  }
}

/**
 * A service is ready for IPVS once its first pool is read and every server
 * in it has had its first resolution attempt: before that, publishing would
 * remove servers the kernel already has (a restart must not flap anything).
 */
export function isReady(snapshot: ServiceSnapshot): boolean {
  return !snapshot.awaitingPool && !snapshot.initializing;
}
