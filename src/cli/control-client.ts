/**
 * Asks the running daemon for a JSON document: over its control socket, or
 * from an http URL of its instrumentation API (GET only there). What `pybal
 * status`, `pybal check` and `pybal drain` use. Kept light (node:http only): the commands that use it
 * must start fast (see src/cli/main.ts).
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { DEFAULT_SOCKET_PATH } from '../runtime/defaults.js';
import { errorMessage } from '../runtime/errors.js';
import type { AlertsValue } from '../api/alerts.js';
import type { DaemonSnapshot } from '../api/types.js';
import { isAlertsValue, isDaemonSnapshot } from './health.js';

export interface ControlTarget {
  /** The daemon's Unix socket; the default when neither is given. */
  readonly socket?: string | undefined;
  /** An http URL of the instrumentation API instead (e.g. http://127.0.0.1:9090). */
  readonly url?: string | undefined;
  /** How long each request may take, answer included. */
  readonly timeoutMs: number;
}

/**
 * Why the daemon could not be asked:
 * - `unreachable`: nothing answers there (no socket, connection refused or
 *   reset, no answer in time): the daemon is down or hung;
 * - `denied`: the socket is there but we may not open it (EACCES, EPERM: it
 *   is the pybal user's), which says nothing about the daemon;
 * - `answer`: something answered, but not with the document asked for (an
 *   HTTP error, unreadable JSON): a wrong --url, or not pybal.
 */
export type ControlErrorKind = 'unreachable' | 'denied' | 'answer';

export class ControlError extends Error {
  readonly kind: ControlErrorKind;

  constructor(kind: ControlErrorKind, message: string) {
    super(message);
    this.name = 'ControlError';
    this.kind = kind;
  }
}

/** The socket path or URL, as messages name it. */
export function describeTarget(target: Pick<ControlTarget, 'socket' | 'url'>): string {
  return target.url ? target.url : (target.socket ?? DEFAULT_SOCKET_PATH);
}

const DENIED_CODES: ReadonlySet<string> = new Set(['EACCES', 'EPERM']);

function secondsText(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** GET `path` (`status`, `alerts`) as JSON; rejects with a ControlError (also when `signal` aborts). */
export function getJson<T>(target: ControlTarget, path: string, signal?: AbortSignal): Promise<T> {
  return requestJson<T>(target, path, { signal });
}

/**
 * `method path` (`POST drain`), its JSON answer; rejects with a ControlError
 * (also when `signal` aborts), with the daemon's own `error` when it gave one.
 */
export function requestJson<T>(target: ControlTarget, path: string, options: { method?: 'GET' | 'POST'; signal?: AbortSignal | undefined } = {}): Promise<T> {
  const { method = 'GET', signal } = options;
  return new Promise((resolve, reject) => {
    const headers = { accept: 'application/json' };
    const req = target.url
      ? request(new URL(path, target.url.endsWith('/') ? target.url : `${target.url}/`), { method, headers, agent: false })
      : // No agent: its server-name check (net.isIP of 'localhost') compiles Node's IPv6 expression, 3 to 8 ms of `pybal status`.
        request({ path: `/${path}`, method, headers, createConnection: () => connect(target.socket ?? DEFAULT_SOCKET_PATH) });
    let settled = false;
    const settle = (error: ControlError | undefined, value?: T): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) {
        req.destroy();
        reject(error);
      } else {
        resolve(value as T);
      }
    };
    const timer = setTimeout(() => settle(new ControlError('unreachable', `no answer within ${secondsText(target.timeoutMs)}`)), target.timeoutMs);
    signal?.addEventListener('abort', () => settle(new ControlError('unreachable', 'aborted')), { once: true });
    req.on('error', (error: NodeJS.ErrnoException) => {
      settle(new ControlError(error.code !== undefined && DENIED_CODES.has(error.code) ? 'denied' : 'unreachable', errorMessage(error)));
    });
    req.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', (error) => settle(new ControlError('unreachable', errorMessage(error))));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (response.statusCode !== 200) return settle(new ControlError('answer', `HTTP ${response.statusCode} for /${path}${daemonError(text)}`));
        try {
          settle(undefined, JSON.parse(text) as T);
        } catch (error) {
          settle(new ControlError('answer', `unreadable answer to /${path}: ${errorMessage(error)}`));
        }
      });
    });
    req.end();
  });
}

/** `: why` from a JSON error answer ({"error": "..."}), or nothing. */
function daemonError(text: string): string {
  try {
    const error = (JSON.parse(text) as { error?: unknown }).error;
    return typeof error === 'string' ? `: ${error}` : '';
  } catch {
    return '';
  }
}

/** GET /status and GET /alerts together, each checked for its shape. */
export async function getStatusAndAlerts(target: ControlTarget): Promise<{ readonly snapshot: DaemonSnapshot; readonly alerts: AlertsValue }> {
  // The first failure ends the other request too, so that nothing keeps the process waiting.
  const both = new AbortController();
  const get = (path: string): Promise<unknown> =>
    getJson<unknown>(target, path, both.signal).catch((error: unknown) => {
      both.abort();
      throw error;
    });
  const [snapshot, alerts] = await Promise.all([get('status'), get('alerts')]);
  if (!isDaemonSnapshot(snapshot)) throw new ControlError('answer', 'the answer to /status is not a pybal status');
  if (!isAlertsValue(alerts)) throw new ControlError('answer', 'the answer to /alerts is not a pybal alert');
  return { snapshot, alerts };
}
