/**
 * An `http://` or `https://` pool source, polled every pollIntervalMs (1 s,
 * as PyBal), one request at a time, each with a hard deadline and a body cap.
 * It asks conditionally (If-None-Match / If-Modified-Since) so an unchanged
 * pool costs the server a 304. Any failure keeps the last good pool, is
 * reported once per change, and polling goes on. https is verified against
 * the system's CAs (PyBal has no https source, and verifies nothing).
 */
import type { Clock } from '../runtime/clock.js';
import { formatProblem, ProblemsError } from '../runtime/errors.js';
import type { Logger } from '../runtime/logger.js';
import { describeHttpError, httpGet, loadSystemCa, type HttpResponse } from './http-get.js';
import { PollLoop } from './poll-loop.js';
import { parsePool, poolFormatForUrl, type PoolFormat } from './pool-format.js';
import { LoopingPoolSource } from './looping-source.js';
import { createSourceReporter, type ReporterSeed, type SourceReporter } from './source-reporter.js';
import type { PoolSource } from './types.js';

export interface HttpSourceOptions extends ReporterSeed {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Time from the start of one poll to the start of the next (default 1000 ms). */
  readonly pollIntervalMs?: number;
  /** Deadline for a whole request, connect to last byte (default 5000 ms). */
  readonly timeoutMs?: number;
  /** Larger bodies are refused (default 8 MiB). */
  readonly maxBytes?: number;
  /** Certificates to trust for https (PEM); default: Node's list plus the system's CAs. */
  readonly ca?: readonly string[];
}

export const HTTP_SOURCE_DEFAULTS = { pollIntervalMs: 1000, timeoutMs: 5000, maxBytes: 8 * 1024 * 1024 } as const;

/** Redirects followed per poll (PyBal's getPage follows them too). */
const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** The validators of the last 200 answer and what its body amounted to. */
interface LastBody {
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
  /** undefined when the body parsed, else the error it gave. */
  readonly error: string | undefined;
}

function header(response: HttpResponse, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export class HttpPoolSource extends LoopingPoolSource {
  readonly url: string;
  private readonly target: URL | undefined;
  private readonly format: PoolFormat;
  protected readonly clock: Clock;
  protected readonly reporter: SourceReporter;
  protected readonly loop: PollLoop;
  private readonly pollIntervalMs: number;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private ca: readonly string[] | undefined;
  private lastBody: LastBody | undefined;

  constructor(url: string, options: HttpSourceOptions) {
    super();
    this.url = url;
    this.target = URL.canParse(url) ? new URL(url) : undefined;
    this.format = poolFormatForUrl(url);
    this.clock = options.clock;
    this.pollIntervalMs = options.pollIntervalMs ?? HTTP_SOURCE_DEFAULTS.pollIntervalMs;
    this.timeoutMs = options.timeoutMs ?? HTTP_SOURCE_DEFAULTS.timeoutMs;
    this.maxBytes = options.maxBytes ?? HTTP_SOURCE_DEFAULTS.maxBytes;
    this.ca = options.ca;
    this.reporter = createSourceReporter(url, options.logger, options);
    this.loop = new PollLoop(options.clock, options.logger, (signal) => this.poll(signal), this.pollIntervalMs);
  }

  protected urlProblem(): string | undefined {
    const ok = this.target !== undefined && (this.target.protocol === 'http:' || this.target.protocol === 'https:');
    return ok ? undefined : `${this.url}: not a valid http:// or https:// URL`;
  }

  /** One poll; returns the delay before the next, keeping polls pollIntervalMs apart. */
  private async poll(signal: AbortSignal): Promise<number> {
    const startedAt = this.clock.now();
    await this.pollOnce(this.target as URL, signal);
    return Math.max(0, startedAt + this.pollIntervalMs - this.clock.now());
  }

  private async pollOnce(start: URL, signal: AbortSignal): Promise<void> {
    const headers: Record<string, string> = {};
    if (this.lastBody?.etag !== undefined) headers['if-none-match'] = this.lastBody.etag;
    if (this.lastBody?.lastModified !== undefined) headers['if-modified-since'] = this.lastBody.lastModified;
    let url = start;
    for (let redirects = 0; ; redirects++) {
      if (url.protocol === 'https:' && this.ca === undefined) this.ca = await loadSystemCa();
      let response: HttpResponse;
      try {
        response = await httpGet(url, { clock: this.clock, headers, timeoutMs: this.timeoutMs, maxBytes: this.maxBytes, ca: this.ca, signal });
      } catch (e) {
        if (!signal.aborted) this.reporter.fail(`${this.url}: ${describeHttpError(e)}`);
        return;
      }
      const location = header(response, 'location');
      if (REDIRECTS.has(response.status) && location !== undefined && redirects < MAX_REDIRECTS) {
        const next = URL.canParse(location, url.href) ? new URL(location, url) : undefined;
        if (next === undefined || (next.protocol !== 'http:' && next.protocol !== 'https:')) {
          this.reporter.fail(`${this.url}: redirected to an unusable location ${JSON.stringify(location)}`);
          return;
        }
        url = next;
        continue;
      }
      this.answer(response);
      return;
    }
  }

  private answer(response: HttpResponse): void {
    if (response.status === 304 && this.lastBody !== undefined) {
      // The body we already have is still current: the pool stands as it was read.
      if (this.lastBody.error === undefined) this.reporter.unchanged();
      else this.reporter.fail(this.lastBody.error);
      return;
    }
    if (response.status !== 200) {
      this.reporter.fail(`${this.url}: HTTP ${response.status} ${response.statusText}`.trimEnd());
      return;
    }
    let error: string | undefined;
    try {
      this.reporter.good(parsePool(new TextDecoder('utf-8').decode(response.body), this.url, this.format));
    } catch (e) {
      if (!(e instanceof ProblemsError)) throw e;
      error = e.problems.map(formatProblem).join('; ');
      this.reporter.fail(error);
    }
    this.lastBody = { etag: header(response, 'etag'), lastModified: header(response, 'last-modified'), error };
  }
}

export function createHttpSource(url: string, options: HttpSourceOptions): PoolSource {
  return new HttpPoolSource(url, options);
}
