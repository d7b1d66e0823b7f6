/**
 * The checks thread of the build (CheckThread and its worker from tsc's
 * dist/src/) against an HTTP server in a process of its own, which notes
 * when each request arrives, at which of its addresses, and what it
 * answered: monitors made by the thread's factory report, pass on every
 * result and log as on one thread; their checks keep their pace while the
 * main thread is busy and what they said meanwhile arrives after, in order;
 * checks due within one step of the thread's timer grid start together;
 * stop() ends a monitor's checks and what it says; a config is sent again
 * once its last monitor stopped; a thread that dies is started again, its
 * monitors that were up starting from up; the data path's readiness reaches
 * the thread; a reload's runcommand-max-concurrent reaches it; close() ends
 * it with monitors still running; the thread's event loop figures come back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { getHeapStatistics } from 'node:v8';
import type { Worker } from 'node:worker_threads';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MonitorConfig } from '../../src/config/types.js';
import { createMonitorFactory } from '../../src/coordinator/monitor-factory.js';
import type { ThreadAction, ToCheckThread } from '../../src/monitors/thread-messages.js';
import type { CheckResult, MonitorReport, MonitorTarget } from '../../src/monitors/types.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { createMemoryLogger, type MemoryLog } from '../../src/runtime/logger.js';
import { proxyFetchConfig, runCommandConfig, tcpConnectConfig } from './support/configs.js';
import { loopbackAddress, waitFor } from './support/helpers.js';
import { assertFreshBuild } from '../support/fresh-build.js';

type ThreadModule = typeof import('../../src/monitors/check-thread.js');
type CheckThread = InstanceType<ThreadModule['CheckThread']>;

/**
 * An HTTP server in a child process, listening on one port at each address
 * given: it prints every request with its arrival time (its own event loop:
 * the test's main thread may be busy meanwhile), the address it came to and
 * the status it answered. Per address, the statuses come from `next` (one
 * each) and then from `cycle` (round and round; [200] at first), with
 * `body` ("served" at first); a line {id, ip, next?, cycle?, body?} on its
 * standard input sets them and is acknowledged.
 */
const SERVER_SCRIPT = `
const http = require('node:http');
const readline = require('node:readline');
const hosts = process.argv.slice(1);
const plans = new Map();
const plan = (ip) => {
  if (!plans.has(ip)) plans.set(ip, { next: [], cycle: [200], i: 0, body: 'served\\n' });
  return plans.get(ip);
};
const handle = (req, res) => {
  const t = Date.now();
  const ip = req.socket.localAddress;
  const p = plan(ip);
  const status = p.next.length > 0 ? p.next.shift() : p.cycle[p.i++ % p.cycle.length];
  console.log(JSON.stringify({ t, ip, path: req.url, status }));
  res.writeHead(status, { 'content-type': 'text/plain', connection: 'close' });
  res.end(p.body);
};
const listen = (host, port) =>
  new Promise((resolve, reject) => {
    const server = http.createServer(handle);
    server.once('error', reject);
    server.listen(port, host, () => resolve(server.address().port));
  });
(async () => {
  const port = await listen(hosts[0], 0);
  for (const host of hosts.slice(1)) await listen(host, port);
  console.log(JSON.stringify({ port }));
})();
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line);
  const p = plan(m.ip);
  if (m.cycle !== undefined) {
    p.cycle = m.cycle;
    p.i = 0;
  }
  if (m.next !== undefined) p.next = m.next;
  if (m.body !== undefined) p.body = m.body;
  console.log(JSON.stringify({ ack: m.id }));
});
`;

interface Arrival {
  readonly t: number;
  readonly ip: string;
  readonly path: string;
  readonly status: number;
}

interface ProcessServer {
  readonly port: number;
  readonly arrivals: Arrival[];
  readonly child: ChildProcess;
  /** Sets the statuses an address answers (see SERVER_SCRIPT), once the server has them. */
  answer(ip: string, plan: { next?: number[]; cycle?: number[]; body?: string }): Promise<void>;
}

async function startProcessServer(hosts: readonly string[]): Promise<ProcessServer> {
  const child = spawn(process.execPath, ['-e', SERVER_SCRIPT, ...hosts], { stdio: ['pipe', 'pipe', 'inherit'] });
  const arrivals: Arrival[] = [];
  const acks = new Set<number>();
  let port = 0;
  let nextId = 1;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const m = JSON.parse(line) as Partial<Arrival> & { port?: number; ack?: number };
    if (m.port !== undefined) port = m.port;
    else if (m.ack !== undefined) acks.add(m.ack);
    else arrivals.push(m as Arrival);
  });
  await waitFor(() => port !== 0, 'the server process', 10_000);
  return {
    port,
    arrivals,
    child,
    async answer(ip, plan) {
      const id = nextId++;
      child.stdin!.write(`${JSON.stringify({ id, ip, ...plan })}\n`);
      await waitFor(() => acks.has(id), `the server's acknowledgement of ${id}`, 5_000);
    },
  };
}

function busy(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // The main thread holds the event loop, as a large reconcile or a burst of pool files would.
  }
}

/** What a server's check said, as the HTTP status it got (a successful fetch here is always a 200). */
const statusOf = (result: CheckResult): number => (result.ok ? 200 : Number(/HTTP status (\d+)/.exec(result.reason)?.[1] ?? NaN));

/** One monitor's reports and results (onCheck), as the coordinator would get them. */
interface Watched {
  readonly target: MonitorTarget;
  readonly reports: MonitorReport[];
  readonly checks: CheckResult[];
  readonly monitor: { start(options?: { assumeUp?: boolean; delayMs?: number }): void; stop(): Promise<void> };
}

// Interval 250 ms, timeout 1 s; rise and fall 1 unless a test says otherwise.
const FAST = { intervalMs: 250, timeoutMs: 1_000 };
const SERVICE = 'text_80';

describe('the checks thread (the build, dist/src/)', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  beforeAll(() => assertFreshBuild(['src/monitors', 'src/runtime', 'src/config']));

  /** A thread, a server process listening at `hosts`, and what the thread's results sink got. */
  async function start(hosts: readonly string[], options: { loopEveryMs?: number; stuckAfterMs?: number; timerSlackMs?: number; firstReadsWaiting?: () => number; spawnWaitMaxMs?: number } = {}) {
    const { CheckThread } = (await import(resolve('dist/src/monitors/check-thread.js'))) as ThreadModule;
    const server = await startProcessServer(hosts);
    cleanups.push(() => server.child.kill('SIGKILL'));
    const log = createMemoryLogger('debug');
    const thread = new CheckThread({
      clock: createSystemClock(),
      logger: log.logger,
      runcommandMaxConcurrent: 4,
      arpWatchIntervalMs: 60_000,
      ...(options.loopEveryMs === undefined ? {} : { loopEveryMs: options.loopEveryMs }),
      ...(options.stuckAfterMs === undefined ? {} : { stuckAfterMs: options.stuckAfterMs }),
      ...(options.timerSlackMs === undefined ? {} : { timerSlackMs: options.timerSlackMs }),
      ...(options.firstReadsWaiting === undefined ? {} : { firstReadsWaiting: options.firstReadsWaiting }),
      ...(options.spawnWaitMaxMs === undefined ? {} : { spawnWaitMaxMs: options.spawnWaitMaxMs }),
    });
    cleanups.push(() => thread.close());
    const results: { target: MonitorTarget; result: CheckResult }[] = [];
    /** The sink's reports, and which of the sink and the monitor heard each report first. */
    const sinkReports: { target: MonitorTarget; report: MonitorReport }[] = [];
    const heard: ('sink' | 'monitor')[] = [];
    const make = thread.factory({
      logger: log.logger.child({ service: SERVICE }),
      onResult: (target, result) => results.push({ target, result }),
      onReport: (target, report) => {
        heard.push('sink');
        sinkReports.push({ target, report });
      },
    });
    /** A monitor of `config` for the server at `ip`, started unless told not to. */
    const watch = (config: MonitorConfig, ip: string, target: Partial<MonitorTarget> = {}, started = true): Watched => {
      const t: MonitorTarget = { host: `rs-${ip}`, ip, port: server.port, family: 4, ...target };
      const reports: MonitorReport[] = [];
      const checks: CheckResult[] = [];
      const monitor = make(
        config,
        t,
        (r) => {
          heard.push('monitor');
          reports.push(r);
        },
        (r) => checks.push(r),
      );
      if (started) monitor.start();
      return { target: t, reports, checks, monitor };
    };
    const at = (ip: string): Arrival[] => server.arrivals.filter((a) => a.ip === ip);
    return { thread, server, log, results, sinkReports, heard, watch, at };
  }

  const worker = (thread: CheckThread): Worker => (thread as unknown as { worker: Worker }).worker;
  const states = (w: Watched): string[] => w.reports.map((r) => (r.up ? 'up' : 'down'));

  it('reports, passes every result to onResult (with the target) and onCheck, and logs under the server and monitor', async () => {
    const ip = loopbackAddress(811);
    const { server, log, results, sinkReports, heard, watch } = await start([ip]);
    const config = proxyFetchConfig({ ...FAST, urls: ['http://en.wikipedia.org/wiki/Main_Page'] });
    const w = watch(config, ip);

    await waitFor(() => w.reports.length > 0 && w.checks.length > 0, 'the first report');
    expect(w.reports[0]).toMatchObject({ kind: 'ProxyFetch', up: true, firstCheck: true });
    expect(w.reports[0]!.reason).toMatch(/^Fetch successful \(http:\/\/en\.wikipedia\.org\/wiki\/Main_Page\), /);
    expect(server.arrivals[0]).toMatchObject({ ip, path: '/wiki/Main_Page', status: 200 });
    // Every result reaches the sink with the monitor's own target, and onCheck, alike.
    expect(results[0]!.target).toBe(w.target);
    expect(results[0]!.result).toMatchObject({ kind: 'ProxyFetch', ok: true, urls: [{ url: 'http://en.wikipedia.org/wiki/Main_Page', ok: true }] });
    await waitFor(() => w.checks.length >= 2, 'a second check');
    expect(results[0]!.result).toBe(w.checks[0]);
    expect(results[1]!.result).toBe(w.checks[1]);

    await server.answer(ip, { cycle: [500] });
    await waitFor(() => w.reports.length >= 2, 'the down report', 5_000);
    expect(w.reports[1]).toMatchObject({ up: false, firstCheck: false });
    expect(w.reports[1]!.reason).toBe('Fetch failed (http://en.wikipedia.org/wiki/Main_Page): HTTP status 500 Internal Server Error, expected a 2xx status');
    await server.answer(ip, { cycle: [200] });
    await waitFor(() => w.reports.length >= 3, 'the up report', 5_000);
    expect(states(w)).toEqual(['up', 'down', 'up']);
    // The service's hook (the metrics) has each report too, with the monitor's target, before the monitor's own onReport.
    expect(sinkReports.map((s) => s.report)).toEqual(w.reports);
    expect(sinkReports.every((s) => s.target === w.target)).toBe(true);
    expect(heard).toEqual(['sink', 'monitor', 'sink', 'monitor', 'sink', 'monitor']);

    // The monitor's lines, written in the thread, carry the service, server and monitor here.
    const records = log.records().filter((r) => r.monitor === 'ProxyFetch');
    expect(records.every((r) => r.service === SERVICE && r.server === w.target.host)).toBe(true);
    expect(records.map((r) => r.msg)).toEqual(expect.arrayContaining([`up: ${w.reports[0]!.reason}`, `down: ${w.reports[1]!.reason}`]));
    expect(log.lines()).toContain(`[${SERVICE} ${w.target.host} ProxyFetch] WARN: down: ${w.reports[1]!.reason}`);
    expect(log.lines().some((l) => l.startsWith(`[${SERVICE} ${w.target.host} ProxyFetch] DEBUG: good check: Fetch successful`))).toBe(true);
  });

  it('checks keep their pace while the main thread is busy, and what they said meanwhile arrives after, in order', async () => {
    const ip = loopbackAddress(812);
    const { server, results, watch, at } = await start([ip]);
    // Every check's answer differs from the last: every result is a report too.
    await server.answer(ip, { cycle: [200, 500, 200, 503] });
    const w = watch(proxyFetchConfig({ ...FAST, urls: ['http://pace.example/'] }), ip);
    await waitFor(() => w.reports.length > 0, 'the first report');

    // Busy for 2 s: one thread would check nothing meanwhile; the checks thread goes on, one every 250 ms.
    const busyFrom = Date.now();
    busy(2_000);
    const busyTo = Date.now();
    // The server's lines come in order: once one from after the window is read, all of it is.
    await waitFor(() => at(ip).some((a) => a.t >= busyTo), 'a check after the window', 5_000);
    const during = at(ip).filter((a) => a.t > busyFrom && a.t < busyTo);
    expect(during.length).toBeGreaterThanOrEqual(3);
    // Spread over the window, not a burst at its start.
    expect(during.some((a) => a.t > busyFrom + 1_000)).toBe(true);

    // Everything the server answered up to the end of the window comes here, in the order it answered.
    const answered = at(ip).filter((a) => a.t < busyTo);
    await waitFor(() => w.checks.length >= answered.length, 'the results held meanwhile', 5_000);
    expect(w.checks.slice(0, answered.length).map(statusOf)).toEqual(answered.map((a) => a.status));
    expect(results.slice(0, answered.length).map((r) => statusOf(r.result))).toEqual(answered.map((a) => a.status));
    await waitFor(() => w.reports.length >= answered.length, 'the reports held meanwhile', 5_000);
    expect(w.reports.slice(0, answered.length).map((r) => r.up)).toEqual(answered.map((a) => a.status === 200));
    expect(w.reports.filter((r) => r.firstCheck)).toHaveLength(1);
  }, 30_000);

  it("checks due within one step of the thread's timer grid start together", async () => {
    const ips = Array.from({ length: 12 }, (_, i) => loopbackAddress(830 + i));
    // A 100 ms grid (the daemon's is 10 ms), so that groups stand apart from a busy machine's jitter.
    const { server, watch } = await start(ips, { timerSlackMs: 100 });
    const config = proxyFetchConfig({ intervalMs: 10_000, timeoutMs: 2_000, urls: ['http://grid.example/'] });
    // First checks due 25 ms apart over 275 ms: one wake each without the grid, three or four with it.
    const watched = ips.map((ip) => watch(config, ip, {}, false));
    const startedAt = Date.now();
    watched.forEach((w, i) => w.monitor.start({ delayMs: 25 * i }));
    await waitFor(() => watched.every((w) => w.checks.length > 0), 'every first check', 10_000);

    const arrivals = ips.map((ip) => server.arrivals.find((a) => a.ip === ip)!.t).sort((a, b) => a - b);
    // Requests of one wake reach the server within a few ms of each other; wakes are 100 ms apart.
    const groups = 1 + arrivals.slice(1).filter((t, i) => t - arrivals[i]! > 20).length;
    expect(groups).toBeGreaterThanOrEqual(2);
    expect(groups).toBeLessThanOrEqual(5);
    // They started late by at most a step (and what the machine adds), not all at the last one.
    expect(arrivals[0]! - startedAt).toBeLessThan(1_000);
  });

  it('stop() ends a monitor: its server sees no more checks and nothing of it arrives after, while another of the same config goes on', async () => {
    const [one, other] = [loopbackAddress(813), loopbackAddress(814)];
    const { server, results, watch, at } = await start([one, other]);
    // Every answer of the first server differs from the last: each of its results is a report too.
    await server.answer(one, { cycle: [200, 500] });
    const config = proxyFetchConfig({ ...FAST, urls: ['http://stop.example/'] });
    const a = watch(config, one);
    const b = watch(config, other);
    await waitFor(() => at(one).length >= 2 && at(other).length >= 2 && a.reports.length > 0 && b.reports.length > 0, 'checks of both');

    // The main thread is busy for 1 s: what the first monitor says meanwhile waits here, and stop() comes before it is read.
    const busyFrom = Date.now();
    busy(1_000);
    const stopping = a.monitor.stop();
    const said = { reports: a.reports.length, checks: a.checks.length, results: results.filter((r) => r.target === a.target).length };
    await stopping;
    const stoppedAt = Date.now();
    // Another monitor of the config goes on meanwhile: three more of its checks.
    await waitFor(() => at(other).filter((x) => x.t > stoppedAt).length >= 3, 'three more checks of the other server', 5_000);
    // Its server answered checks while the main thread was busy; their results and reports were not delivered.
    expect(at(one).filter((x) => x.t > busyFrom).length).toBeGreaterThanOrEqual(1);
    expect({ reports: a.reports.length, checks: a.checks.length, results: results.filter((r) => r.target === a.target).length }).toEqual(said);
    // A request sent before the stop may be read a moment after; no check starts after it.
    expect(at(one).filter((x) => x.t > stoppedAt + 100)).toEqual([]);
    expect(b.checks.length).toBeGreaterThanOrEqual(3);
    // Stopping again is the same promise's end: at once.
    await a.monitor.stop();
  });

  it('the thread holds a config while a monitor of it runs; a monitor after the last one stopped sends it again', async () => {
    const ips = [loopbackAddress(815), loopbackAddress(816), loopbackAddress(817), loopbackAddress(818)];
    const { thread, watch, at } = await start(ips);
    const config = proxyFetchConfig({ ...FAST, urls: ['http://config.example/'] });
    const a = watch(config, ips[0]!);
    // The thread starts with the first monitor: what is sent to it from then on is noted.
    const sent: ThreadAction[] = [];
    const w = worker(thread);
    const post = w.postMessage.bind(w);
    w.postMessage = (message: ToCheckThread) => {
      if (message.type === 'batch') sent.push(...message.messages);
      post(message);
    };
    const b = watch(config, ips[1]!);
    await waitFor(() => a.reports.length > 0 && b.reports.length > 0, 'both reports');
    expect(b.reports[0]).toMatchObject({ up: true, firstCheck: true });
    const startOf = (i: number) => sent.filter((m): m is Extract<ThreadAction, { type: 'start' }> => m.type === 'start')[i];
    // The second monitor of the config: its config stays where it is.
    expect(startOf(0)).toMatchObject({ target: { ip: ips[1] } });
    expect(startOf(0)!.config).toBeUndefined();
    const heldAs = startOf(0)!.configId;

    await Promise.all([a.monitor.stop(), b.monitor.stop()]);
    // A third of the same config object: the thread forgot it with the last monitor, so it goes again.
    const c = watch(config, ips[2]!);
    await waitFor(() => c.reports.length > 0, 'the third monitor’s report');
    expect(c.reports[0]).toMatchObject({ up: true, firstCheck: true });
    expect(c.reports[0]!.reason).toMatch(/^Fetch successful \(http:\/\/config\.example\/\)/);
    expect(at(ips[2]!).length).toBeGreaterThanOrEqual(1);
    expect(startOf(1)).toMatchObject({ target: { ip: ips[2] }, config });
    expect(startOf(1)!.configId).not.toBe(heldAs);
    // And a fourth while the third runs shares it again.
    const d = watch(config, ips[3]!);
    await waitFor(() => d.reports.length > 0, 'the fourth monitor’s report');
    expect(d.reports[0]).toMatchObject({ up: true });
    expect(startOf(2)).toMatchObject({ target: { ip: ips[3] }, configId: startOf(1)!.configId });
    expect(startOf(2)!.config).toBeUndefined();
  });

  it('a thread that dies is started again: a monitor that was up starts from up, and still reports down when its server fails', async () => {
    const ip = loopbackAddress(819);
    const { thread, server, log, watch, at } = await start([ip]);
    // fall 2: from up, one failure is not enough; from nothing, the first result is reported whatever it is.
    const w = watch(proxyFetchConfig({ ...FAST, urls: ['http://restart.example/'], fall: 2 }), ip);
    await waitFor(() => w.reports.length > 0, 'the first report');
    expect(w.reports[0]).toMatchObject({ up: true, firstCheck: true });

    // The thread dies (as on a bug that throws in it).
    await worker(thread).terminate();
    await waitFor(() => log.lines().some((l) => l.includes('The checks thread exited')), 'the exit line', 3_000);
    const exitedAt = Date.now();
    expect(log.lines()).toContain(
      '[checks] ERROR: The checks thread exited (1): no server is checked; the servers keep their last state, and it starts again in 1 s',
    );
    // The first check of the new thread fails: a monitor started from nothing would report down at once.
    await server.answer(ip, { next: [500] });
    await waitFor(() => log.lines().includes('[checks] INFO: The checks thread started again with 1 monitors'), 'the restart line', 5_000);
    await waitFor(() => at(ip).filter((a) => a.t > exitedAt).length >= 3, 'checks again', 10_000);
    const after = at(ip).filter((a) => a.t > exitedAt);
    expect(after.map((a) => a.status).slice(0, 3)).toEqual([500, 200, 200]);
    expect(w.reports.filter((r) => !r.up)).toEqual([]);

    // It still works: the server fails for good, and after two failures the down report comes.
    const reportsBefore = w.reports.length;
    await server.answer(ip, { cycle: [503] });
    await waitFor(() => w.reports.length > reportsBefore && !w.reports.at(-1)!.up, 'the down report', 5_000);
    expect(w.reports.at(-1)).toMatchObject({ up: false, firstCheck: false, reason: 'Fetch failed (http://restart.example/): HTTP status 503 Service Unavailable, expected a 2xx status' });
  }, 30_000);

  it('a thread that stops answering (a check whose regular expression backtracks for ever) is ended and started again, and the other servers are checked again', async () => {
    const [good, evil] = [loopbackAddress(825), loopbackAddress(826)];
    const { server, log, watch, at } = await start([good, evil], { loopEveryMs: 100, stuckAfterMs: 1_500 });
    watch(proxyFetchConfig({ ...FAST, urls: ['http://good.example/'] }), good);
    await waitFor(() => at(good).length >= 2, 'checks of the good server');
    // 2^40 ways to split the a's: the check never returns, and the thread's loop with it.
    await server.answer(evil, { body: `${'a'.repeat(40)}!` });
    watch(proxyFetchConfig({ ...FAST, urls: ['http://evil.example/'], expectBodyRegex: '^(a+)+$' }), evil);
    await waitFor(() => at(evil).length >= 1, 'the evil check', 5_000);
    const stuckAt = Date.now();

    await waitFor(() => log.lines().some((l) => l.includes('The checks thread has said nothing')), 'the stuck line', 10_000);
    expect(log.lines()).toContain('[checks] ERROR: The checks thread has said nothing for 1.5 s: it is stuck (a check that never yields?); ending it');
    await waitFor(() => log.lines().includes('[checks] INFO: The checks thread started again with 2 monitors'), 'the restart line', 5_000);
    // The new thread checks the good server again (until the evil check holds it once more).
    const restartedAt = Date.now();
    await waitFor(() => at(good).some((a) => a.t > restartedAt - 200), 'a check of the good server after the restart', 5_000);
    // While the thread was stuck, the good server was not checked: the watch is what brought its checks back.
    const firstStuckLine = log.lines().findIndex((l) => l.includes('has said nothing'));
    expect(firstStuckLine).toBeGreaterThanOrEqual(0);
    expect(at(good).filter((a) => a.t > stuckAt + 300 && a.t < stuckAt + 1_400)).toEqual([]);
  }, 30_000);

  it('a bad config fails as on one thread: the factory does not throw, and the monitor reports down with the problem', async () => {
    const ip = loopbackAddress(820);
    const { watch } = await start([ip]);
    const config = proxyFetchConfig({ ...FAST, urls: ['ftp://files.example/'] });
    const expected = 'invalid ProxyFetch configuration: unsupported URL scheme in ftp://files.example/';

    // One thread, the daemon's own factory: the same config, the same verdict.
    const log = createMemoryLogger('info');
    const single: { up: boolean; reason: string; firstCheck: boolean }[] = [];
    const local = createMonitorFactory({ clock: createSystemClock(), logger: log.logger })(config, { host: 'rs', ip, port: 1, family: 4 }, (r) => single.push(r));
    local.start();
    cleanups.push(() => local.stop());
    await waitFor(() => single.length > 0, 'the one-thread report');
    expect(single[0]).toMatchObject({ up: false, firstCheck: true, reason: expected });

    const w = watch(config, ip);
    await waitFor(() => w.reports.length > 0, 'the thread’s report');
    expect(w.reports[0]).toMatchObject({ kind: 'ProxyFetch', up: false, firstCheck: true, reason: expected });
    await w.monitor.stop();
  });

  it('the data path’s readiness reaches the thread when the daemon says the kernel changed: checks go to the server’s own address until it is ready, then to the VIP, and back when it is not', async () => {
    const [server, vip] = [loopbackAddress(821), loopbackAddress(822)];
    const { thread, watch, at } = await start([server, vip]);
    let ready = false;
    // ProxyFetch rather than TCPConnect: each check leaves a request at the address it went to.
    const p = watch(proxyFetchConfig({ ...FAST, urls: ['http://dp.example/'] }), server, {
      dataPath: { vip, mark: 0x70b00077, method: 'dr', source: undefined, ready: () => ready },
    });
    await waitFor(() => p.checks.length >= 2, 'checks at the server’s own address');
    expect(p.checks[0]!.reason).toMatch(/^Fetch successful \(http:\/\/dp\.example\/\), .* \(at its own address: its data-path probe service is not in IPVS yet\)$/);
    expect(at(server).length).toBeGreaterThanOrEqual(2);
    expect(at(vip)).toEqual([]);

    // The probe service is programmed: the IPVS manager's reconcile says so (main.ts calls readinessChanged).
    ready = true;
    thread.readinessChanged();
    const flippedAt = Date.now();
    const viaVip = `to the VIP ${vip}:${p.target.port} by direct routing (firewall mark 0x70b00077): `;
    await waitFor(() => p.checks.some((c) => c.reason.startsWith(viaVip)), 'a check through the VIP', 5_000);
    // Marking a socket needs CAP_NET_ADMIN: as root it reaches the VIP's listener (no IPVS here to forward it).
    if (process.getuid?.() === 0) {
      expect(p.checks.at(-1)!.reason).toMatch(new RegExp(`^${viaVip.replace(/[.()]/g, '\\$&')}Fetch successful`));
      expect(at(vip).filter((a) => a.t > flippedAt).length).toBeGreaterThanOrEqual(1);
    }

    // The desired set changed and the probe service is not programmed any more: back to the server's own address.
    ready = false;
    thread.readinessChanged();
    const backAt = p.checks.length;
    await waitFor(() => p.checks.slice(backAt).some((c) => c.reason.endsWith('(at its own address: its data-path probe service is not in IPVS yet)')), 'a check at the server’s own address again', 5_000);
    const againAt = Date.now();
    await waitFor(() => at(server).some((a) => a.t > againAt), 'a request at the server’s own address', 5_000);
  });

  it('a reload’s runcommand-max-concurrent reaches the thread: commands run one at a time, then up to four at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pybal-check-thread-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    // Each run notes its start and end (appends of a few bytes: whole lines) and takes 300 ms.
    const script = join(dir, 'probe.sh');
    const notes = join(dir, 'notes');
    writeFileSync(script, `#!/bin/sh\necho s >> ${notes}\nsleep 0.3\necho e >> ${notes}\n`);
    chmodSync(script, 0o755);
    writeFileSync(notes, '');
    /** The most runs under way at once in the notes since `from` lines. */
    const mostAtOnce = (from: number): number => {
      let now = 0;
      let most = 0;
      for (const line of readFileSync(notes, 'utf8').split('\n').slice(from)) {
        if (line === 's') most = Math.max(most, ++now);
        else if (line === 'e') now = Math.max(0, now - 1);
      }
      return most;
    };
    const lines = (): number => readFileSync(notes, 'utf8').split('\n').length - 1;
    const { thread, watch } = await start([loopbackAddress(827)]);
    thread.setRuncommandMaxConcurrent(1);
    const config = runCommandConfig({ command: script, intervalMs: 250, timeoutMs: 5_000 });
    for (const n of [827, 828, 829, 830]) watch(config, loopbackAddress(n));
    await waitFor(() => lines() >= 16, 'eight runs', 15_000);
    expect(mostAtOnce(0)).toBe(1);

    thread.setRuncommandMaxConcurrent(4);
    // Runs begun before the change may still be waiting their turn: count from the first full round after.
    const from = lines();
    await waitFor(() => mostAtOnce(from) >= 3, 'three runs at once', 15_000);
    expect(mostAtOnce(from)).toBeLessThanOrEqual(4);
  }, 40_000);

  it('at a cold start the thread starts once the pools are read: no check before, then every server is checked', async () => {
    // A cold start: the daemon reads its pool files and programs IPVS on the main thread, and
    // the thread's own start (Node's bootstrap of it) and first connects must not take the one
    // CPU from it.
    let waiting = 1;
    const ips = Array.from({ length: 60 }, (_, i) => loopbackAddress(900 + i));
    const { server, watch } = await start(ips, { firstReadsWaiting: () => waiting });
    const config = proxyFetchConfig({ intervalMs: 60_000, timeoutMs: 5_000, urls: ['http://pool.example/health'] });
    const watched = ips.map((ip) => watch(config, ip));
    // A monitor stopped before the thread has it is gone at once (nothing of it ever runs).
    await watched[0]!.monitor.stop();
    await new Promise((r) => setTimeout(r, 1_000));
    expect(server.arrivals).toHaveLength(0);
    // Read: the thread starts, and gets every monitor still running (a few hundred a message).
    waiting = 0;
    await waitFor(() => new Set(server.arrivals.map((a) => a.ip)).size === ips.length - 1, 'every server checked once the pools are read', 10_000);
    expect(server.arrivals.some((a) => a.ip === ips[0])).toBe(false);
    expect(server.arrivals.every((a) => a.status === 200)).toBe(true);
  });

  it('with a pool that never reads, the thread starts after its wait, and starts checks one per 10 ms while the pool still waits', async () => {
    const ips = Array.from({ length: 60 }, (_, i) => loopbackAddress(1300 + i));
    const { server, watch } = await start(ips, { firstReadsWaiting: () => 1, spawnWaitMaxMs: 600 });
    const config = proxyFetchConfig({ intervalMs: 60_000, timeoutMs: 5_000, urls: ['http://stuck.example/health'] });
    const t0 = Date.now();
    for (const ip of ips) watch(config, ip);
    await waitFor(() => server.arrivals.length >= 20, 'twenty first checks while held', 10_000);
    const times = server.arrivals.map((a) => a.t).sort((a, b) => a - b);
    expect(times[0]! - t0).toBeGreaterThanOrEqual(550);
    // At one start per 10 ms, twenty take at least 190 ms (the start pacer alone spreads them at 500 a second: 40 ms).
    expect(times[19]! - times[0]!).toBeGreaterThanOrEqual(150);
    await waitFor(() => new Set(server.arrivals.map((a) => a.ip)).size === ips.length, 'every server checked in the end', 10_000);
  });

  it('while pools wait for their first read, servers checked before keep their interval; only first checks are held', async () => {
    // A reload that adds a service whose pool file is slow to read (a hung NFS mount holds it up to
    // 30 s) must not slow the checks of the servers already running: a failing one must still leave.
    let waiting = 0;
    const running = Array.from({ length: 4 }, (_, i) => loopbackAddress(970 + i));
    const added = Array.from({ length: 200 }, (_, i) => loopbackAddress(1000 + i));
    const { server, watch, at } = await start([...running, ...added], { firstReadsWaiting: () => waiting });
    const fast = proxyFetchConfig({ ...FAST, urls: ['http://running.example/health'] });
    const olds = running.map((ip) => watch(fast, ip));
    await waitFor(() => olds.every((w) => w.checks.length >= 2), 'the running servers checked');
    waiting = 1;
    const slow = proxyFetchConfig({ intervalMs: 60_000, timeoutMs: 5_000, urls: ['http://added.example/health'] });
    for (const ip of added) watch(slow, ip);
    const before = running.map((ip) => at(ip).length);
    await new Promise((r) => setTimeout(r, 1_500));
    const firstChecks = added.filter((ip) => at(ip).length > 0).length;
    // The added servers' first checks are still held: at one per 10 ms, 200 take 2 s.
    expect(firstChecks).toBeLessThan(added.length);
    // Every running server was checked at its 250 ms interval meanwhile (six in 1.5 s; behind the
    // added servers' first checks each would have waited up to 2 s for one).
    running.forEach((ip, i) => expect(at(ip).length - before[i]!, ip).toBeGreaterThanOrEqual(4));
    waiting = 0;
    await waitFor(() => added.every((ip) => at(ip).length > 0), 'every added server checked once the pools are read', 10_000);
  });

  it('monitors go to the thread in batches of at most 250, at most two it has not yet taken, and every one is checked', async () => {
    // A reload that adds 1,000 services of 10 sends 10,000 starts at once: a thread that found them
    // all waiting read them in one go (0.6 to 1.8 s of its loop in the lab guest).
    const ips = [loopbackAddress(1400), loopbackAddress(1401), loopbackAddress(1402), loopbackAddress(1403)];
    const { thread, server, watch } = await start(ips);
    const config = proxyFetchConfig({ intervalMs: 60_000, timeoutMs: 5_000, urls: ['http://batched.example/'] });
    const first = watch(config, ips[0]!);
    const w = worker(thread);
    const seen: string[] = [];
    let starts = 0;
    const post = w.postMessage.bind(w);
    w.postMessage = (message: ToCheckThread) => {
      if (message.type === 'batch') {
        seen.push('batch');
        expect(message.messages.length).toBeLessThanOrEqual(250);
        starts += message.messages.filter((m) => m.type === 'start').length;
      } else {
        seen.push(message.type);
      }
      post(message);
    };
    w.on('message', (message: { type: string }) => {
      if (message.type === 'took') seen.push('took');
    });
    const more = Array.from({ length: 600 }, (_, i) => watch(config, ips[i % ips.length]!));
    await waitFor(() => [first, ...more].every((m) => m.reports.length > 0), 'every monitor’s first report', 20_000);
    expect(starts).toBe(600);
    // 600 starts: three batches or more, and never more than two out (sent, not yet taken).
    const batches = seen.filter((x) => x === 'batch').length;
    expect(batches).toBeGreaterThanOrEqual(3);
    let out = 1; // the first monitor's, sent before the watch began
    let most = 0;
    for (const x of seen) {
      out += x === 'batch' ? 1 : -1;
      most = Math.max(most, out);
    }
    expect(most).toBe(2);
    expect(seen.filter((x) => x !== 'batch' && x !== 'took')).toEqual([]);
    expect(new Set(server.arrivals.map((a) => a.ip))).toEqual(new Set(ips));
    expect(server.arrivals.length).toBeGreaterThanOrEqual(601);
    expect([first, ...more].every((m) => m.reports[0]!.up)).toBe(true);
  });

  it('close() ends the thread with monitors still running, and their stop() resolves', async () => {
    const [one, other] = [loopbackAddress(823), loopbackAddress(824)];
    const { thread, watch, at } = await start([one, other]);
    const config = proxyFetchConfig({ ...FAST, urls: ['http://close.example/'] });
    const a = watch(config, one);
    const b = watch(config, other);
    // One not started: it never reached the thread.
    const never = watch(config, one, {}, false);
    await waitFor(() => a.reports.length > 0 && b.reports.length > 0, 'both reports');
    let exitCode: number | undefined;
    worker(thread).once('exit', (code) => (exitCode = code));

    const stopping = a.monitor.stop();
    const closing = thread.close();
    // One started while the thread is ending: nothing runs it, and its stop() still resolves.
    const between = watch(config, other);
    const betweenStopped = between.monitor.stop().then(() => 'resolved');
    await closing;
    const closedAt = Date.now();
    await stopping;
    expect(await Promise.race([betweenStopped, new Promise((r) => setTimeout(() => r('pending 2 s after the close'), 2_000))])).toBe('resolved');
    expect(between.reports).toEqual([]);
    await b.monitor.stop();
    await never.monitor.stop();
    // The thread stopped its monitors and ended on its own (terminate() would say 1).
    expect(exitCode).toBe(0);
    // A monitor made after the close does nothing, and says nothing.
    const late = watch(config, other);
    await late.monitor.stop();
    // Three intervals later, neither server was checked again.
    await new Promise((r) => setTimeout(r, 750));
    expect([...at(one), ...at(other)].filter((x) => x.t > closedAt)).toEqual([]);
    expect(late.reports).toEqual([]);
    // Closing again is the same end.
    await thread.close();
  });

  it('loopStats() gives the thread’s event loop figures', async () => {
    const ip = loopbackAddress(825);
    const { thread, watch } = await start([ip], { loopEveryMs: 100 });
    const before = thread.loopStats();
    expect(before).toEqual({ stalls: 0, longestMs: 0 });
    // The thread starts with its first monitor.
    watch(tcpConnectConfig(FAST), ip);
    await waitFor(() => thread.loopStats() !== before, 'the thread’s figures', 5_000);
    const stats = thread.loopStats();
    expect(stats).toEqual({ stalls: expect.any(Number), longestMs: expect.any(Number) });
    expect(stats.longestMs).toBeGreaterThanOrEqual(0);
    // And keep coming, every loopEveryMs.
    await waitFor(() => thread.loopStats() !== stats, 'the thread’s next figures', 5_000);
  });

  it('heapStats() gives the thread’s own JS heap, not the main thread’s, and follows it', async () => {
    const ip = loopbackAddress(826);
    const { thread, watch } = await start([ip], { loopEveryMs: 100 });
    expect(thread.heapStats()).toBeUndefined();
    watch(tcpConnectConfig(FAST), ip);
    await waitFor(() => thread.heapStats() !== undefined, 'the thread’s heap', 5_000);
    const first = thread.heapStats()!;
    expect(first.usedBytes).toBeGreaterThan(1_000_000);
    expect(first.totalBytes).toBeGreaterThanOrEqual(first.usedBytes);
    // A fresh thread's heap is far smaller than this process's (vitest and the test's modules).
    expect(first.usedBytes).toBeLessThan(getHeapStatistics().used_heap_size);
    // Then the next figures, every loopEveryMs.
    await waitFor(() => thread.heapStats() !== first, 'the thread’s next heap figures', 5_000);
  });
});
