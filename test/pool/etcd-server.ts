/**
 * A real etcd (Debian's etcd-server) on loopback with TLS, for the etcd pool
 * source tests: with the v2 API on for the etcd:// source, or off (etcd 3.4's
 * default) for the etcd3:// source, whose keys are written through etcd's v3
 * JSON gateway.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as https from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { freePort, selfSignedCert, tempDir, type TlsFiles } from './helpers.js';

export interface EtcdServerOptions {
  /** Serve the v2 API (--enable-v2; default true, for the etcd:// source). */
  readonly v2?: boolean;
  /** More etcd flags. */
  readonly args?: readonly string[];
}

export interface EtcdAnswer {
  readonly status: number;
  readonly body: string;
}

/** The v3 API through etcd's JSON gateway (keys and values as UTF-8 text). */
export interface Etcd3Client {
  /** Puts a key; returns the store's revision after it. */
  put(key: string, value: string): Promise<number>;
  remove(key: string): Promise<number>;
  /** Puts many keys, a hundred per transaction (etcd allows 128 operations in one). */
  putMany(entries: Iterable<readonly [string, string]>): Promise<number>;
  /** Compacts the history up to `revision`. */
  compact(revision: number): Promise<void>;
  /** The store's current revision. */
  revision(): Promise<number>;
}

export interface EtcdServer {
  readonly clientPort: number;
  /** https://127.0.0.1:port */
  readonly clientUrl: string;
  /** Sets a v2 key (a string value); returns etcd's index of the change. */
  put(key: string, value: string): Promise<number>;
  remove(key: string): Promise<number>;
  readonly v3: Etcd3Client;
  /** Any request to the client URL. */
  request(method: string, path: string, body?: string, contentType?: string): Promise<EtcdAnswer>;
  /** Stops the process and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same ports and data. */
  restart(): Promise<void>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

export async function startEtcd(dir: string, tls: TlsFiles, options: EtcdServerOptions = {}): Promise<EtcdServer> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const client = `https://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  let child: ChildProcess | undefined;
  let output = '';

  const request = (method: string, path: string, body = '', contentType = 'application/json'): Promise<EtcdAnswer & { index: number }> =>
    new Promise((resolve, reject) => {
      const req = https.request(
        `${client}${path}`,
        { method, ca: tls.cert, agent: false, headers: { 'content-type': contentType, 'content-length': Buffer.byteLength(body) } },
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
        '--name', 'pooltest', '--data-dir', join(dir, 'etcd-data'), `--enable-v2=${options.v2 ?? true}`,
        '--listen-client-urls', client, '--advertise-client-urls', client,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `pooltest=${peer}`,
        '--cert-file', tls.certFile, '--key-file', tls.keyFile,
        ...(options.args ?? []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    proc.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    proc.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    for (let i = 0; i < 200; i++) {
      if (proc.exitCode !== null) throw new Error(`etcd exited with ${proc.exitCode}:\n${output.slice(-2000)}`);
      try {
        const answer = await request('GET', '/health');
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
    const body = value === undefined ? '' : `value=${encodeURIComponent(value)}`;
    const answer = await request(method, `/v2/keys${key}`, body, 'application/x-www-form-urlencoded');
    if (answer.status >= 300) throw new Error(`etcd ${method} ${key}: ${answer.status} ${answer.body}`);
    return answer.index;
  };

  /** A v3 call; returns the answer's header revision. */
  const call3 = async (path: string, body: unknown): Promise<number> => {
    const answer = await request('POST', `/v3/${path}`, JSON.stringify(body));
    if (answer.status !== 200) throw new Error(`etcd /v3/${path}: ${answer.status} ${answer.body}`);
    return Number((JSON.parse(answer.body) as { header: { revision: string } }).header.revision);
  };

  const v3: Etcd3Client = {
    put: (key, value) => call3('kv/put', { key: b64(key), value: b64(value) }),
    remove: (key) => call3('kv/deleterange', { key: b64(key) }),
    async putMany(entries) {
      let batch: unknown[] = [];
      let revision = 0;
      const flush = async (): Promise<void> => {
        if (batch.length > 0) revision = await call3('kv/txn', { success: batch });
        batch = [];
      };
      for (const [key, value] of entries) {
        batch.push({ request_put: { key: b64(key), value: b64(value) } });
        if (batch.length === 100) await flush();
      }
      await flush();
      return revision;
    },
    async compact(revision) {
      await call3('kv/compaction', { revision: String(revision), physical: true });
    },
    revision: () => call3('kv/range', { key: b64('\0'), limit: 1 }),
  };

  try {
    await launch();
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    clientPort,
    clientUrl: client,
    put: (key, value) => change('PUT', key, value),
    remove: (key) => change('DELETE', key),
    v3,
    request: (method, path, body, contentType) => request(method, path, body, contentType),
    stop,
    restart: launch,
  };
}

export interface EtcdFixture {
  readonly etcd: EtcdServer;
  /** The certificate etcd serves, to trust. */
  readonly tls: TlsFiles;
}

/**
 * One etcd for the tests of a file (or describe block): started in a temp
 * directory with its own certificate before them, stopped and removed after.
 * The fields are there once the tests run.
 */
export function useEtcd(options: EtcdServerOptions = {}): EtcdFixture {
  const fixture: { etcd?: EtcdServer; tls?: TlsFiles } = {};
  let cleanup: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const temp = await tempDir();
    cleanup = temp.cleanup;
    fixture.tls = await selfSignedCert(temp.dir);
    fixture.etcd = await startEtcd(temp.dir, fixture.tls, options);
  });
  afterAll(async () => {
    await fixture.etcd?.stop();
    await cleanup?.();
  });
  return fixture as EtcdFixture;
}
