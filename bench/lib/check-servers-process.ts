/** Starts bench/lib/check-servers.js in its own process and talks to it (see there). */
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CheckServers {
  readonly pid: number | undefined;
  /** Forgets every recorded request; the server process's time of it. */
  reset(): Promise<number>;
  /** Distinct servers that got a request and requests in all, since the last reset; servers with a connection open now. */
  seen(): Promise<{ atMs: number; servers: number; requests: number; open: number }>;
  /** Every request's time per server address, since the last reset. */
  dump(): Promise<{ atMs: number; times: Record<string, number[]> }>;
  /** Requests and connections accepted per server address, since the last reset. */
  counts(): Promise<{ atMs: number; requests: Record<string, number>; connections: Record<string, number> }>;
  stop(): void;
}

export interface CheckServersOptions {
  /** Run the servers inside this network namespace (`ip netns exec`, which execs node: the pid is node's). */
  readonly netns?: string;
}

export async function startCheckServers(port: number, options: CheckServersOptions = {}): Promise<CheckServers> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const inNetns = options.netns === undefined ? {} : { execPath: 'ip', execArgv: ['netns', 'exec', options.netns, process.execPath] };
  const child = fork(path.join(here, 'check-servers.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], ...inNetns });
  let nextId = 0;
  const pending = new Map<number, { resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  child.on('message', (m: { id: number; error?: string } & Record<string, unknown>) => {
    const waiter = pending.get(m.id);
    pending.delete(m.id);
    if (m.error !== undefined) waiter?.reject(new Error(`check servers: ${m.error}`));
    else waiter?.resolve(m);
  });
  child.once('exit', (code, signal) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`check servers exited (${code ?? signal})`));
    pending.clear();
  });
  const ask = <T>(command: Record<string, unknown>): Promise<T> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: (m) => resolve(m as T), reject });
      child.send({ ...command, id });
    });
  try {
    await ask({ cmd: 'listen', port });
  } catch (error) {
    child.kill('SIGTERM');
    throw error;
  }
  return {
    pid: child.pid,
    reset: async () => (await ask<{ atMs: number }>({ cmd: 'reset' })).atMs,
    seen: () => ask({ cmd: 'seen' }),
    dump: () => ask({ cmd: 'dump' }),
    counts: () => ask({ cmd: 'counts' }),
    stop: () => void child.kill('SIGTERM'),
  };
}
