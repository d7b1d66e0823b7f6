import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { Agent, request, type RequestOptions } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PybalMetrics } from '../../src/api/metrics.js';
import { createApiServer, handleRequest, type ApiControl, type ApiServer } from '../../src/api/server.js';
import type { DaemonSnapshot, DrainAnswer, SnapshotScope } from '../../src/api/types.js';
import type { ServerSnapshot } from '../../src/coordinator/types.js';
import { createMemoryLogger, type MemoryLog } from '../../src/runtime/logger.js';
import { daemon, monitor, server, service } from './fixtures.js';

const run = promisify(execFile);

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

function httpRequest(options: RequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ agent: false, ...options }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString() }));
      response.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const snapshotValue: DaemonSnapshot = daemon([
  service('text', [
    server('mw1001'),
    server('mw1002', { up: false, pooledDown: true, monitors: [monitor({ up: false, reason: 'Connection refused' })] }),
  ]),
  service('dns', [server('dns1')], { protocol: 'udp', port: 53 }),
]);

/** IPVS counters of a server or service, distinct per `n`. */
function traffic(n: number): NonNullable<ServerSnapshot['traffic']> {
  return {
    connections: n,
    inPackets: n * 10,
    outPackets: n * 9,
    inBytes: n * 1000,
    outBytes: n * 50_000,
    connectionsPerSec: 0,
    inPacketsPerSec: 0,
    outPacketsPerSec: 0,
    inBytesPerSec: 0,
    outBytesPerSec: 0,
    activeConnections: n % 7,
    inactiveConnections: n % 5,
    readAtWallMs: 1_700_000_000_000,
  };
}

let log: MemoryLog;
let api: ApiServer;
let dir: string;

beforeEach(async () => {
  log = createMemoryLogger();
  api = createApiServer({ snapshot: () => snapshotValue, metrics: new PybalMetrics({ processMetrics: false }), logger: log.logger });
  dir = await mkdtemp(join(tmpdir(), 'pybal-api-'));
});

afterEach(async () => {
  await api.close();
  await rm(dir, { recursive: true, force: true });
});

describe.each(['127.0.0.1', '::1'])('over HTTP on %s', (ip) => {
  let port: number;
  beforeEach(async () => {
    const bound = await api.listen({ ips: [ip], port: 0 });
    expect(bound).toHaveLength(1);
    port = bound[0]?.port ?? 0;
  });
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> =>
    httpRequest({ host: ip, port, path, headers, method, family: ip.includes(':') ? 6 : 4 });

  it.each([
    ['/pools', {}, 200, 'text/plain', 'text\ndns\n'],
    ['/pools/', {}, 200, 'text/plain', 'text\ndns\n'],
    ['/pools', { accept: 'application/json' }, 200, 'application/json', '["text","dns"]'],
    ['/pools', { accept: 'text/html, Application/Json;q=0.5' }, 200, 'application/json', '["text","dns"]'],
    ['/pools', { accept: 'text/html' }, 200, 'text/plain', 'text\ndns\n'],
    ['/pools/text', {}, 200, 'text/plain', 'mw1001:\tenabled/up/pooled\nmw1002:\tenabled/down/pooled\n'],
    ['/pools/dns/dns1', { accept: 'application/json' }, 200, 'application/json', '{"pooled":true,"weight":10,"up":true,"enabled":true}'],
    ['/pools/dns/dns1?x=1', {}, 200, 'text/plain', 'enabled/up/pooled\n'],
    ['/alerts', {}, 200, 'text/plain', 'CRITICAL - text: Servers mw1002 are marked down but pooled'],
    ['/alerts', { accept: 'application/json' }, 200, 'application/json', '{"status":"critical","msg":"text: Servers mw1002 are marked down but pooled"}'],
    // `/` is the status page (test/api/page-http.test.ts); a JSON client still gets PyBal's 404.
    ['/', { accept: 'application/json' }, 404, 'application/json', '{"error":"The desired url was not found"}'],
    ['/nope', { accept: 'application/json' }, 404, 'application/json', '{"error":"The desired url was not found"}'],
    ['/pools/nope', {}, 404, 'text/plain', 'The desired url was not found'],
    ['/pools/text/nope', { accept: 'application/json' }, 404, 'application/json', '{"error":"The desired url was not found"}'],
    ['/pools/%E0%A4%A', {}, 404, 'text/plain', 'The desired url was not found'],
    ['/alerts/x', {}, 404, 'text/plain', 'The desired url was not found'],
  ] as const)('GET %s %j', async (path, headers, status, contentType, body) => {
    const reply = await get(path, headers);
    expect(reply).toMatchObject({ status, body });
    expect(reply.headers['content-type']).toBe(contentType);
  });

  it('serves the full snapshot on /status', async () => {
    const reply = await get('/status');
    expect(reply.headers['content-type']).toBe('application/json');
    expect(JSON.parse(reply.body)).toEqual(JSON.parse(JSON.stringify(snapshotValue)));
  });

  it('serves Prometheus text on /metrics', async () => {
    const reply = await get('/metrics');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(reply.body).toContain('pybal_service_pooled_down_servers{service="text"} 1\n');
  });

  it('serves a large /metrics in blocks, its Content-Length in bytes (names beyond ASCII), the same text as a render', async () => {
    const many = daemon([service('web', Array.from({ length: 3000 }, (_, i) => server(i === 7 ? 'ünïcødé-✓.example' : `rs${i}.example`, { traffic: traffic(i) })), { traffic: traffic(3000) })]);
    const metrics = new PybalMetrics({ processMetrics: false });
    const other = createApiServer({ snapshot: () => many, metrics, logger: log.logger });
    try {
      const [first] = await other.listen({ ips: [ip], port: 0 });
      const reply = await httpRequest({ host: ip, port: first?.port ?? 0, path: '/metrics' });
      expect(reply.status).toBe(200);
      expect(Number(reply.headers['content-length'])).toBe(Buffer.byteLength(reply.body));
      expect(Buffer.byteLength(reply.body)).toBeGreaterThan(reply.body.length);
      expect(Buffer.byteLength(reply.body)).toBeGreaterThan(256 * 1024);
      expect(reply.body).toContain('pybal_ipvs_server_bytes_total{service="web",host="ünïcødé-✓.example",direction="out"} 350000\n');
      expect(reply.body).toBe(await metrics.render());
    } finally {
      await other.close();
    }
  });

  it('answers HEAD with the headers and no body', async () => {
    const reply = await get('/pools/text', { accept: 'application/json' }, 'HEAD');
    expect(reply.status).toBe(200);
    expect(reply.body).toBe('');
    expect(reply.headers['content-type']).toBe('application/json');
    expect(Number(reply.headers['content-length'])).toBe((await get('/pools/text', { accept: 'application/json' })).body.length);
  });

  it.each(['POST', 'PUT', 'DELETE', 'PATCH'])('refuses %s with 405', async (method) => {
    const reply = await get('/pools', {}, method);
    expect(reply.status).toBe(405);
    expect(reply.headers.allow).toBe('GET, HEAD');
  });

  it('answers curl', async () => {
    const url = `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}/pools/text`;
    const { stdout } = await run('curl', ['-sS', '-H', 'Accept: application/json', url]);
    expect(JSON.parse(stdout)).toEqual({
      mw1001: { pooled: true, weight: 10, up: true, enabled: true },
      mw1002: { pooled: true, weight: 10, up: false, enabled: true },
    });
    const { stdout: code } = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', url]);
    expect(code).toBe('405');
  });
});

describe('snapshots taken in slices', () => {
  it('takes the requests that copy every server in slices when the daemon offers it, and the list of services at once', async () => {
    const atOnce: (SnapshotScope | undefined)[] = [];
    const inSlices: (SnapshotScope | undefined)[] = [];
    const deps = {
      snapshot: (scope?: SnapshotScope) => {
        atOnce.push(scope);
        return snapshotValue;
      },
      snapshotSliced: async (scope?: SnapshotScope) => {
        inSlices.push(scope);
        await new Promise((resolve) => setImmediate(resolve));
        return snapshotValue;
      },
      metrics: new PybalMetrics({ processMetrics: false }),
    };
    const body = async (url: string, accept?: string): Promise<string> => {
      const answer = await handleRequest(deps, 'GET', url, accept);
      expect(answer.status).toBe(200);
      return typeof answer.body === 'string' ? answer.body : answer.body.join('');
    };
    expect(await body('/pools')).toBe('text\ndns\n');
    expect(atOnce).toEqual([{ servers: false }]);
    expect(inSlices).toEqual([]);
    expect(JSON.parse(await body('/pools/text', 'application/json'))).toMatchObject({ mw1001: { pooled: true }, mw1002: { up: false } });
    expect(await body('/alerts')).toContain('mw1002');
    expect(await body('/metrics')).toContain('pybal_service_pooled_down_servers{service="text"} 1\n');
    expect(JSON.parse(await body('/status')).services).toHaveLength(2);
    expect(inSlices).toEqual([{ service: 'text', checks: false }, { checks: false }, { checks: false }, undefined]);
    expect(atOnce).toHaveLength(1);
  });

  it('lists the services from their names when the daemon offers them, with no snapshot: the same answer, in their order', async () => {
    const taken: (SnapshotScope | undefined)[] = [];
    const names = ['text', 'dns', 'a "quoted" name'];
    const deps = {
      snapshot: (scope?: SnapshotScope) => {
        taken.push(scope);
        return snapshotValue;
      },
      serviceNames: () => names,
      metrics: new PybalMetrics({ processMetrics: false }),
    };
    const text = await handleRequest(deps, 'GET', '/pools', undefined);
    expect([text.status, text.contentType, text.body]).toEqual([200, 'text/plain', 'text\ndns\na "quoted" name\n']);
    const json = await handleRequest(deps, 'GET', '/pools/', 'application/json');
    expect([json.status, json.contentType, json.body]).toEqual([200, 'application/json', '["text","dns","a \\"quoted\\" name"]']);
    // The names' answer is the snapshot's for the same services (the fallback, as before).
    const fromSnapshot = await handleRequest({ snapshot: deps.snapshot, metrics: deps.metrics }, 'GET', '/pools', 'application/json');
    expect(fromSnapshot.body).toBe(JSON.stringify(snapshotValue.services.map((s) => s.name)));
    expect(taken).toEqual([{ servers: false }]);
    // A service's pool still comes from its snapshot.
    expect((await handleRequest(deps, 'GET', '/pools/dns', undefined)).body).toBe('dns1:\tenabled/up/pooled\n');
    expect(taken).toEqual([{ servers: false }, { service: 'dns', checks: false }]);
  });
});

describe('listeners', () => {
  it('listens on several addresses and logs, without failing, one it cannot bind', async () => {
    const [first] = await api.listen({ ips: ['127.0.0.1'], port: 0 });
    const port = first?.port ?? 0;
    const other = createApiServer({ snapshot: () => snapshotValue, metrics: new PybalMetrics({ processMetrics: false }), logger: log.logger });
    try {
      const bound = await other.listen({ ips: ['127.0.0.1', '::1'], port });
      expect(bound).toEqual([{ address: '::1', port }]);
      expect(log.lines().some((l) => l.includes(`ERROR: Cannot serve the instrumentation API on 127.0.0.1:${port}`) && l.includes('EADDRINUSE'))).toBe(true);
      expect((await httpRequest({ host: '::1', port, path: '/pools', family: 6 })).body).toBe('text\ndns\n');
    } finally {
      await other.close();
    }
  });

  it('closes kept-alive connections and stops listening', async () => {
    const [bound] = await api.listen({ ips: ['127.0.0.1'], port: 0 });
    const agent = new Agent({ keepAlive: true });
    try {
      const reply = await httpRequest({ host: '127.0.0.1', port: bound?.port, path: '/alerts', agent });
      expect(reply.status).toBe(200);
      await api.close();
      await expect(httpRequest({ host: '127.0.0.1', port: bound?.port, path: '/alerts' })).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      agent.destroy();
    }
  });
});

describe('Unix socket', () => {
  it('serves the API with mode 0600 and removes the socket on close', async () => {
    const path = join(dir, 'sub', 'pybal.sock');
    expect(await api.listenUnix(path)).toBe(true);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const reply = await httpRequest({ socketPath: path, path: '/pools/text/mw1001' });
    expect(reply.body).toBe('enabled/up/pooled\n');
    const { stdout } = await run('curl', ['-sS', '--unix-socket', path, 'http://localhost/alerts']);
    expect(stdout).toBe('CRITICAL - text: Servers mw1002 are marked down but pooled');
    await api.close();
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
  });

  it('replaces a stale socket', async () => {
    const path = join(dir, 'pybal.sock');
    // A socket nobody listens on, as a killed daemon leaves it.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(process.argv[1], () => console.log('ready'))`, path], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect((await stat(path)).isSocket()).toBe(true);
    expect(await api.listenUnix(path)).toBe(true);
    expect((await httpRequest({ socketPath: path, path: '/pools' })).body).toBe('text\ndns\n');
  });

  it('leaves a live socket and other files alone, logging why', async () => {
    const path = join(dir, 'pybal.sock');
    expect(await api.listenUnix(path)).toBe(true);
    const other = createApiServer({ snapshot: () => snapshotValue, metrics: new PybalMetrics({ processMetrics: false }), logger: log.logger });
    try {
      expect(await other.listenUnix(path)).toBe(false);
      expect(log.lines().some((l) => l.includes(`ERROR: Cannot serve the status API on ${path}: another process is serving`))).toBe(true);
      expect((await httpRequest({ socketPath: path, path: '/pools' })).body).toBe('text\ndns\n');
      const file = join(dir, 'file');
      await writeFile(file, 'keep me');
      expect(await other.listenUnix(file)).toBe(false);
      expect(log.lines().some((l) => l.includes(`${file} exists and is not a socket`))).toBe(true);
      expect((await stat(file)).isFile()).toBe(true);
    } finally {
      await other.close();
    }
  });
});

describe('control requests: POST /drain and POST /undrain, on the Unix socket only', () => {
  /** A daemon's drain as the control sees it: the calls it got, and its state. */
  function fakeControl(): ApiControl & { calls: boolean[] } {
    let drained = false;
    const calls: boolean[] = [];
    return {
      calls,
      setDrained(want: boolean): DrainAnswer {
        calls.push(want);
        const changed = drained !== want;
        drained = want;
        return { drained, drainedSinceWallMs: drained ? 1_700_000_200_000 : undefined, drainMed: 4294967295, changed, announced: 2 };
      },
    };
  }
  let controlled: ApiServer;
  let control: ReturnType<typeof fakeControl>;
  beforeEach(() => {
    control = fakeControl();
    controlled = createApiServer({ snapshot: () => snapshotValue, metrics: new PybalMetrics({ processMetrics: false }), logger: log.logger, control });
  });
  afterEach(async () => {
    await controlled.close();
  });

  it('drains and undrains on the Unix socket, answering JSON with the new state', async () => {
    const path = join(dir, 'control.sock');
    expect(await controlled.listenUnix(path)).toBe(true);
    const drain = await httpRequest({ socketPath: path, path: '/drain', method: 'POST' });
    expect(drain.status).toBe(200);
    expect(drain.headers['content-type']).toBe('application/json');
    expect(JSON.parse(drain.body)).toEqual({ drained: true, drainedSinceWallMs: 1_700_000_200_000, drainMed: 4294967295, changed: true, announced: 2 });
    // Again: unchanged, said so.
    expect(JSON.parse((await httpRequest({ socketPath: path, path: '/drain', method: 'POST' })).body)).toMatchObject({ drained: true, changed: false });
    // curl, as an operator without pybal at hand would.
    const { stdout } = await run('curl', ['-sS', '-X', 'POST', '--unix-socket', path, 'http://localhost/undrain']);
    expect(JSON.parse(stdout)).toEqual({ drained: false, drainMed: 4294967295, changed: true, announced: 2 });
    expect(control.calls).toEqual([true, true, false]);
  });

  it('refuses other methods on the control paths, and POST elsewhere, changing nothing', async () => {
    const path = join(dir, 'control.sock');
    await controlled.listenUnix(path);
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const reply = await httpRequest({ socketPath: path, path: '/drain', method });
      expect(reply.status, method).toBe(405);
      expect(reply.headers.allow).toBe('POST');
      expect(JSON.parse(reply.body)).toEqual({ error: "Method not allowed: POST /drain changes the daemon's state" });
    }
    const post = await httpRequest({ socketPath: path, path: '/pools', method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    expect(post.body).toBe('Method not allowed: only POST /drain and POST /undrain change the daemon; the rest is read-only (GET, HEAD)\n');
    expect((await httpRequest({ socketPath: path, path: '/drain/now', method: 'POST' })).status).toBe(405);
    // Names an object has of its own are no control paths.
    for (const name of ['/constructor', '/__proto__', '/toString', '/hasOwnProperty']) {
      expect((await httpRequest({ socketPath: path, path: name, method: 'POST' })).status, name).toBe(405);
    }
    // The read-only API is all there too.
    expect((await httpRequest({ socketPath: path, path: '/pools' })).body).toBe('text\ndns\n');
    expect(control.calls).toEqual([]);
  });

  it.each(['127.0.0.1', '::1'])('the TCP listener on %s refuses POST /drain and /undrain (PyBal-compatible, read-only) and knows no such path', async (ip) => {
    const [bound] = await controlled.listen({ ips: [ip], port: 0 });
    const port = bound?.port ?? 0;
    const family = ip.includes(':') ? 6 : 4;
    for (const path of ['/drain', '/undrain']) {
      const reply = await httpRequest({ host: ip, port, family, path, method: 'POST', headers: { accept: 'application/json' } });
      expect(reply.status).toBe(405);
      expect(reply.headers.allow).toBe('GET, HEAD');
      expect(JSON.parse(reply.body)).toEqual({
        error: 'Method not allowed: the API is read-only (GET, HEAD); drain and undrain only on the control socket (pybal drain, pybal undrain)',
      });
      expect((await httpRequest({ host: ip, port, family, path })).status).toBe(404);
    }
    const url = `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}/drain`;
    const { stdout } = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', url]);
    expect(stdout).toBe('405');
    expect(control.calls).toEqual([]);
  });
});

describe('errors', () => {
  it('answers 500 and logs when the snapshot throws', async () => {
    const broken = createApiServer({
      snapshot: () => {
        throw new Error('boom');
      },
      metrics: new PybalMetrics({ processMetrics: false }),
      logger: log.logger,
    });
    try {
      const [bound] = await broken.listen({ ips: ['127.0.0.1'], port: 0 });
      const reply = await httpRequest({ host: '127.0.0.1', port: bound?.port, path: '/pools' });
      expect(reply.status).toBe(500);
      expect(log.lines().some((l) => l.includes('ERROR: Instrumentation request GET /pools failed: boom'))).toBe(true);
    } finally {
      await broken.close();
    }
  });
});
