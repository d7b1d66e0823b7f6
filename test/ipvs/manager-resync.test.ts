// The periodic resync dumps on a reader of its own while the writes go on
// (see the top of src/ipvs/manager.ts). The reader here walks the in-memory
// kernel's lists by index, a few entries per chunk, as the kernel's dump does,
// and holds between chunks until the test lets it go on: so a test can land
// a write before, during or after the dump reads the object it changes, and
// a deletion shifts the walk and hides an entry, as it does in the kernel.
import { afterEach, describe, expect, it } from 'vitest';
import type { ServiceConfig } from '../../src/config/types.js';
import { destKeyId, serviceKeyId } from '../../src/ipvs/codec.js';
import { DesiredServiceBuilder, serviceKeyFromConfig } from '../../src/ipvs/desired.js';
import type { DesiredService } from '../../src/ipvs/diff.js';
import { IpvsError } from '../../src/ipvs/errors.js';
import { IpvsManager, type IpvsManagerOptions, type IpvsReader } from '../../src/ipvs/manager.js';
import type { DestSpec, KernelDest, KernelService, ServiceKey } from '../../src/ipvs/types.js';
import { ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { serviceConfig } from '../support/config-fixtures.js';
import { createRandomInt } from '../support/random.js';
import { FakeIpvsKernel } from './fake-kernel.js';
import { desired, dest, svc } from './fixtures.js';

/** A dump of the fake kernel in chunks, holding between them while `held`. */
class ChunkedReader implements IpvsReader {
  /** Full listings started. */
  listings = 0;
  held = false;
  /** Thrown at the next chunk (a socket error in the middle of a dump). */
  failNext: Error | undefined;
  /** What the last dump of each service returned (destKeyIds). */
  readonly lastDests = new Map<string, string[]>();
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly kernel: FakeIpvsKernel,
    private readonly chunk = 2,
  ) {}

  async listServices(): Promise<KernelService[]> {
    this.listings++;
    await this.pause();
    return [...this.kernel.table.values()].map((e) => ({ ...e.service, rawFlags: e.service.flags | 2, stats: undefined, stats64: undefined }));
  }

  async listDests(key: ServiceKey): Promise<KernelDest[]> {
    const id = serviceKeyId(key);
    const out: DestSpec[] = [];
    // By index, as the kernel resumes a dump: an entry deleted behind the walk shifts the rest forward.
    for (let index = 0; ; index += this.chunk) {
      await this.pause();
      const entry = this.kernel.table.get(id);
      if (!entry) break; // the kernel ends the dump of a service that is gone
      const part = [...entry.dests.values()].slice(index, index + this.chunk);
      out.push(...part);
      if (part.length < this.chunk) break;
    }
    this.lastDests.set(id, out.map((d) => destKeyId(d)));
    return out.map((d) => ({ ...d, activeConns: 0, inactConns: 0, persistConns: 0, stats: undefined, stats64: undefined }));
  }

  async mapDests<T>(key: ServiceKey, each: (dest: KernelDest) => T): Promise<T[]> {
    return (await this.listDests(key)).map(each);
  }

  /** A chunk is waiting for step() or release(). */
  pending(): boolean {
    return this.waiting.length > 0;
  }

  /** Lets the waiting chunk be read, and waits until the dump waits again (or ends). */
  async step(n = 1): Promise<void> {
    for (let i = 0; i < n; i++) {
      this.waiting.shift()?.();
      await settle();
    }
  }

  release(): void {
    this.held = false;
    for (const go of this.waiting.splice(0)) go();
  }

  private async pause(): Promise<void> {
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else await Promise.resolve();
    const error = this.failNext;
    this.failNext = undefined;
    if (error) throw error;
  }
}

/** Lets the event loop turn until the manager's work that does not wait on the held dump is done. */
async function settle(): Promise<void> {
  for (let i = 0; i < 30; i++) await new Promise((r) => setImmediate(r));
}

const managers: IpvsManager[] = [];
afterEach(async () => {
  for (const m of managers.splice(0)) {
    const stopping = m.stop();
    for (const r of readers.splice(0)) r.release();
    await stopping;
  }
});
const readers: ChunkedReader[] = [];

function setup(options: Partial<IpvsManagerOptions> = {}, chunk = 2) {
  const kernel = new FakeIpvsKernel();
  const reader = new ChunkedReader(kernel, chunk);
  const clock = new ManualClock();
  const log = createMemoryLogger();
  const manager = new IpvsManager({ kernel, reader, clock, logger: log.logger, resyncIntervalMs: 60_000, retryInitialMs: 1000, ...options });
  managers.push(manager);
  readers.push(reader);
  return { kernel, reader, clock, log, manager };
}

/** What the kernel has for a service (a port of svc(), or a key): weight by address, sorted. */
function weights(kernel: FakeIpvsKernel, service: number | ServiceKey): string[] {
  return kernel
    .dests(typeof service === 'number' ? svc(service).key : service)
    .map((d) => `${d.address}=${d.weight}`)
    .sort();
}

function expected(dests: readonly DestSpec[]): string[] {
  return dests.map((d) => `${d.address}=${d.weight}`).sort();
}

function pool(n: number, weight = 10): DestSpec[] {
  return Array.from({ length: n }, (_, i) => dest(i, { weight }));
}

/** Starts a periodic resync whose dump waits at its first chunk (the listing). */
async function holdResync(reader: ChunkedReader, clock: ManualClock): Promise<void> {
  reader.held = true;
  await clock.advanceAsync(60_000);
  await settle();
  expect(reader.pending()).toBe(true);
}

function driftLines(log: ReturnType<typeof createMemoryLogger>): string[] {
  return log.lines().filter((l) => l.includes('drift'));
}

function errorLines(log: ReturnType<typeof createMemoryLogger>): string[] {
  return log.lines().filter((l) => l.includes('ERROR') || l.includes('WARN'));
}

/** The model is the kernel's: a resync writes nothing and finds no drift. */
async function expectModelIsKernel(manager: IpvsManager, kernel: FakeIpvsKernel): Promise<void> {
  const ops = kernel.calls.ops;
  const drift = manager.stats().drift;
  manager.resync();
  await manager.idle();
  expect(kernel.calls.ops - ops, 'writes of a resync after the merge').toBe(0);
  expect(manager.stats().drift - drift).toBe(0);
}

describe('IpvsManager: writes during a periodic resync', () => {
  // Chunks of 2 over 10 servers: step 0 lands the edit before any server is read, 2 after dest(0..1) are, 5 after all.
  it.each([0, 2, 5])('applies a weight edit at once while the dump is held (after %i chunks), keeps it, and the merged model is the kernel', async (steps) => {
    const { kernel, reader, clock, log, manager } = setup();
    manager.setDesired([desired(svc(80), pool(10))]);
    manager.start();
    await manager.idle();
    await holdResync(reader, clock);
    await reader.step(1 + steps);
    const edited = pool(10).map((d, i) => (i === 1 || i === 8 ? { ...d, weight: 3 } : d));
    manager.setDesired([desired(svc(80), edited)]);
    await settle();
    // In the kernel while the dump still waits.
    expect(reader.pending()).toBe(true);
    expect(weights(kernel, 80)).toEqual(expected(edited));
    reader.release();
    await manager.idle();
    // Not reverted by the resync that was running, not reported as drift.
    expect(weights(kernel, 80)).toEqual(expected(edited));
    expect(kernel.applied.filter((op) => op.op === 'set-dest')).toHaveLength(2);
    expect(driftLines(log)).toEqual([]);
    expect(errorLines(log)).toEqual([]);
    expect(manager.stats()).toMatchObject({ resyncs: 2, drift: 0, failedReconciles: 0 });
    await expectModelIsKernel(manager, kernel);
  });

  it('does not flip a weight back when it changes twice during the dump, the second time just before the merge', async () => {
    const { kernel, reader, clock, log, manager } = setup();
    manager.setDesired([desired(svc(80), pool(6))]);
    manager.start();
    await manager.idle();
    await holdResync(reader, clock);
    await reader.step(1);
    manager.setDesired([desired(svc(80), pool(6).map((d, i) => (i === 4 ? { ...d, weight: 1 } : d)))]);
    await settle();
    await reader.step(3); // dest(4) read with weight 1
    const last = pool(6).map((d, i) => (i === 4 ? { ...d, weight: 2 } : d));
    manager.setDesired([desired(svc(80), last)]);
    await settle();
    reader.release();
    await manager.idle();
    expect(weights(kernel, 80)).toEqual(expected(last));
    expect(kernel.applied.filter((op) => op.op === 'set-dest').map((op) => op.op === 'set-dest' && op.dest.weight)).toEqual([1, 2]);
    expect(driftLines(log)).toEqual([]);
    await expectModelIsKernel(manager, kernel);
  });

  it('still reports and repairs drift made by hand during the dump, and not pybal\'s own writes', async () => {
    const { kernel, reader, clock, log, manager } = setup();
    manager.setDesired([desired(svc(80), pool(10))]);
    manager.start();
    await manager.idle();
    await holdResync(reader, clock);
    await reader.step(2); // dest(0..1) read
    const entry = kernel.table.get(serviceKeyId(svc(80).key))!;
    // By hand: dest(8) (not read yet: this dump sees it) and dest(0) (read already: the next one does).
    entry.dests.set(destKeyId(dest(8)), dest(8, { weight: 99 }));
    entry.dests.set(destKeyId(dest(0)), dest(0, { weight: 77 }));
    // pybal's own edits, of a server read already and of one not read yet.
    const edited = pool(10).map((d, i) => (i === 1 || i === 6 ? { ...d, weight: 4 } : d));
    manager.setDesired([desired(svc(80), edited)]);
    await settle();
    reader.release();
    await manager.idle();
    expect(driftLines(log)).toEqual([
      '[pybal] WARN: IPVS drift: server TCP 192.0.2.1:80 -> 198.51.100.9:80 has route weight 99, expected route weight 10; repairing',
    ]);
    expect(kernel.dests(svc(80).key).find((d) => d.address === dest(8).address)?.weight).toBe(10);
    // The hand edit the dump had read past: found by the next resync.
    manager.resync();
    await manager.idle();
    expect(driftLines(log)).toHaveLength(2);
    expect(driftLines(log)[1]).toContain('198.51.100.1:80 has route weight 77, expected route weight 10');
    expect(weights(kernel, 80)).toEqual(expected(edited));
    await expectModelIsKernel(manager, kernel);
  });

  it('takes a server removed and one added, a service dropped and one named, during the dump, even where the removal made the dump skip a server', async () => {
    const { kernel, reader, clock, log, manager } = setup();
    manager.setDesired([desired(svc(80), pool(10)), desired(svc(82), pool(3))]);
    manager.start();
    await manager.idle();
    await holdResync(reader, clock);
    await reader.step(2); // the listing, then dest(0..1) of service 80
    // dest(0) goes (read already: the walk's next chunk starts one further on and skips dest(2)), dest(20) comes;
    // service 82 is dropped; service 81 is named (a reload).
    const next = [...pool(10).slice(1), dest(20)];
    manager.setDesired([desired(svc(80), next), desired(svc(81), pool(2))]);
    await settle();
    expect(weights(kernel, 80)).toEqual(expected(next));
    expect(kernel.table.has(serviceKeyId(svc(82).key))).toBe(false);
    expect(weights(kernel, 81)).toEqual(expected(pool(2)));
    reader.release();
    await manager.idle();
    // The dump did skip a server that was there all along.
    expect(reader.lastDests.get(serviceKeyId(svc(80).key))).not.toContain(destKeyId(dest(2)));
    expect(kernel.dests(svc(80).key).map((d) => destKeyId(d))).toContain(destKeyId(dest(2)));
    expect(errorLines(log)).toEqual([]);
    expect(manager.stats()).toMatchObject({ drift: 0, failedReconciles: 0, failedRequests: 0, resyncs: 2 });
    expect(weights(kernel, 80)).toEqual(expected(next));
    expect(weights(kernel, 81)).toEqual(expected(pool(2)));
    expect(kernel.table.has(serviceKeyId(svc(82).key))).toBe(false);
    expect(manager.isProgrammed(svc(81).key)).toBe(true);
    await expectModelIsKernel(manager, kernel);
  });

  it.each([true, false])('throws the dump away after a write fails during it; the retry dumps again after it ends (retry due before it ends: %s)', async (retryFirst) => {
    const { kernel, reader, clock, log, manager } = setup();
    manager.setDesired([desired(svc(80), pool(6))]);
    manager.start();
    await manager.idle();
    await holdResync(reader, clock);
    await reader.step(2);
    kernel.failNext = new IpvsError(105, 'socket', '', 'ENOBUFS'); // the outcome of the batch is unknown
    const edited = pool(6).map((d, i) => (i === 3 ? { ...d, weight: 5 } : d));
    manager.setDesired([desired(svc(80), edited)]);
    await settle();
    expect(manager.stats().failedReconciles).toBe(1);
    const listed = kernel.calls.listServices;
    if (retryFirst) {
      // The retry comes while the dump still runs: it waits for that dump before its own.
      await clock.advanceAsync(1000);
      await settle();
      expect(kernel.calls.listServices).toBe(listed);
      reader.release();
    } else {
      // The dump ends first: nothing to merge, and nothing keeps the manager busy until the retry.
      reader.release();
      await manager.idle();
      expect(manager.stats().resyncs).toBe(1);
      await clock.advanceAsync(1000);
    }
    await manager.idle();
    expect(kernel.calls.listServices).toBe(listed + 1);
    expect(weights(kernel, 80)).toEqual(expected(edited));
    // The dump of the failed run was not merged: one resync at start, one for the retry.
    expect(manager.stats()).toMatchObject({ resyncs: 2, drift: 0, lastError: undefined });
    expect(driftLines(log)).toEqual([]);
    await expectModelIsKernel(manager, kernel);
  });

  it('keeps the model and the writes going when the dump fails, and retries the resync after the backoff', async () => {
    const { kernel, reader, clock, log, manager } = setup();
    manager.setDesired([desired(svc(80), pool(6))]);
    manager.start();
    await manager.idle();
    await holdResync(reader, clock);
    reader.failNext = new IpvsError(110, 'IPVS_CMD_GET_DEST', 'TCP 192.0.2.1:80', 'no answer within 5000 ms');
    await reader.step(2);
    expect(manager.stats()).toMatchObject({ failedReconciles: 1, resyncs: 1 });
    expect(log.lines().filter((l) => l.includes('IPVS resync failed'))).toHaveLength(1);
    // An edit now costs its one write: no dump on the main socket.
    const listed = kernel.calls.listServices + kernel.calls.listDests;
    const edited = pool(6).map((d, i) => (i === 3 ? { ...d, weight: 5 } : d));
    manager.setDesired([desired(svc(80), edited)]);
    await settle();
    expect(weights(kernel, 80)).toEqual(expected(edited));
    expect(kernel.calls.listServices + kernel.calls.listDests).toBe(listed);
    reader.release();
    await clock.advanceAsync(1000);
    await manager.idle();
    expect(manager.stats()).toMatchObject({ resyncs: 2, drift: 0, lastError: undefined });
    expect(reader.listings).toBe(2);
    expect(clock.nextDeadline()).toBe(121_000); // the retry is spent; the periodic resync comes one period after the retry's dump
    await expectModelIsKernel(manager, kernel);
  });

  it('stop() during the dump waits for it and merges nothing', async () => {
    const { kernel, reader, clock, manager } = setup();
    manager.setDesired([desired(svc(80), pool(6))]);
    manager.start();
    await manager.idle();
    await holdResync(reader, clock);
    await reader.step(2);
    const edited = pool(6).map((d, i) => (i === 5 ? { ...d, weight: 0 } : d));
    manager.setDesired([desired(svc(80), edited)]);
    await settle();
    const ops = kernel.calls.ops;
    let stopped = false;
    const stopping = manager.stop().then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false);
    reader.release();
    await stopping;
    expect(kernel.calls.ops).toBe(ops);
    expect(manager.stats().resyncs).toBe(1);
    expect(clock.pendingCount()).toBe(0);
    expect(weights(kernel, 80)).toEqual(expected(edited));
  });

  it('runs one resync dump at a time: one asked for during another runs after it', async () => {
    const { kernel, reader, clock, manager } = setup();
    manager.setDesired([desired(svc(80), pool(4))]);
    manager.start();
    await manager.idle();
    await holdResync(reader, clock);
    manager.resync();
    manager.resync();
    await reader.step(3);
    expect(reader.listings).toBe(1);
    reader.release();
    await manager.idle();
    expect(reader.listings).toBe(2);
    expect(manager.stats()).toMatchObject({ resyncs: 3, drift: 0 });
    expect(kernel.calls.listServices).toBe(1); // the main socket dumped once, at start
  });

  it('in dry run says an edit during the dump once, writes nothing, and says it again after the resync (the model is the kernel)', async () => {
    const { kernel, reader, clock, log, manager } = setup({ dryRun: true });
    kernel.put(svc(80), pool(4));
    manager.setDesired([desired(svc(80), pool(4))]);
    manager.start();
    await manager.idle();
    await holdResync(reader, clock);
    await reader.step(2);
    manager.setDesired([desired(svc(80), pool(4).map((d, i) => (i === 0 ? { ...d, weight: 1 } : d)))]);
    await settle();
    expect(log.lines().filter((l) => l.includes('dry run: would'))).toHaveLength(1);
    reader.release();
    await manager.idle();
    expect(kernel.calls.apply).toBe(0);
    expect(log.lines().filter((l) => l.includes('dry run: would'))).toHaveLength(2);
    expect(driftLines(log)).toEqual([]);
  });

  it('deletes a leftover probe service it lists beside the writes, at the merge', async () => {
    const owned = (key: ServiceKey) => 'fwmark' in key && key.fwmark >= 1000;
    const { kernel, reader, clock, log, manager } = setup({ owns: owned });
    manager.setDesired([desired(svc(80), pool(3))]);
    manager.start();
    await manager.idle();
    // Left by an earlier run after our start (another pybal's crash, say): the next resync finds it.
    const leftover = { ...svc(0), key: { family: 4 as const, fwmark: 1001 } };
    kernel.put(leftover, [dest(1)]);
    await holdResync(reader, clock);
    manager.setDesired([desired(svc(80), pool(3).map((d) => ({ ...d, weight: 2 })))]);
    await settle();
    reader.release();
    await manager.idle();
    expect(kernel.table.has(serviceKeyId(leftover.key))).toBe(false);
    expect(weights(kernel, 80)).toEqual(expected(pool(3, 2)));
    expect(log.lines().filter((l) => l.includes('left by an earlier run'))).toHaveLength(1);
    expect(errorLines(log)).toEqual([]);
  });
});

type Server = { host: string; address: string; weight: number };

function config(port: number): ServiceConfig {
  return serviceConfig(`svc${port}`, '192.0.2.11', { scheduler: 'wrr', port, poolUrl: 'file:///etc/pybal/x' });
}

/** A service's desired state through the daemon's builder, as the daemon publishes it (patches). */
class Publisher {
  private readonly builder = new DesiredServiceBuilder();
  constructor(readonly service: ServiceConfig) {}
  publish(servers: Iterable<Server>): DesiredService {
    return this.builder.build(this.service, (visit) => {
      for (const s of servers) visit(s.host, s.address, s.weight);
    });
  }
}

/** What a pool wants in the kernel, as weights() says it (without asking the publisher, whose next patch would lose its base). */
function want(servers: ReadonlyMap<string, Server>): string[] {
  return [...servers.values()].map((s) => `${s.address}=${s.weight}`).sort();
}

describe('IpvsManager: random writes during resync dumps', () => {
  it.each([1, 2, 3])('keeps the kernel as desired, reports no drift of its own writes and needs no repair after (seed %i)', async (seed) => {
    const { kernel, reader, clock, log, manager } = setup({}, 3);
    const random = createRandomInt(seed);
    const publishers = [new Publisher(config(80)), new Publisher(config(443))];
    const pools = publishers.map(() => new Map<string, Server>());
    for (const servers of pools) for (let n = 0; n < 30; n++) servers.set(`mw${n}`, { host: `mw${n}`, address: `10.1.${n}.1`, weight: 10 });
    const publishAll = (): DesiredService[] => publishers.map((p, i) => p.publish(pools[i]!.values()));
    manager.setDesired(publishAll());
    manager.start();
    await manager.idle();
    let writesDuringDumps = 0;
    for (let round = 0; round < 6; round++) {
      await holdResync(reader, clock);
      while (reader.pending()) {
        // A few changes: weights, servers leaving, servers joining.
        const servers = pools[random(2)]!;
        for (let c = 1 + random(3); c > 0; c--) {
          const n = random(40);
          const roll = random(10);
          if (roll < 3) servers.delete(`mw${n}`);
          else servers.set(`mw${n}`, { host: `mw${n}`, address: `10.1.${n}.1`, weight: random(20) });
        }
        const ops = kernel.calls.ops;
        manager.setDesired(publishAll());
        await settle();
        writesDuringDumps += kernel.calls.ops - ops;
        // The writes are in the kernel, dump or no dump.
        publishers.forEach((p, i) => expect(weights(kernel, serviceKeyFromConfig(p.service)), `round ${round}`).toEqual(want(pools[i]!)));
        await reader.step(1 + random(3));
      }
      reader.held = false;
      await manager.idle();
      expect(manager.stats().failedReconciles, `round ${round}`).toBe(0);
    }
    expect(writesDuringDumps).toBeGreaterThan(20);
    expect(driftLines(log)).toEqual([]);
    expect(errorLines(log)).toEqual([]);
    expect(manager.stats()).toMatchObject({ drift: 0, failedRequests: 0, resyncs: 7 });
    await expectModelIsKernel(manager, kernel);
    publishers.forEach((p, i) => expect(weights(kernel, serviceKeyFromConfig(p.service))).toEqual(want(pools[i]!)));
  });
});
