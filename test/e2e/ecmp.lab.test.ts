// End to end: active/active behind real ECMP. Three pybal directors with the
// same configuration (one service, mh with mh-port and mh-fallback, three DR
// real servers, `ipvs-sloppy-tcp = yes`) announce the VIP to BIRD with equal
// attributes; BIRD merges the paths (`merge paths on` in its kernel protocol)
// and installs one multipath route in the router's kernel, which hashes each
// connection on its addresses and ports (vipRoute 'bgp-ecmp':
// fib_multipath_hash_policy = 1), so one client's connections spread over the
// directors. No sync daemon runs: only Maglev hashing, the same on every
// director, and sloppy_tcp (a director schedules a connection's mid-flow
// packet instead of resetting it) carry a moved connection on.
//
//   1. director1 and director2: the router's route has both as next hops;
//      40 long-lived connections (source ports of their own) spread over
//      both (each in exactly one director's IPVS connection table), each
//      answered by a real server;
//   2. director3's pybal starts: the route gains a third next hop and some
//      connections now arrive at director3 (or at the other director), which
//      never saw them open (they appear in its connection table); every
//      connection is still answered, by the same real server as before;
//   3. director1's pybal stops (SIGTERM: it withdraws the VIP): its flows
//      move to director2 and director3, and again every connection is
//      answered by the same real server;
//   4. the control: `ipvs-sloppy-tcp = no` (SIGHUP: pybal sets the sysctl
//      to 0), 40 new connections, director1 back: the connections the router
//      now sends to a director that never saw them are reset (by that
//      director's own stack), the others go on.
//
// The figures (flows per director, flows moved, connections broken) are
// printed; what is asserted is that each step moved at least one flow, that
// none broke with sloppy_tcp = 1, and that moved flows broke without it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, type LabProcess } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import { E2eConfig, E2ePybal, proxyFetchLines, type E2eService } from './pybal-lab.js';
import { parseConnections } from './two-directors.js';

const DIRECTORS = ['director1', 'director2', 'director3'] as const;
type Director = (typeof DIRECTORS)[number];
const FLOWS = 40;
const service: E2eService = { name: 'web', scheduler: 'mh', extra: ['mh-port = yes', 'mh-fallback = yes', ...proxyFetchLines()] };

/** One connection's answer in a round of hold-connections.js. */
type Answer = { index: number; port: number; ok: boolean; what: string };

describe('e2e: active/active behind ECMP, mh and sloppy_tcp: connections survive directors joining and leaving', { timeout: 300_000 }, () => {
  let lab: Lab;
  const confs = {} as Record<Director, E2eConfig>;
  const pybals = {} as Partial<Record<Director, E2ePybal>>;
  let starts = 0;
  const vip = (): string => lab.addr.vip.v4!;
  const ip = (d: Director): string => lab.addr.directors.find((x) => x.name === d)!.v4!;

  function writeConf(d: Director, sloppy: 'yes' | 'no'): void {
    confs[d].write([service], { director: d, globalExtra: [`ipvs-sloppy-tcp = ${sloppy}`] });
  }

  function startPybal(d: Director): E2ePybal {
    const p = E2ePybal.start(lab, confs[d].file, { director: d, name: `pybal-${d}-${++starts}` });
    pybals[d] = p;
    return p;
  }

  /** Every real server in the director's IPVS table at pybal's weight. */
  function waitForPool(d: Director): Promise<boolean> {
    const want = lab.addr.realServers.map((r) => r.v4!).sort();
    return waitFor(
      async () => {
        const s = (await lab.ipvsTable(d)).find((x) => x.address === vip() && x.port === 80);
        const have = s?.destinations.filter((x) => x.weight === 10).map((x) => x.address).sort();
        if (s?.scheduler === 'mh' && JSON.stringify(have) === JSON.stringify(want)) return true;
        throw new Error(`${d} has ${JSON.stringify(s)}`);
      },
      { timeoutMs: 40_000, what: `every real server in ${d}'s IPVS` },
    );
  }

  async function kernelRoute(): Promise<string> {
    return (await lab.execOk('router', ['ip', 'route', 'show', `${vip()}/32`])).stdout.trim();
  }

  /** Waits until the router's kernel route to the VIP has exactly these next hops; returns the route. */
  async function waitForNextHops(ds: readonly Director[]): Promise<string> {
    const want = ds.map(ip).sort();
    return waitFor(
      async () => {
        const route = await kernelRoute();
        const hops = [...route.matchAll(/via (\S+)/g)].map((m) => m[1]!).sort();
        if (JSON.stringify(hops) === JSON.stringify(want)) return route;
        throw new Error(`router's kernel: ${JSON.stringify(route)}`);
      },
      { timeoutMs: 40_000, intervalMs: 100, what: `the router's route to the VIP via ${ds.join(', ')}` },
    );
  }

  async function sysctl(d: Director): Promise<string> {
    return (await lab.execOk(d, ['cat', '/proc/sys/net/ipv4/vs/sloppy_tcp'])).stdout.trim();
  }

  /** For each director, the client source ports its IPVS connection table has for the VIP. */
  async function portsByDirector(): Promise<Record<Director, Set<number>>> {
    const out = {} as Record<Director, Set<number>>;
    for (const d of DIRECTORS) {
      const conns = parseConnections(await lab.ipvsadm(['-Lnc'], d)).filter((c) => c.source === lab.addr.client.v4 && c.virtual === `${vip()}:80`);
      out[d] = new Set(conns.map((c) => c.sourcePort));
    }
    return out;
  }

  /** The TCP resets a director's own stack has sent (/proc/net/snmp of its namespace). */
  async function outRsts(d: Director): Promise<number> {
    const lines = (await lab.execOk(d, ['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Tcp:'));
    const names = lines[0]!.split(/\s+/);
    const values = lines[1]!.split(/\s+/);
    return Number(values[names.indexOf('OutRsts')]);
  }

  /** A process holding FLOWS connections from ports firstPort.. (test/ipvs/hold-connections.ts). */
  class Holder {
    readonly proc: LabProcess;
    round = 0;
    constructor(name: string, firstPort: number) {
      this.proc = lab.spawn('client', ['node', 'dist/test/ipvs/hold-connections.js', vip(), '80', String(FLOWS), String(firstPort)], { name });
    }
    async answers(round: number): Promise<Answer[]> {
      await this.proc.waitForLine(new RegExp(`^${round} done$`), 30_000);
      return this.proc
        .output()
        .split('\n')
        .flatMap((l) => {
          const m = new RegExp(`^${round} (\\d+) (\\d+) (ok|broken) (\\S+)$`).exec(l);
          return m ? [{ index: Number(m[1]), port: Number(m[2]), ok: m[3] === 'ok', what: m[4]! }] : [];
        })
        .sort((a, b) => a.index - b.index);
    }
    async first(): Promise<Answer[]> {
      const a = await this.answers(0);
      await this.proc.waitForLine(/^ready$/, 10_000);
      return a;
    }
    /** Another request on every connection. */
    next(): Promise<Answer[]> {
      this.round++;
      this.proc.signal('SIGUSR2');
      return this.answers(this.round);
    }
  }

  /** Which director has each port; a port in several tables counts for each. */
  function spread(ports: Record<Director, Set<number>>, of: readonly Answer[]): Record<Director, number> {
    return Object.fromEntries(DIRECTORS.map((d) => [d, of.filter((a) => ports[d].has(a.port)).length])) as Record<Director, number>;
  }

  /** The ports that appear in a director's table now and did not before: flows that director saw for the first time. */
  function newlySeen(before: Record<Director, Set<number>>, after: Record<Director, Set<number>>, of: readonly Answer[]): Record<Director, number[]> {
    return Object.fromEntries(DIRECTORS.map((d) => [d, of.filter((a) => after[d].has(a.port) && !before[d].has(a.port)).map((a) => a.port)])) as Record<Director, number[]>;
  }

  beforeAll(async () => {
    lab = await startLab({ directors: 3, realServers: 3, forwarding: 'dr', router: 'bird', vipRoute: 'bgp-ecmp', families: [4] });
    for (const d of DIRECTORS) {
      confs[d] = new E2eConfig(lab, `pybal-${d}`);
      confs[d].writePool(service.name, confs[d].realServerEntries());
      writeConf(d, 'yes');
    }
    // The lab's ports are below the client's ephemeral range; TIME_WAIT leftovers do not matter (ports are never reused).
    startPybal('director1');
    startPybal('director2');
    await Promise.all([waitForPool('director1'), waitForPool('director2')]);
  }, 120_000);

  afterAll(async () => {
    await lab?.stop();
  });

  let holder: Holder;
  let first: Answer[];

  it('1. two directors: a multipath route via both; 40 connections spread over both, each answered by a real server', async () => {
    for (const d of ['director1', 'director2'] as const) {
      expect(await sysctl(d)).toBe('1');
      expect(pybals[d]!.log()).toContain('Set net.ipv4.vs.sloppy_tcp = 1 (ipvs-sloppy-tcp = yes; it was 0)');
      expect((await pybals[d]!.status()).ipvsSysctls).toEqual([
        { sysctl: 'net.ipv4.vs.sloppy_tcp', key: 'ipvs-sloppy-tcp', setting: 'yes', value: 1, services: ['web'], movedConnectionsReset: false, warning: undefined },
      ]);
    }
    const route = await waitForNextHops(['director1', 'director2']);
    console.log(`[ecmp] the router's route with two directors:\n${route}`);
    expect(route).toMatch(/nexthop via 198\.51\.100\.2 /);
    expect(route).toMatch(/nexthop via 198\.51\.100\.3 /);

    holder = new Holder('hold-ecmp', 30_000);
    first = await holder.first();
    expect(first).toHaveLength(FLOWS);
    expect(first.filter((a) => !a.ok)).toEqual([]);
    expect(new Set(first.map((a) => a.what)).size).toBeGreaterThan(1);
    const ports = await portsByDirector();
    const by = spread(ports, first);
    console.log(`[ecmp] 1. ${FLOWS} connections: director1 ${by.director1}, director2 ${by.director2}; real servers ${JSON.stringify(countBy(first.map((a) => a.what)))}`);
    // Each connection went through exactly one director, and both took some.
    expect(first.filter((a) => DIRECTORS.filter((d) => ports[d].has(a.port)).length !== 1)).toEqual([]);
    expect(by.director1).toBeGreaterThan(0);
    expect(by.director2).toBeGreaterThan(0);
    expect(by.director3).toBe(0);
    // A second request on each, nothing moved yet.
    expect((await holder.next()).map((a) => `${a.port} ${a.what}`)).toEqual(first.map((a) => `${a.port} ${a.what}`));
  });

  it('2. director3 joins: the route gains a next hop, some connections arrive at a director that never saw them open, and every one is answered by the same real server', async () => {
    startPybal('director3');
    await waitForPool('director3');
    const before = await portsByDirector();
    const route = await waitForNextHops(DIRECTORS);
    console.log(`[ecmp] the router's route with three directors:\n${route}`);
    const answers = await holder.next();
    const after = await portsByDirector();
    const moved = newlySeen(before, after, answers);
    const broken = answers.filter((a) => !a.ok);
    const sameServer = answers.filter((a, i) => a.ok && a.what === first[i]!.what).length;
    console.log(
      `[ecmp] 2. director3 joined: ${moved.director3.length} connection(s) moved to director3, ${moved.director1.length} to director1, ${moved.director2.length} to director2; ` +
        `${broken.length} broken, ${sameServer} of ${FLOWS} answered by the same real server`,
    );
    expect(broken).toEqual([]);
    expect(answers.map((a) => `${a.port} ${a.what}`)).toEqual(first.map((a) => `${a.port} ${a.what}`));
    // The proof that something moved: director3 has connections it never saw open.
    expect(moved.director3.length).toBeGreaterThan(0);
    // And it keeps them: one more round, still the same servers.
    expect((await holder.next()).map((a) => `${a.port} ${a.what}`)).toEqual(first.map((a) => `${a.port} ${a.what}`));
  });

  it("3. director1's pybal stops (SIGTERM, the VIP withdrawn): its connections move to the others, and every one is answered by the same real server", async () => {
    const before = await portsByDirector();
    const onDirector1 = first.filter((a) => before.director1.has(a.port)).length;
    expect(await pybals.director1!.terminate()).toBe(0);
    const route = await waitForNextHops(['director2', 'director3']);
    console.log(`[ecmp] the router's route after director1 left:\n${route}`);
    const answers = await holder.next();
    const after = await portsByDirector();
    const moved = newlySeen(before, after, answers);
    const broken = answers.filter((a) => !a.ok);
    console.log(
      `[ecmp] 3. director1 left: it had ${onDirector1} connection(s) in its table; ${moved.director2.length} moved to director2, ${moved.director3.length} to director3 ` +
        '(flows also shift between the remaining next hops when one is removed); ' +
        `${broken.length} broken`,
    );
    expect(broken).toEqual([]);
    expect(answers.map((a) => `${a.port} ${a.what}`)).toEqual(first.map((a) => `${a.port} ${a.what}`));
    expect(moved.director2.length + moved.director3.length).toBeGreaterThan(0);
    await holder.proc.stop();
  });

  it('4. the control: with ipvs-sloppy-tcp = no, connections moved to a director that never saw them are reset by it', async () => {
    const marks = { director2: pybals.director2!.log().length, director3: pybals.director3!.log().length };
    for (const d of ['director2', 'director3'] as const) {
      writeConf(d, 'no');
      pybals[d]!.process.signal('SIGHUP');
    }
    writeConf('director1', 'no');
    for (const d of ['director2', 'director3'] as const) {
      await waitFor(async () => (pybals[d]!.log().slice(marks[d]).includes('Set net.ipv4.vs.sloppy_tcp = 0 (ipvs-sloppy-tcp = no; it was 1)') ? true : undefined), {
        timeoutMs: 20_000,
        what: `${d} sets sloppy_tcp to 0`,
      });
      expect(await sysctl(d)).toBe('0');
    }
    const status = (await pybals.director2!.status()).ipvsSysctls;
    expect(status).toMatchObject([{ setting: 'no', value: 0, movedConnectionsReset: true }]);
    expect(status?.[0]?.warning).toBeUndefined();

    const control = new Holder('hold-ecmp-control', 31_000);
    const start = await control.first();
    expect(start.filter((a) => !a.ok)).toEqual([]);
    const before = await portsByDirector();
    const rstsBefore = await outRsts('director1');
    const again = startPybal('director1');
    // Its IPVS table is as the first pybal left it: wait for the new one to have set the sysctl.
    await again.process.waitForLine(/Set net\.ipv4\.vs\.sloppy_tcp = 0 \(ipvs-sloppy-tcp = no; it was 1\)/, 30_000);
    expect(await sysctl('director1')).toBe('0');
    await waitForNextHops(DIRECTORS);
    const answers = await control.next();
    const after = await portsByDirector();
    const broken = answers.filter((a) => !a.ok);
    const rsts = (await outRsts('director1')) - rstsBefore;
    const kept = answers.filter((a, i) => a.ok && a.what === start[i]!.what).length;
    console.log(
      `[ecmp] 4. control, sloppy_tcp = 0, director1 joined: ${broken.length} of ${FLOWS} connections broken (${JSON.stringify(countBy(broken.map((a) => a.what)))}), ` +
        `${kept} answered by the same real server; director1's stack sent ${rsts} reset(s); director1's IPVS took up ${newlySeen(before, after, answers).director1.length} of them`,
    );
    // Moved flows broke (the control is real), and every flow that still works kept its server.
    expect(broken.length).toBeGreaterThan(0);
    expect(kept).toBe(FLOWS - broken.length);
    // director1's IPVS took none of them up (it schedules only a SYN); its own stack reset them.
    expect(newlySeen(before, after, answers).director1).toEqual([]);
    expect(rsts).toBeGreaterThan(0);
    await control.proc.stop();
  });
});

function countBy(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}
