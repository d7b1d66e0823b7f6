/**
 * ProxyFetch's plain TCP connections without a net.Socket: the tcpcheck addon
 * (src/native/tcpcheck.c, docs/native.md) connects, writes the request and
 * reads on libuv, and calls one function for every connection's events, with
 * the bytes in one buffer shared by all.
 *
 * Why: a net.Socket is about 1.3 KB of JS objects, built and torn down
 * through Node's stream machinery, and its handle keeps it alive until a
 * major collection. Here a connection is a number on the JS side: in the lab
 * guest at 10,000 servers, 0.76 to 0.90 of the CPU per check (the heap the
 * checks thread holds did not change; docs/native.md).
 *
 * Failures read as Node's own (failureReason): `connect ECONNREFUSED
 * 10.0.0.1:80`, `read ECONNRESET`, `write EPIPE`. Where the addon cannot be loaded
 * (`nativeTcpAvailable()` says why), callers use net.Socket as before.
 */
import { getSystemErrorName } from 'node:util';
import { loadNativeAddon, type LoadedAddon } from '../runtime/native-addon.js';

/** What a connection's owner hears; nothing after closeNativeTcp(). */
export interface NativeTcpEvents {
  /** `length` bytes arrived at the start of `buffer`; copy what you keep before returning. */
  onData(buffer: Buffer, length: number): void;
  /** The server closed its side (FIN). */
  onEnd(): void;
  /** The connect, the write or a read failed with error `code` (ECONNREFUSED...): see failureReason. */
  onFailure(syscall: 'connect' | 'write' | 'read', code: string): void;
}

/** A failure as Node words a socket's: `connect ECONNREFUSED 10.0.0.1:80`, `read ECONNRESET`. */
export function failureReason(syscall: 'connect' | 'write' | 'read', code: string, address: string, port: number): string {
  return syscall === 'connect' ? `connect ${code} ${address}:${port}` : `${syscall} ${code}`;
}

/** The addon's exports (src/native/tcpcheck.c). */
interface TcpcheckAddon {
  init(callback: (id: number, event: number, value: number) => void, buffer: Buffer): void;
  open(address: string, port: number, family: number, request: Buffer): number;
  close(id: number): void;
  readonly EVENT_DATA: number;
  readonly EVENT_END: number;
  readonly EVENT_CONNECT_ERROR: number;
  readonly EVENT_WRITE_ERROR: number;
  readonly EVENT_READ_ERROR: number;
}

/** Each read lands here (libuv reads into it and the callback runs at once). */
const READ_BUFFER_BYTES = 16 * 1024;

/** This thread's addon, initialised: loaded at the first use, once per thread. */
interface Loaded {
  readonly addon: TcpcheckAddon;
  /** Open connections by id (the addon reuses an id once its connection is closed). */
  readonly connections: (NativeTcpEvents | undefined)[];
}

let loaded: LoadedAddon<Loaded> | undefined;

function load(): LoadedAddon<Loaded> {
  if (loaded !== undefined) return loaded;
  const found = loadNativeAddon<TcpcheckAddon>('tcpcheck', ['init', 'open', 'close']);
  if (!('addon' in found)) return (loaded = found);
  const { addon } = found;
  const buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  const connections: (NativeTcpEvents | undefined)[] = [];
  const { EVENT_DATA, EVENT_END, EVENT_CONNECT_ERROR, EVENT_WRITE_ERROR } = addon;
  addon.init((id, event, value) => {
    const events = connections[id];
    if (events === undefined) return;
    if (event === EVENT_DATA) events.onData(buffer, value);
    else if (event === EVENT_END) events.onEnd();
    else events.onFailure(event === EVENT_CONNECT_ERROR ? 'connect' : event === EVENT_WRITE_ERROR ? 'write' : 'read', errorName(value));
  }, buffer);
  return (loaded = { addon: { addon, connections } });
}

function errorName(code: number): string {
  try {
    return getSystemErrorName(code);
  } catch {
    return `error ${code}`;
  }
}

/** Whether this thread can use the addon: `true`, or why not. */
export function nativeTcpAvailable(): true | string {
  const l = load();
  return 'addon' in l ? true : l.reason;
}

/**
 * Connects to `address`:`port` (an IP literal of `family`) and, once
 * connected, writes `request` and reads until the end. Returns the
 * connection's id (0 or more), to be passed to closeNativeTcp once; or the
 * error code (ECONNREFUSED...) when the connect could not even start; or
 * undefined where the addon is not available.
 */
export function openNativeTcp(address: string, port: number, family: 4 | 6, request: Buffer, events: NativeTcpEvents): number | string | undefined {
  const l = load();
  if (!('addon' in l)) return undefined;
  const { addon, connections } = l.addon;
  const id = addon.open(address, port, family, request);
  if (id < 0) return errorName(id);
  connections[id] = events;
  return id;
}

/** Closes connection `id` (close(2)); its events stop at once. */
export function closeNativeTcp(id: number): void {
  const l = loaded;
  if (l === undefined || !('addon' in l)) return;
  l.addon.connections[id] = undefined;
  l.addon.addon.close(id);
}
