/**
 * Real routers as test peers: BIRD 2 and GoBGP run as the router side of a
 * session with our speaker, each in its own scratch directory, optionally in
 * a network namespace. Configs follow shared/reference/bgp-peers.md.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type RouterKind = 'bird' | 'gobgp';

export interface RouteSeen {
  readonly prefix: string;
  readonly asPath: readonly number[];
  readonly med: number | undefined;
  readonly nextHop: string;
  readonly communities: readonly string[];
}

export interface NeighborSpec {
  /** Protocol name (BIRD) / label. */
  readonly name: string;
  /** The speaker's source address. */
  readonly address: string;
  readonly asn: number;
  /** Dial the neighbor instead of waiting (used for GoBGP as a speaker in the benchmark). */
  readonly active?: { readonly port: number };
}

export interface RouterSpec {
  readonly kind: RouterKind;
  readonly asn: number;
  readonly routerId: string;
  /** Listen address and port. */
  readonly address: string;
  readonly port: number;
  readonly neighbors: readonly NeighborSpec[];
  readonly holdTimeSec?: number;
  /** Run inside this network namespace (direct eBGP, no multihop). */
  readonly netns?: string;
  /** GoBGP API port (on the namespace's loopback). */
  readonly apiPort?: number;
  /**
   * GoBGP's `--log-level`. Default `debug`: the log then explains a failed
   * interop test. Benchmarks pass `info`, the level an operator runs it at:
   * debug logging slows GoBGP down (issue 11).
   */
  readonly gobgpLogLevel?: 'debug' | 'info' | 'warn';
}

export interface Router {
  readonly spec: RouterSpec;
  readonly dir: string;
  /** The router's command line, as run (before any `ip netns exec`). */
  readonly command: readonly string[];
  routes(family: 4 | 6, neighbor?: string): Promise<Map<string, RouteSeen>>;
  /** True when the session with this neighbor is Established. */
  established(neighbor: string): Promise<boolean>;
  /** Stops the process (SIGTERM: it sends its own Cease) and starts it again with the same config. */
  restart(): Promise<void>;
  /** Asks the router to send ROUTE-REFRESH to this neighbor. */
  refresh(neighbor: string): Promise<void>;
  /** SIGSTOP / SIGCONT: a router that stops answering. */
  freeze(): void;
  thaw(): void;
  log(): Promise<string>;
  stop(): Promise<void>;
}

async function sh(cmd: string, args: string[], netns?: string): Promise<{ stdout: string; code: number }> {
  const [file, argv] = netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, args];
  try {
    const { stdout } = await run(file, argv, { maxBuffer: 64 * 1024 * 1024 });
    return { stdout, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; code?: number };
    return { stdout: e.stdout ?? '', code: typeof e.code === 'number' ? e.code : 1 };
  }
}

function birdConfig(spec: RouterSpec, dir: string): string {
  const protocols = spec.neighbors.map(
    (n) => `
protocol bgp ${n.name} {
    local ${spec.address} port ${spec.port} as ${spec.asn};
    neighbor ${n.address}${n.active ? ` port ${n.active.port}` : ''} as ${n.asn};
    ${n.active ? '' : 'passive on;'}
    strict bind on;
    ${spec.netns ? '' : 'multihop;'}
    hold time ${spec.holdTimeSec ?? 90};
    connect retry time 1;
    error wait time 0, 0;
    ipv4 { import all; export none; gateway recursive; igp table master4; };
    ipv6 { import all; export none; gateway recursive; igp table master6; next hop address ::1; };
}`,
  );
  return `log "${dir}/bird.log" all;
router id ${spec.routerId};
protocol device { }
protocol static static4 { ipv4; route 0.0.0.0/0 via "lo"; }
protocol static static6 { ipv6; route ::/0 via "lo"; }
${protocols.join('\n')}
`;
}

function gobgpConfig(spec: RouterSpec): string {
  const neighbors = spec.neighbors.map(
    (n) => `
[[neighbors]]
  [neighbors.config]
    neighbor-address = "${n.address}"
    peer-as = ${n.asn}
  [neighbors.transport.config]
    passive-mode = ${n.active ? 'false' : 'true'}
    local-address = "${spec.address}"
    ${n.active ? `remote-port = ${n.active.port}` : ''}
  [neighbors.timers.config]
    hold-time = ${spec.holdTimeSec ?? 90}
    keepalive-interval = ${Math.max(1, Math.floor((spec.holdTimeSec ?? 90) / 3))}
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
`,
  );
  return `[global.config]
  as = ${spec.asn}
  router-id = "${spec.routerId}"
  port = ${spec.port}
  local-address-list = ["${spec.address}"]
${neighbors.join('\n')}
`;
}

function parseBird(text: string): Map<string, RouteSeen> {
  const out = new Map<string, RouteSeen>();
  let current: { prefix: string; asPath: number[]; med: number | undefined; nextHop: string; communities: string[] } | undefined;
  const flush = (): void => {
    if (current) out.set(current.prefix, current);
    current = undefined;
  };
  for (const line of text.split('\n')) {
    const head = /^(\S+\/\d+)\s+\S+\s+\[/.exec(line);
    if (head) {
      flush();
      current = { prefix: head[1] as string, asPath: [], med: undefined, nextHop: '', communities: [] };
      continue;
    }
    if (!current) continue;
    const attr = /^\s+BGP\.(\w+):\s*(.*)$/.exec(line);
    if (!attr) continue;
    const [, key, value = ''] = attr;
    if (key === 'as_path') current.asPath = value.split(/\s+/).filter(Boolean).map(Number);
    else if (key === 'med') current.med = Number(value);
    else if (key === 'next_hop') current.nextHop = value.split(/\s+/)[0] ?? '';
    else if (key === 'community') current.communities = [...value.matchAll(/\((\d+),(\d+)\)/g)].map((m) => `${m[1]}:${m[2]}`);
  }
  flush();
  return out;
}

interface GobgpPath {
  attrs?: { type: number; as_paths?: { asns: number[] }[]; metric?: number; nexthop?: string; communities?: number[] }[];
  'neighbor-ip'?: string;
}

function parseGobgp(json: string, neighbor: string | undefined): Map<string, RouteSeen> {
  const out = new Map<string, RouteSeen>();
  const trimmed = json.trim();
  if (!trimmed) return out;
  const data = JSON.parse(trimmed) as Record<string, GobgpPath[]>;
  for (const [prefix, paths] of Object.entries(data)) {
    const path = paths.find((p) => neighbor === undefined || p['neighbor-ip'] === neighbor);
    if (!path) continue;
    let asPath: number[] = [];
    let med: number | undefined;
    let nextHop = '';
    let communities: string[] = [];
    for (const a of path.attrs ?? []) {
      if (a.type === 2) asPath = (a.as_paths ?? []).flatMap((s) => s.asns);
      if (a.type === 4) med = a.metric;
      if ((a.type === 3 || a.type === 14) && a.nexthop) nextHop = a.nexthop;
      if (a.type === 8) communities = (a.communities ?? []).map((c) => `${Math.floor(c / 65536)}:${c % 65536}`);
    }
    out.set(prefix, { prefix, asPath, med, nextHop, communities });
  }
  return out;
}

export async function startRouter(spec: RouterSpec): Promise<Router> {
  const dir = await mkdtemp(join(tmpdir(), `pybal-${spec.kind}-`));
  const ctl = join(dir, 'bird.ctl');
  const conf = join(dir, spec.kind === 'bird' ? 'bird.conf' : 'gobgpd.toml');
  await writeFile(conf, spec.kind === 'bird' ? birdConfig(spec, dir) : gobgpConfig(spec));
  const apiPort = spec.apiPort ?? 27100;
  const api = `127.0.0.1:${apiPort}`;
  let child: ChildProcess | undefined;
  const args =
    spec.kind === 'bird'
      ? ['bird', '-f', '-c', conf, '-s', ctl, '-P', join(dir, 'bird.pid')]
      : ['gobgpd', '-f', conf, '--api-hosts', api, '--pprof-disable', '--log-plain', `--log-level=${spec.gobgpLogLevel ?? 'debug'}`];

  const launch = (): void => {
    const [file, argv] = spec.netns ? ['ip', ['netns', 'exec', spec.netns, ...args]] : [args[0] as string, args.slice(1)];
    const out = openSync(join(dir, `${spec.kind}.out`), 'a');
    child = spawn(file, argv, { stdio: ['ignore', out, out] });
    closeSync(out);
    // `ip netns exec` execs the router in place, so the child's pid is the router's.
  };
  const cli = (args: string[]): Promise<{ stdout: string; code: number }> =>
    spec.kind === 'bird' ? sh('birdc', ['-s', ctl, ...args]) : sh('gobgp', ['-u', '127.0.0.1', '-p', String(apiPort), ...args], spec.netns);
  const waitReady = async (): Promise<void> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await cli(spec.kind === 'bird' ? ['show', 'status'] : ['global']);
      if (r.code === 0) return;
      if (Date.now() > deadline) {
        const output = await readFile(join(dir, `${spec.kind}.out`), 'utf8').catch(() => '');
        throw new Error(`${spec.kind} did not start:\n${output.slice(-2000)}`);
      }
      await new Promise((r2) => setTimeout(r2, 20));
    }
  };
  const kill = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGCONT');
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };

  launch();
  await waitReady();

  return {
    spec,
    dir,
    command: args,
    async routes(family, neighbor) {
      if (spec.kind === 'bird') {
        const proto = neighbor ?? spec.neighbors[0]?.name ?? '';
        const r = await cli(['show', 'route', 'all', 'protocol', proto]);
        const all = parseBird(r.stdout);
        return new Map([...all].filter(([p]) => (family === 6) === p.includes(':')));
      }
      const r = await cli(['global', 'rib', '-a', family === 4 ? 'ipv4' : 'ipv6', '-j']);
      const address = neighbor === undefined ? undefined : spec.neighbors.find((n) => n.name === neighbor)?.address;
      return parseGobgp(r.stdout, address);
    },
    async established(neighbor) {
      if (spec.kind === 'bird') {
        const r = await cli(['show', 'protocols', 'all', neighbor]);
        return /BGP state:\s+Established/.test(r.stdout);
      }
      const n = spec.neighbors.find((x) => x.name === neighbor);
      const r = await cli(['neighbor', n?.address ?? neighbor]);
      return /BGP state\s*=\s*(BGP_FSM_)?ESTABLISHED/i.test(r.stdout);
    },
    async refresh(neighbor) {
      const n = spec.neighbors.find((x) => x.name === neighbor);
      const r = spec.kind === 'bird' ? await cli(['reload', 'in', neighbor]) : await cli(['neighbor', n?.address ?? neighbor, 'softresetin']);
      if (r.code !== 0) throw new Error(`${spec.kind} refresh failed: ${r.stdout}`);
    },
    async restart() {
      await kill();
      launch();
      await waitReady();
    },
    freeze() {
      child?.kill('SIGSTOP');
    },
    thaw() {
      child?.kill('SIGCONT');
    },
    async log() {
      try {
        return await readFile(join(dir, spec.kind === 'bird' ? 'bird.log' : 'gobgp.out'), 'utf8');
      } catch {
        return '';
      }
    },
    async stop() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `probe` until it returns true, or throws after `timeoutMs` with `what`. */
export async function waitFor(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 10_000, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A pair of network namespaces joined by a veth link, with documentation addresses. */
export interface NetnsPair {
  readonly router: string;
  readonly speaker: string;
  readonly routerV4: string;
  readonly speakerV4: string;
  readonly routerV6: string;
  readonly speakerV6: string;
  destroy(): Promise<void>;
}

export async function createNetnsPair(tag: string): Promise<NetnsPair> {
  const router = `pybal-${tag}-rtr`;
  const speaker = `pybal-${tag}-lb`;
  const ip = async (...args: string[]): Promise<void> => {
    const r = await sh('ip', args);
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed`);
  };
  await sh('ip', ['netns', 'del', router]);
  await sh('ip', ['netns', 'del', speaker]);
  const pair: NetnsPair = {
    router,
    speaker,
    routerV4: '192.0.2.1',
    speakerV4: '192.0.2.2',
    routerV6: '2001:db8::1',
    speakerV6: '2001:db8::2',
    async destroy() {
      await sh('ip', ['netns', 'del', speaker]);
      await sh('ip', ['netns', 'del', router]);
    },
  };
  try {
    await ip('netns', 'add', router);
    await ip('netns', 'add', speaker);
    const veth = `v${tag}`.slice(0, 10);
    await ip('-n', router, 'link', 'add', `${veth}r`, 'type', 'veth', 'peer', 'name', `${veth}l`, 'netns', speaker);
    for (const ns of [router, speaker]) await ip('-n', ns, 'link', 'set', 'lo', 'up');
    await ip('-n', router, 'addr', 'add', `${pair.routerV4}/24`, 'dev', `${veth}r`);
    await ip('-n', router, 'addr', 'add', `${pair.routerV6}/64`, 'dev', `${veth}r`, 'nodad');
    await ip('-n', speaker, 'addr', 'add', `${pair.speakerV4}/24`, 'dev', `${veth}l`);
    await ip('-n', speaker, 'addr', 'add', `${pair.speakerV6}/64`, 'dev', `${veth}l`, 'nodad');
    await ip('-n', router, 'link', 'set', `${veth}r`, 'up');
    await ip('-n', speaker, 'link', 'set', `${veth}l`, 'up');
    // The carrier comes up a moment later; until then the link is not RUNNING and
    // programs that list the host's addresses (os.networkInterfaces) do not see it.
    await waitFor('the veth link up', async () => {
      const states = await Promise.all(
        [[router, `${veth}r`], [speaker, `${veth}l`]].map(async ([ns, dev]) => (await sh('ip', ['-n', ns as string, '-br', 'link', 'show', dev as string])).stdout),
      );
      return states.every((line) => /\sUP\s/.test(line));
    }, 5000);
  } catch (err) {
    await pair.destroy();
    throw err;
  }
  return pair;
}
