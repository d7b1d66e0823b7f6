/**
 * ProxyFetch: GET of each configured URL sent to the real server's address
 * and the service port, with the URL's host as `Host` (and as TLS SNI); no
 * redirect is followed. Success on 2xx, or on 301/302/303 when http_status
 * asks for a redirect; optionally the body must contain a string or match a
 * regular expression; TLS certificates are checked when verify-tls is on.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import tls from 'node:tls';
import type { ProxyFetchConfig } from '../config/types.js';
import type { Clock } from '../runtime/clock.js';
import { errorMessage } from '../runtime/errors.js';
import { DeadlineError, formatSeconds } from './deadline.js';
import { createPeriodicMonitor } from './periodic.js';
import type { CheckOutcome, Monitor, MonitorDeps, MonitorTarget, UrlResult } from './types.js';

/** Body bytes read at most; the rest is not waited for. */
export const BODY_CAP_BYTES = 1024 * 1024;

export interface FetchOptions {
  readonly httpStatus: number;
  readonly expectBody: string | undefined;
  readonly expectBodyRegex: RegExp | undefined;
  readonly verifyTls: boolean;
  readonly ca: Buffer | undefined;
}

/** PyBal expects a redirect only for http_status 301, 302 or 303. */
export function expectsRedirect(httpStatus: number): boolean {
  return httpStatus > 300 && httpStatus < 304;
}

/** Whether a status passes: 2xx normally, 301-303 (and nothing else) when a redirect is expected. */
export function statusPasses(status: number, httpStatus: number): boolean {
  if (expectsRedirect(httpStatus)) return status > 300 && status < 304;
  return status >= 200 && status < 300;
}

/** Why a body does not pass, or undefined when it does. */
export function bodyProblem(body: string, options: Pick<FetchOptions, 'expectBody' | 'expectBodyRegex'>): string | undefined {
  if (options.expectBody !== undefined && !body.includes(options.expectBody)) return `body does not contain ${JSON.stringify(options.expectBody)}`;
  if (options.expectBodyRegex !== undefined && !options.expectBodyRegex.test(body)) return `body does not match /${options.expectBodyRegex.source}/`;
  return undefined;
}

function describeError(error: unknown, signal: AbortSignal): string {
  if (signal.reason instanceof DeadlineError) return signal.reason.message;
  const code = (error as NodeJS.ErrnoException).code;
  const message = errorMessage(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/** One GET of `url` against the target; resolves with the verdict, never rejects. */
export function fetchUrl(url: URL, target: MonitorTarget, options: FetchOptions, signal: AbortSignal): Promise<{ ok: boolean; reason: string }> {
  return new Promise((resolve) => {
    const isHttps = url.protocol === 'https:';
    // PyBal connects to the server, never to the URL's host or port.
    const common: http.RequestOptions = {
      hostname: target.ip,
      port: target.port,
      family: target.family,
      method: 'GET',
      path: `${url.pathname}${url.search}`,
      agent: false,
      headers: { Host: url.host, 'User-Agent': 'pybal ProxyFetch', Accept: '*/*', Connection: 'close' },
      signal,
    };
    const sniName = url.hostname.replace(/^\[|\]$/g, '');
    const request = isHttps
      ? https.request({
          ...common,
          // SNI may not carry an IP literal.
          servername: isIP(sniName) ? '' : sniName,
          rejectUnauthorized: options.verifyTls,
          ca: options.ca,
          checkServerIdentity: (_host, cert) => tls.checkServerIdentity(sniName, cert),
        })
      : http.request(common);
    let done = false;
    const finish = (ok: boolean, reason: string): void => {
      if (done) return;
      done = true;
      request.destroy();
      resolve({ ok, reason });
    };
    request.on('error', (error) => finish(false, describeError(error, signal)));
    request.on('response', (response) => {
      const status = response.statusCode ?? 0;
      if (!statusPasses(status, options.httpStatus)) {
        const expected = expectsRedirect(options.httpStatus) ? 'a 301, 302 or 303 redirect' : 'a 2xx status';
        finish(false, `HTTP status ${status} ${response.statusMessage ?? ''}`.trimEnd() + `, expected ${expected}`);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      const evaluate = (): void => {
        const problem = bodyProblem(Buffer.concat(chunks).toString('utf8'), options);
        if (problem) finish(false, `HTTP status ${status}, but ${problem}`);
        else finish(true, `HTTP status ${status}`);
      };
      response.on('data', (chunk: Buffer) => {
        if (done) return;
        const room = BODY_CAP_BYTES - size;
        chunks.push(chunk.subarray(0, room));
        size += Math.min(room, chunk.length);
        if (size >= BODY_CAP_BYTES) evaluate();
      });
      response.on('end', evaluate);
      // A body cut short (Content-Length not met, chunked stream broken) fails, as PyBal's PartialDownloadError.
      response.on('aborted', () => finish(false, 'connection closed before the whole body arrived'));
      response.on('error', (error) => finish(false, describeError(error, signal)));
    });
    request.end();
  });
}

/**
 * Compiles the config's URLs and regular expression. Throws on bad values;
 * the config parser should have rejected them already.
 */
function compile(config: ProxyFetchConfig): { urls: URL[]; expectBodyRegex: RegExp | undefined } {
  const urls = config.urls.map((u) => {
    const url = new URL(u);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported URL scheme in ${u}`);
    return url;
  });
  if (urls.length === 0) throw new Error('no URL to fetch');
  // Multiline: ^ and $ match at line ends, as operators reading a body line by line expect.
  const expectBodyRegex = config.expectBodyRegex === undefined ? undefined : new RegExp(config.expectBodyRegex, 'm');
  return { urls, expectBodyRegex };
}

export function createProxyFetchMonitor(config: ProxyFetchConfig, target: MonitorTarget, deps: MonitorDeps): Monitor {
  const random = deps.random ?? Math.random;
  const maxFailures = config.checkAll ? config.maxFailures : 0;
  // A bad value makes every check fail with the reason instead of throwing into the daemon.
  let compiled: ReturnType<typeof compile> | undefined;
  let problem: string | undefined;
  try {
    compiled = compile(config);
  } catch (error) {
    problem = `invalid ProxyFetch configuration: ${errorMessage(error)}`;
  }
  let ca: Buffer | undefined;
  let picked: URL[] = [];
  return createPeriodicMonitor(
    config.kind,
    config,
    {
      timeoutReason: (message) => picked.map((url) => `Fetch failed (${url.href}): ${message}`).join('; '),
      async run(signal) {
        if (!compiled) return { ok: false, reason: problem ?? 'invalid configuration' };
        if (config.caFile !== undefined && ca === undefined) {
          try {
            ca = readFileSync(config.caFile);
          } catch (error) {
            return { ok: false, reason: `cannot read ca-file: ${errorMessage(error)}` };
          }
        }
        const options: FetchOptions = {
          httpStatus: config.httpStatus,
          expectBody: config.expectBody,
          expectBodyRegex: compiled.expectBodyRegex,
          verifyTls: config.verifyTls,
          ca,
        };
        const urls = compiled.urls;
        picked = config.checkAll ? urls : [urls[Math.floor(random() * urls.length)] ?? urls[0]!];
        const results = await Promise.all(picked.map((url) => timedFetch(deps.clock, url, target, options, signal)));
        return summarise(results, maxFailures);
      },
    },
    deps,
  );
}

async function timedFetch(clock: Clock, url: URL, target: MonitorTarget, options: FetchOptions, signal: AbortSignal): Promise<UrlResult> {
  const startMs = clock.now();
  const { ok, reason } = await fetchUrl(url, target, options, signal);
  return { url: url.href, ok, reason, durationMs: clock.now() - startMs };
}

/** A round passes when at most maxFailures URLs failed (PyBal's check_all/max_failures). */
export function summarise(results: readonly UrlResult[], maxFailures: number): CheckOutcome {
  const failures = results.filter((r) => !r.ok);
  if (failures.length <= maxFailures) {
    const reason = results.map((r) => `Fetch successful (${r.url}), ${formatSeconds(r.durationMs)}`).join('; ');
    return { ok: true, reason, urls: results };
  }
  return { ok: false, reason: failures.map((r) => `Fetch failed (${r.url}): ${r.reason}`).join('; '), urls: results };
}
