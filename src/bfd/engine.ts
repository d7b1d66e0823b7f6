/**
 * BFD for pybal's BGP peers over UDP (RFC 5881, single hop): one session per
 * peer, all received on the Control port (3784) of each address family and
 * sent from a source port of the session's own in 49152-65535, with a TTL
 * (hop limit) of 255.
 *
 * RFC 5881 §5 also asks a receiver to drop packets whose TTL is not 255 (so
 * that only a neighbour on the link can reach the session); Node's UDP
 * sockets cannot read a packet's TTL. pybal instead takes a session's packets
 * only from its peer's address, and the sessions matter only to the routers,
 * which check the TTL of what pybal sends.
 */
import dgram from 'node:dgram';
import { familyOf, normalizeAddress } from '../bgp/address.js';
import type { Clock } from '../runtime/clock.js';
import { errorMessage } from '../runtime/errors.js';
import { BFD_CONTROL_PORT, decodeControl } from './packet.js';
import { BfdSession, type BfdSessionStatus, type BfdStateChange } from './session.js';

export interface BfdPeer {
  readonly address: string;
  /** Our address towards it, when pybal.conf binds BGP to one. */
  readonly localAddress?: string | undefined;
}

export interface BfdEngineOptions {
  readonly clock: Clock;
  readonly peers: readonly BfdPeer[];
  readonly intervalMs: number;
  readonly detectMult: number;
  readonly onStateChange: (peer: string, change: BfdStateChange) => void;
  /** Problems worth a log line (a socket that could not bind, a packet from nowhere). */
  readonly onProblem: (message: string) => void;
  /** The Control port; tests use another. Default 3784. */
  readonly controlPort?: number;
  /** Where sessions send to (tests); default controlPort. */
  readonly remotePort?: number;
}

export type BfdPeerStatus = BfdSessionStatus & { readonly peer: string };

const SOURCE_PORT_MIN = 49152;
const SOURCE_PORT_MAX = 65535;

interface Entry {
  readonly peer: string;
  readonly session: BfdSession;
  readonly socket: dgram.Socket;
}

export class BfdEngine {
  private readonly byDiscriminator = new Map<number, Entry>();
  private readonly byPeer = new Map<string, Entry>();
  private readonly receivers: dgram.Socket[] = [];
  private readonly discarded = new Map<string, number>();

  constructor(private readonly options: BfdEngineOptions) {}

  async start(): Promise<void> {
    const port = this.options.controlPort ?? BFD_CONTROL_PORT;
    const families = new Set(this.options.peers.map((p) => familyOf(p.address)));
    for (const family of [4, 6] as const) {
      if (!families.has(family)) continue;
      const socket = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6', ipv6Only: family === 6 });
      socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address));
      socket.on('error', (error) => this.options.onProblem(`BFD receive socket (IPv${family}): ${errorMessage(error)}`));
      await bind(socket, port, family === 4 ? '0.0.0.0' : '::');
      this.receivers.push(socket);
    }
    for (const peer of this.options.peers) {
      const address = normalizeAddress(peer.address);
      if (address === undefined || this.byPeer.has(address)) continue;
      const family = familyOf(address)!;
      const socket = await this.sourceSocket(family, peer.localAddress);
      socket.on('error', (error) => this.options.onProblem(`BFD socket to ${address}: ${errorMessage(error)}`));
      const remotePort = this.options.remotePort ?? port;
      const session = new BfdSession({
        clock: this.options.clock,
        myDiscriminator: this.newDiscriminator(),
        intervalUs: Math.round(this.options.intervalMs * 1000),
        detectMult: this.options.detectMult,
        send: (packet) => socket.send(packet, remotePort, address),
        onStateChange: (change) => this.options.onStateChange(address, change),
      });
      const entry = { peer: address, session, socket };
      this.byDiscriminator.set(session.status().myDiscriminator, entry);
      this.byPeer.set(address, entry);
    }
    for (const entry of this.byPeer.values()) entry.session.start();
  }

  /** Tells every peer AdminDown, then closes the sockets. */
  async stop(): Promise<void> {
    for (const entry of this.byPeer.values()) entry.session.stop(true);
    // Let the AdminDown packets leave before their sockets close.
    await new Promise((resolve) => setImmediate(resolve));
    await Promise.all([...this.byPeer.values()].map((e) => close(e.socket)));
    await Promise.all(this.receivers.map(close));
    this.byPeer.clear();
    this.byDiscriminator.clear();
    this.receivers.length = 0;
  }

  /** Stop or resume sending, sessions unchanged (see BfdSession.silence). */
  silence(silenced: boolean): void {
    for (const entry of this.byPeer.values()) entry.session.silence(silenced);
  }

  status(): BfdPeerStatus[] {
    return [...this.byPeer.values()].map((e) => ({ peer: e.peer, ...e.session.status() }));
  }

  /** Packets discarded so far, by reason (for tests and status). */
  discards(): Record<string, number> {
    return Object.fromEntries(this.discarded);
  }

  private onMessage(msg: Buffer, from: string): void {
    const source = normalizeAddress(from.replace(/^::ffff:(?=\d+\.)/, '')) ?? from;
    const packet = decodeControl(msg);
    if ('discard' in packet) return this.discard(packet.discard);
    const entry = packet.yourDiscriminator !== 0 ? this.byDiscriminator.get(packet.yourDiscriminator) : this.byPeer.get(source);
    if (entry === undefined) return this.discard(packet.yourDiscriminator !== 0 ? 'unknown Your Discriminator' : 'not from a BGP peer');
    if (entry.peer !== source) return this.discard("another session's discriminator");
    entry.session.receive(packet);
  }

  private discard(reason: string): void {
    this.discarded.set(reason, (this.discarded.get(reason) ?? 0) + 1);
  }

  private newDiscriminator(): number {
    for (;;) {
      const d = (Math.random() * 0xffffffff) >>> 0;
      if (d !== 0 && !this.byDiscriminator.has(d)) return d;
    }
  }

  /** A socket bound to a free source port in 49152-65535 (RFC 5881 §4), TTL 255. */
  private async sourceSocket(family: 4 | 6, localAddress: string | undefined): Promise<dgram.Socket> {
    const span = SOURCE_PORT_MAX - SOURCE_PORT_MIN + 1;
    let lastError: unknown;
    for (let attempt = 0; attempt < 64; attempt++) {
      const socket = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6', ipv6Only: family === 6 });
      try {
        await bind(socket, SOURCE_PORT_MIN + Math.floor(Math.random() * span), localAddress ?? (family === 4 ? '0.0.0.0' : '::'));
        socket.setTTL(255);
        return socket;
      } catch (error) {
        lastError = error;
        await close(socket);
      }
    }
    throw new Error(`no free BFD source port: ${errorMessage(lastError)}`);
  }
}

function bind(socket: dgram.Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    socket.once('error', onError);
    socket.bind({ port, address, exclusive: true }, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}

function close(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve();
    }
  });
}
