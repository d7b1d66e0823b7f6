/**
 * Data-path checks against plain checks: what `datapath-check = yes` costs
 * pybal per check, in one lab guest (a UML kernel with IPVS, one CPU).
 * Figures only: nothing is asserted.
 *
 * What is compared: the same daemon, build and config but for one line.
 * "plain" checks each real server at its own address; "datapath" (the same
 * plus `datapath-check = yes`) connects to the VIP from a socket carrying
 * the server's firewall mark (SO_MARK, the sockmark addon), which a
 * one-destination IPVS firewall-mark probe service forwards to the server by
 * direct routing. Rounds alternate (plain, datapath, plain, ...) so that
 * drift hits both, first with monitors = TCPConnect, then ProxyFetch
 * (BENCH_DP_MONITORS). The datapath rounds also carry what comes with the
 * option: the probe services pybal programs (N IPVS services, in its
 * start-up, before the window) and the ARP watch (`arping -b` for the VIP on
 * each interface every 10 s; arping's own CPU is its own, not pybal's).
 *
 * Set-up, built with `ip` in the guest: the guest's root namespace is the
 * director (pybal, the VIP 203.0.113.1/32 on lo, accept_local = 1 on all
 * and on its veth dp0, 198.51.100.1/24, and 198.18.0.0/15 on-link through
 * dp0). One namespace `dprs` on the other end of the veth holds the N real
 * servers' addresses on its eth0 (198.51.100.2-254, then 198.18.0.1
 * onwards) and the VIP on lo, with arp_ignore = 1 and arp_announce = 2. One
 * wildcard listener there (bench/lib/check-servers.ts, its own process, its
 * CPU counted against neither case) answers HTTP 200 and counts connections
 * and requests per local address: at a server's own address for plain
 * checks, at the VIP for data-path ones (direct routing delivers every probe
 * to the same MAC, this namespace's, which is fine for a cost measurement).
 * Which server a data-path check was for is counted by the director's
 * kernel: the connections of each probe service (`ipvsadm -Ln --stats`).
 *
 * pybal runs as operators run it (`node dist/cli/pybal.js -c <conf>
 * --log-file <file> --control-socket <sock>`, the build copied at the start),
 * bgp = no, one service on the VIP, forward-method = dr, scheduler rr, a
 * file:// pool of the N servers, the monitor's interval and timeout
 * BENCH_DP_INTERVAL_SEC (default 1 s, so 500 servers give 500 checks/s).
 *
 * Each round: start pybal; wait until the service has its N destinations
 * and, for datapath, until the kernel has the N probe services (firewall
 * marks from 0x70b00000), the listener sees checks only at the VIP (none at
 * the servers' own addresses, which is where a check goes while its probe
 * service is not in the kernel yet) and every server's last reason in
 * pybal's /status says "to the VIP"; then a warm-up; then the window
 * (BENCH_WINDOW_SECONDS): pybal's CPU (utime + stime from /proc/<pid>/stat)
 * over the checks the listener counted (connections accepted for
 * TCPConnect, requests answered for ProxyFetch), its RSS (median of one
 * sample a second), and the whole guest's busy CPU per 1,000 checks (UML
 * charges CPU by the tick, so the cost of a system call can land on another
 * process; the whole guest's figure does not depend on that split). UML's
 * system calls are slow, far slower than on bare metal: compare the two
 * cases with each other, in the same run, not with other machines.
 *
 * Not counted: the listener's CPU (reported beside), arping's, the kernel's
 * work on the real servers' side (it is in the whole-guest figure), the
 * start-up (programming N probe services). Not measured: what a failed
 * data-path check costs extra (it tries the server's own address once);
 * making every check fail would measure timeouts and depooling as well.
 *
 *   npm run bench:datapath   (boots a lab guest; 10-20 minutes)
 *   BENCH_DP_SERVERS=500 BENCH_DP_INTERVAL_SEC=1 BENCH_ROUNDS=3 BENCH_WINDOW_SECONDS=20
 *   BENCH_DP_MONITORS=TCPConnect,ProxyFetch BENCH_WARMUP_SECONDS (default 2 intervals, at least 5)
 *
 * Per round: checks/s, CPU ms per 1,000 checks, RSS; per monitor the medians
 * and the ratio; the last line `datapath-cpu-ratio-vs-plain R`: the median
 * of pybal's CPU per 1,000 checks over every datapath round of every
 * monitor, divided by the same median over the plain rounds.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec, execOk, LabProcess, waitFor } from '../test/lab/exec.js';
import { repoRoot } from '../test/lab/uml.js';
import { getOverSocket } from './lib/api-poller.js';
import { startCheckServers, type CheckServers } from './lib/check-servers-process.js';
import { formatLegacyPool, formatPybalConf, type CheckedService } from './lib/checks-config.js';
import { runGuestBench } from './lib/guest.js';
import { guestCpuTicks, processCpuMs, processRssBytes } from './lib/proc.js';
import { snapshotPybalBuild } from './lib/pybal-build.js';
import { median } from './lib/stats.js';
import { daemonCommand } from '../src/cli/node-options.js';

const SERVERS = Number(process.env.BENCH_DP_SERVERS ?? 500);
const INTERVAL_SEC = Number(process.env.BENCH_DP_INTERVAL_SEC ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WINDOW_SECONDS = Number(process.env.BENCH_WINDOW_SECONDS ?? 20);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? Math.max(5, 2 * INTERVAL_SEC));
const MONITORS = (process.env.BENCH_DP_MONITORS ?? 'TCPConnect,ProxyFetch').split(',').map((m) => m.trim()) as Monitor[];
/** How long pybal may take to program the service and the probe services, and to check through them. */
const READY_TIMEOUT_MS = 300_000;

type Monitor = 'TCPConnect' | 'ProxyFetch';
const CASES = ['plain', 'datapath'] as const;
type Case = (typeof CASES)[number];

const VIP = '203.0.113.1';
const PORT = 80;
const NETNS = 'dprs';
const DIRECTOR_IP = '198.51.100.1';
/** pybal's default datapath-fwmark-base: its probe services' marks start here. */
const MARK_BASE = 0x70b00000;

let pybalMain = '';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const say = (line: string): void => void process.stdout.write(`${line}\n`);
const note = (line: string): void => void process.stderr.write(`  ${line}\n`);
const f = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : String(x));
const sum = (counts: Record<string, number>, pick: (address: string) => boolean): number =>
  Object.entries(counts).reduce((a, [address, n]) => a + (pick(address) ? n : 0), 0);

// ---------------------------------------------------------------- the network

/** The real servers: 198.51.100.2-254, then 198.18.0.1 onwards (198.18.0.0/15, benchmarking addresses). */
function serverAddresses(count: number): string[] {
  const first = Array.from({ length: Math.min(count, 253) }, (_, i) => `198.51.100.${i + 2}`);
  const more = Array.from({ length: Math.max(0, count - 253) }, (_, i) => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`);
  if (more.length > 500 * 250) throw new Error(`at most ${253 + 500 * 250} servers`);
  return [...first, ...more];
}

const sysctl = (settings: readonly string[]): string[] => ['sysctl', '-q', '-w', ...settings];

/** Builds the director (this namespace) and the real servers' namespace; see the top of the file. */
async function buildNetwork(servers: readonly string[], dir: string): Promise<void> {
  const inNs = (argv: readonly string[]): string[] => ['ip', 'netns', 'exec', NETNS, ...argv];
  await execOk(['ip', 'netns', 'add', NETNS]);
  await execOk(['ip', 'link', 'add', 'dp0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NETNS]);
  await execOk(['ip', 'addr', 'add', `${DIRECTOR_IP}/24`, 'dev', 'dp0']);
  await execOk(['ip', 'link', 'set', 'dp0', 'up']);
  await execOk(['ip', 'route', 'add', '198.18.0.0/15', 'dev', 'dp0']);
  await execOk(['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'lo']);
  const neighbours = String(Math.max(1024, 4 * servers.length));
  // The neighbour table's limits are the machine's (set in the root namespace only).
  const neighbourTable = ['gc_thresh1', 'gc_thresh2', 'gc_thresh3'].map((k) => `net.ipv4.neigh.default.${k}=${neighbours}`);
  // The probes' replies come from the VIP, which the director holds too: accept them.
  await execOk(sysctl(['net.ipv4.conf.all.accept_local=1', 'net.ipv4.conf.dp0.accept_local=1', ...neighbourTable]));
  await execOk(inNs(['ip', 'link', 'set', 'lo', 'up']));
  await execOk(inNs(sysctl(['net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2', 'net.ipv4.conf.eth0.arp_ignore=1', 'net.ipv4.conf.eth0.arp_announce=2'])));
  const batch = join(dir, 'rs-addresses.ip');
  writeFileSync(batch, [...servers.map((a) => `addr add ${a}/${a.startsWith('198.18.') ? 15 : 24} dev eth0`), `addr add ${VIP}/32 dev lo`, 'link set eth0 up', ''].join('\n'));
  await execOk(['ip', '-n', NETNS, '-batch', batch], { timeoutMs: 300_000 });
}

async function removeNetwork(): Promise<void> {
  await exec(['ip', 'netns', 'del', NETNS]);
  await exec(['ip', 'addr', 'del', `${VIP}/32`, 'dev', 'lo']);
}

// ---------------------------------------------------------------- the kernel's view

/** Destinations of the clients' service. */
async function serviceDests(): Promise<number> {
  const r = await exec(['ipvsadm', '-Ln', '-t', `${VIP}:${PORT}`]);
  return r.code === 0 ? r.stdout.split('\n').filter((l) => l.includes('->') && !l.includes('RemoteAddress')).length : 0;
}

/** pybal's probe services (firewall marks from MARK_BASE on) and the connections each has scheduled so far. */
async function probeConnections(): Promise<Map<number, number>> {
  const r = await execOk(['ipvsadm', '-Ln', '--stats', '--exact'], { timeoutMs: 120_000 });
  const probes = new Map<number, number>();
  for (const line of r.stdout.split('\n')) {
    const m = /^FWM\s+(\d+)\s+(\d+)/.exec(line);
    if (m && Number(m[1]) >= MARK_BASE) probes.set(Number(m[1]), Number(m[2]));
  }
  return probes;
}

// ---------------------------------------------------------------- one round

interface RoundFigures {
  readonly monitor: Monitor;
  readonly kind: Case;
  readonly round: number;
  readonly checks: number;
  readonly checksPerSec: number;
  /** Of which at the VIP (through a probe service), the rest at the servers' own addresses. */
  readonly atVip: number;
  /** Distinct servers checked in the window: own addresses seen (plain), probe services that scheduled a connection (datapath). */
  readonly serversChecked: number;
  readonly cpuMsPer1000: number;
  readonly cpuMsPerSec: number;
  readonly guestCpuMsPer1000: number;
  readonly guestBusyShare: number;
  readonly serversCpuMsPerSec: number;
  readonly rssMb: number;
  /** From pybal's start until its checks ran as the case wants (datapath: every one through its probe service). */
  readonly readySec: number;
  /** Lines of pybal's log from its start to the end of the window saying a server went down, and the last of them. */
  readonly downs: number;
  readonly lastDown: string;
}

/** The check count the listener keeps for this monitor: TCPConnect sends no request. */
function checkCounts(monitor: Monitor, counts: { requests: Record<string, number>; connections: Record<string, number> }): Record<string, number> {
  return monitor === 'TCPConnect' ? counts.connections : counts.requests;
}

/** Waits until every check of the round goes where its case sends it. */
async function untilChecking(servers: CheckServers, kind: Case, monitor: Monitor, addresses: readonly string[], dir: string, proc: LabProcess): Promise<void> {
  const alive = (): void => {
    if (!proc.running) throw new Error(`pybal exited:\n${proc.output().slice(-2000)}`);
  };
  const opts = (what: string): { timeoutMs: number; intervalMs: number; what: string } => ({ timeoutMs: READY_TIMEOUT_MS, intervalMs: 500, what });
  await waitFor(async () => (alive(), (await serviceDests()) === addresses.length ? true : undefined), opts(`${addresses.length} destinations in the service`));
  if (kind === 'plain') {
    await servers.reset();
    await waitFor(async () => (alive(), Object.keys(checkCounts(monitor, await servers.counts())).length >= addresses.length ? true : undefined), opts('every server checked at its address'));
    return;
  }
  await waitFor(async () => (alive(), (await probeConnections()).size === addresses.length ? true : undefined), opts(`${addresses.length} probe services in IPVS`));
  // A whole interval and a half with checks at the VIP and none at a server's own address.
  await waitFor(
    async () => {
      alive();
      await servers.reset();
      await sleep(1.5 * INTERVAL_SEC * 1000);
      const counts = checkCounts(monitor, await servers.counts());
      return sum(counts, (a) => a === VIP) > 0 && sum(counts, (a) => a !== VIP) === 0 ? true : undefined;
    },
    opts('checks at the VIP only'),
  );
  await waitFor(
    async () => {
      alive();
      const status = await getOverSocket(join(dir, 'pybal.sock'), '/status');
      const viaVip = status?.match(/to the VIP /g)?.length ?? 0;
      return viaVip >= addresses.length ? true : undefined;
    },
    opts('every server\'s last reason in /status saying "to the VIP"'),
  );
}

async function runRound(servers: CheckServers, monitor: Monitor, kind: Case, round: number, addresses: readonly string[]): Promise<RoundFigures> {
  const dir = mkdtempSync(join(tmpdir(), `pybal-bench-datapath-${kind}-`));
  await execOk(['ipvsadm', '-C']);
  const service: CheckedService = {
    vip: VIP,
    port: PORT,
    realServers: addresses,
    intervalSec: INTERVAL_SEC,
    timeoutSec: INTERVAL_SEC,
    weight: 10,
    scheduler: 'rr',
    monitor,
    pybalServiceLines: ['forward-method = dr', ...(kind === 'datapath' ? ['datapath-check = yes'] : [])],
  };
  const pool = join(dir, 'pool');
  writeFileSync(pool, formatLegacyPool(addresses, service.weight));
  const conf = join(dir, 'pybal.conf');
  writeFileSync(conf, formatPybalConf(service, pool));
  const argv = [...daemonCommand(process.execPath), pybalMain, '-c', conf, '--log-file', join(dir, 'pybal.log'), '--control-socket', join(dir, 'pybal.sock')];
  const proc = new LabProcess('pybal', argv, { cwd: repoRoot(), logPath: join(dir, 'pybal.out') });
  try {
    const pid = proc.pid;
    if (pid === undefined) throw new Error(`pybal did not start:\n${proc.output()}`);
    const startedMs = Date.now();
    await untilChecking(servers, kind, monitor, addresses, dir, proc);
    const readySec = (Date.now() - startedMs) / 1000;
    await sleep(WARMUP_SECONDS * 1000);
    const probes0 = kind === 'datapath' ? await probeConnections() : undefined;
    await servers.reset();
    const startMs = Date.now();
    const cpu0 = processCpuMs(pid);
    const serversCpu0 = processCpuMs(servers.pid);
    const guest0 = guestCpuTicks();
    const rss: number[] = [];
    while (Date.now() - startMs < WINDOW_SECONDS * 1000) {
      await sleep(Math.min(1000, startMs + WINDOW_SECONDS * 1000 - Date.now()));
      rss.push(processRssBytes(pid));
    }
    const cpuMs = processCpuMs(pid) - cpu0;
    const serversCpuMs = processCpuMs(servers.pid) - serversCpu0;
    const guest1 = guestCpuTicks();
    const counts = checkCounts(monitor, await servers.counts());
    const seconds = (Date.now() - startMs) / 1000;
    if (!proc.running) throw new Error(`pybal exited during the window:\n${proc.output().slice(-2000)}`);
    const probes1 = probes0 === undefined ? undefined : await probeConnections();
    const downLines = readFileSync(join(dir, 'pybal.log'), 'utf8').split('\n').filter((l) => / down: /.test(l));
    const checks = sum(counts, () => true);
    const busyShare = (guest1.busy - guest0.busy) / (guest1.total - guest0.total);
    const serversChecked =
      probes0 === undefined || probes1 === undefined
        ? Object.keys(counts).filter((a) => a !== VIP).length
        : [...probes1].filter(([mark, conns]) => conns > (probes0.get(mark) ?? 0)).length;
    if (checks < 0.5 * seconds * (addresses.length / INTERVAL_SEC)) note(`${monitor} ${kind}: under half the expected checks; the end of its log:\n${proc.output().slice(-2000)}`);
    return {
      monitor,
      kind,
      round,
      checks,
      checksPerSec: checks / seconds,
      atVip: counts[VIP] ?? 0,
      serversChecked,
      cpuMsPer1000: (cpuMs / checks) * 1000,
      cpuMsPerSec: cpuMs / seconds,
      guestCpuMsPer1000: (busyShare * seconds * 1000 * 1000) / checks,
      guestBusyShare: busyShare,
      serversCpuMsPerSec: serversCpuMs / seconds,
      rssMb: median(rss) / 2 ** 20,
      readySec,
      downs: downLines.length,
      lastDown: downLines.at(-1) ?? '',
    };
  } finally {
    // pybal removes its probe services at stop; -C clears anything left.
    await proc.stop(60_000);
    await execOk(['ipvsadm', '-C']).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

function roundLine(r: RoundFigures): string {
  return (
    `  ${r.monitor} round ${r.round} ${r.kind}: ${f(r.checksPerSec)} checks/s (of ${f(SERVERS / INTERVAL_SEC, 0)}; ${r.atVip} at the VIP, ${r.checks - r.atVip} at own addresses; ${r.serversChecked} servers checked), ` +
    `cpu ${f(r.cpuMsPer1000)} ms per 1,000 checks (${f(r.cpuMsPerSec)} ms/s), rss ${f(r.rssMb)} MB; ` +
    `whole guest ${f(r.guestCpuMsPer1000)} ms per 1,000 checks (busy ${f(r.guestBusyShare * 100)} %, listener ${f(r.serversCpuMsPerSec, 0)} ms/s); ready ${f(r.readySec)} s after start; ${r.downs} servers reported down${r.downs > 0 ? ` (the last: ${r.lastDown})` : ''}`
  );
}

interface Medians {
  readonly cps: number;
  readonly cpu: number;
  readonly guestCpu: number;
  readonly rss: number;
}

function medians(rows: readonly RoundFigures[]): Medians {
  return {
    cps: median(rows.map((r) => r.checksPerSec)),
    cpu: median(rows.map((r) => r.cpuMsPer1000)),
    guestCpu: median(rows.map((r) => r.guestCpuMsPer1000)),
    rss: median(rows.map((r) => r.rssMb)),
  };
}

function summary(rows: readonly RoundFigures[], monitor: Monitor): void {
  const of = (kind: Case): Medians => medians(rows.filter((r) => r.kind === kind && r.checks > 0));
  for (const kind of CASES) {
    const m = of(kind);
    say(`${monitor} median ${kind}: ${f(m.cps)} checks/s, cpu ${f(m.cpu)} ms per 1,000 checks (whole guest ${f(m.guestCpu)}), rss ${f(m.rss)} MB`);
  }
  const p = of('plain');
  const d = of('datapath');
  say(`${monitor} datapath/plain: cpu per 1,000 checks x${f(d.cpu / p.cpu, 2)} (whole guest x${f(d.guestCpu / p.guestCpu, 2)}), rss x${f(d.rss / p.rss, 2)}, checks/s x${f(d.cps / p.cps, 2)}`);
}

async function measure(): Promise<void> {
  if (!(SERVERS > 0) || !(INTERVAL_SEC > 0) || MONITORS.some((m) => m !== 'TCPConnect' && m !== 'ProxyFetch')) {
    throw new Error('BENCH_DP_SERVERS and BENCH_DP_INTERVAL_SEC must be positive; BENCH_DP_MONITORS is TCPConnect and/or ProxyFetch');
  }
  pybalMain = snapshotPybalBuild();
  const head = (await exec(['git', '-C', repoRoot(), 'describe', '--always', '--dirty'])).stdout.trim() || '?';
  say(
    `data-path benchmark: UML guest kernel (one CPU; slow system calls), node ${process.version}, pybal at ${head}; ` +
      `${SERVERS} real servers by direct routing, every ${INTERVAL_SEC} s (${f(SERVERS / INTERVAL_SEC, 0)} checks/s expected); ` +
      `plain (at each server's address) vs datapath (datapath-check = yes: at the VIP through a probe service); window ${WINDOW_SECONDS} s; figures only`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'pybal-bench-datapath-'));
  const addresses = serverAddresses(SERVERS);
  await removeNetwork();
  await buildNetwork(addresses, dir);
  const servers = await startCheckServers(PORT, { netns: NETNS });
  const rows: RoundFigures[] = [];
  try {
    for (const monitor of MONITORS) {
      say(`${monitor}:`);
      const monitorRows: RoundFigures[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        for (const kind of CASES) {
          const row = await runRound(servers, monitor, kind, round, addresses);
          monitorRows.push(row);
          say(roundLine(row));
        }
      }
      summary(monitorRows, monitor);
      rows.push(...monitorRows);
    }
  } finally {
    servers.stop();
    await removeNetwork();
    rmSync(dir, { recursive: true, force: true });
  }
  const cpu = (kind: Case): number => median(rows.filter((r) => r.kind === kind && r.checks > 0).map((r) => r.cpuMsPer1000));
  say(`datapath-cpu-ratio-vs-plain ${f(cpu('datapath') / cpu('plain'), 2)}`);
}

runGuestBench({ name: 'data-path bench', scriptUrl: import.meta.url, measure, timeoutMs: 3_600_000, openFiles: 65_536 });
