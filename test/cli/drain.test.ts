/**
 * `pybal drain` and `pybal undrain`: the command against an API server with
 * a scripted daemon behind it (what it prints, how it waits, its exit
 * statuses), then the built executable against the built daemon, as an
 * operator runs them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PybalMetrics } from '../../src/api/metrics.js';
import { createApiServer, type ApiServer } from '../../src/api/server.js';
import type { DaemonSnapshot, DrainAnswer } from '../../src/api/types.js';
import { describeDrainAnswer, isKernelServiceOf, runDrainCommand, STILL_RECEIVING, sumTraffic, waitIntervals, type Traffic } from '../../src/cli/drain.js';
import type { KernelService, Stats } from '../../src/ipvs/types.js';
import type { Clock } from '../../src/runtime/clock.js';
import { createSilentLogger } from '../../src/runtime/logger.js';
import { daemon, NOT_DRAINED, peer, server, service } from '../api/fixtures.js';
import { assertFreshBundle } from '../support/fresh-build.js';
import { freePort } from '../pool/helpers.js';

function capture(): { write(text: string): void; text(): string } {
  let text = '';
  return {
    write: (chunk: string) => {
      text += chunk;
    },
    text: () => text,
  };
}

/** A clock whose sleeps return at once, after `onSleep` (which may change the daemon meanwhile). */
function instantClock(onSleep: (ms: number) => void = () => undefined): Clock & { slept: number[] } {
  const slept: number[] = [];
  return {
    slept,
    now: () => 0,
    wallNow: () => 0,
    setTimeout: () => ({ cancel: () => undefined }),
    sleep: async (ms) => {
      slept.push(ms);
      onSleep(ms);
    },
  };
}

/** Kernel counters that grow by `steps[i]` packets (and a tenth as many connections) at each read after the first. */
function trafficSteps(steps: readonly number[]): () => Promise<{ read: () => Promise<Traffic>; close: () => void; closed: () => boolean }> {
  return async () => {
    let reads = 0;
    let inPkts = 1000n;
    let closed = false;
    return {
      read: async () => {
        if (reads > 0) inPkts += BigInt(steps[reads - 1] ?? 0);
        reads++;
        return { conns: inPkts / 10n, inPkts, services: 1 };
      },
      close: () => {
        closed = true;
      },
      closed: () => closed,
    };
  };
}

describe('pybal drain / undrain against a scripted daemon', () => {
  let dir: string;
  let api: ApiServer;
  let socket: string;
  let drained: boolean;
  let calls: boolean[];
  const SINCE = Date.parse('2026-11-22T07:30:00Z');
  const snapshot = (): DaemonSnapshot =>
    daemon([service('web', [server('mw1')], { ip: '203.0.113.1' })], {
      bgp: {
        enabled: true,
        localAsn: 64600,
        peers: [peer('198.51.100.1'), peer('198.51.100.2', { state: 'Active', establishedAtWallMs: undefined })],
        ...NOT_DRAINED,
        drained,
        drainedSinceWallMs: drained ? SINCE : undefined,
      },
    });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pybal-drain-'));
    socket = join(dir, 'pybal.sock');
    drained = false;
    calls = [];
    api = createApiServer({
      snapshot,
      metrics: new PybalMetrics({ processMetrics: false }),
      logger: createSilentLogger(),
      control: {
        setDrained: (want): DrainAnswer => {
          calls.push(want);
          const changed = drained !== want;
          drained = want;
          return { drained, drainedSinceWallMs: drained ? SINCE : undefined, drainMed: 4294967295, changed, announced: 1 };
        },
      },
    });
    expect(await api.listenUnix(socket)).toBe(true);
  });

  afterEach(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('drains, says what the routers are told, and exits 0; again, says it already was', async () => {
    const out = capture();
    expect(await runDrainCommand(true, { socket }, out)).toBe(0);
    expect(out.text()).toBe(
      'Drained: 1 VIP now announced with GRACEFUL_SHUTDOWN (65535:0) and MED 4294967295 to 1 established BGP peer (198.51.100.1); ' +
        'the routers will move traffic to the other directors.\n',
    );
    const again = capture();
    expect(await runDrainCommand(true, { socket }, again)).toBe(0);
    expect(again.text()).toBe(
      'Already drained since 2026-11-22T07:30:00.000Z (every VIP announced with GRACEFUL_SHUTDOWN 65535:0 and MED 4294967295): ' +
        '1 VIP announced to 1 established BGP peer (198.51.100.1).\n',
    );
    expect(calls).toEqual([true, true]);
  });

  it('undrains; undrained already, says there was nothing to do', async () => {
    drained = true;
    const out = capture();
    expect(await runDrainCommand(false, { socket, waitSec: 30 }, out)).toBe(0);
    expect(out.text()).toBe(
      'Undrained: 1 VIP announced with their configured MED and communities again to 1 established BGP peer (198.51.100.1); ' +
        'the routers may move traffic back to this director.\n',
    );
    const again = capture();
    expect(await runDrainCommand(false, { socket }, again)).toBe(0);
    expect(again.text()).toBe('Not drained: nothing to do.\n');
    expect(calls).toEqual([false, false]);
  });

  it('--wait: watches in steps (the odd one first), and exits 0 once no packet arrives in the last one', async () => {
    const clock = instantClock();
    const open = trafficSteps([400, 30, 0]);
    const out = capture();
    expect(await runDrainCommand(true, { socket, waitSec: 11, clock, openTraffic: open }, out)).toBe(0);
    expect(clock.slept).toEqual([1000, 5000, 5000]);
    expect(out.text().split('\n').slice(1)).toEqual([
      'Waiting 11 s for the routers to move the traffic away (the director stays drained if this is interrupted).',
      '  +1 s: drained; BGP 1/2 peer(s) established; 400 packets, 40 new connections in the last 1 s',
      '  +6 s: drained; BGP 1/2 peer(s) established; 30 packets, 3 new connections in the last 5 s',
      '  +11 s: drained; BGP 1/2 peer(s) established; 0 packets, 0 new connections in the last 5 s',
      'After 11 s: drained since 2026-11-22T07:30:00.000Z (every VIP announced with GRACEFUL_SHUTDOWN 65535:0 and MED 4294967295). ' +
        "No packet reached pybal's VIPs on this director in the last 5 s: the routers have moved the traffic away; the director can be stopped (systemctl stop pybal).",
      '',
    ]);
  });

  it('--wait: exits 3 while packets still arrive at the end', async () => {
    const out = capture();
    const code = await runDrainCommand(true, { socket, waitSec: 4, stepSec: 2, clock: instantClock(), openTraffic: trafficSteps([0, 12]) }, out);
    expect(code).toBe(STILL_RECEIVING);
    expect(code).toBe(3);
    expect(out.text()).toContain(
      "pybal's VIPs on this director still received 12 packets (1 new connection) in the last 2 s: the routers still send traffic here. " +
        'Wait longer, or check that the routers prefer the other directors (a lower MED there, or GRACEFUL_SHUTDOWN honoured).\n',
    );
  });

  it('--wait: exits 1 when the director is undrained meanwhile', async () => {
    const clock = instantClock((ms) => {
      if (ms === 5000) drained = false;
    });
    const out = capture();
    const err = capture();
    expect(await runDrainCommand(true, { socket, waitSec: 10, clock, openTraffic: trafficSteps([]) }, out, err)).toBe(1);
    expect(err.text()).toBe('pybal drain: the director was undrained after 5 s (pybal undrain, or a reload with bgp-drain = no)\n');
    expect(out.text()).not.toContain('After ');
  });

  it('--wait: exits 1 when the daemon stops answering', async () => {
    const clock = instantClock(() => void api.close());
    const err = capture();
    expect(await runDrainCommand(true, { socket, waitSec: 5, clock, openTraffic: trafficSteps([]) }, capture(), err)).toBe(1);
    expect(err.text()).toMatch(/^pybal drain: the daemon stopped answering after 5 s: connect ENOENT /);
  });

  it('--wait without the kernel counters: says it cannot tell, exits 0, and closes what it opened', async () => {
    const out = capture();
    const failing = async () => {
      throw new Error('CTRL_CMD_GETFAMILY IPVS: ENOENT');
    };
    expect(await runDrainCommand(true, { socket, waitSec: 2, clock: instantClock(), openTraffic: failing }, out)).toBe(0);
    expect(out.text()).toContain('  +2 s: drained; BGP 1/2 peer(s) established; traffic unknown (cannot open IPVS over generic netlink: CTRL_CMD_GETFAMILY IPVS: ENOENT)\n');
    expect(out.text()).toContain(
      'The kernel\'s IPVS counters could not be read (cannot open IPVS over generic netlink: CTRL_CMD_GETFAMILY IPVS: ENOENT), so whether traffic still arrives is not known',
    );
    const source = trafficSteps([0]);
    const opened = await source();
    expect(await runDrainCommand(true, { socket, waitSec: 1, clock: instantClock(), openTraffic: async () => opened }, capture())).toBe(0);
    expect(opened.closed()).toBe(true);
  });

  it('says so and exits 1 when no daemon answers', async () => {
    const err = capture();
    const missing = join(dir, 'missing.sock');
    expect(await runDrainCommand(true, { socket: missing }, capture(), err)).toBe(1);
    expect(err.text()).toBe(
      `pybal drain: cannot ask the daemon at ${missing}: connect ENOENT ${missing}\nIs pybal running? (Use --socket to point at its control socket.)\n`,
    );
    const err2 = capture();
    expect(await runDrainCommand(false, { socket: missing }, capture(), err2)).toBe(1);
    expect(err2.text()).toMatch(/^pybal undrain: cannot ask the daemon at /);
  });

  it('says when BGP does not run in the daemon: no router is told', async () => {
    await api.close();
    api = createApiServer({
      snapshot: () => daemon([]),
      metrics: new PybalMetrics({ processMetrics: false }),
      logger: createSilentLogger(),
      control: { setDrained: (d) => ({ drained: d, drainedSinceWallMs: SINCE, drainMed: 9, changed: true, announced: 0 }) },
    });
    await api.listenUnix(socket);
    const out = capture();
    expect(await runDrainCommand(true, { socket }, out)).toBe(0);
    expect(out.text()).toBe(
      'Drained: 0 VIPs now announced with GRACEFUL_SHUTDOWN (65535:0) and MED 9 to 0 established BGP peers; the routers will move traffic to the other directors.\n' +
        'BGP is not running in this daemon (bgp = no, a dry run, or it could not start): no router is told.\n',
    );
  });
});

describe('describeDrainAnswer', () => {
  it('says BGP has not started yet while it waits for the services to be programmed (a start), not that it does not run', () => {
    const answer: DrainAnswer = { drained: true, drainedSinceWallMs: Date.parse('2026-11-22T07:30:00Z'), drainMed: 9, changed: true, announced: 0 };
    const starting = daemon([], { bgp: { enabled: false, wanted: true, starting: true, localAsn: undefined, peers: [], ...NOT_DRAINED } });
    expect(describeDrainAnswer(true, answer, starting)).toMatch(/\nBGP has not started yet in this daemon \(it starts once every service is programmed\): the routers hear the drain when it does\.\n$/);
    expect(describeDrainAnswer(true, answer, daemon([]))).toMatch(/\nBGP is not running in this daemon \(bgp = no, a dry run, or it could not start\): no router is told\.\n$/);
  });
});

describe('the pieces of --wait', () => {
  it('cuts the wait so that the last interval is a full step', () => {
    expect(waitIntervals(30, 5)).toEqual([5, 5, 5, 5, 5, 5]);
    expect(waitIntervals(12, 5)).toEqual([2, 5, 5]);
    expect(waitIntervals(3, 5)).toEqual([3]);
    expect(waitIntervals(2.5, 1)).toEqual([0.5, 1, 1]);
    expect(waitIntervals(0, 5)).toEqual([]);
  });

  const stats = (conns: number, inPkts: number): Stats => ({
    conns: BigInt(conns),
    inPkts: BigInt(inPkts),
    outPkts: 0n,
    inBytes: 0n,
    outBytes: 0n,
    cps: 0n,
    inPps: 0n,
    outPps: 0n,
    inBps: 0n,
    outBps: 0n,
  });
  const kernel = (key: KernelService['key'], s: Stats | undefined, s64?: Stats): KernelService => ({
    key,
    scheduler: 'wrr',
    flags: 0,
    timeoutSec: 0,
    netmask: 0xffffffff,
    rawFlags: 0,
    stats: s,
    stats64: s64,
  } as unknown as KernelService);

  it("finds pybal's services in the kernel's table by protocol, address and port, or firewall mark, and sums their counters", () => {
    const web = service('web', [], { ip: '203.0.113.1', port: 80 });
    const web6 = service('web6', [], { ip: '2001:db8:3::1', port: 443 });
    const marked = service('marked', [], { ip: '203.0.113.2', port: 80, fwmark: 7 });
    expect(isKernelServiceOf({ family: 4, protocol: 'tcp', address: '203.0.113.1', port: 80 }, web)).toBe(true);
    expect(isKernelServiceOf({ family: 4, protocol: 'udp', address: '203.0.113.1', port: 80 }, web)).toBe(false);
    expect(isKernelServiceOf({ family: 4, protocol: 'tcp', address: '203.0.113.1', port: 81 }, web)).toBe(false);
    expect(isKernelServiceOf({ family: 6, protocol: 'tcp', address: '2001:DB8:3:0::1', port: 443 }, web6)).toBe(true);
    expect(isKernelServiceOf({ family: 4, fwmark: 7 }, marked)).toBe(true);
    expect(isKernelServiceOf({ family: 6, fwmark: 7 }, marked)).toBe(false);
    expect(isKernelServiceOf({ family: 4, protocol: 'tcp', address: '203.0.113.2', port: 80 }, marked)).toBe(false);
    const table = [
      kernel({ family: 4, protocol: 'tcp', address: '203.0.113.1', port: 80 }, stats(3, 30), stats(5, 50)),
      kernel({ family: 4, fwmark: 7 }, stats(1, 10)),
      kernel({ family: 4, protocol: 'tcp', address: '203.0.113.9', port: 80 }, stats(100, 1000)),
    ];
    expect(sumTraffic(table, [web, marked, web6])).toEqual({ conns: 6n, inPkts: 60n, services: 2 });
    expect(sumTraffic(table, [web6])).toEqual({ conns: 0n, inPkts: 0n, services: 0 });
  });
});

// ---------------------------------------------------------------- the built command and daemon

const PYBAL = resolve('dist/cli/pybal.js');

/** These tests run the build: fail at once, saying why, when it is older than the source it tests. */
function assertFreshBuild(): void {
  for (const dir of ['src/cli', 'src/api', 'src/bgp']) {
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
      const built = join('dist', dir, name.replace(/\.ts$/, '.js'));
      const builtMs = existsSync(built) ? statSync(built).mtimeMs : 0;
      if (builtMs < statSync(join(dir, name)).mtimeMs) throw new Error(`${built} is older than ${dir}/${name}: run \`npm run build\` first`);
    }
  }
  assertFreshBundle();
  for (const file of ['src/daemon.ts', 'src/main.ts', 'src/reload-plan.ts']) {
    const built = join('dist', file.replace(/\.ts$/, '.js'));
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(file).mtimeMs) throw new Error(`${built} is older than ${file}: run \`npm run build\` first`);
  }
}

function pybal(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [PYBAL, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A TCP port nobody listens on now. */
function httpText(options: { host?: string; port?: number; socketPath?: string; path: string; method?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolveReply, reject) => {
    const req = request({ agent: false, ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolveReply({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function waitForFile(file: string, pattern: RegExp, deadlineMs: number): Promise<string> {
  const start = Date.now();
  for (;;) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (pattern.test(text)) return text;
    if (Date.now() - start > deadlineMs) throw new Error(`no ${pattern} in ${file} within ${deadlineMs} ms; so far:\n${text}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('the built pybal: drain and undrain a running daemon over its control socket', () => {
  let dir: string;
  let conf: string;
  let log: string;
  let socket: string;
  let apiPort: number;
  let child: ChildProcess | undefined;

  beforeAll(assertFreshBuild);

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pybal-drain-cli-'));
    conf = join(dir, 'pybal.conf');
    log = join(dir, 'pybal.log');
    socket = join(dir, 'pybal.sock');
    apiPort = await freePort();
    const pool = join(dir, 'pool');
    writeFileSync(pool, "{ 'host': 'mw1', 'weight': 10, 'enabled': True }\n");
    // BGP on, towards a peer that is not there (the sessions stay Active): the drain is the daemon's state all the same.
    writeFileSync(
      conf,
      [
        '[global]',
        'bgp = yes',
        'bgp-local-asn = 64600',
        'bgp-peer-address = 127.0.0.1',
        'bgp-nexthop-ipv4 = 192.0.2.100',
        "bgp-local-ips = [ '127.0.0.2' ]",
        `bgp-local-port = ${await freePort()}`,
        'bgp-med = 10',
        'bgp-drain-med = 1000',
        'instrumentation = yes',
        `instrumentation_port = ${apiPort}`,
        "instrumentation_ips = [ '127.0.0.1' ]",
        '',
        '[web]',
        'protocol = tcp',
        'ip = 192.0.2.11',
        'port = 80',
        'scheduler = wrr',
        `config = file://${pool}`,
        "monitors = [ 'IdleConnection' ]",
        '',
      ].join('\n'),
    );
  });

  afterEach(async () => {
    const running = child;
    child = undefined;
    if (running && running.exitCode === null && running.signalCode === null) {
      const exited = new Promise((r) => running.once('exit', r));
      running.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  async function startDaemon(): Promise<ChildProcess> {
    child = spawn(process.execPath, [PYBAL, '-c', conf, '--log-file', log, '--control-socket', socket], { stdio: ['ignore', 'pipe', 'pipe'] });
    await waitForFile(log, /Instrumentation API listening on 127\.0\.0\.1:/, 15_000);
    return child;
  }

  const metric = async (): Promise<string | undefined> =>
    (await httpText({ host: '127.0.0.1', port: apiPort, path: '/metrics' })).body.split('\n').find((l) => l.startsWith('pybal_bgp_drained '));

  it('drain, status, metrics, the TCP API refusing POST, undrain, and the log lines', async () => {
    const proc = await startDaemon();
    expect(await metric()).toBe('pybal_bgp_drained 0');
    // BGP starts once every service is programmed, or after 10 s: this host has no IPVS, so after 10 s.
    expect(pybal('status', '--socket', socket).stdout).toMatch(/^BGP: starting once every service is programmed, drained: no$/m);
    await waitForFile(log, /\[bgp\] INFO: BGP starts: 0 of 1 service\(s\) programmed after 10\.0 s\n/, 15_000);
    expect(pybal('status', '--socket', socket).stdout).toMatch(/^BGP: enabled, local AS 64600, drained: no$/m);

    // The TCP listener is PyBal's read-only API: POST /drain is refused and changes nothing.
    const refused = await httpText({ host: '127.0.0.1', port: apiPort, path: '/drain', method: 'POST' });
    expect(refused.status).toBe(405);
    expect(await metric()).toBe('pybal_bgp_drained 0');

    const drain = pybal('drain', '--socket', socket);
    expect(drain.stderr).toBe('');
    expect(drain.status).toBe(0);
    // The peer is not there: nothing is established, and no VIP is announced before IPVS is programmed (no IPVS on this host).
    expect(drain.stdout).toMatch(/^Drained: \d+ VIPs? now announced with GRACEFUL_SHUTDOWN \(65535:0\) and MED 1000 to 0 established BGP peers; the routers will move traffic to the other directors\.\n$/);
    const text = await waitForFile(log, /\[bgp\] INFO: Drained: /, 5_000);
    expect(text).toMatch(/\[bgp\] INFO: Drained: every VIP now announced with GRACEFUL_SHUTDOWN \(65535:0\) and MED 1000; the routers will move traffic to the other directors by="POST \/drain"\n/);

    const status = pybal('status', '--socket', socket);
    // Degraded (exit 1) here: this host has no IPVS and the BGP peer is not there; the report is printed all the same.
    expect(status.status).toBe(1);
    expect(status.stdout).toMatch(/^Health: DEGRADED: /m);
    const since = /^BGP: enabled, local AS 64600, drained: yes since (\S+) \(every VIP announced with GRACEFUL_SHUTDOWN 65535:0 and MED 1000\)$/m.exec(status.stdout);
    expect(since).not.toBeNull();
    expect(Math.abs(Date.parse(since?.[1] ?? '') - Date.now())).toBeLessThan(30_000);
    const json = JSON.parse((await httpText({ socketPath: socket, path: '/status' })).body) as DaemonSnapshot;
    expect(json.bgp).toMatchObject({ drained: true, drainedSinceWallMs: Date.parse(since?.[1] ?? ''), drainMed: 1000 });
    expect(await metric()).toBe('pybal_bgp_drained 1');

    // --wait on a host without IPVS: it waits, cannot count packets, says so, and exits 0.
    const started = Date.now();
    const waited = pybal('drain', '--socket', socket, '--wait', '1.5');
    expect(waited.status).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
    expect(waited.stdout).toMatch(/^Already drained since /);
    expect(waited.stdout).toContain('Waiting 1.5 s for the routers to move the traffic away');
    expect(waited.stdout).toMatch(/^ {2}\+1\.5 s: drained; BGP 0\/1 peer\(s\) established; traffic unknown \(/m);
    expect(waited.stdout).toMatch(/^After 1\.5 s: drained since .*The kernel's IPVS counters could not be read/m);

    const undrain = pybal('undrain', '--socket', socket);
    expect(undrain.status).toBe(0);
    expect(undrain.stdout).toMatch(/^Undrained: \d+ VIPs? announced with their configured MED and communities again to 0 established BGP peers/);
    await waitForFile(log, /\[bgp\] INFO: Undrained: every VIP now announced with its configured MED and communities; .* by="POST \/undrain"\n/, 5_000);
    expect(pybal('status', '--socket', socket).stdout).toMatch(/^BGP: enabled, local AS 64600, drained: no$/m);
    expect(await metric()).toBe('pybal_bgp_drained 0');

    proc.kill('SIGTERM');
    expect(await new Promise<number | null>((r) => proc.once('exit', r))).toBe(0);
  }, 40_000);

  it('bgp-drain = yes starts drained, and a SIGHUP that sets it to no undrains', async () => {
    writeFileSync(conf, readFileSync(conf, 'utf8').replace('bgp-med = 10\n', 'bgp-med = 10\nbgp-drain = yes\n'));
    const proc = await startDaemon();
    await waitForFile(log, /\[bgp\] INFO: Drained: every VIP now announced with GRACEFUL_SHUTDOWN \(65535:0\) and MED 1000; .* by="bgp-drain in pybal.conf"\n/, 5_000);
    expect(await metric()).toBe('pybal_bgp_drained 1');
    writeFileSync(conf, readFileSync(conf, 'utf8').replace('bgp-drain = yes\n', 'bgp-drain = no\n'));
    proc.kill('SIGHUP');
    const text = await waitForFile(log, /\[bgp\] INFO: Undrained: .* by="bgp-drain in pybal.conf"\n/, 10_000);
    // BGP was still waiting for the service to be programmed (no IPVS here): the SIGHUP starts it, then reloads.
    expect(text).toMatch(/\[bgp\] INFO: BGP starts: SIGHUP; 0 of 1 service\(s\) programmed after [0-9.]+ s\n/);
    expect(text).toContain('[global] changed: bgp-drain');
    expect(text).not.toMatch(/BGP sessions restart/);
    expect(await metric()).toBe('pybal_bgp_drained 0');
  });

  it('exits 1 when no daemon answers, and 2 on a bad --wait', () => {
    const none = pybal('drain', '--socket', join(dir, 'none.sock'));
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/^pybal drain: cannot ask the daemon at .*none\.sock: connect ENOENT/);
    expect(pybal('undrain', '--socket', join(dir, 'none.sock')).status).toBe(1);
    const bad = pybal('drain', '--socket', socket, '--wait', 'soon');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--wait: expected a number of seconds >= 0, got NaN/);
    expect(pybal('drain', '--socket', socket, '--wait', '-3').status).toBe(2);
    const help = pybal('--help');
    expect(help.stdout).toMatch(/pybal drain\s+drain this director for maintenance/);
    expect(help.stdout).toMatch(/pybal undrain\s+undo pybal drain/);
  });
});
