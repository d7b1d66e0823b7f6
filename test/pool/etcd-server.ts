/**
 * A real etcd (Debian's etcd-server, v2 API enabled) on loopback with TLS,
 * for the etcd pool source tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as https from 'node:https';
import { join } from 'node:path';
import { freePort, type TlsFiles } from './helpers.js';

export interface EtcdServer {
  readonly clientPort: number;
  /** Sets a v2 key (a string value); returns etcd's index of the change. */
  put(key: string, value: string): Promise<number>;
  remove(key: string): Promise<number>;
  /** Stops the process and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same ports and data. */
  restart(): Promise<void>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startEtcd(dir: string, tls: TlsFiles): Promise<EtcdServer> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const client = `https://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  let child: ChildProcess | undefined;
  let output = '';

  const call = (method: string, key: string, value?: string): Promise<{ status: number; body: string; index: number }> =>
    new Promise((resolve, reject) => {
      const body = value === undefined ? '' : `value=${encodeURIComponent(value)}`;
      const req = https.request(
        `${client}/v2/keys${key}`,
        {
          method,
          ca: tls.cert,
          agent: false,
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, index: Number(res.headers['x-etcd-index']) }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  const launch = async (): Promise<void> => {
    const proc = spawn(
      'etcd',
      [
        '--name', 'pooltest', '--data-dir', join(dir, 'etcd-data'), '--enable-v2=true',
        '--listen-client-urls', client, '--advertise-client-urls', client,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `pooltest=${peer}`,
        '--cert-file', tls.certFile, '--key-file', tls.keyFile,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    proc.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    proc.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    for (let i = 0; i < 200; i++) {
      if (proc.exitCode !== null) throw new Error(`etcd exited with ${proc.exitCode}:\n${output.slice(-2000)}`);
      try {
        const answer = await call('GET', '/');
        if (answer.status === 200) return;
      } catch {
        // Not listening yet.
      }
      await sleep(50);
    }
    throw new Error(`etcd did not come up:\n${output.slice(-2000)}`);
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    await exited;
  };

  const change = async (method: string, key: string, value?: string): Promise<number> => {
    const answer = await call(method, key, value);
    if (answer.status >= 300) throw new Error(`etcd ${method} ${key}: ${answer.status} ${answer.body}`);
    return answer.index;
  };

  try {
    await launch();
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    clientPort,
    put: (key, value) => change('PUT', key, value),
    remove: (key) => change('DELETE', key),
    stop,
    restart: launch,
  };
}
