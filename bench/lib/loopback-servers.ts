/**
 * Many small real servers on loopback addresses, in their own process so that
 * their CPU is not counted against the monitors being measured. Driven over
 * the fork IPC channel:
 *   parent -> { cmd: 'start', addresses, httpPort, tcpPort }  -> { ready: true }
 *   parent -> { cmd: 'drop' }   closes every held TCP connection cleanly (FIN)
 *   parent -> { cmd: 'stats' }  -> { httpRequests, tcpConnections }
 */
import http from 'node:http';
import net from 'node:net';

interface StartMessage {
  readonly cmd: 'start';
  readonly addresses: readonly string[];
  readonly httpPort: number;
  readonly tcpPort: number;
}
type Message = StartMessage | { readonly cmd: 'drop' } | { readonly cmd: 'stats' };

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
    const web = http.createServer((_req, res) => {
      counters.httpRequests += 1;
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '3' });
      res.end('ok\n');
    });
    web.keepAliveTimeout = 1000;
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
    process.send?.({ ...counters });
  }
});
process.on('disconnect', () => process.exit(0));
