/**
 * Reads the kernel's IPVS counters of pybal's own services (those the
 * configuration names) every `ipvs-stats-interval`, and keeps the latest
 * reading per service and per destination, plus a short window of readings
 * for the quiet-server rule (quiet-servers.ts).
 *
 * It never gets in the way of a reconcile:
 * - it has a netlink socket of its own (main.ts opens a second client), so
 *   its dumps never wait in the manager's queue, nor the manager's in its
 *   queue (the kernel allows one dump per socket at a time: two sockets
 *   dump side by side);
 * - it starts a reading only when the manager is idle (`waitIdle`), and
 *   reads services one dump at a time, so the kernel's IPVS lock is taken in
 *   short turns;
 * - the client decodes a dump in slices once read, and each destination
 *   becomes the values kept of it as it is decoded (mapDests);
 *   the reading is gathered and the quiet-server window fed in slices here
 *   (runtime/sliced.ts): 10,000 destinations do not hold the event loop for
 *   more than a slice at a time.
 * A reading that fails is logged (once per streak) and counted; the last
 * good one stays, with its time, and the next tick tries again.
 *
 * What is kept of each destination (and service) is one object for as long
 * as the kernel lists it, its values overwritten by each reading: a reading
 * of 10,000 destinations made some 3 MB of new objects that lived until the
 * next one, 10 s later, so that every one of them was moved to V8's old
 * generation and then collected there (about 320 KB a second in the lab
 * guest, the main thread's largest source of major collections, each of
 * which held the event loop for 50-100 ms there). A reading's values are
 * staged in a typed array as the dumps are decoded and written over the kept
 * objects only once the whole reading is in, so that a reading that fails
 * halfway leaves the last good one as it was.
 */
import type { Clock, Timer } from '../runtime/clock.js';
import { errorMessage } from '../runtime/errors.js';
import type { Logger } from '../runtime/logger.js';
import { sliced, type SliceOptions } from '../runtime/sliced.js';
import { TimeShare } from '../runtime/time-share.js';
import { canonicalAddress } from './address.js';
import { serviceKeyId } from './codec.js';
import { statsOf, ZERO_STATS } from './format.js';
import { decideQuietServers, type QuietVerdict } from './quiet-servers.js';
import { QuietWindow } from './quiet-window.js';
import type { FwdMethod, KernelDest, KernelService, QuietServerValue, ServiceKey, Stats, TrafficValue } from './types.js';

/** What the reader needs of the kernel (the IPVS client; tests fake it). */
export interface IpvsCountersKernel {
  listServices(): Promise<KernelService[]>;
  /** A service's destinations, each mapped as it is decoded (IpvsClient.mapDests). */
  mapDests<T>(key: ServiceKey, each: (dest: KernelDest) => T): Promise<T[]>;
}

/** A service the reader reads: its name in pybal.conf and its kernel key, with what the quiet-server rule needs. */
export interface StatsTarget {
  readonly name: string;
  readonly key: ServiceKey;
  readonly scheduler: string;
  readonly persistent: boolean;
}

/** One destination in the latest reading (the same object from reading to reading, its values overwritten: see the top of this file). */
export interface DestReading {
  readonly address: string;
  readonly weight: number;
  readonly fwdMethod: FwdMethod;
  readonly traffic: TrafficValue;
}

/** One service in the latest reading (the same object from reading to reading, as its destinations). */
export interface ServiceReading {
  readonly name: string;
  readonly traffic: TrafficValue;
  /** By canonical address. */
  readonly dests: ReadonlyMap<string, DestReading>;
  /** Monotonic ms of the reading (the window's clock). */
  readonly atMs: number;
}

export interface StatsReaderCounters {
  readonly reads: number;
  readonly failedReads: number;
  readonly lastError: string | undefined;
  /** Wall-clock ms of the last complete reading. */
  readonly lastReadWallMs: number | undefined;
}

export interface IpvsStatsReaderOptions {
  readonly kernel: IpvsCountersKernel;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Reading period; 0 reads nothing. */
  readonly intervalMs: number;
  /** The services to read, asked at each reading (a reload changes them). */
  readonly targets: () => readonly StatsTarget[];
  /** Resolves when no reconcile runs or waits (IpvsManager.idle). */
  readonly waitIdle?: () => Promise<void>;
  /** Readings in the quiet-server window (default 6: 50 s from the first to the last at the default 10 s). */
  readonly windowReadings?: number;
  readonly slicing?: SliceOptions;
}

/** Values of the kernel's stats (bigint) as numbers, with when they were read. */
export function trafficValue(stats: Stats, readAtWallMs: number, conns?: { active: number; inactive: number }): TrafficValue {
  // One literal with every field, a service's connection counts undefined
  // (JSON leaves them out): 10,000 destinations' values are kept. A spread of
  // a shared part made slow objects of each, and fields added after the
  // literal went to a property array of their own (171 bytes a value
  // against 147).
  return {
    connections: Number(stats.conns),
    inPackets: Number(stats.inPkts),
    outPackets: Number(stats.outPkts),
    inBytes: Number(stats.inBytes),
    outBytes: Number(stats.outBytes),
    connectionsPerSec: Number(stats.cps),
    inPacketsPerSec: Number(stats.inPps),
    outPacketsPerSec: Number(stats.outPps),
    inBytesPerSec: Number(stats.inBps),
    outBytesPerSec: Number(stats.outBps),
    activeConnections: conns?.active,
    inactiveConnections: conns?.inactive,
    readAtWallMs,
  };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** A destination as kept from reading to reading: one object, its values overwritten by each reading. */
interface KeptDest {
  readonly address: string;
  weight: number;
  fwdMethod: FwdMethod;
  readonly traffic: Mutable<TrafficValue>;
  /** The last reading (keep's count) that listed it. */
  seen: number;
}

/** A service as kept from reading to reading (see KeptDest). */
interface KeptService {
  readonly name: string;
  readonly traffic: Mutable<TrafficValue>;
  readonly dests: Map<string, KeptDest>;
  atMs: number;
}

/**
 * Numbers staged per destination: the ten counters and rates, ActiveConn,
 * InActConn, the weight. A service's own counters take the first place.
 */
const STAGED = 13;

/** One service of a reading under way: its values staged, its destinations' kept objects (or new ones) in the kernel's order. */
interface StagedService {
  readonly wall: number;
  readonly atMs: number;
  /** Destinations staged (entries of the arrays below in use). */
  count: number;
  readonly dests: KeptDest[];
  readonly fwd: FwdMethod[];
  values: Float64Array;
}

/** Room a service's staging keeps between readings (its arrays grow with the service). */
interface Staging {
  readonly dests: KeptDest[];
  readonly fwd: FwdMethod[];
  values: Float64Array;
}

function stageStats(values: Float64Array, at: number, stats: Stats): void {
  values[at] = Number(stats.conns);
  values[at + 1] = Number(stats.inPkts);
  values[at + 2] = Number(stats.outPkts);
  values[at + 3] = Number(stats.inBytes);
  values[at + 4] = Number(stats.outBytes);
  values[at + 5] = Number(stats.cps);
  values[at + 6] = Number(stats.inPps);
  values[at + 7] = Number(stats.outPps);
  values[at + 8] = Number(stats.inBps);
  values[at + 9] = Number(stats.outBps);
}

/** Writes staged values over kept ones (a destination's connection counts too when `conns`). */
function applyStaged(traffic: Mutable<TrafficValue>, values: Float64Array, at: number, wall: number, conns: boolean): void {
  traffic.connections = values[at] as number;
  traffic.inPackets = values[at + 1] as number;
  traffic.outPackets = values[at + 2] as number;
  traffic.inBytes = values[at + 3] as number;
  traffic.outBytes = values[at + 4] as number;
  traffic.connectionsPerSec = values[at + 5] as number;
  traffic.inPacketsPerSec = values[at + 6] as number;
  traffic.outPacketsPerSec = values[at + 7] as number;
  traffic.inBytesPerSec = values[at + 8] as number;
  traffic.outBytesPerSec = values[at + 9] as number;
  if (conns) {
    traffic.activeConnections = values[at + 10] as number;
    traffic.inactiveConnections = values[at + 11] as number;
  }
  traffic.readAtWallMs = wall;
}

/** A reading may take at most 1/READ_TIME_SHARE of the time: the interval stretches beyond that (runtime/time-share.ts). */
export const READ_TIME_SHARE = 20;

/** Destinations turned into values between two chances to end a slice. */
const DESTS_PER_STEP = 256;

export class IpvsStatsReader {
  private readonly kernel: IpvsCountersKernel;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly targets: () => readonly StatsTarget[];
  private readonly waitIdle: () => Promise<void>;
  private readonly windowReadings: number;
  private readonly slicing: SliceOptions | undefined;
  private intervalMs: number;
  private timer: Timer | undefined;
  private running: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  /** The latest reading of each service, by name: kept objects, overwritten by each reading. */
  private latestByName = new Map<string, KeptService>();
  /** Each service's staging room, by name (see Staging). */
  private staging = new Map<string, Staging>();
  /** Readings kept so far (KeptDest.seen). */
  private kept = 0;
  /** Each service's window of readings for the quiet-server rule (what the rule needs of them). */
  private windows = new Map<string, QuietWindow>();
  /** Flagged servers by service name, then address. */
  private quietByName = new Map<string, Map<string, QuietServerValue>>();
  private counters = { reads: 0, failedReads: 0, lastError: undefined as string | undefined, lastReadWallMs: undefined as number | undefined };
  /** Reading takes at most 1/READ_TIME_SHARE of the time: the interval stretches beyond that. */
  private readonly timeShare = new TimeShare(READ_TIME_SHARE, ({ stretched, costMs, delayMs }) => {
    if (stretched) {
      this.log.warn(
        `Reading the IPVS counters took ${Math.round(costMs)} ms: reading them every ${(delayMs / 1000).toFixed(1)} s instead of every ${this.intervalMs / 1000} s (ipvs-stats-interval), so that it takes at most 1/${READ_TIME_SHARE} of the time`,
      );
    } else {
      this.log.info(`Reading the IPVS counters every ${this.intervalMs / 1000} s again (ipvs-stats-interval)`);
    }
  });

  constructor(options: IpvsStatsReaderOptions) {
    this.kernel = options.kernel;
    this.clock = options.clock;
    this.log = options.logger;
    this.targets = options.targets;
    this.waitIdle = options.waitIdle ?? (() => Promise.resolve());
    this.windowReadings = Math.max(2, options.windowReadings ?? 6);
    this.slicing = options.slicing;
    this.intervalMs = options.intervalMs;
  }

  /** Reads at once, then every interval (nothing when the interval is 0). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.schedule(0);
  }

  /** A reload's new `ipvs-stats-interval`: 0 stops reading and forgets what was read. */
  setInterval(ms: number): void {
    if (ms === this.intervalMs) return;
    this.intervalMs = ms;
    if (!this.started || this.stopped) return;
    this.timer?.cancel();
    this.timer = undefined;
    if (ms === 0) this.forget();
    else if (!this.running) this.schedule(0);
  }

  get enabled(): boolean {
    return this.intervalMs > 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.running;
  }

  /** Reads once now (tests; the timer's work). Resolves when done; never rejects. */
  readNow(): Promise<void> {
    if (this.running) return this.running;
    const run = this.read().finally(() => {
      this.running = undefined;
    });
    this.running = run;
    return run;
  }

  /**
   * The latest reading of a service, if any: what a reader holds of it
   * (its traffic values) shows the readings that come after, each whole.
   */
  latest(name: string): ServiceReading | undefined {
    return this.latestByName.get(name);
  }

  /** The servers of a service the quiet-server rule flags now, by canonical address. */
  quiet(name: string): ReadonlyMap<string, QuietServerValue> | undefined {
    return this.quietByName.get(name);
  }

  stats(): StatsReaderCounters {
    return { ...this.counters };
  }

  // ---- internals ----

  private schedule(delayMs: number): void {
    if (this.stopped || this.intervalMs === 0) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.readNow().then(() => this.schedule(this.timeShare.delayMs(this.intervalMs)));
    }, delayMs);
  }

  private forget(): void {
    this.latestByName = new Map();
    this.staging = new Map();
    this.windows = new Map();
    this.quietByName = new Map();
  }

  private async read(): Promise<void> {
    try {
      await this.waitIdle();
      if (this.stopped) return;
      // The time spent reading, without the waits for the manager in between.
      let busyMs = 0;
      let since = this.clock.now();
      const targets = this.targets();
      const byId = new Map(targets.map((t) => [serviceKeyId(t.key), t]));
      const services = await this.kernel.listServices();
      const readings = new Map<string, StagedService>();
      for (const service of services) {
        const target = byId.get(serviceKeyId(service.key));
        if (target === undefined || readings.has(target.name)) continue;
        // Each service's dump on its own turn: a reconcile that came due goes first.
        busyMs += this.clock.now() - since;
        await this.waitIdle();
        since = this.clock.now();
        if (this.stopped) return;
        readings.set(target.name, await this.stage(target.name, service));
      }
      await sliced(this.keepSteps(targets, readings), this.slicing);
      this.timeShare.ran(busyMs + this.clock.now() - since);
      this.counters.reads++;
      this.counters.lastReadWallMs = this.clock.wallNow();
      if (this.counters.lastError !== undefined) this.log.info('IPVS counters are read again');
      this.counters.lastError = undefined;
    } catch (error) {
      this.counters.failedReads++;
      const message = errorMessage(error);
      if (this.counters.lastError === undefined) this.log.warn(`Could not read the IPVS counters: ${message}; the last reading stays until one succeeds`);
      this.counters.lastError = message;
    }
  }

  /**
   * Dumps a service's destinations, staging each one's values as it is
   * decoded, with its kept object (a new one for a destination not kept yet).
   */
  private async stage(name: string, service: KernelService): Promise<StagedService> {
    const wall = this.clock.wallNow();
    let room = this.staging.get(name);
    // Room for as many as the service had, and some (the first reading grows it by doubling:
    // 10,000 took room for 16,384, 1.7 MB, which the next reading gives back).
    const expected = (this.latestByName.get(name)?.dests.size ?? 0) + 1;
    const size = STAGED * (expected + (expected >> 3) + 16);
    if (room === undefined) {
      room = { dests: [], fwd: [], values: new Float64Array(size) };
      this.staging.set(name, room);
    } else if (room.values.length < size || room.values.length > size + (size >> 2)) {
      room.values = new Float64Array(size);
    }
    const staged: StagedService = { wall, atMs: 0, count: 0, dests: room.dests, fwd: room.fwd, values: room.values };
    stageStats(staged.values, 0, statsOf(service));
    const kept = this.latestByName.get(name)?.dests;
    // Destinations not kept yet, so that one the dump lists twice is one object.
    const fresh = new Map<string, KeptDest>();
    await this.kernel.mapDests(service.key, (d) => {
      const address = canonicalAddress(d.address);
      let dest = kept?.get(address) ?? fresh.get(address);
      if (dest === undefined) {
        dest = { address, weight: 0, fwdMethod: d.fwdMethod, traffic: trafficValue(ZERO_STATS, wall, { active: 0, inactive: 0 }), seen: 0 };
        fresh.set(address, dest);
      }
      const i = staged.count++;
      const at = (i + 1) * STAGED;
      if (at + STAGED > staged.values.length) {
        const grown = new Float64Array(staged.values.length * 2);
        grown.set(staged.values);
        staged.values = grown;
        room.values = grown;
      }
      staged.dests[i] = dest;
      staged.fwd[i] = d.fwdMethod;
      stageStats(staged.values, at, statsOf(d));
      staged.values[at + 10] = d.activeConns;
      staged.values[at + 11] = d.inactConns;
      staged.values[at + 12] = d.weight;
    });
    return Object.assign(staged, { atMs: this.clock.now() });
  }

  /**
   * Keeps a reading: its values written over the kept objects (new
   * destinations join, those no longer listed are forgotten; services no
   * longer named are forgotten), and the quiet-server rule applied; in slices.
   */
  private *keepSteps(targets: readonly StatsTarget[], readings: ReadonlyMap<string, StagedService>): Generator<void, void, undefined> {
    // Reading was turned off meanwhile (setInterval(0)): what was read is not kept.
    if (this.intervalMs === 0) return;
    const reading = ++this.kept;
    const latest = new Map<string, KeptService>();
    const windows = new Map<string, QuietWindow>();
    const quiet = new Map<string, Map<string, QuietServerValue>>();
    for (const target of targets) {
      // A chance to end the slice at each service: 1,000 services of 10 (no service reaching
      // DESTS_PER_STEP) held the event loop 0.6 to 0.7 s in the lab guest, all in one step.
      yield;
      const staged = readings.get(target.name);
      // A service missing from the kernel now has no counters (and its window starts again).
      if (staged === undefined || windows.has(target.name)) continue;
      const service = this.latestByName.get(target.name) ?? {
        name: target.name,
        traffic: trafficValue(ZERO_STATS, staged.wall),
        dests: new Map<string, KeptDest>(),
        atMs: staged.atMs,
      };
      applyStaged(service.traffic, staged.values, 0, staged.wall, false);
      service.atMs = staged.atMs;
      const { dests, values, fwd } = staged;
      for (let i = 0; i < staged.count; i++) {
        const dest = dests[i] as KeptDest;
        const at = (i + 1) * STAGED;
        applyStaged(dest.traffic, values, at, staged.wall, true);
        dest.weight = values[at + 12] as number;
        dest.fwdMethod = fwd[i] as FwdMethod;
        // A new one joins (so does a kept one the service's map lost: the reader forgot all meanwhile).
        if (service.dests.get(dest.address) !== dest) service.dests.set(dest.address, dest);
        dest.seen = reading;
        if ((i + 1) % DESTS_PER_STEP === 0) yield;
      }
      let n = 0;
      for (const [address, dest] of service.dests) {
        if (dest.seen !== reading) service.dests.delete(address);
        if (++n % DESTS_PER_STEP === 0) yield;
      }
      latest.set(target.name, service);
      const window = this.windows.get(target.name) ?? new QuietWindow(this.windowReadings);
      // The kernel's order (an address it listed twice: the same object, its last values).
      yield* window.addSteps(dests.slice(0, staged.count));
      // The staging room keeps no destination alive once it is forgotten.
      dests.fill(undefined as unknown as KeptDest, 0, staged.count);
      windows.set(target.name, window);
      if (!window.full) continue;
      const before = this.quietByName.get(target.name);
      const flagged = new Map<string, QuietServerValue>();
      const input = yield* window.inputSteps();
      yield;
      for (const verdict of decideQuietServers({ ...input, scheduler: target.scheduler, persistent: target.persistent })) {
        const since = before?.get(verdict.address)?.sinceWallMs ?? this.clock.wallNow();
        if (before?.get(verdict.address) === undefined) this.logQuiet(target.name, verdict);
        flagged.set(verdict.address, { reason: verdict.reason, detail: verdict.detail, sinceWallMs: since });
      }
      for (const address of before?.keys() ?? []) {
        if (!flagged.has(address)) this.log.info(`${target.name}: server ${address} gets traffic again (no longer flagged)`);
      }
      if (flagged.size > 0) quiet.set(target.name, flagged);
    }
    if (this.intervalMs === 0) return;
    this.latestByName = latest;
    for (const name of this.staging.keys()) if (!latest.has(name)) this.staging.delete(name);
    this.windows = windows;
    this.quietByName = quiet;
  }

  private logQuiet(name: string, verdict: QuietVerdict): void {
    this.log.warn(`${name}: pooled server ${verdict.address} gets no traffic while its siblings do (${verdict.reason}): ${verdict.detail}`);
  }
}
