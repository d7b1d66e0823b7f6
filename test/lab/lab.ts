// The lab, from inside the guest: builds a topology (see topology.ts), starts
// the router and the real servers, and hands tests the handles they need.
//
//   const lab = await startLab({ realServers: 3, forwarding: 'dr', router: 'bird' });
//   await lab.execOk('director1', ['ipvsadm', '-A', '-t', `${lab.addr.vip.v4}:80`, '-s', 'rr']);
//   (await lab.client.get(lab.vipUrl(4))).servedBy  // 'rs2'
//   await lab.realServer('rs1').setBehaviour({ mode: 'hang' });
//   await lab.router.waitForRoute('203.0.113.1/32');
//   await lab.stop();
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlRealServer, type Behaviour, type RealServerStats } from '../support/real-server.js';
import { LabProcess, exec, execOk, waitFor, type ExecOptions, type ExecResult } from './exec.js';
import { parseIpvsadmList, parseIpvsadmStats, type IpvsServiceEntry, type IpvsStatsEntry } from './ipvsadm.js';
import { GUEST_BRIDGE, hostLinkFromEnv } from './host-link.js';
import { BirdDaemon } from './routers/bird.js';
import { GobgpDaemon } from './routers/gobgp.js';
import { GobgpKernelMirror } from './routers/gobgp-fib.js';
import { ROUTER_KINDS, formatPlan, planTopology, type DualAddress, type Family, type NamedAddress, type LabAddresses, type RouterKind, type Topology, type TopologyOptions } from './topology.js';
import { repoRoot } from './uml.js';

export type RealServerPortsOption = {
  /** Default 80. */
  http?: number;
  /** HTTPS port (self-signed certificate for the server's name, its addresses and the VIPs). */
  https?: number;
  /** Idle TCP port (holds connections, never answers). */
  tcp?: number;
  /** UDP echo port. */
  udp?: number;
  dns?: number;
  /** NAME=IP[,IP] records served by the DNS listener. */
  dnsRecords?: readonly string[];
};

export type LabOptions = TopologyOptions & {
  /** The router's BGP daemon. Default 'bird'. */
  router?: RouterKind;
  /** Default 64512. */
  routerAsn?: number;
  /** The directors' AS (what the router expects). Default 64600. */
  directorAsn?: number;
  /**
   * The router keeps a restarting director's routes (RFC 4724): BIRD's
   * `graceful restart on`, or GoBGP's `[neighbors.graceful-restart.config]
   * enabled = true` (a receiving speaker, restart-time 120).
   */
  routerGracefulRestart?: boolean;
  /** BIRD runs BFD with the directors at this pace (bird router only). */
  routerBfd?: { intervalMs: number; multiplier: number };
  /** Ports the real servers listen on, or false to start none. Default { http: 80 }. */
  realServer?: RealServerPortsOption | false;
};

export const DEFAULT_ROUTER_ASN = 64512;
export const DEFAULT_DIRECTOR_ASN = 64600;

/** True inside a lab guest booted by uml.ts (where the real kernel has IPVS). */
export function inLabGuest(): boolean {
  return process.env.PYBAL_LAB_GUEST === '1';
}

export type HttpAnswer = {
  /** curl's exit status: 0 ok, 7 refused, 28 timed out, 52 empty reply, 56 reset. */
  curlExit: number;
  status: number | undefined;
  headers: Record<string, string>;
  body: string;
  /** The real server that answered (its X-Served-By header). */
  servedBy: string | undefined;
  error: string;
};

export type GetOptions = {
  /** Default 5 s. */
  timeoutMs?: number;
  /** Source address (curl --interface): one of the client's addresses. Default: the route's. */
  from?: string;
  /** Source port (curl --local-port). Default: an ephemeral one. */
  localPort?: number;
  /** Accept the real servers' self-signed certificates (curl -k). */
  insecure?: boolean;
};

/** The client namespace: requests to the VIPs come from here, as from the Internet. */
export class LabClient {
  readonly #lab: Lab;
  constructor(lab: Lab) {
    this.#lab = lab;
  }

  /** One HTTP GET with curl (a new connection each time). */
  async get(url: string, options: GetOptions = {}): Promise<HttpAnswer> {
    const seconds = ((options.timeoutMs ?? 5_000) / 1000).toFixed(3);
    const argv = ['curl', '-sS', '-i', '--globoff', '-m', seconds];
    if (options.from !== undefined) argv.push('--interface', options.from);
    if (options.localPort !== undefined) argv.push('--local-port', String(options.localPort));
    if (options.insecure) argv.push('-k');
    const result = await this.#lab.exec('client', [...argv, url], { timeoutMs: (options.timeoutMs ?? 5_000) + 5_000 });
    return parseCurlAnswer(result);
  }

  /** `count` GETs in a row; the X-Served-By of each (undefined for a failed one). */
  async servedBy(url: string, count: number, options: GetOptions = {}): Promise<Array<string | undefined>> {
    const answers: Array<string | undefined> = [];
    for (let i = 0; i < count; i++) answers.push((await this.get(url, options)).servedBy);
    return answers;
  }

  /**
   * Sends GETs to `url` one after another until stopped, as a steady client
   * during a failure: `const load = lab.client.startLoad(url); ...; const answers = await load.stop();`
   */
  startLoad(url: string, options: { pauseMs?: number; requestTimeoutMs?: number } = {}): ClientLoad {
    return new ClientLoad(this, url, options.pauseMs ?? 0, options.requestTimeoutMs ?? 2_000);
  }

  /** Polls GETs until an answer satisfies `accept` (e.g. a => a.servedBy === 'rs2'); returns it. */
  waitForAnswer(url: string, accept: (answer: HttpAnswer) => boolean, options: { timeoutMs?: number; requestTimeoutMs?: number } = {}): Promise<HttpAnswer> {
    return waitFor(
      async () => {
        const answer = await this.get(url, { timeoutMs: options.requestTimeoutMs ?? 2_000 });
        if (accept(answer)) return answer;
        throw new Error(`last answer: ${answer.status ?? `curl exit ${answer.curlExit}`} from ${answer.servedBy ?? 'nobody'}`);
      },
      { timeoutMs: options.timeoutMs ?? 15_000, what: `an accepted answer from ${url}` },
    );
  }

  exec(argv: readonly string[], options?: ExecOptions): Promise<ExecResult> {
    return this.#lab.exec('client', argv, options);
  }
}

export type TimedAnswer = HttpAnswer & { atMs: number };

/** A client sending requests in a loop (see LabClient.startLoad). */
export class ClientLoad {
  readonly answers: TimedAnswer[] = [];
  readonly #done: Promise<void>;
  #stopping = false;

  constructor(client: LabClient, url: string, pauseMs: number, requestTimeoutMs: number) {
    const started = Date.now();
    this.#done = (async () => {
      while (!this.#stopping) {
        const answer = await client.get(url, { timeoutMs: requestTimeoutMs });
        this.answers.push({ ...answer, atMs: Date.now() - started });
        if (pauseMs > 0 && !this.#stopping) await new Promise((r) => setTimeout(r, pauseMs));
      }
    })();
  }

  /** How many answers each real server gave so far ('' counts failures). */
  countByServer(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const a of this.answers) counts[a.servedBy ?? ''] = (counts[a.servedBy ?? ''] ?? 0) + 1;
    return counts;
  }

  /** Finishes the request in flight and returns every answer. */
  async stop(): Promise<TimedAnswer[]> {
    this.#stopping = true;
    await this.#done;
    return this.answers;
  }
}

export function parseCurlAnswer(result: ExecResult): HttpAnswer {
  const answer: HttpAnswer = { curlExit: result.code, status: undefined, headers: {}, body: '', servedBy: undefined, error: result.stderr.trim() };
  const text = result.stdout;
  const split = text.search(/\r?\n\r?\n/);
  if (split < 0) return answer;
  const head = text.slice(0, split).split(/\r?\n/);
  answer.body = text.slice(split).replace(/^\r?\n\r?\n/, '');
  answer.status = Number(/^HTTP\/\S+\s+(\d+)/.exec(head[0] ?? '')?.[1]) || undefined;
  for (const line of head.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) answer.headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  answer.servedBy = answer.headers['x-served-by'];
  return answer;
}

/** A real server running in its own namespace, driven over its control socket. */
export class LabRealServer {
  readonly name: string;
  readonly addr: NamedAddress;
  readonly process: LabProcess;
  readonly controlSocket: string;

  constructor(addr: NamedAddress, process: LabProcess, controlSocket: string) {
    this.name = addr.name;
    this.addr = addr;
    this.process = process;
    this.controlSocket = controlSocket;
  }

  /** ok | down | hang | reset | slow | trickle | status | body | dns-rcode (see test/support/real-server.ts). */
  async setBehaviour(behaviour: Behaviour): Promise<void> {
    await controlRealServer(this.controlSocket, { op: 'behaviour', behaviour });
  }

  async stats(): Promise<RealServerStats> {
    const reply = await controlRealServer(this.controlSocket, { op: 'stats' });
    if (reply.stats === undefined) throw new Error(`${this.name}: no stats in reply`);
    return reply.stats;
  }

  /** Closes held connections with FIN or RST. */
  async dropConnections(how: 'fin' | 'rst'): Promise<void> {
    await controlRealServer(this.controlSocket, { op: 'drop', how });
  }
}

export type IpvsServiceOptions = {
  family: Family;
  /** Default 80. */
  port?: number;
  /** Default tcp. */
  protocol?: 'tcp' | 'udp';
  /** Default rr. */
  scheduler?: string;
  /** Default: the lab's forwarding. */
  forwarding?: 'nat' | 'dr';
  /** Default director1. */
  director?: string;
  /** Names of the real servers to add; default all. */
  realServers?: readonly string[];
  /** Default 1. */
  weight?: number;
  vipIndex?: number;
};

export type LabSpawnOptions = { cwd?: string; env?: Readonly<Record<string, string>>; name?: string };

export class Lab {
  readonly id: string;
  readonly topology: Topology;
  readonly addr: LabAddresses;
  /** Per-lab directory on hostfs for configs and logs (kept with the run's scratch). */
  readonly dir: string;
  /** Per-lab directory on the guest's tmpfs for sockets and pid files. */
  readonly runDir: string;
  readonly options: LabOptions;
  readonly client: LabClient;
  readonly #processes: LabProcess[] = [];
  readonly #realServers = new Map<string, LabRealServer>();
  readonly #daemons: Array<BirdDaemon | GobgpDaemon> = [];
  #router: BirdDaemon | GobgpDaemon | undefined;
  #mirror: GobgpKernelMirror | undefined;
  #stopped = false;
  /** The guest-side veths of linkToHost, deleted by stop(). */
  readonly #hostLinks: string[] = [];

  private constructor(topology: Topology, options: LabOptions, dir: string, runDir: string) {
    this.id = topology.id;
    this.topology = topology;
    this.addr = topology.addr;
    this.options = options;
    this.dir = dir;
    this.runDir = runDir;
    this.client = new LabClient(this);
  }

  /** The namespace of a node: 'router', 'client', 'switch', 'director1'.., 'rs1'.. ('director' = director1). */
  ns(node: string): string {
    const name = this.topology.namespaces[node === 'director' ? 'director1' : node];
    if (name === undefined) throw new Error(`lab: no node ${JSON.stringify(node)} (nodes: ${Object.keys(this.topology.namespaces).join(', ')})`);
    return name;
  }

  /** Runs a program in a node's namespace to completion. */
  exec(node: string, argv: readonly string[], options?: ExecOptions): Promise<ExecResult> {
    return exec(['ip', 'netns', 'exec', this.ns(node), ...argv], options);
  }

  /** Like exec, but a non-zero exit throws. */
  execOk(node: string, argv: readonly string[], options?: ExecOptions): Promise<ExecResult> {
    return execOk(['ip', 'netns', 'exec', this.ns(node), ...argv], options);
  }

  /** Starts a long-running program in a node's namespace; lab.stop() ends it. Output goes to <dir>/<name>.log. */
  spawn(node: string, argv: readonly string[], options: LabSpawnOptions = {}): LabProcess {
    const name = options.name ?? `${node}-${(argv[0] ?? 'proc').split('/').pop()}-${this.#processes.length}`;
    const proc = new LabProcess(name, ['ip', 'netns', 'exec', this.ns(node), ...argv], {
      cwd: options.cwd ?? repoRoot(),
      ...(options.env ? { env: options.env } : {}),
      logPath: join(this.dir, `${name.replace(/[^\w.-]/g, '_')}.log`),
    });
    this.#processes.push(proc);
    return proc;
  }

  /** `ipvsadm ARGS` in a director's namespace (default director1); throws on failure. */
  async ipvsadm(args: readonly string[], director = 'director1'): Promise<string> {
    return (await this.execOk(director, ['ipvsadm', ...args])).stdout;
  }

  /**
   * Programs a virtual service with ipvsadm (the lab's ground truth, not our
   * code): the VIP of `family` on `port`, every real server (or the listed
   * ones) as a destination with the lab's forwarding method. Returns the
   * service address as ipvsadm writes it ("203.0.113.1:80", "[2001:db8:3::1]:80").
   */
  async addIpvsService(options: IpvsServiceOptions): Promise<string> {
    const host = (a: DualAddress, what: string): string => {
      const ip = options.family === 4 ? a.v4 : a.v6;
      if (ip === undefined) throw new Error(`lab: ${what} has no IPv${options.family} address`);
      return hostForPort(ip);
    };
    const port = options.port ?? 80;
    const service = `${host(this.addr.vips[options.vipIndex ?? 0] ?? {}, 'the VIP')}:${port}`;
    const proto = options.protocol === 'udp' ? '-u' : '-t';
    const method = (options.forwarding ?? this.topology.forwarding) === 'nat' ? '-m' : '-g';
    const director = options.director ?? 'director1';
    await this.ipvsadm(['-A', proto, service, '-s', options.scheduler ?? 'rr'], director);
    const names = options.realServers ?? this.addr.realServers.map((r) => r.name);
    for (const name of names) {
      const rs = this.addr.realServers.find((r) => r.name === name);
      if (rs === undefined) throw new Error(`lab: no real server ${name}`);
      await this.ipvsadm(['-a', proto, service, '-r', `${host(rs, name)}:${port}`, method, '-w', String(options.weight ?? 1)], director);
    }
    return service;
  }

  /**
   * Puts a node on the guest's link to the host (host-link.ts): a veth from
   * the guest's bridge `hostbr` (which holds eth0, the host's tap) into the
   * node's namespace, named `hostlink` there, with one of the link's spare
   * addresses. Returns that address: the host reaches it directly (the same
   * /29 as the tap), so a program in the node that listens on it (pybal's
   * instrumentation_ips) serves the host's browser. The node gets no route
   * but the /29's; the lab's own addresses and routes are untouched.
   * Throws, saying why, when the guest has no link to the host.
   */
  async linkToHost(node = 'director'): Promise<string> {
    const link = hostLinkFromEnv();
    const ns = this.ns(node);
    // The first free slot: the kernel refuses a second hl<k>, so labs side by side never share one.
    for (const [k, address] of link.nodes.entries()) {
      const outer = `hl${k}`;
      const made = await exec(['ip', 'link', 'add', outer, 'type', 'veth', 'peer', 'name', 'hostlink', 'netns', ns]);
      if (made.code !== 0) {
        if (/exists/i.test(made.stderr)) continue;
        throw new Error(`lab: cannot link ${node} to the host: ${made.stderr.trim()}`);
      }
      this.#hostLinks.push(outer);
      await execOk(['ip', 'link', 'set', outer, 'master', GUEST_BRIDGE, 'up']);
      await this.execOk(node, ['sh', '-c', 'echo 1 > /proc/sys/net/ipv6/conf/hostlink/disable_ipv6']);
      await this.execOk(node, ['ip', 'addr', 'add', `${address}/${link.prefixLength}`, 'dev', 'hostlink']);
      await this.execOk(node, ['ip', 'link', 'set', 'hostlink', 'up']);
      return address;
    }
    throw new Error(`lab: every address of the host link (${link.nodes.join(', ')}) is in use`);
  }

  /** A director's IPVS table as `ipvsadm -Ln` shows it, parsed. */
  async ipvsTable(director = 'director1'): Promise<IpvsServiceEntry[]> {
    return parseIpvsadmList(await this.ipvsadm(['-Ln'], director));
  }

  /** A director's IPVS counters as `ipvsadm -Ln --stats --exact` shows them, parsed. */
  async ipvsStats(director = 'director1'): Promise<IpvsStatsEntry[]> {
    return parseIpvsadmStats(await this.ipvsadm(['-Ln', '--stats', '--exact'], director));
  }

  /** http://VIP/ for a family (IPv6 in brackets). */
  vipUrl(family: Family, path = '/', vipIndex = 0): string {
    const vip = this.addr.vips[vipIndex];
    const host = family === 4 ? vip?.v4 : vip?.v6;
    if (host === undefined) throw new Error(`lab: no IPv${family} VIP #${vipIndex} in this topology`);
    return `http://${hostForPort(host)}${path}`;
  }

  realServer(name: string): LabRealServer {
    const rs = this.#realServers.get(name);
    if (rs === undefined) throw new Error(`lab: no real server ${JSON.stringify(name)} running (have: ${[...this.#realServers.keys()].join(', ') || 'none'})`);
    return rs;
  }

  get realServers(): LabRealServer[] {
    return [...this.#realServers.values()];
  }

  /** The router's BGP daemon (throws when the lab was started with router: 'none'). */
  get router(): BirdDaemon | GobgpDaemon {
    if (this.#router === undefined) throw new Error('lab: started without a router (router: none)');
    return this.#router;
  }

  /**
   * With router 'gobgp' and vipRoute 'bgp': the lab's stand-in for a FIB,
   * which copies GoBGP's best paths into the router's kernel (see
   * routers/gobgp-fib.ts). Undefined otherwise.
   */
  get kernelMirror(): GobgpKernelMirror | undefined {
    return this.#mirror;
  }

  /**
   * A GoBGP instance in a director's namespace that dials the router, as a
   * stand-in for our own speaker: `announce(prefix)`, `withdraw(prefix)`.
   * GoBGP waits 5-10 s before its first connection attempt.
   */
  async startGobgpSpeaker(director = 'director1', options: { asn?: number; holdTimeSec?: number; sessionFamilies?: readonly Family[] } = {}): Promise<GobgpDaemon> {
    const index = this.addr.directors.findIndex((d) => d.name === (director === 'director' ? 'director1' : director));
    const me = this.addr.directors[index];
    if (me === undefined) throw new Error(`lab: no director ${director}`);
    const dir = join(this.dir, `gobgp-${me.name}`);
    mkdirSync(dir, { recursive: true });
    const routerAsn = this.options.routerAsn ?? DEFAULT_ROUTER_ASN;
    // One session over IPv4 carrying both families (as PyBal does) unless told otherwise.
    const sessionFamilies = options.sessionFamilies ?? (me.v4 === undefined ? [6] : [4]);
    const neighbors = sessionFamilies.map((n) => (n === 4 ? 'v4' : 'v6') as 'v4' | 'v6').flatMap((f) => {
      const remote = this.addr.router[f];
      const local = me[f];
      return remote !== undefined && local !== undefined ? [{ address: remote, asn: routerAsn, localAddress: local }] : [];
    });
    const daemon = await GobgpDaemon.start({
      namespace: this.ns(me.name),
      dir,
      asn: options.asn ?? this.options.directorAsn ?? DEFAULT_DIRECTOR_ASN,
      routerId: `198.51.100.${2 + index}`,
      listenAddresses: [],
      neighbors,
      ...(options.holdTimeSec === undefined ? {} : { holdTimeSec: options.holdTimeSec }),
    });
    this.#daemons.push(daemon);
    return daemon;
  }

  /** Ends every process, daemon and namespace of this lab. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const errors: string[] = [];
    const attempt = async (what: string, action: () => Promise<unknown>): Promise<void> => {
      try {
        await action();
      } catch (error) {
        errors.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    for (const proc of [...this.#processes].reverse()) await attempt(proc.name, () => proc.stop());
    for (const daemon of [...this.#daemons].reverse()) await attempt(daemon.kind, () => daemon.stop());
    await Promise.all([...this.#realServers.values()].map((rs) => attempt(rs.name, () => rs.process.stop())));
    if (this.#mirror) await attempt('kernel mirror', () => this.#mirror!.stop());
    if (this.#router) await attempt('router', () => this.#router!.stop());
    for (const outer of this.#hostLinks) await attempt(`host link ${outer}`, () => execOk(['ip', 'link', 'del', outer]));
    for (const step of this.topology.down) await attempt('deleting namespaces', () => execOk(step.argv, step.input === undefined ? {} : { input: step.input }));
    rmSync(this.runDir, { recursive: true, force: true });
    if (errors.length > 0) throw new Error(`lab ${this.id}: cleanup problems:\n${errors.join('\n')}`);
  }

  /** Builds a lab in the guest. Call lab.stop() when done (afterAll), also on failure. */
  static async start(options: LabOptions = {}): Promise<Lab> {
    if (!inLabGuest() || !existsSync('/proc/net/ip_vs')) {
      throw new Error('startLab needs the lab guest (a kernel with IPVS): run lab tests with `bash test/lab/run.sh [vitest args]` or `npm test`');
    }
    const routerKind = options.router ?? 'bird';
    if (!ROUTER_KINDS.includes(routerKind)) throw new Error(`startLab: router must be one of ${ROUTER_KINDS.join(', ')}, got ${String(routerKind)}`);
    const topology = planTopology(newLabId(), options);
    const dir = join(process.env.PYBAL_LAB_SCRATCH ?? '/tmp', `lab-${topology.id}`);
    const runDir = join('/run/pybal-lab', topology.id);
    mkdirSync(dir, { recursive: true });
    mkdirSync(runDir, { recursive: true });
    const lab = new Lab(topology, options, dir, runDir);
    try {
      await lab.#build();
      await lab.#startRouter(routerKind);
      if (options.realServer !== false) await lab.#startRealServers(options.realServer ?? {});
    } catch (error) {
      await lab.stop().catch(() => undefined);
      throw error;
    }
    return lab;
  }

  async #build(): Promise<void> {
    writeFileSync(join(this.dir, 'topology-up.txt'), formatPlan(this.topology.up));
    for (const step of this.topology.up) {
      const result = await exec(step.argv, { timeoutMs: 60_000, ...(step.input === undefined ? {} : { input: step.input }) });
      if (result.code !== 0) throw new Error(`lab ${this.id}: building the topology failed at\n${formatPlan([step])}(exit ${result.code}) ${result.stderr.trim()}`);
    }
  }

  async #startRouter(kind: RouterKind): Promise<void> {
    if (kind === 'none') return;
    const asn = this.options.routerAsn ?? DEFAULT_ROUTER_ASN;
    const directorAsn = this.options.directorAsn ?? DEFAULT_DIRECTOR_ASN;
    const dir = join(this.dir, kind);
    mkdirSync(dir, { recursive: true });
    const namespace = this.ns('router');
    if (kind === 'bird') {
      const neighbors = this.addr.directors.flatMap((d) =>
        (['v4', 'v6'] as const).flatMap((f) => {
          const address = d[f];
          const local = this.addr.router[f];
          return address !== undefined && local !== undefined ? [{ name: `${d.name}_${f}`, address, asn: directorAsn, localAddress: local }] : [];
        }),
      );
      this.#router = await BirdDaemon.start({
        namespace,
        dir,
        runDir: this.runDir,
        logPath: join(dir, 'bird.log'),
        asn,
        routerId: '198.51.100.1',
        neighbors,
        exportToKernel: this.topology.vipRoute !== 'static',
        ...(this.options.routerBfd !== undefined ? { bfd: this.options.routerBfd } : {}),
        ...(this.options.routerGracefulRestart === true ? { gracefulRestart: true } : {}),
      });
    } else {
      // GoBGP has no FIB of its own (only through a zebra): vipRoute 'bgp' runs the lab's kernel mirror.
      if (this.topology.vipRoute === 'bgp-ecmp') throw new Error(`lab: vipRoute 'bgp-ecmp' needs router 'bird' (the GoBGP kernel mirror installs one best path)`);
      const listen = [this.addr.router.v4, this.addr.router.v6].filter((a): a is string => a !== undefined);
      const neighbors = this.addr.directors.flatMap((d) =>
        [d.v4, d.v6].filter((a): a is string => a !== undefined).map((address) => ({ address, asn: directorAsn, passive: true })),
      );
      const router = await GobgpDaemon.start({
        namespace,
        dir,
        asn,
        routerId: '198.51.100.1',
        listenAddresses: listen,
        neighbors,
        ...(this.options.routerGracefulRestart === true ? { gracefulRestart: { restartTimeSec: 120 } } : {}),
      });
      this.#router = router;
      if (this.topology.vipRoute === 'bgp') {
        this.#mirror = GobgpKernelMirror.start({ router, families: this.topology.families, logPath: join(dir, 'kernel-mirror.log') });
      }
    }
  }

  async #startRealServers(ports: RealServerPortsOption): Promise<void> {
    const main = join(repoRoot(), 'dist', 'test', 'support', 'real-server-main.js');
    if (!existsSync(main)) throw new Error(`lab: ${main} missing; build first (npx tsc -p .)`);
    await Promise.all(
      this.addr.realServers.map(async (addr) => {
        const controlSocket = join(this.runDir, `${addr.name}.sock`);
        // Bound to each address rather than '::', so UDP answers leave from the
        // address asked (in DR, the VIP on lo).
        const vips = this.topology.forwarding === 'dr' ? this.addr.vips.flatMap((v) => [v.v4, v.v6]) : [];
        const [host, ...extra] = [addr.v4, addr.v6, ...vips].filter((a): a is string => a !== undefined);
        const argv = ['node', main, '--name', addr.name, '--host', host!, ...extra.flatMap((a) => ['--extra-host', a])];
        argv.push('--http', String(ports.http ?? 80), '--control', controlSocket);
        if (ports.https !== undefined) {
          argv.push('--https', String(ports.https));
          for (const name of [addr.name, host!, ...extra]) argv.push('--tls-name', name);
        }
        if (ports.tcp !== undefined) argv.push('--tcp', String(ports.tcp));
        if (ports.udp !== undefined) argv.push('--udp', String(ports.udp));
        if (ports.dns !== undefined) argv.push('--dns', String(ports.dns));
        for (const record of ports.dnsRecords ?? []) argv.push('--dns-record', record);
        const proc = new LabProcess(addr.name, ['ip', 'netns', 'exec', this.ns(addr.name), ...argv], {
          cwd: repoRoot(),
          logPath: join(this.dir, `${addr.name}.log`),
        });
        this.#realServers.set(addr.name, new LabRealServer(addr, proc, controlSocket));
        await proc.waitForLine(/"ready":\s*true/, 30_000);
      }),
    );
  }
}

/**
 * Loads kernel modules the guest did not load at boot (uml.ts loads IPVS,
 * its schedulers, veth, bridge and dummy): tunnels, nf_tables, persistence
 * engines. The guest's kernel cannot load them by itself: its modprobe looks
 * in the host's module tree, so they come from the UML tree uml.ts prepared.
 */
export async function loadGuestModules(names: readonly string[]): Promise<void> {
  const scratch = process.env.PYBAL_LAB_SCRATCH;
  if (!inLabGuest() || scratch === undefined) throw new Error('loadGuestModules runs only in the lab guest');
  await execOk(['modprobe', '-a', '-d', join(scratch, 'modroot'), ...names]);
}

/** An address as written before ":port" (IPv6 in brackets). */
export function hostForPort(ip: string): string {
  return ip.includes(':') ? `[${ip}]` : ip;
}

function newLabId(): string {
  for (;;) {
    const id = randomBytes(3).toString('hex');
    if (!existsSync(`/run/netns/lab${id}-switch`)) return id;
  }
}

/** Builds a lab in the guest. Call lab.stop() when done (afterAll), also on failure. */
export function startLab(options: LabOptions = {}): Promise<Lab> {
  return Lab.start(options);
}
