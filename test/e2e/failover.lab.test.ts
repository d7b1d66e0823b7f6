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
// connection tables (`ipvsadm -Lnc`): every request of this file leaves the
// client from a source port of its own, and a director that forwarded it
// keeps an entry for that port for minutes (DR: FIN_WAIT, TIME_WAIT). The
// real servers' X-Served-By cannot say it: both directors use both servers.
//
// Timing is measured, printed, never asserted: from the signal to the
// router's kernel route via director2 (the router's `ip monitor route`
// timestamps the change), and the requests a client in a loop lost meanwhile
// (a request whose connection began through director1 and was moved to
// director2 mid-way can be lost: director2 has no entry for it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, type LabProcess } from '../lab/exec.js';
import { startLab, type HttpAnswer, type Lab } from '../lab/lab.js';
import { E2eConfig, E2ePybal, type E2eService } from './pybal-lab.js';

type Director = 'director1' | 'director2';
const DIRECTORS: readonly Director[] = ['director1', 'director2'];
const MED: Record<Director, number> = { director1: 10, director2: 20 };
/** Timeout of each request of the client loop: short, so that an outage shows as failures. */
const LOOP_REQUEST_TIMEOUT_MS = 1_000;

/** One entry of `ipvsadm -Lnc`. */
type IpvsConnection = { protocol: string; state: string; source: string; sourcePort: number; virtual: string; destination: string };

function parseConnections(text: string): IpvsConnection[] {
  const out: IpvsConnection[] = [];
  for (const line of text.split('\n')) {
    const m = /^(TCP|UDP)\s+\S+\s+(\S+)\s+(\S+):(\d+)\s+(\S+)\s+(\S+)\s*$/.exec(line);
    if (m) out.push({ protocol: m[1]!, state: m[2]!, source: m[3]!, sourcePort: Number(m[4]), virtual: m[5]!, destination: m[6]! });
  }
  return out;
}

type LoopAnswer = { port: number; startMs: number; endMs: number; answer: HttpAnswer };

/** A client sending GETs one after another, each from a source port of its own (so that its director can be found). */
class PortLoop {
  readonly answers: LoopAnswer[] = [];
  readonly #done: Promise<void>;
  #stopping = false;
  constructor(lab: Lab, url: string, nextPort: () => number) {
    this.#done = (async () => {
      while (!this.#stopping) {
        const port = nextPort();
        const startMs = Date.now();
        const answer = await lab.client.get(url, { localPort: port, timeoutMs: LOOP_REQUEST_TIMEOUT_MS });
        this.answers.push({ port, startMs, endMs: Date.now(), answer });
      }
    })();
  }

  ok(): LoopAnswer[] {
    return this.answers.filter((a) => a.answer.status === 200);
  }

  async stop(): Promise<LoopAnswer[]> {
    this.#stopping = true;
    await this.#done;
    return this.answers;
  }
}

describe('e2e: failover by MED between two pybal directors', { timeout: 120_000 }, () => {
  let lab: Lab;
  let vip: string;
  const confs = {} as Record<Director, E2eConfig>;
  const pybals = {} as Record<Director, E2ePybal>;
  let starts = 0;
  let monitor: LabProcess;
  // Source ports for the client's requests, never reused, below the ephemeral range.
  let nextLocalPort = 20_000;
  const nextPort = (): number => nextLocalPort++;
  const web: E2eService = { name: 'web' };

  const ip = (d: Director): string => lab.addr.directors.find((x) => x.name === d)!.v4!;
  const prefix = (): string => `${vip}/32`;
  const other = (d: Director): Director => (d === 'director1' ? 'director2' : 'director1');

  function writeConf(d: Director, globalExtra: readonly string[] = []): void {
    confs[d].write([web], { director: d, globalExtra: [`bgp-med = ${MED[d]}`, ...globalExtra] });
  }

  function startPybal(d: Director): E2ePybal {
    pybals[d] = E2ePybal.start(lab, confs[d].file, { director: d, name: `pybal-${d}-${++starts}` });
    return pybals[d];
  }

  /** Both real servers in the director's IPVS table, with pybal's weight. */
  function waitForPool(d: Director): Promise<boolean> {
    const want = lab.addr.realServers.map((r) => r.v4!).sort();
    return waitFor(
      async () => {
        const service = (await lab.ipvsTable(d)).find((s) => s.address === vip && s.port === 80);
        const have = service?.destinations.filter((x) => x.weight === 10 && x.forward === 'route').map((x) => x.address).sort();
        if (JSON.stringify(have) === JSON.stringify(want)) return true;
        throw new Error(`${d} has ${JSON.stringify(service?.destinations)}`);
      },
      { timeoutMs: 30_000, what: `both real servers in ${d}'s IPVS` },
    );
  }

  const kernelRoute = async (): Promise<string> => (await lab.execOk('router', ['ip', 'route', 'show', prefix()])).stdout.trim();

  /** Polls until the router's kernel sends the VIP to `d` alone; returns when the poll saw it. */
  async function waitForKernelRoute(d: Director, timeoutMs = 30_000): Promise<number> {
    await waitFor(
      async () => {
        const route = await kernelRoute();
        if (route.includes(`via ${ip(d)}`) && !route.includes(`via ${ip(other(d))}`)) return true;
        throw new Error(`router's kernel: ${JSON.stringify(route)}`);
      },
      { timeoutMs, intervalMs: 50, what: `the router's kernel route to the VIP via ${d}` },
    );
    return Date.now();
  }

  /**
   * When the router's kernel got the VIP's route via `d`, by the timestamp
   * `ip -tshort monitor route` printed with the change, looking at its
   * output from `mark` on.
   */
  function routeChangeAtMs(d: Director, mark: number): number | undefined {
    const re = new RegExp(`^\\[(\\d{4})-(\\d\\d)-(\\d\\d)T(\\d\\d):(\\d\\d):(\\d\\d)\\.(\\d{6})\\] ${vip.replaceAll('.', '\\.')} via ${ip(d).replaceAll('.', '\\.')} `);
    for (const line of monitor.output().slice(mark).split('\n')) {
      const m = re.exec(line);
      if (m === null) continue;
      const [y, mo, day, h, mi, s, us] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
      return new Date(y, mo - 1, day, h, mi, s, Math.floor(us / 1000)).getTime();
    }
    return undefined;
  }

  async function connections(d: Director): Promise<IpvsConnection[]> {
    return parseConnections(await lab.ipvsadm(['-Lnc'], d)).filter((c) => c.source === lab.addr.client.v4 && c.virtual === `${vip}:80`);
  }

  /** For each source port, the directors whose connection table has it. */
  async function directorsByPort(): Promise<Map<number, Director[]>> {
    const byPort = new Map<number, Director[]>();
    for (const d of DIRECTORS) {
      for (const c of await connections(d)) byPort.set(c.sourcePort, [...(byPort.get(c.sourcePort) ?? []), d]);
    }
    return byPort;
  }

  /** `n` GETs, each from a new source port; every one must be answered, and through `d` only. */
  async function expectServedThrough(d: Director, n: number): Promise<void> {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const port = nextPort();
      ports.push(port);
      const answer = await lab.client.get(lab.vipUrl(4), { localPort: port, timeoutMs: 5_000 });
      expect(answer.status, `request from port ${port}: ${answer.error}`).toBe(200);
      expect(['rs1', 'rs2']).toContain(answer.servedBy);
    }
    const byPort = await directorsByPort();
    expect(ports.map((p) => byPort.get(p) ?? [])).toEqual(ports.map(() => [d]));
  }

  /** How many times BIRD logged a Cease from director1's session with pybal's shutdown message. */
  const ceasesFromDirector1 = (): number =>
    lab.router.log().split('\n').filter((l) => l.includes('director1') && l.includes('Administrative shutdown') && l.includes('pybal is shutting down')).length;

  /** BIRD's paths for the VIP: one per director with its MED, the best one `best`'s. */
  async function expectBirdBest(best: Director, present: readonly Director[]): Promise<void> {
    await waitFor(
      async () => {
        const routes = await lab.router.route(prefix());
        const from = routes.map((r) => r.nextHop).sort();
        if (JSON.stringify(from) === JSON.stringify(present.map(ip).sort()) && routes.find((r) => r.best)?.nextHop === ip(best)) return routes;
        throw new Error(`BIRD has ${JSON.stringify(routes)}`);
      },
      { timeoutMs: 30_000, what: `BIRD's best path via ${best}, paths via ${present.join(' and ')}` },
    );
    const routes = await lab.router.route(prefix());
    for (const d of present) expect(routes.find((r) => r.nextHop === ip(d))).toMatchObject({ med: MED[d], asPath: [lab.options.directorAsn ?? 64600] });
    expect(routes.filter((r) => r.best).map((r) => r.nextHop)).toEqual([ip(best)]);
  }

  beforeAll(async () => {
    lab = await startLab({ directors: 2, realServers: 2, forwarding: 'dr', router: 'bird', vipRoute: 'bgp', families: [4] });
    vip = lab.addr.vip.v4!;
    monitor = lab.spawn('router', ['ip', '-4', '-tshort', 'monitor', 'route'], { name: 'router-ip-monitor' });
    for (const d of DIRECTORS) {
      confs[d] = new E2eConfig(lab, `pybal-${d}`);
      confs[d].writePool('web', confs[d].realServerEntries());
      writeConf(d);
      startPybal(d);
    }
    await Promise.all(DIRECTORS.map((d) => waitForPool(d)));
    await expectBirdBest('director1', DIRECTORS);
    await waitForKernelRoute('director1');
  }, 120_000);

  afterAll(async () => {
    await lab?.stop();
  });

  it('1. the lower MED wins: BIRD and the router send the VIP to director1, whose IPVS serves the client; director2 sees nothing', async () => {
    await expectBirdBest('director1', DIRECTORS);
    expect(await kernelRoute()).toMatch(new RegExp(`via ${ip('director1').replaceAll('.', '\\.')} `));
    const before = await lab.ipvsStats('director2');
    await expectServedThrough('director1', 6);
    // The kernel sums its counters every 2 s: director1's count up by six, director2's not at all.
    const conns = async (d: Director): Promise<number> => (await lab.ipvsStats(d)).find((s) => s.service === `TCP  ${vip}:80`)?.conns ?? 0;
    await waitFor(async () => ((await conns('director1')) >= 6 ? true : undefined), { timeoutMs: 10_000, what: "director1's connection counter" });
    expect(await conns('director2')).toBe(before.find((s) => s.service === `TCP  ${vip}:80`)?.conns ?? 0);
    console.log(`[failover] 1. best path via director1 (MED ${MED.director1}) over director2 (MED ${MED.director2}); director1 counted ${await conns('director1')} connections, director2 ${await conns('director2')}`);
  });

  /**
   * Stops director1's pybal with `signal` while a client requests in a loop;
   * proves the route moved to director2 and the client was served through
   * it; prints the figures. Then starts director1's pybal again and proves
   * the route came back.
   */
  async function failover(signal: 'SIGTERM' | 'SIGKILL', tag: string): Promise<void> {
    await waitForKernelRoute('director1');
    const loop = new PortLoop(lab, lab.vipUrl(4), nextPort);
    // A baseline through director1 first.
    await waitFor(async () => (loop.ok().length >= 3 ? true : undefined), { timeoutMs: 20_000, what: 'three answers before the failover' });
    const victim = pybals.director1;
    const ceasesBefore = ceasesFromDirector1();
    const mark = monitor.output().length;
    const signalledAt = Date.now();
    victim.process.signal(signal);
    const polledAt = await waitForKernelRoute('director2', 30_000);
    const exited = await victim.process.exited;
    // Some answers through director2 before the loop stops.
    const okBefore = loop.ok().length;
    await waitFor(async () => (loop.ok().length >= okBefore + 4 ? true : undefined), { timeoutMs: 20_000, what: 'four answers after the failover' });
    const answers = await loop.stop();
    const changedAt = await waitFor(async () => routeChangeAtMs('director2', mark), { timeoutMs: 5_000, what: "the route change in the router's ip monitor" });

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
    await expectBirdBest('director2', ['director2']);

    // Which director carried each answered request.
    const byPort = await directorsByPort();
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
    await expectServedThrough('director2', 3);

    const failed = answers.filter((a) => a.answer.status !== 200);
    const okEnds = ok.map((a) => a.endMs);
    const gap = Math.max(0, ...okEnds.slice(1).map((t, i) => t - okEnds[i]!));
    console.log(
      `[failover] ${tag}: route via director2 in the router's kernel ${changedAt - signalledAt} ms after ${signal} (first seen by polling after ${polledAt - signalledAt} ms); ` +
        `client loop: ${answers.length} requests (${LOOP_REQUEST_TIMEOUT_MS} ms timeout each), ${viaD1.length} through director1, ${viaD2.length} through director2, ` +
        `${failed.length} failed${failed.length ? ` [${failed.map((a) => `port ${a.port} at +${a.startMs - signalledAt} ms: curl ${a.answer.curlExit} via ${through(a)}`).join('; ')}]` : ''}; ` +
        `longest gap between answers ${gap} ms`,
    );

    // director1's pybal again: its path (MED 10) is best once more.
    const restartMark = monitor.output().length;
    const restartedAt = Date.now();
    startPybal('director1');
    await waitForKernelRoute('director1', 60_000);
    const backAt = await waitFor(async () => routeChangeAtMs('director1', restartMark), { timeoutMs: 5_000, what: "the route's return in the router's ip monitor" });
    await expectBirdBest('director1', DIRECTORS);
    await waitForPool('director1');
    await expectServedThrough('director1', 3);
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
      for (const m of (await lab.ipvsadm(['-L', '--daemon'], d)).matchAll(/^(master|backup) sync daemon \((.*)\)$/gm)) out[m[1]!] = m[2]!;
      return out;
    }

    /** Rewrites both directors' pybal.conf with `globalExtra` and reloads both (SIGHUP); waits for each to say so. */
    async function reloadBoth(globalExtra: readonly string[]): Promise<void> {
      for (const d of DIRECTORS) {
        writeConf(d, globalExtra);
        const pybal = pybals[d];
        const mark = pybal.log().length;
        pybal.process.signal('SIGHUP');
        await waitFor(async () => pybal.logSince(mark).find((l) => l.includes('Configuration reloaded')), { timeoutMs: 20_000, what: `${d}'s reload` });
      }
    }

    /** Opens a keep-alive connection from the client to the VIP; its real server and source port. */
    async function hold(tag: string): Promise<{ proc: LabProcess; server: string; port: number }> {
      const proc = lab.spawn('client', ['node', 'dist/test/ipvs/hold-connection.js', vip, '80'], { name: `hold-${tag}` });
      const line = await proc.waitForLine(/^(first|closed|error)/, 15_000);
      const m = /^first 200 (rs\d) (\d+)$/.exec(line);
      expect(m, line).not.toBeNull();
      return { proc, server: m![1]!, port: Number(m![2]) };
    }

    const entryOf = async (d: Director, port: number): Promise<IpvsConnection | undefined> => (await connections(d)).find((c) => c.sourcePort === port);
    const rsAddress = (name: string): string => `${lab.addr.realServers.find((r) => r.name === name)!.v4!}:80`;
    const inPackets = async (d: Director): Promise<number> => (await lab.ipvsStats(d)).find((s) => s.service === `TCP  ${vip}:80`)?.inPackets ?? 0;

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
      await waitForKernelRoute('director1');

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
      pybals.director1.process.signal('SIGTERM');
      await waitForKernelRoute('director2');
      const movedAfterMs = Date.now() - signalledAt;
      expect(await pybals.director1.process.exited).toEqual({ code: 0, signal: null });
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
      startPybal('director1');
      await waitForKernelRoute('director1', 60_000);
      await waitForPool('director1');
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
      await waitForKernelRoute('director1');

      const held = await hold('nosync');
      expect(await entryOf('director1', held.port)).toMatchObject({ state: 'ESTABLISHED', destination: rsAddress(held.server) });
      // Longer than 4a's sync took, and than the kernel's 2 s flush of a master's buffer: still not in director2's table.
      const waitMs = Math.max(4_000, 2 * syncedAfterMs);
      await new Promise((r) => setTimeout(r, waitMs));
      expect(await entryOf('director2', held.port)).toBeUndefined();

      const signalledAt = Date.now();
      pybals.director1.process.signal('SIGTERM');
      await waitForKernelRoute('director2');
      const movedAfterMs = Date.now() - signalledAt;
      expect(await pybals.director1.process.exited).toEqual({ code: 0, signal: null });

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
