/**
 * Many small real servers on loopback addresses, in their own process so that
 * their CPU is not counted against the monitors being measured. Driven over
 * the fork IPC channel:
 *   parent -> { cmd: 'start', addresses, httpPort, tcpPort }  -> { ready: true }
 *   parent -> { cmd: 'drop' }   closes every held TCP connection cleanly (FIN)
 *   parent -> { cmd: 'stats' }  -> { httpRequests, tcpConnections, tcpHeld } (connections made; open now)
 */
import net from 'node:net';

interface StartMessage {
  readonly cmd: 'start';
  readonly addresses: readonly string[];
  readonly httpPort: number;
  readonly tcpPort: number;
}
type Message = StartMessage | { readonly cmd: 'drop' } | { readonly cmd: 'stats' };

const RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n';
const held = new Set<net.Socket>();
const counters = { httpRequests: 0, tcpConnections: 0 };

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: 511 }, () => resolve());
  });
}

async function start(message: StartMessage): Promise<void> {
  for (const address of message.addresses) {
    // A minimal HTTP responder: the load generator should cost as little as
    // possible so that the monitors, not the servers, are what is measured.
    const web = net.createServer((socket) => {
      socket.on('error', () => undefined);
      let head = '';
      socket.on('data', (chunk: Buffer) => {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        counters.httpRequests += 1;
        socket.end(RESPONSE);
      });
    });
    await listen(web, message.httpPort, address);
    const idle = net.createServer((socket) => {
      counters.tcpConnections += 1;
      held.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => held.delete(socket));
      socket.resume();
    });
    await listen(idle, message.tcpPort, address);
  }
}

process.on('message', (message: Message) => {
  if (message.cmd === 'start') {
    start(message).then(
      () => process.send?.({ ready: true }),
      (error: Error) => process.send?.({ error: error.message }),
    );
  } else if (message.cmd === 'drop') {
    for (const socket of held) socket.end();
  } else if (message.cmd === 'stats') {
    process.send?.({ ...counters, tcpHeld: held.size });
  }
});
process.on('disconnect', () => process.exit(0));
