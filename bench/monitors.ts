/**
 * Monitor benchmark: real servers on loopback addresses, each monitored every
 * second, for a fixed time. Prints for ProxyFetch, Ping and IdleConnection
 * the checks achieved per second, the CPU used (this process, plus fping for
 * Ping) per 1,000 checks, and resident memory.
 *
 * It measures the monitor library (src/monitors) in this process on the host,
 * not the daemon, and runs no peer: it prints pybal's own figures and no
 * ratio. The peer figure its per-check CPU is set against, keepalived's
 * HTTP_GET checker, is measured by `npm run bench:checks` (beside the daemon,
 * in a lab guest); the header says so.
 *
 *   npm run bench:monitors
 *   BENCH_SECONDS=60 BENCH_SERVERS=2000 BENCH_PING_SERVERS=10000 (defaults)
 *   BENCH_ONLY=ping,idleconnection,proxyfetch (default all)
 *
 * The last line is `proxyfetch-cpu-ms-per-1000-checks X`: pybal's figure alone.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createSystemClock } from '../src/runtime/clock.js';
import { createSilentLogger } from '../src/runtime/logger.js';
import { createFpingPinger } from '../src/monitors/pinger.js';
import { createMonitor } from '../src/monitors/registry.js';
import type { Monitor, MonitorDeps } from '../src/monitors/types.js';
import { startLoopbackServers } from './lib/loopback-servers-process.js';
import { processCpuMs } from './lib/proc.js';
import type { IdleConnectionConfig, MonitorConfig, PingConfig, ProxyFetchConfig } from '../src/config/types.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const SERVERS = Number(process.env.BENCH_SERVERS ?? 2000);
const PING_SERVERS = Number(process.env.BENCH_PING_SERVERS ?? 10_000);
/** Comma-separated subset of ping,idleconnection,proxyfetch (default all). */
const ONLY = new Set((process.env.BENCH_ONLY ?? 'ping,idleconnection,proxyfetch').split(','));
const HTTP_PORT = 18080;
const TCP_PORT = 18081;

/** Distinct loopback addresses, 127.201.1.1 onwards (all of 127/8 is local on Linux). */
function addresses(count: number, second = 201): string[] {
  return Array.from({ length: count }, (_, i) => `127.${second + Math.floor(i / 62_500)}.${1 + (Math.floor(i / 250) % 250)}.${1 + (i % 250)}`);
}

const periodic = { intervalMs: 1000, timeoutMs: 5000, rise: 1, fall: 1 };

/** CPU ms (user and system) of this process's fping children, from /proc (no process spawned, so the figure is not skewed). */
function fpingCpuMs(): { user: number; system: number } {
  let user = 0;
  let system = 0;
  const children = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  for (const pid of children) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.includes('(fping)')) continue;
      const fields = stat.split(') ')[1]!.split(' ');
      user += Number(fields[11]); // utime and stime: fields 14 and 15 of stat
      system += Number(fields[12]);
    } catch {
      // gone meanwhile
    }
  }
  return { user: user * 10, system: system * 10 }; // USER_HZ is 100 on Linux
}

/** Heap in use after a full collection (needs node --expose-gc). */
function heapUsedAfterGc(): number | undefined {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return undefined;
  gc();
  return process.memoryUsage().heapUsed;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

interface Figures {
  readonly name: string;
  readonly servers: number;
  readonly checks: number;
  readonly seconds: number;
  readonly cpuMs: number;
  readonly rssMb: number;
  /** JavaScript heap held by the running monitors (after a full GC), when --expose-gc is on. */
  readonly heapMb?: number;
  /** Of cpuMs, the part spent in the kernel by this process (TCP on loopback is mostly that). */
  readonly systemMs?: number;
  readonly extra?: string;
}

function print(f: Figures): void {
  const perSecond = f.checks / f.seconds;
  const per1000 = f.checks > 0 ? (f.cpuMs / f.checks) * 1000 : NaN;
  console.log(
    `${f.name}: servers ${f.servers}, ${f.seconds.toFixed(1)} s, checks ${f.checks} (${perSecond.toFixed(0)}/s), ` +
      `cpu ${(f.cpuMs / 1000).toFixed(2)} s (${((f.cpuMs / 1000 / f.seconds) * 100).toFixed(1)}% of a core` +
      `${f.systemMs === undefined ? '' : `, system ${(f.systemMs / 1000).toFixed(2)} s`}), ` +
      `cpu-ms-per-1000-checks ${per1000.toFixed(1)}, rss ${f.rssMb.toFixed(0)} MB` +
      `${f.heapMb === undefined ? '' : `, heap held by the monitors ${f.heapMb.toFixed(1)} MB (${((f.heapMb * 1024) / f.servers).toFixed(1)} KB per server)`}` +
      `${f.extra ? `, ${f.extra}` : ''}`,
  );
}

async function run(name: string, configFor: () => MonitorConfig, targets: readonly string[], port: number, deps: Partial<MonitorDeps> = {}, during?: (elapsedS: number) => void): Promise<Figures> {
  const clock = createSystemClock();
  const logger = createSilentLogger();
  const heapBefore = heapUsedAfterGc();
  let checks = 0;
  let failures = 0;
  // A fixed-size reservoir sample, so that the bench's own memory stays flat.
  const durations = new Float64Array(10_000);
  let kept = 0;
  const reasons = new Map<string, number>();
  const monitors: Monitor[] = targets.map((ip) =>
    createMonitor(configFor(), { host: ip, ip, port, family: 4 }, {
      clock,
      logger,
      onReport: () => undefined,
      onResult: (r) => {
        checks += 1;
        if (kept < durations.length) durations[kept++] = r.durationMs;
        else {
          const slot = Math.floor(Math.random() * checks);
          if (slot < durations.length) durations[slot] = r.durationMs;
        }
        if (r.ok) return;
        failures += 1;
        // Group reasons without addresses and numbers.
        const key = r.reason.replace(/\([^)]*\)/g, '()').replace(/[\d.:]+/g, 'N').slice(0, 80);
        reasons.set(key, (reasons.get(key) ?? 0) + 1);
      },
      ...deps,
    }),
  );
  const startCpu = cpuMs();
  const startSystem = process.cpuUsage().system;
  const start = performance.now();
  for (const m of monitors) m.start();
  let elapsed = 0;
  let peakRss = 0;
  while (elapsed < SECONDS) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    elapsed = (performance.now() - start) / 1000;
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    during?.(elapsed);
  }
  const used = cpuMs() - startCpu;
  const systemMs = (process.cpuUsage().system - startSystem) / 1000;
  const counted = checks;
  const seconds = (performance.now() - start) / 1000;
  const heapHeld = heapUsedAfterGc();
  const heapMb = heapBefore === undefined || heapHeld === undefined ? undefined : (heapHeld - heapBefore) / 2 ** 20;
  await Promise.all(monitors.map((m) => m.stop()));
  const sample = durations.subarray(0, kept).sort();
  const pct = (p: number): string => (sample[Math.min(sample.length - 1, Math.floor(sample.length * p))] ?? NaN).toFixed(1);
  const top = [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, n]) => `${n}× ${k}`);
  const extra = `failed ${failures}, check ms p50 ${pct(0.5)} p99 ${pct(0.99)}${top.length ? ` [${top.join('; ')}]` : ''}`;
  return { name, servers: targets.length, checks: counted, seconds, cpuMs: used, systemMs, rssMb: peakRss / 2 ** 20, heapMb, extra };
}

function startServers(targets: readonly string[]): Promise<ChildProcess> {
  return startLoopbackServers([{ addresses: targets, httpPort: HTTP_PORT, tcpPort: TCP_PORT }]);
}

/** `fping --version`'s line (fping is part of what is measured: our Ping monitor drives it). */
function fpingVersion(): string {
  try {
    return execFileSync('fping', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n')[0] ?? '?';
  } catch (err) {
    return `unknown (fping --version failed: ${(err as Error).message.split('\n')[0]})`;
  }
}

async function main(): Promise<void> {
  const os = await import('node:os');
  console.log(`monitor benchmark: ${SERVERS} servers (ping also ${PING_SERVERS}), every 1 s, ${SECONDS} s each, node ${process.version}, ${os.cpus().length} cores, load average ${os.loadavg()[0]?.toFixed(2)}`);
  console.log('  measures: the monitor library (src/monitors) in this process on the host, not the daemon (no coordinator, IPVS or BGP); CPU is this process (plus fping for Ping)');
  console.log('  servers: one separate node process (bench/lib/loopback-servers.ts) listening on the loopback addresses; its CPU is not counted (shown for ProxyFetch)');
  console.log(`  ping: our Ping monitor drives one long-running fping (${fpingVersion()}) for all servers; its CPU is counted`);
  console.log(
    '  compares with: no peer in this run, so no ratio. The peer figure for the per-check CPU is keepalived\'s HTTP_GET, which `npm run bench:checks` measures ' +
      'side by side with the daemon\'s ProxyFetch in a lab guest: a separate run, under other conditions, not to be divided by the figures here',
  );
  const targets = addresses(SERVERS);
  // Real servers are needed for IdleConnection and ProxyFetch only (the kernel answers pings).
  const servers = ONLY.has('idleconnection') || ONLY.has('proxyfetch') ? await startServers(targets) : undefined;
  try {
    // Ping: one long-running fping for all; its CPU is counted too.
    for (const count of ONLY.has('ping') ? [...new Set([SERVERS, PING_SERVERS])] : []) {
      const pinger = createFpingPinger({ clock: createSystemClock(), logger: createSilentLogger() });
      let fping = { user: 0, system: 0 };
      const ping: PingConfig = { kind: 'Ping', count: 1, intervalMs: 1000, timeoutMs: 1000, rise: 1, fall: 1 };
      const figures = await run(`ping-${count}`, () => ping, addresses(count, 210), 0, { pinger }, () => {
        // Read while the processes live (stop() reaps them); their counters only grow.
        const now = fpingCpuMs();
        if (now.user + now.system >= fping.user + fping.system) fping = now;
      });
      await pinger.stop();
      const fpingMs = fping.user + fping.system;
      print({
        ...figures,
        cpuMs: figures.cpuMs + fpingMs,
        extra:
          `${figures.extra}; of which fping user ${(fping.user / 1000).toFixed(2)} s, system ${(fping.system / 1000).toFixed(2)} s ` +
          '(on loopback the kernel answering the echoes is charged to fping as system time)',
      });
    }

    // IdleConnection: connections held; every 5 s the servers close them all cleanly and the monitors reconnect.
    const idle: IdleConnectionConfig = {
      kind: 'IdleConnection', timeoutCleanReconnectMs: 3000, maxDelayMs: 300_000, keepalive: true, keepaliveRetries: 3,
      keepaliveIdleMs: 10_000, keepaliveIntervalMs: 30_000, connectTimeoutMs: 5000, rise: 1, fall: 1,
    };
    let lastDrop = 0;
    if (ONLY.has('idleconnection')) {
    const idleFigures = await run('idleconnection', () => idle, targets, TCP_PORT, {}, (elapsed) => {
      if (elapsed - lastDrop >= 5) {
        lastDrop = elapsed;
        servers?.send({ cmd: 'drop' });
      }
    });
    print({ ...idleFigures, extra: `${idleFigures.extra} (checks = connections made; all dropped with FIN every 5 s)` });
    }
    if (!ONLY.has('proxyfetch')) return;

    const fetch: ProxyFetchConfig = {
      kind: 'ProxyFetch', urls: ['http://www.example.org/health'], ...periodic, httpStatus: 200, checkAll: false, maxFailures: 0,
      expectBody: undefined, expectBodyRegex: undefined, verifyTls: false, caFile: undefined,
    };
    const serverCpuBefore = processCpuMs(servers?.pid);
    const fetchFigures = await run('proxyfetch', () => fetch, targets, HTTP_PORT);
    const serverCpuS = (processCpuMs(servers?.pid) - serverCpuBefore) / 1000;
    print({ ...fetchFigures, extra: `${fetchFigures.extra}; the servers' own process used ${serverCpuS.toFixed(2)} s cpu` });
    console.log('proxyfetch: the monitor library in this process on the host, not the daemon; no peer measured here (keepalived HTTP_GET: `npm run bench:checks`)');
    console.log(`proxyfetch-cpu-ms-per-1000-checks ${((fetchFigures.cpuMs / fetchFigures.checks) * 1000).toFixed(1)}`);
  } finally {
    servers?.kill('SIGTERM');
  }
}

await main();
