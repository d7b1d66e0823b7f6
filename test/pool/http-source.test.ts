import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger, type MemoryLog } from '../../src/runtime/logger.js';
import { createHttpSource, type HttpSourceOptions } from '../../src/pool/http-source.js';
import { loadSystemCa } from '../../src/pool/http-get.js';
import { controlPlaneWaiting, firstReadsWaiting } from '../../src/runtime/sliced.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PoolEvent, PoolSource } from '../../src/pool/types.js';
import { advanceFor, advanceUntil, rows, selfSignedCert, summarize, tempDir } from './helpers.js';

const LEGACY_A = "{ 'host': 'mw1', 'weight': 10, 'enabled': True }\n{ 'host': 'mw2', 'weight': 20, 'enabled': False }\n";
const JSON_A = '{"mw1": {"enabled": true, "weight": 10}, "mw2": {"enabled": false, "weight": 20}}';
const JSON_B = '{"mw1": {"enabled": true, "weight": 10}, "mw3": {"enabled": true, "weight": 5}}';
const POOL_A = [
  ['mw1', 10, true],
  ['mw2', 20, false],
];
const POOL_B = [
  ['mw1', 10, true],
  ['mw3', 5, true],
];

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

interface TestServer {
  readonly port: number;
  readonly requests: http.IncomingHttpHeaders[];
  handler: Handler;
  openSockets(): number;
  close(): Promise<void>;
}

async function listen(server: http.Server | https.Server, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

async function startServer(handler: Handler, tls?: { key: string; cert: string }, port = 0): Promise<TestServer> {
  const sockets = new Set<import('node:net').Socket>();
  const state: TestServer = {
    port: 0,
    requests: [],
    handler,
    openSockets: () => sockets.size,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    state.requests.push(req.headers);
    state.handler(req, res);
  };
  const server = tls ? https.createServer(tls, onRequest) : http.createServer(onRequest);
  server.on('connection', (s: import('node:net').Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s: import('node:net').Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return Object.assign(state, { port: await listen(server, port) });
}

/** Serves a body with an ETag and/or Last-Modified, answering 304 when the client already has it. */
function conditional(body: () => string, validators: { etag?: () => string; lastModified?: () => string }): Handler {
  return (req, res) => {
    const etag = validators.etag?.();
    const lastModified = validators.lastModified?.();
    if ((etag !== undefined && req.headers['if-none-match'] === etag) || (lastModified !== undefined && req.headers['if-modified-since'] === lastModified)) {
      res.writeHead(304).end();
      return;
    }
    const headers: Record<string, string> = {};
    if (etag !== undefined) headers.etag = etag;
    if (lastModified !== undefined) headers['last-modified'] = lastModified;
    res.writeHead(200, headers).end(body());
  };
}

describe('http pool source', () => {
  let clock: ManualClock;
  let memory: MemoryLog;
  let events: PoolEvent[];
  let source: PoolSource | undefined;
  let servers: TestServer[];

  beforeEach(() => {
    clock = new ManualClock();
    memory = createMemoryLogger();
    events = [];
    source = undefined;
    servers = [];
  });

  afterEach(async () => {
    await source?.stop();
    for (const s of servers) await s.close();
  });

  async function serve(handler: Handler, tls?: { key: string; cert: string }, port?: number): Promise<TestServer> {
    const server = await startServer(handler, tls, port);
    servers.push(server);
    return server;
  }

  function start(url: string, options: Partial<HttpSourceOptions> = {}): PoolSource {
    source = createHttpSource(url, { clock, logger: memory.logger.child({ component: 'pool', service: 'text' }), ...options });
    source.start((e) => events.push(e));
    return source;
  }

  it('reads a legacy pool over http and asks again conditionally with the ETag', async () => {
    const server = await serve(conditional(() => LEGACY_A, { etag: () => '"v1"' }));
    start(`http://127.0.0.1:${server.port}/pools/text`);
    await advanceUntil(clock, () => events.length === 1);
    expect(summarize(events)).toEqual([{ type: 'pool', servers: POOL_A, problems: [] }]);
    await advanceUntil(clock, () => server.requests.length >= 4);
    expect(events).toHaveLength(1);
    expect(server.requests[0]?.['if-none-match']).toBeUndefined();
    expect(server.requests[3]?.['if-none-match']).toBe('"v1"');
    expect(server.requests[0]?.['user-agent']).toBe('pybal (pool source)');
  });

  it('counts as a pool waiting for its first read from start to its first outcome (a pool, an error), and lets go on stop', async () => {
    const base = firstReadsWaiting();
    const baseHeld = controlPlaneWaiting();
    // Answered only when the test says: the first read is pending meanwhile.
    let answer: (() => void) | undefined;
    const server = await serve((_req, res) => {
      answer = () => res.end(LEGACY_A);
    });
    start(`http://127.0.0.1:${server.port}/pools/text`);
    expect(firstReadsWaiting()).toBe(base + 1);
    expect(controlPlaneWaiting()).toBe(baseHeld + 1);
    await advanceUntil(clock, () => answer !== undefined);
    expect(firstReadsWaiting()).toBe(base + 1);
    answer!();
    await advanceUntil(clock, () => events.length === 1);
    expect(events[0]?.type).toBe('pool');
    expect(firstReadsWaiting()).toBe(base);
    expect(controlPlaneWaiting()).toBe(baseHeld);
    await source!.stop();
    source = undefined;

    // An error is an outcome too.
    const failing = await serve((_req, res) => {
      res.statusCode = 503;
      res.end('down');
    });
    start(`http://127.0.0.1:${failing.port}/pools/text`);
    expect(firstReadsWaiting()).toBe(base + 1);
    await advanceUntil(clock, () => events.length === 2);
    expect(events[1]?.type).toBe('error');
    expect(firstReadsWaiting()).toBe(base);
    await source!.stop();
    source = undefined;

    // Stopped before any outcome: let go at once; an unusable URL never counts.
    const silent = await serve(() => undefined);
    start(`http://127.0.0.1:${silent.port}/pools/text`);
    expect(firstReadsWaiting()).toBe(base + 1);
    await source!.stop();
    source = undefined;
    expect(firstReadsWaiting()).toBe(base);
    start('ftp://127.0.0.1/pools/text');
    expect(events.at(-1)?.type).toBe('error');
    expect(firstReadsWaiting()).toBe(base);
  });

  it('uses Last-Modified, and delivers a changed pool', async () => {
    let version = 1;
    const server = await serve(
      conditional(() => (version === 1 ? JSON_A : JSON_B), { lastModified: () => `Sun, 22 Nov 2026 05:0${version}:00 GMT` }),
    );
    start(`http://127.0.0.1:${server.port}/pools/text.json`);
    await advanceUntil(clock, () => server.requests.length >= 3);
    expect(server.requests[2]?.['if-modified-since']).toBe('Sun, 22 Nov 2026 05:01:00 GMT');
    version = 2;
    await advanceUntil(clock, () => events.length === 2);
    expect(summarize(events)).toEqual([
      { type: 'pool', servers: POOL_A, problems: [] },
      { type: 'pool', servers: POOL_B, problems: [] },
    ]);
  });

  it('polls about once per interval and never overlaps requests', async () => {
    const server = await serve((_req, res) => res.end(LEGACY_A));
    start(`http://127.0.0.1:${server.port}/`);
    await advanceFor(clock, 5000, 100);
    // One poll at start, then one per second (the clock is stepped, so allow one either way).
    expect(server.requests.length).toBeGreaterThanOrEqual(5);
    expect(server.requests.length).toBeLessThanOrEqual(7);
  });

  it('reports a 500 once, keeps the pool, and recovers', async () => {
    let status = 200;
    const server = await serve((_req, res) => {
      if (status === 200) res.end(LEGACY_A);
      else res.writeHead(status).end('oops');
    });
    const url = `http://127.0.0.1:${server.port}/pool`;
    start(url);
    await advanceUntil(clock, () => events.length === 1);
    status = 500;
    const before = server.requests.length;
    await advanceUntil(clock, () => server.requests.length >= before + 4);
    expect(events.slice(1)).toEqual([{ type: 'error', message: `${url}: HTTP 500 Internal Server Error` }]);
    expect(rows(source?.status().pool)).toEqual(POOL_A);
    expect(memory.lines().filter((l) => l.includes('HTTP 500'))).toEqual([
      `[text pool] WARN: ${url}: HTTP 500 Internal Server Error (keeping the last good pool of 2 servers)`,
    ]);
    status = 200;
    await advanceUntil(clock, () => events.length === 3);
    await advanceFor(clock, 2000);
    expect(events.slice(2)).toEqual([{ type: 'recovered' }]);
  });

  it('recovers on a 304 after an outage when the content did not change', async () => {
    let down = false;
    const ok = conditional(() => JSON_A, { etag: () => '"a"' });
    const server = await serve((req, res) => (down ? res.writeHead(503).end() : ok(req, res)));
    start(`http://127.0.0.1:${server.port}/p.json`);
    await advanceUntil(clock, () => events.length === 1);
    down = true;
    await advanceUntil(clock, () => events.length === 2);
    down = false;
    await advanceUntil(clock, () => events.length === 3);
    expect(summarize(events)).toEqual([
      { type: 'pool', servers: POOL_A, problems: [] },
      { type: 'error', message: `http://127.0.0.1:${server.port}/p.json: HTTP 503 Service Unavailable` },
      { type: 'recovered' },
    ]);
    expect(server.requests.at(-1)?.['if-none-match']).toBe('"a"');
  });

  it('keeps reporting an invalid document through 304s, and recovers when it is fixed', async () => {
    let body = JSON_A;
    const server = await serve(conditional(() => body, { etag: () => `"${body.length}"` }));
    const url = `http://127.0.0.1:${server.port}/p.json`;
    start(url);
    await advanceUntil(clock, () => events.length === 1);
    body = '{"mw1": ';
    await advanceUntil(clock, () => events.length === 2);
    const before = server.requests.length;
    await advanceUntil(clock, () => server.requests.length >= before + 3);
    expect(events[1]).toEqual({ type: 'error', message: `${url}:1: invalid JSON at column 9: unexpected end of the document` });
    expect(events).toHaveLength(2);
    body = JSON_B;
    await advanceUntil(clock, () => events.length === 4);
    expect(summarize(events.slice(2))).toEqual([{ type: 'recovered' }, { type: 'pool', servers: POOL_B, problems: [] }]);
  });

  it('gives up on a server that does not answer at the deadline, without overlapping polls', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const server = await serve((_req, res) => {
      // Never answers; counts requests open at once.
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      res.on('close', () => inFlight--);
    });
    const url = `http://127.0.0.1:${server.port}/`;
    start(url, { timeoutMs: 3000 });
    await advanceUntil(clock, () => events.length === 1);
    expect(events).toEqual([{ type: 'error', message: `${url}: no complete response within 3000 ms` }]);
    await advanceUntil(clock, () => server.requests.length >= 3);
    expect(maxInFlight).toBe(1);
    await source?.stop();
    expect(clock.pendingCount()).toBe(0);
    await waitReal(() => server.openSockets() === 0);
    expect(events).toHaveLength(1);
  });

  it('gives up on a body that trickles past the deadline', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200);
      res.write("{ 'host': 'mw1' }\n");
    });
    const url = `http://127.0.0.1:${server.port}/`;
    start(url, { timeoutMs: 2000 });
    await advanceUntil(clock, () => events.length === 1);
    expect(events).toEqual([{ type: 'error', message: `${url}: no complete response within 2000 ms` }]);
  });

  it('refuses a body over the size cap', async () => {
    const server = await serve((_req, res) => res.end(LEGACY_A.repeat(100)));
    const url = `http://127.0.0.1:${server.port}/`;
    start(url, { maxBytes: 1000 });
    await advanceUntil(clock, () => events.length === 1);
    expect(events).toEqual([{ type: 'error', message: `${url}: response larger than 1000 bytes (${LEGACY_A.length * 100})` }]);
  });

  it('reports a refused connection once and recovers when the server comes up', async () => {
    const probe = await serve((_req, res) => res.end(LEGACY_A));
    const port = probe.port;
    await probe.close();
    servers.pop();
    const url = `http://127.0.0.1:${port}/pool`;
    start(url);
    await advanceUntil(clock, () => events.length === 1);
    await advanceFor(clock, 3000);
    expect(events).toEqual([{ type: 'error', message: `${url}: connection refused` }]);
    expect(memory.lines()).toContain(`[text pool] ERROR: ${url}: connection refused (no pool read yet)`);
    await serve((_req, res) => res.end(LEGACY_A), undefined, port);
    await advanceUntil(clock, () => events.length === 3);
    expect(summarize(events.slice(1))).toEqual([{ type: 'recovered' }, { type: 'pool', servers: POOL_A, problems: [] }]);
  });

  it('follows redirects, keeping the format of the configured URL', async () => {
    const server = await serve((req, res) => {
      if (req.url === '/old.json') res.writeHead(302, { location: '/new' }).end();
      else res.end(JSON_A);
    });
    start(`http://127.0.0.1:${server.port}/old.json`);
    await advanceUntil(clock, () => events.length === 1);
    expect(summarize(events)).toEqual([{ type: 'pool', servers: POOL_A, problems: [] }]);
  });

  it('reports a URL it cannot use', async () => {
    start('http://');
    await advanceFor(clock, 100);
    expect(events).toEqual([{ type: 'error', message: 'http://: not a valid http:// or https:// URL' }]);
  });

  describe('https', () => {
    let tls: { key: string; cert: string };
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      const tmp = await tempDir();
      cleanup = tmp.cleanup;
      tls = await selfSignedCert(tmp.dir);
    });

    afterEach(async () => {
      await cleanup();
    });

    it('refuses a self-signed certificate and says why', async () => {
      const server = await serve((_req, res) => res.end(LEGACY_A), tls);
      const url = `https://127.0.0.1:${server.port}/pool`;
      start(url);
      await advanceUntil(clock, () => events.length === 1);
      expect(events).toEqual([{ type: 'error', message: `${url}: TLS: self-signed certificate` }]);
      expect(server.requests).toHaveLength(0);
    });

    it('reads the pool when the certificate is trusted', async () => {
      const server = await serve(conditional(() => JSON_A, { etag: () => '"t"' }), tls);
      start(`https://127.0.0.1:${server.port}/pool.json`, { ca: [tls.cert] });
      await advanceUntil(clock, () => events.length === 1 && server.requests.length >= 3);
      expect(summarize(events)).toEqual([{ type: 'pool', servers: POOL_A, problems: [] }]);
      await source?.stop();
      await waitReal(() => server.openSockets() === 0);
      expect(clock.pendingCount()).toBe(0);
    });
  });
});

async function waitReal(done: () => boolean, limitMs = 5000): Promise<void> {
  for (let waited = 0; !done(); waited += 10) {
    if (waited > limitMs) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('loadSystemCa', () => {
  it("is Node's own list plus the system's bundle, and Node's list alone when the bundle cannot be read", async () => {
    const { rootCertificates } = await import('node:tls');
    const { dir, cleanup } = await tempDir();
    const file = join(dir, 'ca-certificates.crt');
    writeFileSync(file, '-----BEGIN CERTIFICATE-----\nsite CA\n-----END CERTIFICATE-----\n');
    const withFile = await loadSystemCa(file);
    expect(withFile.slice(0, rootCertificates.length)).toEqual(rootCertificates);
    expect(withFile.slice(rootCertificates.length)).toEqual([readFileSync(file, 'utf8')]);
    expect(rootCertificates.length).toBeGreaterThan(100);
    expect(await loadSystemCa(join(dir, 'missing.crt'))).toEqual(rootCertificates);
    await cleanup();
  });
});
