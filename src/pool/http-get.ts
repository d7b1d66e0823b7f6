/**
 * One HTTP(S) GET (or POST of a JSON document) with the safety a poller
 * needs: a hard deadline on the injected clock (connect, headers and body
 * together), a cap on the body, no connection kept around afterwards (unless
 * the caller brings an agent that keeps it), and TLS verified against the
 * given trust store. Shared by the http and etcd pool sources.
 */
import * as http from 'node:http';
import type * as Https from 'node:https';
import { readFile } from 'node:fs/promises';
import type { Clock } from '../runtime/clock.js';
import { errorMessage } from '../runtime/errors.js';

export interface HttpGetOptions {
  readonly clock: Clock;
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** Certificates trusted for https (PEM); undefined uses Node's built-in list. */
  readonly ca?: readonly string[] | undefined;
  /** Aborts the request early (the source stopping). */
  readonly signal?: AbortSignal;
  /** An agent that keeps its connection for the next request (the pages of one read); default: none. */
  readonly agent?: http.Agent;
}

export interface HttpResponse {
  readonly status: number;
  readonly statusText: string;
  readonly headers: http.IncomingHttpHeaders;
  /** The body (capped like any other), whatever the status. */
  readonly body: Buffer;
}

const NET_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed (temporary)',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed while sending',
};

/** A short reason for a failed request, naming TLS problems as such. */
export function describeHttpError(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') {
    const known = NET_ERRORS[code];
    if (known !== undefined) return known;
    if (/CERT|SELF_SIGNED|TLS|SSL|HOSTNAME|ERR_OSSL/.test(code)) return `TLS: ${errorMessage(error)}`;
  }
  return errorMessage(error);
}

let httpsLoaded: typeof Https | undefined;

/**
 * node:https (and with it node:tls), loaded at the first https request or CA
 * list rather than with the daemon: a site whose pools are files never pays
 * for them (compiling them took 0.1 s in a CPU profile of a start in
 * the lab guest, where the daemon's V8 flag costs Node its code cache).
 */
export function httpsModule(): typeof Https {
  httpsLoaded ??= process.getBuiltinModule('node:https');
  return httpsLoaded;
}

/** Debian's bundle of the system's trusted CAs (update-ca-certificates). */
export const SYSTEM_CA_FILE = '/etc/ssl/certs/ca-certificates.crt';

/**
 * The system's trusted CAs on top of Node's own list, so that a site CA
 * installed with update-ca-certificates is trusted as curl would trust it.
 */
export async function loadSystemCa(file = SYSTEM_CA_FILE): Promise<readonly string[]> {
  const { rootCertificates } = await import('node:tls');
  try {
    return [...rootCertificates, await readFile(file, 'utf8')];
  } catch {
    return rootCertificates;
  }
}

/** The request did not complete before its deadline. */
export class HttpDeadlineError extends Error {
  constructor(timeoutMs: number) {
    super(`no complete response within ${timeoutMs} ms`);
    this.name = 'HttpDeadlineError';
  }
}

export function httpGet(url: URL, options: HttpGetOptions): Promise<HttpResponse> {
  return exchange(url, options, 'GET', undefined);
}

/** A POST of a JSON document (etcd's v3 gateway), with the same safety as httpGet. */
export function httpPostJson(url: URL, json: string, options: HttpGetOptions): Promise<HttpResponse> {
  return exchange(url, options, 'POST', json);
}

async function exchange(url: URL, options: HttpGetOptions, method: string, json: string | undefined): Promise<HttpResponse> {
  const deadline = new AbortController();
  const timer = options.clock.setTimeout(() => deadline.abort(new HttpDeadlineError(options.timeoutMs)), options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline.signal]) : deadline.signal;
  try {
    return await request(url, options, signal, method, json);
  } catch (e) {
    // Report the deadline, not the abort it caused.
    if (deadline.signal.aborted) throw deadline.signal.reason;
    throw e;
  } finally {
    timer.cancel();
  }
}

/**
 * Sends a request as every pool source does: a fresh connection unless an
 * agent is given (nothing stays open between polls or after stop()), TLS
 * verified against `ca`, a JSON body declared. The caller listens for 'error'.
 */
export function startRequest(
  url: URL,
  options: Pick<HttpGetOptions, 'headers' | 'ca' | 'agent'>,
  signal: AbortSignal,
  method: string,
  json: string | undefined,
  onResponse: (res: http.IncomingMessage) => void,
): http.ClientRequest {
  const headers: Record<string, string | number> = { 'user-agent': 'pybal (pool source)', accept: '*/*', ...options.headers };
  if (json !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = Buffer.byteLength(json);
  }
  const secure = url.protocol === 'https:';
  const requestOptions: Https.RequestOptions = { method, headers, signal, agent: options.agent ?? false };
  if (secure && options.ca !== undefined) requestOptions.ca = [...options.ca];
  const req = (secure ? httpsModule() : http).request(url, requestOptions, onResponse);
  req.end(json);
  return req;
}

function request(url: URL, options: HttpGetOptions, signal: AbortSignal, method: string, json: string | undefined): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = startRequest(url, options, signal, method, json, (res) => {
      const status = res.statusCode ?? 0;
      const answer = { status, statusText: res.statusMessage ?? '', headers: res.headers };
      const declared = Number(res.headers['content-length']);
      if (declared > options.maxBytes) {
        req.destroy(new Error(`response larger than ${options.maxBytes} bytes (${declared})`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      // Whichever of error/close comes first must carry the real reason.
      let tooLarge: Error | undefined;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= options.maxBytes) chunks.push(chunk);
        else if (tooLarge === undefined) {
          tooLarge = new Error(`response larger than ${options.maxBytes} bytes`);
          req.destroy(tooLarge);
        }
      });
      res.on('end', () => resolve({ ...answer, body: Buffer.concat(chunks) }));
      res.on('error', (e) => reject(tooLarge ?? e));
      res.on('close', () => {
        if (!res.complete) reject(tooLarge ?? new Error('connection closed before the response was complete'));
      });
    });
    req.on('error', reject);
  });
}
