/**
 * One BGP peer's connection: the only part of the speaker with sockets and
 * timers. It feeds socket and timer events to the pure FSM and carries out
 * the actions it returns. It also resolves connection collisions (RFC 4271
 * §6.8) and keeps UPDATEs in a queue of their own so that a burst of them
 * never delays a KEEPALIVE.
 */
import net from 'node:net';
import { setAnswerTimeout, type Clock, type Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { errorMessage } from '../runtime/errors.js';
import { LogLimiter } from '../runtime/log-limiter.js';
import type { AddressFamily } from '../config/types.js';
import { formatPrefix, ipv4ToNumber } from './address.js';
import { decodeMessage, encodeMessage, notificationMessage, type BgpMessage, type CodecOptions, type OpenMessage, type UpdateMessage } from './codec.js';
import { CeaseSubcode, ErrorCode } from './constants.js';
import { Framer } from './framer.js';
import {
  initialState,
  localOpen,
  SessionState,
  step,
  type FsmAction,
  type FsmConfig,
  type FsmEvent,
  type FsmState,
  type Negotiated,
  type TimerName,
} from './fsm.js';
import { BgpDecodeError, describeNotification, notification, type Notification } from './notification.js';
import { strongestAction } from './update-errors.js';

export interface PeerEndpoint {
  readonly address: string;
  /** The peer's port (179 unless a test says otherwise). */
  readonly port: number;
  /** Our source address for outgoing connections. */
  readonly localAddress: string | undefined;
}

export interface SessionHandlers {
  onEstablished(session: BgpSession, negotiated: Negotiated): void;
  onDown(session: BgpSession, reason: string): void;
  onRouteRefresh(session: BgpSession, family: AddressFamily): void;
}

export interface SessionOptions {
  readonly peer: PeerEndpoint;
  readonly fsm: FsmConfig;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly handlers: SessionHandlers;
}

export interface SessionCounters {
  messagesIn: number;
  messagesOut: number;
  updatesOut: number;
  /** Received UPDATEs whose routes RFC 7606 treats as withdrawn; the session was kept. */
  updatesTreatedAsWithdraw: number;
  /** Attributes dropped from received UPDATEs that were otherwise kept (RFC 7606 attribute-discard). */
  attributesDiscarded: number;
  /** ROUTE-REFRESH messages that asked for nothing we announce, or had an unknown subtype. */
  routeRefreshesIgnored: number;
}

interface Conn {
  /** Who opened the TCP connection: we did (active) or the peer did (passive). */
  readonly side: 'active' | 'passive';
  readonly socket: net.Socket;
  readonly framer: Framer;
  error: string | undefined;
}

/** Socket bytes beyond which UPDATEs wait in our queue instead of the socket's. */
const UPDATE_HIGH_WATER_BYTES = 64 * 1024;
/** How long a closing socket may take to flush before it is destroyed. */
const CLOSE_GRACE_MS = 2000;
/** How long a colliding incoming connection may take to send its OPEN. */
const COLLISION_OPEN_WAIT_MS = 30_000;
/** A peer's repeated mistakes are logged once per kind per this interval (and always counted). */
const MISTAKE_LOG_INTERVAL_MS = 60_000;
/** Prefixes listed in the log line of a malformed UPDATE. */
const LOGGED_PREFIXES = 16;

function suppressedField(suppressed: number): Record<string, number> {
  return suppressed > 0 ? { notLoggedSinceLast: suppressed } : {};
}

export class BgpSession {
  readonly peer: PeerEndpoint;
  private fsm: FsmState;
  private current: Conn | undefined;
  private candidate: { conn: Conn; timer: Timer } | undefined;
  private readonly closing = new Set<Conn>();
  private readonly timers = new Map<TimerName, Timer>();
  private queue: Buffer[] = [];
  private drainWaiting = false;
  private readonly events: FsmEvent[] = [];
  private dispatching = false;
  private closedWaiters: (() => void)[] = [];
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly handlers: SessionHandlers;
  readonly counters: SessionCounters = {
    messagesIn: 0,
    messagesOut: 0,
    updatesOut: 0,
    updatesTreatedAsWithdraw: 0,
    attributesDiscarded: 0,
    routeRefreshesIgnored: 0,
  };
  private readonly mistakes = new LogLimiter(MISTAKE_LOG_INTERVAL_MS);
  /** The message being dispatched, for the log line of a malformed UPDATE (RFC 7606 §6). */
  private inbound: Uint8Array | undefined;
  private lastUpdateError: string | undefined;
  private establishedAtWallMs: number | undefined;
  private establishedAtMs: number | undefined;
  private lastNotificationIn: string | undefined;
  private lastNotificationOut: string | undefined;
  /** KEEPALIVEs are not sent (see silenceKeepalives). */
  private keepalivesSilenced = false;

  constructor(options: SessionOptions) {
    this.peer = options.peer;
    this.fsm = initialState(options.fsm);
    this.clock = options.clock;
    this.handlers = options.handlers;
    this.log = options.logger.child({ peer: options.peer.address });
  }

  get state(): SessionState {
    return this.fsm.state;
  }

  get negotiated(): Negotiated | undefined {
    return this.fsm.state === SessionState.Established ? this.fsm.negotiated : undefined;
  }

  get lastError(): string | undefined {
    return this.fsm.lastError;
  }

  snapshot(): {
    state: SessionState;
    establishedAtWallMs: number | undefined;
    uptimeMs: number | undefined;
    lastError: string | undefined;
    lastNotificationIn: string | undefined;
    lastNotificationOut: string | undefined;
    lastUpdateError: string | undefined;
    holdTimeSec: number | undefined;
    fourOctetAs: boolean | undefined;
    side: 'active' | 'passive' | undefined;
    queuedUpdateBytes: number;
    counters: SessionCounters;
  } {
    const up = this.fsm.state === SessionState.Established;
    return {
      state: this.fsm.state,
      establishedAtWallMs: up ? this.establishedAtWallMs : undefined,
      uptimeMs: up && this.establishedAtMs !== undefined ? this.clock.now() - this.establishedAtMs : undefined,
      lastError: this.fsm.lastError,
      lastNotificationIn: this.lastNotificationIn,
      lastNotificationOut: this.lastNotificationOut,
      lastUpdateError: this.lastUpdateError,
      holdTimeSec: this.fsm.negotiated?.holdTimeSec,
      fourOctetAs: this.fsm.negotiated?.fourOctetAs,
      side: this.current?.side,
      queuedUpdateBytes: this.queuedBytes,
      counters: { ...this.counters },
    };
  }

  start(): void {
    this.dispatch({ type: 'start' });
  }

  /** Sends `notify` when connected, closes, and stays down. Resolves once every socket is closed. */
  stop(notify: Notification): Promise<void> {
    this.dropCandidate();
    this.dispatch({ type: 'stop', notification: notify });
    return this.whenClosed();
  }

  /** Destroys everything at once, without a NOTIFICATION. */
  destroy(): void {
    this.dropCandidate();
    this.dispatch({ type: 'stop', notification: notification(ErrorCode.Cease, CeaseSubcode.AdministrativeShutdown) });
    for (const conn of [...this.closing]) conn.socket.destroy();
  }

  /**
   * Closes the connection at once and sends nothing, not even a NOTIFICATION:
   * for a graceful restart (RFC 4724 §4), the peer sees the TCP session end
   * and keeps our routes, marked stale, until we are back.
   */
  abandon(): void {
    this.dropCandidate();
    this.dispatch({ type: 'stop', notification: undefined });
    for (const conn of [...this.closing]) conn.socket.destroy();
  }

  whenClosed(): Promise<void> {
    if (!this.current && this.closing.size === 0 && !this.candidate) return Promise.resolve();
    return new Promise((resolve) => this.closedWaiters.push(resolve));
  }

  /**
   * Queues UPDATE messages for an Established session; they go out in order
   * as the socket drains. Returns false (and sends nothing) when not Established.
   */
  sendUpdates(messages: readonly Buffer[]): boolean {
    if (this.fsm.state !== SessionState.Established || !this.current) return false;
    for (const m of messages) this.queue.push(m);
    this.counters.updatesOut += messages.length;
    this.counters.messagesOut += messages.length;
    this.pump();
    return true;
  }

  /** Bytes of UPDATEs waiting in our queue (not yet handed to the socket). */
  get queuedBytes(): number {
    return this.queue.reduce((n, b) => n + b.length, 0);
  }

  /** An incoming connection from this peer's address. */
  acceptIncoming(socket: net.Socket): void {
    const conn = this.attach(socket, 'passive');
    if (this.fsm.state === SessionState.Idle && !this.fsm.enabled) {
      this.log.info('refused a connection: the session is stopped');
      this.closeConn(conn, undefined);
      return;
    }
    switch (this.fsm.state) {
      // Waiting to retry, or between attempts: take the peer's connection now.
      case SessionState.Idle:
      case SessionState.Active:
        this.current = conn;
        this.dispatch({ type: 'tcpConnected' });
        return;
      case SessionState.Established:
        this.log.info('refused a second connection: a session is already established');
        this.closeConn(conn, notification(ErrorCode.Cease, CeaseSubcode.ConnectionCollisionResolution));
        return;
      default:
        // Connect, OpenSent, OpenConfirm: our own connection may be up already (the
        // peer may have accepted it even if we have not heard yet). A collision,
        // decided once the peer's OPEN on the new connection arrives.
        this.dropCandidate();
        conn.socket.write(encodeMessage(localOpen(this.fsm.config)));
        this.counters.messagesOut++;
        this.candidate = {
          conn,
          timer: this.clock.setTimeout(() => {
            if (this.candidate?.conn === conn) this.dropCandidate();
          }, COLLISION_OPEN_WAIT_MS),
        };
    }
  }

  // ------------------------------------------------------------ internals

  private dispatch(event: FsmEvent): void {
    this.events.push(event);
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      for (let e = this.events.shift(); e; e = this.events.shift()) {
        const before = this.fsm.state;
        const result = step(this.fsm, e);
        this.fsm = result.state;
        if (result.state.state !== before) {
          const level = result.state.state === SessionState.Established || before === SessionState.Established ? 'info' : 'debug';
          this.log[level]({ from: before, to: result.state.state }, `state is now ${result.state.state}`);
        }
        for (const action of result.actions) this.execute(action);
      }
    } finally {
      this.dispatching = false;
    }
  }

  private execute(action: FsmAction): void {
    switch (action.type) {
      case 'connect':
        this.connect();
        return;
      case 'disconnect':
        if (this.current) this.closeConn(this.current, undefined);
        this.current = undefined;
        return;
      case 'send':
        this.send(action.message);
        return;
      case 'startTimer': {
        this.timers.get(action.timer)?.cancel();
        const name = action.timer;
        const expire = (): void => {
          this.timers.delete(name);
          this.dispatch({ type: 'timer', timer: name });
        };
        // The hold timer waits on the peer: a KEEPALIVE already waiting in
        // the socket when it expires restarts it instead (setAnswerTimeout).
        this.timers.set(name, name === 'hold' ? setAnswerTimeout(this.clock, expire, action.delayMs) : this.clock.setTimeout(expire, action.delayMs));
        return;
      }
      case 'stopTimer':
        this.timers.get(action.timer)?.cancel();
        this.timers.delete(action.timer);
        return;
      case 'established':
        this.establishedAtMs = this.clock.now();
        this.establishedAtWallMs = this.clock.wallNow();
        this.log.info(
          { peerAsn: action.negotiated.peerAsn, holdTimeSec: action.negotiated.holdTimeSec, families: action.negotiated.families.join(',') },
          'BGP session established',
        );
        if (this.candidate) {
          this.closeConn(this.candidate.conn, notification(ErrorCode.Cease, CeaseSubcode.ConnectionCollisionResolution));
          this.dropCandidate();
        }
        this.handlers.onEstablished(this, action.negotiated);
        return;
      case 'down':
        // Our own stop (shutdown, reconfiguration) is news, not trouble.
        if (action.reason === 'stopped') this.log.info({ reason: action.reason }, 'BGP session down');
        else this.log.warn({ reason: action.reason }, 'BGP session down');
        this.handlers.onDown(this, action.reason);
        return;
      case 'routeRefresh':
        this.log.info({ family: action.family }, 'ROUTE-REFRESH received: sending every route again');
        this.handlers.onRouteRefresh(this, action.family);
        return;
      case 'routeRefreshIgnored': {
        this.counters.routeRefreshesIgnored++;
        const admitted = this.mistakes.admit(`route-refresh ${action.reason.replace(/\d+/g, 'N')}`, this.clock.now());
        if (admitted.log) this.log.info(suppressedField(admitted.suppressed), `ignored a ROUTE-REFRESH: ${action.reason}`);
        return;
      }
      case 'updateErrors':
        this.noteUpdateErrors(action.update);
        return;
    }
  }

  /**
   * An UPDATE the session survives (RFC 7606): counted, remembered for the
   * status, and logged with its NLRI and bytes (§6) once per kind a minute.
   */
  private noteUpdateErrors(update: UpdateMessage): void {
    const errors = update.errors ?? [];
    const action = strongestAction(errors);
    if (action === undefined) return;
    const relevant = errors.filter((e) => e.action === action);
    if (action === 'treat-as-withdraw') this.counters.updatesTreatedAsWithdraw++;
    else this.counters.attributesDiscarded += relevant.length;
    const reasons = relevant.map((e) => e.reason).join('; ');
    this.lastUpdateError = `${action}: ${reasons}`;
    const admitted = this.mistakes.admit(`${action} ${relevant[0]?.attribute ?? 0}`, this.clock.now());
    if (!admitted.log) return;
    const nlri = [...update.nlri, ...(update.attributes.mpReach?.nlri ?? [])].map(formatPrefix);
    const listed = nlri.slice(0, LOGGED_PREFIXES).join(' ') + (nlri.length > LOGGED_PREFIXES ? ` and ${nlri.length - LOGGED_PREFIXES} more` : '');
    const what = action === 'treat-as-withdraw' ? 'routes treated as withdrawn' : 'attributes discarded';
    this.log.warn(
      { nlri: listed, update: this.inbound ? Buffer.from(this.inbound).toString('hex') : '', ...suppressedField(admitted.suppressed) },
      `malformed UPDATE, session kept (${what}; pybal uses no received route): ${reasons}`,
    );
  }

  private codecOptions(): CodecOptions {
    const n = this.fsm.negotiated;
    if (!n) return { fourOctetAs: false };
    return { fourOctetAs: n.fourOctetAs, families: n.families, externalPeer: n.peerAsn !== this.fsm.config.localAsn };
  }

  /**
   * While on, no KEEPALIVE leaves (the FSM's timers run as ever): the BGP
   * thread's answer to a stuck main thread, so that the peer's hold timer
   * takes the director out as it would if the session ran on that thread.
   */
  silenceKeepalives(on: boolean): void {
    this.keepalivesSilenced = on;
  }

  private send(message: BgpMessage): void {
    const conn = this.current;
    if (!conn) return;
    if (message.type === 'keepalive' && this.keepalivesSilenced) return;
    if (message.type === 'notification') {
      // Whatever was queued goes first: withdrawals before the Cease.
      for (const m of this.queue) conn.socket.write(m);
      this.queue = [];
      this.lastNotificationOut = describeNotification(message);
      // A Cease is our own decision (shutdown, collision); anything else is trouble.
      this.log[message.code === ErrorCode.Cease ? 'info' : 'warn'](`sent NOTIFICATION ${this.lastNotificationOut}`);
    }
    this.counters.messagesOut++;
    conn.socket.write(encodeMessage(message, this.codecOptions()));
  }

  private pump(): void {
    const conn = this.current;
    if (!conn) return;
    while (this.queue.length > 0 && conn.socket.writableLength < UPDATE_HIGH_WATER_BYTES) {
      conn.socket.write(this.queue.shift() as Buffer);
    }
    if (this.queue.length > 0 && !this.drainWaiting) {
      this.drainWaiting = true;
      conn.socket.once('drain', () => {
        this.drainWaiting = false;
        if (this.current === conn) this.pump();
      });
    }
  }

  private connect(): void {
    if (this.current) this.discard(this.current);
    const socket = net.connect({
      host: this.peer.address,
      port: this.peer.port,
      ...(this.peer.localAddress ? { localAddress: this.peer.localAddress } : {}),
    });
    const conn = this.attach(socket, 'active');
    this.current = conn;
    socket.once('connect', () => {
      if (this.current === conn) this.dispatch({ type: 'tcpConnected' });
    });
  }

  private attach(socket: net.Socket, side: 'active' | 'passive'): Conn {
    const conn: Conn = { side, socket, framer: new Framer(), error: undefined };
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', (err) => {
      conn.error = errorMessage(err);
    });
    socket.on('close', () => this.onClose(conn));
    return conn;
  }

  /** Drops a connection we no longer want, with no event for the FSM. */
  private discard(conn: Conn): void {
    if (this.current === conn) this.current = undefined;
    this.queue = [];
    this.closing.add(conn);
    conn.socket.destroy();
  }

  /** Closes a connection gracefully (after an optional NOTIFICATION), destroying it if it lingers. */
  private closeConn(conn: Conn, notify: Notification | undefined): void {
    if (this.current === conn) {
      this.current = undefined;
      this.queue = [];
    }
    this.closing.add(conn);
    if (notify && !conn.socket.destroyed) conn.socket.write(encodeMessage(notificationMessage(notify)));
    conn.socket.end();
    const timer = this.clock.setTimeout(() => conn.socket.destroy(), CLOSE_GRACE_MS);
    conn.socket.once('close', () => timer.cancel());
  }

  private dropCandidate(): void {
    const c = this.candidate;
    if (!c) return;
    this.candidate = undefined;
    c.timer.cancel();
    if (!this.closing.has(c.conn)) this.discard(c.conn);
  }

  private onClose(conn: Conn): void {
    this.closing.delete(conn);
    if (this.candidate?.conn === conn) {
      this.candidate.timer.cancel();
      this.candidate = undefined;
    }
    if (this.current === conn) {
      this.current = undefined;
      this.queue = [];
      this.dispatch({ type: 'tcpFailed', reason: conn.error ?? 'connection closed by peer' });
    }
    if (!this.current && this.closing.size === 0 && !this.candidate) {
      const waiters = this.closedWaiters;
      this.closedWaiters = [];
      for (const w of waiters) w();
    }
  }

  private onData(conn: Conn, chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = conn.framer.push(chunk);
    } catch (err) {
      this.onDecodeError(conn, err);
      return;
    }
    for (const frame of frames) {
      if (conn !== this.current && this.candidate?.conn !== conn) return;
      let message: BgpMessage;
      try {
        message = decodeMessage(frame, conn === this.current ? this.codecOptions() : { fourOctetAs: false });
      } catch (err) {
        this.onDecodeError(conn, err);
        return;
      }
      if (conn === this.current) {
        this.counters.messagesIn++;
        if (message.type === 'notification') {
          this.lastNotificationIn = describeNotification(message);
          this.log.warn(`received NOTIFICATION ${this.lastNotificationIn}`);
        }
        this.inbound = frame;
        try {
          this.dispatch({ type: 'message', message });
        } finally {
          this.inbound = undefined;
        }
      } else {
        this.onCandidateMessage(conn, message);
      }
    }
  }

  private onDecodeError(conn: Conn, err: unknown): void {
    if (!(err instanceof BgpDecodeError)) throw err;
    if (conn === this.current) {
      this.dispatch({ type: 'decodeError', notification: err.notification });
    } else {
      this.closeConn(conn, err.notification);
      this.dropCandidate();
    }
  }

  /**
   * RFC 4271 §6.8: of two connections between the same speakers, the one
   * opened by the side with the higher BGP identifier survives. Both sides
   * decide alike, whether or not their own attempt has completed yet.
   */
  private onCandidateMessage(conn: Conn, message: BgpMessage): void {
    const collisionCease = notification(ErrorCode.Cease, CeaseSubcode.ConnectionCollisionResolution);
    if (message.type !== 'open') {
      this.closeConn(conn, undefined);
      this.dropCandidate();
      return;
    }
    const open: OpenMessage = message;
    const state = this.fsm.state;
    const nothingElse = state === SessionState.Idle || state === SessionState.Active;
    const remoteWins = ipv4ToNumber(this.fsm.config.routerId) < ipv4ToNumber(open.bgpId);
    if (state === SessionState.Established || !this.fsm.enabled || (!nothingElse && !remoteWins)) {
      this.log.info('connection collision: keeping our connection');
      this.closeConn(conn, collisionCease);
      this.dropCandidate();
      return;
    }
    this.log.info("connection collision: keeping the peer's connection");
    this.candidate?.timer.cancel();
    this.candidate = undefined;
    if (this.current) {
      if (state === SessionState.Connect) this.discard(this.current);
      else this.closeConn(this.current, collisionCease);
    }
    this.current = conn;
    this.dispatch({ type: 'adoptConnection' });
    this.counters.messagesIn++;
    this.dispatch({ type: 'message', message: open });
  }
}
