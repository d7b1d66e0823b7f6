/**
 * A scripted BGP peer on loopback for session tests: it accepts the speaker's
 * connections, records every message it receives, and sends whatever bytes
 * the test gives it.
 */
import net from 'node:net';
import { decodeMessage, encodeMessage, type BgpMessage, type OpenMessage } from '../../src/bgp/codec.js';
import { Framer } from '../../src/bgp/framer.js';

export interface RawConnection {
  readonly socket: net.Socket;
  readonly received: BgpMessage[];
  closed: boolean;
  send(bytes: Uint8Array | BgpMessage): void;
  /** Decode AS paths with 4-octet ASNs from now on. */
  fourOctetAs: boolean;
}

export interface RawPeer {
  readonly port: number;
  readonly connections: RawConnection[];
  /** The latest connection. */
  last(): RawConnection | undefined;
  close(): Promise<void>;
}

export const PEER_OPEN: OpenMessage = {
  type: 'open',
  version: 4,
  myAs: 64512,
  holdTimeSec: 90,
  bgpId: '192.0.2.1',
  capabilities: [
    { kind: 'multiprotocol', afi: 1, safi: 1 },
    { kind: 'multiprotocol', afi: 2, safi: 1 },
    { kind: 'routeRefresh' },
    { kind: 'fourOctetAs', asn: 64512 },
  ],
};

export function wrapSocket(socket: net.Socket): RawConnection {
  const framer = new Framer();
  const conn: RawConnection = {
    socket,
    received: [],
    closed: false,
    fourOctetAs: false,
    send(x) {
      const bytes = x instanceof Uint8Array ? x : encodeMessage(x, { fourOctetAs: conn.fourOctetAs });
      if (!socket.destroyed) socket.write(bytes);
    },
  };
  socket.on('data', (chunk: Buffer) => {
    for (const frame of framer.push(chunk)) conn.received.push(decodeMessage(frame, { fourOctetAs: conn.fourOctetAs }));
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    conn.closed = true;
  });
  return conn;
}

export async function startRawPeer(host = '127.0.0.1'): Promise<RawPeer> {
  const connections: RawConnection[] = [];
  const server = net.createServer((socket) => connections.push(wrapSocket(socket)));
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  const port = address && typeof address === 'object' ? address.port : 0;
  return {
    port,
    connections,
    last: () => connections[connections.length - 1],
    async close() {
      for (const c of connections) c.socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Polls with real time (sockets are real even when the BGP clock is manual). */
export async function until(what: string, probe: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
