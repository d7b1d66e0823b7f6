/**
 * Daemon benchmark, in the lab (a UML guest with kernel IPVS), the daemon
 * itself (`node dist/cli/pybal.js`) measured from outside:
 *
 * 1. Depool and repool latency: a service monitored by ProxyFetch (interval
 *    1 s, fall 1, rise 1, timeout 1 s) over three lab real servers; rs1 fails
 *    (BENCH_FAIL_MODE, default `down`: connections refused) and recovers, 20
 *    times each (BENCH_TRIALS); the time from the failure (or the recovery) to
 *    the kernel's table without (or with) the destination, polled over netlink.
 * 2. Scale: 1,000 services x 10 servers monitored by IdleConnection (a held
 *    connection each: no work at steady state, so the figure is the daemon's
 *    own cost); resident memory and CPU per second over 30 s of steady state
 *    (BENCH_STEADY_SECONDS), then the time and IPVS requests of a SIGHUP that
 *    changes nothing and of one that changes one service.
 *
 *   npm run bench:daemon    (boots a lab guest; the last line is `depool-latency-worst-ms X`)
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createIpvsClient, type IpvsClient } from '../src/ipvs/client.js';
import { createSystemClock } from '../src/runtime/clock.js';
import { execOk, LabProcess } from '../test/lab/exec.js';
import { startLab, type Lab } from '../test/lab/lab.js';
import { repoRoot } from '../test/lab/uml.js';
import { runGuestBench } from './lib/guest.js';
import { startLoopbackServers } from './lib/loopback-servers-process.js';
import { processCpuMs, processRssBytes } from './lib/proc.js';
import { median, worst } from './lib/stats.js';
import { daemonCommand } from '../src/cli/node-options.js';

/** 0 leaves the latency part out (and BENCH_SERVICES=0 the scale part). */
const TRIALS = Number(process.env.BENCH_TRIALS ?? 20);
const FAIL_MODE = process.env.BENCH_FAIL_MODE === 'hang' ? 'hang' : 'down';
/** How often the kernel's table is read during the latency trials. */
const POLL_MS = 20;
const SERVICES = Number(process.env.BENCH_SERVICES ?? 1000);
const SERVERS_PER_SERVICE = 10;
const STEADY_SECONDS = Number(process.env.BENCH_STEADY_SECONDS ?? 30);
/** Services spread over this many ports (a VIP carries one service per port). */
const PORTS = 5;
const FIRST_PORT = 18000;
const METRICS_PORT = 9090;
/** The service the second SIGHUP changes (its scheduler). */
const CHANGED_SERVICE = Math.floor(SERVICES / 2);

const clock = createSystemClock();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const say = (line: string): void => void process.stdout.write(`${line}\n`);

// ---------------------------------------------------------------- config files

type Keys = Readonly<Record<string, string>>;

/** A pybal.conf: [global] and one section per service. */
function pybalConf(global: Keys, services: readonly { name: string; keys: Keys }[]): string {
  const section = (name: string, keys: Keys): string => `[${name}]\n${Object.entries(keys).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`;
  return [section('global', global), ...services.map((s) => section(s.name, s.keys))].join('\n');
}

/** A pool file in PyBal's legacy format. */
function poolFile(hosts: readonly string[]): string {
  return hosts.map((host) => `{ 'host': '${host}', 'weight': 10, 'enabled': True }\n`).join('');
}

/** BENCH_CPU_PROF=<dir>: the daemons write a V8 CPU profile there when they exit (for finding where time goes). */
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF;

function daemonArgv(conf: string, socket: string, logFile = '-'): string[] {
  const profile = CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`] : [];
  return [...daemonCommand(process.execPath), ...profile, join(repoRoot(), 'dist/cli/pybal.js'), '-c', conf, '--log-file', logFile, '--control-socket', socket];
}

/** Something that grows: a process's output or a log file. */
interface Text {
  length(): number;
  /** The lines after `from` (an earlier length()). */
  linesSince(from: number): string[];
}

function outputOf(proc: LabProcess): Text {
  return { length: () => proc.output().length, linesSince: (from) => proc.output().slice(from).split('\n') };
}

function fileText(path: string): Text {
  const read = (): Buffer => (existsSync(path) ? readFileSync(path) : Buffer.alloc(0));
  return { length: () => read().length, linesSince: (from) => read().subarray(from).toString('utf8').split('\n') };
}

/** Polls until `probe` returns a value; throws naming `what` after timeoutMs. */
async function until<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs: number, everyMs = 5): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------- 1. latency

interface Latencies {
  readonly depoolMs: number[];
  readonly repoolMs: number[];
}

async function latency(): Promise<Latencies> {
  const lab: Lab = await startLab({ realServers: 3, router: 'none', families: [4] });
  try {
    const vip = lab.addr.vip.v4;
    const hosts = lab.addr.realServers.map((r) => r.v4).filter((h): h is string => h !== undefined);
    const victim = hosts[0];
    if (vip === undefined || victim === undefined || hosts.length !== 3) throw new Error('lab has no IPv4 addresses');
    const pool = join(lab.dir, 'pool-web');
    writeFileSync(pool, poolFile(hosts));
    const conf = join(lab.dir, 'pybal.conf');
    writeFileSync(
      conf,
      pybalConf({ bgp: 'no', instrumentation: 'no' }, [
        {
          name: 'web_80',
          keys: {
            protocol: 'tcp', ip: vip, port: '80', scheduler: 'rr', config: `file://${pool}`, monitors: "[ 'ProxyFetch' ]",
            // Low enough that one of three servers can always be depooled.
            'depool-threshold': '.1',
            'proxyfetch.url': "[ 'http://www.example.org/health' ]",
            'proxyfetch.interval': '1', 'proxyfetch.timeout': '1', 'proxyfetch.fall': '1', 'proxyfetch.rise': '1',
          },
        },
      ]),
    );
    const daemon = lab.spawn('director', daemonArgv(conf, join(lab.runDir, 'pybal.sock')), { name: 'pybal' });
    const watchProcess = lab.spawn('director', [process.execPath, join(repoRoot(), 'dist/bench/lib/ipvs-watch.js'), vip, '80', String(POLL_MS)], { name: 'ipvs-watch' });
    const watch = outputOf(watchProcess);
    const has = (line: string): boolean | undefined => {
      const m = /^(\d+) (.*)$/.exec(line);
      return m ? (m[2] ?? '').split(',').includes(victim) : undefined;
    };
    /** Waits for the first table change after `from` where the victim's presence is `present`; its wall time. */
    const changeTo = (from: number, present: boolean): Promise<number> =>
      until(
        () => {
          const line = watch.linesSince(from).find((l) => has(l) === present);
          return line === undefined ? undefined : Number(line.split(' ')[0]);
        },
        `${victim} ${present ? 'back in' : 'gone from'} IPVS`,
        15_000,
      );
    const all = hosts.slice().sort().join(',');
    await until(() => (watch.linesSince(0).some((l) => l.endsWith(` ${all}`)) ? true : undefined), 'all three servers in IPVS', 60_000, 100);
    const rs = lab.realServer('rs1');
    const depoolMs: number[] = [];
    const repoolMs: number[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      // A random phase against the monitors' 1 s interval.
      await sleep(Math.random() * 1000);
      let from = watch.length();
      let t0 = Date.now();
      await rs.setBehaviour({ mode: FAIL_MODE });
      depoolMs.push((await changeTo(from, false)) - t0);
      await sleep(Math.random() * 1000);
      from = watch.length();
      t0 = Date.now();
      await rs.setBehaviour({ mode: 'ok' });
      repoolMs.push((await changeTo(from, true)) - t0);
      process.stderr.write(`  trial ${trial + 1}/${TRIALS}: depool ${depoolMs.at(-1)} ms, repool ${repoolMs.at(-1)} ms\n`);
    }
    if (!daemon.running) throw new Error(`the daemon exited:\n${daemon.output().slice(-2000)}`);
    return { depoolMs, repoolMs };
  } finally {
    await lab.stop();
  }
}

// ---------------------------------------------------------------- 2. scale

/** 10,000 distinct loopback addresses: 127.1.0.1 onwards (all of 127/8 is local). */
function serverAddress(service: number, server: number): string {
  const k = service * SERVERS_PER_SERVICE + server;
  return `127.1.${Math.floor(k / 250)}.${(k % 250) + 1}`;
}

function scaleServices(dir: string, changed: boolean): { name: string; keys: Keys }[] {
  return Array.from({ length: SERVICES }, (_, i) => ({
    name: `svc_${String(i).padStart(4, '0')}`,
    keys: {
      protocol: 'tcp',
      // One service per (VIP, port): 203.0.113.11 onwards, PORTS ports each.
      ip: `203.0.113.${11 + Math.floor(i / PORTS)}`,
      port: String(FIRST_PORT + (i % PORTS)),
      scheduler: changed && i === CHANGED_SERVICE ? 'rr' : 'wrr',
      config: `file://${join(dir, 'pools', `svc_${i}`)}`,
      monitors: "[ 'IdleConnection' ]",
    },
  }));
}

async function ipvsRequests(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`)).text();
  const m = /^pybal_ipvs_requests_total(?:\{\})? (\S+)$/m.exec(text);
  if (!m) throw new Error('no pybal_ipvs_requests_total in /metrics');
  return Number(m[1]);
}

async function countDests(client: IpvsClient): Promise<number> {
  let n = 0;
  for (const s of await client.listServices()) n += (await client.listDests(s.key)).length;
  return n;
}

/** Waits until the request counter has not moved for `quietMs`; its value. */
async function requestsSettled(quietMs: number): Promise<number> {
  let last = await ipvsRequests();
  let since = performance.now();
  for (;;) {
    // Not too often: /metrics with 10,000 servers is a large page, and the guest has one CPU.
    await sleep(1000);
    const now = await ipvsRequests();
    if (now !== last) {
      last = now;
      since = performance.now();
    } else if (performance.now() - since >= quietMs) return now;
  }
}

/** Sends SIGHUP and resolves with the ms until the daemon logs that the reload finished. */
async function hangup(daemon: LabProcess, log: Text): Promise<{ reloadMs: number; line: string; t0: number }> {
  const from = log.length();
  const t0 = performance.now();
  daemon.signal('SIGHUP');
  const line = await until(() => log.linesSince(from).find((l) => /Configuration reloaded|keeping the running configuration|Reload failed/.test(l)), 'the reload to finish', 120_000, 2);
  if (!/Configuration reloaded/.test(line)) throw new Error(`reload failed: ${line}`);
  return { reloadMs: performance.now() - t0, line: line.replace(/^.*Configuration reloaded/, 'Configuration reloaded').slice(0, 100), t0 };
}

async function scale(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pybal-bench-daemon-'));
  const conf = join(dir, 'pybal.conf');
  let servers: ChildProcess | undefined;
  let daemon: LabProcess | undefined;
  const client = await createIpvsClient({ clock, timeoutMs: 30_000 });
  try {
    await execOk(['ipvsadm', '-C']);
    mkdirSync(join(dir, 'pools'));
    for (let i = 0; i < SERVICES; i++) {
      writeFileSync(join(dir, 'pools', `svc_${i}`), poolFile(Array.from({ length: SERVERS_PER_SERVICE }, (_, j) => serverAddress(i, j))));
    }
    const global = { bgp: 'no', instrumentation: 'yes', instrumentation_port: String(METRICS_PORT), instrumentation_ips: "[ '127.0.0.1' ]" };
    writeFileSync(conf, pybalConf(global, scaleServices(dir, false)));
    // One listener per port on 0.0.0.0 answers every 127/8 server address.
    servers = await startLoopbackServers(
      Array.from({ length: PORTS }, (_, p) => ({ addresses: ['0.0.0.0'], tcpPort: FIRST_PORT + p, httpPort: FIRST_PORT + 100 + p })),
    );

    // The daemon runs in the guest's own namespace (no lab needed), where its API and our netlink socket are.
    const t0 = performance.now();
    // It logs to a file (on tmpfs), as in production: every write is synchronous.
    const log = fileText(join(dir, 'pybal.log'));
    daemon = new LabProcess('pybal-scale', daemonArgv(conf, join(dir, 'pybal.sock'), join(dir, 'pybal.log')), { cwd: repoRoot(), logPath: join(dir, 'pybal.out') });
    const total = SERVICES * SERVERS_PER_SERVICE;
    // Programmed when the requests for every service and destination have been sent (checked against the kernel below).
    const started = daemon;
    await until(async () => (!started.running || (await ipvsRequests().catch(() => 0)) >= SERVICES + total ? true : undefined), 'the table to be programmed', 300_000, 1000);
    if (!daemon.running) throw new Error(`the daemon exited:\n${daemon.output().slice(-2000)}`);
    const startupRequests = await requestsSettled(3000);
    const startupS = (performance.now() - t0) / 1000;
    const dests = await countDests(client);
    if (dests !== total) throw new Error(`the kernel has ${dests} destinations, expected ${total}`);
    /** The real servers' counts: connections made in all, and open now. */
    const serverStats = (): Promise<{ tcpConnections: number; tcpHeld: number }> =>
      new Promise((resolve) => {
        servers?.once('message', (m: { tcpConnections: number; tcpHeld: number }) => resolve(m));
        servers?.send({ cmd: 'stats' });
      });
    const connectionsMade = async (): Promise<number> => (await serverStats()).tcpConnections;
    const connections = await connectionsMade();
    say(
      `scale: ${SERVICES} services x ${SERVERS_PER_SERVICE} servers (${total} IdleConnection monitors, one held connection each; pool files on tmpfs, each stat()ed every second): ` +
        `table of ${dests} destinations programmed and quiet ${startupS.toFixed(1)} s after start (${startupRequests} IPVS requests), ${connections} connections made`,
    );
    // The monitors' first connections may still be under way once the table is programmed: the steady state starts
    // once every monitor holds its connection.
    const allHeld = await until(async () => {
      const now = await serverStats();
      return now.tcpHeld >= total ? now : undefined;
    }, `all ${total} monitors to hold their connection`, 300_000, 1000);
    say(`every monitor holds its connection ${((performance.now() - t0) / 1000).toFixed(1)} s after start (${allHeld.tcpConnections} connections made in all)`);

    // Steady state: nothing to do but pool-file polls, timers and the held connections.
    const pid = daemon.pid;
    const logFrom = log.length();
    const cpu0 = processCpuMs(pid);
    const s0 = performance.now();
    const rss: number[] = [];
    while (performance.now() - s0 < STEADY_SECONDS * 1000) {
      await sleep(1000);
      rss.push(processRssBytes(pid));
    }
    const cpuPerS = (processCpuMs(pid) - cpu0) / ((performance.now() - s0) / 1000);
    const steadyRequests = (await ipvsRequests()) - startupRequests;
    const steadyConnections = (await connectionsMade()) - allHeld.tcpConnections;
    const steadyLines = log.linesSince(logFrom).filter(Boolean);
    const steadyLogLines = steadyLines.length;
    say(
      `steady state over ${STEADY_SECONDS} s: rss ${(median(rss) / 2 ** 20).toFixed(0)} MB (peak ${(worst(rss) / 2 ** 20).toFixed(0)} MB), ` +
        `cpu ${cpuPerS.toFixed(1)} ms/s (${(cpuPerS / 10).toFixed(2)}% of a core), IPVS requests meanwhile ${steadyRequests}, ` +
        `new monitor connections ${steadyConnections}, log lines ${steadyLogLines}`,
    );
    // What the daemon said at rest, if anything (the first few lines).
    for (const line of steadyLines.slice(0, 3)) say(`  steady-state log: ${line}`);

    // SIGHUP with the file unchanged.
    const before1 = await ipvsRequests();
    const same = await hangup(daemon, log);
    const delta1 = (await requestsSettled(3000)) - before1;
    say(`SIGHUP, nothing changed: reloaded in ${same.reloadMs.toFixed(0)} ms (${same.line}); IPVS requests ${delta1} (expected 0)`);

    // SIGHUP with one service's scheduler changed.
    const changedKey = scaleServices(dir, true)[CHANGED_SERVICE]!.keys;
    writeFileSync(conf, pybalConf(global, scaleServices(dir, true)));
    const before2 = await ipvsRequests();
    const one = await hangup(daemon, log);
    const key = { family: 4, protocol: 'tcp', address: changedKey['ip']!, port: Number(changedKey['port']) } as const;
    await until(async () => ((await client.listServices()).find((s) => 'port' in s.key && s.key.address === key.address && s.key.port === key.port)?.scheduler === 'rr' ? true : undefined), 'the new scheduler in the kernel', 60_000, 20);
    const inKernelMs = performance.now() - one.t0;
    const delta2 = (await requestsSettled(3000)) - before2;
    const destsAfter = (await client.listDests(key)).length;
    say(
      `SIGHUP, one service's scheduler changed (wrr -> rr): reloaded in ${one.reloadMs.toFixed(0)} ms (${one.line}), ` +
        `in the kernel after ${inKernelMs.toFixed(0)} ms (polled every 20 ms); IPVS requests ${delta2}; that service still has ${destsAfter} destinations`,
    );

    say(`for scale: ${SERVICES} stat() calls (fs.promises, as the pool-file poll makes each second) cost ${(await statCostMs(join(dir, 'pools'))).toFixed(0)} ms of CPU in this guest`);

    daemon.signal('SIGTERM');
    const exit = await daemon.exited;
    say(`SIGTERM: exit status ${exit.code ?? exit.signal}`);
  } finally {
    await daemon?.stop();
    servers?.kill('SIGTERM');
    client.close();
    await execOk(['ipvsadm', '-C']).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * CPU of SERVICES fs.promises.stat() calls in this process (median of 5):
 * UML syscalls are slow, and the daemon's steady state is mostly the
 * once-a-second stat() of every pool file.
 */
async function statCostMs(poolDir: string): Promise<number> {
  const paths = Array.from({ length: SERVICES }, (_, i) => join(poolDir, `svc_${i}`));
  const runs: number[] = [];
  for (let round = 0; round < 5; round++) {
    const u0 = process.cpuUsage();
    for (const p of paths) await stat(p, { bigint: true });
    const u = process.cpuUsage(u0);
    runs.push((u.user + u.system) / 1000);
  }
  return median(runs);
}

// ---------------------------------------------------------------- main

async function measure(): Promise<void> {
  say(`daemon benchmark: UML guest kernel (one CPU), node ${process.version}; the daemon is dist/cli/pybal.js, measured from outside`);
  const { depoolMs, repoolMs } = TRIALS > 0 ? await latency() : { depoolMs: [], repoolMs: [] };
  const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(' ');
  const how = `ProxyFetch interval 1 s, fall 1, rise 1, timeout 1 s; IPVS polled every ${POLL_MS} ms over netlink, so figures are +0..${POLL_MS} ms coarse`;
  say(`depool (rs1 ${FAIL_MODE === 'down' ? "'down': listeners closed, connections refused" : "'hang': connections accepted, never answered"}; ${how}): median ${median(depoolMs).toFixed(0)} ms, worst ${worst(depoolMs).toFixed(0)} ms over ${depoolMs.length} trials [${fmt(depoolMs)}]`);
  say(`repool (rs1 'ok' again): median ${median(repoolMs).toFixed(0)} ms, worst ${worst(repoolMs).toFixed(0)} ms over ${repoolMs.length} trials [${fmt(repoolMs)}]`);
  if (SERVICES > 0) await scale();
  say('peer comparison: none; PyBal (Python 2, Twisted) cannot run here and publishes no figures for these measures');
  say(`depool-latency-worst-ms ${worst(depoolMs).toFixed(0)}`);
}

runGuestBench({ name: 'daemon bench', scriptUrl: import.meta.url, measure, timeoutMs: 1_200_000, openFiles: 65_536 });
