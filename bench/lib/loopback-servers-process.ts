/**
 * Starts bench/lib/loopback-servers.js in its own process (so that its CPU is
 * not counted against what is measured) and waits until every listener is up.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LoopbackListeners {
  /** Addresses to listen on ('0.0.0.0' takes every 127/8 address at once). */
  readonly addresses: readonly string[];
  readonly httpPort: number;
  readonly tcpPort: number;
}

export async function startLoopbackServers(listeners: readonly LoopbackListeners[]): Promise<ChildProcess> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const child = fork(path.join(here, 'loopback-servers.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    for (const l of listeners) {
      await new Promise<void>((resolve, reject) => {
        child.once('message', (m: { ready?: boolean; error?: string }) => (m.ready ? resolve() : reject(new Error(m.error))));
        child.send({ cmd: 'start', addresses: l.addresses, httpPort: l.httpPort, tcpPort: l.tcpPort });
      });
    }
  } catch (error) {
    child.kill('SIGTERM');
    throw error;
  }
  return child;
}
