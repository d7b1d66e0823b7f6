/**
 * TCPConnect (new; keepalived's TCP_CHECK): each check opens a TCP
 * connection to the server's address and the service port, and is good when
 * the handshake completes within `timeout`; the connection is closed at once,
 * nothing is sent. Refused (RST to the SYN), unreachable, no answer within the
 * timeout, or any other error before the handshake completes is bad.
 *
 * How the connection is closed: normally, with close(2) on the socket
 * (Node's destroy(), no SO_LINGER), as current keepalived does (its older
 * releases set SO_LINGER 0 and so reset every check's connection). The
 * kernel sends a FIN, and a server that waits for the client to speak first
 * (HTTP, most proxies) reads an orderly end of stream, with nothing in its
 * log about resets. Two consequences, both as keepalived:
 * - The director holds each check's socket in TIME_WAIT for 60 s: a kernel
 *   entry of a few hundred bytes, about 60,000 of them at 1,000 checks a
 *   second. tcp_max_tw_buckets scales with memory (131,072 on a 24 GB host);
 *   past it the kernel skips TIME_WAIT and logs an overflow, nothing worse.
 *   Closing with RST (SO_LINGER 0) would avoid TIME_WAIT, at the price of a
 *   reset in every server's log at every check.
 * - A server that speaks first (SSH, SMTP, a database greeting) sends its
 *   banner to a socket that is closed already, and the director's kernel
 *   answers that data with a RST: such servers may log a reset whatever the
 *   close, unless we read their banner first, which TCP_CHECK does not.
 *
 * A server that completes the handshake and then resets at once (accept
 * and abort) is up: the handshake is all this check asks for. When its RST
 * arrives before the loop has seen the connect complete, the connect itself
 * fails with ECONNRESET (or EPIPE after a FIN); a reset can only come after
 * the handshake (a RST to the SYN is ECONNREFUSED), so that too is up,
 * rather than up or down at random depending on how busy the loop was
 * (keepalived, reading SO_ERROR, has that race).
 *
 * Per check: one socket, no timer (the periodic wrapper's deadline is the
 * timeout), no closure. Checks of one monitor never overlap, so the check
 * object carries the one in flight and is its own abort listener; socket
 * listeners are shared by every check and find their check on the socket,
 * which is detached from it when the verdict is in, so that a late event of
 * a finished check (after the deadline, after stop) reaches nothing.
 */
import type net from 'node:net';
import type { TcpConnectConfig } from '../config/types.js';
import { connectCheck, withDataPath } from './data-path.js';
import type { Clock } from '../runtime/clock.js';
import { Deadline, DeadlineError, formatSeconds, type CheckSignal } from './deadline.js';
import { serverAddress } from './dns-query.js';
import { createPeriodicMonitor, type PeriodicCheck } from './periodic.js';
import type { CheckOutcome, Monitor, MonitorDeps, MonitorTarget } from './types.js';

/** Connect errors as a reason says them (errno code -> words). */
const CONNECT_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  // The kernel's own SYN retries ran out (about 2 min): only with a longer timeout.
  ETIMEDOUT: 'no answer (the kernel gave up)',
  EADDRNOTAVAIL: 'no local address or port available',
  EACCES: 'not permitted (a local firewall rule?)',
  EPERM: 'not permitted (a local firewall rule?)',
};

/** Errors of a connect whose handshake had completed: the server reset (or closed and reset) the connection already. */
const RESET_AFTER_HANDSHAKE: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE']);

/** The verdict for a connect that failed with `error` (pure). */
export function judgeConnectError(address: string, error: { readonly code?: string; readonly message: string }): CheckOutcome {
  const code = error.code;
  if (code !== undefined && RESET_AFTER_HANDSHAKE.has(code)) return { ok: true, reason: `TCP connect to ${address} succeeded (then reset by the server: ${code})` };
  const words = code === undefined ? undefined : CONNECT_ERRORS[code];
  return { ok: false, reason: `TCP connect to ${address} failed: ${words === undefined ? error.message : `${words} (${code})`}` };
}

export function createTcpConnectMonitor(config: TcpConnectConfig, target: MonitorTarget, deps: MonitorDeps): Monitor {
  return createPeriodicMonitor(config.kind, config, withDataPath(target, (t) => new TcpConnectCheck(t), deps.arpWatch), deps);
}

/** One TCP connect to `target` within `timeoutMs` (a second look at a server, outside any monitor's rounds). */
export async function connectOnce(target: MonitorTarget, timeoutMs: number, clock: Clock): Promise<CheckOutcome> {
  const check = new TcpConnectCheck(target);
  const deadline = new Deadline(clock, timeoutMs);
  const work = check.run(deadline.signal);
  try {
    return await deadline.race(work);
  } catch (error) {
    return { ok: false, reason: error instanceof DeadlineError || deadline.signal.aborted ? check.timeoutReason(`timed out after ${formatSeconds(timeoutMs)}`) : String(error) };
  } finally {
    deadline.dispose();
    await work.catch(() => undefined);
  }
}

const kCheck = Symbol('pybal.tcpConnect');
/** A check's socket; detached from its check once the verdict is in. */
type CheckSocket = net.Socket & { [kCheck]: TcpConnectCheck | undefined };

// Socket listeners shared by every check: each finds its check on the socket.
function onConnect(this: CheckSocket): void {
  this[kCheck]?.finish(this, undefined);
}
function onError(this: CheckSocket, error: NodeJS.ErrnoException): void {
  this[kCheck]?.finish(this, error);
}

/** One server's checks: a class, so that a server costs fields rather than closures, and a check allocates only its socket and promise. */
class TcpConnectCheck implements PeriodicCheck {
  private readonly address: string;
  /** The good outcome, made once: most checks end with it. */
  private readonly good: CheckOutcome;
  /** The check in flight (at most one). */
  private signal: CheckSignal | undefined = undefined;
  private socket: CheckSocket | undefined = undefined;
  private resolve: ((outcome: CheckOutcome) => void) | undefined = undefined;
  /** The promise executor, bound once. */
  private readonly begin = (resolve: (outcome: CheckOutcome) => void): void => this.connect(resolve);

  constructor(private readonly target: MonitorTarget) {
    this.address = serverAddress(target.ip, target.port);
    this.good = { ok: true, reason: `TCP connect to ${this.address} succeeded` };
  }

  timeoutReason(message: string): string {
    return `TCP connect to ${this.address} ${message}`;
  }

  run(signal: CheckSignal): Promise<CheckOutcome> {
    if (signal.aborted) return Promise.resolve(this.aborted(signal.reason));
    this.signal = signal;
    return new Promise(this.begin);
  }

  /** The deadline passed or the monitor stopped: abandon the connect. */
  handleEvent(): void {
    const socket = this.socket;
    if (socket !== undefined) this.finish(socket, undefined, this.aborted(this.signal?.reason));
  }

  /**
   * Ends the check in flight: its socket is closed (a SYN_SENT one simply
   * goes; a connected one sends its FIN) and the verdict given. A socket
   * that is not the one in flight is ignored.
   */
  finish(socket: CheckSocket, error: NodeJS.ErrnoException | undefined, outcome?: CheckOutcome): void {
    if (socket !== this.socket) return;
    const resolve = this.resolve!;
    this.signal?.removeEventListener('abort', this);
    socket[kCheck] = undefined;
    this.socket = this.signal = this.resolve = undefined;
    socket.destroy();
    resolve(outcome ?? (error === undefined ? this.good : judgeConnectError(this.address, error)));
  }

  private connect(resolve: (outcome: CheckOutcome) => void): void {
    const { target } = this;
    let socket: CheckSocket;
    try {
      socket = connectCheck(target) as CheckSocket;
    } catch (error) {
      // A bad address or port throws at once.
      this.signal = undefined;
      resolve(judgeConnectError(this.address, error as NodeJS.ErrnoException));
      return;
    }
    socket[kCheck] = this;
    socket.on('connect', onConnect);
    // Also after the verdict: an error event with no listener would throw.
    socket.on('error', onError);
    this.socket = socket;
    this.resolve = resolve;
    this.signal!.addEventListener('abort', this);
  }

  private aborted(reason: unknown): CheckOutcome {
    if (reason instanceof DeadlineError) return { ok: false, reason: this.timeoutReason(reason.message) };
    return { ok: false, reason: `TCP connect to ${this.address} cancelled` };
  }
}
