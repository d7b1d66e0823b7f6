/**
 * The tcpcheck addon (src/native/tcpcheck.c) through native-tcp.ts, against
 * real servers on loopback: what a connection hears (the bytes, the end, each
 * failure as Node words it), nothing after it is closed, ids reused without a
 * closed connection's events reaching the next owner, and a thread that ends
 * with connections open (each closed, the process not aborted).
 * ProxyFetch's verdicts over it are in http-check.test.ts.
 */
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TCPCHECK_ADDON, buildNative } from '../../packaging/build-native.js';
import { closeNativeTcp, nativeTcpAvailable, openNativeTcp, type NativeTcpEvents } from '../../src/monitors/native-tcp.js';
import { loopbackAddress } from './support/helpers.js';

beforeAll(() => {
  // Compiled here when missing or older than its source (npm run build does the same).
  buildNative();
});

const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1');
const ip = loopbackAddress(44);

interface Server {
  readonly port: number;
  /** What each connection sent, as it arrives. */
  readonly received: string[];
  /** Resolves when the n-th connection (from 0) is closed by the client. */
  closed(n: number): Promise<void>;
  readonly connections: number;
  close(): Promise<void>;
}

const open: Server[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function server(onConnection: (socket: net.Socket) => void): Promise<Server> {
  const sockets: net.Socket[] = [];
  const closes: Promise<void>[] = [];
  const received: string[] = [];
  const srv = net.createServer((socket) => {
    const index = sockets.length;
    sockets.push(socket);
    received[index] = '';
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => (received[index] += chunk.toString('latin1')));
    closes.push(new Promise((done) => socket.once('close', () => done())));
    onConnection(socket);
  });
  await new Promise<void>((done) => srv.listen(0, ip, done));
  const s: Server = {
    port: (srv.address() as net.AddressInfo).port,
    received,
    closed: async (n) => {
      while (closes[n] === undefined) await sleep(5);
      await closes[n];
    },
    get connections() {
      return sockets.length;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((done) => srv.close(done));
    },
  };
  open.push(s);
  return s;
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/** Records every event of one connection, and resolves `settled` at its end or failure. */
function recording(): NativeTcpEvents & { readonly calls: string[]; readonly data: string[]; settled: Promise<void> } {
  let settle: () => void = () => undefined;
  const settled = new Promise<void>((done) => (settle = done));
  const calls: string[] = [];
  const data: string[] = [];
  return {
    calls,
    data,
    settled,
    onData(buffer, length) {
      calls.push('data');
      data.push(buffer.toString('latin1', 0, length));
    },
    onEnd() {
      calls.push('end');
      settle();
    },
    onFailure(syscall, code) {
      calls.push(`${syscall} ${code}`);
      settle();
    },
  };
}

function opened(result: number | string | undefined): number {
  if (typeof result !== 'number') throw new Error(`open failed: ${String(result)}`);
  return result;
}

describe('the tcpcheck addon', () => {
  it('loads in this checkout', () => {
    expect(nativeTcpAvailable()).toBe(true);
  });

  it('writes the request once connected, hands over every byte, and says when the server ends', async () => {
    const s = await server((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\n');
        setTimeout(() => socket.end('Content-Length: 0\r\n\r\n'), 20);
      });
    });
    const events = recording();
    const id = opened(openNativeTcp(ip, s.port, 4, REQUEST, events));
    await events.settled;
    expect(events.data.join('')).toBe('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    expect(events.calls.at(-1)).toBe('end');
    expect(events.calls.filter((c) => c !== 'data')).toEqual(['end']);
    expect(s.received[0]).toBe(REQUEST.toString('latin1'));
    closeNativeTcp(id);
    await s.closed(0);
  });

  it('a refused connect, and a reset while reading, as Node names them', async () => {
    const gone = await server(() => undefined);
    await gone.close();
    open.pop();
    const refused = recording();
    const id1 = opened(openNativeTcp(ip, gone.port, 4, REQUEST, refused));
    await refused.settled;
    expect(refused.calls).toEqual(['connect ECONNREFUSED']);
    closeNativeTcp(id1);

    const s = await server((socket) => socket.once('data', () => socket.write('HTTP/1.1 2', () => setTimeout(() => socket.resetAndDestroy(), 20))));
    const reset = recording();
    const id2 = opened(openNativeTcp(ip, s.port, 4, REQUEST, reset));
    await reset.settled;
    expect(reset.calls).toEqual(['data', 'read ECONNRESET']);
    closeNativeTcp(id2);
  });

  it('an address that is not of its family fails at once, with EINVAL', () => {
    expect(openNativeTcp('not an address', 80, 4, REQUEST, recording())).toBe('EINVAL');
    expect(openNativeTcp('127.0.0.1', 80, 6, REQUEST, recording())).toBe('EINVAL');
  });

  it('closed: the server sees the close, and nothing more is heard of it, even what was on its way', async () => {
    // The answer leaves 30 ms after the request came, by when the client has closed.
    const s = await server((socket) => socket.once('data', () => setTimeout(() => socket.end('HTTP/1.1 200 OK\r\n\r\n'), 30)));
    const events = recording();
    const id = opened(openNativeTcp(ip, s.port, 4, REQUEST, events));
    while (s.received[0] !== REQUEST.toString('latin1')) await sleep(5);
    closeNativeTcp(id);
    closeNativeTcp(id); // twice: nothing
    await s.closed(0);
    await sleep(50);
    expect(events.calls).toEqual([]);
  });

  it('an id is reused once its connection is closed, and the closed one never reaches the new owner', async () => {
    const hanging = await server(() => undefined);
    const first = recording();
    const id = opened(openNativeTcp(ip, hanging.port, 4, REQUEST, first));
    closeNativeTcp(id);
    await hanging.closed(0);
    await sleep(10);
    const answering = await server((socket) => socket.once('data', () => socket.end('hello')));
    const second = recording();
    const again = opened(openNativeTcp(ip, answering.port, 4, REQUEST, second));
    expect(again).toBe(id);
    await second.settled;
    expect(second.data.join('')).toBe('hello');
    expect(first.calls).toEqual([]);
    closeNativeTcp(again);
  });

  it('hundreds at once, each with its own bytes', async () => {
    const s = await server((socket) => socket.once('data', () => socket.end(`you are ${socket.remotePort}`)));
    const all = Array.from({ length: 400 }, () => recording());
    const ids = all.map((events) => opened(openNativeTcp(ip, s.port, 4, REQUEST, events)));
    expect(new Set(ids).size).toBe(400);
    await Promise.all(all.map((e) => e.settled));
    for (const events of all) {
      expect(events.calls.at(-1)).toBe('end');
      expect(events.data.join('')).toMatch(/^you are \d+$/);
    }
    // Each connection heard its own answer: 400 different client ports.
    expect(new Set(all.map((e) => e.data.join(''))).size).toBe(400);
    for (const id of ids) closeNativeTcp(id);
  });
});

describe('the tcpcheck addon in a thread that ends with connections open', () => {
  it('closes them as the thread goes (the server sees each close), and the process lives on', async () => {
    // A process of its own: an abort there (libuv's loop closed with handles open) would take the test runner with it.
    const addon = resolve(TCPCHECK_ADDON);
    const script = `
      const net = require('node:net');
      const { Worker } = require('node:worker_threads');
      const closed = [];
      const srv = net.createServer((socket) => {
        socket.on('error', () => {});
        socket.resume(); // reads, so that it sees the client's FIN
        closed.push(new Promise((done) => socket.once('close', done)));
      });
      srv.listen(0, ${JSON.stringify(ip)}, async () => {
        const port = srv.address().port;
        const code = (end) => \`
          const addon = require(\${JSON.stringify(${JSON.stringify(addon)})});
          const { parentPort } = require('node:worker_threads');
          addon.init(() => {}, Buffer.alloc(4096));
          for (let i = 0; i < 20; i++) addon.open(${JSON.stringify(ip)}, \${port}, 4, Buffer.from('GET / HTTP/1.1\\\\r\\\\n\\\\r\\\\n'));
          setTimeout(() => \${end}, 300);
          setInterval(() => {}, 1000);
        \`;
        for (const end of ['process.exit(0)', 'parentPort.postMessage("terminate me")']) {
          const worker = new Worker(code(end), { eval: true });
          worker.on('message', () => worker.terminate());
          await new Promise((done) => worker.once('exit', done));
        }
        while (closed.length < 40) await new Promise((done) => setTimeout(done, 10));
        await Promise.all(closed);
        console.log(JSON.stringify({ connections: closed.length, allClosed: true }));
        srv.close();
      });
    `;
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ connections: 40, allClosed: true });
  });
});
