/**
 * A TCP port on loopback whose connects hang: a listener with a backlog of
 * one that never accepts, its queue filled by one held connection, so that
 * the kernel drops further SYNs (as a blackholed server would).
 */
import { spawn } from 'node:child_process';
import net from 'node:net';

export interface Blackhole {
  readonly ip: string;
  readonly port: number;
  stop(): Promise<void>;
}

export async function startBlackhole(ip: string): Promise<Blackhole> {
  // A child node that listens, prints its port and then blocks its event loop
  // for good, so that it never accepts.
  const script = [
    "const net = require('node:net');",
    'const server = net.createServer();',
    'server.listen({ port: 0, host: process.argv[1], backlog: 1 }, () => {',
    '  process.stdout.write(server.address().port + "\\n");',
    '  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);',
    '});',
  ].join('\n');
  const child = spawn(process.execPath, ['-e', script, ip], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  // Fill the accept queue until a connect no longer completes.
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 16; i++) {
    const socket = net.connect(port, ip);
    socket.on('error', () => undefined);
    const connected = await new Promise<boolean>((resolve) => {
      socket.once('connect', () => resolve(true));
      setTimeout(() => resolve(false), 200);
    });
    if (!connected) {
      socket.destroy();
      break;
    }
    fillers.push(socket);
  }
  return {
    ip,
    port,
    async stop() {
      for (const socket of fillers) socket.destroy();
      const closed = new Promise((resolve) => child.once('close', resolve));
      child.kill('SIGKILL');
      await closed;
    },
  };
}
