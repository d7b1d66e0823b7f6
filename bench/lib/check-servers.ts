/**
 * The checks benchmark's real servers, in their own process so that their CPU
 * is not counted against the checkers: one listener on 0.0.0.0:<port>
 * answers every 127/8 address, and each request is recorded under the address
 * it was sent to (the socket's local address), i.e. per real server. `GET /`
 * or anything else gets a small 200. Driven over the fork IPC channel, each
 * message carrying an `id` that its answer repeats:
 *   { cmd: 'listen', port }  -> { ready: true }
 *   { cmd: 'reset' }         -> { atMs }  forgets every recorded request
 *   { cmd: 'seen' }          -> { atMs, servers, requests, open }  since the last reset; `open`:
 *                               servers holding an open connection now (IdleConnection's)
 *   { cmd: 'dump' }          -> { atMs, times: { address: [ms, ...] } }  since the last reset
 *   { cmd: 'counts' }        -> { atMs, requests: { address: n }, connections: { address: n } }
 *                               since the last reset: requests, and connections accepted
 *                               (a TCP connect check sends no request)
 * Times are Date.now() in ms, the same clock as the parent's.
 */
import net from 'node:net';

type Command = { readonly cmd: 'listen'; readonly port: number } | { readonly cmd: 'reset' } | { readonly cmd: 'seen' } | { readonly cmd: 'dump' } | { readonly cmd: 'counts' };
type Message = Command & { readonly id: number };

const RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n';
let times = new Map<string, number[]>();
let requests = 0;
/** Connections accepted per server address since the last reset. */
let connections = new Map<string, number>();
/** Open connections per server address (whatever the time of the last reset). */
const openConnections = new Map<string, number>();

function record(address: string): void {
  const at = Date.now();
  const list = times.get(address);
  if (list) list.push(at);
  else times.set(address, [at]);
  requests += 1;
}

function listen(port: number): Promise<void> {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    // IPv4-mapped forms never occur on a 0.0.0.0 listener, but be plain about it.
    const local = (socket.localAddress ?? '').replace(/^::ffff:/, '');
    connections.set(local, (connections.get(local) ?? 0) + 1);
    openConnections.set(local, (openConnections.get(local) ?? 0) + 1);
    socket.once('close', () => {
      const left = (openConnections.get(local) ?? 1) - 1;
      if (left > 0) openConnections.set(local, left);
      else openConnections.delete(local);
    });
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      record(local);
      socket.end(RESPONSE);
    };
    socket.on('data', onData);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: '0.0.0.0', backlog: 4096 }, () => resolve());
  });
}

async function answer(message: Message): Promise<Record<string, unknown>> {
  switch (message.cmd) {
    case 'listen':
      await listen(message.port);
      return { ready: true };
    case 'reset':
      times = new Map();
      requests = 0;
      connections = new Map();
      return { atMs: Date.now() };
    case 'seen':
      return { atMs: Date.now(), servers: times.size, requests, open: openConnections.size };
    case 'dump':
      return { atMs: Date.now(), times: Object.fromEntries(times) };
    case 'counts':
      return { atMs: Date.now(), requests: Object.fromEntries([...times].map(([address, list]) => [address, list.length])), connections: Object.fromEntries(connections) };
  }
}

process.on('message', (message: Message) => {
  answer(message).then(
    (reply) => process.send?.({ id: message.id, ...reply }),
    (error: Error) => process.send?.({ id: message.id, error: error.message }),
  );
});
process.on('disconnect', () => process.exit(0));
