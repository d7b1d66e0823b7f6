// Two real pybal directors announcing one VIP to BIRD, which installs its
// best path in the router's kernel, so the client's traffic follows BGP: the
// stage of the failover and drain tests (test/e2e/failover.lab.test.ts,
// test/e2e/drain.lab.test.ts). With `router: 'gobgp'`, GoBGP is the router
// and the lab's kernel mirror installs its best path
// (test/e2e/gobgp-failover.lab.test.ts).
//
// Which director carried a request is read from the directors' IPVS
// connection tables (`ipvsadm -Lnc`): every request leaves the client from a
// source port of its own, and a director that forwarded it keeps an entry
// for that port for minutes (DR: FIN_WAIT, TIME_WAIT). The real servers'
// X-Served-By cannot say it: both directors use both servers. When the
// router's kernel route changed is read from `ip -tshort monitor route`
// running in the router namespace.
import { expect } from 'vitest';
import type { BgpRoute } from '../lab/routers/bgp-daemon.js';
import { waitFor, type LabProcess } from '../lab/exec.js';
import { startLab, type HttpAnswer, type Lab } from '../lab/lab.js';
import { E2eConfig, E2ePybal, type E2eService } from './pybal-lab.js';

export type Director = 'director1' | 'director2';
export const DIRECTORS: readonly Director[] = ['director1', 'director2'];

/** One entry of `ipvsadm -Lnc`. */
export type IpvsConnection = { protocol: string; state: string; source: string; sourcePort: number; virtual: string; destination: string };

export function parseConnections(text: string): IpvsConnection[] {
  const out: IpvsConnection[] = [];
  for (const line of text.split('\n')) {
    const m = /^(TCP|UDP)\s+\S+\s+(\S+)\s+(\S+):(\d+)\s+(\S+)\s+(\S+)\s*$/.exec(line);
    if (m) out.push({ protocol: m[1]!, state: m[2]!, source: m[3]!, sourcePort: Number(m[4]), virtual: m[5]!, destination: m[6]! });
  }
  return out;
}

export type LoopAnswer = { port: number; startMs: number; endMs: number; answer: HttpAnswer };

/** A client sending GETs one after another, each from a source port of its own (so that its director can be found). */
export class PortLoop {
  readonly answers: LoopAnswer[] = [];
  readonly #done: Promise<void>;
  #stopping = false;
  constructor(lab: Lab, url: string, nextPort: () => number, requestTimeoutMs: number) {
    this.#done = (async () => {
      while (!this.#stopping) {
        const port = nextPort();
        const startMs = Date.now();
        const answer = await lab.client.get(url, { localPort: port, timeoutMs: requestTimeoutMs });
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

/** The longest time between two consecutive answered requests of a loop. */
export function longestGapMs(answers: readonly LoopAnswer[]): number {
  const ends = answers.filter((a) => a.answer.status === 200).map((a) => a.endMs);
  return Math.max(0, ...ends.slice(1).map((t, i) => t - ends[i]!));
}

export type TwoDirectorsOptions = {
  /** Each director's `bgp-med`: the lower one carries the traffic. */
  med: Record<Director, number>;
  /** The service both directors run (same pool: the lab's real servers). */
  service: E2eService;
  /** [global] lines both directors get, besides their bgp-med. */
  globalExtra?: readonly string[];
  /**
   * The router: BIRD (default), or GoBGP with the lab's kernel mirror
   * standing in for its FIB (test/lab/routers/gobgp-fib.ts).
   */
  router?: 'bird' | 'gobgp';
  /** The router keeps a restarting director's routes (RFC 4724). */
  routerGracefulRestart?: boolean;
};

/** The lab, the two directors' pybal.conf and daemons, and the ways to see where the VIP's traffic goes. */
export class TwoDirectors {
  readonly lab: Lab;
  readonly vip: string;
  readonly confs = {} as Record<Director, E2eConfig>;
  readonly pybals = {} as Record<Director, E2ePybal>;
  /** `ip -4 -tshort monitor route` in the router namespace. */
  readonly monitor: LabProcess;
  readonly options: TwoDirectorsOptions;
  #starts = 0;
  // Source ports for the client's requests, never reused, below the ephemeral range.
  #nextLocalPort = 20_000;

  private constructor(lab: Lab, options: TwoDirectorsOptions) {
    this.lab = lab;
    this.options = options;
    this.vip = lab.addr.vip.v4!;
    this.monitor = lab.spawn('router', ['ip', '-4', '-tshort', 'monitor', 'route'], { name: 'router-ip-monitor' });
    for (const d of DIRECTORS) {
      this.confs[d] = new E2eConfig(lab, `pybal-${d}`);
      this.confs[d].writePool(options.service.name, this.confs[d].realServerEntries());
    }
  }

  /**
   * A lab with two directors, two DR real servers and BIRD (or GoBGP and
   * the kernel mirror) installing its best path; both pybals started, both pools in IPVS, and the VIP's route
   * via the director of the lower MED.
   */
  static async start(options: TwoDirectorsOptions): Promise<TwoDirectors> {
    const lab = await startLab({
      directors: 2,
      realServers: 2,
      forwarding: 'dr',
      router: options.router ?? 'bird',
      vipRoute: 'bgp',
      families: [4],
      ...(options.routerGracefulRestart === true ? { routerGracefulRestart: true } : {}),
    });
    const t = new TwoDirectors(lab, options);
    for (const d of DIRECTORS) {
      t.writeConf(d);
      t.startPybal(d);
    }
    await Promise.all(DIRECTORS.map((d) => t.waitForPool(d)));
    const best = options.med.director1 <= options.med.director2 ? 'director1' : 'director2';
    await t.expectBirdBest(best, DIRECTORS);
    await t.waitForKernelRoute(best);
    return t;
  }

  nextPort(): number {
    return this.#nextLocalPort++;
  }

  ip(d: Director): string {
    return this.lab.addr.directors.find((x) => x.name === d)!.v4!;
  }

  other(d: Director): Director {
    return d === 'director1' ? 'director2' : 'director1';
  }

  prefix(): string {
    return `${this.vip}/32`;
  }

  writeConf(d: Director, globalExtra: readonly string[] = []): void {
    this.confs[d].write([this.options.service], { director: d, globalExtra: [`bgp-med = ${this.options.med[d]}`, ...(this.options.globalExtra ?? []), ...globalExtra] });
  }

  startPybal(d: Director): E2ePybal {
    this.pybals[d] = E2ePybal.start(this.lab, this.confs[d].file, { director: d, name: `pybal-${d}-${++this.#starts}` });
    return this.pybals[d];
  }

  /** Both real servers in the director's IPVS table, with pybal's weight. */
  waitForPool(d: Director): Promise<boolean> {
    const want = this.lab.addr.realServers.map((r) => r.v4!).sort();
    return waitFor(
      async () => {
        const service = (await this.lab.ipvsTable(d)).find((s) => s.address === this.vip && s.port === 80);
        const have = service?.destinations.filter((x) => x.weight === 10 && x.forward === 'route').map((x) => x.address).sort();
        if (JSON.stringify(have) === JSON.stringify(want)) return true;
        throw new Error(`${d} has ${JSON.stringify(service?.destinations)}`);
      },
      { timeoutMs: 30_000, what: `both real servers in ${d}'s IPVS` },
    );
  }

  async kernelRoute(): Promise<string> {
    return (await this.lab.execOk('router', ['ip', 'route', 'show', this.prefix()])).stdout.trim();
  }

  /** Polls until the router's kernel sends the VIP to `d` alone; returns when the poll saw it. */
  async waitForKernelRoute(d: Director, timeoutMs = 30_000): Promise<number> {
    await waitFor(
      async () => {
        const route = await this.kernelRoute();
        if (route.includes(`via ${this.ip(d)}`) && !route.includes(`via ${this.ip(this.other(d))}`)) return true;
        throw new Error(`router's kernel: ${JSON.stringify(route)}`);
      },
      { timeoutMs, intervalMs: 50, what: `the router's kernel route to the VIP via ${d}` },
    );
    return Date.now();
  }

  /** Lines of the router's `ip monitor route` that name the VIP, from `mark` (a length of its output) on. */
  vipRouteEvents(mark: number): string[] {
    return this.monitor
      .output()
      .slice(mark)
      .split('\n')
      .filter((l) => l.includes(` ${this.vip} `) || l.includes(`] ${this.vip} `));
  }

  /**
   * When the router's kernel got the VIP's route via `d`, by the timestamp
   * `ip -tshort monitor route` printed with the change, looking at its
   * output from `mark` on.
   */
  routeChangeAtMs(d: Director, mark: number): number | undefined {
    const re = new RegExp(`^\\[(\\d{4})-(\\d\\d)-(\\d\\d)T(\\d\\d):(\\d\\d):(\\d\\d)\\.(\\d{6})\\] ${this.vip.replaceAll('.', '\\.')} via ${this.ip(d).replaceAll('.', '\\.')} `);
    for (const line of this.monitor.output().slice(mark).split('\n')) {
      const m = re.exec(line);
      if (m === null) continue;
      const [y, mo, day, h, mi, s, us] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
      return new Date(y, mo - 1, day, h, mi, s, Math.floor(us / 1000)).getTime();
    }
    return undefined;
  }

  async connections(d: Director): Promise<IpvsConnection[]> {
    return parseConnections(await this.lab.ipvsadm(['-Lnc'], d)).filter((c) => c.source === this.lab.addr.client.v4 && c.virtual === `${this.vip}:80`);
  }

  /** For each source port, the directors whose connection table has it. */
  async directorsByPort(): Promise<Map<number, Director[]>> {
    const byPort = new Map<number, Director[]>();
    for (const d of DIRECTORS) {
      for (const c of await this.connections(d)) byPort.set(c.sourcePort, [...(byPort.get(c.sourcePort) ?? []), d]);
    }
    return byPort;
  }

  /**
   * A loop's answered requests by the directors whose connection tables have
   * their source port (each must be in one, or in both when it was open at the
   * instant of a switch: begun through one director, finished through the other).
   */
  async answersByDirector(answers: readonly LoopAnswer[]): Promise<Record<Director | 'both', LoopAnswer[]>> {
    const byPort = await this.directorsByPort();
    const ok = answers.filter((a) => a.answer.status === 200);
    const through = (a: LoopAnswer): string => (byPort.get(a.port) ?? []).join('+');
    for (const a of ok) expect(['director1', 'director2', 'director1+director2'], `request from port ${a.port}`).toContain(through(a));
    return {
      director1: ok.filter((a) => through(a) === 'director1'),
      director2: ok.filter((a) => through(a) === 'director2'),
      both: ok.filter((a) => through(a) === 'director1+director2'),
    };
  }

  /** `n` GETs, each from a new source port; every one must be answered, and through `d` only. */
  async expectServedThrough(d: Director, n: number): Promise<void> {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const port = this.nextPort();
      ports.push(port);
      const answer = await this.lab.client.get(this.lab.vipUrl(4), { localPort: port, timeoutMs: 5_000 });
      expect(answer.status, `request from port ${port}: ${answer.error}`).toBe(200);
      expect(['rs1', 'rs2']).toContain(answer.servedBy);
    }
    const byPort = await this.directorsByPort();
    expect(ports.map((p) => byPort.get(p) ?? [])).toEqual(ports.map(() => [d]));
  }

  async birdRoutes(): Promise<BgpRoute[]> {
    return this.lab.router.route(this.prefix());
  }

  /**
   * BIRD's paths for the VIP: one per director of `present`, the best one
   * `best`'s; each with its director's MED (`meds` overrides the configured
   * ones, e.g. a drained director's). Returns the paths.
   */
  async expectBirdBest(best: Director, present: readonly Director[], meds: Partial<Record<Director, number>> = {}): Promise<BgpRoute[]> {
    await waitFor(
      async () => {
        const routes = await this.birdRoutes();
        const from = routes.map((r) => r.nextHop).sort();
        if (JSON.stringify(from) === JSON.stringify(present.map((d) => this.ip(d)).sort()) && routes.find((r) => r.best)?.nextHop === this.ip(best)) return routes;
        throw new Error(`${this.lab.router.kind} has ${JSON.stringify(routes)}`);
      },
      { timeoutMs: 30_000, what: `${this.lab.router.kind}'s best path via ${best}, paths via ${present.join(' and ')}` },
    );
    const routes = await this.birdRoutes();
    for (const d of present) {
      expect(routes.find((r) => r.nextHop === this.ip(d))).toMatchObject({ med: meds[d] ?? this.options.med[d], asPath: [this.lab.options.directorAsn ?? 64600] });
    }
    expect(routes.filter((r) => r.best).map((r) => r.nextHop)).toEqual([this.ip(best)]);
    return routes;
  }

  async stop(): Promise<void> {
    await this.lab.stop();
  }
}
