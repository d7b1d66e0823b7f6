// End to end: primary/backup failover by MED between two real pybal
// directors. director1 and director2 each run the built daemon with the same
// service and pool (DR, two real servers) and announce the VIP to BIRD,
// director1 with `bgp-med = 10`, director2 with `bgp-med = 20`; BIRD installs
// its best path into the router's kernel, so the client's traffic follows BGP.
//
//   1. the lower MED wins: BIRD's best path and the router's kernel route go
//      to director1, and the client's connections are in director1's IPVS
//      connection table, none in director2's;
//   2. SIGTERM on director1's pybal: it withdraws and closes its session, the
//      route moves to director2 and the client is served through director2;
//      started again, director1 takes the route back;
//   3. SIGKILL on director1's pybal: no withdrawal, but its BGP connection
//      closes with the process and BIRD moves the route all the same;
//   4. connection sync (`ipvs-sync-daemon = both` on eth0, set by SIGHUP):
//      a keep-alive connection opened through director1 is in director2's
//      table within seconds, and after director1's pybal stops it carries
//      another request to the same real server through director2. The
//      control, `ipvs-sync-daemon = none`: director2 never learns the
//      connection, so the first packet the client sends on it after the move
//      is not scheduled (IPVS schedules only a SYN), reaches director2's own
//      TCP stack (the VIP is on its lo, nothing listens on port 80) and is
//      answered with a reset: the connection breaks, every time.
//
// Which director carried a request is read from the directors' IPVS
// connection tables (see test/e2e/two-directors.ts, the stage this file
// shares with test/e2e/drain.lab.test.ts).
//
// Timing is measured, printed, never asserted: from the signal to the
// router's kernel route via director2 (the router's `ip monitor route`
// timestamps the change), and the requests a client in a loop lost meanwhile
// (a request whose connection began through director1 and was moved to
// director2 mid-way can be lost: director2 has no entry for it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, type LabProcess } from '../lab/exec.js';
import { DIRECTORS, longestGapMs, PortLoop, TwoDirectors, type Director, type IpvsConnection, type LoopAnswer } from './two-directors.js';

const MED: Record<Director, number> = { director1: 10, director2: 20 };
/** Timeout of each request of the client loop: short, so that an outage shows as failures. */
const LOOP_REQUEST_TIMEOUT_MS = 1_000;

describe('e2e: failover by MED between two pybal directors', { timeout: 120_000 }, () => {
  let t: TwoDirectors;

  /** How many times BIRD logged a Cease from director1's session with pybal's shutdown message. */
  const ceasesFromDirector1 = (): number =>
    t.lab.router.log().split('\n').filter((l) => l.includes('director1') && l.includes('Administrative shutdown') && l.includes('pybal is shutting down')).length;

  beforeAll(async () => {
    t = await TwoDirectors.start({ med: MED, service: { name: 'web' } });
  }, 120_000);

  afterAll(async () => {
    await t?.stop();
  });

  it('1. the lower MED wins: BIRD and the router send the VIP to director1, whose IPVS serves the client; director2 sees nothing', async () => {
    await t.expectBirdBest('director1', DIRECTORS);
    expect(await t.kernelRoute()).toMatch(new RegExp(`via ${t.ip('director1').replaceAll('.', '\\.')} `));
    const before = await t.lab.ipvsStats('director2');
    await t.expectServedThrough('director1', 6);
    // The kernel sums its counters every 2 s: director1's count up by six, director2's not at all.
    const conns = async (d: Director): Promise<number> => (await t.lab.ipvsStats(d)).find((s) => s.service === `TCP  ${t.vip}:80`)?.conns ?? 0;
    await waitFor(async () => ((await conns('director1')) >= 6 ? true : undefined), { timeoutMs: 10_000, what: "director1's connection counter" });
    expect(await conns('director2')).toBe(before.find((s) => s.service === `TCP  ${t.vip}:80`)?.conns ?? 0);
    console.log(`[failover] 1. best path via director1 (MED ${MED.director1}) over director2 (MED ${MED.director2}); director1 counted ${await conns('director1')} connections, director2 ${await conns('director2')}`);
  });

  /**
   * Stops director1's pybal with `signal` while a client requests in a loop;
   * proves the route moved to director2 and the client was served through
   * it; prints the figures. Then starts director1's pybal again and proves
   * the route came back.
   */
  async function failover(signal: 'SIGTERM' | 'SIGKILL', tag: string): Promise<void> {
    await t.waitForKernelRoute('director1');
    const loop = new PortLoop(t.lab, t.lab.vipUrl(4), () => t.nextPort(), LOOP_REQUEST_TIMEOUT_MS);
    // A baseline through director1 first.
    await waitFor(async () => (loop.ok().length >= 3 ? true : undefined), { timeoutMs: 20_000, what: 'three answers before the failover' });
    const victim = t.pybals.director1;
    const ceasesBefore = ceasesFromDirector1();
    const mark = t.monitor.output().length;
    const signalledAt = Date.now();
    victim.process.signal(signal);
    const polledAt = await t.waitForKernelRoute('director2', 30_000);
    const exited = await victim.process.exited;
    // Some answers through director2 before the loop stops.
    const okBefore = loop.ok().length;
    await waitFor(async () => (loop.ok().length >= okBefore + 4 ? true : undefined), { timeoutMs: 20_000, what: 'four answers after the failover' });
    const answers = await loop.stop();
    const changedAt = await waitFor(async () => t.routeChangeAtMs('director2', mark), { timeoutMs: 5_000, what: "the route change in the router's ip monitor" });

    if (signal === 'SIGTERM') {
      // A clean shutdown: exit 0, and BIRD heard pybal's Cease with its reason.
      expect(exited).toEqual({ code: 0, signal: null });
      await waitFor(async () => (ceasesFromDirector1() === ceasesBefore + 1 ? true : undefined), { timeoutMs: 5_000, what: "BIRD to log director1's Cease" });
    } else {
      // Killed: no Cease reached BIRD; only the closed connection moved the route.
      expect(exited.signal).toBe('SIGKILL');
      expect(ceasesFromDirector1()).toBe(ceasesBefore);
    }
    // BIRD has only director2's path left, and its kernel route is director2's.
    await t.expectBirdBest('director2', ['director2']);

    // Which director carried each answered request.
    const byPort = await t.directorsByPort();
    const ok = answers.filter((a) => a.answer.status === 200);
    const through = (a: LoopAnswer): string => (byPort.get(a.port) ?? []).join('+') || 'none';
    for (const a of ok) expect([['director1'], ['director2']], `request from port ${a.port}`).toContainEqual(byPort.get(a.port) ?? []);
    const viaD1 = ok.filter((a) => through(a) === 'director1');
    const viaD2 = ok.filter((a) => through(a) === 'director2');
    // Before the signal, through director1; once the route moved, through director2.
    expect(viaD1.length).toBeGreaterThan(0);
    expect(viaD1.every((a) => a.startMs < changedAt)).toBe(true);
    expect(viaD2.length).toBeGreaterThanOrEqual(4);
    expect(viaD2.every((a) => a.endMs > changedAt)).toBe(true);
    // And new requests, now, through director2 only.
    await t.expectServedThrough('director2', 3);

    const failed = answers.filter((a) => a.answer.status !== 200);
    const gap = longestGapMs(answers);
    console.log(
      `[failover] ${tag}: route via director2 in the router's kernel ${changedAt - signalledAt} ms after ${signal} (first seen by polling after ${polledAt - signalledAt} ms); ` +
        `client loop: ${answers.length} requests (${LOOP_REQUEST_TIMEOUT_MS} ms timeout each), ${viaD1.length} through director1, ${viaD2.length} through director2, ` +
        `${failed.length} failed${failed.length ? ` [${failed.map((a) => `port ${a.port} at +${a.startMs - signalledAt} ms: curl ${a.answer.curlExit} via ${through(a)}`).join('; ')}]` : ''}; ` +
        `longest gap between answers ${gap} ms`,
    );

    // director1's pybal again: its path (MED 10) is best once more.
    const restartMark = t.monitor.output().length;
    const restartedAt = Date.now();
    t.startPybal('director1');
    await t.waitForKernelRoute('director1', 60_000);
    const backAt = await waitFor(async () => t.routeChangeAtMs('director1', restartMark), { timeoutMs: 5_000, what: "the route's return in the router's ip monitor" });
    await t.expectBirdBest('director1', DIRECTORS);
    await t.waitForPool('director1');
    await t.expectServedThrough('director1', 3);
    console.log(`[failover] ${tag}: director1's pybal restarted; the route was back via director1 ${backAt - restartedAt} ms after its start`);
  }

  it('2. SIGTERM on director1\'s pybal: the route moves to director2, which serves the client; restarted, director1 takes it back', async () => {
    await failover('SIGTERM', '2. SIGTERM');
  });

  it('3. SIGKILL on director1\'s pybal: its BGP connection closes with it, the route moves to director2, which serves the client; restarted, director1 takes it back', async () => {
    await failover('SIGKILL', '3. SIGKILL');
  });
  describe('4. connection sync between the directors', () => {
    const SYNC_BOTH = ['ipvs-sync-daemon = both', 'ipvs-sync-interface = eth0'];
    /** How long director2 took to show director1's connection in 4a (for the control's wait). */
    let syncedAfterMs = 0;

    /** `ipvsadm -L --daemon` in a director: { master: 'mcast=eth0, syncid=0, ...', backup: ... }. */
    async function syncDaemons(d: Director): Promise<Record<string, string>> {
      const out: Record<string, string> = {};
      for (const m of (await t.lab.ipvsadm(['-L', '--daemon'], d)).matchAll(/^(master|backup) sync daemon \((.*)\)$/gm)) out[m[1]!] = m[2]!;
      return out;
    }

    /** Rewrites both directors' pybal.conf with `globalExtra` and reloads both (SIGHUP); waits for each to say so. */
    async function reloadBoth(globalExtra: readonly string[]): Promise<void> {
      for (const d of DIRECTORS) {
        t.writeConf(d, globalExtra);
        const pybal = t.pybals[d];
        const mark = pybal.log().length;
        pybal.process.signal('SIGHUP');
        await waitFor(async () => pybal.logSince(mark).find((l) => l.includes('Configuration reloaded')), { timeoutMs: 20_000, what: `${d}'s reload` });
      }
    }

    /** Opens a keep-alive connection from the client to the VIP; its real server and source port. */
    async function hold(tag: string): Promise<{ proc: LabProcess; server: string; port: number }> {
      const proc = t.lab.spawn('client', ['node', 'dist/test/ipvs/hold-connection.js', t.vip, '80'], { name: `hold-${tag}` });
      const line = await proc.waitForLine(/^(first|closed|error)/, 15_000);
      const m = /^first 200 (rs\d) (\d+)$/.exec(line);
      expect(m, line).not.toBeNull();
      return { proc, server: m![1]!, port: Number(m![2]) };
    }

    const entryOf = async (d: Director, port: number): Promise<IpvsConnection | undefined> => (await t.connections(d)).find((c) => c.sourcePort === port);
    const rsAddress = (name: string): string => `${t.lab.addr.realServers.find((r) => r.name === name)!.v4!}:80`;
    const inPackets = async (d: Director): Promise<number> => (await t.lab.ipvsStats(d)).find((s) => s.service === `TCP  ${t.vip}:80`)?.inPackets ?? 0;

    it('4a. ipvs-sync-daemon = both: director1\'s connection is synced to director2 and survives the move to director2, on the same real server', async () => {
      await reloadBoth(SYNC_BOTH);
      for (const d of DIRECTORS) {
        const daemons = await waitFor(async () => {
          const have = await syncDaemons(d);
          if (have.master !== undefined && have.backup !== undefined) return have;
          throw new Error(`${d} runs ${JSON.stringify(have)}`);
        }, { timeoutMs: 20_000, what: `a master and a backup sync daemon in ${d}` });
        expect(daemons.master).toMatch(/^mcast=eth0, syncid=0\b/);
        expect(daemons.backup).toMatch(/^mcast=eth0, syncid=0\b/);
      }
      await t.waitForKernelRoute('director1');

      const held = await hold('sync');
      const openedAt = Date.now();
      // Opened through director1, to the real server that answered.
      expect(await entryOf('director1', held.port)).toMatchObject({ state: 'ESTABLISHED', destination: rsAddress(held.server) });
      expect(await entryOf('director2', held.port)).toBeUndefined();
      // director1's master multicasts it; director2's backup takes it in.
      const synced = await waitFor(async () => entryOf('director2', held.port), { timeoutMs: 15_000, what: "director1's connection in director2's table" });
      syncedAfterMs = Date.now() - openedAt;
      expect(synced).toMatchObject({ state: 'ESTABLISHED', destination: rsAddress(held.server) });

      // director1's pybal stops: the route moves to director2.
      const signalledAt = Date.now();
      t.pybals.director1.process.signal('SIGTERM');
      await t.waitForKernelRoute('director2');
      const movedAfterMs = Date.now() - signalledAt;
      expect(await t.pybals.director1.process.exited).toEqual({ code: 0, signal: null });
      // The kernel sums packet counters every 2 s: let director2's settle before the next request.
      await new Promise((r) => setTimeout(r, 2_500));
      const d2Before = await inPackets('director2');

      // Another request on the same connection: answered, by the same server, on the same port.
      held.proc.signal('SIGUSR2');
      expect(await held.proc.waitForLine(/^(again|closed|error)/, 15_000)).toBe(`again 200 ${held.server} ${held.port}`);
      // ...and it went through director2, with the synced entry.
      const d2After = await waitFor(async () => {
        const n = await inPackets('director2');
        return n > d2Before ? n : undefined;
      }, { timeoutMs: 10_000, what: "the request's packets in director2's counters" });
      expect(await entryOf('director2', held.port)).toMatchObject({ state: 'ESTABLISHED', destination: rsAddress(held.server) });
      expect(held.proc.output()).not.toMatch(/^(closed|error)/m);
      await held.proc.stop();
      console.log(
        `[failover] 4a. sync: director1's connection (port ${held.port}, ${held.server}) in director2's table ${syncedAfterMs} ms after it opened; ` +
          `route via director2 ${movedAfterMs} ms after SIGTERM (polled); the held connection answered again from ${held.server} through director2 (${d2After - d2Before} packets in its counters)`,
      );

      // director1's pybal again (still with sync): the route back, the daemons as configured.
      t.startPybal('director1');
      await t.waitForKernelRoute('director1', 60_000);
      await t.waitForPool('director1');
      expect(Object.keys(await syncDaemons('director1')).sort()).toEqual(['backup', 'master']);
    });

    it('4b. control, ipvs-sync-daemon = none: director2 never learns the connection, and after the move it breaks', async () => {
      await reloadBoth(['ipvs-sync-daemon = none']);
      for (const d of DIRECTORS) {
        await waitFor(async () => {
          const have = await syncDaemons(d);
          if (Object.keys(have).length === 0) return true;
          throw new Error(`${d} still runs ${JSON.stringify(have)}`);
        }, { timeoutMs: 20_000, what: `no sync daemon left in ${d}` });
      }
      await t.waitForKernelRoute('director1');

      const held = await hold('nosync');
      expect(await entryOf('director1', held.port)).toMatchObject({ state: 'ESTABLISHED', destination: rsAddress(held.server) });
      // Longer than 4a's sync took, and than the kernel's 2 s flush of a master's buffer: still not in director2's table.
      const waitMs = Math.max(4_000, 2 * syncedAfterMs);
      await new Promise((r) => setTimeout(r, waitMs));
      expect(await entryOf('director2', held.port)).toBeUndefined();

      const signalledAt = Date.now();
      t.pybals.director1.process.signal('SIGTERM');
      await t.waitForKernelRoute('director2');
      const movedAfterMs = Date.now() - signalledAt;
      expect(await t.pybals.director1.process.exited).toEqual({ code: 0, signal: null });

      held.proc.signal('SIGUSR2');
      const outcome = await held.proc.waitForLine(/^(again|closed|error)/, 15_000);
      expect(outcome).toMatch(/^(error|closed)/);
      await held.proc.waitForLine(/^closed$/, 10_000);
      expect(held.proc.output()).not.toMatch(/^again /m);
      // director2 made no entry of it: its IPVS did not take the packet.
      expect(await entryOf('director2', held.port)).toBeUndefined();
      await held.proc.stop();
      console.log(
        `[failover] 4b. no sync: director2 had no entry for port ${held.port} ${waitMs} ms after it opened; route via director2 ${movedAfterMs} ms after SIGTERM (polled); ` +
          `the held connection's next request: ${JSON.stringify(outcome)}`,
      );
    });
  });
});
