/**
 * A client for the failover bench, run in the lab's client namespace: starts
 * one HTTP GET every INTERVAL_MS whatever the previous ones are doing, each on
 * a new connection from a source port of its own (FIRST_PORT, FIRST_PORT+1,
 * ...), so that the directors' IPVS connection tables tell which director
 * carried it. A request not answered with 200 within TIMEOUT_MS is lost.
 * One line per request, when it ends:
 *
 *   r <source port> <start ms> <end ms> <status or 0> <X-Served-By or -> <error or ->
 *
 * On SIGTERM it starts no more requests, waits for those in flight and prints
 * `done`.
 *   node dist/bench/lib/failover-client.js HOST PORT FIRST_PORT INTERVAL_MS TIMEOUT_MS
 */
import { request } from 'node:http';

const [host = '', port = '80', firstPort = '20000', intervalMs = '100', timeoutMs = '1000'] = process.argv.slice(2);
let nextPort = Number(firstPort);
let inFlight = 0;
let stopping = false;

function once(): void {
  const localPort = nextPort++;
  const start = Date.now();
  inFlight++;
  let settled = false;
  const finish = (status: number, servedBy: string, error: string): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    inFlight--;
    process.stdout.write(`r ${localPort} ${start} ${Date.now()} ${status} ${servedBy} ${error.replace(/\s+/g, '_') || '-'}\n`);
    if (stopping && inFlight === 0) done();
  };
  const req = request({ host, port: Number(port), path: '/', agent: false, localPort, headers: { connection: 'close' } }, (res) => {
    res.resume();
    res.on('end', () => finish(res.statusCode ?? 0, String(res.headers['x-served-by'] ?? '-'), res.statusCode === 200 ? '' : 'status'));
    res.on('error', (e) => finish(0, '-', e.message));
  });
  const timer = setTimeout(() => {
    req.destroy();
    finish(0, '-', 'timeout');
  }, Number(timeoutMs));
  req.on('error', (e: NodeJS.ErrnoException) => finish(0, '-', e.code ?? e.message));
  req.end();
}

function done(): void {
  process.stdout.write('done\n');
  process.exit(0);
}

const tick = setInterval(once, Number(intervalMs));
once();
process.on('SIGTERM', () => {
  stopping = true;
  clearInterval(tick);
  if (inFlight === 0) done();
});
