/**
 * The exit statuses of `pybal status` and `pybal check`, run from dist as
 * operators and monitoring systems run them, against a fake daemon: a real
 * Unix socket in a temporary directory serving canned /status and /alerts.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AlertsValue } from '../../src/api/alerts.js';
import type { DaemonSnapshot } from '../../src/api/types.js';
import { daemon, peer, server, service } from '../api/fixtures.js';
import { assertFreshBuild } from '../support/fresh-build.js';

/** The drain fields of a snapshot, not drained. */
const NOT_DRAINED = { drained: false, drainedSinceWallMs: undefined, drainMed: 4294967295 } as const;
const PYBAL = resolve('dist/cli/pybal.js');
beforeAll(() => assertFreshBuild(['src/cli', 'src/runtime', 'src/api']));

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built CLI without blocking this process, whose event loop serves the fake daemon. */
function pybal(args: readonly string[], options: { uid?: number; gid?: number } = {}): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [PYBAL, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', fail);
    child.on('close', (status) => {
      clearTimeout(timer);
      done({ status, stdout, stderr });
    });
  });
}

const lastLine = (text: string): string => text.trimEnd().split('\n').at(-1) ?? '';

type Answer = { readonly snapshot: DaemonSnapshot; readonly alerts: AlertsValue } | ((path: string, res: ServerResponse) => void);

let dir: string;
let socket: string;
let fake: Server | undefined;

/** Serves `answer` on `socket` until the test ends. */
async function serve(answer: Answer): Promise<void> {
  fake = createServer((req, res) => {
    if (typeof answer === 'function') return answer(req.url ?? '', res);
    const body = req.url === '/status' ? answer.snapshot : req.url === '/alerts' ? answer.alerts : undefined;
    res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body ?? { error: 'The desired url was not found' }));
  });
  await new Promise<void>((ready) => fake?.listen(socket, ready));
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pybal-status-check-'));
  socket = join(dir, 'pybal.sock');
});

afterEach(async () => {
  const f = fake;
  fake = undefined;
  if (f) {
    f.closeAllConnections();
    await new Promise((closed) => f.close(closed));
  }
  rmSync(dir, { recursive: true, force: true });
});

const OK_ALERTS: AlertsValue = { status: 'ok', msg: 'All pools are healthy' };
const bgpOn = (...peers: ReturnType<typeof peer>[]): DaemonSnapshot['bgp'] => ({ enabled: true, localAsn: 64600, peers, ...NOT_DRAINED });
const ipvsStats = (over: Partial<NonNullable<DaemonSnapshot['ipvs']>> = {}): NonNullable<DaemonSnapshot['ipvs']> => ({
  reconciles: 4,
  failedReconciles: 0,
  requests: 9,
  failedRequests: 0,
  resyncs: 1,
  drift: 0,
  lastReconcileMs: 1.5,
  totalReconcileMs: 6,
  lastError: undefined,
  ...over,
});

const web = (servers = [server('rs1'), server('rs2'), server('rs3')]) => service('web', servers);

const healthy = {
  snapshot: daemon([web()], { bgp: bgpOn(peer('192.0.2.254'), peer('192.0.2.253')), ipvs: ipvsStats(), eventLoop: { stalls: 0, longestMs: 0 } }),
  alerts: OK_ALERTS,
};

/** One BGP peer of two down: redundancy lost. */
const oneBgpPeerDown = {
  snapshot: daemon([web()], { bgp: bgpOn(peer('192.0.2.254'), peer('192.0.2.253', { state: 'Active', lastError: 'connect ECONNREFUSED' })), ipvs: ipvsStats() }),
  alerts: OK_ALERTS,
};

/** PyBal's critical alert: a down server kept pooled by the depool threshold. */
const pooledDown = {
  snapshot: daemon([web([server('rs1'), server('rs2', { up: false, pooledDown: true }), server('rs3', { up: false, pooled: false })])], { ipvs: ipvsStats() }),
  alerts: { status: 'critical', msg: 'web: Servers rs2 are marked down but pooled' } as AlertsValue,
};

describe('pybal status: exit status and last line', () => {
  it('0 and "Health: OK" when nothing is wrong', async () => {
    await serve(healthy);
    const r = await pybal(['status', '--socket', socket]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('web  192.0.2.1:80/tcp  scheduler wrr');
    expect(lastLine(r.stdout)).toBe('Health: OK');
  });

  it('1 when something is degraded (a warning: one BGP peer of two down)', async () => {
    await serve(oneBgpPeerDown);
    const r = await pybal(['status', '--socket', socket]);
    expect(r.status).toBe(1);
    expect(lastLine(r.stdout)).toBe('Health: DEGRADED: WARNING BGP 1 of 2 Established: 192.0.2.253 Active (connect ECONNREFUSED)');
  });

  it('1 when something is critical (PyBal\'s alert, a failing IPVS reconcile)', async () => {
    await serve({ ...pooledDown, snapshot: { ...pooledDown.snapshot, ipvs: ipvsStats({ failedReconciles: 2, lastError: 'EPERM' }) } });
    const r = await pybal(['status', '--socket', socket]);
    expect(r.status).toBe(1);
    expect(lastLine(r.stdout)).toBe(
      'Health: DEGRADED: CRITICAL web: Servers rs2 are marked down but pooled; CRITICAL IPVS reconcile failing (2 of 4 failed): EPERM',
    );
  });

  it('2 when the daemon cannot be reached, saying so last', async () => {
    const r = await pybal(['status', '--socket', socket]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `pybal status: cannot get the status from the daemon at ${socket}: connect ENOENT ${socket}\n` +
        'Health: UNREACHABLE: is pybal running? (Use --socket or --url to point at it.)\n',
    );
  });

  it('2 on a usage error too, said in one line without a stack trace', async () => {
    const r = await pybal(['status', '--socket']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("pybal: Not enough arguments following: socket\nTry 'pybal --help'.\n");
  });

  it('2 when what answers is not pybal', async () => {
    await serve((_path, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>'));
    const r = await pybal(['status', '--socket', socket]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unreadable answer to \/(status|alerts)/);
  });
});

describe('pybal check: the monitoring plugin', () => {
  it('OK (0) with perfdata', async () => {
    await serve(healthy);
    const r = await pybal(['check', '--socket', socket]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(
      'PYBAL OK - pybal 2.0.0: 1 service(s), 3/3 server(s) pooled, BGP 2/2 Established | ' +
        'services=1 servers=3 enabled=3 up=3 pooled=3 pooled_down=0 bgp_peers=2 bgp_established=2 ipvs_failed_reconciles=0c event_loop_stalls=0c\n',
    );
  });

  it('WARNING (1): a BGP peer down while another is up', async () => {
    await serve(oneBgpPeerDown);
    const r = await pybal(['check', '--socket', socket]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^PYBAL WARNING - BGP 1 of 2 Established: 192\.0\.2\.253 Active \(connect ECONNREFUSED\) \| services=1 .* bgp_established=1 /);
  });

  it("WARNING (1): PyBal's warning alert (a pool too small to depool)", async () => {
    await serve({ snapshot: daemon([web()]), alerts: { status: 'warning', msg: 'Pool web is too small to allow depooling. ' } });
    const r = await pybal(['check', '--socket', socket]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^PYBAL WARNING - Pool web is too small to allow depooling \| services=1 servers=3 /);
  });

  it("CRITICAL (2): PyBal's critical alert, with the warnings named after it", async () => {
    await serve({ ...pooledDown, snapshot: { ...pooledDown.snapshot, services: [...pooledDown.snapshot.services, service('dns', [], { awaitingPool: true })] } });
    const r = await pybal(['check', '--socket', socket]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe(
      'PYBAL CRITICAL - web: Servers rs2 are marked down but pooled; WARNING: service dns waits for its first pool | ' +
        'services=2 servers=3 enabled=3 up=1 pooled=2 pooled_down=1 bgp_peers=0 bgp_established=0 ipvs_failed_reconciles=0c\n',
    );
  });

  it('CRITICAL (2): the last IPVS reconcile failed', async () => {
    await serve({ snapshot: daemon([web()], { ipvs: ipvsStats({ failedReconciles: 3, lastError: 'ENOENT: no ip_vs' }) }), alerts: OK_ALERTS });
    const r = await pybal(['check', '--socket', socket]);
    expect(r.status).toBe(2);
    expect(r.stdout).toMatch(/^PYBAL CRITICAL - IPVS reconcile failing \(3 of 4 failed\): ENOENT: no ip_vs \| .*ipvs_failed_reconciles=3c\n$/);
  });

  it('CRITICAL (2): BGP on and no session Established', async () => {
    await serve({ snapshot: daemon([web()], { bgp: bgpOn(peer('192.0.2.254', { state: 'Idle' }), peer('192.0.2.253', { state: 'Connect' })) }), alerts: OK_ALERTS });
    const r = await pybal(['check', '--socket', socket]);
    expect(r.status).toBe(2);
    expect(r.stdout).toMatch(/^PYBAL CRITICAL - no BGP session Established: 192\.0\.2\.254 Idle, 192\.0\.2\.253 Connect \| /);
  });

  it('CRITICAL (2): no daemon on the socket', async () => {
    const r = await pybal(['check', '--socket', socket]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe(`PYBAL CRITICAL - pybal does not answer at ${socket}: connect ENOENT ${socket}\n`);
  });

  it('CRITICAL (2): no answer within --timeout', async () => {
    await serve(() => undefined); // accepts, never answers
    const started = Date.now();
    const r = await pybal(['check', '--socket', socket, '--timeout', '0.3']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe(`PYBAL CRITICAL - pybal does not answer at ${socket}: no answer within 0.3 s\n`);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('UNKNOWN (3): what answers is not pybal', async () => {
    await serve((path, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(path === '/alerts' ? '{"status":"ok","msg":""}' : '{"hello":1}'));
    const r = await pybal(['check', '--socket', socket]);
    expect(r.status).toBe(3);
    expect(r.stdout).toBe(`PYBAL UNKNOWN - cannot ask pybal at ${socket}: the answer to /status is not a pybal status\n`);
  });

  it('UNKNOWN (3): the socket may not be opened (the check does not run as root)', async () => {
    await serve(healthy);
    chmodSync(socket, 0o600);
    // As root, run the check as nobody, as a monitoring agent would run; otherwise take our own access away.
    const asRoot = process.getuid?.() === 0;
    if (!asRoot) chmodSync(socket, 0);
    const r = await pybal(['check', '--socket', socket], asRoot ? { uid: 65534, gid: 65534 } : {});
    expect(r.status).toBe(3);
    expect(r.stdout).toMatch(/^PYBAL UNKNOWN - cannot ask pybal at .*: connect EACCES .*\(the control socket is the pybal user's, mode 0600: run the check as root or as pybal, e\.g\. through sudo -u pybal\)\n$/);
  });

  it('UNKNOWN (3): a usage error, on standard output as plugins report', async () => {
    for (const args of [['check', '--bogus'], ['check', '--timeout', '0'], ['check', '--timeout', 'soon']]) {
      const r = await pybal(args);
      expect(r.status).toBe(3);
      expect(r.stdout).toMatch(/^PYBAL UNKNOWN - usage: /);
    }
  });
});
