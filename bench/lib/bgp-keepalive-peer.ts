/**
 * A measuring BGP peer for benchmarks: an instrument, not part of the daemon.
 * It listens, accepts the speaker's connection (pybal always dials port 179
 * of `bgp-peer-address`), answers the speaker's OPEN with its own OPEN and a
 * KEEPALIVE, then sends a KEEPALIVE every negotiated interval so that the
 * speaker's hold timer never expires, and records when every message from the
 * speaker arrived (performance.now(), when the socket's data event ran), by
 * type. It never ends a session itself (it keeps no hold timer of its own):
 * what it reports is what the speaker did.
 *
 * The wire format, the OPEN it sends and the negotiation are the project's
 * own (src/bgp codec, framer and fsm), so the interval it expects is exactly
 * the one the speaker derives: the smaller hold time of the two OPENs, / 3,
 * in whole seconds, with no jitter (fsm.ts negotiate()).
 *
 * Times are those of this process's event loop: if it is held up, arrivals
 * are recorded late. A probe timer measures that (recorderLagMaxMs) so that a
 * late KEEPALIVE can be told from a late recorder.
 *
 *   const peer = await startKeepalivePeer({ host: '127.0.0.2', port: 179, asn: 64513, routerId: '127.0.0.2', holdTimeSec: 3 });
 *   const from = performance.now(); ...; const to = performance.now();
 *   peer.summary(from, to);
 *   await peer.close();
 */
import net from 'node:net';
import { decodeMessage, encodeMessage, notificationMessage, type BgpMessage } from '../../src/bgp/codec.js';
import { Framer } from '../../src/bgp/framer.js';
import { localOpen, negotiate, type FsmConfig, type Negotiated } from '../../src/bgp/fsm.js';
import { BgpDecodeError, describeNotification } from '../../src/bgp/notification.js';
import { percentile } from './stats.js';

export interface KeepalivePeerOptions {
  /** Address to listen on. */
  readonly host: string;
  /** Port to listen on; 0 for an ephemeral one (see `port`). */
  readonly port: number;
  /** Our AS number (give one other than the speaker's: eBGP). */
  readonly asn: number;
  readonly routerId: string;
  /** Hold time we propose (0, or 3 and more); the session's is the smaller of both OPENs'. */
  readonly holdTimeSec: number;
}

/** What happened to the sessions, in order. */
export type PeerEvent =
  | { readonly atMs: number; readonly kind: 'connected'; readonly remote: string }
  | { readonly atMs: number; readonly kind: 'established'; readonly holdTimeSec: number; readonly keepaliveMs: number }
  /** A NOTIFICATION from the speaker. */
  | { readonly atMs: number; readonly kind: 'notification'; readonly text: string }
  /** A connection ended other than by close(). */
  | { readonly atMs: number; readonly kind: 'closed'; readonly reason: string }
  /** Something wrong on our side of the wire: an OPEN rejected, a malformed message, a second connection. */
  | { readonly atMs: number; readonly kind: 'error'; readonly text: string };

export interface Arrival {
  readonly atMs: number;
  readonly type: BgpMessage['type'];
}

/** How much later than the expected interval a gap must be to count as late. */
export const LATE_MARGIN_MS = 100;

export interface GapFigures {
  /** KEEPALIVEs that arrived in the window. */
  readonly keepalives: number;
  /**
   * Gaps ending in the window: from each KEEPALIVE in it back to the one
   * before (which may precede the window), plus, when the window ends more
   * than the late threshold after the last KEEPALIVE, that open gap (a lower
   * bound of a late one).
   */
  readonly gaps: number;
  readonly gapMedianMs: number;
  readonly gapP99Ms: number;
  readonly gapMaxMs: number;
  /** expectedIntervalMs + LATE_MARGIN_MS. */
  readonly lateThresholdMs: number;
  /** Gaps over the late threshold. */
  readonly late: number;
}

export interface KeepaliveSummary extends GapFigures {
  readonly windowMs: number;
  /** The keepalive interval negotiated by the latest session established by the window's end (NaN: none). */
  readonly expectedIntervalMs: number;
  readonly holdTimeSec: number;
  /** UPDATEs from the speaker in the window. */
  readonly updates: number;
  /** A session was established when the window began. */
  readonly establishedAtStart: boolean;
  /** A session was established when the window ended. */
  readonly establishedAtEnd: boolean;
  /** Connections that ended in the window (not by close()). */
  readonly drops: number;
  /** NOTIFICATIONs from the speaker in the window, described (`6/2 (Cease) "..."`). */
  readonly notifications: readonly string[];
  /** Our own errors in the window (see PeerEvent 'error'). */
  readonly errors: readonly string[];
  /** Sessions established in the window (a reconnect after a drop). */
  readonly establishments: number;
  /** How late this process's own probe timer fired at worst in the window: arrivals may be recorded this late. */
  readonly recorderLagMaxMs: number;
}

export interface KeepalivePeer {
  /** The port listened on (the ephemeral one when 0 was asked for). */
  readonly port: number;
  /** A session is established now. */
  established(): boolean;
  /** Resolves once a session is established; rejects after `timeoutMs`. */
  untilEstablished(timeoutMs: number): Promise<void>;
  /** Every message from the speaker, in order. */
  arrivals(): readonly Arrival[];
  events(): readonly PeerEvent[];
  /** The figures over [fromMs, toMs] on performance.now()'s clock. */
  summary(fromMs: number, toMs: number): KeepaliveSummary;
  /** Stops listening, ends every connection (without a NOTIFICATION) and the timers. */
  close(): Promise<void>;
}

/** Gap figures of KEEPALIVE arrival times (ascending) over [fromMs, toMs]. Pure. */
export function keepaliveGaps(arrivalsMs: readonly number[], fromMs: number, toMs: number, expectedIntervalMs: number): GapFigures {
  const lateThresholdMs = expectedIntervalMs + LATE_MARGIN_MS;
  const gaps: number[] = [];
  let keepalives = 0;
  let last: number | undefined;
  for (const at of arrivalsMs) {
    if (at > toMs) break;
    if (at >= fromMs) {
      keepalives++;
      if (last !== undefined) gaps.push(at - last);
    }
    last = at;
  }
  // Still waiting at the end of the window for longer than is late: that counts too.
  if (last !== undefined && toMs - last > lateThresholdMs) gaps.push(toMs - last);
  gaps.sort((a, b) => a - b);
  return {
    keepalives,
    gaps: gaps.length,
    gapMedianMs: percentile(gaps, 50),
    gapP99Ms: percentile(gaps, 99),
    gapMaxMs: gaps.length === 0 ? NaN : (gaps[gaps.length - 1] ?? NaN),
    lateThresholdMs,
    late: gaps.filter((g) => g > lateThresholdMs).length,
  };
}

/** The probe timer's period: how finely the recorder's own lateness is seen. */
const PROBE_MS = 50;
/** Probe lateness below this is not kept. */
const PROBE_KEEP_MS = 5;

interface Conn {
  readonly socket: net.Socket;
  readonly framer: Framer;
  negotiated: Negotiated | undefined;
  established: boolean;
  keepaliveTimer: NodeJS.Timeout | undefined;
}

export async function startKeepalivePeer(options: KeepalivePeerOptions): Promise<KeepalivePeer> {
  const fsm: FsmConfig = {
    localAsn: options.asn,
    routerId: options.routerId,
    holdTimeSec: options.holdTimeSec,
    peerAsn: undefined,
    families: [4, 6],
    connectRetryMs: 0,
  };
  const now = (): number => performance.now();
  const arrivals: Arrival[] = [];
  const keepalivesMs: number[] = [];
  const events: PeerEvent[] = [];
  const lags: { atMs: number; lagMs: number }[] = [];
  const waiters = new Set<() => void>();
  let current: Conn | undefined;
  let closing = false;

  const record = (event: PeerEvent): void => {
    events.push(event);
    if (event.kind === 'established') for (const w of [...waiters]) w();
  };

  const send = (conn: Conn, message: BgpMessage): void => {
    if (!conn.socket.destroyed) conn.socket.write(encodeMessage(message, { fourOctetAs: conn.negotiated?.fourOctetAs ?? false }));
  };

  const end = (conn: Conn): void => {
    clearInterval(conn.keepaliveTimer);
    conn.keepaliveTimer = undefined;
    conn.established = false;
  };

  const onMessage = (conn: Conn, atMs: number, message: BgpMessage): void => {
    arrivals.push({ atMs, type: message.type });
    switch (message.type) {
      case 'open': {
        if (conn.negotiated) {
          record({ atMs, kind: 'error', text: 'a second OPEN on one connection' });
          return;
        }
        const result = negotiate(fsm, message);
        if (!result.ok) {
          record({ atMs, kind: 'error', text: `rejected the OPEN: sent ${describeNotification(result.notification)}` });
          send(conn, notificationMessage(result.notification));
          conn.socket.end();
          return;
        }
        conn.negotiated = result.negotiated;
        send(conn, localOpen(fsm));
        send(conn, { type: 'keepalive' });
        const everyMs = result.negotiated.keepaliveMs;
        if (everyMs > 0) conn.keepaliveTimer = setInterval(() => send(conn, { type: 'keepalive' }), everyMs);
        return;
      }
      case 'keepalive':
        keepalivesMs.push(atMs);
        if (conn.negotiated && !conn.established) {
          conn.established = true;
          record({ atMs, kind: 'established', holdTimeSec: conn.negotiated.holdTimeSec, keepaliveMs: conn.negotiated.keepaliveMs });
        }
        return;
      case 'notification':
        record({ atMs, kind: 'notification', text: describeNotification(message) });
        return;
      default:
        return;
    }
  };

  const onData = (conn: Conn, chunk: Buffer): void => {
    const atMs = now();
    let frames: Buffer[];
    try {
      frames = conn.framer.push(chunk);
    } catch (error) {
      // A bad header: the stream cannot be resynchronised.
      record({ atMs, kind: 'error', text: error instanceof BgpDecodeError ? error.message : String(error) });
      conn.socket.destroy();
      return;
    }
    for (const frame of frames) {
      try {
        onMessage(conn, atMs, decodeMessage(frame, { fourOctetAs: conn.negotiated?.fourOctetAs ?? false }));
      } catch (error) {
        // Counted under its type, and reported; the session goes on (we measure, we do not police).
        const type = frame[18];
        if (type === 4) keepalivesMs.push(atMs);
        record({ atMs, kind: 'error', text: `undecodable message of type ${type}: ${error instanceof Error ? error.message : String(error)}` });
      }
    }
  };

  const server = net.createServer((socket) => {
    const atMs = now();
    socket.on('error', () => undefined);
    if (closing) {
      socket.destroy();
      return;
    }
    if (current && !current.socket.destroyed) {
      record({ atMs, kind: 'error', text: `refused a second connection from ${socket.remoteAddress}` });
      socket.destroy();
      return;
    }
    const conn: Conn = { socket, framer: new Framer(), negotiated: undefined, established: false, keepaliveTimer: undefined };
    current = conn;
    socket.setNoDelay(true);
    let why: string | undefined;
    socket.on('error', (error) => {
      why = error.message;
    });
    socket.on('data', (chunk: Buffer) => onData(conn, chunk));
    socket.on('close', () => {
      end(conn);
      if (current === conn) current = undefined;
      if (!closing) record({ atMs: now(), kind: 'closed', reason: why ?? 'closed by the speaker' });
    });
    record({ atMs, kind: 'connected', remote: `${socket.remoteAddress}:${socket.remotePort}` });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => undefined);
  const address = server.address();
  const port = address && typeof address === 'object' ? address.port : options.port;

  let due = now() + PROBE_MS;
  const probe = setInterval(() => {
    const t = now();
    if (t - due >= PROBE_KEEP_MS) lags.push({ atMs: t, lagMs: t - due });
    due = t + PROBE_MS;
  }, PROBE_MS);

  /** The established state at `atMs`, from the events. */
  const establishedAt = (atMs: number): boolean => {
    let up = false;
    for (const e of events) {
      if (e.atMs > atMs) break;
      if (e.kind === 'established') up = true;
      else if (e.kind === 'closed') up = false;
    }
    return up;
  };

  return {
    port,
    established: () => current?.established ?? false,
    untilEstablished: (timeoutMs) =>
      new Promise<void>((resolve, reject) => {
        if (current?.established) {
          resolve();
          return;
        }
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(done);
          reject(new Error(`no BGP session established within ${timeoutMs} ms${describeLast(events)}`));
        }, timeoutMs);
        waiters.add(done);
      }),
    arrivals: () => arrivals,
    events: () => events,
    summary(fromMs, toMs) {
      const inWindow = events.filter((e) => e.atMs >= fromMs && e.atMs <= toMs);
      const latest = events.filter((e) => e.kind === 'established' && e.atMs <= toMs).at(-1);
      const expectedIntervalMs = latest?.kind === 'established' ? latest.keepaliveMs : NaN;
      return {
        ...keepaliveGaps(keepalivesMs, fromMs, toMs, expectedIntervalMs),
        windowMs: toMs - fromMs,
        expectedIntervalMs,
        holdTimeSec: latest?.kind === 'established' ? latest.holdTimeSec : NaN,
        updates: arrivals.filter((a) => a.type === 'update' && a.atMs >= fromMs && a.atMs <= toMs).length,
        establishedAtStart: establishedAt(fromMs),
        establishedAtEnd: establishedAt(toMs),
        drops: inWindow.filter((e) => e.kind === 'closed').length,
        notifications: inWindow.flatMap((e) => (e.kind === 'notification' ? [e.text] : [])),
        errors: inWindow.flatMap((e) => (e.kind === 'error' ? [e.text] : [])),
        establishments: inWindow.filter((e) => e.kind === 'established').length,
        // A probe held up across any part of the window: due before its end, fired after its start.
        recorderLagMaxMs: lags.reduce((m, l) => (l.atMs >= fromMs && l.atMs - l.lagMs <= toMs ? Math.max(m, l.lagMs) : m), 0),
      };
    },
    async close() {
      if (closing) return;
      closing = true;
      clearInterval(probe);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      if (current) {
        end(current);
        current.socket.destroy();
      }
      await closed;
    },
  };
}

function describeLast(events: readonly PeerEvent[]): string {
  const e = events.at(-1);
  if (!e) return ': no connection came';
  switch (e.kind) {
    case 'connected':
      return `: connected from ${e.remote}, no session yet`;
    case 'closed':
      return `: the last connection closed (${e.reason})`;
    case 'notification':
      return `: the speaker sent NOTIFICATION ${e.text}`;
    case 'error':
      return `: ${e.text}`;
    default:
      return '';
  }
}
