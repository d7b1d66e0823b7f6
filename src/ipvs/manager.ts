/**
 * Makes the kernel's IPVS table match what the coordinators want.
 *
 * - Desired state in, the difference out: a change costs as many requests as
 *   it changes objects, checked against a model of the kernel (the last dump
 *   plus every request that succeeded since), so one server changing in a
 *   table of 10,000 costs one request and no dump.
 * - A full resync (at start, periodically, and after any failure) dumps the
 *   services it manages, logs every difference from the model as drift
 *   (someone ran ipvsadm by hand), and repairs it.
 * - At start it adopts what the kernel has: a service that already matches
 *   costs nothing, one that differs is edited in place, never deleted and
 *   re-created (PyBal does -D/-A at start and breaks every connection).
 * - Scope: only services named by setDesired. A service that was desired and
 *   no longer is gets deleted; services never named are never touched, and the
 *   table is never flushed.
 * - One reconcile (the writes) at a time; triggers during one coalesce into
 *   one more run; a failed reconcile is retried with exponential backoff;
 *   errors are logged and counted, never thrown out of the manager.
 * - Dry run: reads the kernel, logs what it would do, writes nothing.
 *
 * The periodic resync dumps beside the writes. Dumping 40,000 servers takes
 * seconds in a slow guest, and a weight edit that waited behind it took that
 * long to reach the kernel. So while the model is good (every resync but the
 * one at start and the one after a failure), the dump runs on a netlink
 * socket of its own (`reader`) and the write loop goes on applying patches on
 * the main one; when the dump is in, the write loop merges it and repairs
 * from it as one reconcile. Why the merged model is the kernel's:
 *
 * 1. Journal. From the moment the dump starts until the merge, every write
 *    that succeeds is noted (when its answer arrives: a write in flight as the
 *    dump starts is noted too). A write noted may or may not show in the dump,
 *    as the kernel reached that object before or after it. Every write is
 *    absolute for its object (set this weight, add this server, delete that
 *    one; a service's settings never touch its servers), so laying the journal
 *    over the dump in order gives each object the value of its last write,
 *    whichever way the dump saw it. Objects no write touched have the value
 *    the dump read. That is the model afterwards: `known` = dump + journal.
 * 2. Drift. The model at the merge is the last model plus the same journal,
 *    so an object pybal wrote has the same value on both sides and is never
 *    reported; an object it did not write differs only if someone else
 *    changed it, which is reported and repaired as before. (A hand edit of an
 *    object pybal also wrote during the dump, made after pybal's write, is
 *    taken for pybal's and found at the next resync.)
 * 3. The kernel's dump is not a snapshot: it walks a list by index, a chunk
 *    per answer, so a server deleted from the part already walked shifts the
 *    rest back and the next chunk skips one (an addition goes to the head:
 *    one is read twice, which a map absorbs). A shift hides entries; it
 *    never invents one or alters a value.
 *    So for a service pybal deleted servers of during the dump (and for the
 *    listing, if it deleted a service), what the model has and the dump lacks
 *    is kept from the model rather than reported missing and added again
 *    (EEXIST); only a real deletion by hand in that service waits for the
 *    next resync.
 * 4. Scope. The dump speaks for the services managed when it started (and
 *    pybal's leftovers it listed). A service named during the dump (a
 *    reload) was adopted by the write loop from the last listing
 *    (dumpUnmodelled), as between resyncs; the model keeps what it has for
 *    it. The merge's listing becomes the last listing.
 * 5. Repair. The merge reconcile diffs the desired state of that moment (not
 *    of the dump's start) against the merged model, like any full reconcile:
 *    a patch applied during the dump is in both and costs nothing; one that
 *    came after the last reconcile is applied now; nothing stale is re-applied.
 * 6. Failures. A write that fails during the dump (its outcome may be
 *    unknown: a timeout) drops the model, as any failure does, and the
 *    resync with it: its dump is thrown away, and the retry is a full
 *    reconcile that dumps before it writes, after the dump under way has
 *    ended (two dumps of the table never overlap). The model is only ever
 *    rebuilt by such a dump, which drops any resync first, so a merge never
 *    lands on a model other than the one its journal follows. A dump that
 *    fails leaves the model alone (the writes keep it true): the failure is
 *    logged and counted and the resync retried after the backoff, while
 *    writes go on. stop() waits for the dump and merges nothing. In dry run
 *    nothing is written, so the journal is empty and the model after a
 *    resync is the kernel's, as before. A resync asked for while one runs
 *    (or waits for its merge) runs once after it; a periodic one that comes
 *    due then does not run: each full dump arms the next (resyncDumped).
 * 7. The first resync at start (adoption) and the one after a failure dump
 *    first and write after, on the main socket, as before: there is no model
 *    to write against yet. takeOwnedLeftovers of a resync beside the writes
 *    joins the removals only at the merge (the write loop would otherwise
 *    drop a removal its model does not have yet).
 */
import type { Clock, Timer } from '../runtime/clock.js';
import { errorMessage } from '../runtime/errors.js';
import type { Logger } from '../runtime/logger.js';
import { sliced, type SliceOptions } from '../runtime/sliced.js';
import { TimeShare } from '../runtime/time-share.js';
import type { IpvsKernel } from './client.js';
import { IpvsError } from './errors.js';
import { destKeyId, formatDestKeyId, formatServiceKey, serviceKeyId } from './codec.js';
import { normalizeDesiredService, normalizeDest, normalizeServiceSpec, sameDestSpec } from './desired.js';
import {
  applyDestOpsInPlace,
  applyOpsSteps,
  describeOp,
  destSpecOf,
  diffDestinations,
  diffSteps,
  formatDestSettings,
  formatServiceSettings,
  opObject,
  serviceSpecOf,
  tableFromDesired,
  type DesiredService,
  type IpvsOp,
  type Table,
  type TableEntry,
} from './diff.js';
import type { DestSpec, KernelService, ServiceKey } from './types.js';

/** What a resync's dump reads the kernel with. */
export type IpvsReader = Pick<IpvsKernel, 'listServices' | 'mapDests'>;

export interface IpvsManagerOptions {
  readonly kernel: IpvsKernel;
  /**
   * What the periodic resync dumps with, beside the writes going on on
   * `kernel`: a netlink socket of its own, so that a patch does not wait
   * behind a dump of 40,000 servers. Default `kernel` (still correct; the
   * writes then wait on its socket).
   */
  readonly reader?: IpvsReader;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly dryRun?: boolean;
  /** Full resync period. Default 60 s. */
  readonly resyncIntervalMs?: number;
  /** First retry delay after a failure; doubles up to retryMaxMs. Default 1 s. */
  readonly retryInitialMs?: number;
  /** Default 60 s. */
  readonly retryMaxMs?: number;
  /**
   * Called (synchronously, at the end of a reconcile) when services became
   * programmed: the kernel now has them as desired, adopted or written. What
   * waits on the kernel (BGP announcing a VIP) listens here.
   */
  readonly onProgrammed?: () => void;
  /** Called as each periodic resync starts: what else pybal keeps in the kernel checks it too (the sync daemons). */
  readonly onResync?: () => void;
  /** How a large reconcile is sliced (src/runtime/sliced.ts); the defaults, unless a test says otherwise. */
  readonly slicing?: SliceOptions;
  /**
   * Services that are pybal's own whoever made them (the data-path probe
   * services, by their firewall marks): one the kernel has and no one
   * desires (left by an earlier run that did not stop cleanly) is deleted at
   * the next full resync.
   */
  readonly owns?: (key: ServiceKey) => boolean;
}

/** Counters for metrics and the status page. */
export interface IpvsManagerStats {
  readonly reconciles: number;
  readonly failedReconciles: number;
  /** Write requests sent (or, in dry run, that would have been). */
  readonly requests: number;
  readonly failedRequests: number;
  /** Full dumps of the managed services. */
  readonly resyncs: number;
  /** Differences found between the kernel and our model. */
  readonly drift: number;
  /** Duration of the last reconcile, in ms of the injected clock. */
  readonly lastReconcileMs: number | undefined;
  readonly totalReconcileMs: number;
  readonly lastError: string | undefined;
}

interface CachedDesired {
  readonly source: DesiredService;
  /** serviceKeyId of the normalized key. */
  readonly id: string;
  readonly entry: TableEntry;
}

/** Thrown inside a reconcile when some requests failed, so that it is retried. */
class PartialFailure extends Error {}

/** A periodic resync dumping beside the writes (see the top of this file). */
interface Resync {
  /** Every write that succeeded since it started, in order. */
  readonly journal: IpvsOp[];
  /** Set when the dump is in, for the write loop to merge. */
  dumped?: ResyncDump;
}

interface ResyncDump {
  /** The services it speaks for: those managed when it started, and pybal's leftovers. */
  readonly scope: ReadonlySet<string>;
  /** What it read of them (a service absent here was absent, as far as the dump saw). */
  readonly table: Map<string, TableEntry>;
  /** Every service the kernel listed. */
  readonly listing: Map<string, KernelService>;
  /** Services pybal owns that no one desired when it started (see takeOwnedLeftovers). */
  readonly leftovers: readonly KernelService[];
  /** When it started (the clock's ms), and how long it took. */
  readonly startedAt: number;
  readonly ms: number;
}

export class IpvsManager {
  private readonly kernel: IpvsKernel;
  private readonly reader: IpvsReader;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly dryRun: boolean;
  private resyncIntervalMs: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private readonly onResync: (() => void) | undefined;
  private readonly owns: ((key: ServiceKey) => boolean) | undefined;

  private desired = new Map<string, TableEntry>();
  /** The desired map a full reconcile is working through (updateDesired copies it rather than change it then). */
  private desiredInUse: Table | undefined;
  /** Each desired entry with the value it was built from, to skip unchanged services cheaply. */
  private desiredCache = new Map<string, CachedDesired>();
  /** Services whose desired state changed since the last reconcile (all of them matter on a full one). */
  private readonly dirty = new Set<string>();
  /**
   * Destinations (destKeyIds) that a patch changed, by service, for services
   * not in `dirty`: the next reconcile diffs only these against the model.
   */
  private readonly dirtyDests = new Map<string, Set<string>>();
  /** Services we were told to manage and then to drop: deleted when present. */
  private readonly removals = new Map<string, ServiceKey>();
  /** Our model of the managed part of the kernel table; undefined = unknown, dump first. */
  private known: Table | undefined;
  /**
   * The services `known` speaks for: those managed at its last dump, plus
   * those adopted since. A service named for the first time after that dump
   * (at start, setDesired comes after the first resync; or added by a reload)
   * is dumped before it is diffed, so that what the kernel already has is
   * adopted rather than added again (EEXIST).
   */
  private modelled = new Set<string>();
  /** Every service the kernel had at the last full resync (see dumpUnmodelled). */
  private listedAtResync: Map<string, KernelService> | undefined;
  /**
   * Desired services (ids) that a reconcile has seen in the kernel as
   * desired: adopted, or written. A service stays programmed while it is
   * desired (a failed reconcile later does not remove it from the kernel);
   * it leaves the set when it is no longer desired.
   */
  private readonly programmed = new Set<string>();
  private readonly onProgrammed: (() => void) | undefined;
  private readonly slicing: SliceOptions | undefined;

  private started = false;
  private stopped = false;
  private running: Promise<void> | undefined;
  /** Settles when the first reconcile after start() has run, whatever its outcome. */
  private firstReconcile: { promise: Promise<void>; resolve: () => void } | undefined;
  private pending = false;
  private pendingFull = false;
  private retryDelayMs = 0;
  private retryTimer: Timer | undefined;
  private lastFailureAt = Number.NEGATIVE_INFINITY;
  private resyncTimer: Timer | undefined;
  /** The resync dumping beside the writes (or dumped, waiting for its merge), if any. */
  private resyncing: Resync | undefined;
  /** That resync's dump, until it settles (two dumps never overlap). */
  private resyncDump: Promise<void> | undefined;
  /** A resync was asked for while one was under way: one more after it. */
  private resyncAgain = false;
  /** The write loop is merging a resync's dump (it is no longer `resyncing`, and not yet done). */
  private merging = false;
  /** A periodic resync takes at most 1/RESYNC_TIME_SHARE of the time: the interval stretches beyond that. */
  private readonly resyncShare = new TimeShare(RESYNC_TIME_SHARE, ({ stretched, costMs, delayMs }) => {
    if (stretched) {
      this.log.warn(
        `IPVS: a full resync took ${Math.round(costMs)} ms: resyncing every ${(delayMs / 1000).toFixed(1)} s instead of every ${this.resyncIntervalMs / 1000} s (ipvs-resync-interval), so that it takes at most 1/${RESYNC_TIME_SHARE} of the time`,
      );
    } else {
      this.log.info(`IPVS: resyncing every ${this.resyncIntervalMs / 1000} s again (ipvs-resync-interval)`);
    }
  });
  private readonly idleWaiters: (() => void)[] = [];

  private counters = {
    reconciles: 0,
    failedReconciles: 0,
    requests: 0,
    failedRequests: 0,
    resyncs: 0,
    drift: 0,
    lastReconcileMs: undefined as number | undefined,
    totalReconcileMs: 0,
    lastError: undefined as string | undefined,
  };

  constructor(options: IpvsManagerOptions) {
    this.kernel = options.kernel;
    this.reader = options.reader ?? options.kernel;
    this.clock = options.clock;
    this.log = options.logger;
    this.dryRun = options.dryRun ?? false;
    this.resyncIntervalMs = options.resyncIntervalMs ?? 60_000;
    this.retryInitialMs = options.retryInitialMs ?? 1000;
    this.retryMaxMs = options.retryMaxMs ?? 60_000;
    this.onProgrammed = options.onProgrammed;
    this.onResync = options.onResync;
    this.owns = options.owns;
    this.slicing = options.slicing;
  }

  /** Starts reconciling: a full resync now (adoption), then periodically. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.firstReconciled();
    this.armResync();
    this.trigger(true);
  }

  /**
   * Resolves once the first reconcile has run (the kernel's table adopted, or
   * the attempt failed and is being retried): what systemd's readiness waits for.
   */
  firstReconciled(): Promise<void> {
    if (this.firstReconcile === undefined) {
      let resolve = (): void => undefined;
      const promise = new Promise<void>((r) => (resolve = r));
      this.firstReconcile = { promise, resolve };
    }
    return this.firstReconcile.promise;
  }

  /**
   * Changes the resync period (a SIGHUP with a new ipvs-resync-interval): the
   * next resync comes one new period from now.
   */
  setResyncInterval(ms: number): void {
    if (ms === this.resyncIntervalMs) return;
    this.resyncIntervalMs = ms;
    if (!this.started || this.stopped) return;
    this.resyncTimer?.cancel();
    this.armResync();
  }

  /** Stops timers and waits for a reconcile (or a resync's dump) in progress. The kernel table is left as it is. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.retryTimer?.cancel();
    this.resyncTimer?.cancel();
    await this.running;
    await this.resyncDump;
    this.resyncing = undefined;
    this.wakeIdle();
  }

  /**
   * The complete set of services to manage, with their destinations. Services
   * of the previous set that are missing here will be deleted from the kernel.
   *
   * `changed`, when given, vouches that `services` is the last set with only
   * these services added or replaced (none removed, no other changed): only
   * they are looked at, so that 1,000 services becoming ready one burst after
   * another at a cold start cost each publish what it adds, not the whole set.
   */
  setDesired(services: readonly DesiredService[], changed?: readonly DesiredService[]): void {
    if (changed !== undefined) {
      this.updateDesired(changed);
      return;
    }
    const next = new Map<string, TableEntry>();
    const cache = new Map<string, CachedDesired>();
    for (const s of services) this.takeDesired(s, next, cache);
    for (const [id, entry] of this.desired) {
      if (next.has(id)) continue;
      this.removals.set(id, entry.service.key);
      this.programmed.delete(id);
      this.dirtyDests.delete(id);
    }
    for (const id of next.keys()) this.removals.delete(id);
    this.desired = next;
    this.desiredCache = cache;
    this.trigger(false);
  }

  /** setDesired with `changed`: the services it names join or replace theirs; the others stay as they are. */
  private updateDesired(changed: readonly DesiredService[]): void {
    if (changed.length === 0) return;
    // In place, unless a full reconcile under way works through the map: it
    // keeps the one it started with, and this a copy (made natively). Copied
    // each time, 1,000 services programmed one publish after another at a cold
    // start copied a million entries.
    const next = this.desiredInUse === this.desired ? new Map(this.desired) : this.desired;
    for (const s of changed) {
      const id = this.takeDesired(s, next, this.desiredCache);
      if (id !== undefined) this.removals.delete(id);
    }
    this.desired = next;
    this.trigger(false);
  }

  /**
   * One desired service into `next` and `cache` (keyed as setDesired keeps
   * them): reused when it is the object of last time, patched when it says
   * what changed, rebuilt otherwise; a bad one keeps its last good state.
   * Returns its id in `next`, if it has one there.
   */
  private takeDesired(s: DesiredService, next: Map<string, TableEntry>, cache: Map<string, CachedDesired>): string | undefined {
    const rawId = serviceKeyId(s.key);
    const cached = this.desiredCache.get(rawId);
    // A service passed as the same object as last time has not changed: no rebuild, no diff.
    if (cached && cached.source === s) {
      next.set(cached.id, cached.entry);
      cache.set(rawId, cached);
      return cached.id;
    }
    // A patch on the service it has: only the destinations that changed.
    const patched = cached && s.patch?.base === cached.source ? this.applyPatch(cached, s) : undefined;
    if (patched) {
      next.set(patched.id, patched.entry);
      cache.set(rawId, patched);
      return patched.id;
    }
    let fresh: CachedDesired;
    try {
      let entry: TableEntry | undefined;
      if (s.byId !== undefined) {
        // Made for this by the builder, its destinations checked: kept as it is (see DesiredService.byId).
        entry = { service: normalizeServiceSpec(s), dests: s.byId };
      } else {
        const normalized = normalizeDesiredService(s);
        entry = tableFromDesired([normalized]).get(serviceKeyId(normalized.key));
      }
      if (!entry) return undefined;
      fresh = { source: s, id: serviceKeyId(entry.service.key), entry };
    } catch (error) {
      // A bad value never reaches the kernel; the last good state of that service stays.
      this.log.error(`IPVS: ignoring the new state of ${formatServiceKey(s.key)}: ${errorMessage(error)}`);
      if (!cached) return undefined;
      next.set(cached.id, cached.entry);
      cache.set(rawId, cached);
      return cached.id;
    }
    next.set(fresh.id, fresh.entry);
    cache.set(rawId, fresh);
    this.dirty.add(fresh.id);
    return fresh.id;
  }

  /**
   * Whether the kernel has this desired service as it was last desired (or
   * had, at its last reconcile): adopted or programmed by us. False for a
   * service not desired, or not reconciled yet.
   */
  isProgrammed(key: ServiceKey): boolean {
    const cached = this.desiredCache.get(serviceKeyId(key));
    return cached !== undefined && this.programmed.has(cached.id);
  }

  /**
   * Applies a patch to the desired entry in place (its destination map is the
   * manager's own) and notes which destinations to diff. Undefined, and
   * nothing changed, when a destination is not valid: the whole service then
   * goes the usual way, which reports it and keeps the last good state.
   */
  private applyPatch(cached: CachedDesired, s: DesiredService): CachedDesired | undefined {
    const patch = s.patch!;
    let set: DestSpec[];
    let removed: DestSpec[];
    try {
      const where = `service ${formatServiceKey(cached.entry.service.key)}`;
      set = patch.set.map((d) => normalizeDest(d, where));
      removed = patch.removed.map((d) => normalizeDest(d, where));
    } catch {
      return undefined;
    }
    const dests = cached.entry.dests as Map<string, DestSpec>;
    // A service dirty as a whole is diffed whole: its destinations need no note.
    let ids: Set<string> | undefined;
    if (!this.dirty.has(cached.id)) {
      ids = this.dirtyDests.get(cached.id) ?? new Set();
      this.dirtyDests.set(cached.id, ids);
    }
    for (const d of removed) {
      const id = destKeyId(d);
      dests.delete(id);
      ids?.add(id);
    }
    for (const d of set) {
      const id = destKeyId(d);
      dests.set(id, d);
      ids?.add(id);
    }
    return { source: s, id: cached.id, entry: cached.entry };
  }

  /** Asks for a full resync (dump, drift report, repair). */
  resync(): void {
    this.trigger(true);
  }

  /** Resolves when no reconcile is running or queued (a scheduled retry does not count). */
  idle(): Promise<void> {
    if (!this.busy()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stats(): IpvsManagerStats {
    return { ...this.counters };
  }

  // ---- the loop ----

  private trigger(full: boolean): void {
    if (this.stopped || !this.started) return;
    // With a model to write against, a full resync dumps beside the writes.
    if (full && this.known !== undefined && !this.pendingFull) {
      this.startResync();
      return;
    }
    this.pending = true;
    this.pendingFull ||= full;
    // Soon after a failure, changes wait for the scheduled retry: a burst of
    // them (every pool and health change at start-up) would otherwise fail
    // one after another, each doubling the backoff and repeating the error.
    const cooling = this.retryTimer !== undefined && this.clock.now() - this.lastFailureAt < this.retryInitialMs;
    if (!this.running && !cooling) this.running = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.pending && !this.stopped) {
      const full = this.pendingFull || this.known === undefined;
      this.pending = false;
      this.pendingFull = false;
      let merge: Resync | undefined;
      if (full) {
        // A dump of the write loop's own: a resync's dump under way ends
        // first (two never overlap), and is thrown away.
        this.dropResync();
        await this.resyncDump;
        if (this.stopped) break;
      } else if (this.resyncing?.dumped !== undefined) {
        merge = this.resyncing;
        // Stops the journal: what is written from here on is in the merged model.
        this.resyncing = undefined;
        this.merging = true;
      }
      const t0 = this.clock.now();
      try {
        await this.reconcile(full, merge);
        if (full || merge) {
          // A success that started from a dump: a pending retry has nothing left to do.
          this.retryTimer?.cancel();
          this.retryTimer = undefined;
          this.retryDelayMs = 0;
          this.counters.lastError = undefined;
        }
      } catch (error) {
        this.lastFailureAt = this.clock.now();
        this.counters.failedReconciles++;
        this.counters.lastError = errorMessage(error);
        // The model may be wrong now (an EEXIST says so): the retry starts from a dump.
        this.dropModel();
        this.scheduleRetry(error);
        // Changes queued meanwhile stay pending for that retry, like those arriving after.
        break;
      } finally {
        this.desiredInUse = undefined;
        const ms = this.clock.now() - t0;
        this.firstReconcile?.resolve();
        this.counters.reconciles++;
        this.counters.lastReconcileMs = ms;
        this.counters.totalReconcileMs += ms;
        if (merge) {
          this.merging = false;
          this.resyncEnded();
        }
      }
    }
    this.running = undefined;
    this.wakeIdle();
  }

  /** The model is unknown from here on: a resync dumping beside the writes is worth nothing now. */
  private dropModel(): void {
    this.known = undefined;
    this.dropResync();
  }

  /** Forgets the resync dumping beside the writes (its dump, if under way, ends unmerged). */
  private dropResync(): void {
    this.resyncing = undefined;
  }

  /** A resync ended (merged, dropped, failed) and its dump settled: the one asked for meanwhile starts. */
  private resyncEnded(): void {
    if (!this.resyncAgain || this.stopped || this.resyncing !== undefined || this.resyncDump !== undefined) return;
    this.resyncAgain = false;
    this.trigger(true);
  }

  /**
   * A full resync beside the writes: the dump runs on the reader while the
   * write loop goes on, noting each write that succeeds; the write loop
   * merges it when it is in (see the top of this file).
   */
  private startResync(): void {
    if (this.resyncing !== undefined || this.resyncDump !== undefined) {
      this.resyncAgain = true;
      return;
    }
    const resync: Resync = { journal: [] };
    this.resyncing = resync;
    this.log.debug('IPVS: resync: dumping the managed services beside the writes');
    const dump = this.dumpBeside(resync);
    this.resyncDump = dump;
    void dump.finally(() => {
      if (this.resyncDump === dump) this.resyncDump = undefined;
      this.resyncEnded();
      this.wakeIdle();
    });
  }

  private async dumpBeside(resync: Resync): Promise<void> {
    const t0 = this.clock.now();
    const scope = new Set([...this.desired.keys(), ...this.removals.keys()]);
    let dumped: ResyncDump;
    try {
      const services = await this.reader.listServices();
      const listing = new Map(services.map((svc) => [serviceKeyId(svc.key), svc]));
      const table = new Map<string, TableEntry>();
      for (const [id, svc] of listing) {
        if (this.resyncing !== resync) break;
        if (!scope.has(id)) continue;
        const entry = await this.entryOf(svc, this.reader);
        if (entry) table.set(id, entry);
      }
      const leftovers = this.ownedLeftovers(scope, listing);
      for (const svc of leftovers) {
        const id = serviceKeyId(svc.key);
        scope.add(id);
        const entry = await this.entryOf(svc, this.reader);
        if (entry) table.set(id, entry);
      }
      dumped = { scope, table, listing, leftovers, startedAt: t0, ms: this.clock.now() - t0 };
    } catch (error) {
      if (this.stopped || this.resyncing !== resync) return;
      // The model stays: the writes keep it true. The resync is tried again after the backoff.
      this.resyncing = undefined;
      this.counters.failedReconciles++;
      this.counters.lastError = errorMessage(error);
      this.scheduleRetry(error, 'resync');
      return;
    }
    // Dropped meanwhile (a write failed: the model is unknown), or stopped: nothing to merge.
    if (this.stopped || this.resyncing !== resync) return;
    resync.dumped = dumped;
    this.trigger(false);
  }

  private scheduleRetry(error: unknown, what = 'reconcile'): void {
    this.retryDelayMs = this.retryDelayMs === 0 ? this.retryInitialMs : Math.min(this.retryDelayMs * 2, this.retryMaxMs);
    const retry = `retrying in ${this.retryDelayMs} ms`;
    if (error instanceof PartialFailure) this.log.warn(`IPVS reconcile will be retried in ${this.retryDelayMs} ms`);
    // A kernel or socket error is said in one line; anything else is a bug and keeps its stack.
    else if (error instanceof IpvsError) this.log.error(`IPVS ${what} failed: ${error.message}; ${retry}`);
    else this.log.error({ err: error }, `IPVS ${what} failed; ${retry}`);
    this.retryTimer?.cancel();
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      this.trigger(true);
    }, this.retryDelayMs);
  }

  /**
   * The next periodic resync, `delayMs` from now: by default one interval,
   * or 20 times what a full resync's dump costs if that is longer (see
   * TimeShare). Each dump moves it again (resyncDumped).
   */
  private armResync(delayMs = this.resyncShare.delayMs(this.resyncIntervalMs)): void {
    this.resyncTimer = this.clock.setTimeout(() => {
      this.armResync();
      // One under way (asked for by resync(), or dumping for longer than a period) is this period's: its dump arms the next.
      if (this.resyncing === undefined && this.resyncDump === undefined && !this.merging) this.trigger(true);
      this.onResync?.();
    }, delayMs);
  }

  /**
   * A full resync's dump (at start, after a failure, or beside the writes)
   * started at `startedAt` and took `ms`: the next periodic one comes one
   * period after that start, the period stretched by what dumps cost now.
   * So what a dump costs counts from the next resync on, not the one after.
   */
  private resyncDumped(startedAt: number, ms: number): void {
    this.resyncShare.ran(ms);
    if (this.stopped || !this.started) return;
    this.resyncTimer?.cancel();
    this.armResync(Math.max(0, startedAt + this.resyncShare.delayMs(this.resyncIntervalMs) - this.clock.now()));
  }

  /** A reconcile runs, or one is queued that is not waiting for the scheduled retry. */
  private busy(): boolean {
    if (this.running !== undefined || this.resyncDump !== undefined) return true;
    if (this.resyncing?.dumped !== undefined && !this.stopped) return true;
    return this.pending && !this.stopped && this.retryTimer === undefined;
  }

  private wakeIdle(): void {
    if (this.busy()) return;
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /**
   * One reconcile: a full one dumps first (`full`) or merges the dump of a
   * resync that ran beside the writes (`merge`); either then diffs every
   * desired service. Otherwise only what changed since the last one.
   */
  private async reconcile(full: boolean, merge?: Resync): Promise<void> {
    if (merge?.dumped) {
      await this.merge(merge.dumped, merge.journal);
    } else if (full) {
      const wanted = new Set([...this.desired.keys(), ...this.removals.keys()]);
      const dumpStart = this.clock.now();
      const kernel = await this.dump(wanted, true);
      await this.takeOwnedLeftovers(wanted, kernel);
      this.resyncDumped(dumpStart, this.clock.now() - dumpStart);
      this.counters.resyncs++;
      // In dry run the model holds what would have been done, not what was: no drift to speak of.
      if (this.known && !this.dryRun) await this.reportDrift(this.known, kernel);
      this.known = kernel;
      this.modelled = wanted;
    }
    full ||= merge !== undefined;
    // Between resyncs the model matches the kernel for every clean service:
    // diff only the changed ones, and of a patched service only its changed destinations.
    const changed = full ? undefined : this.changedServices();
    const patched = changed === undefined ? new Map<string, ReadonlySet<string>>() : this.patchedServices(changed);
    const scope: Table = changed ?? this.desired;
    // Worked through across awaits: updateDesired leaves it as it is meanwhile.
    if (changed === undefined) this.desiredInUse = this.desired;
    // What changes from here on (during the dumps and writes below) is the next run's.
    this.dirty.clear();
    this.dirtyDests.clear();
    const unmodelled = new Set([...scope.keys()].filter((id) => !this.modelled.has(id)));
    if (unmodelled.size > 0) {
      const adopted = await this.dumpUnmodelled(unmodelled);
      this.known = new Map([...(this.known ?? []), ...adopted]);
      for (const id of unmodelled) this.modelled.add(id);
    }
    const known = this.known ?? new Map<string, TableEntry>();
    // A large table is worked through in slices (the diff, then the model's update below): checks, BGP and the API go on meanwhile.
    const serviceOps = await sliced(diffSteps(scope, known, [...this.removals.values()]), this.slicing);
    const destOps = diffDestinations(this.desired, known, patched);
    const ops = destOps.length === 0 ? serviceOps : [...serviceOps, ...destOps];
    // Removals that are already gone from the kernel need no more attention.
    for (const [id] of this.removals) if (!known.has(id)) this.removals.delete(id);
    if (ops.length === 0) {
      this.markProgrammed(scope, known);
      return;
    }
    this.counters.requests += ops.length;
    if (this.dryRun) {
      await this.logEach(ops, (op) => {
        this.log.info(`dry run: would ${describeOp(op)}`);
        return true;
      });
      // As if applied, so that each later change is said once, not with
      // everything before it again; the periodic resync re-reads the kernel.
      this.known = await this.updateModel(known, serviceOps, destOps);
      for (const op of ops) if (op.op === 'del-service') this.removals.delete(serviceKeyId(op.key));
      this.markProgrammed(scope, this.known);
      return;
    }
    const results = await this.kernel.apply(ops);
    // Read after the answers: a write in flight as a resync's dump started is noted too.
    const journal = this.resyncing?.journal;
    const applied: IpvsOp[] = [];
    const appliedDest: IpvsOp[] = [];
    let firstError: IpvsError | undefined;
    let failed = 0;
    // A first apply of a large table is thousands of operations: one line each only at debug then.
    const verbose = ops.length <= LOG_EACH_OP_UP_TO;
    const debug = !verbose && this.log.isLevelEnabled('debug');
    ops.forEach((op, i) => {
      const error = results[i];
      if (error) {
        failed++;
        firstError ??= error;
        return;
      }
      (i < serviceOps.length ? applied : appliedDest).push(op);
      journal?.push(op);
      if (op.op === 'del-service') this.removals.delete(serviceKeyId(op.key));
    });
    const model = await this.updateModel(known, applied, appliedDest);
    this.known = model;
    this.counters.failedRequests += failed;
    await this.logEach(ops, (op, i) => {
      const error = results[i];
      if (error) this.log.error({ code: error.code }, `IPVS: could not ${describeOp(op)}: ${error.message}`);
      else if (verbose) this.log.info(`IPVS: ${describeOp(op)}`);
      else if (debug) this.log.debug(`IPVS: ${describeOp(op)}`);
      else return false;
      return true;
    });
    if (!verbose) this.log.info(`IPVS: applied ${ops.length - failed} of ${ops.length} changes (${summarizeOps(ops)})`);
    this.markProgrammed(scope, model);
    if (firstError) throw new PartialFailure(`${failed} of ${ops.length} IPVS requests failed; the first: ${firstError.message}`);
  }

  /**
   * A line per request, as `line` says (false: none for this one), in slices:
   * 20,000 lines of a first apply at debug, or of a dry run, take seconds on
   * a slow machine, and would hold the event loop all that time.
   */
  private async logEach(ops: readonly IpvsOp[], line: (op: IpvsOp, index: number) => boolean): Promise<void> {
    await sliced(
      (function* () {
        for (let i = 0; i < ops.length; i++) if (line(ops[i]!, i)) yield;
      })(),
      this.slicing,
    );
  }

  /**
   * The model after `serviceOps` (copy on write, in slices) and `destOps`
   * (patches: each destination changed in the model's own map, in place, so
   * that one destination costs one, not a copy of its service).
   */
  private async updateModel(known: Table, serviceOps: readonly IpvsOp[], destOps: readonly IpvsOp[]): Promise<Table> {
    const model = serviceOps.length === 0 ? known : await sliced(applyOpsSteps(known, serviceOps), this.slicing);
    applyDestOpsInPlace(model, destOps);
    return model;
  }

  /**
   * The patched destinations to diff, by service: those of services neither
   * dirty as a whole (`scope`, which takes in here any patched service the
   * model does not speak for, to be diffed whole) nor gone.
   */
  private patchedServices(scope: Map<string, TableEntry>): Map<string, ReadonlySet<string>> {
    const out = new Map<string, ReadonlySet<string>>();
    for (const [id, ids] of this.dirtyDests) {
      const entry = this.desired.get(id);
      if (entry === undefined || scope.has(id)) continue;
      if (!this.modelled.has(id) || this.known?.has(id) !== true) scope.set(id, entry);
      else out.set(id, ids);
    }
    return out;
  }

  /** The services of `scope` that the model now has are programmed; says so when that set grew. */
  private markProgrammed(scope: Table, model: Table): void {
    let grew = false;
    for (const id of scope.keys()) {
      if (!model.has(id) || this.programmed.has(id) || !this.desired.has(id)) continue;
      this.programmed.add(id);
      grew = true;
    }
    if (!grew || !this.onProgrammed) return;
    try {
      this.onProgrammed();
    } catch (error) {
      this.log.error({ err: error }, 'IPVS: the programmed-services listener failed');
    }
  }

  private changedServices(): Map<string, TableEntry> {
    const out = new Map<string, TableEntry>();
    for (const id of this.dirty) {
      const entry = this.desired.get(id);
      if (entry) out.set(id, entry);
    }
    return out;
  }

  /**
   * The write loop takes in the dump of a resync that ran beside it: the
   * model becomes the dump with the journal laid over it, drift is what the
   * model had and that does not show (see the top of this file).
   */
  private async merge(dumped: ResyncDump, journal: readonly IpvsOp[]): Promise<void> {
    const model = this.known ?? new Map<string, TableEntry>();
    const { scope } = dumped;
    // Each object takes the value of its last write, whichever way the dump saw it.
    const kernel = await sliced(
      applyOpsSteps(
        dumped.table,
        journal.filter((op) => scope.has(serviceKeyId(opServiceKey(op)))),
      ),
      this.slicing,
    );
    // A deletion during the dump may have hidden an entry (the kernel walks by index): what the model has and the dump lacks stays.
    const shortened = new Set<string>();
    let listingShortened = false;
    for (const op of journal) {
      if (op.op === 'del-dest') shortened.add(serviceKeyId(op.key));
      else if (op.op === 'del-service') listingShortened = true;
    }
    for (const id of scope) {
      const mine = model.get(id);
      if (mine === undefined) continue;
      const theirs = kernel.get(id);
      if (theirs === undefined) {
        if (listingShortened) kernel.set(id, mine);
        continue;
      }
      if (!shortened.has(id)) continue;
      const dests = theirs.dests as Map<string, DestSpec>;
      for (const [destId, d] of mine.dests) if (!dests.has(destId)) dests.set(destId, d);
    }
    this.resyncDumped(dumped.startedAt, dumped.ms);
    this.counters.resyncs++;
    if (this.log.isLevelEnabled('debug')) {
      let servers = 0;
      for (const entry of dumped.table.values()) servers += entry.dests.size;
      this.log.debug(`IPVS: resync: merging a dump of ${dumped.table.size} services and ${servers} servers (read in ${Math.round(dumped.ms)} ms) with ${journal.length} writes made meanwhile`);
    }
    if (this.known && !this.dryRun) await this.reportDrift(this.known, kernel, scope);
    // Services outside the dump's scope (named during it) keep what the model has for them.
    const modelled = new Set(scope);
    for (const id of this.modelled) {
      if (scope.has(id) || !(this.desired.has(id) || this.removals.has(id))) continue;
      modelled.add(id);
      const entry = model.get(id);
      if (entry) kernel.set(id, entry);
    }
    for (const svc of dumped.leftovers) if (!this.desired.has(serviceKeyId(svc.key))) this.removeLeftover(svc);
    this.listedAtResync = dumped.listing;
    this.known = kernel;
    this.modelled = modelled;
  }

  /** Dumps the kernel's services among `wanted` (ids) and their destinations. */
  private async dump(wanted: ReadonlySet<string>, full = false): Promise<Map<string, TableEntry>> {
    const table = new Map<string, TableEntry>();
    const services = await this.kernel.listServices();
    if (full) this.listedAtResync = new Map(services.map((svc) => [serviceKeyId(svc.key), svc]));
    for (const svc of services) {
      const id = serviceKeyId(svc.key);
      if (!wanted.has(id)) continue;
      const entry = await this.entryOf(svc);
      if (entry) table.set(id, entry);
    }
    return table;
  }

  /** The services of a listing that pybal owns and that are not `wanted` (left by an earlier run). */
  private ownedLeftovers(wanted: ReadonlySet<string>, listing: ReadonlyMap<string, KernelService>): KernelService[] {
    const owns = this.owns;
    if (owns === undefined) return [];
    return [...listing].filter(([id, svc]) => !wanted.has(id) && owns(svc.key)).map(([, svc]) => svc);
  }

  /**
   * After a full resync's listing: the services pybal owns that no one
   * desires (left by an earlier run) join the removals, and `wanted` and the
   * dumped `table` with them.
   */
  private async takeOwnedLeftovers(wanted: Set<string>, table: Map<string, TableEntry>): Promise<void> {
    for (const svc of this.ownedLeftovers(wanted, this.listedAtResync ?? new Map())) {
      const id = this.removeLeftover(svc);
      wanted.add(id);
      const entry = await this.entryOf(svc);
      if (entry) table.set(id, entry);
    }
  }

  /** A service pybal owns that no one desires joins the removals; returns its id. */
  private removeLeftover(svc: KernelService): string {
    const id = serviceKeyId(svc.key);
    this.log.info(`IPVS: deleting ${formatServiceKey(svc.key)}, a data-path probe service no server needs (left by an earlier run)`);
    this.removals.set(id, svc.key);
    return id;
  }

  /** A service the kernel listed, with its destinations dumped; undefined if it is gone since (ESRCH). */
  private async entryOf(service: KernelService, from: IpvsReader = this.kernel): Promise<TableEntry | undefined> {
    const dests = new Map<string, DestSpec>();
    // A destination the kernel has exactly as the model does is the model's
    // own object: a resync that finds nothing changed makes no new one. Made
    // anew at every resync, 10,000 of them (with their ids) outlived the
    // dump's slices and reached the old generation, which only a full
    // collection empties: in the lab guest one of those holds the loop for
    // 50 to 100 ms.
    const modelled = this.known?.get(serviceKeyId(service.key))?.dests;
    try {
      // Only the settings are kept, taken and indexed as each destination is
      // decoded, in the decode's slices (its counters die young). Indexed
      // after the dump in one go, 10,000 of them held the event loop for
      // about 0.5 s in the lab guest, at every resync.
      await from.mapDests(service.key, (dest) => {
        const kept = modelled?.get(formatDestKeyId(dest));
        const spec = kept !== undefined && sameDestSpec(kept, dest) ? kept : destSpecOf(dest);
        dests.set(destKeyId(spec), spec);
      });
    } catch (error) {
      if (error instanceof IpvsError && error.code === 'ESRCH') return undefined;
      throw error;
    }
    return { service: serviceSpecOf(service), dests };
  }

  /**
   * The kernel's entries for services named for the first time since the
   * last full resync. That resync listed every service in the kernel: one
   * it did not list is taken as absent without asking again, so that 1,000
   * services appearing one after another at a cold start cost no dump each
   * (listing every service each time grew with the table). A service
   * someone creates by hand meanwhile makes our add fail with EEXIST, and the
   * full resync that follows adopts it.
   */
  private async dumpUnmodelled(ids: ReadonlySet<string>): Promise<Table> {
    const listed = this.listedAtResync;
    if (!listed) return this.dump(ids);
    const table = new Map<string, TableEntry>();
    for (const id of ids) {
      const svc = listed.get(id);
      const entry = svc && (await this.entryOf(svc));
      if (entry) table.set(id, entry);
    }
    return table;
  }

  /**
   * Logs each way the kernel differs from what we last set (among `scope`,
   * the services dumped): someone changed it behind our back. In slices, like
   * the repair's diff: compared in one go, 10,000 destinations held the event
   * loop for about 35 ms on the host, a multiple of it in the lab guest, at
   * every resync.
   */
  private async reportDrift(model: Table, kernel: Table, scope?: ReadonlySet<string>): Promise<void> {
    const shared = new Map([...model].filter(([id]) => (scope === undefined || scope.has(id)) && (this.desired.has(id) || this.removals.has(id))));
    for (const op of await sliced(diffSteps(shared, kernel), this.slicing)) {
      this.counters.drift++;
      this.log.warn(`IPVS drift: ${describeDrift(op)}; repairing`);
    }
  }
}

/** The service an operation is about. */
function opServiceKey(op: IpvsOp): ServiceKey {
  return op.op === 'new-service' || op.op === 'set-service' ? op.service.key : op.key;
}

/** A periodic resync may take at most 1/RESYNC_TIME_SHARE of the time (see armResync). */
export const RESYNC_TIME_SHARE = 20;

/** Above this many operations in one reconcile, each is logged at debug and a summary at info. */
const LOG_EACH_OP_UP_TO = 100;

/** "2 add service, 9000 add server" */
function summarizeOps(ops: readonly IpvsOp[]): string {
  const counts = new Map<string, number>();
  for (const op of ops) counts.set(op.op, (counts.get(op.op) ?? 0) + 1);
  return [...counts].map(([kind, n]) => `${n} ${kind}`).join(', ');
}

/** What a repair operation says about the kernel. */
function describeDrift(op: IpvsOp): string {
  switch (op.op) {
    case 'new-service':
      return `service ${opObject(op)} is missing from the kernel`;
    case 'set-service':
      return `service ${opObject(op)} has ${formatServiceSettings(op.before)}, expected ${formatServiceSettings(op.service)}`;
    case 'new-dest':
      return `server ${opObject(op)} is missing from the kernel`;
    case 'del-dest':
      return `server ${opObject(op)} appeared in the kernel`;
    case 'set-dest':
      return `server ${opObject(op)} has ${formatDestSettings(op.before)}, expected ${formatDestSettings(op.dest)}`;
    case 'del-service':
      return `service ${opObject(op)} should not be there`;
  }
}
