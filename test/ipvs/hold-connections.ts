/**
 * Lab helper: COUNT HTTP/1.1 keep-alive connections to HOST:PORT, each from
 * its own source port (FIRST_PORT, FIRST_PORT + 1, ...), held open. Each
 * connection is a plain socket that is never reopened, so a connection the
 * network broke stays broken (an HTTP agent would quietly open a new one).
 * It sends one request on every connection at start, and another on every
 * connection still open each time it gets SIGUSR2, one round after the
 * other; for each request it prints
 *   `<round> <index> <local port> ok <served-by>` or
 *   `<round> <index> <local port> broken <why>` (reset, closed, timeout)
 * and `<round> done` when the round is over (round 0 is the first).
 *   node dist/test/ipvs/hold-connections.js HOST PORT COUNT FIRST_PORT
 */
import { connect, type Socket } from 'node:net';

const [host = '', portText = '80', countText = '1', firstPortText = '30000'] = process.argv.slice(2);
const REQUEST_TIMEOUT_MS = 5_000;

type Held = { index: number; localPort: number; socket: Socket; broken: string | undefined; buffer: string; waiting: ((line: string) => void) | undefined };

const held: Held[] = [];

/** A complete response at the start of `buffer`: its length and X-Served-By, or undefined when more is needed. */
function parseResponse(buffer: string): { length: number; status: number; servedBy: string } | undefined {
  const end = buffer.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = buffer.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/\S+\s+(\d+)/.exec(head[0] ?? '')?.[1] ?? 0);
  const header = (name: string): string | undefined =>
    head
      .slice(1)
      .find((l) => l.toLowerCase().startsWith(`${name}:`))
      ?.slice(name.length + 1)
      .trim();
  const servedBy = header('x-served-by') ?? '?';
  const contentLength = header('content-length');
  if (contentLength !== undefined) {
    const length = end + 4 + Number(contentLength);
    return buffer.length >= length ? { length, status, servedBy } : undefined;
  }
  // Chunked: complete at the last chunk.
  const last = buffer.indexOf('\r\n0\r\n\r\n', end);
  if (last >= 0) return { length: last + 7, status, servedBy };
  if (buffer.slice(end + 4).startsWith('0\r\n\r\n')) return { length: end + 9, status, servedBy };
  return undefined;
}

function open(index: number, localPort: number): Promise<Held> {
  return new Promise((resolve) => {
    const socket = connect({ host, port: Number(portText), localPort });
    const h: Held = { index, localPort, socket, broken: undefined, buffer: '', waiting: undefined };
    socket.setEncoding('latin1');
    socket.setNoDelay(true);
    const fail = (why: string): void => {
      if (h.broken === undefined) h.broken = why;
      const w = h.waiting;
      h.waiting = undefined;
      w?.(`broken ${h.broken}`);
    };
    socket.on('data', (chunk: string) => {
      h.buffer += chunk;
      const r = parseResponse(h.buffer);
      if (r === undefined) return;
      h.buffer = h.buffer.slice(r.length);
      const w = h.waiting;
      h.waiting = undefined;
      w?.(r.status === 200 ? `ok ${r.servedBy}` : `broken status-${r.status}`);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => fail(e.code === 'ECONNRESET' ? 'reset' : (e.code ?? e.message)));
    socket.on('close', () => fail('closed'));
    socket.once('connect', () => resolve(h));
    socket.once('error', () => resolve(h));
  });
}

function ask(h: Held): Promise<string> {
  if (h.broken !== undefined) return Promise.resolve(`broken ${h.broken}`);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      h.waiting = undefined;
      h.broken = 'timeout';
      h.socket.destroy();
      resolve('broken timeout');
    }, REQUEST_TIMEOUT_MS);
    h.waiting = (line) => {
      clearTimeout(timer);
      resolve(line);
    };
    h.socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}

let round = 0;
let running: Promise<void> = Promise.resolve();

async function runRound(r: number): Promise<void> {
  const lines = await Promise.all(held.map(async (h) => `${r} ${h.index} ${h.localPort} ${await ask(h)}`));
  process.stdout.write(`${lines.join('\n')}\n${r} done\n`);
}

async function main(): Promise<void> {
  const count = Number(countText);
  const first = Number(firstPortText);
  for (let i = 0; i < count; i++) held.push(await open(i, first + i));
  await runRound(0);
  process.on('SIGUSR2', () => {
    const r = ++round;
    running = running.then(() => runRound(r));
  });
  process.stdout.write('ready\n');
}

void main();
// Stay alive between rounds.
setInterval(() => undefined, 1 << 30);
