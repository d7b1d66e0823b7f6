/**
 * The HTTP client of ProxyFetch: one GET on a fresh connection, written in a
 * single write, its response parsed as it arrives, the verdict decided as
 * soon as it can be. Built on connections directly: node:http's request
 * machinery (agents, ClientRequest, IncomingMessage streams, header objects)
 * cost more CPU than the check itself. Plain http to a server's own address
 * goes over the tcpcheck addon (native-tcp.ts), without even a net.Socket;
 * TLS and data-path checks over net/tls sockets.
 *
 * Per check it allocates the connection, one parser and the promise; every
 * check reads into one shared buffer; the request bytes, TLS context and
 * identity check are prepared once per URL (prepareFetch). It never rejects and has no timer of
 * its own: the caller's signal (the periodic wrapper's deadline) ends
 * it, destroying the socket at once.
 */
import net from 'node:net';
import type tls from 'node:tls';
import { errorMessage } from '../runtime/errors.js';
import { connectCheck } from './data-path.js';
import { DeadlineError, type CheckSignal } from './deadline.js';
import { HttpResponseParser, ParseEvent } from './http-response-parser.js';
import { closeNativeTcp, failureReason, openNativeTcp, type NativeTcpEvents } from './native-tcp.js';
import { BODY_CAP_BYTES, bodyProblem, needsBody, statusFailure, statusPasses, type FetchOptions } from './proxyfetch-rules.js';
import type { MonitorTarget } from './types.js';

export interface Verdict {
  readonly ok: boolean;
  readonly reason: string;
}

interface TlsSettings {
  readonly servername: string;
  readonly secureContext: tls.SecureContext;
  readonly rejectUnauthorized: boolean;
  readonly checkServerIdentity: (host: string, cert: tls.PeerCertificate) => Error | undefined;
}

/** What one URL's checks share: built once, used by every check. */
export interface PreparedFetch {
  /** The whole request, sent in one write. */
  readonly request: Buffer;
  readonly httpStatus: number;
  readonly expectBody: string | undefined;
  readonly expectBodyRegex: RegExp | undefined;
  readonly keepBody: boolean;
  /** For https: URLs. */
  readonly tls: TlsSettings | undefined;
}

/**
 * One read buffer for every check: libuv reads into it and calls onRead at
 * once, and the parser copies what it keeps before onRead returns, so no
 * check can see another's bytes. A buffer per check was 4 KB more for each
 * socket to keep alive until a major GC (see finish()).
 */
const READ_BUFFER_BYTES = 16 * 1024;
/** The `onread` option of every check's socket (the socket copies its two fields), made at the first check. */
let sharedOnread: { readonly buffer: Buffer; readonly callback: typeof onRead } | undefined;
function onreadOption(): { readonly buffer: Buffer; readonly callback: typeof onRead } {
  return (sharedOnread ??= { buffer: Buffer.allocUnsafeSlow(READ_BUFFER_BYTES), callback: onRead });
}

/**
 * node:tls (and node:crypto with it), loaded at the first https check: the
 * checks thread compiles Node's modules without its code cache (the daemon's
 * V8 flag), and a site that checks http only never needs them.
 */
function tlsModule(): typeof tls {
  return process.getBuiltinModule('node:tls');
}

/** The TLS context for a check's options (trusted CAs); build it once and pass it to prepareFetch. */
export function createFetchSecureContext(options: Pick<FetchOptions, 'ca'>): tls.SecureContext {
  return tlsModule().createSecureContext(options.ca === undefined ? {} : { ca: options.ca });
}

/** Without verify-tls the name is not checked either (as PyBal). */
const skipIdentityCheck = (): undefined => undefined;

/**
 * The bytes of a request text, shared by every monitor that sends the same
 * (a service's servers all do). Each is an allocation of its own: a small
 * Buffer.from is a slice of Node's 8 KB pool and would keep the whole slab
 * alive for as long as the monitor lives (40 MB at 5,000 servers).
 */
const REQUESTS = new Map<string, Buffer>();
function requestBytes(text: string): Buffer {
  let bytes = REQUESTS.get(text);
  if (bytes === undefined) {
    bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(text, 'latin1'));
    bytes.write(text, 'latin1');
    // A handful of distinct URLs in practice; a bound in case a config has thousands.
    if (REQUESTS.size < 1024) REQUESTS.set(text, bytes);
  }
  return bytes;
}

/** Prepares the GET of `url`: request bytes, body rule and TLS settings. */
export function prepareFetch(url: URL, options: FetchOptions, secureContext?: tls.SecureContext): PreparedFetch {
  const request = requestBytes(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: pybal ProxyFetch\r\nAccept: */*\r\nConnection: close\r\n\r\n`);
  let tlsSettings: TlsSettings | undefined;
  if (url.protocol === 'https:') {
    const name = url.hostname.replace(/^\[|\]$/g, '');
    tlsSettings = {
      // SNI may not carry an IP literal.
      servername: net.isIP(name) ? '' : name,
      secureContext: secureContext ?? createFetchSecureContext(options),
      rejectUnauthorized: options.verifyTls,
      // The certificate must name the URL's host, not the address connected to.
      checkServerIdentity: options.verifyTls ? (_host, cert) => tlsModule().checkServerIdentity(name, cert) : skipIdentityCheck,
    };
  }
  return {
    request,
    httpStatus: options.httpStatus,
    expectBody: options.expectBody,
    expectBodyRegex: options.expectBodyRegex,
    keepBody: needsBody(options),
    tls: tlsSettings,
  };
}

/** An error as a check reason: the deadline's own message, else the error with its errno code. */
export function describeError(error: unknown, signal: CheckSignal): string {
  if (signal.reason instanceof DeadlineError) return signal.reason.message;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = errorMessage(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

const kExchange = Symbol('pybal.httpExchange');
/** A check's socket; its exchange is detached once the verdict is in. */
type CheckSocket = net.Socket & { [kExchange]: Exchange | undefined };

// Socket listeners are shared by every check: each finds its exchange on the socket.
function onConnect(this: CheckSocket): void {
  const exchange = this[kExchange];
  if (exchange !== undefined) this.write(exchange.prepared.request);
}
function onRead(this: CheckSocket, nread: number, buffer: Buffer): boolean {
  this[kExchange]?.onData(buffer, nread);
  return true; // keep reading
}
/** Data as events: TLS over a socket of our own (a data-path check) ignores `onread`. */
function onDataEvent(this: CheckSocket, chunk: Buffer): void {
  this[kExchange]?.onData(chunk, chunk.length);
}
function onEnd(this: CheckSocket): void {
  this[kExchange]?.onEnd();
}
function onError(this: CheckSocket, error: Error): void {
  const exchange = this[kExchange];
  exchange?.finish(false, describeError(error, exchange.signal));
}

/**
 * Whether plain http checks to a server's own address use the tcpcheck addon
 * (native-tcp.ts) rather than a net.Socket, where it loads. Tests compare the
 * two; a check that cannot use it (TLS, the data path, a bad port) uses a
 * net.Socket either way.
 */
let nativeTcp = true;
export function useNativeTcp(on: boolean): void {
  nativeTcp = on;
}

/** A port the addon takes; any other goes to net.connect, which names what is wrong with it. */
const validPort = (port: number): boolean => Number.isInteger(port) && port > 0 && port < 65536;

/** One request and its response; also the abort listener (handleEvent), so no closure is needed. */
class Exchange implements NativeTcpEvents {
  private settled = false;
  private readonly parser: HttpResponseParser;
  /** The connection: a net.Socket, or the tcpcheck addon's id (-1 once closed). */
  private readonly socket: CheckSocket | undefined;
  private nativeId = -1;

  constructor(
    readonly prepared: PreparedFetch,
    readonly signal: CheckSignal,
    private readonly resolve: (verdict: Verdict) => void,
    private readonly target: MonitorTarget,
  ) {
    this.parser = new HttpResponseParser(prepared.keepBody, BODY_CAP_BYTES);
    // PyBal connects to the server, never to the URL's host or port.
    const settings = prepared.tls;
    if (nativeTcp && settings === undefined && target.dataPath === undefined && validPort(target.port)) {
      const opened = openNativeTcp(target.ip, target.port, target.family, prepared.request, this);
      if (typeof opened === 'number') {
        this.nativeId = opened;
        signal.addEventListener('abort', this);
        return;
      }
      if (opened !== undefined) {
        this.finish(false, failureReason('connect', opened, target.ip, target.port));
        return;
      }
    }
    const onread = onreadOption();
    let socket: net.Socket;
    if (settings === undefined) {
      socket = connectCheck(target, { onread, allowHalfOpen: true });
      socket.on('connect', onConnect);
    } else {
      // tls.connect takes `onread` (Node 15.1+) and passes `family` to the TCP connect; the typings lack both.
      // A data-path check gives TLS its own marked connection to the VIP.
      const options: tls.ConnectionOptions & Pick<net.TcpSocketConnectOpts, 'family' | 'onread'> = {
        ...(target.dataPath === undefined ? { host: target.ip, port: target.port, family: target.family } : { socket: connectCheck(target) }),
        onread,
        servername: settings.servername,
        secureContext: settings.secureContext,
        rejectUnauthorized: settings.rejectUnauthorized,
        checkServerIdentity: settings.checkServerIdentity,
      };
      socket = tlsModule().connect(options);
      socket.on('secureConnect', onConnect);
      if (target.dataPath !== undefined) socket.on('data', onDataEvent);
    }
    this.socket = socket as CheckSocket;
    this.socket[kExchange] = this;
    socket.on('end', onEnd);
    socket.on('error', onError);
    signal.addEventListener('abort', this);
  }

  /** The deadline (or stop) fired. */
  handleEvent(): void {
    this.finish(false, describeError(this.signal.reason, this.signal));
  }

  onData(buffer: Buffer, length: number): void {
    if (this.settled) return;
    const parser = this.parser;
    let event = parser.execute(buffer, 0, length);
    if (event === ParseEvent.Head) {
      // The status decides first; a failing one is not read further.
      if (!statusPasses(parser.status, this.prepared.httpStatus)) {
        this.finish(false, statusFailure(parser.status, parser.statusText, this.prepared.httpStatus));
        return;
      }
      event = parser.execute(buffer, parser.offset, length);
    }
    if (event === ParseEvent.Done) this.complete();
    else if (event === ParseEvent.Error) this.finish(false, parser.error);
  }

  onEnd(): void {
    if (this.settled) return;
    // A body cut short (Content-Length not met, chunked stream broken) fails, as PyBal's PartialDownloadError.
    if (this.parser.finish() === ParseEvent.Done) this.complete();
    else this.finish(false, this.parser.error);
  }

  /** The addon's connection failed (NativeTcpEvents). */
  onFailure(syscall: 'connect' | 'write' | 'read', code: string): void {
    this.finish(false, failureReason(syscall, code, this.target.ip, this.target.port));
  }

  finish(ok: boolean, reason: string): void {
    if (this.settled) return;
    this.settled = true;
    this.signal.removeEventListener('abort', this);
    const socket = this.socket;
    if (socket !== undefined) {
      socket.destroy();
      // The socket outlives the check: its handle keeps it until a major GC
      // (a native handle's wrapper survives every scavenge), and with it
      // whatever it points to. Detached, that is the socket alone, not this
      // exchange, its parser and the deadline's signal (at 1,000 checks a
      // second, most of the garbage that reached the old generation).
      socket[kExchange] = undefined;
    } else if (this.nativeId >= 0) {
      closeNativeTcp(this.nativeId);
      this.nativeId = -1;
    }
    this.resolve({ ok, reason });
  }

  private complete(): void {
    const { prepared, parser } = this;
    if (prepared.keepBody) {
      const problem = bodyProblem(parser.body(), prepared);
      if (problem !== undefined) {
        this.finish(false, `HTTP status ${parser.status}, but ${problem}`);
        return;
      }
    }
    this.finish(true, `HTTP status ${parser.status}`);
  }
}

/** One GET as prepared, against the target's address and port; resolves with the verdict, never rejects. */
export function runFetch(prepared: PreparedFetch, target: MonitorTarget, signal: CheckSignal): Promise<Verdict> {
  if (signal.aborted) return Promise.resolve({ ok: false, reason: describeError(signal.reason, signal) });
  return new Promise((resolve) => {
    try {
      new Exchange(prepared, signal, resolve, target);
    } catch (error) {
      // A bad port or address throws at once.
      resolve({ ok: false, reason: describeError(error, signal) });
    }
  });
}
