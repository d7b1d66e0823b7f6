/**
 * Pool application at scale, in the lab (a UML guest with kernel IPVS, one
 * CPU), the daemon itself (`node dist/cli/pybal.js`, bgp = no but in part 3,
 * its API on 127.0.0.1:9090) measured from outside, with `ipvsadm -R` (commands on its
 * stdin, as PyBal runs it) applying the same tables in the same boot as the
 * peer. Figures are printed, never asserted.
 *
 * 1. One service, pool of N (BENCH_POOL_SIZES, default 10000,100000),
 *    `monitors = []`: cold (the daemon spawned with N servers in its pool
 *    file: timed to its `Start-up complete` line, logged once the kernel
 *    has acknowledged every service, then confirmed by one dump) and running
 *    (a daemon at N/2 whose pool file is rewritten with N: timed until the
 *    kernel has all N destinations, polled every 200 ms over netlink from a
 *    separate process); meanwhile a client GETs /pools
 *    every 50 ms and the worst latency is kept (from when each request was
 *    due; one in flight is counted until it answers); then the daemon's own
 *    event-loop lag maximum (nodejs_eventloop_lag_max_seconds), its CPU
 *    and RSS. Then `ipvsadm -R` of the same table.
 * 2. Weight change: pools of BENCH_WEIGHT_SIZES (default 20000,40000), one
 *    server's weight 10 -> 7 -> 10 ... in the pool file (BENCH_WEIGHT_TRIALS,
 *    default 5), time from the write to the daemon's line saying the kernel
 *    took it, then confirmed by one dump, with `monitors = []` and
 *    `monitors = ["IdleConnection"]`. Then (unless BENCH_RESYNC_TRIALS=0,
 *    default 3) with `monitors = []`, each edit written as a periodic resync
 *    starts dumping the pool (`ipvs-resync-interval = 1`, which the daemon
 *    stretches to 20 dumps; --debug, whose line says when a dump starts):
 *    the same times, and when that resync's dump was merged, which an edit
 *    waited for at least when the dump held up the writes.
 * 3. Cold start of BENCH_SERVICES (default 1000) services x 10 servers,
 *    IdleConnection against real listeners, BGP on as directors run it
 *    (towards a peer that refuses the connection: BGP_TOWARDS_NO_ROUTER): time to the first service in IPVS
 *    and to every service with all its servers (from the log, as in part 1,
 *    then confirmed by one dump); then `ipvsadm -R` of it. BENCH_SERVICES_TRIALS
 *    (default 1) runs it that many times; with BENCH_BASE_BUILD=<dist/cli of
 *    another build> each trial runs that build first, then this one, in the
 *    same boot (the guest's speed varies by a third from boot to boot).
 *
 * Real servers are 127/8 addresses: all of them local (one listener on
 * 0.0.0.0 serves them all to IdleConnection), and IPVS accepts local
 * addresses as destinations. Pool files live on the guest's tmpfs (fine
 * mtimes) and are replaced by rename, as a deployment tool does.
 *
 *   npm run bench:pools    (boots a lab guest; the last line is `pool-apply-100k-seconds X`)
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createIpvsClient, type IpvsClient } from '../src/ipvs/client.js';
import { createSystemClock } from '../src/runtime/clock.js';
import { exec, LabProcess } from '../test/lab/exec.js';
import { repoRoot } from '../test/lab/uml.js';
import { startApiPoller, type ApiPoller } from './lib/api-poller.js';
import { LogTail, logLineTime } from './lib/log-tail.js';
import { START_RATE_PER_SECOND } from '../src/monitors/start-pacer.js';
import { runGuestBench } from './lib/guest.js';
import type { LatencySummary } from './lib/latency-tracker.js';
import { startLoopbackServers } from './lib/loopback-servers-process.js';
import {
  formatIpvsadmDelete,
  formatIpvsadmRestore,
  formatLegacyPool,
  formatPoolsConf,
  BGP_TOWARDS_NO_ROUTER,
  poolServerAddresses,
  spreadServices,
  weighted,
  type BenchService,
  type RestoreService,
  type ServiceSlot,
} from './lib/pools-config.js';
import { machineSpeed, pageFaultCostUs, processCpuMs, processFaults, processRssBytes } from './lib/proc.js';
import { median } from './lib/stats.js';
import { parseProgressLine, serviceId, type ProgressLine, type WatchSpec } from './lib/table-progress.js';
import { benchDaemonCommand, PYBAL_ENV, PYBAL_NODE_FLAGS, snapshotPybalBuild } from './lib/pybal-build.js';

const sizes = (text: string): number[] => text.split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0);
const POOL_SIZES = sizes(process.env.BENCH_POOL_SIZES ?? '10000,100000');
const WEIGHT_SIZES = sizes(process.env.BENCH_WEIGHT_SIZES ?? '20000,40000');
const WEIGHT_TRIALS = Number(process.env.BENCH_WEIGHT_TRIALS ?? 5);
const RESYNC_TRIALS = Number(process.env.BENCH_RESYNC_TRIALS ?? 3);
/** A resync comes every 20 dumps: 40,000 servers dump in 3 to 4 s in the guest. */
const RESYNC_WAIT_MS = 300_000;
const SERVICES = Number(process.env.BENCH_SERVICES ?? 1000);
const SERVICES_TRIALS = Math.max(1, Number(process.env.BENCH_SERVICES_TRIALS ?? 1));
/** BENCH_BASE_BUILD=<dir>: the dist/cli directory of another build, whose cold start of many services runs beside this one's. */
const BASE_BUILD = process.env.BENCH_BASE_BUILD;
/** How long a daemon may take to get a table into the kernel before the case is reported as failed. */
const APPLY_TIMEOUT_MS = Number(process.env.BENCH_APPLY_TIMEOUT_S ?? 300) * 1000;
const WEIGHT_TIMEOUT_MS = 20_000;
/** BENCH_KEEP_DIR=<dir>: each daemon's log and output are copied there when it stops (for diagnosis). */
const KEEP_DIR = process.env.BENCH_KEEP_DIR;
/** BENCH_CPU_PROF=<dir>: the daemons write V8 CPU profiles there when they exit (<dir>/<daemon's name>.<n>/, one per thread). */
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF;
const SERVERS_PER_SERVICE = 10;
const METRICS_PORT = 9090;
const API_PERIOD_MS = 50;
const APPLY_POLL_MS = 200;
/** The one large service of parts 1 and 2. */
const POOL_SLOT: ServiceSlot = { vip: '203.0.113.250', port: 18100 };
/** Part 3's services: PORTS ports per VIP from FIRST_PORT, VIPs 203.0.113.11 onwards. */
const PORTS = 5;
const FIRST_PORT = 18000;

const clock = createSystemClock();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const say = (line: string): void => void process.stdout.write(`${line}\n`);
/** This boot's cost of a page's first touch, us (pageFaultCostUs), measured once before the cases. */
let faultCostUs = NaN;
/** Progress, on stderr (the figures go to stdout). */
const note = (line: string): void => void process.stderr.write(`  ${line}\n`);
const secs = (ms: number): string => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : 'n/a');
const mb = (bytes: number): string => (Number.isFinite(bytes) ? (bytes / 2 ** 20).toFixed(0) : 'n/a');

// ---------------------------------------------------------------- processes

/** Replaces a file by rename: a reader sees the old or the new text, never half of it. */
function replaceFile(path: string, text: string): void {
  writeFileSync(`${path}.new`, text);
  renameSync(`${path}.new`, path);
}

interface Daemon {
  readonly proc: LabProcess;
  readonly logPath: string;
  /** Wall ms just before spawn. */
  readonly spawnedAt: number;
}

/** The pybal.js of this build (and of BENCH_BASE_BUILD's), copied when the bench starts (bench/lib/pybal-build.ts). */
let pybalMain = '';
/** Daemons spawned so far (numbers their CPU profiles). */
let spawned = 0;
let baseMain = '';

function spawnDaemon(dir: string, conf: string, name: string, extraArgs: readonly string[] = [], main = pybalMain): Daemon {
  const logPath = join(dir, `${name}.log`);
  // A directory per daemon (the trials of a case spawn daemons of one name), a profile per thread in it.
  const profile = CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${join(CPU_PROF_DIR, `${name}.${++spawned}`)}`] : [];
  // BENCH_PYBAL_ENV and BENCH_PYBAL_NODE_FLAGS (bench/lib/pybal-build.ts) for this build's daemon only, not BENCH_BASE_BUILD's.
  const argv = [...benchDaemonCommand(process.execPath, main === pybalMain), ...profile, main, '-c', conf, '--log-file', logPath, '--control-socket', join(dir, `${name}.sock`), ...extraArgs];
  const spawnedAt = Date.now();
  const proc = new LabProcess(name, argv, { cwd: repoRoot(), logPath: join(dir, `${name}.out`) });
  return { proc, logPath, spawnedAt };
}

/** The daemon's log lines matching `pattern` (at most `max`, the last ones). */
function logLines(d: Daemon, pattern: RegExp, max = 8): string[] {
  const text = (existsSync(d.logPath) ? readFileSync(d.logPath, 'utf8') : '') + d.proc.output();
  return text.split('\n').filter((l) => pattern.test(l)).slice(-max);
}

async function stopDaemon(d: Daemon): Promise<string> {
  d.proc.signal('SIGTERM');
  const exit = await Promise.race([d.proc.exited, sleep(60_000).then(() => undefined)]);
  if (exit === undefined) await d.proc.stop();
  if (KEEP_DIR) {
    mkdirSync(KEEP_DIR, { recursive: true });
    for (const path of [d.logPath, d.logPath.replace(/\.log$/, '.out')]) if (existsSync(path)) copyFileSync(path, join(KEEP_DIR, basename(path)));
  }
  return exit === undefined ? 'did not exit within 60 s of SIGTERM (killed)' : `exit ${exit.code ?? exit.signal}`;
}

interface WatchStats {
  readonly polls: number;
  readonly medianMs: number;
  readonly worstMs: number;
}

class TableWatch {
  private readonly proc: LabProcess;
  private parsedTo = 0;
  private readonly seen: ProgressLine[] = [];

  constructor(dir: string, name: string, spec: WatchSpec) {
    const specPath = join(dir, `${name}.json`);
    writeFileSync(specPath, JSON.stringify(spec));
    this.proc = new LabProcess(name, [process.execPath, join(repoRoot(), 'dist/bench/lib/table-watch.js'), specPath], { cwd: repoRoot() });
  }

  /** Progress lines so far. */
  lines(): readonly ProgressLine[] {
    const text = this.proc.output();
    const end = text.lastIndexOf('\n') + 1;
    if (end > this.parsedTo) {
      for (const l of text.slice(this.parsedTo, end).split('\n')) {
        const p = parseProgressLine(l);
        if (p) this.seen.push(p);
      }
      this.parsedTo = end;
    }
    return this.seen;
  }

  last(): ProgressLine | undefined {
    return this.lines().at(-1);
  }

  /** The first line from index `from` on that satisfies `test`; throws after timeoutMs or when `alive()` turns false. */
  async waitFor(test: (p: ProgressLine) => boolean, what: string, timeoutMs: number, alive: () => boolean, from = 0): Promise<ProgressLine> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.lines().slice(from).find(test);
      if (found) return found;
      if (!this.proc.running) throw new Error(`the table watcher exited: ${this.proc.output().slice(-500)}`);
      if (!alive()) throw new Error(`the daemon exited while waiting for ${what}`);
      if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
      await sleep(10);
    }
  }

  async stop(): Promise<WatchStats> {
    this.proc.signal('SIGTERM');
    await Promise.race([this.proc.exited, sleep(30_000)]);
    await this.proc.stop();
    const m = /^stats (\d+) (\S+) (\S+)$/m.exec(this.proc.output());
    return m ? { polls: Number(m[1]), medianMs: Number(m[2]), worstMs: Number(m[3]) } : { polls: 0, medianMs: NaN, worstMs: NaN };
  }
}

interface Scrape {
  readonly lagMaxS: number;
  readonly ipvsRequests: number;
}

async function scrape(): Promise<Scrape> {
  const text = await (await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`)).text();
  const value = (name: string): number => {
    const m = new RegExp(`^${name}(?:\\{\\})? (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : NaN;
  };
  return { lagMaxS: value('nodejs_eventloop_lag_max_seconds'), ipvsRequests: value('pybal_ipvs_requests_total') };
}

/** Runs argv with `stdin` on its standard input (a pipe); fails on a non-zero exit or any stderr. */
async function runWithInput(argv: string[], stdin: string, timeoutMs: number): Promise<void> {
  const r = await exec(argv, { input: stdin, timeoutMs });
  if (r.code !== 0 || r.stderr) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr.slice(0, 500)}`);
}

/** Deletes those of `slots` that are in the kernel, and nothing else. */
async function deleteOwn(client: IpvsClient, slots: readonly ServiceSlot[]): Promise<void> {
  const own = new Set(slots.map((s) => serviceId(s.vip, s.port)));
  const present = (await client.listServices()).flatMap((s) => ('port' in s.key && own.has(serviceId(s.key.address, s.key.port)) ? [{ vip: s.key.address, port: s.key.port }] : []));
  if (present.length > 0) await runWithInput(['ipvsadm', '-R'], formatIpvsadmDelete(present), 300_000);
}

/** How many destinations the kernel has for each slot (0 for one it lacks). */
async function destCounts(client: IpvsClient, slots: readonly ServiceSlot[]): Promise<number[]> {
  const counts: number[] = [];
  for (const s of slots) counts.push((await client.listDests({ family: 4, protocol: 'tcp', address: s.vip, port: s.port }).catch(() => [])).length);
  return counts;
}

async function destsOf(client: IpvsClient, slots: readonly ServiceSlot[]): Promise<number> {
  return (await destCounts(client, slots)).reduce((a, b) => a + b, 0);
}

/**
 * A cold start timed from the daemon's own log, with nothing dumping the
 * table meanwhile (one dump of 10,000 destinations takes the guest's one CPU
 * for up to 2 s, from the daemon being timed): `first` is the first line
 * saying the kernel took IPVS writes (`IPVS: applied ...` after a batch, or
 * `IPVS: add service ...` for a small one); `done` is `Start-up complete`,
 * logged once the kernel has acknowledged every configured service as
 * desired. Both are the times written on the lines, from spawn.
 */
async function coldStartFromLog(daemon: Daemon): Promise<{ firstMs: number; doneMs: number; line: string }> {
  const tail = new LogTail(daemon.logPath);
  const deadline = Date.now() + APPLY_TIMEOUT_MS;
  let firstAt: number | undefined;
  for (;;) {
    for (const line of tail.read()) {
      const at = logLineTime(line);
      if (at === undefined) continue;
      if (firstAt === undefined && /\[ipvs\] INFO: IPVS: (applied [1-9]|add service)/.test(line)) firstAt = at;
      if (/INFO: Start-up complete: /.test(line)) {
        return { firstMs: (firstAt ?? NaN) - daemon.spawnedAt, doneMs: at - daemon.spawnedAt, line: line.slice(line.indexOf('Start-up')) };
      }
      if (/WARN: Start-up complete without/.test(line)) throw new Error(`the daemon gave up waiting: ${line}`);
    }
    if (!daemon.proc.running) throw new Error('the daemon exited before start-up was complete');
    if (Date.now() > deadline) throw new Error(`no start-up line within ${APPLY_TIMEOUT_MS / 1000} s`);
    await sleep(20);
  }
}

/** One dump: throws unless every slot is a service with `dests` destinations. */
async function confirmTable(client: IpvsClient, slots: readonly ServiceSlot[], dests: number): Promise<void> {
  const counts = await destCounts(client, slots);
  const complete = counts.filter((n) => n === dests).length;
  const total = counts.reduce((a, b) => a + b, 0);
  if (complete !== slots.length) throw new Error(`the log said start-up was complete, but a dump found ${complete} of ${slots.length} services complete (${total} destinations)`);
}

function ipvsadmVersion(): Promise<string> {
  return exec(['ipvsadm', '--version']).then(
    (r) => r.stdout.trim() || r.stderr.trim(),
    (e: Error) => `unknown (${e.message})`,
  );
}

// ---------------------------------------------------------------- figures

interface ApplyRow {
  readonly label: string;
  readonly servers: number;
  /** Daemon: spawn (or pool write) to the whole table in the kernel. */
  readonly applyMs: number;
  /** Spawn to the first destination (or service) in the kernel. */
  readonly firstMs?: number;
  readonly peerMs?: number;
  readonly api?: LatencySummary;
  /** Why API requests failed (the daemon's start included). */
  readonly apiErrors?: string[];
  readonly lagMaxS?: number;
  readonly cpuMs?: number;
  /** The daemon's page faults (minor and major) so far. */
  readonly faults?: number;
  readonly rssBytes?: number;
  readonly ipvsRequests?: number;
  readonly watch?: WatchStats;
  readonly error?: string;
}

interface WeightRow {
  readonly servers: number;
  readonly monitors: string;
  /** From the write until a dump showed the weight. */
  readonly trialsMs: number[];
  /** From the write until the daemon logged the kernel's acknowledgement. */
  readonly ackMs: number[];
  /** Edits written as a resync started dumping: from the write until that resync's dump was merged, and whether the edit was acknowledged before. */
  readonly resync?: { readonly mergedMs: number[]; readonly ackedBeforeMerge: number };
  readonly api?: LatencySummary;
  readonly apiErrors?: string[];
  readonly watch?: WatchStats;
  readonly note?: string;
}

const rows: ApplyRow[] = [];
const weightRows: WeightRow[] = [];

function apiText(api: LatencySummary | undefined): string {
  if (api === undefined) return 'n/a';
  return `${api.worstMs.toFixed(0)} (p99 ${api.p99Ms.toFixed(0)}, median ${api.medianMs.toFixed(0)}, ${api.count} req${api.failures ? `, ${api.failures} failed` : ''})`;
}

// ---------------------------------------------------------------- part 1

function poolService(dir: string, monitors: readonly string[]): BenchService {
  return { name: 'bigpool', vip: POOL_SLOT.vip, port: POOL_SLOT.port, scheduler: 'wrr', poolPath: join(dir, 'pool-big'), monitors };
}

/** A daemon with one service; resolves when its N destinations are in the kernel. */
/** Writes the one large service's pool (weight 10 each) and a configuration naming it; returns the configuration's path. */
function writeBigPool(dir: string, name: string, hosts: readonly string[], monitors: readonly string[], globalExtra: readonly string[] = []): string {
  const service = poolService(dir, monitors);
  replaceFile(service.poolPath, formatLegacyPool(weighted(hosts, 10)));
  const conf = join(dir, `${name}.conf`);
  writeFileSync(conf, formatPoolsConf([service], METRICS_PORT, globalExtra));
  return conf;
}

/** Resyncs as often as the daemon allows, and its debug lines saying when each dumps. */
const RESYNC_OFTEN = { globalExtra: ['ipvs-resync-interval = 1'], args: ['--debug'] } as const;

async function startBigPool(
  dir: string,
  name: string,
  hosts: readonly string[],
  monitors: readonly string[],
  watchSpec: WatchSpec,
  options: { globalExtra?: readonly string[]; args?: readonly string[] } = {},
): Promise<{ daemon: Daemon; watch: TableWatch; api: ApiPoller }> {
  const conf = writeBigPool(dir, name, hosts, monitors, options.globalExtra);
  const watch = new TableWatch(dir, `${name}-watch`, watchSpec);
  await sleep(500); // the watcher's first (empty) poll
  const daemon = spawnDaemon(dir, conf, name, options.args);
  const api = startApiPoller(`http://127.0.0.1:${METRICS_PORT}/pools`, API_PERIOD_MS);
  return { daemon, watch, api };
}

async function coldPool(dir: string, client: IpvsClient, n: number): Promise<void> {
  const conf = writeBigPool(dir, `cold-${n}`, poolServerAddresses(n), []);
  await coldStart(dir, client, { label: `cold start, 1 service x ${n}`, name: `cold-${n}`, conf, slots: [POOL_SLOT], destsPerService: n });
}

/**
 * Spawns a daemon on `conf`, times its start from its log (coldStartFromLog)
 * while a client polls the API, confirms the table with one dump, and adds
 * the row; then stops the daemon and deletes its services from the kernel.
 */
async function coldStart(
  dir: string,
  client: IpvsClient,
  c: { label: string; name: string; conf: string; slots: readonly ServiceSlot[]; destsPerService: number; main?: string },
): Promise<void> {
  const servers = c.slots.length * c.destsPerService;
  const speed = machineSpeed();
  note(`${c.label}... (the guest just before: a first touch ${speed.faultUs.toFixed(0)} us, a system call ${speed.syscallUs.toFixed(1)} us)`);
  const daemon = spawnDaemon(dir, c.conf, c.name, [], c.main);
  const api = startApiPoller(`http://127.0.0.1:${METRICS_PORT}/pools`, API_PERIOD_MS);
  try {
    const started = await coldStartFromLog(daemon);
    const latency = await api.stop();
    const cpuMs = processCpuMs(daemon.proc.pid);
    const faults = processFaults(daemon.proc.pid);
    await confirmTable(client, c.slots, c.destsPerService);
    const m = await scrape();
    const row: ApplyRow = {
      label: c.label, servers, applyMs: started.doneMs, firstMs: started.firstMs,
      api: latency, apiErrors: api.errors(), lagMaxS: m.lagMaxS, cpuMs, faults, rssBytes: processRssBytes(daemon.proc.pid), ipvsRequests: m.ipvsRequests,
    };
    rows.push(row);
    note(`${c.label}: first in IPVS at ${secs(row.firstMs ?? NaN)} s, all at ${secs(row.applyMs)} s (${started.line}), API worst ${apiText(latency)} ms, lag max ${(m.lagMaxS * 1000).toFixed(0)} ms`);
  } catch (error) {
    rows.push({ label: c.label, servers, applyMs: NaN, error: failure(error, daemon) });
    await api.stop();
  } finally {
    note(`daemon: ${await stopDaemon(daemon)}`);
    await deleteOwn(client, c.slots);
  }
}

function failure(error: unknown, daemon: Daemon, watch?: TableWatch): string {
  const last = watch?.last();
  const where = watch === undefined ? '' : last ? `; the kernel had ${last.dests} destinations in ${last.present} service(s) at ${secs(last.atMs - daemon.spawnedAt)} s after spawn` : '; the kernel never had the service';
  const log = logLines(daemon, /error|warn|fail|exception|heap|killed/i);
  return `${error instanceof Error ? error.message : String(error)}${where}${daemon.proc.running ? '' : `; the daemon exited:\n${daemon.proc.output().slice(-1500)}`}${log.length ? `\n      log: ${log.join('\n      log: ')}` : ''}`;
}

async function growingPool(dir: string, client: IpvsClient, n: number): Promise<void> {
  const hosts = poolServerAddresses(n);
  const half = Math.floor(n / 2);
  const label = `running, pool ${half} -> ${n}`;
  note(`${label}...`);
  const { daemon, watch, api } = await startBigPool(dir, `grow-${n}`, hosts.slice(0, half), [], {
    pollMs: APPLY_POLL_MS,
    services: [{ address: POOL_SLOT.vip, port: POOL_SLOT.port, dests: n }],
  });
  const alive = (): boolean => daemon.proc.running;
  try {
    await watch.waitFor((p) => p.dests >= half, `${half} destinations in IPVS`, APPLY_TIMEOUT_MS, alive);
    await api.stop();
    // Past the pool source's 2 s re-read window, with nothing left to do.
    await sleep(3000);
    await scrape(); // resets the event-loop histogram: the next scrape covers the growth only
    const from = watch.lines().length;
    const cpu0 = processCpuMs(daemon.proc.pid);
    const before = await scrape();
    const grow = startApiPoller(`http://127.0.0.1:${METRICS_PORT}/pools`, API_PERIOD_MS);
    const text = formatLegacyPool(weighted(hosts, 10));
    const t0 = Date.now();
    replaceFile(poolService(dir, []).poolPath, text);
    const done = await watch.waitFor((p) => p.complete === 1, `${n} destinations in IPVS`, APPLY_TIMEOUT_MS, alive, from);
    const latency = await grow.stop();
    const cpuMs = processCpuMs(daemon.proc.pid) - cpu0;
    const m = await scrape();
    const row: ApplyRow = {
      label, servers: n - half, applyMs: done.atMs - t0, api: latency, apiErrors: grow.errors(), lagMaxS: m.lagMaxS, cpuMs, rssBytes: processRssBytes(daemon.proc.pid),
      ipvsRequests: m.ipvsRequests - before.ipvsRequests, watch: await watch.stop(),
    };
    rows.push(row);
    note(`${label}: ${secs(row.applyMs)} s after the write, API worst ${apiText(latency)} ms, lag max ${(m.lagMaxS * 1000).toFixed(0)} ms`);
  } catch (error) {
    rows.push({ label, servers: n - half, applyMs: NaN, error: failure(error, daemon, watch) });
    await api.stop();
    await watch.stop();
  } finally {
    note(`daemon: ${await stopDaemon(daemon)}`);
    await deleteOwn(client, [POOL_SLOT]);
  }
}

/** `ipvsadm -R` of `services`, timed from spawn to exit; the table checked, then deleted. */
async function peerApply(client: IpvsClient, services: readonly RestoreService[]): Promise<number> {
  const text = formatIpvsadmRestore(services);
  const want = services.reduce((n, s) => n + s.servers.length, 0);
  await deleteOwn(client, services);
  const t0 = performance.now();
  await runWithInput(['ipvsadm', '-R'], text, 900_000);
  const ms = performance.now() - t0;
  const got = await destsOf(client, services);
  await deleteOwn(client, services);
  if (got !== want) throw new Error(`ipvsadm -R left ${got} destinations, expected ${want}`);
  return ms;
}

// ---------------------------------------------------------------- part 2

/** `duringResync`: each edit is written as a periodic resync starts dumping the pool (see the top of this file). */
async function weightChange(dir: string, client: IpvsClient, n: number, monitors: readonly string[], duringResync = false): Promise<void> {
  const hosts = poolServerAddresses(n);
  // A server in the middle of the pool, away from either end of the file.
  const target = hosts[Math.floor(n * 0.6)] ?? '';
  const monitorsText = (monitors.length === 0 ? '[]' : `["${monitors.join('", "')}"]`) + (duringResync ? ", each edit as a periodic resync's dump starts" : '');
  const trials = duringResync ? RESYNC_TRIALS : WEIGHT_TRIALS;
  note(`weight change in a pool of ${n}, monitors = ${monitorsText}, server ${target}...`);
  const { daemon, watch, api } = await startBigPool(
    dir,
    `weight-${n}-${monitors.length}${duringResync ? '-resync' : ''}`,
    hosts,
    monitors,
    {
      pollMs: APPLY_POLL_MS,
      services: [{ address: POOL_SLOT.vip, port: POOL_SLOT.port, dests: n }],
      weightOf: { address: POOL_SLOT.vip, port: POOL_SLOT.port, dest: target },
    },
    duringResync ? RESYNC_OFTEN : {},
  );
  const alive = (): boolean => daemon.proc.running;
  const trialsMs: number[] = [];
  const ackMs: number[] = [];
  const mergedMs: number[] = [];
  let ackedBeforeMerge = 0;
  let problem: string | undefined;
  let latency: LatencySummary | undefined;
  let apiErrors: string[] = [];
  let watchStats: WatchStats | undefined;
  try {
    const ready = await watch.waitFor((p) => p.complete === 1 && p.weight === 10, `${n} destinations in IPVS`, APPLY_TIMEOUT_MS, alive);
    note(`  all ${n} in IPVS ${secs(ready.atMs - daemon.spawnedAt)} s after spawn`);
    await api.stop();
    // The trials are timed by the daemon's own line once the kernel has
    // answered, and confirmed by one dump after it: a watcher dumping 20,000
    // destinations all along would take a good part of the guest's one CPU
    // from the daemon it measures.
    watchStats = await watch.stop();
    // Steady state, as an operator edits: with monitors, their starts (paced at
    // START_RATE_PER_SECOND) are over first, with a few seconds to spare.
    const startsOverAt = monitors.length === 0 ? 0 : daemon.spawnedAt + (n / START_RATE_PER_SECOND) * 1000 + 5000;
    if (startsOverAt > Date.now() + 3000) note(`  waiting ${secs(startsOverAt - Date.now())} s more for the monitors' paced start to end`);
    await sleep(Math.max(3000, startsOverAt - Date.now()));
    const trialsApi = startApiPoller(`http://127.0.0.1:${METRICS_PORT}/pools`, API_PERIOD_MS);
    try {
      for (let trial = 0; trial < trials; trial++) {
        const weight = trial % 2 === 0 ? 7 : 10;
        if (duringResync) {
          // As the next periodic resync starts dumping the pool.
          await new LogTail(daemon.logPath).waitFor(/IPVS: resync: dumping/, RESYNC_WAIT_MS);
        } else {
          // A random phase against the source's 1 s poll.
          await sleep(1000 + Math.random() * 1000);
        }
        const tail = new LogTail(daemon.logPath);
        const merges = duringResync ? new LogTail(daemon.logPath) : undefined;
        // The new text is made first: the time is the daemon's from the moment the file is written.
        const text = formatLegacyPool(weighted(hosts, 10, new Map([[target, weight]])));
        const t0 = Date.now();
        replaceFile(poolService(dir, monitors).poolPath, text);
        try {
          // The daemon logs the edit once the kernel has acknowledged it; a dump then confirms it.
          const ack = tail.waitFor(new RegExp(`IPVS: edit server .* -> ${target.replace(/\./g, '\\.')}:\\d+: .*=> \\S+ weight ${weight}\\b`), WEIGHT_TIMEOUT_MS);
          ack.catch(() => undefined); // awaited below, unless the dump never shows it
          const acked = await ack;
          const seen = await confirmWeight(client, target, weight, t0 + WEIGHT_TIMEOUT_MS);
          trialsMs.push(seen.atMs - t0);
          ackMs.push(acked.atMs - t0);
          let merge = '';
          if (merges) {
            const merged = await merges.waitFor(/IPVS: resync: merging/, WEIGHT_TIMEOUT_MS);
            mergedMs.push(merged.atMs - t0);
            if (acked.atMs <= merged.atMs) ackedBeforeMerge++;
            merge = `; the resync's dump was merged ${merged.atMs - t0} ms after the write (${merged.line.slice(merged.line.indexOf('merging'))})`;
          }
          note(`  trial ${trial + 1}: weight ${weight} acknowledged by the kernel ${acked.atMs - t0} ms after the write (the daemon's log), confirmed by a dump after ${seen.atMs - t0} ms${merge}`);
        } catch (error) {
          // The server's own lines (not 127.20.96.1 matching 127.20.96.196), its weight ones first.
          const mine = logLines(daemon, new RegExp(`${target.replace(/\./g, '\\.')}(?![0-9])`), 1000);
          const merged = [...mine.filter((l) => /weight/i.test(l)).slice(-3), ...mine.filter((l) => !/weight/i.test(l)).slice(-2)];
          problem = `trial ${trial + 1} (weight ${weight}, pool file replaced at ${new Date(t0).toISOString()}): ${(error as Error).message}; the kernel shows weight ${await weightIn(client, target).catch((e: Error) => e.message)}` +
            (merged.length ? `\n      log: ${merged.join('\n      log: ')}` : '; the log names the server nowhere');
          note(problem);
          break;
        }
      }
    } finally {
      latency = await trialsApi.stop();
      apiErrors = trialsApi.errors();
    }
  } catch (error) {
    problem = failure(error, daemon, watch);
    await api.stop();
  } finally {
    watchStats ??= await watch.stop();
    weightRows.push({
      servers: n, monitors: monitorsText, trialsMs, ackMs, api: latency, apiErrors, watch: watchStats,
      ...(duringResync ? { resync: { mergedMs, ackedBeforeMerge } } : {}),
      ...(problem ? { note: problem } : {}),
    });
    note(`daemon: ${await stopDaemon(daemon)}`);
    await deleteOwn(client, [POOL_SLOT]);
  }
}

/** The weight the kernel has for `address` in the weight service (one dump). */
async function weightIn(client: IpvsClient, address: string): Promise<number | undefined> {
  const dests = await client.listDests({ family: 4, protocol: 'tcp', address: POOL_SLOT.vip, port: POOL_SLOT.port });
  return dests.find((d) => d.address === address)?.weight;
}

/** Dumps until the kernel shows `weight` for `address` (the first dump should: the daemon said the kernel has it). */
async function confirmWeight(client: IpvsClient, address: string, weight: number, deadlineMs: number): Promise<{ atMs: number }> {
  for (;;) {
    const got = await weightIn(client, address);
    if (got === weight) return { atMs: Date.now() };
    if (Date.now() > deadlineMs) throw new Error(`the daemon logged weight ${weight} for ${address}, but the kernel shows ${got ?? 'no such server'}`);
    await sleep(100);
  }
}

// ---------------------------------------------------------------- part 3

async function coldServices(dir: string, client: IpvsClient): Promise<RestoreService[]> {
  const slots = spreadServices(SERVICES, PORTS, FIRST_PORT);
  const hosts = poolServerAddresses(SERVICES * SERVERS_PER_SERVICE, 1);
  const poolDir = join(dir, 'pools');
  mkdirSync(poolDir, { recursive: true });
  const services: BenchService[] = slots.map((s, i) => ({
    name: `svc_${String(i).padStart(4, '0')}`, vip: s.vip, port: s.port, scheduler: 'wrr', poolPath: join(poolDir, `svc_${i}`), monitors: ['IdleConnection'],
  }));
  const restore: RestoreService[] = slots.map((s, i) => ({
    vip: s.vip, port: s.port, scheduler: 'wrr', servers: weighted(hosts.slice(i * SERVERS_PER_SERVICE, (i + 1) * SERVERS_PER_SERVICE), 10),
  }));
  services.forEach((s, i) => writeFileSync(s.poolPath, formatLegacyPool(restore[i]?.servers ?? [])));
  const conf = join(dir, 'services.conf');
  // BGP on, as directors run it (the BGP thread starts with the daemon); its peer refuses the connection.
  writeFileSync(conf, formatPoolsConf(services, METRICS_PORT, [], BGP_TOWARDS_NO_ROUTER));
  const label = `cold start, ${SERVICES} services x ${SERVERS_PER_SERVICE}, IdleConnection, BGP on`;
  for (let trial = 1; trial <= SERVICES_TRIALS; trial++) {
    const nth = SERVICES_TRIALS > 1 ? ` #${trial}` : '';
    if (BASE_BUILD !== undefined) await coldStart(dir, client, { label: `${label}, base build${nth}`, name: 'services-base', conf, slots, destsPerService: SERVERS_PER_SERVICE, main: baseMain });
    await coldStart(dir, client, { label: `${label}${nth}`, name: 'services', conf, slots, destsPerService: SERVERS_PER_SERVICE });
  }
  return restore;
}

/** Each build's median cold start of many services over the trials, and their ratio. */
function servicesSummary(): void {
  const of = (base: boolean): number[] =>
    rows.filter((r) => r.label.startsWith('cold start, ') && r.label.includes(' services x ') && r.label.includes('base build') === base && Number.isFinite(r.applyMs)).map((r) => r.applyMs);
  const mine = of(false);
  const base = of(true);
  if (mine.length === 0) return;
  say(`cold start of ${SERVICES} services: this build median ${secs(median(mine))} s over ${mine.length} (${mine.map(secs).join(', ')})`);
  if (base.length > 0) say(`cold start of ${SERVICES} services: base build median ${secs(median(base))} s over ${base.length} (${base.map(secs).join(', ')}); this/base ${(median(mine) / median(base)).toFixed(2)}`);
}

// ---------------------------------------------------------------- main

function printTable(): void {
  say('');
  say(
    'pool application. cold rows: from spawn to the line the daemon logs once the kernel has acknowledged every service as desired (`Start-up complete`), then confirmed by one dump ' +
      '(nothing dumps the table before: a dump of 10,000 destinations would take the CPU from the daemon); first in IPVS: the first line saying the kernel took a batch. ' +
      `running rows: from the pool file write to every destination in the kernel, polled every ${APPLY_POLL_MS} ms or 3x the last poll's duration if longer, from its own process, counting dump replies undecoded`,
  );
  const header = ['case', 'servers', 'daemon s', 'ipvsadm -R s', 'daemon/ipvsadm', 'first in IPVS s', 'API worst ms (GET /pools every 50 ms)', 'lag max ms', 'daemon CPU s', 'page faults (x cost = CPU s)', 'RSS MB', 'IPVS req'];
  const body = rows.map((r) => [
    r.label, String(r.servers), secs(r.applyMs), r.peerMs === undefined ? '-' : secs(r.peerMs),
    r.peerMs === undefined || !Number.isFinite(r.applyMs) ? '-' : (r.applyMs / r.peerMs).toFixed(2), r.firstMs === undefined ? '-' : secs(r.firstMs),
    apiText(r.api), r.lagMaxS === undefined ? '-' : (r.lagMaxS * 1000).toFixed(0), r.cpuMs === undefined ? '-' : secs(r.cpuMs),
    r.faults === undefined ? '-' : `${r.faults} (${secs((r.faults * faultCostUs) / 1000)})`,
    r.rssBytes === undefined ? '-' : mb(r.rssBytes), r.ipvsRequests === undefined ? '-' : String(r.ipvsRequests),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: readonly string[]): string => `  ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')}`.trimEnd();
  say(line(header));
  say(line(widths.map((w) => '-'.repeat(w))));
  for (const b of body) say(line(b));
  for (const r of rows) if (r.error) say(`  FAILED ${r.label}: ${r.error}`);
  for (const r of rows) if (r.api?.failures) say(`  (${r.label}: API requests that failed, the daemon's start included: ${r.apiErrors?.join(', ')})`);
  for (const r of rows) if (r.watch) say(`  (${r.label}: the watcher's ${r.watch.polls} polls that dumped destinations took ${r.watch.medianMs.toFixed(0)} ms median, ${r.watch.worstMs.toFixed(0)} ms worst)`);

  say('');
  say(
    'weight change 10 <-> 7 of one server in the pool file (replaced by rename) -> the kernel: acknowledged (the time on the line the daemon logs once the kernel has ' +
      'answered its request), then confirmed by one dump of the whole pool over netlink (its time includes that dump; nothing dumps the pool during a trial, which would take the CPU from the daemon)',
  );
  for (const w of weightRows) {
    const worst = (xs: readonly number[]): string => (xs.length ? Math.max(...xs).toFixed(0) : 'n/a');
    say(
      `  pool ${w.servers}, monitors = ${w.monitors}: acknowledged median ${median(w.ackMs).toFixed(0)} ms, worst ${worst(w.ackMs)} ms [${w.ackMs.join(' ')}]; ` +
        `confirmed by a dump median ${median(w.trialsMs).toFixed(0)} ms, worst ${worst(w.trialsMs)} ms [${w.trialsMs.join(' ')}]; ` +
        `${w.trialsMs.length}/${w.resync ? RESYNC_TRIALS : WEIGHT_TRIALS} trials; API worst ${apiText(w.api)} ms`,
    );
    if (w.resync) {
      say(
        `    the resync's dump each edit landed in was merged median ${median(w.resync.mergedMs).toFixed(0)} ms, worst ${worst(w.resync.mergedMs)} ms after the write [${w.resync.mergedMs.join(' ')}] ` +
          `(an edit waited for that at least while the dump held up the writes); ${w.resync.ackedBeforeMerge}/${w.resync.mergedMs.length} acknowledged before it`,
      );
    }
    if (w.api?.failures) say(`    API requests that failed: ${w.apiErrors?.join(', ')}`);
    if (w.note) say(`    PROBLEM: ${w.note}`);
  }
}

async function measure(): Promise<void> {
  const peer = await ipvsadmVersion();
  say(
    `pools benchmark: UML guest kernel ${release()} (one CPU), node ${process.version}; the daemon is dist/cli/pybal.js (bgp = no in parts 1 and 2; in part 3 bgp = yes towards ` +
      'a peer, 127.0.0.2, that refuses the connection: its thread starts and its session keeps trying), measured from outside; nothing is asserted',
  );
  say(`  peer: ${peer}, run as PyBal runs it: \`ipvsadm -R\` with the table's commands on its stdin (-A -t VIP:PORT -s wrr, -a -t VIP:PORT -r IP -w 10), process start included`);
  say(`  real servers: 127/8 addresses (local; IPVS accepts them); pool files on the guest's tmpfs, replaced by rename; API client: GET /pools every ${API_PERIOD_MS} ms, latency from when each request was due`);
  if (PYBAL_ENV.length + PYBAL_NODE_FLAGS.length > 0) {
    say(`  this build's daemon runs as ${benchDaemonCommand('node', true).slice(1).join(' ')}${BASE_BUILD === undefined ? '' : `; the base build's as ${benchDaemonCommand('node', false).slice(1).join(' ')}`}`);
  }
  faultCostUs = pageFaultCostUs();
  say(`  this boot: a page's first touch (a minor fault) costs ${faultCostUs.toFixed(0)} us (64 MiB touched by the bench's own process); cold rows give the daemon's faults at the line, and what they cost of its CPU at that price`);
  pybalMain = snapshotPybalBuild();
  if (BASE_BUILD !== undefined) baseMain = snapshotPybalBuild(BASE_BUILD, 'pybal-base-build');
  const dir = mkdtempSync(join(tmpdir(), 'pybal-bench-pools-'));
  const client = await createIpvsClient({ clock, timeoutMs: 120_000 });
  let servers: ChildProcess | undefined;
  try {
    // Many connections from 127.0.0.1 to one port: room for them (guest only).
    writeFileSync('/proc/sys/net/ipv4/ip_local_port_range', '10000 64999');
    // IdleConnection's real servers: one listener per port on 0.0.0.0 answers every 127/8 address.
    servers = await startLoopbackServers(
      [POOL_SLOT.port, ...Array.from({ length: PORTS }, (_, p) => FIRST_PORT + p)].map((port) => ({ addresses: ['0.0.0.0'], tcpPort: port, httpPort: port + 1000 })),
    );

    for (const n of POOL_SIZES) {
      await coldPool(dir, client, n);
      const peerMs = await peerApply(client, [{ vip: POOL_SLOT.vip, port: POOL_SLOT.port, scheduler: 'wrr', servers: weighted(poolServerAddresses(n), 10) }]);
      const i = rows.length - 1;
      rows[i] = { ...rows[i]!, peerMs };
      note(`ipvsadm -R of 1 service x ${n}: ${secs(peerMs)} s`);
      await growingPool(dir, client, n);
    }
    for (const n of WEIGHT_SIZES) {
      await weightChange(dir, client, n, []);
      await weightChange(dir, client, n, ['IdleConnection']);
      if (RESYNC_TRIALS > 0) await weightChange(dir, client, n, [], true);
    }
    if (SERVICES > 0) {
      const first = rows.length;
      const restore = await coldServices(dir, client);
      const peerMs = await peerApply(client, restore);
      for (let i = first; i < rows.length; i++) rows[i] = { ...rows[i]!, peerMs };
      note(`ipvsadm -R of ${SERVICES} services x ${SERVERS_PER_SERVICE}: ${secs(peerMs)} s`);
    }
    printTable();
    servicesSummary();
    say('');
    say('  daemon s: cold rows from spawn (node start, config, pool read, IPVS); "running" rows from the pool file write; first in IPVS: the first destination (one service) or service (many)');
    say('  lag max: nodejs_eventloop_lag_max_seconds (prom-client, since the daemon started or since the scrape just before the write); CPU: since spawn, or during the growth');
    const cold100k = rows.find((r) => r.label === 'cold start, 1 service x 100000');
    say(`pool-apply-100k-seconds ${cold100k && Number.isFinite(cold100k.applyMs) ? (cold100k.applyMs / 1000).toFixed(2) : 'n/a'}`);
  } finally {
    servers?.kill('SIGTERM');
    client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

runGuestBench({ name: 'pools bench', scriptUrl: import.meta.url, measure, timeoutMs: 3_000_000, openFiles: 131_072, memMb: 4096 });
