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
import { formatSeconds } from './deadline.js';
import { createReportingHealth } from './health.js';
import type { Monitor, MonitorDeps, MonitorTarget } from './types.js';

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
  const { clock, logger } = deps;
  const random = deps.random ?? Math.random;
  const kind = config.kind;
  const health = createReportingHealth(kind, config, deps);
  let started = false;
  let stopped = false;
  let socket: net.Socket | undefined;
  let timer: Timer | undefined;
  let delayMs = 0;
  let closedWhenDone: Promise<void> = Promise.resolve();

  const result = (ok: boolean, reason: string, event: 'connected' | 'connect-failed' | 'connection-lost', startMs: number, errorCode?: string): void => {
    deps.onResult?.({ kind, ok, reason, event, errorCode, durationMs: clock.now() - startMs });
    health.record(ok, reason);
  };

  const scheduleReconnect = (afterCleanClose = false): void => {
    if (stopped) return;
    delayMs = nextBackoffMs(delayMs, config.maxDelayMs, normalFrom(random));
    logger.debug(`reconnecting in ${formatSeconds(delayMs)}`);
    timer = clock.setTimeout(
      () => connect(afterCleanClose ? config.timeoutCleanReconnectMs : config.connectTimeoutMs, afterCleanClose),
      delayMs,
    );
  };

  const connect = (timeoutMs: number, afterCleanClose: boolean): void => {
    timer = undefined;
    if (stopped) return;
    const startMs = clock.now();
    const sock = net.connect({ host: target.ip, port: target.port, family: target.family });
    socket = sock;
    let connected = false;
    let connectedAtMs = 0;
    let settled = false;
    closedWhenDone = new Promise((resolve) => sock.once('close', () => resolve()));
    // A connection that completed while the loop was busy still wins (setAnswerTimeout).
    const connectTimer = setAnswerTimeout(
      clock,
      () => {
        if (!connected) sock.destroy(Object.assign(new Error(`connect timed out after ${formatSeconds(timeoutMs)}`), { code: 'ETIMEDOUT' }));
      },
      timeoutMs,
    );
    sock.on('data', () => undefined); // discard whatever the server says
    sock.once('connect', () => {
      connected = true;
      connectedAtMs = clock.now();
      connectTimer.cancel();
      sock.setKeepAlive(config.keepalive, config.keepaliveIdleMs);
      result(true, `Connection established to ${target.ip}:${target.port}`, 'connected', startMs);
    });
    // A FIN from the server: close our side too (allowHalfOpen is off).
    sock.once('end', () => undefined);
    sock.once('error', (error: NodeJS.ErrnoException) => {
      settled = true;
      connectTimer.cancel();
      if (stopped) return;
      const code = error.code ?? error.name;
      if (connected && clock.now() - connectedAtMs >= MIN_STABLE_MS) delayMs = 0;
      if (!connected) {
        const why = afterCleanClose ? 'reconnect after clean close failed' : 'connection failed';
        result(false, `${kind} ${why}: ${error.message}`, 'connect-failed', startMs, code);
      } else {
        result(false, `Connection lost: ${error.message}`, 'connection-lost', startMs, code);
      }
      scheduleReconnect();
    });
    sock.once('close', () => {
      connectTimer.cancel();
      if (socket === sock) socket = undefined;
      if (settled || stopped) return;
      if (!connected) {
        // Closed without error before connecting: treat as a failure.
        result(false, `${kind} connection failed: closed before connecting`, 'connect-failed', startMs, 'ECONNABORTED');
        scheduleReconnect();
        return;
      }
      if (clock.now() - connectedAtMs < MIN_STABLE_MS) {
        logger.debug('connection closed cleanly right after opening');
        scheduleReconnect(true);
        return;
      }
      delayMs = 0;
      logger.debug('connection closed cleanly; reconnecting');
      connect(config.timeoutCleanReconnectMs, true);
    });
  };

  return {
    kind,
    start(startOptions) {
      if (started) return;
      started = true;
      if (startOptions?.assumeUp) health.presumeUp();
      const delayMs = Math.max(0, startOptions?.delayMs ?? 0);
      if (delayMs > 0) timer = clock.setTimeout(() => connect(config.connectTimeoutMs, false), delayMs);
      else connect(config.connectTimeoutMs, false);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      timer?.cancel();
      timer = undefined;
      socket?.destroy();
      await closedWhenDone;
    },
    state: () => health.state(),
  };
}
