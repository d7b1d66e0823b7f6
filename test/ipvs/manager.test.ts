// The manager against an in-memory kernel (test/ipvs/fake-kernel.ts) and the
// manual clock. test/ipvs/lab.test.ts runs the same behaviour on the real kernel.
import { afterEach, describe, expect, it } from 'vitest';
import { destKeyId, serviceKeyId } from '../../src/ipvs/codec.js';
import { IpvsError } from '../../src/ipvs/errors.js';
import { IpvsManager, type IpvsManagerOptions } from '../../src/ipvs/manager.js';
import { ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { FakeIpvsKernel } from './fake-kernel.js';
import { bigTable, desired, dest, svc } from './fixtures.js';
import { countTurns } from '../support/turns.js';

const managers: IpvsManager[] = [];

function setup(options: Partial<IpvsManagerOptions> = {}) {
  const kernel = new FakeIpvsKernel();
  const clock = new ManualClock();
  const log = createMemoryLogger();
  const manager = new IpvsManager({ kernel, clock, logger: log.logger, resyncIntervalMs: 60_000, ...options });
  managers.push(manager);
  return { kernel, clock, log, manager };
}

afterEach(async () => {
  for (const m of managers.splice(0)) await m.stop();
});

describe('IpvsManager', () => {
  it('adopts a table that already matches without a single write, and leaves unmanaged services alone', async () => {
    const { kernel, manager, log } = setup();
    kernel.put(svc(80), [dest(1), dest(2)]);
    kernel.put(svc(443), [dest(9)]); // not ours
    manager.setDesired([desired(svc(80), [dest(1), dest(2)])]);
    manager.start();
    await manager.idle();
    expect(kernel.calls.apply).toBe(0);
    expect(manager.stats()).toMatchObject({ requests: 0, resyncs: 1, reconciles: 1 });
    expect(kernel.dests(svc(443).key)).toHaveLength(1);
    expect(log.lines().filter((l) => l.includes('IPVS:'))).toEqual([]);
  });

  it('adopts the kernel table also when the desired state arrives after start (as the daemon does), and for a service added later', async () => {
    const { kernel, manager, log } = setup();
    kernel.put(svc(80), [dest(1), dest(2)]);
    kernel.put(svc(443), [dest(1)]);
    manager.start();
    await manager.idle();
    manager.setDesired([desired(svc(80), [dest(1), dest(2)])]);
    await manager.idle();
    manager.setDesired([desired(svc(80), [dest(1), dest(2)]), desired(svc(443), [dest(1), dest(2)])]);
    await manager.idle();
    // Only the one missing server is added; nothing already there is added again (EEXIST).
    expect(kernel.applied.map((op) => op.op)).toEqual(['new-dest']);
    expect(manager.stats()).toMatchObject({ requests: 1, failedRequests: 0, failedReconciles: 0 });
    expect(log.lines().filter((l) => l.includes('ERROR'))).toEqual([]);
  });

  it('services named one after another after start cost no listing of every service each, and the kernel\'s own are still adopted', async () => {
    const { kernel, manager, log } = setup();
    kernel.put(svc(90), [dest(1)]);
    manager.start();
    await manager.idle();
    const listed = kernel.calls.listServices;
    const named: ReturnType<typeof desired>[] = [];
    for (let port = 101; port <= 140; port++) {
      named.push(desired(svc(port), [dest(1), dest(2)]));
      if (port === 120) named.push(desired(svc(90), [dest(1), dest(2)]));
      manager.setDesired([...named]);
      await manager.idle();
    }
    expect(kernel.calls.listServices).toBe(listed);
    // svc 90 was the kernel's already: adopted (one server added), not created again.
    expect(kernel.applied.filter((op) => op.op === 'new-service')).toHaveLength(40);
    expect(kernel.dests(svc(90).key)).toHaveLength(2);
    expect(log.lines().filter((l) => l.includes('ERROR'))).toEqual([]);
    // A service created by hand meanwhile: our add fails (EEXIST), and the full resync adopts it.
    kernel.put(svc(200), [dest(1)]);
    manager.setDesired([...named, desired(svc(200), [dest(1), dest(3)])]);
    await manager.idle();
    await manager.idle();
    expect(kernel.dests(svc(200).key)).toHaveLength(2);
  });

  it('told which services a publish added or replaced, looks at those only, and ends with the same kernel table as with the whole set', async () => {
    const run = async (incremental: boolean) => {
      const { kernel, manager, log } = setup();
      kernel.put(svc(90), [dest(1), dest(5)]); // the kernel's before start: adopted, its extra server removed
      manager.start();
      await manager.idle();
      const named: ReturnType<typeof desired>[] = [];
      const publish = (changed: ReturnType<typeof desired>[]) => {
        for (const c of changed) {
          const i = named.findIndex((n) => 'port' in n.key && 'port' in c.key && n.key.port === c.key.port);
          if (i >= 0) named[i] = c;
          else named.push(c);
        }
        manager.setDesired([...named], incremental ? changed : undefined);
      };
      for (let port = 90; port < 100; port++) {
        publish([desired(svc(port), [dest(1), dest(2)])]);
        if (port % 3 === 0) await manager.idle();
      }
      await manager.idle();
      // A weight edit and a server leaving, in the same publish, on two services.
      publish([desired(svc(91), [dest(1), dest(2, { weight: 7 })]), desired(svc(95), [dest(2)])]);
      await manager.idle();
      // An empty change list changes nothing and costs no reconcile.
      const reconciles = manager.stats().reconciles;
      manager.setDesired([...named], incremental ? [] : undefined);
      await manager.idle();
      if (incremental) expect(manager.stats().reconciles).toBe(reconciles);
      for (let port = 90; port < 100; port++) expect(manager.isProgrammed(svc(port).key), `port ${port}`).toBe(true);
      expect(log.lines().filter((l) => l.includes('ERROR'))).toEqual([]);
      return Array.from({ length: 10 }, (_, i) => kernel.dests(svc(90 + i).key).map((d) => `${d.address}:${d.weight}`).sort());
    };
    const whole = await run(false);
    expect(await run(true)).toEqual(whole);
    expect(whole[1]).toEqual([`${dest(1).address}:10`, `${dest(2).address}:7`]);
    expect(whole[5]).toEqual([`${dest(2).address}:10`]);
    expect(whole[0]).toEqual([`${dest(1).address}:10`, `${dest(2).address}:10`]);
  });

  it('adopts a table that differs by editing in place: never deletes and re-creates a service', async () => {
    const { kernel, manager } = setup();
    kernel.put(svc(80, { scheduler: 'rr' }), [dest(1), dest(2, { weight: 5 }), dest(3)]);
    manager.setDesired([desired(svc(80), [dest(1), dest(2), dest(4)])]);
    manager.start();
    await manager.idle();
    expect(kernel.applied.map((op) => op.op)).toEqual(['set-service', 'del-dest', 'set-dest', 'new-dest']);
    expect(kernel.dests(svc(80).key).map((d) => [d.address, d.weight])).toEqual([
      ['198.51.100.2', 10],
      ['198.51.100.3', 10],
      ['198.51.100.5', 10],
    ]);
  });

  it('costs one request and no dump for one server changing in a table of 10,000', async () => {
    const { kernel, manager, log } = setup();
    const table = bigTable(100, 100);
    manager.setDesired(table);
    manager.start();
    await manager.idle();
    expect(kernel.calls.ops).toBe(100 + 100 * 100);
    // Ten thousand changes: a summary at info, each one at debug.
    expect(log.lines().filter((l) => l.startsWith('[pybal] INFO'))).toEqual(['[pybal] INFO: IPVS: applied 10100 of 10100 changes (100 new-service, 10000 new-dest)']);
    const dumps = kernel.calls.listServices + kernel.calls.listDests;
    const changed = table.map((s, i) => (i === 42 ? { ...s, destinations: s.destinations.map((d, j) => (j === 7 ? { ...d, weight: 0 } : d)) } : s));
    manager.setDesired(changed);
    await manager.idle();
    expect(kernel.calls.ops).toBe(100 + 100 * 100 + 1);
    expect(kernel.applied.at(-1)).toMatchObject({ op: 'set-dest', dest: { weight: 0, address: '198.51.100.8' } });
    expect(kernel.calls.listServices + kernel.calls.listDests).toBe(dumps);
  });

  it('works through a large table in slices, other events running between them, and ends with the model the kernel has', async () => {
    // A budget of 0: every look at the clock ends a slice, so the slices do not depend on this host's speed.
    const { kernel, manager } = setup({ slicing: { budgetMs: 0 } });
    const table = bigTable(3, 20_000);
    const turns = countTurns();
    manager.setDesired(table);
    manager.start();
    await manager.idle();
    const afterFirst = turns.count();
    expect(kernel.calls.ops).toBe(3 + 60_000);
    // One server of the second service goes; one of the third changes weight: two requests, after a diff of 60,000 in slices.
    const changed = table.map((s, i) =>
      i === 1 ? { ...s, destinations: s.destinations.slice(1) } : i === 2 ? { ...s, destinations: s.destinations.map((d, j) => (j === 19_999 ? { ...d, weight: 3 } : d)) } : s,
    );
    manager.setDesired(changed);
    await manager.idle();
    turns.stop();
    expect(kernel.applied.slice(-2).map((op) => op.op)).toEqual(['del-dest', 'set-dest']);
    expect(kernel.calls.ops).toBe(3 + 60_000 + 2);
    // The event loop turned during both reconciles, not only around them.
    expect(afterFirst).toBeGreaterThan(10);
    expect(turns.count() - afterFirst).toBeGreaterThan(10);
    // The model after the slices is the kernel's: a resync finds no drift and writes nothing.
    manager.resync();
    await manager.idle();
    expect(manager.stats()).toMatchObject({ drift: 0, failedReconciles: 0 });
    expect(kernel.calls.ops).toBe(3 + 60_000 + 2);
  });

  it('compares a large table with the kernel for drift in slices at a resync, and still reports and repairs the drift', async () => {
    const { kernel, manager, log } = setup({ slicing: { budgetMs: 0 } });
    const table = bigTable(2, 20_000);
    manager.setDesired(table);
    manager.start();
    await manager.idle();
    // By hand: the last server of the second service to weight 3.
    const id = serviceKeyId(svc(1001).key);
    const last = dest(19_999);
    kernel.table.get(id)!.dests.set(destKeyId(last), { ...last, weight: 3 });
    const ops = kernel.calls.ops;
    const drift = (): string[] => log.lines().filter((l) => l.includes('IPVS drift'));
    manager.resync();
    // The in-memory kernel answers the dump at once: the turns before the drift is said are the comparison's.
    let turnsBefore = 0;
    while (drift().length === 0 && turnsBefore < 10_000) {
      await new Promise((resolve) => setImmediate(resolve));
      turnsBefore++;
    }
    await manager.idle();
    expect(drift()).toEqual([expect.stringMatching(/198\.51\.179\.250:80 has .*weight 3.*expected .*weight 10/)]);
    expect(turnsBefore).toBeGreaterThan(10);
    // Repaired with one request, and nothing else touched.
    expect(kernel.calls.ops).toBe(ops + 1);
    expect(kernel.table.get(id)!.dests.get(destKeyId(last))?.weight).toBe(10);
    expect(manager.stats()).toMatchObject({ drift: 1, failedReconciles: 0 });
  });

  it('keeps its own object of each server a resync finds as it was, and takes the kernel\'s where it differs', async () => {
    const { kernel, manager, log } = setup();
    manager.setDesired([desired(svc(80), [dest(1), dest(2), dest(3)])]);
    manager.start();
    await manager.idle();
    const added = new Map(kernel.applied.filter((op) => op.op === 'new-dest').map((op) => [op.dest.address, op.dest]));
    expect(added.size).toBe(3);
    // By hand, server 3 gets a tunnel port: no matter for direct routing (no drift, no write), but not the model's.
    const id = serviceKeyId(svc(80).key);
    kernel.table.get(id)!.dests.set(destKeyId(dest(3)), { ...dest(3), tunnelPort: 4789 });
    const ops = kernel.calls.ops;
    manager.resync();
    await manager.idle();
    manager.resync();
    await manager.idle();
    expect(kernel.calls.ops).toBe(ops);
    expect(log.lines().filter((l) => l.includes('IPVS drift'))).toEqual([]);
    // A weight edit of each server says what the model had: for servers 1 and 2 the very object it
    // wrote (each resync dumped a new one, equal to it), for server 3 the kernel's.
    manager.setDesired([desired(svc(80), [dest(1, { weight: 7 }), dest(2, { weight: 7 }), dest(3, { weight: 7 })])]);
    await manager.idle();
    const before = new Map(kernel.applied.slice(-3).map((op) => [op.op === 'set-dest' ? op.dest.address : op.op, op.op === 'set-dest' ? op.before : undefined]));
    expect([...before.keys()]).toEqual([dest(1).address, dest(2).address, dest(3).address]);
    expect(before.get(dest(1).address)).toBe(added.get(dest(1).address));
    expect(before.get(dest(2).address)).toBe(added.get(dest(2).address));
    expect(before.get(dest(3).address)).not.toBe(added.get(dest(3).address));
    expect(before.get(dest(3).address)).toMatchObject({ weight: 10, tunnelPort: 4789 });
    expect([...kernel.table.get(id)!.dests.values()].map((d) => d.weight)).toEqual([7, 7, 7]);
  });

  it('writes the lines of a large apply (a server each at debug, the errors, a dry run) in slices, the summary after them', async () => {
    // Each look at the clock ends a slice: a turn writes a few lines at most.
    let nowMs = 0;
    const slicing = { budgetMs: 0, now: () => (nowMs += 1) };
    const linesPerTurn = (log: ReturnType<typeof setup>['log']) => {
      const counts: number[] = [];
      let seen = 0;
      let counting = true;
      const tick = (): void => {
        const n = log.records().length;
        counts.push(n - seen);
        seen = n;
        if (counting) setImmediate(tick);
      };
      setImmediate(tick);
      // What was written since the last turn counts as one more.
      return {
        stop: () => {
          counting = false;
          counts.push(log.records().length - seen);
          return counts;
        },
      };
    };
    const servers = Array.from({ length: 500 }, (_, i) => dest(i));
    for (const dryRun of [false, true]) {
      const { kernel, manager, log } = setup({ slicing, dryRun });
      // Two servers the kernel refuses: their errors are said one by one, in order with the rest.
      const refused = new Set([servers[7]!.address, servers[300]!.address]);
      kernel.refuse = (op) => (op.op === 'new-dest' && refused.has(op.dest.address) ? 22 : 0);
      manager.setDesired([desired(svc(80), servers)]);
      const perTurn = linesPerTurn(log);
      manager.start();
      await manager.idle();
      const counts = perTurn.stop();
      const lines = log.lines();
      const each = lines.filter((l) => (dryRun ? /dry run: would add server/ : /IPVS: (add server|could not add server)/).test(l));
      expect(each).toHaveLength(500);
      expect(each.map((l) => /-> ([\d.]+):80/.exec(l)?.[1])).toEqual(servers.map((d) => d.address));
      if (!dryRun) {
        expect(each.filter((l) => l.includes('ERROR: IPVS: could not add server'))).toHaveLength(2);
        const summary = lines.findIndex((l) => l.includes('IPVS: applied 499 of 501 changes'));
        expect(summary).toBeGreaterThan(lines.indexOf(each.at(-1)!));
      }
      expect(counts.length).toBeGreaterThan(100);
      expect(Math.max(...counts)).toBeLessThanOrEqual(8);
    }
  });

  it('finds a server deleted behind its back at the next resync, logs it and puts it back', async () => {
    const { kernel, manager, clock, log } = setup();
    manager.setDesired([desired(svc(80), [dest(1), dest(2)])]);
    manager.start();
    await manager.idle();
    kernel.table.get('tcp/4/192.0.2.1/80')?.dests.delete('4/198.51.100.3/80'); // ipvsadm -d by hand
    kernel.put(svc(80, { scheduler: 'rr' }), kernel.dests(svc(80).key)); // ipvsadm -E -s rr by hand
    const before = kernel.calls.ops;
    await clock.advanceAsync(60_000);
    await manager.idle();
    expect(kernel.calls.ops - before).toBe(2);
    expect(kernel.dests(svc(80).key)).toHaveLength(2);
    expect(manager.stats().drift).toBe(2);
    const drift = log.lines().filter((l) => l.includes('drift'));
    expect(drift).toEqual([
      '[pybal] WARN: IPVS drift: service TCP 192.0.2.1:80 has scheduler rr, expected scheduler wrr; repairing',
      '[pybal] WARN: IPVS drift: server TCP 192.0.2.1:80 -> 198.51.100.3:80 is missing from the kernel; repairing',
    ]);
  });

  it('resyncs less often when two dumps in a row take more than 1/20 of the interval, from the second one\'s start, says so once, and goes back when one is quick', async () => {
    const { manager, clock, kernel, log } = setup();
    manager.setDesired([desired(svc(80), [dest(1)])]);
    // Each dump of the destinations takes 5 s of the clock (a service of 40,000 in a slow guest).
    let dumpMs = 5_000;
    const listDests = kernel.listDests.bind(kernel);
    kernel.listDests = (key) => new Promise((resolve, reject) => clock.setTimeout(() => listDests(key).then(resolve, reject), dumpMs));
    manager.start();
    await manager.idle();
    expect(manager.stats().resyncs).toBe(1); // an empty kernel: nothing to dump
    // The first periodic resync dumps the service (5 s): one slow dump after a quick one does not stretch the period.
    await clock.advanceAsync(60_000);
    await clock.advanceAsync(5_000);
    await manager.idle();
    expect(manager.stats().resyncs).toBe(2);
    expect(clock.nextDeadline()).toBe(120_000);
    expect(log.lines().filter((l) => l.includes('instead of every'))).toEqual([]);
    // The second 5 s dump in a row does: the next comes 100 s after this one started.
    await clock.advanceAsync(55_000);
    await clock.advanceAsync(5_000);
    await manager.idle();
    expect(manager.stats().resyncs).toBe(3);
    expect(clock.nextDeadline()).toBe(220_000);
    expect(log.lines().filter((l) => l.includes('IPVS: a full resync took 5000 ms: resyncing every 100.0 s instead of every 60 s'))).toHaveLength(1);
    // A quick dump: back to 60 s at once, said once.
    dumpMs = 10;
    await clock.advanceAsync(94_990);
    expect(manager.stats().resyncs).toBe(3);
    await clock.advanceAsync(20);
    await manager.idle();
    expect(manager.stats().resyncs).toBe(4);
    expect(clock.nextDeadline()).toBe(280_000);
    expect(log.lines().filter((l) => l.includes('IPVS: resyncing every 60 s again'))).toHaveLength(1);
    expect(log.lines().filter((l) => l.includes('instead of every'))).toHaveLength(1);
  });

  it('starts no periodic resync while one dumps, and one dump held up by other work does not push the next away', async () => {
    const { manager, clock, kernel, log } = setup();
    manager.setDesired([desired(svc(80), [dest(1)])]);
    // The first periodic dump is held up for 200 s (it overlapped a long
    // write of a large table on a slow machine); the ones after are quick.
    let dumpMs = 200_000;
    let dumps = 0;
    const listDests = kernel.listDests.bind(kernel);
    kernel.listDests = (key) => {
      dumps++;
      return new Promise((resolve, reject) => clock.setTimeout(() => listDests(key).then(resolve, reject), dumpMs));
    };
    manager.start();
    await manager.idle();
    await clock.advanceAsync(60_000);
    expect(dumps).toBe(1);
    dumpMs = 10;
    // Three periods pass while it dumps: none starts a dump of its own, nor queues one.
    await clock.advanceAsync(199_000);
    expect(dumps).toBe(1);
    expect(manager.stats().resyncs).toBe(1);
    // Merged at 260 s. Its period is over: the next starts at once, not 20 x 200 s later.
    await clock.advanceAsync(1_000);
    expect(manager.stats().resyncs).toBe(2);
    expect(dumps).toBe(2);
    await clock.advanceAsync(10);
    await manager.idle();
    expect(manager.stats().resyncs).toBe(3);
    expect(clock.nextDeadline()).toBe(320_000);
    expect(log.lines().filter((l) => l.includes('instead of every'))).toEqual([]);
  });

  it('starts no periodic resync while the last one\'s repair is still being written', async () => {
    const { manager, clock, kernel, log } = setup();
    manager.setDesired([desired(svc(80), [dest(1), dest(2)])]);
    let dumps = 0;
    const listDests = kernel.listDests.bind(kernel);
    kernel.listDests = (key) => {
      dumps++;
      return listDests(key);
    };
    manager.start();
    await manager.idle();
    // By hand: a server deleted. The next resync finds it; its repair waits on the kernel for two periods.
    kernel.table.get('tcp/4/192.0.2.1/80')?.dests.delete('4/198.51.100.3/80');
    let open = (): void => undefined;
    kernel.gate = new Promise((r) => (open = r));
    await clock.advanceAsync(60_000);
    expect(dumps).toBe(1);
    expect(manager.stats().drift).toBe(1);
    await clock.advanceAsync(120_000);
    expect(dumps).toBe(1);
    kernel.gate = undefined;
    open();
    await manager.idle();
    expect(kernel.dests(svc(80).key)).toHaveLength(2);
    // Resyncs go on once it is written.
    await clock.advanceAsync(60_000);
    await manager.idle();
    expect(dumps).toBe(2);
    expect(manager.stats()).toMatchObject({ resyncs: 3, drift: 1 });
    expect(log.lines().filter((l) => l.includes('drift'))).toHaveLength(1);
  });

  it('takes a new resync interval at once: the next resync comes one new period later', async () => {
    const { manager, clock } = setup();
    manager.setDesired([desired(svc(80), [dest(1)])]);
    manager.start();
    await manager.idle();
    expect(manager.stats().resyncs).toBe(1);
    await clock.advanceAsync(20_000);
    manager.setResyncInterval(5_000); // a SIGHUP with ipvs-resync-interval = 5
    expect(clock.nextDeadline()).toBe(25_000);
    await clock.advanceAsync(4_999);
    await manager.idle();
    expect(manager.stats().resyncs).toBe(1);
    await clock.advanceAsync(1);
    await manager.idle();
    expect(manager.stats().resyncs).toBe(2);
    await clock.advanceAsync(5_000);
    await manager.idle();
    expect(manager.stats().resyncs).toBe(3);
    manager.setResyncInterval(5_000); // unchanged: the phase stays
    expect(clock.nextDeadline()).toBe(35_000);
  });

  it('coalesces triggers that arrive during a reconcile into one more run', async () => {
    const { kernel, manager } = setup();
    manager.start();
    await manager.idle();
    let open!: () => void;
    kernel.gate = new Promise((r) => (open = r));
    manager.setDesired([desired(svc(80), [dest(1)])]);
    await new Promise((r) => setImmediate(r));
    for (let w = 1; w <= 5; w++) manager.setDesired([desired(svc(80), [dest(1, { weight: w })])]);
    const before = manager.stats().reconciles;
    kernel.gate = undefined;
    open();
    await manager.idle();
    expect(manager.stats().reconciles - before).toBe(2);
    expect(kernel.calls.apply).toBe(2);
    expect(kernel.dests(svc(80).key)[0]?.weight).toBe(5);
  });

  it('surfaces kernel errors as typed errors, applies the rest, and retries with backoff without stopping', async () => {
    const { kernel, manager, clock, log } = setup({ retryInitialMs: 1000, retryMaxMs: 4000 });
    manager.setDesired([desired(svc(80, { scheduler: 'nosuch' }), [dest(1)]), desired(svc(81), [dest(1)])]);
    manager.start();
    await manager.idle();
    // Service 81 went in; 80 failed (ENOENT) and so did its server (ESRCH).
    expect(kernel.dests(svc(81).key)).toHaveLength(1);
    expect(manager.stats()).toMatchObject({ failedReconciles: 1, failedRequests: 2 });
    expect(log.lines().some((l) => l.includes('could not add service TCP 192.0.2.1:80') && l.includes('IPVS_CMD_NEW_SERVICE TCP 192.0.2.1:80: ENOENT'))).toBe(true);
    expect(clock.nextDeadline()).toBe(1000);
    await clock.advanceAsync(1000);
    await manager.idle();
    expect(clock.nextDeadline()).toBe(1000 + 2000);
    await clock.advanceAsync(2000);
    await manager.idle();
    await clock.advanceAsync(4000);
    await manager.idle();
    expect(clock.nextDeadline()).toBe(7000 + 4000); // capped
    expect(manager.stats().failedReconciles).toBe(4);
    // The operator fixes the configuration a while after the last failure: it
    // is applied at once (within a retryInitialMs of a failure it would wait
    // for the scheduled retry), and the retries stop.
    await clock.advanceAsync(1000);
    manager.setDesired([desired(svc(80), [dest(1)]), desired(svc(81), [dest(1)])]);
    await manager.idle();
    expect(kernel.dests(svc(80).key)).toHaveLength(1);
    expect(manager.stats().lastError).toBeUndefined();
    expect(clock.nextDeadline()).toBe(68_000); // the retry is cancelled; only the periodic resync is left, one period after this full reconcile's dump
    expect(manager.stats().failedReconciles).toBe(4);
  });

  it('holds a change queued during a failing reconcile for the scheduled retry', async () => {
    const { kernel, manager, clock, log } = setup({ retryInitialMs: 1000 });
    kernel.failNext = new IpvsError(2, 'CTRL_CMD_GETFAMILY', 'IPVS', 'no IPVS');
    manager.setDesired([desired(svc(80), [dest(1)])]);
    manager.start();
    // Queued while the first reconcile is still running.
    manager.setDesired([desired(svc(80), [dest(1), dest(2)])]);
    await manager.idle();
    expect(manager.stats()).toMatchObject({ reconciles: 1, failedReconciles: 1 });
    expect(log.lines().filter((l) => l.includes('IPVS reconcile failed'))).toHaveLength(1);
    await clock.advanceAsync(1000);
    await manager.idle();
    expect(manager.stats()).toMatchObject({ reconciles: 2, failedReconciles: 1 });
    expect(kernel.dests(svc(80).key)).toHaveLength(2);
  });

  it('holds changes that arrive right after a failure for the scheduled retry', async () => {
    const { kernel, manager, clock, log } = setup({ retryInitialMs: 1000 });
    kernel.failNext = new IpvsError(2, 'CTRL_CMD_GETFAMILY', 'IPVS', 'no IPVS');
    manager.setDesired([desired(svc(80), [dest(1)])]);
    manager.start();
    await manager.idle();
    expect(manager.stats().failedReconciles).toBe(1);
    // A burst of changes within the next second runs nothing...
    for (let i = 2; i <= 5; i++) {
      manager.setDesired([desired(svc(80), [dest(1), dest(i)])]);
      await manager.idle();
    }
    expect(manager.stats().reconciles).toBe(1);
    expect(log.lines().filter((l) => l.includes('IPVS reconcile failed'))).toHaveLength(1);
    // ...and the retry applies the latest state.
    await clock.advanceAsync(1000);
    await manager.idle();
    expect(manager.stats()).toMatchObject({ reconciles: 2, failedReconciles: 1 });
    expect(kernel.dests(svc(80).key).map((d) => d.address).sort()).toEqual([dest(1).address, dest(5).address].sort());
  });

  it('survives a failing transport (dump error), then recovers from a fresh dump', async () => {
    const { kernel, manager, clock } = setup({ retryInitialMs: 500 });
    kernel.failNext = new IpvsError(105, 'socket', '', 'ENOBUFS');
    manager.setDesired([desired(svc(80), [dest(1)])]);
    manager.start();
    await manager.idle();
    expect(manager.stats()).toMatchObject({ failedReconciles: 1, lastError: 'socket : ENOBUFS (ENOBUFS)' });
    await clock.advanceAsync(500);
    await manager.idle();
    expect(kernel.dests(svc(80).key)).toHaveLength(1);
    expect(manager.stats().lastError).toBeUndefined();
  });

  it('deletes a service dropped from the configuration, only if it was ours', async () => {
    const { kernel, manager } = setup();
    kernel.put(svc(443), [dest(9)]);
    manager.setDesired([desired(svc(80), [dest(1)]), desired(svc(81), [dest(1)])]);
    manager.start();
    await manager.idle();
    manager.setDesired([desired(svc(80), [dest(1)])]);
    await manager.idle();
    expect([...kernel.table.keys()].sort()).toEqual(['tcp/4/192.0.2.1/443', 'tcp/4/192.0.2.1/80']);
    expect(kernel.applied.at(-1)).toEqual({ op: 'del-service', key: svc(81).key });
  });

  it('in dry run reads the kernel, logs what it would do and writes nothing', async () => {
    const { kernel, manager, log } = setup({ dryRun: true });
    kernel.put(svc(80), [dest(1, { weight: 3 })]);
    manager.setDesired([desired(svc(80), [dest(1)]), desired(svc(81), [])]);
    manager.start();
    await manager.idle();
    expect(kernel.calls.apply).toBe(0);
    expect(kernel.calls.listServices).toBe(1);
    expect(log.lines().filter((l) => l.includes('dry run'))).toEqual([
      '[pybal] INFO: dry run: would edit server TCP 192.0.2.1:80 -> 198.51.100.2:80: route weight 3 => route weight 10',
      '[pybal] INFO: dry run: would add service TCP 192.0.2.1:81 scheduler wrr',
    ]);
  });

  it('in dry run says each change once: a later change does not repeat the earlier ones', async () => {
    const { kernel, manager, log } = setup({ dryRun: true });
    kernel.put(svc(80), [dest(1), dest(2), dest(3)]);
    manager.start();
    await manager.idle();
    manager.setDesired([desired(svc(80), [dest(1), dest(2)])]);
    await manager.idle();
    manager.setDesired([desired(svc(80), [dest(1)])]);
    await manager.idle();
    expect(kernel.calls.apply).toBe(0);
    expect(log.lines().filter((l) => l.includes('dry run'))).toEqual([
      '[pybal] INFO: dry run: would delete server TCP 192.0.2.1:80 -> 198.51.100.4:80',
      '[pybal] INFO: dry run: would delete server TCP 192.0.2.1:80 -> 198.51.100.3:80',
    ]);
    expect(manager.stats()).toMatchObject({ requests: 2, drift: 0 });
  });

  it('refuses a bad desired state before the kernel sees it, keeping the last good one', async () => {
    const { kernel, manager, log } = setup();
    manager.setDesired([desired(svc(80), [dest(1)]), desired(svc(81), [dest(1)])]);
    manager.start();
    await manager.idle();
    const ops = kernel.calls.ops;
    manager.setDesired([desired(svc(80), [dest(1, { weight: -1 })]), desired(svc(81), [dest(1, { weight: 4 })]), desired(svc(82, { scheduler: 'w r r' }), [])]);
    await manager.idle();
    expect(kernel.calls.ops - ops).toBe(1);
    expect(kernel.dests(svc(80).key)[0]?.weight).toBe(10);
    expect(kernel.dests(svc(81).key)[0]?.weight).toBe(4);
    expect(kernel.table.has('tcp/4/192.0.2.1/82')).toBe(false);
    expect(log.lines().filter((l) => l.includes('ignoring'))).toEqual([
      '[pybal] ERROR: IPVS: ignoring the new state of TCP 192.0.2.1:80: service tcp 192.0.2.1:80: server 198.51.100.2: weight -1 is not an integer in 0..2147483647',
      '[pybal] ERROR: IPVS: ignoring the new state of TCP 192.0.2.1:82: service tcp 192.0.2.1:82: scheduler "w r r" is not a scheduler name',
    ]);
  });

  it('matches IPv6 addresses whatever their spelling', async () => {
    const { kernel, manager } = setup();
    const v6 = svc(443, { key: { family: 6, protocol: 'tcp', address: '2001:db8::1', port: 443 }, netmask: 128 });
    kernel.put(v6, [dest(0, { family: 6, address: '2001:db8::6' })]);
    manager.setDesired([
      desired({ ...v6, key: { ...v6.key, address: '2001:DB8:0:0::1' } }, [dest(0, { family: 6, address: '2001:0db8::0:6' })]),
    ]);
    manager.start();
    await manager.idle();
    expect(kernel.calls.apply).toBe(0);
  });

  it('stops cleanly: no timers left, no reconcile after stop', async () => {
    const { kernel, manager, clock } = setup();
    manager.setDesired([desired(svc(80), [dest(1)])]);
    manager.start();
    await manager.idle();
    await manager.stop();
    expect(clock.pendingCount()).toBe(0);
    manager.setDesired([]);
    await manager.idle();
    expect(kernel.table.size).toBe(1);
  });

  it('says when services become programmed (adopted or written), per service, and forgets one no longer desired', async () => {
    let events = 0;
    const { kernel, manager } = setup({ onProgrammed: () => events++ });
    kernel.put(svc(80), [dest(1)]);
    manager.start();
    await manager.idle();
    expect(manager.isProgrammed(svc(80).key)).toBe(false); // not desired yet
    manager.setDesired([desired(svc(80), [dest(1)])]);
    expect(manager.isProgrammed(svc(80).key)).toBe(false); // desired, not reconciled yet
    await manager.idle();
    expect(manager.isProgrammed(svc(80).key)).toBe(true); // adopted
    expect(events).toBe(1);

    // A service added later with a scheduler the kernel refuses is never programmed; the other one is, at once.
    manager.setDesired([desired(svc(80), [dest(1)]), desired(svc(443), [dest(1)]), desired(svc(8080, { scheduler: 'nope' }), [dest(1)])]);
    expect(manager.isProgrammed(svc(443).key)).toBe(false);
    await manager.idle();
    expect(kernel.table.size).toBe(2);
    expect(manager.isProgrammed(svc(443).key)).toBe(true);
    expect(manager.isProgrammed(svc(8080).key)).toBe(false);
    expect(events).toBe(2);

    // A failing reconcile later does not take it back: the kernel still has it.
    kernel.failNext = new IpvsError(5, 'IPVS_CMD_GET_SERVICE', 'dump');
    manager.resync();
    await manager.idle();
    expect(manager.stats().failedReconciles).toBeGreaterThan(0);
    expect(manager.isProgrammed(svc(443).key)).toBe(true);

    manager.setDesired([desired(svc(80), [dest(1)])]);
    expect(manager.isProgrammed(svc(443).key)).toBe(false);
  });

  it('applies a change that arrives while a new service is being adopted (its dump in flight)', async () => {
    const { kernel, manager } = setup();
    kernel.put(svc(80), [dest(1), dest(2)]);
    manager.start();
    await manager.idle();
    // The next dump of the service's servers waits until we let it go.
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const listDests = kernel.listDests.bind(kernel);
    kernel.listDests = async (key) => {
      await gate;
      return listDests(key);
    };
    manager.setDesired([desired(svc(80), [dest(1), dest(2)])]);
    await new Promise((r) => setImmediate(r));
    // A weight edit reaches the manager while the adoption dump is in flight.
    manager.setDesired([desired(svc(80), [dest(1), dest(2, { weight: 7 })])]);
    release();
    await manager.idle();
    expect(kernel.dests(svc(80).key).map((d) => [d.address, d.weight])).toEqual([
      ['198.51.100.2', 10],
      ['198.51.100.3', 7],
    ]);
  });
});
