/**
 * Sockets that carry a firewall mark (SO_MARK), for data-path checks: a
 * check connects to the service's VIP from a socket marked for one real
 * server, and that server's IPVS firewall-mark service (one destination)
 * forwards the connection to it by the service's forwarding method.
 *
 * Node has no setsockopt(): the sockmark addon (src/native/sockmark.c,
 * built into dist/native/sockmark.node by `npm run build`) opens the socket,
 * marks it and binds it, and Node takes the descriptor over. The addon is
 * loaded when the first marked socket is asked for, never at import: a
 * daemon without data-path checks never needs it. Marking a socket needs
 * CAP_NET_ADMIN. See docs/native.md.
 *
 * TCP: `new net.Socket({ fd })` then `connect()`, in the same tick. A
 * net.Socket made over a descriptor starts reading it at once; on a socket
 * not yet connected that read fails (ENOTCONN) when the loop next polls.
 * The connect (to an IP address: no lookup, Node issues it on the next tick)
 * is always in flight before that poll, and a connecting socket polls
 * neither readable nor hung up; Node then handles it as any connect of its
 * own. connect() is not callable again on the socket: on a closed socket it
 * would make a new one, without the mark, and check the wrong path.
 *
 * UDP: `dgram.createSocket()` then `bind({ fd })`.
 */
import dgram from 'node:dgram';
import { closeSync } from 'node:fs';
import net from 'node:net';
import { loadNativeAddon, type LoadedAddon } from '../runtime/native-addon.js';

/** Where a data-path check connects: the VIP and port, from a socket carrying `mark`. */
export interface MarkedEndpoint {
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
  readonly mark: number;
  readonly localAddress?: string;
}

/** The addon's exports (src/native/sockmark.c). */
interface SockmarkAddon {
  openSocket(family: 4 | 6, kind: 'tcp' | 'udp', mark: number, localAddress?: string): number;
  getMark(fd: number): number;
  sourceFor(family: 4 | 6, address: string): string;
}

/**
 * The addon, loaded on the first call that needs it (or why it does not
 * load: trying again would not help, and every check says the same).
 */
let loaded: LoadedAddon<SockmarkAddon> | undefined;

function load(): LoadedAddon<SockmarkAddon> {
  if (loaded === undefined) {
    const l = loadNativeAddon<SockmarkAddon>('sockmark', ['openSocket', 'getMark', 'sourceFor']);
    loaded = 'reason' in l ? { reason: `data-path checks need ${l.reason}` } : l;
  }
  return loaded;
}

function addon(): SockmarkAddon {
  const l = load();
  if ('reason' in l) throw new Error(l.reason);
  return l.addon;
}

/** Whether the addon loads here (for a clear config/start-up error). */
export function markedSocketsAvailable(): { ok: true } | { ok: false; reason: string } {
  const l = load();
  return 'reason' in l ? { ok: false, reason: l.reason } : { ok: true };
}

/** The descriptor of a socket made here, until it is closed. */
const kFd = Symbol('pybal.markedFd');
type Marked<T> = T & { [kFd]?: number };

function remember<T extends net.Socket | dgram.Socket>(socket: T, fd: number): T {
  (socket as Marked<T>)[kFd] = fd;
  socket.once('close', () => delete (socket as Marked<T>)[kFd]);
  return socket;
}

function checkAddress(what: string, address: string, family: 4 | 6): void {
  if (net.isIP(address) !== family) throw new TypeError(`${what} must be an IPv${family} address, not ${JSON.stringify(address)}`);
}

function checkFamily(family: unknown): asserts family is 4 | 6 {
  if (family !== 4 && family !== 6) throw new TypeError(`family must be 4 or 6, not ${String(family)}`);
}

function refuseReconnect(this: net.Socket): never {
  throw new Error('a marked socket connects once: make a new one with connectMarked()');
}

/**
 * A TCP connection from a socket carrying `mark` (bound to localAddress if
 * given): like net.connect, 'connect'/'error'/'close' events as usual.
 * Errors of socket creation (EPERM...) are emitted as an 'error' event on
 * next tick, not thrown, so callers treat them like connect errors. Bad
 * arguments (host not an address of `family`, a mark out of range) throw a
 * TypeError, and so does a missing addon (an Error).
 */
export function connectMarked(endpoint: MarkedEndpoint, options: { readonly allowHalfOpen?: boolean; readonly onread?: net.OnReadOpts } = {}): net.Socket {
  const { host, port, family, mark, localAddress } = endpoint;
  checkFamily(family);
  checkAddress('host', host, family);
  if (localAddress !== undefined) checkAddress('localAddress', localAddress, family);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`port must be an integer from 1 to 65535, not ${String(port)}`);
  const sockmark = addon();
  let fd: number;
  try {
    fd = sockmark.openSocket(family, 'tcp', mark, localAddress);
  } catch (error) {
    if (error instanceof TypeError) throw error;
    const socket = new net.Socket();
    socket.connect = refuseReconnect;
    process.nextTick(() => socket.destroy(error as Error));
    return socket;
  }
  // Connected in this tick: see the top of this file.
  // `onread` is taken by the constructor as by net.connect (the typings of SocketConstructorOpts lack it).
  const socket = remember(new net.Socket({ fd, readable: true, writable: true, ...options } as net.SocketConstructorOpts), fd);
  socket.connect({ host, port });
  socket.connect = refuseReconnect;
  return socket;
}

/**
 * A UDP socket carrying `mark`, bound to localAddress (port 0) if given,
 * else bound by the kernel at its first send, wrapped by dgram (bind({ fd }));
 * resolves once listening. Rejects on any error: bad arguments (TypeError),
 * no addon, or the addon's (EPERM...).
 */
export function createMarkedUdpSocket(family: 4 | 6, mark: number, localAddress?: string): Promise<dgram.Socket> {
  return new Promise((resolve) => {
    checkFamily(family);
    if (localAddress !== undefined) checkAddress('localAddress', localAddress, family);
    const fd = addon().openSocket(family, 'udp', mark, localAddress);
    const socket = remember(dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6' }), fd);
    // dgram emits 'listening' within bind({ fd }) (Node 20), or throws when it cannot take the descriptor.
    socket.once('listening', () => resolve(socket));
    try {
      socket.bind({ fd });
    } catch (error) {
      socket.close();
      closeSync(fd);
      throw error;
    }
  });
}

/**
 * Whether a socket's descriptor is still open. Both close it before their
 * 'close' event: a net.Socket when destroyed, a dgram socket in close(),
 * after which its address() throws (ERR_SOCKET_DGRAM_NOT_RUNNING).
 */
function isOpen(socket: net.Socket | dgram.Socket): boolean {
  if (socket instanceof net.Socket) return !socket.destroyed;
  try {
    socket.address();
    return true;
  } catch {
    return false;
  }
}

/**
 * The source address the kernel picks towards `address` (its route's
 * preferred source): where a data-path check leaves from when
 * datapath-source-ipv4/-6 does not say. Throws when there is no route.
 */
export function kernelSource(family: 4 | 6, address: string): string {
  checkFamily(family);
  checkAddress('address', address, family);
  return addon().sourceFor(family, address);
}

/** The mark a socket carries (tests and diagnostics): only of a socket made here, while it is open. */
export function socketMark(socket: net.Socket | dgram.Socket): number {
  const fd = (socket as Marked<typeof socket>)[kFd];
  if (fd === undefined || !isOpen(socket)) throw new Error('not an open socket of connectMarked() or createMarkedUdpSocket()');
  return addon().getMark(fd);
}
