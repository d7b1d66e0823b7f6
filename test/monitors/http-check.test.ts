/**
 * ProxyFetch's HTTP client (fetchUrl) against real servers on loopback: each
 * server is scripted per test (answer, trickle, chunk, cut, reset, hang,
 * babble), and every test asserts the verdict and its exact reason.
 */
import { getEventListeners } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { DeadlineError } from '../../src/monitors/deadline.js';
import { useNativeTcp } from '../../src/monitors/http-check.js';
import { nativeTcpAvailable } from '../../src/monitors/native-tcp.js';
import { BODY_CAP_BYTES, fetchUrl, type FetchOptions } from '../../src/monitors/proxyfetch.js';
import { createSelfSignedCertificate } from '../support/real-server.js';
import { loopbackAddress, target } from './support/helpers.js';

const REQUEST_HEAD = 'User-Agent: pybal ProxyFetch\r\nAccept: */*\r\nConnection: close\r\n\r\n';

interface Accepted {
  /** The request head as received (up to the blank line). */
  request?: string;
  /** TLS: the SNI name the client sent (false without one). */
  servername?: string | false;
  /** Resolves when the client's side is gone (FIN or RST seen, socket closed). */
  readonly closed: Promise<void>;
}

interface ScriptedServer {
  readonly ip: string;
  readonly port: number;
  readonly accepted: Accepted[];
  close(): Promise<void>;
}

type Script = (socket: net.Socket, request: string) => void | Promise<void>;

const servers: ScriptedServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A TCP (or TLS) server on `ip` that runs `script` once a connection's request head has arrived. */
async function scriptedServer(ip: string, script: Script, tlsOptions?: tls.TlsOptions): Promise<ScriptedServer> {
  const accepted: Accepted[] = [];
  const sockets = new Set<net.Socket>();
  const onSocket = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.setNoDelay(true); // so that a trickle really goes out byte by byte
    socket.on('error', () => undefined);
    const record: Accepted = { closed: new Promise((resolve) => socket.once('close', () => resolve())) };
    if (socket instanceof tls.TLSSocket) record.servername = socket.servername ?? false;
    accepted.push(record);
    socket.once('close', () => sockets.delete(socket));
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      socket.resume();
      record.request = head.slice(0, end + 4);
      void script(socket, record.request);
    };
    socket.on('data', onData);
  };
  const server = tlsOptions ? tls.createServer(tlsOptions, onSocket) : net.createServer(onSocket);
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, ip, resolve));
  const scripted: ScriptedServer = {
    ip,
    port: (server.address() as net.AddressInfo).port,
    accepted,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  servers.push(scripted);
  return scripted;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes `text` one byte at a time, `delayMs` apart; then ends (FIN) unless told not to. */
async function trickle(socket: net.Socket, text: string, delayMs: number, end = true): Promise<void> {
  for (const byte of Buffer.from(text, 'latin1')) {
    if (socket.destroyed) return;
    socket.write(Buffer.of(byte));
    await sleep(delayMs);
  }
  if (end) socket.end();
}

/** Sends `text`, then a reset (RST) once it has gone out. */
function sendThenReset(text: string): Script {
  return (socket) => {
    socket.write(text, () => setTimeout(() => socket.resetAndDestroy(), 20));
  };
}

const options = (extra: Partial<FetchOptions> = {}): FetchOptions => ({
  httpStatus: 200,
  expectBody: undefined,
  expectBodyRegex: undefined,
  verifyTls: false,
  ca: undefined,
  ...extra,
});

/** One fetch with a signal that aborts as the periodic wrapper's deadline does; checks that no listener is left behind. */
async function fetchFrom(
  server: { ip: string; port: number },
  url = 'http://www.example.org/health',
  extra: Partial<FetchOptions> = {},
  deadlineMs = 5_000,
): Promise<{ ok: boolean; reason: string }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DeadlineError(deadlineMs)), deadlineMs);
  try {
    const verdict = await fetchUrl(new URL(url), target(server.ip, server.port), options(extra), controller.signal);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    return verdict;
  } finally {
    clearTimeout(timer);
  }
}

const respond = (text: string): Script => (socket) => void socket.end(text);
const ok200 = (body = 'ok\n'): string => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;

/**
 * Plain http to a server's own address goes over the tcpcheck addon's
 * connections (native-tcp.ts) where it loads, else over a net.Socket: every
 * TCP test runs over both, with the same verdicts and reasons.
 */
const TRANSPORTS = ['the tcpcheck addon', 'net.Socket'] as const;
function overTransport(transport: (typeof TRANSPORTS)[number]): void {
  beforeAll(() => useNativeTcp(transport === 'the tcpcheck addon'));
  afterAll(() => useNativeTcp(true));
}

describe('fetchUrl over TCP: the transport', () => {
  const ip = loopbackAddress(43);
  afterEach(() => {
    vi.restoreAllMocks();
    useNativeTcp(true);
  });

  it('the addon is built and used for plain http: no net.Socket is made; with it off, one is', async () => {
    expect(nativeTcpAvailable()).toBe(true);
    const connect = vi.spyOn(net, 'connect');
    const server = await scriptedServer(ip, respond(ok200()));
    expect(await fetchFrom(server)).toEqual({ ok: true, reason: 'HTTP status 200' });
    expect(connect).not.toHaveBeenCalled();
    useNativeTcp(false);
    expect(await fetchFrom(server)).toEqual({ ok: true, reason: 'HTTP status 200' });
    expect(connect).toHaveBeenCalledTimes(1);
    expect(server.accepted).toHaveLength(2);
  });

  it('IPv6: the same request and verdict over ::1, and a refusal worded as Node words it', async () => {
    for (const native of [true, false]) {
      useNativeTcp(native);
      const server = await scriptedServer('::1', respond(ok200()));
      expect(await fetchFrom(server, 'http://[2001:db8::1]/')).toEqual({ ok: true, reason: 'HTTP status 200' });
      expect(server.accepted[0]?.request).toBe(`GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n${REQUEST_HEAD}`);
      await server.close();
      servers.pop();
      expect(await fetchFrom(server)).toEqual({ ok: false, reason: `connect ECONNREFUSED ::1:${server.port}` });
    }
  });

  it('many checks at once, some answered, some refused, some cut off by their deadline: each gets its own verdict', async () => {
    const answering = await scriptedServer(ip, (socket) => trickle(socket, ok200(), 1));
    const hanging = await scriptedServer(ip, () => undefined);
    const refused = await scriptedServer(ip, respond(ok200()));
    await refused.close();
    servers.pop();
    const kinds = [answering, hanging, refused];
    const verdicts = await Promise.all(Array.from({ length: 300 }, (_, i) => fetchFrom(kinds[i % 3]!, undefined, {}, 1_500)));
    verdicts.forEach((verdict, i) => {
      if (i % 3 === 0) expect(verdict).toEqual({ ok: true, reason: 'HTTP status 200' });
      else if (i % 3 === 1) expect(verdict).toEqual({ ok: false, reason: 'timed out after 1.5 s' });
      else expect(verdict).toEqual({ ok: false, reason: `connect ECONNREFUSED ${ip}:${refused.port}` });
    });
    // Every connection the deadline cut off was closed.
    await Promise.all(hanging.accepted.map((a) => a.closed));
    expect(hanging.accepted).toHaveLength(100);
  });
});

describe.each(TRANSPORTS)('fetchUrl over TCP (%s): well-formed answers', (transport) => {
  overTransport(transport);
  const ip = loopbackAddress(40);

  it('sends one GET with Host from the URL to the server address and port, and passes a 200', async () => {
    const server = await scriptedServer(ip, respond(ok200()));
    expect(await fetchFrom(server, 'http://cp1001.example.org:8080/wiki/Main_Page?x=1&y=%20')).toEqual({ ok: true, reason: 'HTTP status 200' });
    expect(server.accepted).toHaveLength(1);
    expect(server.accepted[0]?.request).toBe(`GET /wiki/Main_Page?x=1&y=%20 HTTP/1.1\r\nHost: cp1001.example.org:8080\r\n${REQUEST_HEAD}`);
    // An IPv6 literal keeps its brackets in Host.
    await fetchFrom(server, 'http://[2001:db8::1]/');
    expect(server.accepted[1]?.request).toBe(`GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n${REQUEST_HEAD}`);
  });

  it('a response trickled byte by byte (every boundary: status line, headers, CRLFs, chunk-size lines) is read whole', async () => {
    const body = "I'm alive!\nversion 42\n";
    const chunked = `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\n${body.slice(0, 5)}\r\n${(body.length - 5).toString(16)}\r\n${body.slice(5)}\r\n0\r\nX-Trailer: yes\r\n\r\n`;
    const server = await scriptedServer(ip, (socket) => trickle(socket, chunked, 2, false));
    expect(await fetchFrom(server, undefined, { expectBody: "I'm alive!", expectBodyRegex: /^version \d+$/m })).toEqual({ ok: true, reason: 'HTTP status 200' });
    // Decided at the last chunk, without waiting for the server to close.
    expect(server.accepted).toHaveLength(1);
  });

  it('a chunked body is checked as a whole', async () => {
    const server = await scriptedServer(ip, respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nI'm \r\n6\r\nalive!\r\n0\r\n\r\n"));
    expect(await fetchFrom(server, undefined, { expectBody: "I'm alive!" })).toEqual({ ok: true, reason: 'HTTP status 200' });
    expect(await fetchFrom(server, undefined, { expectBody: 'dead' })).toEqual({ ok: false, reason: 'HTTP status 200, but body does not contain "dead"' });
  });

  it('a close-delimited body is read to its end', async () => {
    const server = await scriptedServer(ip, (socket) => trickle(socket, "HTTP/1.0 200 OK\r\n\r\nI'm alive!", 1));
    expect(await fetchFrom(server, undefined, { expectBodyRegex: /alive!$/ })).toEqual({ ok: true, reason: 'HTTP status 200' });
  });

  it('skips 1xx interim responses: 100 Continue and 103 then 200', async () => {
    const server = await scriptedServer(ip, respond(`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n${ok200()}`));
    expect(await fetchFrom(server)).toEqual({ ok: true, reason: 'HTTP status 200' });
  });

  it('redirects: a 301 passes with http_status 301 and fails otherwise; a 200 fails when a redirect is expected; not followed', async () => {
    const moved = 'HTTP/1.1 301 Moved Permanently\r\nLocation: http://elsewhere.example.org/\r\nContent-Length: 0\r\n\r\n';
    const server = await scriptedServer(ip, respond(moved));
    expect(await fetchFrom(server, undefined, { httpStatus: 301 })).toEqual({ ok: true, reason: 'HTTP status 301' });
    expect(await fetchFrom(server)).toEqual({ ok: false, reason: 'HTTP status 301 Moved Permanently, expected a 2xx status' });
    expect(server.accepted).toHaveLength(2); // nothing followed
    const plain = await scriptedServer(ip, respond(ok200()));
    expect(await fetchFrom(plain, undefined, { httpStatus: 302 })).toEqual({ ok: false, reason: 'HTTP status 200 OK, expected a 301, 302 or 303 redirect' });
  });

  it('a failing status is decided at once, without waiting for the body', async () => {
    const server = await scriptedServer(ip, (socket) => void socket.write('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 1000\r\n\r\npart'));
    expect(await fetchFrom(server)).toEqual({ ok: false, reason: 'HTTP status 503 Service Unavailable, expected a 2xx status' });
    await server.accepted[0]?.closed;
  });

  it('a body over the cap is judged on its first BODY_CAP_BYTES, without waiting for the rest', async () => {
    const head = `HTTP/1.1 200 OK\r\nContent-Length: ${2 * BODY_CAP_BYTES}\r\n\r\n`;
    const body = Buffer.alloc(BODY_CAP_BYTES + 100, 'x');
    body.write("I'm alive!", 10);
    body.write('past the cap', BODY_CAP_BYTES + 10);
    // The server sends a little more than the cap and then holds the connection open.
    const server = await scriptedServer(ip, (socket) => void socket.write(Buffer.concat([Buffer.from(head), body])));
    expect(await fetchFrom(server, undefined, { expectBody: "I'm alive!" })).toEqual({ ok: true, reason: 'HTTP status 200' });
    expect(await fetchFrom(server, undefined, { expectBody: 'past the cap' })).toEqual({ ok: false, reason: 'HTTP status 200, but body does not contain "past the cap"' });
    // No body rule: still evaluated at the cap.
    expect(await fetchFrom(server)).toEqual({ ok: true, reason: 'HTTP status 200' });
  });
});

describe.each(TRANSPORTS)('fetchUrl over TCP (%s): servers that fail', (transport) => {
  overTransport(transport);
  const ip = loopbackAddress(41);

  it('refused: the errno code is in the reason', async () => {
    const server = await scriptedServer(ip, respond(ok200()));
    await server.close();
    servers.pop();
    expect(await fetchFrom(server)).toEqual({ ok: false, reason: `connect ECONNREFUSED ${ip}:${server.port}` });
  });

  it('a body shorter than its Content-Length', async () => {
    const server = await scriptedServer(ip, respond('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort'));
    expect(await fetchFrom(server)).toEqual({ ok: false, reason: 'connection closed before the whole body arrived' });
    // Also when no body rule would need the body.
    expect(await fetchFrom(server, undefined, { expectBody: 'short' })).toEqual({ ok: false, reason: 'connection closed before the whole body arrived' });
  });

  it('a chunked body cut short, and one with a bad chunk size', async () => {
    const cut = await scriptedServer(ip, (socket) => trickle(socket, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nab', 1));
    expect(await fetchFrom(cut)).toEqual({ ok: false, reason: 'connection closed before the whole body arrived' });
    const bad = await scriptedServer(ip, respond('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n-3\r\nabc\r\n0\r\n\r\n'));
    expect(await fetchFrom(bad)).toEqual({ ok: false, reason: 'invalid HTTP response: invalid chunk-size line "-3"' });
  });

  it('closed before any response', async () => {
    const server = await scriptedServer(ip, (socket) => void socket.end());
    expect(await fetchFrom(server)).toEqual({ ok: false, reason: 'connection closed before the response headers arrived' });
  });

  it('reset (RST) in the middle of the headers and in the middle of the body', async () => {
    const midHeaders = await scriptedServer(ip, sendThenReset('HTTP/1.1 200 OK\r\nContent-Le'));
    expect(await fetchFrom(midHeaders)).toEqual({ ok: false, reason: 'read ECONNRESET' });
    const midBody = await scriptedServer(ip, sendThenReset('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart of it'));
    expect(await fetchFrom(midBody)).toEqual({ ok: false, reason: 'read ECONNRESET' });
  });

  it('garbage instead of a status line', async () => {
    const server = await scriptedServer(ip, respond('SSH-2.0-OpenSSH_9.2\r\n'));
    expect(await fetchFrom(server)).toEqual({ ok: false, reason: 'invalid HTTP response: expected a status line, got "SSH-2.0-OpenSSH_9.2"' });
  });

  it('huge headers: refused past 64 KiB, and the connection is closed', async () => {
    const server = await scriptedServer(ip, (socket) => {
      socket.write('HTTP/1.1 200 OK\r\n');
      // Never-ending headers; the client must give up on its own.
      const line = `X-Filler: ${'a'.repeat(1000)}\r\n`;
      const pump = (): void => {
        while (!socket.destroyed && socket.write(line));
        if (!socket.destroyed) socket.once('drain', pump);
      };
      pump();
    });
    expect(await fetchFrom(server)).toEqual({ ok: false, reason: 'invalid HTTP response: header section larger than 64 KiB' });
    await server.accepted[0]?.closed;
  });

  it('hangs after accepting: the deadline ends the check and the server sees the connection close', async () => {
    const server = await scriptedServer(ip, () => undefined);
    const started = Date.now();
    expect(await fetchFrom(server, undefined, {}, 200)).toEqual({ ok: false, reason: 'timed out after 0.2 s' });
    expect(Date.now() - started).toBeLessThan(2_000);
    await server.accepted[0]?.closed;
  });

  it('trickles too slowly: the deadline ends it mid-response', async () => {
    const server = await scriptedServer(ip, (socket) => trickle(socket, ok200(), 50));
    expect(await fetchFrom(server, undefined, {}, 300)).toEqual({ ok: false, reason: 'timed out after 0.3 s' });
    await server.accepted[0]?.closed;
  });

  it('aborted before it starts: no connection is made', async () => {
    const server = await scriptedServer(ip, respond(ok200()));
    const controller = new AbortController();
    controller.abort(new DeadlineError(1_000));
    expect(await fetchUrl(new URL('http://www.example.org/'), target(ip, server.port), options(), controller.signal)).toEqual({ ok: false, reason: 'timed out after 1 s' });
    await sleep(50);
    expect(server.accepted).toHaveLength(0);
  });

  it('a bad target port is a failed check, not a rejection', async () => {
    expect(await fetchFrom({ ip, port: 70_000 })).toMatchObject({ ok: false, reason: expect.stringContaining('ERR_SOCKET_BAD_PORT') });
  });
});

describe('fetchUrl over TLS', () => {
  const ip = loopbackAddress(42);
  let dir: string;
  let caFile: string;
  let key: string;
  let cert: string;

  beforeAll(async () => {
    ({ key, cert } = await createSelfSignedCertificate(['en.wikipedia.org']));
    dir = await mkdtemp(path.join(os.tmpdir(), 'pybal-http-check-'));
    caFile = path.join(dir, 'ca.pem');
    await writeFile(caFile, cert);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const tlsServer = (script: Script = respond(ok200())): Promise<ScriptedServer> => scriptedServer(ip, script, { key, cert });

  it('verify-tls off (the default): a self-signed certificate passes; SNI and Host carry the URL host', async () => {
    const server = await tlsServer();
    expect(await fetchFrom(server, 'https://en.wikipedia.org/wiki/')).toEqual({ ok: true, reason: 'HTTP status 200' });
    expect(server.accepted[0]).toMatchObject({ servername: 'en.wikipedia.org', request: `GET /wiki/ HTTP/1.1\r\nHost: en.wikipedia.org\r\n${REQUEST_HEAD}` });
    // Nor is the name checked.
    expect(await fetchFrom(server, 'https://de.wikipedia.org/')).toEqual({ ok: true, reason: 'HTTP status 200' });
    expect(server.accepted[1]?.servername).toBe('de.wikipedia.org');
  });

  it('no SNI for an IP-literal URL', async () => {
    const server = await tlsServer();
    expect(await fetchFrom(server, `https://${ip}/`)).toEqual({ ok: true, reason: 'HTTP status 200' });
    expect(server.accepted[0]?.servername).toBe(false);
    await fetchFrom(server, 'https://[::1]:8443/');
    expect(server.accepted[1]).toMatchObject({ servername: false, request: `GET / HTTP/1.1\r\nHost: [::1]:8443\r\n${REQUEST_HEAD}` });
  });

  it('verify-tls on: passes with the CA; fails an untrusted certificate, and one for another name', async () => {
    const server = await tlsServer();
    const ca = await readFile(caFile);
    expect(await fetchFrom(server, 'https://en.wikipedia.org/', { verifyTls: true, ca })).toEqual({ ok: true, reason: 'HTTP status 200' });
    expect(await fetchFrom(server, 'https://en.wikipedia.org/', { verifyTls: true })).toEqual({
      ok: false,
      reason: 'DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate',
    });
    expect(await fetchFrom(server, 'https://de.wikipedia.org/', { verifyTls: true, ca })).toEqual({
      ok: false,
      reason: "ERR_TLS_CERT_ALTNAME_INVALID: Hostname/IP does not match certificate's altnames: Host: de.wikipedia.org. is not in the cert's altnames: DNS:en.wikipedia.org",
    });
    // Refused during the handshake: no request was sent.
    expect(server.accepted.filter((a) => a.request !== undefined)).toHaveLength(1);
  });

  it('hangs after the handshake: the deadline ends it and the server sees the close', async () => {
    const server = await tlsServer(() => undefined);
    expect(await fetchFrom(server, 'https://en.wikipedia.org/', {}, 300)).toEqual({ ok: false, reason: 'timed out after 0.3 s' });
    await server.accepted[0]?.closed;
  });

  it('a response trickled byte by byte through TLS records', async () => {
    const server = await tlsServer((socket) => trickle(socket, ok200("I'm alive!"), 1));
    expect(await fetchFrom(server, 'https://en.wikipedia.org/', { expectBody: "I'm alive!" })).toEqual({ ok: true, reason: 'HTTP status 200' });
  });

  it('a plain-HTTP server on the https port fails the handshake with a reason', async () => {
    // It answers the ClientHello as a bad request.
    const plain = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'));
    });
    await new Promise<void>((resolve) => plain.listen(0, ip, resolve));
    try {
      const verdict = await fetchFrom({ ip, port: (plain.address() as net.AddressInfo).port }, 'https://en.wikipedia.org/');
      expect(verdict).toEqual({ ok: false, reason: expect.stringMatching(/^ERR_SSL_WRONG_VERSION_NUMBER: .*wrong version number/) });
    } finally {
      await new Promise((resolve) => plain.close(resolve));
    }
  });
});
