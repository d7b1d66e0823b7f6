/**
 * An `etcd://host[:port]/key` pool source over the etcd v2 API, as PyBal's:
 * always TLS (but verified, unlike PyBal), a full read of the directory
 * (`GET /v2/keys/<key>?recursive=true`), then a long-poll watch
 * (`&wait=true&waitIndex=N`) applying each event to the pool.
 *
 * Fixes over PyBal: when etcd answers that the index is outdated (error 401,
 * its event history moved on), the next request is a full read, rather than
 * the same outdated watch again; a long-poll that sees no event within
 * watchTimeoutMs is simply renewed; any failure is reported once, the last
 * good pool stays, and the source reconnects after reconnectDelayMs with a
 * full read.
 */
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { maxModifiedIndex, EtcdPoolState, readEtcdAnswer, type EtcdAnswer } from './etcd-nodes.js';
import { describeHttpError, httpGet, HttpDeadlineError, loadSystemCa, type HttpResponse } from './http-get.js';
import { PollLoop } from './poll-loop.js';
import { LoopingPoolSource } from './looping-source.js';
import { createSourceReporter, type ReporterSeed, type SourceReporter } from './source-reporter.js';
import type { PoolSource } from './types.js';

export interface EtcdSourceOptions extends ReporterSeed {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Delay before reconnecting after a failure (default 1000 ms). */
  readonly reconnectDelayMs?: number;
  /** Deadline of a full read (default 5000 ms). */
  readonly timeoutMs?: number;
  /** A watch with no event for this long is renewed (default 60 000 ms). */
  readonly watchTimeoutMs?: number;
  /** Larger answers are refused (default 8 MiB). */
  readonly maxBytes?: number;
  /** Certificates to trust (PEM); default: Node's list plus the system's CAs. */
  readonly ca?: readonly string[];
}

export const ETCD_SOURCE_DEFAULTS = { reconnectDelayMs: 1000, timeoutMs: 5000, watchTimeoutMs: 60_000, maxBytes: 8 * 1024 * 1024, port: 2379 } as const;

/** etcd's error code for a watch index older than its event history. */
const ETCD_OUTDATED_INDEX = 401;

/** The https origin (default port 2379) and the key path (no trailing slash) of an etcd:// or etcd3:// URL, or undefined if it names no key. */
export function parseEtcdUrl(url: string, scheme: 'etcd' | 'etcd3'): { readonly origin: URL; readonly path: string } | undefined {
  if (!url.startsWith(`${scheme}://`)) return undefined;
  const match = /^([^/]+)(\/.*)$/.exec(url.slice(scheme.length + 3));
  if (match === null) return undefined;
  const [, authority, key] = match as unknown as [string, string, string];
  const path = key.replace(/\/+$/, '');
  if (path === '' || !URL.canParse(`https://${authority}/`)) return undefined;
  const origin = new URL(`https://${authority}/`);
  if (origin.port === '') origin.port = String(ETCD_SOURCE_DEFAULTS.port);
  return { origin, path };
}

/** The https URL of the v2 key an etcd:// URL names, or undefined if it names none. */
export function etcdKeyUrl(url: string): URL | undefined {
  const parsed = parseEtcdUrl(url, 'etcd');
  return parsed === undefined ? undefined : new URL(`/v2/keys${parsed.path}`, parsed.origin);
}

class EtcdFailure extends Error {}

function parseBody(response: HttpResponse): unknown {
  try {
    return JSON.parse(response.body.toString('utf8'));
  } catch {
    return undefined;
  }
}

export class EtcdPoolSource extends LoopingPoolSource {
  readonly url: string;
  private readonly keyUrl: URL | undefined;
  protected readonly clock: Clock;
  private readonly log: Logger;
  protected readonly reporter: SourceReporter;
  protected readonly loop: PollLoop;
  private readonly options: Required<Omit<EtcdSourceOptions, 'clock' | 'logger' | 'ca' | 'lastGoodPool'>>;
  private ca: readonly string[] | undefined;
  private readonly state = new EtcdPoolState();
  /** The index the next watch waits from; undefined means a full read comes next. */
  private waitIndex: number | undefined;

  constructor(url: string, options: EtcdSourceOptions) {
    super();
    this.url = url;
    this.keyUrl = etcdKeyUrl(url);
    this.clock = options.clock;
    this.log = options.logger;
    this.options = {
      reconnectDelayMs: options.reconnectDelayMs ?? ETCD_SOURCE_DEFAULTS.reconnectDelayMs,
      timeoutMs: options.timeoutMs ?? ETCD_SOURCE_DEFAULTS.timeoutMs,
      watchTimeoutMs: options.watchTimeoutMs ?? ETCD_SOURCE_DEFAULTS.watchTimeoutMs,
      maxBytes: options.maxBytes ?? ETCD_SOURCE_DEFAULTS.maxBytes,
    };
    this.ca = options.ca;
    this.reporter = createSourceReporter(url, this.log, options);
    this.loop = new PollLoop(options.clock, this.log, (signal) => this.step(signal), this.options.reconnectDelayMs);
  }

  protected urlProblem(): string | undefined {
    return this.keyUrl === undefined ? `${this.url}: not a valid etcd://host[:port]/key URL` : undefined;
  }

  /** One request: a full read or a watch. Returns the delay before the next. */
  private async step(signal: AbortSignal): Promise<number> {
    if (this.ca === undefined) this.ca = await loadSystemCa();
    try {
      if (this.waitIndex === undefined) await this.read(signal);
      else await this.watch(this.waitIndex, signal);
      return 0;
    } catch (e) {
      if (signal.aborted) return 0;
      this.waitIndex = undefined;
      const reason = e instanceof EtcdFailure ? e.message : describeHttpError(e);
      this.reporter.fail(`${this.url}: ${reason}`);
      return this.options.reconnectDelayMs;
    }
  }

  private request(query: string, timeoutMs: number, signal: AbortSignal): Promise<HttpResponse> {
    const target = new URL(this.keyUrl as URL);
    target.search = query;
    return httpGet(target, { clock: this.clock, timeoutMs, maxBytes: this.options.maxBytes, ca: this.ca, signal });
  }

  private async read(signal: AbortSignal): Promise<void> {
    const response = await this.request('recursive=true', this.options.timeoutMs, signal);
    const answer = this.answerOf(response);
    const index = Number(response.headers['x-etcd-index']);
    if (!Number.isSafeInteger(index)) throw new EtcdFailure('the answer has no X-Etcd-Index header');
    this.state.reset(answer.node);
    this.waitIndex = index + 1;
    this.log.debug(`read ${this.url} at index ${index}`);
    this.deliver();
  }

  private async watch(waitIndex: number, signal: AbortSignal): Promise<void> {
    let response: HttpResponse;
    try {
      response = await this.request(`recursive=true&wait=true&waitIndex=${waitIndex}`, this.options.watchTimeoutMs, signal);
    } catch (e) {
      // No event for a while: ask again from the same index (events are not lost).
      if (e instanceof HttpDeadlineError) return;
      throw e;
    }
    const body = parseBody(response);
    if (response.status === 400 && (body as { errorCode?: unknown } | undefined)?.errorCode === ETCD_OUTDATED_INDEX) {
      // etcd's history moved past our index: read everything again (PyBal kept the stale index).
      this.log.info(`${this.url}: watch index ${waitIndex} is outdated, reading the pool again`);
      this.waitIndex = undefined;
      return;
    }
    const answer = this.answerOf(response, body);
    this.state.apply(answer);
    this.waitIndex = Math.max(waitIndex, maxModifiedIndex(answer.node) + 1);
    this.log.debug(`${this.url}: ${answer.action} ${answer.node.key}`);
    this.deliver();
  }

  /** The answer of a 200, checked; anything else throws with etcd's own message. */
  private answerOf(response: HttpResponse, body = parseBody(response)): EtcdAnswer {
    if (response.status !== 200) {
      const detail = (body as { message?: unknown; cause?: unknown } | undefined) ?? {};
      const message = typeof detail.message === 'string' ? `: ${detail.message}${typeof detail.cause === 'string' ? ` (${detail.cause})` : ''}` : '';
      throw new EtcdFailure(`HTTP ${response.status} ${response.statusText}${message}`);
    }
    if (body === undefined) throw new EtcdFailure(response.body.length === 0 ? 'empty answer' : 'the answer is not JSON');
    const answer = readEtcdAnswer(body);
    if (typeof answer === 'string') throw new EtcdFailure(answer);
    return answer;
  }

  private deliver(): void {
    this.reporter.good(this.state.result());
  }
}

export function createEtcdSource(url: string, options: EtcdSourceOptions): PoolSource {
  return new EtcdPoolSource(url, options);
}
