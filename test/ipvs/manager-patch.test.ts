// The IPVS manager takes patches (DesiredService.patch, from
// DesiredServiceBuilder): one destination changed in a service of 20,000 is
// one request, with no dump and no diff of the others, and the kernel (here
// the in-memory one; the lab's bench:pools runs the daemon on the real one)
// ends up as desired whatever comes between: failures, hand edits, resyncs.
import { afterEach, describe, expect, it } from 'vitest';
import type { ServiceConfig } from '../../src/config/types.js';
import { destKeyId, serviceKeyId } from '../../src/ipvs/codec.js';
import { DesiredServiceBuilder, serviceKeyFromConfig } from '../../src/ipvs/desired.js';
import { IpvsError } from '../../src/ipvs/errors.js';
import { IpvsManager } from '../../src/ipvs/manager.js';
import type { DesiredService } from '../../src/ipvs/diff.js';
import { ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { serviceConfig } from '../support/config-fixtures.js';
import { FakeIpvsKernel } from './fake-kernel.js';
import { createRandomInt } from '../support/random.js';

type Server = { host: string; address: string; weight: number };

const managers: IpvsManager[] = [];
afterEach(async () => {
  for (const m of managers.splice(0)) await m.stop();
});

function setup() {
  const kernel = new FakeIpvsKernel();
  const clock = new ManualClock();
  const log = createMemoryLogger();
  const manager = new IpvsManager({ kernel, clock, logger: log.logger, resyncIntervalMs: 60_000, retryInitialMs: 10 });
  managers.push(manager);
  return { kernel, clock, log, manager };
}

function config(port: number): ServiceConfig {
  return serviceConfig(`svc${port}`, '192.0.2.11', { scheduler: 'wrr', port, poolUrl: 'file:///etc/pybal/x' });
}

/** A service's desired state through the daemon's builder, as the daemon publishes it. */
class Publisher {
  private readonly builder = new DesiredServiceBuilder();
  constructor(readonly service: ServiceConfig) {}
  publish(servers: readonly Server[]): DesiredService {
    return this.builder.build(this.service, (visit) => {
      for (const s of servers) visit(s.host, s.address, s.weight);
    });
  }
}

function pool(n: number, weight = 10): Server[] {
  return Array.from({ length: n }, (_, i) => ({ host: `mw${i}`, address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, weight }));
}

/** What the kernel has for a service: weight by destination id. */
function kernelWeights(kernel: FakeIpvsKernel, service: ServiceConfig): Map<string, number> {
  return new Map(kernel.dests(serviceKeyFromConfig(service)).map((d) => [destKeyId(d), d.weight]));
}

function wanted(d: DesiredService): Map<string, number> {
  return new Map(d.destinations.map((x) => [destKeyId(x), x.weight]));
}

describe('IpvsManager with patches', () => {
  it('applies one weight changed in a service of 20,000 as one request, without a dump, and a resync then finds no drift', async () => {
    const { kernel, manager, clock } = setup();
    const web = new Publisher(config(80));
    const servers = pool(20_000);
    manager.setDesired([web.publish(servers)]);
    manager.start();
    await manager.idle();
    expect(kernel.dests(serviceKeyFromConfig(web.service))).toHaveLength(20_000);
    const before = { ...kernel.calls };

    servers[12_000] = { ...servers[12_000]!, weight: 7 };
    const patched = web.publish(servers);
    expect(patched.patch?.set).toHaveLength(1);
    manager.setDesired([patched]);
    await manager.idle();
    expect(kernel.calls.apply - before.apply).toBe(1);
    expect(kernel.calls.ops - before.ops).toBe(1);
    expect(kernel.applied.at(-1)).toMatchObject({ op: 'set-dest', dest: { address: '10.0.46.224', weight: 7 } });
    expect(kernel.calls.listDests - before.listDests).toBe(0);
    expect(kernel.calls.listServices - before.listServices).toBe(0);
    expect(kernelWeights(kernel, web.service).get(destKeyId(patched.patch!.set[0]!))).toBe(7);

    // A server leaves, another joins: one del-dest and one new-dest.
    const next = [...servers.slice(1), { host: 'new', address: '10.200.0.1', weight: 3 }];
    manager.setDesired([web.publish(next)]);
    await manager.idle();
    expect(kernel.applied.slice(-2).map((op) => op.op)).toEqual(['del-dest', 'new-dest']);
    expect(kernelWeights(kernel, web.service)).toEqual(wanted(web.publish(next)));

    // The model the patches left is the kernel's: the periodic resync writes nothing and reports no drift.
    const ops = kernel.calls.ops;
    clock.advance(60_000);
    await manager.idle();
    expect(manager.stats()).toMatchObject({ drift: 0, resyncs: 2 });
    expect(kernel.calls.ops).toBe(ops);
  });

  it('keeps the map of destinations a rebuild hands over as its own: later patches change that map', async () => {
    const { kernel, manager } = setup();
    const web = new Publisher(config(80));
    const servers = pool(2_000);
    const first = web.publish(servers);
    expect(first.byId?.size).toBe(2_000);
    manager.setDesired([first]);
    manager.start();
    await manager.idle();
    expect(kernelWeights(kernel, web.service)).toEqual(wanted(first));
    const edited = servers.map((s, i) => (i === 7 ? { ...s, weight: 3 } : s));
    manager.setDesired([web.publish(edited)]);
    await manager.idle();
    expect(kernelWeights(kernel, web.service)).toEqual(wanted(web.publish(edited)));
    expect([...first.byId!.values()].find((d) => d.address === edited[7]!.address)?.weight).toBe(3);
  });

  it('refuses a patch with a bad destination as a whole, keeps the last good state, and takes the next good one', async () => {
    const { kernel, manager, log } = setup();
    const web = new Publisher(config(80));
    const servers = pool(5);
    manager.setDesired([web.publish(servers)]);
    manager.start();
    await manager.idle();
    // A weight the kernel cannot take (above 2^31 - 1) along with a good change.
    const bad = servers.map((s, i) => (i === 1 ? { ...s, weight: 2 ** 31 } : i === 2 ? { ...s, weight: 4 } : s));
    manager.setDesired([web.publish(bad)]);
    await manager.idle();
    expect(log.lines().some((l) => l.includes('ignoring the new state') && l.includes('weight 2147483648'))).toBe(true);
    expect(kernelWeights(kernel, web.service)).toEqual(wanted(web.publish(servers)));
    // Mended: its base is the refused one, which the manager does not have, so it goes whole.
    const good = servers.map((s, i) => (i === 2 ? { ...s, weight: 4 } : s));
    manager.setDesired([web.publish(good)]);
    await manager.idle();
    expect(kernelWeights(kernel, web.service)).toEqual(wanted(web.publish(good)));
  });

  it('ends with the kernel as desired after 300 random patches among failures, hand edits and resyncs', async () => {
    const { kernel, manager, clock } = setup();
    const random = createRandomInt(5);
    const publishers = [new Publisher(config(80)), new Publisher(config(443))];
    const pools = publishers.map(() => new Map(pool(50).map((s) => [s.host, s])));
    const publishAll = (): DesiredService[] => publishers.map((p, i) => p.publish([...pools[i]!.values()]));
    manager.setDesired(publishAll());
    manager.start();
    await manager.idle();
    let patchesSent = 0;
    for (let step = 0; step < 300; step++) {
      const servers = pools[random(2)]!;
      for (let c = 1 + random(3); c > 0; c--) {
        const n = random(70);
        const roll = random(30);
        // Each host has addresses of its own, but now and then takes one that others may have (a rebuild then).
        const address = roll === 0 ? `10.9.0.${random(3)}` : `10.1.${n}.${random(3)}`;
        if (roll < 8) servers.delete(`mw${n}`);
        else servers.set(`mw${n}`, { host: `mw${n}`, address, weight: random(6) });
      }
      const roll = random(20);
      if (roll === 0) kernel.failNext = new IpvsError(105, 'IPVS_CMD_SET_DEST', 'no buffer space'); // the whole batch fails
      if (roll === 1) {
        // Someone edits the kernel by hand: a destination's weight.
        const key = serviceKeyFromConfig(publishers[0]!.service);
        const entry = kernel.table.get(serviceKeyId(key));
        const first = entry && [...entry.dests.values()][0];
        if (first) entry.dests.set(destKeyId(first), { ...first, weight: first.weight + 100 });
      }
      const desired = publishAll();
      patchesSent += desired.filter((d) => d.patch !== undefined).length;
      manager.setDesired(desired);
      if (roll === 2) manager.resync();
      // Retries and resyncs come from the clock.
      clock.advance(random(3) === 0 ? 100 : 0);
      await manager.idle();
    }
    expect(patchesSent).toBeGreaterThan(200);
    // Failures and hand edits are mended at the latest by a resync; patches alone never leave the kernel wrong.
    clock.advance(120_000);
    await manager.idle();
    publishers.forEach((p, i) => expect(kernelWeights(kernel, p.service), p.service.name).toEqual(wanted(p.publish([...pools[i]!.values()]))));
  });

  it('keeps the kernel as desired after every step when nothing interferes: a patch alone is enough', async () => {
    const { kernel, manager } = setup();
    const random = createRandomInt(9);
    const web = new Publisher(config(80));
    const servers = new Map(pool(100).map((s) => [s.host, s]));
    manager.setDesired([web.publish([...servers.values()])]);
    manager.start();
    await manager.idle();
    const resyncs = manager.stats().resyncs;
    let patches = 0;
    for (let step = 0; step < 200; step++) {
      for (let c = 1 + random(4); c > 0; c--) {
        const n = random(120);
        const roll = random(40);
        const address = roll === 0 ? `10.9.0.${random(3)}` : `10.1.${n}.${random(3)}`;
        if (roll < 10) servers.delete(`mw${n}`);
        else servers.set(`mw${n}`, { host: `mw${n}`, address, weight: random(6) });
      }
      const d = web.publish([...servers.values()]);
      if (d.patch !== undefined) patches++;
      manager.setDesired([d]);
      await manager.idle();
      expect(kernelWeights(kernel, web.service), `step ${step}`).toEqual(wanted(d));
    }
    expect(patches).toBeGreaterThan(100);
    // No resync was needed for that (none came: the clock did not move).
    expect(manager.stats().resyncs).toBe(resyncs);
    expect(manager.stats().failedReconciles).toBe(0);
  });
});
