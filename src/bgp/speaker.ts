/**
 * The BGP speaker: one session per configured peer, a listener for the
 * peers that dial us, and the routes we announce. It keeps, per peer, what
 * that peer has been told (its adj-RIB-out) and sends only the difference
 * from what should be announced now.
 *
 * Public API, for the daemon:
 *   const speaker = new BgpSpeaker(options);
 *   await speaker.start();                 // listen, dial every peer
 *   speaker.setAnnouncements(routes);      // any time: the whole desired set
 *   await speaker.shutdown('maintenance'); // withdraw, Cease 6/2 + message, close
 *   speaker.stop();                        // immediate teardown, no withdrawal
 *   speaker.markReady();                   // graceful restart: the table is ready, End-of-RIB goes
 *   speaker.abandon();                     // graceful restart: close without a word, routes kept
 *   speaker.status();                      // per-peer snapshot for the API/metrics
 */
import net from 'node:net';
import type { AddressFamily } from '../config/types.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { errorMessage } from '../runtime/errors.js';
import { normalizeAddress, type Prefix } from './address.js';
import { BGP_PORT } from './constants.js';
import type { FsmConfig, Negotiated } from './fsm.js';
import { shutdownNotification } from './notification.js';
import { attributesKey, endOfRib, packUpdates, prefixKey, type Route } from './pack.js';
import { BgpSession, type PeerEndpoint } from './session.js';
import type { SessionState } from './fsm.js';

export type { Route } from './pack.js';

export interface PeerOptions {
  readonly address: string;
  /** Default 179. */
  readonly port?: number;
  /** Source address for our outgoing connections (default: the kernel's choice). */
  readonly localAddress?: string;
}

export interface SpeakerOptions {
  readonly localAsn: number;
  readonly routerId: string;
  /** 0, or 3 and more. */
  readonly holdTimeSec: number;
  /** The peers' expected ASN, checked when given. */
  readonly peerAsn?: number;
  readonly connectRetryMs: number;
  /** Families we may announce (one multiprotocol capability each). */
  readonly families: readonly AddressFamily[];
  readonly peers: readonly PeerOptions[];
  /** Where to accept sessions from the peers; undefined: never listen. `""` is every address. */
  readonly listen?: { readonly addresses: readonly string[]; readonly port: number };
  readonly clock: Clock;
  readonly logger: Logger;
  /**
   * RFC 4724 graceful restart (see FsmConfig). With it, End-of-RIB waits for
   * markReady() (the daemon's table is programmed), or half the restart
   * time at most, so that the peers keep our previous routes until the new
   * ones are all there.
   */
  readonly gracefulRestart?: FsmConfig['gracefulRestart'];
  /** Told when a session becomes Established or leaves it (the daemon's event history). */
  readonly onPeerChange?: (change: PeerChange) => void;
}

/** A session reached Established (`up`), or left it, with the FSM's reason. */
export interface PeerChange {
  readonly peer: string;
  readonly up: boolean;
  readonly reason?: string;
}

export interface PeerStatus {
  readonly peer: string;
  readonly state: SessionState;
  /** Wall-clock time the session was established, when it is. */
  readonly establishedAtWallMs: number | undefined;
  readonly uptimeMs: number | undefined;
  readonly lastError: string | undefined;
  readonly lastNotificationIn: string | undefined;
  readonly lastNotificationOut: string | undefined;
  /** The latest received UPDATE error the session survived (RFC 7606), with what was done. */
  readonly lastUpdateError: string | undefined;
  readonly holdTimeSec: number | undefined;
  readonly fourOctetAs: boolean | undefined;
  /** Both sides offered graceful restart: this peer keeps our routes while pybal restarts. */
  readonly gracefulRestart: boolean | undefined;
  /** Who opened the current connection: we (active) or the peer (passive), as PyBal's `side` label. */
  readonly side: 'active' | 'passive' | undefined;
  /** UPDATE bytes waiting for the socket to drain. */
  readonly queuedUpdateBytes: number;
  /** Prefixes this peer has been told about (its adj-RIB-out). */
  readonly prefixesSent: number;
  readonly messagesIn: number;
  readonly messagesOut: number;
  readonly updatesOut: number;
  /** Received UPDATEs treated as withdrawn (RFC 7606), the session kept. */
  readonly updatesTreatedAsWithdraw: number;
  /** Attributes discarded from received UPDATEs (RFC 7606, RFC 6793), the session kept. */
  readonly attributesDiscarded: number;
  /** ROUTE-REFRESH messages ignored: unknown subtype (RFC 7313) or family not negotiated (RFC 2918). */
  readonly routeRefreshesIgnored: number;
}

interface PeerRecord {
  readonly session: BgpSession;
  /** What the peer was told, by prefix key. Empty when not Established. */
  readonly sent: Map<string, { readonly prefix: Prefix; readonly attributes: string }>;
  negotiated: Negotiated | undefined;
  /** End-of-RIB not sent yet on this session (graceful restart: waiting for markReady). */
  eorPending: boolean;
}

/** How long shutdown() waits for the peers by default. */
const DEFAULT_SHUTDOWN_MS = 3000;

export class BgpSpeaker {
  private readonly options: SpeakerOptions;
  private readonly log: Logger;
  private readonly peers = new Map<string, PeerRecord>();
  private readonly servers: net.Server[] = [];
  private desired = new Map<string, Route>();
  private flushScheduled = false;
  private running = false;
  /** The daemon's table is ready: End-of-RIB may go. Always, without graceful restart. */
  private ready: boolean;
  private readyDeadline: Timer | undefined;

  constructor(options: SpeakerOptions) {
    this.options = options;
    this.log = options.logger.child({ component: 'bgp' });
    const gr = options.gracefulRestart;
    const fsm: FsmConfig = {
      localAsn: options.localAsn,
      routerId: options.routerId,
      holdTimeSec: options.holdTimeSec,
      peerAsn: options.peerAsn,
      families: options.families,
      connectRetryMs: options.connectRetryMs,
      gracefulRestart: gr && {
        ...gr,
        // A restart (the kernel kept forwarding some family) until End-of-RIB has gone.
        restarting: () => !this.ready && gr.forwarding().length > 0,
      },
    };
    this.ready = options.gracefulRestart === undefined;
    for (const p of options.peers) {
      const address = normalizeAddress(p.address);
      if (!address) throw new Error(`BGP peer address is not an IP address: ${p.address}`);
      const endpoint: PeerEndpoint = { address, port: p.port ?? BGP_PORT, localAddress: p.localAddress };
      const record: PeerRecord = {
        sent: new Map(),
        negotiated: undefined,
        eorPending: false,
        session: new BgpSession({
          peer: endpoint,
          fsm,
          clock: options.clock,
          logger: this.log,
          handlers: {
            onEstablished: (_s, negotiated) => {
              this.onEstablished(record, negotiated);
              this.options.onPeerChange?.({ peer: address, up: true });
            },
            onDown: (_s, reason) => {
              record.sent.clear();
              record.negotiated = undefined;
              record.eorPending = false;
              this.options.onPeerChange?.({ peer: address, up: false, reason });
            },
            onRouteRefresh: (_s, family) => this.onRouteRefresh(record, family),
          },
        }),
      };
      this.peers.set(address, record);
    }
  }

  /**
   * Starts listening (when configured) and dials every peer. A listen address
   * that cannot be bound is logged and skipped: the sessions we dial still work.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const listen = this.options.listen;
    for (const address of listen?.addresses ?? []) {
      const port = listen?.port ?? BGP_PORT;
      const server = net.createServer((socket) => this.onIncoming(socket));
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ port, ...(address ? { host: address } : {}) }, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        this.log.error({ address: address || '*', port, err: errorMessage(err) }, 'cannot listen for BGP connections');
        continue;
      }
      server.on('error', (err) => this.log.error({ err: errorMessage(err) }, 'BGP listener error'));
      this.servers.push(server);
    }
    for (const record of this.peers.values()) record.session.start();
    const gr = this.options.gracefulRestart;
    if (!this.ready && gr !== undefined) {
      // The peers flush our stale routes at the restart time; say End-of-RIB before that whatever happens.
      const ms = Math.max(1_000, Math.min(60_000, (gr.restartTimeSec * 1000) / 2));
      this.readyDeadline = this.options.clock.setTimeout(() => {
        if (this.ready) return;
        this.log.warn(`The table is not ready ${ms / 1000} s after start: End-of-RIB goes now, and the routers drop the routes not announced again`);
        this.markReady();
      }, ms);
    }
  }

  /**
   * Graceful restart: every service is programmed and what is to be
   * announced has been set, so End-of-RIB goes to each peer (after the
   * routes), and the routers drop whatever stale route we did not announce
   * again. Harmless when called again, or without graceful restart.
   */
  markReady(): void {
    this.readyDeadline?.cancel();
    this.readyDeadline = undefined;
    if (this.ready) return;
    this.ready = true;
    for (const record of this.peers.values()) this.sendEorIfDue(record);
  }

  /**
   * Graceful restart: closes every session at once and sends nothing, not
   * even a Cease, so that each peer keeps our routes for the restart time
   * while the kernel forwards on and the next pybal process comes up.
   */
  abandon(): void {
    this.running = false;
    this.readyDeadline?.cancel();
    this.closeListeners();
    for (const record of this.peers.values()) record.session.abandon();
    this.log.info('BGP sessions closed for a graceful restart: the routers keep the routes until pybal is back');
  }

  /** Stops (or resumes) every session's KEEPALIVEs; see BgpSession.silenceKeepalives. */
  silenceKeepalives(on: boolean): void {
    for (const record of this.peers.values()) record.session.silenceKeepalives(on);
  }

  /** The port the first listener is bound to (useful when it was 0). */
  listeningPort(): number | undefined {
    const address = this.servers[0]?.address();
    return address && typeof address === 'object' ? address.port : undefined;
  }

  /**
   * The whole set of routes to announce now (a value: later calls replace it).
   * Established peers receive only the differences, batched on the next tick.
   */
  setAnnouncements(routes: readonly Route[]): void {
    const next = new Map<string, Route>();
    for (const r of routes) next.set(prefixKey(r.prefix), r);
    this.desired = next;
    this.scheduleFlush();
  }

  /** The routes currently meant to be announced. */
  announcements(): Route[] {
    return [...this.desired.values()];
  }

  /**
   * Withdraws every route from every peer, sends Cease 6/2 with `reason` as
   * the RFC 8203 message, and closes. Resolves when every connection is
   * closed, or after `timeoutMs`, when whatever is left is destroyed.
   */
  async shutdown(reason: string, timeoutMs = DEFAULT_SHUTDOWN_MS): Promise<void> {
    this.running = false;
    this.readyDeadline?.cancel();
    this.closeListeners();
    this.desired = new Map();
    const closed: Promise<void>[] = [];
    for (const record of this.peers.values()) {
      this.sync(record);
      closed.push(record.session.stop(shutdownNotification(reason)));
    }
    const abort = new AbortController();
    const deadline = this.options.clock.sleep(timeoutMs, abort.signal).then(
      () => 'timeout' as const,
      () => 'done' as const,
    );
    const outcome = await Promise.race([Promise.all(closed).then(() => 'done' as const), deadline]);
    abort.abort();
    if (outcome === 'timeout') {
      this.log.warn('BGP shutdown deadline reached: closing the remaining connections');
      for (const record of this.peers.values()) record.session.destroy();
    }
    this.log.info('BGP speaker shut down');
  }

  /** Stops at once: no withdrawals; a Cease goes out best-effort and every socket is destroyed. */
  stop(): void {
    this.running = false;
    this.readyDeadline?.cancel();
    this.closeListeners();
    for (const record of this.peers.values()) record.session.destroy();
  }

  status(): PeerStatus[] {
    return [...this.peers.entries()].map(([peer, record]) => {
      const s = record.session.snapshot();
      return {
        peer,
        state: s.state,
        establishedAtWallMs: s.establishedAtWallMs,
        uptimeMs: s.uptimeMs,
        lastError: s.lastError,
        lastNotificationIn: s.lastNotificationIn,
        lastNotificationOut: s.lastNotificationOut,
        lastUpdateError: s.lastUpdateError,
        holdTimeSec: s.holdTimeSec,
        fourOctetAs: s.fourOctetAs,
        gracefulRestart: record.negotiated?.gracefulRestart,
        side: s.side,
        queuedUpdateBytes: s.queuedUpdateBytes,
        prefixesSent: record.sent.size,
        messagesIn: s.counters.messagesIn,
        messagesOut: s.counters.messagesOut,
        updatesOut: s.counters.updatesOut,
        updatesTreatedAsWithdraw: s.counters.updatesTreatedAsWithdraw,
        attributesDiscarded: s.counters.attributesDiscarded,
        routeRefreshesIgnored: s.counters.routeRefreshesIgnored,
      };
    });
  }

  // ------------------------------------------------------------ internals

  private closeListeners(): void {
    for (const server of this.servers.splice(0)) server.close();
  }

  private onIncoming(socket: net.Socket): void {
    const remote = normalizeAddress(socket.remoteAddress ?? '');
    const record = remote ? this.peers.get(remote) : undefined;
    if (!record || !this.running) {
      this.log.info({ remote: socket.remoteAddress }, 'refused a BGP connection from an address that is not a configured peer');
      socket.destroy();
      return;
    }
    socket.on('error', (err) => this.log.debug({ err: errorMessage(err) }, 'incoming BGP socket error'));
    record.session.acceptIncoming(socket);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      for (const record of this.peers.values()) this.sync(record);
    });
  }

  private onEstablished(record: PeerRecord, negotiated: Negotiated): void {
    record.negotiated = negotiated;
    record.sent.clear();
    record.eorPending = true;
    this.sync(record);
    this.sendEorIfDue(record);
  }

  /** RFC 4724: End-of-RIB after the initial announcement, per family; with graceful restart, once the table is ready. */
  private sendEorIfDue(record: PeerRecord): void {
    const negotiated = record.negotiated;
    if (!this.ready || !record.eorPending || negotiated === undefined) return;
    // What is desired now goes first: the End-of-RIB closes it.
    this.sync(record);
    const options = { fourOctetAs: negotiated.fourOctetAs };
    if (record.session.sendUpdates(negotiated.families.map((f) => endOfRib(f, options)))) record.eorPending = false;
  }

  /** RFC 2918: send every route of the family again (PyBal would reset the session instead). */
  private onRouteRefresh(record: PeerRecord, family: AddressFamily): void {
    const negotiated = record.negotiated;
    if (!negotiated) return;
    this.sync(record);
    const routes = [...this.desired.values()].filter((r) => r.prefix.family === family);
    record.session.sendUpdates(packUpdates(family, { withdraw: [], announce: routes }, { fourOctetAs: negotiated.fourOctetAs }));
  }

  /** Sends the peer the difference between what it was told and what is desired now. */
  private sync(record: PeerRecord): void {
    const negotiated = record.negotiated;
    if (!negotiated || record.session.negotiated === undefined) return;
    const options = { fourOctetAs: negotiated.fourOctetAs };
    for (const family of negotiated.families) {
      const withdraw: Prefix[] = [];
      const announce: Route[] = [];
      for (const [key, told] of record.sent) {
        if (told.prefix.family === family && !this.desired.has(key)) withdraw.push(told.prefix);
      }
      for (const [key, route] of this.desired) {
        if (route.prefix.family === family && record.sent.get(key)?.attributes !== attributesKey(route)) announce.push(route);
      }
      if (withdraw.length === 0 && announce.length === 0) continue;
      if (!record.session.sendUpdates(packUpdates(family, { withdraw, announce }, options))) return;
      for (const p of withdraw) record.sent.delete(prefixKey(p));
      for (const r of announce) record.sent.set(prefixKey(r.prefix), { prefix: r.prefix, attributes: attributesKey(r) });
      this.log.debug({ peer: record.session.peer.address, family, announced: announce.length, withdrawn: withdraw.length }, 'sent UPDATEs');
    }
  }
}

/**
 * What the daemon publishes to, for a speaker: every publish sets the whole
 * announcement, then, once `ready()` says every configured service is in the
 * kernel, End-of-RIB may go (graceful restart; see markReady). In that
 * order, always: a VIP is announced only once its service is programmed, so
 * the table becomes ready at the very moment its last VIP becomes
 * announceable, and the publish that carries that VIP comes after. An
 * End-of-RIB said before it would have the routers drop the VIP's stale
 * route and take it back a moment later, when the publish sends it (a
 * restart that was to be invisible, seen by GoBGP as a best-path change to
 * another director).
 */
export function announcingThenReady(speaker: Pick<BgpSpeaker, 'setAnnouncements' | 'markReady'>, ready: () => boolean): { setAnnouncements(routes: readonly Route[]): void } {
  return {
    setAnnouncements: (routes) => {
      speaker.setAnnouncements(routes);
      if (ready()) speaker.markReady();
    },
  };
}
