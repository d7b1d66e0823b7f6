import { execFile, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { controlRealServer, parseBehaviour, startRealServer, type RealServer, type RealServerOptions } from './real-server.js';

const execFileAsync = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** How long "nothing happens" is watched for. Only ever used to show an absence, never a speed. */
const quietMs = 300;

const records = {
  'www.example.com': { a: ['192.0.2.10', '192.0.2.11'], aaaa: ['2001:db8::10'] },
  'v4only.example.com.': { a: ['192.0.2.20'] },
  // 40 A records do not fit in 512 bytes: UDP answers are truncated.
  'big.example.com': { a: Array.from({ length: 40 }, (_, i) => `192.0.2.${100 + i}`) },
};

// ---------------------------------------------------------------------------
// Clients

interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function readAnswer(res: http.IncomingMessage): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (body += chunk));
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    res.on('error', reject);
  });
}

function httpRequest(options: http.RequestOptions): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent: false, ...options }, (res) => readAnswer(res).then(resolve, reject));
    req.on('error', reject);
    req.end();
  });
}

function httpsRequest(options: https.RequestOptions): Promise<HttpAnswer & { san: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ agent: false, rejectUnauthorized: false, ...options }, (res) => {
      const san = (res.socket as tls.TLSSocket).getPeerCertificate().subjectaltname ?? '';
      readAnswer(res).then((answer) => resolve({ ...answer, san }), reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function errorCode(promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(
    () => undefined,
    (error: NodeJS.ErrnoException) => error.code,
  );
}

function connectTcp(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

type SocketOutcome = { kind: 'data'; data: string } | { kind: 'end' } | { kind: 'error'; code: string | undefined } | { kind: 'quiet' };

/** The first thing that happens on a socket: data, a clean end, an error, or nothing within `quietMs`. */
function firstOutcome(socket: net.Socket, waitMs = quietMs): Promise<SocketOutcome> {
  return new Promise((resolve) => {
    const done = (outcome: SocketOutcome): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      resolve(outcome);
    };
    const onData = (chunk: Buffer): void => done({ kind: 'data', data: chunk.toString('utf8') });
    const onEnd = (): void => done({ kind: 'end' });
    const onError = (error: NodeJS.ErrnoException): void => done({ kind: 'error', code: error.code });
    const timer = setTimeout(() => done({ kind: 'quiet' }), waitMs);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
  });
}




type UdpOutcome = { kind: 'reply'; text: string } | { kind: 'error'; code: string | undefined } | { kind: 'quiet' };

/**
 * Sends one datagram and reports what came back within `waitMs`. A connected socket
 * accepts replies only from `host`, and learns of ICMP port-unreachable as an error.
 */
function udpSend(host: string, port: number, payload: string | Buffer, options: { connected?: boolean; waitMs?: number } = {}): Promise<UdpOutcome> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    const finish = (outcome: UdpOutcome): void => {
      clearTimeout(timer);
      socket.close();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ kind: 'quiet' }), options.waitMs ?? quietMs);
    socket.on('message', (message) => finish({ kind: 'reply', text: message.toString('utf8') }));
    socket.on('error', (error: NodeJS.ErrnoException) => finish({ kind: 'error', code: error.code }));
    if (options.connected) socket.connect(port, host, () => socket.send(payload));
    else socket.send(payload, port, host);
  });
}

const reply = (text: string): UdpOutcome => ({ kind: 'reply', text });
const quiet: UdpOutcome = { kind: 'quiet' };
const refused: UdpOutcome = { kind: 'error', code: 'ECONNREFUSED' };

interface DigAnswer {
  status: string | undefined;
  flags: string[];
  answers: string[];
  /** dig's own complaint when it got nothing ("timed out", "connection refused"...). */
  output: string;
}

async function dig(server: string, port: number, name: string, type: string, ...extra: string[]): Promise<DigAnswer> {
  const args = [`@${server}`, '-p', String(port), name, type, '+tries=1', '+time=1', '+nocookie', '+noall', '+comments', '+answer', ...extra];
  let output: string;
  try {
    output = (await execFileAsync('dig', args)).stdout;
  } catch (error) {
    output = String((error as { stdout?: string }).stdout ?? error);
  }
  const status = /status: ([A-Z]+)/.exec(output)?.[1];
  const flags = /;; flags: ([a-z ]+);/.exec(output)?.[1]?.split(' ') ?? [];
  const answers = output
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith(';'))
    .map((line) => line.split(/\s+/).join(' '));
  return { status, flags, answers, output };
}

// ---------------------------------------------------------------------------

const started: RealServer[] = [];

async function start(options: Partial<RealServerOptions> = {}): Promise<RealServer> {
  const server = await startRealServer({
    name: 'rs1',
    host: '127.0.0.1',
    http: 0,
    tcp: 0,
    udp: 0,
    dns: 0,
    dnsRecords: records,
    ...options,
  });
  started.push(server);
  return server;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.stop()));
});

function port(value: number | undefined): number {
  if (value === undefined) throw new Error('listener not configured');
  return value;
}

describe('real server, ok', () => {
  it('answers HTTP with its name in the body and a header, and records the request', async () => {
    const rs = await start({ name: 'cp1001' });
    const answer = await httpRequest({ host: rs.host, port: port(rs.ports.http), method: 'POST', path: '/health?check=1', headers: { Host: 'en.example.org' } });
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('served-by cp1001\n');
    expect(answer.headers['x-served-by']).toBe('cp1001');
    expect(answer.headers['content-length']).toBe(String('served-by cp1001\n'.length));
    expect(rs.stats()).toMatchObject({
      httpRequests: 1,
      tcpConnections: 1,
      lastHttpRequest: { method: 'POST', path: '/health?check=1', host: 'en.example.org' },
    });
    expect(rs.stats().lastHttpRequest?.sni).toBeUndefined();
  });

  it('answers HTTPS with a certificate for its names and records the SNI', async () => {
    const rs = await start({ https: 0, tlsNames: ['rs1.example', '127.0.0.1'] });
    const answer = await httpsRequest({ host: rs.host, port: port(rs.ports.https), path: '/tls', servername: 'rs1.example' });
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('served-by rs1\n');
    expect(answer.san).toBe('DNS:rs1.example, IP Address:127.0.0.1');
    expect(rs.stats().lastHttpRequest).toEqual({ method: 'GET', path: '/tls', host: `127.0.0.1:${rs.ports.https}`, sni: 'rs1.example' });
  });

  it('holds idle TCP connections open without sending anything', async () => {
    const rs = await start();
    const socket = await connectTcp(rs.host, port(rs.ports.tcp));
    socket.write('anything\r\n');
    expect(await firstOutcome(socket)).toEqual({ kind: 'quiet' });
    expect(rs.stats()).toMatchObject({ tcpConnections: 1, openTcpConnections: 1 });
    socket.destroy();
    await expect.poll(() => rs.stats().openTcpConnections).toBe(0);
  });

  it('echoes UDP datagrams prefixed with its name, including an empty one', async () => {
    const rs = await start({ name: 'dns1' });
    expect(await udpSend(rs.host, port(rs.ports.udp), 'hello', { waitMs: 2000 })).toEqual(reply('dns1 hello'));
    expect(await udpSend(rs.host, port(rs.ports.udp), Buffer.alloc(0), { waitMs: 2000 })).toEqual(reply('dns1 '));
    expect(rs.stats().udpDatagrams).toBe(2);
  });

  it('answers DNS A, AAAA, NXDOMAIN and no-data over UDP, and over TCP', async () => {
    const rs = await start();
    const dns = port(rs.ports.dns);
    const a = await dig(rs.host, dns, 'WWW.Example.com', 'A');
    expect(a.status).toBe('NOERROR');
    expect(a.flags).toEqual(expect.arrayContaining(['qr', 'aa', 'rd']));
    expect(a.flags).not.toContain('ra');
    expect(a.answers).toEqual(['WWW.Example.com. 0 IN A 192.0.2.10', 'WWW.Example.com. 0 IN A 192.0.2.11']);
    const aaaa = await dig(rs.host, dns, 'www.example.com', 'AAAA');
    expect(aaaa.answers).toEqual(['www.example.com. 0 IN AAAA 2001:db8::10']);
    const nodata = await dig(rs.host, dns, 'v4only.example.com', 'AAAA');
    expect(nodata).toMatchObject({ status: 'NOERROR', answers: [] });
    const nx = await dig(rs.host, dns, 'missing.example.com', 'A');
    expect(nx).toMatchObject({ status: 'NXDOMAIN', answers: [] });
    const overTcp = await dig(rs.host, dns, 'v4only.example.com', 'A', '+tcp');
    expect(overTcp.answers).toEqual(['v4only.example.com. 0 IN A 192.0.2.20']);
    expect(rs.stats().dnsQueries).toBe(5);
  });

  it('truncates large DNS answers over UDP, and dig gets them in full over TCP', async () => {
    const rs = await start();
    const truncated = await dig(rs.host, port(rs.ports.dns), 'big.example.com', 'A', '+ignore');
    expect(truncated.flags).toContain('tc');
    expect(truncated.answers).toEqual([]);
    const retried = await dig(rs.host, port(rs.ports.dns), 'big.example.com', 'A');
    expect(retried.answers).toHaveLength(40);
    expect(retried.answers[39]).toBe('big.example.com. 0 IN A 192.0.2.139');
    expect(rs.stats()).toMatchObject({ dnsQueries: 3, tcpConnections: 1 });
  });

  it('answers a malformed HTTP request with 400', async () => {
    const rs = await start();
    const socket = await connectTcp(rs.host, port(rs.ports.http));
    socket.write('NOT HTTP AT ALL\r\n\r\n');
    const outcome = await firstOutcome(socket, 5000);
    expect(outcome.kind === 'data' && outcome.data.startsWith('HTTP/1.1 400 Bad Request\r\n')).toBe(true);
    socket.destroy();
  });
});

describe('real server, down', () => {
  it('refuses TCP, gets port-unreachable on UDP, then rebinds the same ports on ok', async () => {
    const rs = await start({ https: 0 });
    const before = { ...rs.ports };
    const held = await connectTcp(rs.host, port(rs.ports.tcp));
    await rs.setBehaviour({ mode: 'down' });
    expect(await firstOutcome(held, 2000)).toEqual({ kind: 'end' });
    for (const p of [rs.ports.http, rs.ports.https, rs.ports.tcp, rs.ports.dns]) {
      expect(await errorCode(connectTcp(rs.host, port(p)).then((s) => s.destroy()))).toBe('ECONNREFUSED');
    }
    expect(await udpSend(rs.host, port(rs.ports.udp), 'ping', { connected: true, waitMs: 2000 })).toEqual(refused);
    expect(await udpSend(rs.host, port(rs.ports.dns), 'ping', { connected: true, waitMs: 2000 })).toEqual(refused);
    expect((await dig(rs.host, port(rs.ports.dns), 'www.example.com', 'A', '+tcp')).output).toMatch(/connection refused/);

    await rs.setBehaviour({ mode: 'ok' });
    expect(rs.ports).toEqual(before);
    expect((await httpRequest({ host: rs.host, port: port(rs.ports.http), path: '/' })).body).toBe('served-by rs1\n');
    expect((await httpsRequest({ host: rs.host, port: port(rs.ports.https), path: '/' })).status).toBe(200);
    expect(await udpSend(rs.host, port(rs.ports.udp), 'x', { waitMs: 2000 })).toEqual(reply('rs1 x'));
    expect((await dig(rs.host, port(rs.ports.dns), 'www.example.com', 'A')).status).toBe('NOERROR');
    expect(await firstOutcome(await connectTcp(rs.host, port(rs.ports.tcp)))).toEqual({ kind: 'quiet' });
  });

  it('rebinds fixed ports even with connections left in TIME_WAIT', async () => {
    const first = await start();
    const fixed = port(first.ports.http);
    await first.stop();
    started.splice(0);
    const rs = await start({ http: fixed, tcp: undefined, udp: undefined, dns: undefined });
    // The server closes first (Connection: close), so the server side holds TIME_WAIT.
    expect((await httpRequest({ host: rs.host, port: fixed, path: '/' })).status).toBe(200);
    await rs.setBehaviour({ mode: 'down' });
    await rs.setBehaviour({ mode: 'ok' });
    expect(rs.ports.http).toBe(fixed);
    expect((await httpRequest({ host: rs.host, port: fixed, path: '/' })).status).toBe(200);
  });
});

describe('real server, hang', () => {
  it('accepts HTTP and never answers until the behaviour changes, then closes with FIN', async () => {
    const rs = await start();
    await rs.setBehaviour({ mode: 'hang' });
    const socket = await connectTcp(rs.host, port(rs.ports.http));
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await firstOutcome(socket)).toEqual({ kind: 'quiet' });
    expect(rs.stats()).toMatchObject({ tcpConnections: 1, openTcpConnections: 1, httpRequests: 0 });
    const ended = firstOutcome(socket, 5000);
    await rs.setBehaviour({ mode: 'ok' });
    expect(await ended).toEqual({ kind: 'end' });
    expect((await httpRequest({ host: rs.host, port: port(rs.ports.http), path: '/' })).status).toBe(200);
  });

  it('leaves a request on an open keep-alive connection unanswered', async () => {
    const rs = await start();
    const socket = await connectTcp(rs.host, port(rs.ports.http));
    socket.write('GET /1 HTTP/1.1\r\nHost: x\r\n\r\n');
    const first = await firstOutcome(socket, 5000);
    expect(first.kind === 'data' && first.data.startsWith('HTTP/1.1 200 OK')).toBe(true);
    await rs.setBehaviour({ mode: 'hang' });
    socket.write('GET /2 HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await firstOutcome(socket)).toEqual({ kind: 'quiet' });
    expect(rs.stats()).toMatchObject({ httpRequests: 2, lastHttpRequest: { path: '/2' } });
    socket.destroy();
  });

  it('does no TLS handshake', async () => {
    const rs = await start({ https: 0 });
    await rs.setBehaviour({ mode: 'hang' });
    const socket = tls.connect({ host: rs.host, port: port(rs.ports.https), rejectUnauthorized: false });
    let secure = false;
    socket.on('secureConnect', () => (secure = true));
    expect(await firstOutcome(socket)).toEqual({ kind: 'quiet' });
    expect(secure).toBe(false);
    expect(rs.stats().openTcpConnections).toBe(1);
    socket.destroy();
  });

  it('ignores UDP datagrams and DNS queries (while counting them)', async () => {
    const rs = await start();
    await rs.setBehaviour({ mode: 'hang' });
    // Unlike down, no ICMP error either: a connected socket just hears nothing.
    expect(await udpSend(rs.host, port(rs.ports.udp), 'hello', { connected: true })).toEqual(quiet);
    const answer = await dig(rs.host, port(rs.ports.dns), 'www.example.com', 'A');
    expect(answer.status).toBeUndefined();
    expect(answer.output).toMatch(/timed out/);
    expect(rs.stats()).toMatchObject({ udpDatagrams: 1, dnsQueries: 1 });
  });
});

describe('real server, reset', () => {
  it('resets HTTP, HTTPS, idle TCP and DNS-over-TCP connections with RST', async () => {
    const rs = await start({ https: 0 });
    await rs.setBehaviour({ mode: 'reset' });
    expect(await errorCode(httpRequest({ host: rs.host, port: port(rs.ports.http), path: '/' }))).toBe('ECONNRESET');
    expect(await errorCode(httpsRequest({ host: rs.host, port: port(rs.ports.https), path: '/' }))).toBe('ECONNRESET');
    // The RST can beat the client's connect callback; either way the client sees a reset.
    const idle = net.connect({ host: rs.host, port: port(rs.ports.tcp) });
    expect(await firstOutcome(idle, 5000)).toEqual({ kind: 'error', code: 'ECONNRESET' });
    expect((await dig(rs.host, port(rs.ports.dns), 'www.example.com', 'A', '+tcp')).output).toMatch(/reset/i);
    expect(rs.stats().tcpConnections).toBe(4);
  });

  it('resets a keep-alive connection when its next request arrives, and ignores UDP', async () => {
    const rs = await start();
    const socket = await connectTcp(rs.host, port(rs.ports.http));
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await firstOutcome(socket, 5000)).kind).toBe('data');
    await rs.setBehaviour({ mode: 'reset' });
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await firstOutcome(socket, 5000)).toEqual({ kind: 'error', code: 'ECONNRESET' });
    expect(await udpSend(rs.host, port(rs.ports.udp), 'x')).toEqual(quiet);
    expect((await dig(rs.host, port(rs.ports.dns), 'www.example.com', 'A')).output).toMatch(/timed out/);
  });
});

describe('real server, slow, trickle, status, body', () => {
  it('slow: nothing for a while, then the normal answer (HTTP, UDP, DNS)', async () => {
    const rs = await start();
    await rs.setBehaviour({ mode: 'slow', delayMs: 800 });
    const socket = await connectTcp(rs.host, port(rs.ports.http));
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await firstOutcome(socket, 200)).toEqual({ kind: 'quiet' });
    const later = await firstOutcome(socket, 10_000);
    expect(later.kind === 'data' && later.data.endsWith('\r\n\r\nserved-by rs1\n')).toBe(true);
    socket.destroy();
    expect(await udpSend(rs.host, port(rs.ports.udp), 'x', { waitMs: 200 })).toEqual(quiet);
    expect(await udpSend(rs.host, port(rs.ports.udp), 'y', { waitMs: 10_000 })).toEqual(reply('rs1 y'));
    expect((await dig(rs.host, port(rs.ports.dns), 'www.example.com', 'A', '+time=5')).status).toBe('NOERROR');
  });

  it('trickle: the whole response arrives one byte at a time', async () => {
    const rs = await start({ name: 'tr' });
    await rs.setBehaviour({ mode: 'trickle', byteIntervalMs: 5 });
    const socket = await connectTcp(rs.host, port(rs.ports.http));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((resolve) => socket.on('end', resolve));
    const text = Buffer.concat(chunks).toString('utf8');
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toMatch(/\r\nX-Served-By: tr\r\n/);
    expect(text).toMatch(/\r\nConnection: close\r\n\r\nserved-by tr\n$/);
    // Each write is one byte; a busy client may read a few at once, but never the whole response.
    expect(chunks.length).toBeGreaterThan(text.length / 4);
    socket.destroy();
  });

  it('status: answers the given status and Location', async () => {
    const rs = await start();
    await rs.setBehaviour({ mode: 'status', status: 301, location: 'https://en.example.org/' });
    const moved = await httpRequest({ host: rs.host, port: port(rs.ports.http), path: '/' });
    expect(moved).toMatchObject({ status: 301, body: '301 from rs1\n', headers: { location: 'https://en.example.org/', 'x-served-by': 'rs1' } });
    await rs.setBehaviour({ mode: 'status', status: 503 });
    const unavailable = await httpRequest({ host: rs.host, port: port(rs.ports.http), path: '/' });
    expect(unavailable.status).toBe(503);
    expect(unavailable.headers.location).toBeUndefined();
    await rs.setBehaviour({ mode: 'status', status: 204 });
    expect(await httpRequest({ host: rs.host, port: port(rs.ports.http), path: '/' })).toMatchObject({ status: 204, body: '' });
  });

  it('body: answers 200 with the given body', async () => {
    const rs = await start();
    await rs.setBehaviour({ mode: 'body', body: 'maintenance\n' });
    expect(await httpRequest({ host: rs.host, port: port(rs.ports.http), path: '/' })).toMatchObject({ status: 200, body: 'maintenance\n' });
  });
});

describe('real server, dns-rcode', () => {
  it('answers every query with the given rcode', async () => {
    const rs = await start();
    const dns = port(rs.ports.dns);
    for (const rcode of ['SERVFAIL', 'REFUSED', 'NXDOMAIN'] as const) {
      await rs.setBehaviour({ mode: 'dns-rcode', rcode });
      expect(await dig(rs.host, dns, 'www.example.com', 'A')).toMatchObject({ status: rcode, answers: [] });
    }
    // HTTP is unaffected.
    expect((await httpRequest({ host: rs.host, port: port(rs.ports.http), path: '/' })).status).toBe(200);
  });
});

describe('real server, dropConnections', () => {
  it('fin: held connections see a clean end', async () => {
    const rs = await start();
    const idle = await connectTcp(rs.host, port(rs.ports.tcp));
    const keepAlive = await connectTcp(rs.host, port(rs.ports.http));
    keepAlive.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await firstOutcome(keepAlive, 5000)).kind).toBe('data');
    const ends = [firstOutcome(idle, 5000), firstOutcome(keepAlive, 5000)];
    rs.dropConnections('fin');
    expect(await Promise.all(ends)).toEqual([{ kind: 'end' }, { kind: 'end' }]);
    idle.destroy();
    keepAlive.destroy();
    await expect.poll(() => rs.stats().openTcpConnections).toBe(0);
  });

  it('rst: held connections see a reset', async () => {
    const rs = await start();
    const idle = await connectTcp(rs.host, port(rs.ports.tcp));
    const keepAlive = await connectTcp(rs.host, port(rs.ports.http));
    keepAlive.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await firstOutcome(keepAlive, 5000)).kind).toBe('data');
    const outcomes = [firstOutcome(idle, 5000), firstOutcome(keepAlive, 5000)];
    rs.dropConnections('rst');
    const reset = { kind: 'error', code: 'ECONNRESET' };
    expect(await Promise.all(outcomes)).toEqual([reset, reset]);
    await expect.poll(() => rs.stats().openTcpConnections).toBe(0);
  });

  it('rst works on HTTPS connections too', async () => {
    const rs = await start({ https: 0 });
    // Node's TLS client reports a reset after the handshake as a plain end, so TLS runs
    // over a JS stream here and the TCP socket underneath shows what really arrived.
    const tcp = await connectTcp(rs.host, port(rs.ports.https));
    const bridge = new Duplex({
      read: () => tcp.resume(),
      write: (chunk: Buffer, _encoding, callback) => tcp.write(chunk, callback),
      final: (callback) => tcp.end(callback),
    });
    tcp.on('data', (chunk: Buffer) => bridge.push(chunk) || tcp.pause());
    tcp.on('end', () => bridge.push(null));
    const socket = tls.connect({ socket: bridge, rejectUnauthorized: false });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    const outcome = firstOutcome(tcp, 5000);
    rs.dropConnections('rst');
    expect(await outcome).toEqual({ kind: 'error', code: 'ECONNRESET' });
    socket.destroy();
  });
});

describe('real server, IPv6', () => {
  it('serves HTTP, idle TCP, UDP and DNS on ::1', async () => {
    const rs = await start({ host: '::1', name: 'v6' });
    expect(await httpRequest({ host: '::1', port: port(rs.ports.http), path: '/v6' })).toMatchObject({ status: 200, body: 'served-by v6\n' });
    expect(rs.stats().lastHttpRequest?.host).toBe(`[::1]:${rs.ports.http}`);
    expect(await firstOutcome(await connectTcp('::1', port(rs.ports.tcp)))).toEqual({ kind: 'quiet' });
    expect(await udpSend('::1', port(rs.ports.udp), 'six', { waitMs: 2000 })).toEqual(reply('v6 six'));
    expect((await dig('::1', port(rs.ports.dns), 'www.example.com', 'AAAA')).answers).toEqual(['www.example.com. 0 IN AAAA 2001:db8::10']);
    await rs.setBehaviour({ mode: 'down' });
    expect(await errorCode(connectTcp('::1', port(rs.ports.http)))).toBe('ECONNREFUSED');
    expect(await udpSend('::1', port(rs.ports.udp), 'ping', { connected: true, waitMs: 2000 })).toEqual(refused);
  });
});

describe('real server, extra hosts', () => {
  it('listens on every host with the same ports, and answers UDP from the address asked', async () => {
    const rs = await start({ host: '127.0.0.1', extraHosts: ['127.0.0.2', '::1'] });
    for (const host of ['127.0.0.1', '127.0.0.2', '::1']) {
      expect((await httpRequest({ host, port: port(rs.ports.http), path: '/' })).body).toBe('served-by rs1\n');
      // A connected UDP socket drops datagrams from any other source address.
      expect(await udpSend(host, port(rs.ports.udp), 'hi', { connected: true, waitMs: 2000 })).toEqual(reply('rs1 hi'));
      expect((await dig(host, port(rs.ports.dns), 'www.example.com', 'A')).status).toBe('NOERROR');
      expect((await dig(host, port(rs.ports.dns), 'www.example.com', 'A', '+tcp')).status).toBe('NOERROR');
    }
    await rs.setBehaviour({ mode: 'down' });
    for (const host of ['127.0.0.1', '127.0.0.2', '::1']) {
      expect(await errorCode(connectTcp(host, port(rs.ports.tcp)))).toBe('ECONNREFUSED');
    }
    await rs.setBehaviour({ mode: 'ok' });
    expect(await udpSend('127.0.0.2', port(rs.ports.udp), 'back', { connected: true, waitMs: 2000 })).toEqual(reply('rs1 back'));
  });
});

describe('real server, options and lifecycle', () => {
  it('rejects bad options and bad behaviours with clear errors', async () => {
    await expect(startRealServer({ name: 'x', host: 'localhost', http: 0 })).rejects.toThrow(/host "localhost" is not an IP address/);
    await expect(startRealServer({ name: 'x', host: '127.0.0.1', http: 70000 })).rejects.toThrow(/http: 70000 is not a port number/);
    await expect(startRealServer({ name: 'x', host: '127.0.0.1', extraHosts: ['vip'], http: 0 })).rejects.toThrow(/host "vip" is not an IP address/);
    await expect(startRealServer({ name: 'x', host: '127.0.0.1', dns: 0, dnsRecords: { a: { a: ['::1'] } } })).rejects.toThrow(
      /dnsRecords a: ::1 is not an IPv4 address/,
    );
    expect(() => parseBehaviour({ mode: 'slow' })).toThrow('behaviour slow: "delayMs" must be a non-negative number');
    expect(() => parseBehaviour({ mode: 'dns-rcode', rcode: 'FORMERR' })).toThrow(/"rcode" must be one of NXDOMAIN, SERVFAIL, REFUSED/);
    expect(() => parseBehaviour({ mode: 'sideways' })).toThrow(/"mode" must be one of/);
    expect(parseBehaviour({ mode: 'status', status: 302, location: '/x' })).toEqual({ mode: 'status', status: 302, location: '/x' });
    const rs = await start();
    await expect(rs.setBehaviour({ mode: 'status', status: 42 })).rejects.toThrow(/"status" must be an integer from 100 to 999/);
    expect((await httpRequest({ host: rs.host, port: port(rs.ports.http), path: '/' })).status).toBe(200);
  });

  it('fails to start on a port in use, leaving nothing behind', async () => {
    const rs = await start();
    await expect(startRealServer({ name: 'x', host: '127.0.0.1', udp: 0, http: port(rs.ports.http) })).rejects.toThrow(/EADDRINUSE/);
  });

  it('stop closes listeners, connections and pending timers, leaving no handle', async () => {
    const network = (): string[] =>
      process.getActiveResourcesInfo().filter((r) => ['TCPServerWrap', 'TCPSocketWrap', 'UDPWrap', 'Timeout'].includes(r)).sort();
    const baseline = network();
    const rs = await startRealServer({ name: 'x', host: '127.0.0.1', http: 0, https: 0, tcp: 0, udp: 0, dns: 0 });
    const idle = await connectTcp(rs.host, port(rs.ports.tcp));
    await rs.setBehaviour({ mode: 'slow', delayMs: 60_000 });
    const pending = connectTcp(rs.host, port(rs.ports.http));
    const slow = await pending;
    slow.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await expect.poll(() => rs.stats().httpRequests).toBe(1);
    expect(network().length).toBeGreaterThan(baseline.length);
    const closed = [firstOutcome(idle, 5000), firstOutcome(slow, 5000)];
    await rs.stop();
    expect((await Promise.all(closed)).map((o) => o.kind)).toEqual(['end', 'end']);
    idle.destroy();
    slow.destroy();
    await expect.poll(network).toEqual(baseline);
    await expect(rs.setBehaviour({ mode: 'ok' })).rejects.toThrow(/stopped/);
  });
});

// ---------------------------------------------------------------------------
// The standalone program

const mainScript = path.join(repoRoot, 'dist/test/support/real-server-main.js');
const mainSources = ['real-server.ts', 'real-server-main.ts', 'dns-wire.ts'].map((f) => path.join(repoRoot, 'test/support', f));

function builtIsFresh(): boolean {
  if (!existsSync(mainScript)) return false;
  const built = statSync(mainScript).mtimeMs;
  return mainSources.every((source) => statSync(source).mtimeMs <= built);
}

interface Running {
  child: ChildProcess;
  ports: Record<string, number>;
  exit: Promise<number | null>;
}

async function spawnMain(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [mainScript, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout! });
  const first = await Promise.race([
    new Promise<string>((resolve) => lines.once('line', resolve)),
    exit.then((code) => {
      throw new Error(`real-server-main exited ${code}: ${stderr}`);
    }),
  ]);
  const ready = JSON.parse(first) as { ready: boolean; ports: Record<string, number> };
  expect(ready.ready).toBe(true);
  return { child, ports: ready.ports, exit };
}

const children: ChildProcess[] = [];
let tmp = '';

describe('real-server-main (standalone program)', () => {
  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'real-server-test-'));
    // npm test builds first; when run alone, build so the program matches the sources.
    if (!builtIsFresh()) {
      await execFileAsync('npx', ['tsc', '-p', '.'], { cwd: repoRoot }).catch(() => undefined);
    }
    if (!builtIsFresh()) throw new Error(`${mainScript} is missing or older than its sources; run npx tsc -p . and fix its errors`);
  });

  afterAll(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  });

  it('starts, reports its ports, and is driven over the control socket', async () => {
    const control = path.join(tmp, 'rs1.sock');
    const args = ['--name', 'rs1', '--host', '127.0.0.1', '--http', '0', '--tcp', '0', '--udp', '0', '--dns', '0'];
    const rs = await spawnMain([...args, '--dns-record', 'www.example.com=192.0.2.10,2001:db8::10', '--control', control]);
    expect(Object.keys(rs.ports).sort()).toEqual(['dns', 'http', 'tcp', 'udp']);
    const http = port(rs.ports['http']);
    expect(await httpRequest({ host: '127.0.0.1', port: http, path: '/' })).toMatchObject({ status: 200, body: 'served-by rs1\n' });
    expect((await dig('127.0.0.1', port(rs.ports['dns']), 'www.example.com', 'AAAA')).answers).toEqual([
      'www.example.com. 0 IN AAAA 2001:db8::10',
    ]);

    expect(await controlRealServer(control, { op: 'behaviour', behaviour: { mode: 'down' } })).toMatchObject({ ok: true });
    expect(await errorCode(httpRequest({ host: '127.0.0.1', port: http, path: '/' }))).toBe('ECONNREFUSED');
    await controlRealServer(control, { op: 'behaviour', behaviour: { mode: 'status', status: 503 } });
    expect((await httpRequest({ host: '127.0.0.1', port: http, path: '/x' })).status).toBe(503);

    const idle = await connectTcp('127.0.0.1', port(rs.ports['tcp']));
    const stats = await controlRealServer(control, { op: 'stats' });
    expect(stats.stats).toMatchObject({ httpRequests: 2, openTcpConnections: 1, dnsQueries: 1, lastHttpRequest: { path: '/x' } });
    const reset = firstOutcome(idle, 5000);
    await controlRealServer(control, { op: 'drop', how: 'rst' });
    expect(await reset).toEqual({ kind: 'error', code: 'ECONNRESET' });

    await expect(controlRealServer(control, { op: 'behaviour', behaviour: { mode: 'slow' } as never })).rejects.toThrow(
      /"delayMs" must be a non-negative number/,
    );
    const cli = await execFileAsync(process.execPath, [mainScript, '--control', control, '--request', '{"op":"stats"}']);
    expect(JSON.parse(cli.stdout)).toMatchObject({ ok: true, stats: { httpRequests: 2 } });

    expect(await controlRealServer(control, { op: 'stop' })).toEqual({ ok: true });
    expect(await rs.exit).toBe(0);
    expect(existsSync(control)).toBe(false);
  });

  it('stops cleanly on SIGTERM, even with connections held open', async () => {
    const rs = await spawnMain(['--name', 'rs2', '--host', '::1', '--extra-host', '127.0.0.2', '--http', '0', '--tcp', '0', '--udp', '0']);
    expect((await httpRequest({ host: '127.0.0.2', port: port(rs.ports['http']), path: '/' })).body).toBe('served-by rs2\n');
    const idle = await connectTcp('::1', port(rs.ports['tcp']));
    const closed = firstOutcome(idle, 5000);
    rs.child.kill('SIGTERM');
    expect(await rs.exit).toBe(0);
    expect(await closed).toEqual({ kind: 'end' });
    idle.destroy();
  });

  it('rejects bad arguments with a usage message and exit status 2', async () => {
    const failure = await execFileAsync(process.execPath, [mainScript, '--name', 'x', '--host', '127.0.0.1', '--http', 'eighty']).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure).toMatchObject({ code: 2, stderr: expect.stringMatching(/--http: "eighty" is not a port number\nusage:/) });
  });
});
