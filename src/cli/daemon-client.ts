/**
 * Asking the running daemon over HTTP: on its Unix control socket (the
 * default), or at an http URL of its instrumentation API (read-only).
 */
import { request } from 'node:http';
import { DEFAULT_SOCKET_PATH } from '../api/server.js';
import { errorMessage } from '../runtime/errors.js';

export interface DaemonAddress {
  /** The daemon's Unix socket; the default when neither is given. */
  readonly socket?: string | undefined;
  /** An http URL of the instrumentation API instead (e.g. http://127.0.0.1:9090); GET only. */
  readonly url?: string | undefined;
}

/** How the daemon is named in messages: its URL or its socket. */
export function describeAddress(address: DaemonAddress): string {
  return address.url ?? address.socket ?? DEFAULT_SOCKET_PATH;
}

/**
 * Sends `method path` and resolves with the JSON answer; rejects on a
 * connection error, a status other than 200 (with the daemon's `error` when
 * it gave one), an unreadable answer, or after `timeoutMs`.
 */
export function requestJson(address: DaemonAddress, method: 'GET' | 'POST', path: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const signal = AbortSignal.timeout(timeoutMs);
    const headers = { accept: 'application/json' };
    const target = address.url ? new URL(path.replace(/^\//, ''), address.url.endsWith('/') ? address.url : `${address.url}/`) : undefined;
    const req = target
      ? request(target, { method, headers, signal, agent: false })
      : request({ socketPath: address.socket ?? DEFAULT_SOCKET_PATH, method, path, headers, signal, agent: false });
    req.on('error', reject);
    req.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (response.statusCode !== 200) {
          let why = '';
          try {
            const error = (JSON.parse(text) as { error?: unknown }).error;
            if (typeof error === 'string') why = `: ${error}`;
          } catch {
            // not JSON: the status alone
          }
          return reject(new Error(`HTTP ${response.statusCode}${why}`));
        }
        try {
          resolve(JSON.parse(text) as unknown);
        } catch (error) {
          reject(new Error(`unreadable answer: ${errorMessage(error)}`));
        }
      });
    });
    req.end();
  });
}
