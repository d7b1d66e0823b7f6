/**
 * IdleConnection: a TCP connection to the server held open, sending nothing.
 * Up while connected; down on refusal, reset or keepalive timeout. After a
 * clean close (FIN) it reconnects at once with the short
 * `timeout-clean-reconnect` and only a failure of that attempt counts; after
 * any failure it retries with exponential backoff (factor e, jitter, capped at
 * `max-delay`), as PyBal's Twisted ReconnectingClientFactory.
 *
 * Node 20 sets TCP_KEEPIDLE from keepalive-idle, but its libuv (1.46) fixes
 * TCP_KEEPINTVL at 1 s and TCP_KEEPCNT at 10 (seen with strace), and Node has
 * no way to change them: keepalive-interval and keepalive-retries are not
 * applied, and a silent peer is found keepalive-idle + ~10 s after the last
 * packet (PyBal: idle + interval x retries = 100 s by default).
 */
import net from 'node:net';
import type { IdleConnectionConfig } from '../config/types.js';
import { setAnswerTimeout, type Timer } from '../runtime/clock.js';
import { connectCheck, dataPathTarget, describeRoute, ownAddressWords, withoutDataPath } from './data-path.js';
import { formatSeconds } from './deadline.js';
import { createReportingHealth, type Health } from './health.js';
import { connectOnce } from './tcp-connect.js';
import type { HealthState, Monitor, MonitorDeps, MonitorTarget, StartOptions } from './types.js';

export const INITIAL_DELAY_MS = 1000;
export const BACKOFF_FACTOR = Math.E;
/** Twisted's jitter: a normal deviate of this relative size. */
export const BACKOFF_JITTER = 0.11962656472;
/**
 * A connection closed cleanly sooner than this after it opened is not
 * reconnected at once but after the backoff delay (state unchanged), so that a
 * server closing every connection is not hammered in a tight loop.
 */
export const MIN_STABLE_MS = 1000;
/**
 * A data-path connection waits this long, looking every PROBE_POLL_MS, for
 * its probe service to reach the kernel; then it connects to the server's
 * own address (and says so). A connection held for hours should not be
 * made at the plain address for want of a second's patience.
 */
export const PROBE_WAIT_MS = 30_000;
const PROBE_POLL_MS = 1000;

/** The next reconnect delay after `previousMs` (0 for the first retry). Pure given `normal`. */
export function nextBackoffMs(previousMs: number, maxDelayMs: number, normal: number): number {
  const base = previousMs <= 0 ? INITIAL_DELAY_MS : Math.min(previousMs * BACKOFF_FACTOR, maxDelayMs);
  const jittered = base + base * BACKOFF_JITTER * normal;
  return Math.max(0, Math.min(jittered, maxDelayMs));
}

/** A standard normal deviate from two uniforms (Box-Muller). */
function normalFrom(random: () => number): number {
  const u = Math.max(random(), Number.EPSILON);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

export function createIdleConnectionMonitor(config: IdleConnectionConfig, target: MonitorTarget, deps: MonitorDeps): Monitor {
  return new IdleConnectionMonitor(config, target, deps);
}

type IdleEvent = 'connected' | 'connect-failed' | 'connection-lost';

/**
 * One per server, holding a connection for hours: classes (the monitor and
 * its attempt), so that a server costs fields and a socket rather than a
 * dozen closures over contexts, with socket listeners shared by every
 * connection (as http-check's Exchange).
 */
class IdleConnectionMonitor implements Monitor {
  readonly kind: IdleConnectionConfig['kind'];
  private readonly health: Health;
  private readonly random: () => number;
  private started = false;
  stopped = false;
  /** The socket of the latest attempt, until it closes. */
  socket: net.Socket | undefined = undefined;
  private timer: Timer | undefined = undefined;
  /** The current reconnect delay (0: the next failure starts the backoff over). */
  delayMs = 0;
  private closedWhenDone: Promise<void> = Promise.resolve();
  /** The server's own address (the target without its data path). */
  readonly plain: MonitorTarget;
  /** A data-path monitor's VIP target, or why it has none. */
  private readonly viaVip: { target: MonitorTarget } | { problem: string } | undefined;
  /** How long the current connect has waited for the probe service. */
  private waitedMs = 0;
  /** Where the latest attempt connects, as reasons say it. */
  where: string;
  /** The latest attempt went through the data path. */
  viaDataPath = false;
  /** Why the next attempt goes to the server's own address although the data path is there (the director had no local address or port for it). */
  plainOnce: string | undefined = undefined;

  constructor(
    readonly config: IdleConnectionConfig,
    readonly target: MonitorTarget,
    readonly deps: MonitorDeps,
  ) {
    this.kind = config.kind;
    this.health = createReportingHealth(config.kind, config, deps);
    this.random = deps.random ?? Math.random;
    this.plain = withoutDataPath(target);
    this.viaVip = target.dataPath === undefined ? undefined : dataPathTarget(target);
    this.where = `to ${target.ip}:${target.port}`;
  }

  start(startOptions?: StartOptions): void {
    if (this.started) return;
    this.started = true;
    if (startOptions?.assumeUp) this.health.presumeUp();
    const delayMs = Math.max(0, startOptions?.delayMs ?? 0);
    if (delayMs > 0) this.timer = this.deps.clock.setTimeout(() => this.connect(this.config.connectTimeoutMs, false), delayMs);
    else this.connect(this.config.connectTimeoutMs, false);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.socket?.destroy();
    await this.closedWhenDone;
  }

  state(): HealthState | undefined {
    return this.health.state();
  }

  result(ok: boolean, reason: string, event: IdleEvent, startMs: number, errorCode?: string): void {
    this.deps.onResult?.({ kind: this.kind, ok, reason, event, errorCode, durationMs: this.deps.clock.now() - startMs });
    this.health.record(ok, reason);
  }

  /** A data-path connect failed: a plain connect says whether the server answers at its own address; then the failure is reported. */
  failedViaDataPath(reason: string, startMs: number, code: string): void {
    void connectOnce(this.plain, this.config.connectTimeoutMs, this.deps.clock).then((own) => {
      if (this.stopped) return;
      this.result(false, `${reason}; ${ownAddressWords(this.target.dataPath!, this.plain, own)}`, 'connect-failed', startMs, code);
      this.scheduleReconnect();
    });
  }

  scheduleReconnect(afterCleanClose = false): void {
    if (this.stopped) return;
    const config = this.config;
    this.delayMs = nextBackoffMs(this.delayMs, config.maxDelayMs, normalFrom(this.random));
    this.deps.logger.debug(`reconnecting in ${formatSeconds(this.delayMs)}`);
    this.timer = this.deps.clock.setTimeout(
      () => this.connect(afterCleanClose ? config.timeoutCleanReconnectMs : config.connectTimeoutMs, afterCleanClose),
      this.delayMs,
    );
  }

  connect(timeoutMs: number, afterCleanClose: boolean): void {
    this.timer = undefined;
    if (this.stopped) return;
    // Connects that come due together (a start of thousands, a restart of every
    // monitor) are admitted a batch per turn, as checks are: the loop reads
    // sockets and runs the IPVS writes in between instead of connecting for seconds.
    if (this.deps.admit) void this.deps.admit().then(() => this.open(timeoutMs, afterCleanClose));
    else this.open(timeoutMs, afterCleanClose);
  }

  private open(timeoutMs: number, afterCleanClose: boolean): void {
    if (this.stopped) return;
    const startMs = this.deps.clock.now();
    const route = this.target.dataPath;
    const via = this.viaVip;
    let target = this.plain;
    this.viaDataPath = false;
    this.where = `to ${target.ip}:${target.port}`;
    const plainOnce = this.plainOnce;
    this.plainOnce = undefined;
    if (plainOnce !== undefined) {
      this.where += ` (at its own address: ${plainOnce})`;
    } else if (route !== undefined && via !== undefined && 'target' in via) {
      if (route.ready()) {
        target = via.target;
        this.viaDataPath = true;
        this.where = describeRoute(route, target.port);
      } else if (this.waitedMs < PROBE_WAIT_MS) {
        this.waitedMs += PROBE_POLL_MS;
        this.timer = this.deps.clock.setTimeout(() => this.open(timeoutMs, afterCleanClose), PROBE_POLL_MS);
        return;
      } else {
        this.where += ' (at its own address: its data-path probe service is not in IPVS yet)';
      }
    } else if (via !== undefined && 'problem' in via) {
      this.where += ` (at its own address: no data path, ${via.problem})`;
    }
    this.waitedMs = 0;
    const socket = connectCheck(target);
    this.socket = socket;
    const attempt = new Attempt(this, socket, timeoutMs, afterCleanClose, startMs);
    this.closedWhenDone = attempt.closed;
  }
}

const kAttempt = Symbol('pybal.idleAttempt');
type AttemptSocket = net.Socket & { [kAttempt]: Attempt };

// Socket listeners shared by every connection: each finds its attempt on the socket.
function discard(): void {}
function onAttemptConnect(this: AttemptSocket): void {
  this[kAttempt].onConnect();
}
function onAttemptError(this: AttemptSocket, error: NodeJS.ErrnoException): void {
  this[kAttempt].onError(error);
}
function onAttemptClose(this: AttemptSocket): void {
  this[kAttempt].onClose();
}

/** One connection attempt and, once connected, the connection it holds. */
class Attempt {
  private connected = false;
  private connectedAtMs = 0;
  /** An error was handled: the close that follows it says nothing more. */
  private settled = false;
  /** Until connected or closed; dropped then, so that a held connection keeps no spent timer. */
  private connectTimer: Timer | undefined;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  private resolveClosed: () => void = discard;

  constructor(
    private readonly monitor: IdleConnectionMonitor,
    private readonly socket: net.Socket,
    private readonly timeoutMs: number,
    private readonly afterCleanClose: boolean,
    private readonly startMs: number,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    // A connection that completed while the loop was busy still wins (setAnswerTimeout).
    this.connectTimer = setAnswerTimeout(monitor.deps.clock, () => this.onConnectTimeout(), timeoutMs);
    (socket as AttemptSocket)[kAttempt] = this;
    // Each of these is emitted once per socket: `on` rather than `once`, which would wrap each listener anew.
    socket.on('data', discard); // discard whatever the server says
    socket.on('connect', onAttemptConnect);
    // A FIN from the server: close our side too (allowHalfOpen is off).
    socket.on('end', discard);
    socket.on('error', onAttemptError);
    socket.on('close', onAttemptClose);
  }

  private cancelConnectTimer(): void {
    this.connectTimer?.cancel();
    this.connectTimer = undefined;
  }

  private onConnectTimeout(): void {
    if (!this.connected) this.socket.destroy(Object.assign(new Error(`connect timed out after ${formatSeconds(this.timeoutMs)}`), { code: 'ETIMEDOUT' }));
  }

  onConnect(): void {
    const { monitor } = this;
    this.connected = true;
    this.connectedAtMs = monitor.deps.clock.now();
    this.cancelConnectTimer();
    this.socket.setKeepAlive(monitor.config.keepalive, monitor.config.keepaliveIdleMs);
    monitor.result(true, `Connection established ${monitor.where}`, 'connected', this.startMs);
  }

  onError(error: NodeJS.ErrnoException): void {
    // As a `once` listener: only the first error counts.
    if (this.settled) return;
    const { monitor } = this;
    this.settled = true;
    this.cancelConnectTimer();
    if (monitor.stopped) return;
    const code = error.code ?? error.name;
    if (this.connected && monitor.deps.clock.now() - this.connectedAtMs >= MIN_STABLE_MS) monitor.delayMs = 0;
    if (!this.connected) {
      const why = this.afterCleanClose ? 'reconnect after clean close failed' : 'connection failed';
      const reason = `${monitor.kind} ${why}: ${error.message}`;
      if (monitor.viaDataPath && code === 'EADDRNOTAVAIL') {
        // This director's shortage, not the server's: connect at its own address this once, nothing reported.
        monitor.plainOnce = `${reason} (${monitor.where}): this director has no local address or port for the VIP`;
        monitor.deps.logger.warn(`data path unavailable: ${monitor.plainOnce}; connecting at the server's own address`);
        monitor.connect(monitor.config.connectTimeoutMs, false);
        return;
      }
      if (monitor.viaDataPath) {
        // Does the server answer at its own address? The reason says, then the retry is scheduled.
        monitor.failedViaDataPath(`${reason} (${monitor.where})`, this.startMs, code);
        return;
      }
      monitor.result(false, reason, 'connect-failed', this.startMs, code);
    } else {
      monitor.result(false, `Connection lost: ${error.message}`, 'connection-lost', this.startMs, code);
    }
    monitor.scheduleReconnect();
  }

  onClose(): void {
    const { monitor } = this;
    this.resolveClosed();
    this.cancelConnectTimer();
    if (monitor.socket === this.socket) monitor.socket = undefined;
    if (this.settled || monitor.stopped) return;
    if (!this.connected) {
      // Closed without error before connecting: treat as a failure.
      monitor.result(false, `${monitor.kind} connection failed: closed before connecting`, 'connect-failed', this.startMs, 'ECONNABORTED');
      monitor.scheduleReconnect();
      return;
    }
    if (monitor.deps.clock.now() - this.connectedAtMs < MIN_STABLE_MS) {
      monitor.deps.logger.debug('connection closed cleanly right after opening');
      monitor.scheduleReconnect(true);
      return;
    }
    monitor.delayMs = 0;
    monitor.deps.logger.debug('connection closed cleanly; reconnecting');
    monitor.connect(monitor.config.timeoutCleanReconnectMs, true);
  }
}
