/**
 * A small, controllable "real server" for tests: the thing pybal health-checks
 * and load-balances. It serves HTTP, HTTPS, an idle TCP port, UDP echo and DNS,
 * and can be told to misbehave (refuse, hang, reset, be slow, trickle bytes,
 * answer wrongly). Tests use it in-process; the lab runs real-server-main.ts in
 * each real server's namespace and drives it over a Unix socket.
 */
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { answerDnsQuery, dnsUdpMaxBytes, normalizeDnsName, type DnsRcodeName, type DnsZone } from './dns-wire.js';

export type Behaviour =
  | { mode: 'ok' } // normal answers
  | { mode: 'down' } // every listener closed: TCP refused, UDP gets ICMP port-unreachable
  | { mode: 'hang' } // TCP: accept and never answer; UDP/DNS: ignore datagrams
  | { mode: 'reset' } // TCP: accept then reset at once (RST, not FIN); DNS over TCP: reset on the query; UDP: ignore
  | { mode: 'slow'; delayMs: number } // answer correctly after delayMs
  | { mode: 'trickle'; byteIntervalMs: number } // HTTP: send the response one byte every byteIntervalMs
  | { mode: 'status'; status: number; location?: string } // HTTP answers this status (and Location)
  | { mode: 'body'; body: string } // HTTP 200 with this body instead of the normal one
  | { mode: 'dns-rcode'; rcode: 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED' }; // DNS answers with this rcode

export interface RealServerOptions {
  name: string; // identity: HTTP body `served-by <name>\n`, header `X-Served-By: <name>`; UDP echo prefix
  host: string; // bind address: IPv4 or IPv6 (e.g. '127.0.0.2', '::1', '198.51.100.6', '::')
  /**
   * Further addresses to listen on with the same ports, e.g. the VIP on `lo` of a
   * direct-routing real server: UDP answers must leave from the address they came to,
   * which a socket bound to the wildcard address does not guarantee.
   */
  extraHosts?: string[];
  http?: number; // HTTP port (0 = ephemeral); absent = no HTTP listener
  https?: number; // HTTPS port with a self-signed cert for `tlsNames`
  tlsNames?: string[]; // DNS names and/or IP addresses in the certificate; default [name]
  tcp?: number; // idle TCP: accepts, holds connections open, never sends
  udp?: number; // UDP echo: replies `<name> <datagram>`
  dns?: number; // DNS over UDP and TCP on the same port: A/AAAA from `dnsRecords`, NXDOMAIN otherwise
  dnsRecords?: Record<string, { a?: string[]; aaaa?: string[] }>;
}

export interface RealServerPorts {
  http?: number;
  https?: number;
  tcp?: number;
  udp?: number;
  dns?: number;
}

export interface LastHttpRequest {
  method: string;
  path: string;
  host?: string;
  sni?: string;
}

export interface RealServerStats {
  /** HTTP and HTTPS requests received (whatever the answer). */
  httpRequests: number;
  /** TCP connections accepted on any listener (HTTP, HTTPS, idle TCP, DNS over TCP). */
  tcpConnections: number;
  /** Of those, the ones not yet closed. */
  openTcpConnections: number;
  /** UDP echo datagrams received (answered or not). */
  udpDatagrams: number;
  /** DNS messages received over UDP and TCP (answered or not). */
  dnsQueries: number;
  lastHttpRequest?: LastHttpRequest;
}

export interface RealServer {
  readonly name: string;
  readonly host: string;
  readonly ports: RealServerPorts; // actually bound
  setBehaviour(b: Behaviour): Promise<void>; // applies to all listeners; 'down' closes them, 'ok' reopens on the same ports
  stats(): RealServerStats;
  dropConnections(how: 'fin' | 'rst'): void; // closes held idle TCP (and HTTP keep-alive) connections cleanly or with RST
  stop(): Promise<void>; // closes everything, leaves no handle behind
}

export const behaviourModes = ['ok', 'down', 'hang', 'reset', 'slow', 'trickle', 'status', 'body', 'dns-rcode'] as const;
export const dnsRcodeBehaviours = ['NXDOMAIN', 'SERVFAIL', 'REFUSED'] as const;

/** Checks a behaviour that came from outside (JSON on the control socket); throws a clear Error. */
export function parseBehaviour(value: unknown): Behaviour {
  if (typeof value !== 'object' || value === null) throw new Error('behaviour must be an object with a "mode"');
  const b = value as Record<string, unknown>;
  const nonNegative = (key: string): number => {
    const n = b[key];
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) {
      throw new Error(`behaviour ${String(b['mode'])}: "${key}" must be a non-negative number`);
    }
    return n;
  };
  switch (b['mode']) {
    case 'ok':
    case 'down':
    case 'hang':
    case 'reset':
      return { mode: b['mode'] };
    case 'slow':
      return { mode: 'slow', delayMs: nonNegative('delayMs') };
    case 'trickle':
      return { mode: 'trickle', byteIntervalMs: nonNegative('byteIntervalMs') };
    case 'status': {
      const status = b['status'];
      if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 999) {
        throw new Error('behaviour status: "status" must be an integer from 100 to 999');
      }
      const location = b['location'];
      if (location !== undefined && typeof location !== 'string') throw new Error('behaviour status: "location" must be a string');
      return location === undefined ? { mode: 'status', status } : { mode: 'status', status, location };
    }
    case 'body': {
      const body = b['body'];
      if (typeof body !== 'string') throw new Error('behaviour body: "body" must be a string');
      return { mode: 'body', body };
    }
    case 'dns-rcode': {
      const rcode = b['rcode'];
      const known: readonly unknown[] = dnsRcodeBehaviours;
      if (!known.includes(rcode)) throw new Error(`behaviour dns-rcode: "rcode" must be one of ${dnsRcodeBehaviours.join(', ')}`);
      return { mode: 'dns-rcode', rcode: rcode as DnsRcodeName & (typeof dnsRcodeBehaviours)[number] };
    }
    default:
      throw new Error(`behaviour "mode" must be one of ${behaviourModes.join(', ')}`);
  }
}

// ---------------------------------------------------------------------------
// TLS certificate

const execFileAsync = promisify(execFile);

/** A throwaway self-signed certificate for `names` (DNS names or IPs), made with the openssl CLI. */
export async function createSelfSignedCertificate(names: readonly string[]): Promise<{ key: string; cert: string }> {
  if (names.length === 0) throw new Error('a certificate needs at least one name');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'real-server-tls-'));
  try {
    const keyFile = path.join(dir, 'key.pem');
    const certFile = path.join(dir, 'cert.pem');
    const san = names.map((n) => (net.isIP(n) === 0 ? `DNS:${n}` : `IP:${n}`)).join(',');
    const commonName = (names[0] ?? '').replace(/[/\\]/g, '_');
    await execFileAsync('openssl', [
      'req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-keyout', keyFile, '-out', certFile, '-days', '7', '-subj', `/CN=${commonName}`, '-addext', `subjectAltName=${san}`,
    ]);
    return { key: await readFile(keyFile, 'utf8'), cert: await readFile(certFile, 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// The server

type TcpKind = 'http' | 'https' | 'tcp' | 'dns';
type UdpKind = 'udp' | 'dns';

interface Connection {
  readonly raw: net.Socket;
  /** What the application talks to: the TLS socket for HTTPS, else the raw socket. */
  outer: net.Socket;
  /** Accepted (or got a request) while hanging: never answered, closed when the hang ends. */
  hung: boolean;
}

type Kind = TcpKind | UdpKind;

interface TcpListener {
  readonly kind: TcpKind;
  readonly host: string;
  server?: net.Server;
}

interface UdpListener {
  readonly kind: UdpKind;
  readonly host: string;
  socket?: dgram.Socket;
}

/** Whether the listeners of a kind use TCP, UDP or both (DNS). */
const transports: Record<Kind, { tcp: boolean; udp: boolean }> = {
  http: { tcp: true, udp: false },
  https: { tcp: true, udp: false },
  tcp: { tcp: true, udp: false },
  udp: { tcp: false, udp: true },
  dns: { tcp: true, udp: true },
};
const kinds = Object.keys(transports) as Kind[];

function isTcpKind(kind: Kind): kind is TcpKind {
  return transports[kind].tcp;
}

function isUdpKind(kind: Kind): kind is UdpKind {
  return transports[kind].udp;
}
const ephemeralRetries = 5;

const finGraceMs = 1000;

function bodyless(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}
const noop = (): void => {};

function checkPort(key: string, port: number | undefined): void {
  if (port === undefined) return;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`real server option ${key}: ${port} is not a port number`);
}

function buildZone(records: RealServerOptions['dnsRecords']): DnsZone {
  const zone = new Map<string, { a: string[]; aaaa: string[] }>();
  for (const [name, entry] of Object.entries(records ?? {})) {
    for (const ip of entry.a ?? []) if (!net.isIPv4(ip)) throw new Error(`dnsRecords ${name}: ${ip} is not an IPv4 address`);
    for (const ip of entry.aaaa ?? []) if (!net.isIPv6(ip)) throw new Error(`dnsRecords ${name}: ${ip} is not an IPv6 address`);
    const key = normalizeDnsName(name);
    const existing = zone.get(key) ?? { a: [], aaaa: [] };
    existing.a.push(...(entry.a ?? []));
    existing.aaaa.push(...(entry.aaaa ?? []));
    zone.set(key, existing);
  }
  return zone;
}

function listenTcp(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      const address = server.address();
      if (address === null || typeof address === 'string') reject(new Error('TCP listener has no address'));
      else resolve(address.port);
    });
  });
}

function bindUdp(socket: dgram.Socket, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.off('error', reject);
      resolve(socket.address().port);
    });
  });
}

function closeTcp(server: net.Server | undefined): Promise<void> {
  if (server === undefined || !server.listening) return Promise.resolve();
  return new Promise((resolve) => server.close(() => resolve()));
}

function closeUdp(socket: dgram.Socket | undefined): Promise<void> {
  if (socket === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

class ControllableServer implements RealServer {
  readonly name: string;
  readonly host: string;
  readonly ports: RealServerPorts = {};

  private behaviour: Behaviour = { mode: 'ok' };
  private readonly zone: DnsZone;
  private readonly tcpListeners: TcpListener[] = [];
  private readonly udpListeners: UdpListener[] = [];
  /** The port asked for per kind; after the first bind, the one actually bound (reused on rebind). */
  private readonly wantedPorts: Partial<Record<Kind, number>> = {};
  private readonly connections = new Set<Connection>();
  private readonly byOuter = new WeakMap<net.Socket, Connection>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly http: http.Server;
  private readonly counters: RealServerStats = {
    httpRequests: 0,
    tcpConnections: 0,
    openTcpConnections: 0,
    udpDatagrams: 0,
    dnsQueries: 0,
  };
  private secureContext?: tls.SecureContext;
  private changes: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly options: RealServerOptions) {
    this.name = options.name;
    this.host = options.host;
    this.zone = buildZone(options.dnsRecords);
    // Never listened on: it only parses requests on sockets handed to it. No
    // keep-alive timeout, so idle keep-alive connections stay until dropped.
    this.http = http.createServer((req, res) => this.onRequest(req, res));
    this.http.keepAliveTimeout = 0;
    this.http.timeout = 0;
    this.http.on('clientError', (_error, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
    for (const kind of kinds) {
      const port = options[kind];
      if (port === undefined) continue;
      this.wantedPorts[kind] = port;
      for (const host of [options.host, ...(options.extraHosts ?? [])]) {
        if (isTcpKind(kind)) this.tcpListeners.push({ kind, host });
        if (isUdpKind(kind)) this.udpListeners.push({ kind, host });
      }
    }
  }

  async start(): Promise<void> {
    if (this.options.https !== undefined) {
      const { key, cert } = await createSelfSignedCertificate(this.options.tlsNames ?? [this.name]);
      this.secureContext = tls.createSecureContext({ key, cert });
    }
    try {
      await this.openAll();
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  setBehaviour(b: Behaviour): Promise<void> {
    // Changes apply one at a time, in the order asked; a bad one rejects without affecting the others.
    const run = this.changes.then(() => this.apply(parseBehaviour(b)));
    this.changes = run.catch(noop);
    return run;
  }

  stats(): RealServerStats {
    return { ...this.counters, openTcpConnections: this.connections.size };
  }

  dropConnections(how: 'fin' | 'rst'): void {
    for (const connection of this.connections) {
      if (how === 'rst') this.reset(connection);
      else this.finish(connection);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.changes;
    await this.closeAll();
    // Handles finish closing on the next turn of the event loop; wait so none is left when this resolves.
    await new Promise((resolve) => setImmediate(resolve));
  }

  // -- lifecycle ------------------------------------------------------------

  private async apply(next: Behaviour): Promise<void> {
    if (this.stopped) throw new Error(`real server ${this.name} is stopped`);
    const previous = this.behaviour;
    this.behaviour = next;
    if (next.mode === 'down') {
      if (previous.mode !== 'down') await this.closeAll();
      return;
    }
    if (previous.mode === 'down') {
      try {
        await this.openAll();
      } catch (error) {
        this.behaviour = previous;
        await this.closeAll();
        throw error;
      }
      return;
    }
    if (previous.mode === 'hang' && next.mode !== 'hang') {
      for (const connection of this.connections) if (connection.hung) this.finish(connection);
    }
  }

  private async openAll(): Promise<void> {
    for (const kind of kinds) await this.openKind(kind);
  }

  /**
   * Opens every listener of a kind on one port number: all hosts, and for DNS both
   * UDP and TCP. An ephemeral port is picked by the first bind and then taken by the
   * others; if one of them finds it in use, the whole kind starts over.
   */
  private async openKind(kind: Kind): Promise<void> {
    const wanted = this.wantedPorts[kind];
    if (wanted === undefined) return;
    const udp = this.udpListeners.filter((l) => l.kind === kind);
    const tcp = this.tcpListeners.filter((l) => l.kind === kind);
    for (let attempt = 1; ; attempt++) {
      let port = wanted;
      try {
        for (const listener of udp) port = await this.openUdp(listener, port);
        for (const listener of tcp) port = await this.openTcp(listener, port);
        this.wantedPorts[kind] = port;
        this.ports[kind] = port;
        return;
      } catch (error) {
        await this.closeListeners(udp, tcp);
        const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (wanted !== 0 || !inUse || attempt === ephemeralRetries) throw error;
      }
    }
  }

  private async openTcp(listener: TcpListener, port: number): Promise<number> {
    const server = net.createServer({ pauseOnConnect: true }, (socket) => this.onConnection(listener.kind, socket));
    listener.server = server;
    return listenTcp(server, listener.host, port);
  }

  private async openUdp(listener: UdpListener, port: number): Promise<number> {
    const socket = dgram.createSocket({ type: net.isIPv6(listener.host) ? 'udp6' : 'udp4' });
    socket.on('message', (message, remote) => this.onDatagram(listener.kind, socket, message, remote));
    listener.socket = socket;
    const bound = await bindUdp(socket, listener.host, port);
    socket.on('error', noop); // e.g. ICMP errors reported on send; a test server just carries on
    return bound;
  }

  private async closeListeners(udp: readonly UdpListener[], tcp: readonly TcpListener[]): Promise<void> {
    await Promise.all([...tcp.map((l) => closeTcp(l.server)), ...udp.map((l) => closeUdp(l.socket))]);
    for (const l of tcp) delete l.server;
    for (const l of udp) delete l.socket;
  }

  private async closeAll(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const connection of this.connections) connection.raw.destroy();
    this.connections.clear();
    await this.closeListeners(this.udpListeners, this.tcpListeners);
  }

  private later(delayMs: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, delayMs);
    this.timers.add(timer);
  }

  // -- TCP ------------------------------------------------------------------

  private onConnection(kind: TcpKind, raw: net.Socket): void {
    const connection: Connection = { raw, outer: raw, hung: false };
    this.counters.tcpConnections++;
    this.connections.add(connection);
    this.byOuter.set(raw, connection);
    raw.on('error', noop);
    raw.on('close', () => this.connections.delete(connection));
    const mode = this.behaviour.mode;
    // DNS over TCP resets when the query arrives (serveDnsOverTcp): a reset before the
    // client has written lets its write take the error and its read see a plain EOF.
    if (mode === 'reset' && kind !== 'dns') return this.reset(connection);
    if (mode === 'hang') {
      connection.hung = true; // stays paused (pauseOnConnect): nothing is read, nothing sent
      return;
    }
    switch (kind) {
      case 'tcp':
        raw.on('data', noop); // read and discard, never answer
        raw.resume();
        return;
      case 'http':
        this.http.emit('connection', raw);
        raw.resume();
        return;
      case 'https':
        this.startTls(connection);
        return;
      case 'dns':
        this.serveDnsOverTcp(connection);
        return;
    }
  }

  private startTls(connection: Connection): void {
    const secureContext = this.secureContext;
    if (secureContext === undefined) throw new Error('HTTPS listener without a certificate');
    const socket = new tls.TLSSocket(connection.raw, { isServer: true, secureContext });
    connection.outer = socket;
    this.byOuter.set(socket, connection);
    socket.on('error', noop);
    socket.once('secure', () => this.http.emit('connection', socket));
    connection.raw.resume();
  }

  /** Ends a connection with FIN; gives the peer a moment to close its side, then lets go. */
  private finish(connection: Connection): void {
    connection.hung = false;
    connection.outer.end();
    connection.raw.resume(); // read what is left so the close is a FIN, not a RST
    this.later(finGraceMs, () => connection.raw.destroy());
  }

  private reset(connection: Connection): void {
    if (connection.raw.destroyed) return;
    connection.raw.resetAndDestroy();
  }

  // -- HTTP -----------------------------------------------------------------

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const connection = this.byOuter.get(req.socket);
    const sni = req.socket instanceof tls.TLSSocket ? req.socket.servername : undefined;
    this.counters.httpRequests++;
    this.counters.lastHttpRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      ...(req.headers.host === undefined ? {} : { host: req.headers.host }),
      ...(typeof sni === 'string' ? { sni } : {}),
    };
    req.resume(); // discard any body
    const b = this.behaviour;
    switch (b.mode) {
      case 'reset':
        if (connection !== undefined) this.reset(connection);
        else req.socket.destroy();
        return;
      case 'hang':
        if (connection !== undefined) connection.hung = true;
        return;
      case 'slow':
        this.later(b.delayMs, () => this.respond(res, 200, this.servedBy()));
        return;
      case 'trickle':
        this.trickle(req.socket, b.byteIntervalMs);
        return;
      case 'status':
        // 1xx, 204 and 304 carry no body (RFC 9110 §6.4.1).
        this.respond(res, b.status, bodyless(b.status) ? '' : `${b.status} from ${this.name}\n`, b.location);
        return;
      case 'body':
        this.respond(res, 200, b.body);
        return;
      default:
        this.respond(res, 200, this.servedBy());
    }
  }

  private servedBy(): string {
    return `served-by ${this.name}\n`;
  }

  private headers(status: number, body: string, location?: string): Record<string, string> {
    return {
      'Content-Type': 'text/plain; charset=utf-8',
      ...(bodyless(status) ? {} : { 'Content-Length': String(Buffer.byteLength(body)) }),
      'X-Served-By': this.name,
      ...(location === undefined ? {} : { Location: location }),
    };
  }

  private respond(res: http.ServerResponse, status: number, body: string, location?: string): void {
    if (res.destroyed || res.writableEnded) return;
    res.writeHead(status, this.headers(status, body, location));
    res.end(body);
  }

  /** Writes a complete response straight to the socket, one byte at a time, then closes. */
  private trickle(socket: net.Socket, byteIntervalMs: number): void {
    const body = this.servedBy();
    const head = Object.entries({ ...this.headers(200, body), Connection: 'close' })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    const bytes = Buffer.from(`HTTP/1.1 200 OK\r\n${head}\r\n${body}`);
    const send = (i: number): void => {
      if (socket.destroyed) return;
      if (i === bytes.length) {
        socket.end();
        return;
      }
      socket.write(bytes.subarray(i, i + 1));
      this.later(byteIntervalMs, () => send(i + 1));
    };
    this.later(byteIntervalMs, () => send(0));
  }

  // -- UDP and DNS ----------------------------------------------------------

  private onDatagram(kind: UdpKind, socket: dgram.Socket, message: Buffer, remote: dgram.RemoteInfo): void {
    if (kind === 'udp') this.counters.udpDatagrams++;
    else this.counters.dnsQueries++;
    const reply = kind === 'udp' ? Buffer.concat([Buffer.from(`${this.name} `), message]) : this.answerDns(message, dnsUdpMaxBytes);
    if (reply === undefined) return;
    const send = (): void => {
      try {
        socket.send(reply, remote.port, remote.address);
      } catch {
        // closed meanwhile
      }
    };
    this.whenAnswering(send);
  }

  /** Runs `send` now, later, or never, as the behaviour says (for UDP and DNS). */
  private whenAnswering(send: () => void): void {
    const b = this.behaviour;
    if (b.mode === 'hang' || b.mode === 'reset' || b.mode === 'down') return;
    if (b.mode === 'slow') this.later(b.delayMs, send);
    else send();
  }

  private answerDns(query: Buffer, maxBytes?: number): Buffer | undefined {
    const b = this.behaviour;
    return answerDnsQuery(query, this.zone, b.mode === 'dns-rcode' ? b.rcode : undefined, maxBytes);
  }

  /** DNS over TCP (RFC 1035 §4.2.2): each message has a two-byte length prefix. */
  private serveDnsOverTcp(connection: Connection): void {
    let pending = Buffer.alloc(0);
    connection.raw.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const message = pending.subarray(2, 2 + length);
        pending = pending.subarray(2 + length);
        this.counters.dnsQueries++;
        const mode = this.behaviour.mode;
        if (mode === 'reset') return this.reset(connection);
        if (mode === 'hang') {
          connection.hung = true;
          continue;
        }
        const reply = this.answerDns(message);
        if (reply === undefined) continue;
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(reply.length);
        this.whenAnswering(() => {
          if (!connection.raw.destroyed) connection.raw.write(Buffer.concat([prefix, reply]));
        });
      }
    });
    connection.raw.resume();
  }
}

export async function startRealServer(options: RealServerOptions): Promise<RealServer> {
  for (const host of [options.host, ...(options.extraHosts ?? [])]) {
    if (net.isIP(host) === 0) throw new Error(`real server ${options.name}: host ${JSON.stringify(host)} is not an IP address`);
  }
  for (const key of ['http', 'https', 'tcp', 'udp', 'dns'] as const) checkPort(key, options[key]);
  const server = new ControllableServer(options);
  await server.start();
  return server;
}

// ---------------------------------------------------------------------------
// Control protocol (newline-delimited JSON over a Unix socket)

export type ControlRequest =
  | { op: 'behaviour'; behaviour: Behaviour }
  | { op: 'stats' }
  | { op: 'drop'; how: 'fin' | 'rst' }
  | { op: 'stop' };

export type ControlReply = { ok: true; stats?: RealServerStats; ports?: RealServerPorts } | { ok: false; error: string };

export function parseControlRequest(value: unknown): ControlRequest {
  if (typeof value !== 'object' || value === null) throw new Error('request must be a JSON object with an "op"');
  const r = value as Record<string, unknown>;
  switch (r['op']) {
    case 'behaviour':
      return { op: 'behaviour', behaviour: parseBehaviour(r['behaviour']) };
    case 'stats':
    case 'stop':
      return { op: r['op'] };
    case 'drop':
      if (r['how'] !== 'fin' && r['how'] !== 'rst') throw new Error('drop: "how" must be "fin" or "rst"');
      return { op: 'drop', how: r['how'] };
    default:
      throw new Error('"op" must be one of behaviour, stats, drop, stop');
  }
}

/**
 * Sends one request to a standalone real server's control socket and returns
 * its reply; rejects when the server answers {"ok":false} or does not answer.
 */
export function controlRealServer(
  socketPath: string,
  request: ControlRequest,
  timeoutMs = 10_000,
): Promise<{ ok: true; stats?: RealServerStats; ports?: RealServerPorts }> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    let buffered = '';
    const fail = (error: Error): void => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`real server control ${socketPath}: no reply within ${timeoutMs} ms`)));
    socket.on('error', (error) => fail(error));
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk) => {
      buffered += chunk.toString('utf8');
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      socket.end();
      let reply: ControlReply;
      try {
        reply = JSON.parse(buffered.slice(0, newline)) as ControlReply;
      } catch {
        return fail(new Error(`real server control ${socketPath}: reply is not JSON: ${buffered.slice(0, newline)}`));
      }
      if (reply.ok) resolve(reply);
      else fail(new Error(`real server control ${socketPath}: ${reply.error}`));
    });
    socket.on('end', () => {
      if (!buffered.includes('\n')) fail(new Error(`real server control ${socketPath}: closed without a reply`));
    });
  });
}
