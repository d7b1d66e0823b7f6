/**
 * Lab helper: one HTTP keep-alive connection to HOST:PORT, held open. It
 * prints `first <status> <served-by> <local port>` for a first request, and
 * `again ...` for another one on the same connection each time it gets
 * SIGUSR2, or `closed` if the connection ends: a test can tell whether an
 * IPVS change broke an established connection.
 *   node dist/test/ipvs/hold-connection.js HOST PORT
 */
import { Agent, get } from 'node:http';

const [host = '', port = '80'] = process.argv.slice(2);
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function request(tag: string): void {
  const req = get({ host, port: Number(port), path: '/', agent }, (res) => {
    res.resume();
    res.on('end', () => process.stdout.write(`${tag} ${res.statusCode} ${String(res.headers['x-served-by'])} ${req.socket?.localPort}\n`));
  });
  req.on('socket', (socket) => {
    if (socket.listenerCount('close') === 0 || tag === 'first') socket.once('close', () => process.stdout.write('closed\n'));
  });
  req.on('error', (e) => process.stdout.write(`error ${e.message}\n`));
}

request('first');
process.on('SIGUSR2', () => request('again'));
// Stay alive between requests.
setInterval(() => undefined, 1 << 30);
