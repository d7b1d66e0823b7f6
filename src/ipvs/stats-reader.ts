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
 */
import type { Clock, Timer } from '../runtime/clock.js';
import { errorMessage } from '../runtime/errors.js';
import type { Logger } from '../runtime/logger.js';
import { sliced, type SliceOptions } from '../runtime/sliced.js';
import { TimeShare } from '../runtime/time-share.js';
import { canonicalAddress } from './address.js';
import { serviceKeyId } from './codec.js';
import { statsOf } from './format.js';
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

/** One destination in one reading. */
export interface DestReading {
  readonly address: string;
  readonly weight: number;
  readonly fwdMethod: FwdMethod;
  readonly traffic: TrafficValue;
}

/** One service in one reading. */
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

/** What a reading keeps of a destination, made as the kernel's reply is decoded. */
function destReading(d: KernelDest, readAtWallMs: number): DestReading {
  return {
    address: canonicalAddress(d.address),
    weight: d.weight,
    fwdMethod: d.fwdMethod,
    traffic: trafficValue(statsOf(d), readAtWallMs, { active: d.activeConns, inactive: d.inactConns }),
  };
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
  /** The latest reading of each service, by name. */
  private latestByName = new Map<string, ServiceReading>();
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

  /** The latest reading of a service, if any. */
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
      const readings = new Map<string, ServiceReading>();
      for (const service of services) {
        const target = byId.get(serviceKeyId(service.key));
        if (target === undefined) continue;
        // Each service's dump on its own turn: a reconcile that came due goes first.
        busyMs += this.clock.now() - since;
        await this.waitIdle();
        since = this.clock.now();
        if (this.stopped) return;
        const wall = this.clock.wallNow();
        const dests = await this.kernel.mapDests(service.key, (d) => destReading(d, wall));
        readings.set(target.name, await sliced(this.readingSteps(target.name, service, dests, wall), this.slicing));
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

  private *readingSteps(name: string, service: KernelService, dests: readonly DestReading[], wall: number): Generator<void, ServiceReading, undefined> {
    const byAddress = new Map<string, DestReading>();
    let n = 0;
    for (const d of dests) {
      byAddress.set(d.address, d);
      if (++n % DESTS_PER_STEP === 0) yield;
    }
    return { name, traffic: trafficValue(statsOf(service), wall), dests: byAddress, atMs: this.clock.now() };
  }

  /** Keeps the readings (services no longer named are forgotten) and applies the quiet-server rule, in slices. */
  private *keepSteps(targets: readonly StatsTarget[], readings: ReadonlyMap<string, ServiceReading>): Generator<void, void, undefined> {
    const latest = new Map<string, ServiceReading>();
    const windows = new Map<string, QuietWindow>();
    const quiet = new Map<string, Map<string, QuietServerValue>>();
    for (const target of targets) {
      const reading = readings.get(target.name);
      // A service missing from the kernel now has no counters (and its window starts again).
      if (reading === undefined || windows.has(target.name)) continue;
      latest.set(target.name, reading);
      const window = this.windows.get(target.name) ?? new QuietWindow(this.windowReadings);
      yield* window.addSteps(reading.dests.values());
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
    // Reading was turned off meanwhile (setInterval(0)): what was read is not kept.
    if (this.intervalMs === 0) return;
    this.latestByName = latest;
    this.windows = windows;
    this.quietByName = quiet;
  }

  private logQuiet(name: string, verdict: QuietVerdict): void {
    this.log.warn(`${name}: pooled server ${verdict.address} gets no traffic while its siblings do (${verdict.reason}): ${verdict.detail}`);
  }
}
