/**
 * Health checks side by side: pybal's ProxyFetch against keepalived's
 * HTTP_GET, checking the same real servers at the same interval, in one lab
 * guest (a UML kernel with IPVS, one CPU). Figures only: nothing is asserted.
 *
 * Real servers: N distinct loopback addresses (127.10.0.1 onwards) on one
 * port, served by one wildcard listener in a process of their own (its CPU is
 * counted against neither peer) that answers every request with a small 200
 * and records when each server (the address the request was sent to) was
 * asked. Checks are counted there, the same way for both peers.
 *
 * Peers, each started as its operators run it and measured from outside:
 * - keepalived (Debian's package): `keepalived --dont-fork` with one
 *   virtual_server (NAT, wrr) on a VIP added to the guest's lo, delay_loop =
 *   the interval, and per real server `HTTP_GET { url { path / status_code
 *   200 } connect_timeout <interval> }`, other settings its defaults; it logs
 *   at its normal level to its console (-l, -G: no syslog daemon in the guest),
 *   written to a file. Measured: its checker child (utime+stime from /proc).
 * - pybal: `node dist/cli/pybal.js -c <conf> --log-file <file>
 *   --control-socket <sock>`, one service on the same VIP with monitors =
 *   ProxyFetch, proxyfetch.url = http://www.example.org/ (only the Host
 *   header: PyBal connects to the server), proxyfetch.interval and .timeout =
 *   the interval, a file:// pool of the same servers, and a BGP session (see
 *   below; bgp = no with BENCH_BGP=0). Measured: the daemon's one process.
 *   Every round runs the same build: dist/cli as it was when the bench
 *   started (the commit is printed).
 *
 * Each round starts a peer, waits until every server has been checked once
 * and then a warm-up, records the servers' requests from 1.5 intervals before
 * the window on, and over the window (BENCH_WINDOW_SECONDS) reads the peer's
 * CPU and RSS. Per round: checks/s achieved, CPU ms per 1,000 checks, RSS
 * (median of one sample a second, and the highest), and on time: the share of server-time in
 * the window during which the server's latest check was at most 1.5
 * intervals old (bench/lib/check-timeliness.ts), with the gaps between
 * successive checks of one server in intervals; beside them, how busy the
 * guest's one CPU was and the real servers' share of it (a saturated guest
 * delays every check), and how often a canary process (a 20 ms timer and
 * nothing else, bench/lib/loop-canary.ts) fired over 100 ms late: the
 * guest's own hiccups, beside pybal's count of its loops held. Peers alternate, the order turned round every other round (keepalived, pybal, pybal, keepalived, ...)
 * so that drift hits both.
 *
 * BGP KEEPALIVEs on time while checks run (pybal rounds only: keepalived
 * runs no BGP here, so its rounds have no such figure and its CPU carries no
 * BGP session, while pybal's carries one): before pybal starts, the bench
 * starts a measuring BGP peer inside its own process (not counted against
 * either peer; bench/lib/bgp-keepalive-peer.ts, on the project's own codec)
 * on 127.0.0.2:179; pybal runs with bgp = yes, that one peer, bgp-local-ips
 * 127.0.0.1 and a hold time of 3 s, so it sends a KEEPALIVE every 1 s (hold
 * / 3, no jitter) and announces the VIP. The peer answers with its own
 * KEEPALIVEs and records when each of pybal's arrived. Over the same window
 * as the CPU: KEEPALIVEs received, the gaps between successive ones (median,
 * p99, max), how many were over 1 s + 100 ms, session drops and
 * NOTIFICATIONs, and how late the bench's own event loop was at worst (an
 * arrival is recorded no earlier than the bench gets to it). A BGP failure is
 * reported on the round's line, never aborts the bench.
 *
 *   npm run bench:checks   (boots a lab guest; 15-25 minutes)
 *   BENCH_CHECK_SIZES=500,5000 BENCH_CHECK_INTERVALS=1,5 (seconds, one per size)
 *   BENCH_ROUNDS=3 BENCH_WINDOW_SECONDS=30 BENCH_WARMUP_SECONDS (default 2 intervals, at least 5)
 *   BENCH_PEERS=keepalived,pybal (the order within a round; pybal-base: see BENCH_BASE_BUILD)
 *   BENCH_MONITOR=IdleConnection (pybal alone, holding a connection per server)
 *   BENCH_STRACE_SECONDS=S (system calls per check, counted after each window)
 *   BENCH_SCRAPE_SECONDS=15 (pybal's /metrics scraped through its window, as Prometheus would; 0: never)
 *   BENCH_BGP=0 (pybal without BGP: no KEEPALIVE figures)
 *
 * Near the end, `bgp keepalives, worst gap per size: ...` (the longest gap
 * between pybal's KEEPALIVEs in any round of each size), then
 * `checks-guest-cpu-ratio-vs-keepalived R`: the ratio of the whole guest's
 * busy CPU per 1,000 checks (peer, real servers, bench and kernel), which
 * does not depend on how UML's tick-based accounting splits the cost of
 * system calls between processes. The last line is
 * `checks-cpu-ratio-vs-keepalived R`: the median of pybal's own CPU per 1,000
 * checks over every round of every size, divided by keepalived's.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec, execOk, LabProcess } from '../test/lab/exec.js';
import { repoRoot } from '../test/lab/uml.js';
import { measureTimeliness, type Timeliness } from './lib/check-timeliness.js';
import { getOverSocket, startApiPoller } from './lib/api-poller.js';
import { startLoopCanary, type CanarySummary, type LoopCanary } from './lib/loop-canary.js';
import { LATE_MARGIN_MS, startKeepalivePeer, type KeepalivePeer, type KeepaliveSummary } from './lib/bgp-keepalive-peer.js';
import { startCheckServers, type CheckServers } from './lib/check-servers-process.js';
import type { LatencySummary } from './lib/latency-tracker.js';
import { checkServerAddresses, formatKeepalivedConf, formatLegacyPool, formatPybalConf, type CheckedService, type PybalBgp } from './lib/checks-config.js';
import { runGuestBench } from './lib/guest.js';
import { guestCpuTicks, pageFaultCostUs, processCpuMs, processFaults, processRss, processRssBytes } from './lib/proc.js';
import { benchDaemonCommand, snapshotPybalBuild } from './lib/pybal-build.js';
import { median, worst } from './lib/stats.js';

const numbers = (text: string): number[] => text.split(',').map((s) => Number(s.trim()));
const SIZES = numbers(process.env.BENCH_CHECK_SIZES ?? '500,5000');
const INTERVALS_SEC = numbers(process.env.BENCH_CHECK_INTERVALS ?? '1,5');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WINDOW_SECONDS = Number(process.env.BENCH_WINDOW_SECONDS ?? 30);
const WARMUP_SECONDS = process.env.BENCH_WARMUP_SECONDS === undefined ? undefined : Number(process.env.BENCH_WARMUP_SECONDS);
const PEERS = (process.env.BENCH_PEERS ?? 'keepalived,pybal').split(',').map((p) => p.trim()) as PeerName[];
/** How long a peer may take to check every server once after its start. */
const FIRST_SWEEP_TIMEOUT_SEC = Number(process.env.BENCH_FIRST_SWEEP_TIMEOUT_SECONDS ?? 300);
/**
 * BENCH_STRACE_SECONDS=S (diagnosis, default off): after each round's window,
 * `strace -c -f` attaches to the measured process for S seconds and the round
 * prints its system calls per check, the busiest first. strace slows the peer,
 * so this comes after the figures, never during them.
 */
const STRACE_SECONDS = Number(process.env.BENCH_STRACE_SECONDS ?? 0);
/**
 * BENCH_MONITOR=IdleConnection: pybal holds a connection per server instead
 * of fetching (PyBal's other common monitor). keepalived has no such checker,
 * so only pybal runs, and the round reports connections held, not checks.
 */
const MONITOR = (process.env.BENCH_MONITOR ?? 'ProxyFetch') as 'ProxyFetch' | 'IdleConnection';
/**
 * After pybal's window, while its checks go on: GET /pools on its control
 * socket every 100 ms for this long (0: not at all), timed from when each was due.
 */
const API_SECONDS = Number(process.env.BENCH_API_SECONDS ?? 10);
const API_PERIOD_MS = 100;
/**
 * Through pybal's window, GET /metrics every this many seconds (0: never),
 * as a Prometheus server scraping it would (on its control socket, the same
 * handler as the instrumentation port), timed like the /pools requests; its
 * cost is in pybal's figures, as it is on a director. keepalived serves no
 * metrics itself (its exporters are programs of their own, reading its
 * stats), so its rounds have no scraper.
 */
const SCRAPE_SECONDS = Number(process.env.BENCH_SCRAPE_SECONDS ?? 15);
/** BENCH_HEAP_SNAPSHOTS='60,240' (diagnosis): seconds into the window at which pybal is sent SIGUSR2 (see BENCH_PYBAL_NODE_FLAGS' --heapsnapshot-signal). */
const HEAP_SNAPSHOTS_AT_SEC = (process.env.BENCH_HEAP_SNAPSHOTS ?? '').split(',').filter((v) => v !== '').map(Number);
/**
 * BENCH_BASE_BUILD=<dir> (comparing two builds of pybal in one boot): the
 * dist/cli directory of another build (`git worktree add`, `npm run build`
 * there), run as the peer `pybal-base` of BENCH_PEERS (say
 * BENCH_PEERS=pybal-base,pybal): each round then has both, under the same
 * guest, and the summary gives their ratio. With BENCH_PYBAL_NODE_FLAGS and
 * this build's own dist/cli as the base, it weighs node options alone.
 */
const BASE_BUILD = process.env.BENCH_BASE_BUILD;
/**
 * BENCH_BGP=0: pybal runs with bgp = no (as before this was measured). By
 * default pybal keeps a BGP session to a measuring peer and the round reports
 * whether its KEEPALIVEs left on time.
 */
const BGP = process.env.BENCH_BGP !== '0';
/** pybal dials port 179 of its peer; 127.0.0.2 is local (all of 127/8 is) and distinct from pybal's own 127.0.0.1:179. */
const PYBAL_BGP: PybalBgp = { localAsn: 64512, routerId: '127.0.0.1', peerAddress: '127.0.0.2', localIp: '127.0.0.1', holdTimeSec: 3 };
const BGP_PEER = { host: PYBAL_BGP.peerAddress, port: 179, asn: 64513, routerId: PYBAL_BGP.peerAddress, holdTimeSec: PYBAL_BGP.holdTimeSec };
/** How long the session may still take to establish once the warm-up is over. */
const BGP_ESTABLISH_WAIT_MS = 15_000;
/** A server is on time while its latest check is at most this many intervals old. */
const TOLERANCE = 1.5;
const VIP = '203.0.113.1';
const PORT = 18080;
const WEIGHT = 10;

type PeerName = 'keepalived' | 'pybal' | 'pybal-base';
/** Both pybal peers: this build, and the other build of BENCH_BASE_BUILD. */
const isPybal = (peer: PeerName): boolean => peer !== 'keepalived';

/** The pybal build every round runs (bench/lib/pybal-build.ts), set when the bench starts. */
let pybalMain = '';
/** BENCH_BASE_BUILD's pybal.js (the peer `pybal-base`), set when the bench starts. */
let baseMain = '';

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const say = (line: string): void => void process.stdout.write(`${line}\n`);
/** This boot's cost of a page's first touch, us (pageFaultCostUs), measured once before the rounds. */
let faultCostUs = NaN;
const note = (line: string): void => void process.stderr.write(`  ${line}\n`);

// ---------------------------------------------------------------- peers

interface RunningPeer {
  readonly process: LabProcess;
  /** The process whose CPU and RSS are the peer's figures. */
  readonly measuredPid: number;
  /** keepalived's parent (which only watches its children), reported beside. */
  readonly parentPid?: number;
}

async function untilValue<T>(probe: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

function alive(pid: number): boolean {
  return existsSync(`/proc/${pid}/stat`);
}

async function startKeepalived(dir: string, service: CheckedService): Promise<RunningPeer> {
  const conf = join(dir, 'keepalived.conf');
  writeFileSync(conf, formatKeepalivedConf(service));
  const checkersPid = join(dir, 'keepalived_checkers.pid');
  const argv = [
    'keepalived', '--dont-fork', '--log-console', '--no-syslog', '-f', conf,
    '-p', join(dir, 'keepalived.pid'), '-c', checkersPid, '-r', join(dir, 'keepalived_vrrp.pid'), '-b', join(dir, 'keepalived_bfd.pid'),
  ];
  const proc = new LabProcess('keepalived', argv, { logPath: join(dir, 'keepalived.log') });
  const measuredPid = await untilValue(
    () => {
      if (!proc.running) throw new Error(`keepalived exited:\n${proc.output().slice(-2000)}`);
      const pid = existsSync(checkersPid) ? Number(readFileSync(checkersPid, 'utf8').trim()) : NaN;
      return pid > 0 && alive(pid) ? pid : undefined;
    },
    "keepalived's checker process",
    30_000,
  );
  return { process: proc, measuredPid, ...(proc.pid === undefined ? {} : { parentPid: proc.pid }) };
}

async function startPybal(dir: string, service: CheckedService, bgp: PybalBgp | undefined, main: string): Promise<RunningPeer> {
  const pool = join(dir, 'pool');
  writeFileSync(pool, formatLegacyPool(service.realServers, WEIGHT));
  const conf = join(dir, 'pybal.conf');
  writeFileSync(conf, formatPybalConf(service, pool, bgp));
  // BENCH_CPU_PROF=<dir>: pybal writes a V8 CPU profile there when it exits (for finding where time goes).
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  // BENCH_PYBAL_ENV and BENCH_PYBAL_NODE_FLAGS (bench/lib/pybal-build.ts) for the peer `pybal` only, not `pybal-base`.
  const argv = [...benchDaemonCommand(process.execPath, main === pybalMain), ...profile, main, '-c', conf, '--log-file', join(dir, 'pybal.log'), '--control-socket', join(dir, 'pybal.sock')];
  const proc = new LabProcess('pybal', argv, { cwd: repoRoot(), logPath: join(dir, 'pybal.out') });
  if (proc.pid === undefined) throw new Error(`pybal did not start:\n${proc.output()}`);
  return { process: proc, measuredPid: proc.pid };
}

// ---------------------------------------------------------------- one round

interface RoundFigures {
  readonly size: number;
  readonly intervalSec: number;
  readonly round: number;
  readonly peer: PeerName;
  readonly timeliness: Timeliness;
  readonly cpuMs: number;
  readonly cpuMsPer1000: number;
  /** Page faults per check (in UML each is a round trip through the guest kernel). */
  readonly faultsPerCheck: number;
  readonly rssMb: number;
  /** The highest of the window's samples (a full collection's wait shows here, not in the median). */
  readonly rssMaxMb: number;
  /** The RSS's anonymous and file-backed parts (medians over the window, like rssMb). */
  readonly rssAnonMb: number;
  readonly rssFileMb: number;
  readonly parentCpuMs?: number;
  readonly parentRssMb?: number;
  /** From the start until every server had been checked once (NaN: not within the timeout). */
  readonly firstSweepSec: number;
  /** The real servers' process, ms of CPU per second of the window (counted against neither peer). */
  readonly serversCpuMsPerSec: number;
  /** Share of the guest's one CPU busy over the window (everything: peer, servers, kernel). */
  readonly guestBusyShare: number;
  /**
   * The whole guest's busy CPU per 1,000 checks: the peer, the real servers
   * (the same requests whoever checks), the bench and the kernel. UML charges
   * CPU to processes by the tick, and the cost of a system call's trip through
   * the host lands on whichever process the tick finds: with the same
   * requests, the real servers were charged 170 ms/s while pybal checked and
   * 500-800 ms/s while keepalived did. This figure does not depend on that.
   */
  readonly guestCpuMsPer1000: number;
  /** Destinations of the VIP in the kernel at the end of the window. */
  readonly ipvsDests: number;
  /** Servers holding a connection open at the end of the window (IdleConnection). */
  readonly openAtEnd: number;
  /** GET /pools every 100 ms over the control socket after the window, checks going on (pybal). */
  readonly api?: LatencySummary;
  /** GET /metrics every BENCH_SCRAPE_SECONDS through the window (pybal). */
  readonly scrapes?: LatencySummary;
  /** pybal's own count of event-loop stalls over 100 ms during the window, and its longest since start: the main thread's, and the checks thread's. */
  readonly stalls?: { readonly inWindow: number; readonly longestSinceStartMs: number; readonly checksInWindow: number; readonly checksLongestSinceStartMs: number };
  /** A process doing nothing but a 20 ms timer (lib/loop-canary.ts), over the window: the guest's own hiccups, whoever checks. */
  readonly canary: CanarySummary;
  /** pybal's heaps at the end of the window (the main thread's and the checks thread's; the BGP thread's is in the RSS only). */
  readonly heap?: HeapFigures;
  /** pybal's KEEPALIVEs to the measuring peer over the window (pybal rounds with BENCH_BGP on). */
  readonly bgp?: KeepaliveSummary;
  /** Why the BGP figures are missing or incomplete (the peer did not start, no session, ...). */
  readonly bgpError?: string;
}

function peerLogTail(dir: string, peer: PeerName, proc: LabProcess, lines = 30): string {
  const log = isPybal(peer) && existsSync(join(dir, 'pybal.log')) ? readFileSync(join(dir, 'pybal.log'), 'utf8') : proc.output();
  return log.split('\n').slice(-lines).join('\n');
}

async function ipvsDests(): Promise<number> {
  const r = await exec(['ipvsadm', '-Ln', '-t', `${VIP}:${PORT}`]);
  return r.code === 0 ? r.stdout.split('\n').filter((l) => l.includes('->') && !l.includes('RemoteAddress')).length : 0;
}

async function runRound(servers: CheckServers, peer: PeerName, service: CheckedService, round: number): Promise<RoundFigures> {
  const intervalMs = service.intervalSec * 1000;
  const warmupSec = WARMUP_SECONDS ?? Math.max(5, 2 * service.intervalSec);
  const dir = mkdtempSync(join(tmpdir(), `pybal-bench-checks-${peer}-`));
  await execOk(['ipvsadm', '-C']);
  let running: RunningPeer | undefined;
  let bgpPeer: KeepalivePeer | undefined;
  const bgpErrors: string[] = [];
  let canary: LoopCanary | undefined;
  try {
    if (isPybal(peer) && BGP) {
      // Listening before pybal starts, so that pybal's first dial finds it.
      try {
        bgpPeer = await startKeepalivePeer(BGP_PEER);
      } catch (error) {
        bgpErrors.push(`the measuring peer could not listen on ${BGP_PEER.host}:${BGP_PEER.port} (${errorText(error)}); pybal runs without BGP`);
      }
    }
    await servers.reset();
    const startedMs = Date.now();
    running = peer === 'keepalived' ? await startKeepalived(dir, service) : await startPybal(dir, service, bgpPeer ? PYBAL_BGP : undefined, peer === 'pybal-base' ? baseMain : pybalMain);
    const { measuredPid, parentPid } = running;
    const proc = running.process;
    // Every server checked once: the peer is past its start-up.
    let firstSweepSec = NaN;
    while (Date.now() - startedMs < FIRST_SWEEP_TIMEOUT_SEC * 1000) {
      if (!proc.running) throw new Error(`${peer} exited:\n${proc.output().slice(-2000)}`);
      const seen = await servers.seen();
      if ((MONITOR === 'IdleConnection' ? seen.open : seen.servers) >= service.realServers.length) {
        firstSweepSec = (seen.atMs - startedMs) / 1000;
        break;
      }
      await sleep(200);
    }
    if (Number.isNaN(firstSweepSec)) note(`${peer}: not every server checked within ${FIRST_SWEEP_TIMEOUT_SEC} s of the start; measuring anyway`);
    await sleep(warmupSec * 1000);
    if (bgpPeer) {
      await bgpPeer.untilEstablished(BGP_ESTABLISH_WAIT_MS).catch((error: unknown) => {
        bgpErrors.push(`not established when the window began (${errorText(error)})`);
        note(`pybal: BGP ${bgpErrors.at(-1)}; the end of its log:\n${peerLogTail(dir, peer, proc)}`);
      });
    }
    // The record starts TOLERANCE intervals before the window, so that its first moments are judged by the checks before them.
    await servers.reset();
    canary = startLoopCanary();
    await sleep(TOLERANCE * intervalMs);
    const stalls0 = isPybal(peer) ? await pybalStalls(dir) : undefined;
    const scraper = isPybal(peer) && SCRAPE_SECONDS > 0 ? startApiPoller('http://localhost/metrics', SCRAPE_SECONDS * 1000, join(dir, 'pybal.sock')) : undefined;
    const startMs = Date.now();
    const bgpFromMs = performance.now();
    const cpu0 = processCpuMs(measuredPid);
    const faults0 = processFaults(measuredPid);
    const parentCpu0 = parentPid === undefined ? NaN : processCpuMs(parentPid);
    const serversCpu0 = processCpuMs(servers.pid);
    const guest0 = guestCpuTicks();
    const rss: number[] = [];
    const rssAnon: number[] = [];
    const rssFile: number[] = [];
    const parentRss: number[] = [];
    const snapshotsAt = isPybal(peer) ? [...HEAP_SNAPSHOTS_AT_SEC] : [];
    while (Date.now() - startMs < WINDOW_SECONDS * 1000) {
      await sleep(Math.min(1000, startMs + WINDOW_SECONDS * 1000 - Date.now()));
      if (snapshotsAt.length > 0 && Date.now() - startMs >= snapshotsAt[0]! * 1000) {
        snapshotsAt.shift();
        // Diagnosis: with --heapsnapshot-signal=SIGUSR2 in BENCH_PYBAL_NODE_FLAGS, node writes a heap snapshot of the main thread to its cwd.
        process.kill(measuredPid, 'SIGUSR2');
      }
      const parts = processRss(measuredPid);
      rss.push(parts.rss);
      rssAnon.push(parts.anon);
      rssFile.push(parts.file);
      if (parentPid !== undefined) parentRss.push(processRssBytes(parentPid));
    }
    const cpuMs = processCpuMs(measuredPid) - cpu0;
    const faults = processFaults(measuredPid) - faults0;
    const parentCpuMs = parentPid === undefined ? undefined : processCpuMs(parentPid) - parentCpu0;
    const serversCpuMs = processCpuMs(servers.pid) - serversCpu0;
    const guest1 = guestCpuTicks();
    const endMs = Date.now();
    const bgpToMs = performance.now();
    const scrapes = await scraper?.stop();
    if (!proc.running || !alive(measuredPid)) throw new Error(`${peer} exited during the window:\n${proc.output().slice(-2000)}`);
    const stalls1 = isPybal(peer) ? await pybalStalls(dir) : undefined;
    // BENCH_PYBAL_OUT (diagnosis): the process's memory map at the end of the window, beside its output.
    if (process.env.BENCH_PYBAL_OUT && isPybal(peer)) {
      writeFileSync(`${process.env.BENCH_PYBAL_OUT}.${peer}.${service.realServers.length}.${round}.smaps`, readFileSync(`/proc/${measuredPid}/smaps`));
    }
    let bgp: KeepaliveSummary | undefined;
    try {
      bgp = bgpPeer?.summary(bgpFromMs, bgpToMs);
    } catch (error) {
      bgpErrors.push(`no figures: ${errorText(error)}`);
    }
    const { open: openAtEnd } = await servers.seen();
    const { times } = await servers.dump();
    const timeliness = measureTimeliness(times, service.realServers, { startMs, endMs }, intervalMs, TOLERANCE);
    if (MONITOR === 'ProxyFetch' && timeliness.checks < 0.5 * WINDOW_SECONDS * (service.realServers.length / service.intervalSec)) {
      note(`${peer} made under half the expected checks; the end of its log:\n${peerLogTail(dir, peer, proc)}`);
    }
    let api: LatencySummary | undefined;
    if (isPybal(peer) && API_SECONDS > 0) {
      const poller = startApiPoller('http://localhost/pools', API_PERIOD_MS, join(dir, 'pybal.sock'));
      await sleep(API_SECONDS * 1000);
      api = await poller.stop();
    }
    if (STRACE_SECONDS > 0) await countSyscalls(servers, peer, measuredPid, dir);
    const dests = await ipvsDests();
    if (dests !== service.realServers.length) {
      const warnings = peerLogTail(dir, peer, proc, Infinity).split('\n').filter((l) => /warn|error|fail/i.test(l));
      note(`${peer}: ${dests} of ${service.realServers.length} servers in IPVS at the end of the window; ${warnings.length} warning or error lines in its log, the last:\n${warnings.slice(-10).join('\n')}`);
      // What the daemon said about IPVS, initialization and the policy (not per-server lines).
      const story = peerLogTail(dir, peer, proc, Infinity)
        .split('\n')
        .filter((l) => /IPVS|Initializ|threshold|event loop|Added \d|pool/i.test(l) && !/ProxyFetch\]/.test(l));
      if (story.length > 0) note(`${peer}: its log about IPVS and the pool (${story.length} lines, the first 30):\n${story.slice(0, 30).join('\n')}`);
    }
    return {
      size: service.realServers.length,
      intervalSec: service.intervalSec,
      round,
      peer,
      timeliness,
      cpuMs,
      cpuMsPer1000: (cpuMs / timeliness.checks) * 1000,
      faultsPerCheck: faults / timeliness.checks,
      rssMb: median(rss) / 2 ** 20,
      rssMaxMb: Math.max(...rss) / 2 ** 20,
      rssAnonMb: median(rssAnon) / 2 ** 20,
      rssFileMb: median(rssFile) / 2 ** 20,
      ...(parentCpuMs === undefined ? {} : { parentCpuMs, parentRssMb: median(parentRss) / 2 ** 20 }),
      firstSweepSec,
      serversCpuMsPerSec: serversCpuMs / ((endMs - startMs) / 1000),
      guestBusyShare: (guest1.busy - guest0.busy) / (guest1.total - guest0.total),
      guestCpuMsPer1000: (((guest1.busy - guest0.busy) / (guest1.total - guest0.total)) * (endMs - startMs) * 1000) / timeliness.checks,
      ipvsDests: dests,
      openAtEnd,
      canary: canary.summary(startMs, endMs),
      ...(api ? { api } : {}),
      ...(scrapes ? { scrapes } : {}),
      ...(stalls0 && stalls1 ? {
            stalls: {
              inWindow: stalls1.stalls - stalls0.stalls,
              longestSinceStartMs: stalls1.longestMs,
              checksInWindow: stalls1.checksStalls - stalls0.checksStalls,
              checksLongestSinceStartMs: stalls1.checksLongestMs,
            },
          } : {}),
      ...(stalls1 ? { heap: { heapUsedMb: stalls1.heapUsedMb, heapTotalMb: stalls1.heapTotalMb, externalMb: stalls1.externalMb, checksUsedMb: stalls1.checksUsedMb, checksTotalMb: stalls1.checksTotalMb, mallocInUseMb: stalls1.mallocInUseMb, mallocHeapMb: stalls1.mallocHeapMb, mallocTrims: stalls1.mallocTrims } } : {}),
      ...(bgp ? { bgp } : {}),
      ...(bgpErrors.length > 0 ? { bgpError: bgpErrors.join('; ') } : {}),
    };
  } finally {
    canary?.stop();
    // pybal first: its shutdown (withdrawal, Cease) goes to a peer still listening.
    await running?.process.stop(60_000);
    await bgpPeer?.close().catch((error: unknown) => note(`closing the BGP peer: ${errorText(error)}`));
    await execOk(['ipvsadm', '-C']).catch(() => undefined);
    // BENCH_PYBAL_OUT=<file> (diagnosis): keeps pybal's standard output and error (a --trace-gc in BENCH_PYBAL_NODE_FLAGS writes there), and its log beside them (.log).
    if (process.env.BENCH_PYBAL_OUT && existsSync(join(dir, 'pybal.out'))) {
      const kept = `${process.env.BENCH_PYBAL_OUT}.${peer}.${service.realServers.length}.${round}`;
      copyFileSync(join(dir, 'pybal.out'), kept);
      if (existsSync(join(dir, 'pybal.log'))) copyFileSync(join(dir, 'pybal.log'), `${kept}.log`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Where pybal's memory is, from its /metrics: the main thread's JS heap (used,
 * and what V8 holds for it), memory outside it (Buffers, sockets), and the
 * checks thread's JS heap, and the C heap (malloc, every thread: in use, what
 * glibc holds, trims so far); NaN from a pybal that does not export them.
 */
interface HeapFigures {
  readonly heapUsedMb: number;
  readonly heapTotalMb: number;
  readonly externalMb: number;
  readonly checksUsedMb: number;
  readonly checksTotalMb: number;
  readonly mallocInUseMb: number;
  readonly mallocHeapMb: number;
  readonly mallocTrims: number;
}

/** pybal's event-loop stall figures and heap, read from its /metrics on its control socket; undefined if it does not answer. */
async function pybalStalls(dir: string): Promise<({ stalls: number; longestMs: number; checksStalls: number; checksLongestMs: number } & HeapFigures) | undefined> {
  const text = await getOverSocket(join(dir, 'pybal.sock'), '/metrics');
  if (text === undefined) return undefined;
  const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const mb = (name: string): number => value(name) / 2 ** 20;
  const stalls = value('pybal_event_loop_stalls_total');
  if (!Number.isFinite(stalls)) return undefined;
  return {
    stalls,
    longestMs: value('pybal_event_loop_longest_stall_seconds') * 1000,
    // NaN before the checks thread (an older pybal): printed as such.
    checksStalls: value('pybal_checks_thread_event_loop_stalls_total'),
    checksLongestMs: value('pybal_checks_thread_event_loop_longest_stall_seconds') * 1000,
    heapUsedMb: mb('nodejs_heap_size_used_bytes'),
    heapTotalMb: mb('nodejs_heap_size_total_bytes'),
    externalMb: mb('nodejs_external_memory_bytes'),
    checksUsedMb: mb('pybal_checks_thread_heap_used_bytes'),
    checksTotalMb: mb('pybal_checks_thread_heap_size_bytes'),
    mallocInUseMb: mb('pybal_malloc_in_use_bytes'),
    mallocHeapMb: mb('pybal_malloc_heap_bytes'),
    mallocTrims: value('pybal_malloc_trims_total'),
  };
}

/** Prints the measured process's system calls per check over STRACE_SECONDS (strace -c -f attached). */
async function countSyscalls(servers: CheckServers, peer: PeerName, pid: number, dir: string): Promise<void> {
  const out = join(dir, 'strace.txt');
  await servers.reset();
  const strace = new LabProcess('strace', ['strace', '-c', '-f', '-o', out, '-p', String(pid)], { logPath: join(dir, 'strace.log') });
  await sleep(STRACE_SECONDS * 1000);
  const { requests } = await servers.seen();
  // strace detaches and writes its table on SIGTERM.
  await strace.stop(30_000);
  const rows = (existsSync(out) ? readFileSync(out, 'utf8') : '')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.length >= 5 && /^\d/.test(cols[0]!) && !cols.includes('total'))
    .map((cols) => ({ name: cols[cols.length - 1]!, calls: Number(cols[3]) }))
    .filter((r) => Number.isFinite(r.calls))
    .sort((a, b) => b.calls - a.calls);
  const total = rows.reduce((a, r) => a + r.calls, 0);
  const per = (n: number): string => (requests > 0 ? (n / requests).toFixed(2) : 'n/a');
  note(`${peer}: ${requests} checks under strace over ${STRACE_SECONDS} s, ${per(total)} system calls per check: ${rows.slice(0, 14).map((r) => `${r.name} ${per(r.calls)}`).join(', ')}`);
}

/**
 * The peers in the order of round `round`: as BENCH_PEERS says in odd
 * rounds, the other way round in even ones (A B, B A, A B, ...). At 10,000
 * servers the peer that ran first in a round did better in 5 of 6 pairs over
 * three runs, whichever build it was (the guest's state after a peer's
 * 10,000 servers, it seems): a fixed order put that on one peer.
 */
function roundOrder(round: number): readonly PeerName[] {
  return round % 2 === 1 ? PEERS : [...PEERS].reverse();
}

// ---------------------------------------------------------------- output

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const f = (x: number, digits = 2): string => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

/** The round's BGP line (pybal rounds with BENCH_BGP on), or '' when it has none. */
function bgpLine(r: RoundFigures): string {
  const b = r.bgp;
  const error = r.bgpError ? `; ${r.bgpError}` : '';
  if (!b) return r.bgpError ? `\n    bgp keepalives: not measured: ${r.bgpError}` : '';
  const notes = [
    b.notifications.length > 0 ? `NOTIFICATIONs from pybal: ${b.notifications.join(', ')}` : '',
    b.establishedAtStart ? '' : 'no session when the window began',
    b.establishedAtEnd ? '' : 'no session when the window ended',
    b.errors.length > 0 ? `peer errors: ${b.errors.join(', ')}` : '',
  ].filter((x) => x !== '');
  return (
    `\n    bgp keepalives: ${b.keepalives} in window, every ~${f(b.expectedIntervalMs, 0)} ms expected, ` +
    `gap median ${f(b.gapMedianMs, 0)} p99 ${f(b.gapP99Ms, 0)} max ${f(b.gapMaxMs, 0)} ms, ${b.late} late by >${LATE_MARGIN_MS} ms, ` +
    `session drops ${b.drops}; ${b.updates} UPDATEs; bench's own event loop late by up to ${f(b.recorderLagMaxMs, 0)} ms` +
    (notes.length > 0 ? `; ${notes.join('; ')}` : '') +
    error
  );
}

function roundLine(r: RoundFigures): string {
  const t = r.timeliness;
  const parent = r.parentCpuMs === undefined ? '' : ` [parent: cpu ${f(r.parentCpuMs, 0)} ms, rss ${f(r.parentRssMb ?? NaN, 1)} MB]`;
  const heap = r.heap
    ? ` (main thread JS heap ${f(r.heap.heapUsedMb, 1)} MB used of ${f(r.heap.heapTotalMb, 1)}, external ${f(r.heap.externalMb, 1)} MB; checks thread's heap ${f(r.heap.checksUsedMb, 1)} MB used of ${f(r.heap.checksTotalMb, 1)}; C heap ${f(r.heap.mallocInUseMb, 1)} MB in use of ${f(r.heap.mallocHeapMb, 1)}, ${f(r.heap.mallocTrims, 0)} trims)`
    : '';
  const stalls =
    (r.stalls
      ? `; main event loop held over 100 ms ${r.stalls.inWindow} times in the window (longest since start ${f(r.stalls.longestSinceStartMs, 0)} ms)` +
        `, the checks thread's ${f(r.stalls.checksInWindow, 0)} times (longest ${f(r.stalls.checksLongestSinceStartMs, 0)} ms)`
      : '') +
    `; a canary process's 20 ms timer late over 100 ms ${r.canary.over100} times in the window (worst ${f(r.canary.worstMs, 0)} ms)` +
    (r.scrapes ? `; GET /metrics every ${SCRAPE_SECONDS} s through the window: ${r.scrapes.count} scrapes, worst ${f(r.scrapes.worstMs, 0)} ms${r.scrapes.failures ? `, ${r.scrapes.failures} failed` : ''}` : '') +
    (r.api ? `; API (GET /pools every ${API_PERIOD_MS} ms for ${API_SECONDS} s after the window) worst ${f(r.api.worstMs, 0)} ms, p99 ${f(r.api.p99Ms, 0)} ms over ${r.api.count} requests${r.api.failures ? `, ${r.api.failures} failed` : ''}` : '');
  if (MONITOR === 'IdleConnection') {
    return (
      `  ${r.size} servers, round ${r.round}, ${r.peer} (IdleConnection): ${r.openAtEnd} of ${r.size} servers with a connection held at the end of the window, ` +
      `cpu ${f(r.cpuMs / WINDOW_SECONDS, 1)} ms/s, rss ${f(r.rssMb, 1)} MB (max ${f(r.rssMaxMb, 1)}; anon ${f(r.rssAnonMb, 1)}, file ${f(r.rssFileMb, 1)})${heap}; all connected ${f(r.firstSweepSec, 1)} s after start; ${r.ipvsDests} IPVS destinations${stalls}; ` +
      `guest cpu busy ${pct(r.guestBusyShare)}` +
      bgpLine(r)
    );
  }
  return (
    `  ${r.size} @ ${r.intervalSec} s, round ${r.round}, ${r.peer}: ${f(t.checksPerSecond, 1)} checks/s (of ${f(r.size / r.intervalSec, 0)}), ` +
    `cpu ${f(r.cpuMsPer1000, 1)} ms per 1,000 checks (${f(r.cpuMs / WINDOW_SECONDS, 1)} ms/s), ${f(r.faultsPerCheck, 2)} page faults per check (about ${f((r.faultsPerCheck * faultCostUs) / 1000, 3)} ms of CPU each), rss ${f(r.rssMb, 1)} MB (max ${f(r.rssMaxMb, 1)}; anon ${f(r.rssAnonMb, 1)}, file ${f(r.rssFileMb, 1)})${heap}, ` +
    `on time ${pct(t.onTimeShare)} (gaps p50 ${f(t.gapP50)} p99 ${f(t.gapP99)} max ${f(t.gapMax)} intervals; ${t.unchecked} servers unchecked)${parent}; ` +
    `first sweep ${f(r.firstSweepSec, 1)} s after start; ${r.ipvsDests} IPVS destinations; ` +
    `guest cpu busy ${pct(r.guestBusyShare)}, ${f(r.guestCpuMsPer1000, 1)} ms per 1,000 checks (real servers ${f(r.serversCpuMsPerSec, 0)} ms/s)${stalls}` +
    bgpLine(r)
  );
}

/** The worst KEEPALIVE gap of the size's pybal rounds (NaN: none measured), and its summary line ('' without BGP rounds). */
function bgpSummary(rows: readonly RoundFigures[], label: string): { worstGapMs: number; line: string } {
  const pybal = rows.filter((r) => isPybal(r.peer) && (r.bgp !== undefined || r.bgpError !== undefined));
  if (pybal.length === 0) return { worstGapMs: NaN, line: '' };
  const measured = pybal.flatMap((r) => (r.bgp ? [r.bgp] : []));
  const worstGap = worst(measured.map((b) => b.gapMaxMs).filter(Number.isFinite));
  const sum = (pick: (b: KeepaliveSummary) => number): number => measured.reduce((a, b) => a + pick(b), 0);
  const expected = [...new Set(measured.map((b) => b.expectedIntervalMs).filter(Number.isFinite))].join('/') || '?';
  const failed = pybal.length - measured.length;
  return {
    worstGapMs: worstGap,
    line:
      `${label} pybal bgp keepalives (${measured.length} rounds${failed > 0 ? `; ${failed} not measured` : ''}): ` +
      `worst gap ${f(worstGap, 0)} ms (every ${expected} ms expected), ${sum((b) => b.late)} late by >${LATE_MARGIN_MS} ms, ` +
      `${sum((b) => b.drops)} session drops, ${sum((b) => b.notifications.length)} NOTIFICATIONs in all`,
  };
}

/** Rounds in which the peer made checks: a round without any has no CPU per check (its line says what happened). */
const counted = (rows: readonly RoundFigures[], peer: PeerName): RoundFigures[] => rows.filter((r) => r.peer === peer && r.timeliness.checks > 0);

function summary(rows: readonly RoundFigures[], label: string): void {
  const of = (peer: PeerName): RoundFigures[] => counted(rows, peer);
  const figures = (peer: PeerName): { cps: number; cpu: number; guestCpu: number; rss: number; rssMax: number; onTime: number } => {
    const rs = of(peer);
    return {
      cps: median(rs.map((r) => r.timeliness.checksPerSecond)),
      cpu: median(rs.map((r) => r.cpuMsPer1000)),
      guestCpu: median(rs.map((r) => r.guestCpuMsPer1000)),
      rss: median(rs.map((r) => r.rssMb)),
      rssMax: Math.max(...rs.map((r) => r.rssMaxMb)),
      onTime: median(rs.map((r) => r.timeliness.onTimeShare)),
    };
  };
  for (const peer of PEERS) {
    const m = figures(peer);
    const without = rows.filter((r) => r.peer === peer).length - of(peer).length;
    say(`${label} median ${peer} (${of(peer).length} rounds${without > 0 ? `; ${without} without a check left out` : ''}): ${f(m.cps, 1)} checks/s, cpu ${f(m.cpu, 1)} ms per 1,000 checks (whole guest ${f(m.guestCpu, 1)}), rss ${f(m.rss, 1)} MB (highest sample ${f(m.rssMax, 1)}), on time ${pct(m.onTime)}`);
  }
  for (const other of ['keepalived', 'pybal-base'] as const) {
    if (!PEERS.includes('pybal') || !PEERS.includes(other)) continue;
    const p = figures('pybal');
    const k = figures(other);
    say(`${label} pybal/${other}: cpu per 1,000 checks x${f(p.cpu / k.cpu)} (whole guest x${f(p.guestCpu / k.guestCpu)}), rss x${f(p.rss / k.rss)}, checks/s x${f(p.cps / k.cps)}`);
  }
}

// ---------------------------------------------------------------- main

async function measure(): Promise<void> {
  if (SIZES.length !== INTERVALS_SEC.length || SIZES.some((n) => !(n > 0)) || INTERVALS_SEC.some((s) => !(s > 0))) {
    throw new Error('BENCH_CHECK_SIZES and BENCH_CHECK_INTERVALS need one positive number each per size');
  }
  if (!existsSync('/proc/net/ip_vs')) throw new Error('no IPVS in this kernel');
  const version = (await exec(['keepalived', '--version'])).stderr.split('\n')[0] ?? '?';
  pybalMain = snapshotPybalBuild();
  if (PEERS.includes('pybal-base')) {
    if (BASE_BUILD === undefined) throw new Error('the peer pybal-base needs BENCH_BASE_BUILD (a dist/cli directory)');
    baseMain = snapshotPybalBuild(BASE_BUILD, 'pybal-base-build');
  }
  const head = (await exec(['git', '-C', repoRoot(), 'describe', '--always', '--dirty'])).stdout.trim() || '?';
  say(
    MONITOR === 'IdleConnection'
      ? `checks benchmark: UML guest kernel (one CPU), node ${process.version}, pybal at ${head}; pybal IdleConnection alone (keepalived has no such checker)${SCRAPE_SECONDS > 0 ? `, its /metrics scraped every ${SCRAPE_SECONDS} s` : ''}; figures only`
      : `checks benchmark: UML guest kernel (one CPU), node ${process.version} (pybal with ${benchDaemonCommand('node', true).slice(1).join(' ')}${BASE_BUILD === undefined ? '' : `; pybal-base ${BASE_BUILD} with ${benchDaemonCommand('node', false).slice(1).join(' ')}`}), ${version}, pybal at ${head}; pybal ProxyFetch vs keepalived HTTP_GET on the same servers${SCRAPE_SECONDS > 0 ? `, pybal's /metrics scraped every ${SCRAPE_SECONDS} s (keepalived serves none)` : ''}; figures only`,
  );
  say(`on time = share of server-time in the window when the server's latest check was at most ${TOLERANCE} intervals old; gaps between successive checks of a server in intervals; window ${WINDOW_SECONDS} s`);
  faultCostUs = pageFaultCostUs();
  say(`this boot: a page's first touch (a minor fault) costs ${f(faultCostUs, 0)} us (64 MiB touched by the bench's own process); a round's faults per check times that is what they cost of its CPU per check`);
  say(
    BGP
      ? `bgp: pybal holds a session (hold ${PYBAL_BGP.holdTimeSec} s) to a measuring peer on ${BGP_PEER.host}:${BGP_PEER.port} in the bench's process; gaps between pybal's KEEPALIVEs as they arrived there over the window (keepalived runs no BGP)`
      : 'bgp: off (BENCH_BGP=0): pybal runs with bgp = no',
  );
  await exec(['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'lo']);
  const servers = await startCheckServers(PORT);
  const rows: RoundFigures[] = [];
  const bgpWorst: string[] = [];
  try {
    for (const [i, size] of SIZES.entries()) {
      const service: CheckedService = {
        vip: VIP, port: PORT, realServers: checkServerAddresses(size), intervalSec: INTERVALS_SEC[i]!, timeoutSec: INTERVALS_SEC[i]!, weight: WEIGHT, scheduler: 'wrr', monitor: MONITOR,
      };
      say(`${size} servers, every ${service.intervalSec} s (${f(size / service.intervalSec, 0)} checks/s expected):`);
      const sizeRows: RoundFigures[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        for (const peer of roundOrder(round)) {
          if (MONITOR === 'IdleConnection' && !isPybal(peer)) continue;
          const row = await runRound(servers, peer, service, round);
          sizeRows.push(row);
          say(roundLine(row));
        }
      }
      const label = MONITOR === 'IdleConnection' ? `${size} servers` : `${size} @ ${service.intervalSec} s`;
      if (MONITOR === 'ProxyFetch') summary(sizeRows, label);
      const bgp = bgpSummary(sizeRows, label);
      if (bgp.line !== '') {
        say(bgp.line);
        bgpWorst.push(`${label} ${f(bgp.worstGapMs, 0)} ms`);
      }
      rows.push(...sizeRows);
    }
  } finally {
    servers.stop();
    await exec(['ip', 'addr', 'del', `${VIP}/32`, 'dev', 'lo']);
  }
  if (bgpWorst.length > 0) say(`bgp keepalives, worst gap per size: ${bgpWorst.join(', ')} (every ${Math.floor(PYBAL_BGP.holdTimeSec / 3) * 1000} ms expected)`);
  if (MONITOR === 'IdleConnection') {
    say(`idleconnection-rss-mb ${f(median(rows.map((r) => r.rssMb)), 1)}`);
    return;
  }
  /** The median of a figure over every counted round of pybal, divided by keepalived's. */
  const ratio = (pick: (r: RoundFigures) => number): string => f(median(counted(rows, 'pybal').map(pick)) / median(counted(rows, 'keepalived').map(pick)));
  say(`checks-guest-cpu-ratio-vs-keepalived ${ratio((r) => r.guestCpuMsPer1000)}`);
  say(`checks-cpu-ratio-vs-keepalived ${ratio((r) => r.cpuMsPer1000)}`);
}

runGuestBench({ name: 'checks bench', scriptUrl: import.meta.url, measure, timeoutMs: 3_600_000, openFiles: 65_536 });
