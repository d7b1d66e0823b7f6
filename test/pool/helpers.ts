/** Shared helpers for the pool source tests. */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ManualClock } from '../../src/runtime/clock.js';
import type { Pool, PoolEvent } from '../../src/pool/types.js';

/** A temp directory removed by the returned cleanup, even after a failure. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'pybal-pool-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

function realPause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Moves the manual clock forward in small steps, letting real I/O finish
 * between steps, until `done()` holds; fails after `maxSteps`.
 */
export async function advanceUntil(clock: ManualClock, done: () => boolean, stepMs = 50, maxSteps = 400): Promise<void> {
  for (let i = 0; i < maxSteps; i++) {
    if (done()) return;
    await clock.advanceAsync(stepMs);
    await realPause(2);
  }
  if (!done()) throw new Error(`condition not reached after ${maxSteps} steps of ${stepMs} ms`);
}

/** Moves the manual clock forward by `totalMs` in steps, letting I/O finish between them. */
export async function advanceFor(clock: ManualClock, totalMs: number, stepMs = 50): Promise<void> {
  for (let t = 0; t < totalMs; t += stepMs) {
    await clock.advanceAsync(stepMs);
    await realPause(2);
  }
}

/** A pool as [host, weight, enabled] rows, for comparisons. */
export function rows(pool: Pool | undefined): [string, number, boolean][] {
  return pool === undefined ? [] : [...pool.values()].map((s) => [s.host, s.weight, s.enabled]);
}

/** Events with pools shown as rows and problems as text, for comparisons. */
export function summarize(events: readonly PoolEvent[]): unknown[] {
  return events.map((e) => {
    if (e.type === 'pool') {
      return { type: 'pool', servers: rows(e.pool), problems: e.problems.map((p) => `${p.line ?? ''}:${p.key ?? ''}:${p.message}`) };
    }
    return e;
  });
}

export interface TlsFiles {
  readonly keyFile: string;
  readonly certFile: string;
  readonly key: string;
  readonly cert: string;
}

/** A self-signed certificate for 127.0.0.1, valid two days. */
export async function selfSignedCert(dir: string): Promise<TlsFiles> {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', keyFile, '-out', certFile,
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ]);
  return { keyFile, certFile, key: await readFile(keyFile, 'utf8'), cert: await readFile(certFile, 'utf8') };
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Waits on the real clock (10 ms steps) until `done`, or throws after `limitMs`. */
export async function waitReal(done: () => boolean, limitMs: number): Promise<void> {
  for (let waited = 0; !done(); waited += 10) {
    if (waited > limitMs) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
