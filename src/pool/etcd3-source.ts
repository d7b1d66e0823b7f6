/**
 * An `etcd3://host[:port]/prefix` pool source over etcd's v3 API: every key
 * under `prefix/` is a server, named by its last path component, with the
 * same JSON value as the etcd:// (v2) source reads ({"pooled": "yes",
 * "weight": 10}) and the same rules (etcd-values.ts). Like the v2 source it
 * always speaks TLS, verified against the system's CAs or the given ones.
 *
 * 1. A full read: the range [prefix/, prefix0) in pages of pageSize keys, all
 *    at the revision of the first page (one consistent snapshot), over one
 *    kept connection, decoded in slices; a value that did not change since
 *    the last read is not decoded again.
 * 2. A watch of that range from the read's revision + 1, applying each put and
 *    delete to the pool as it comes (a change costs its own decoding, never a
 *    re-read) and delivering the pool once per batch of messages that arrived
 *    together; the events of one large revision, which etcd sends in
 *    fragments, are delivered together.
 * 3. The revision the pool stands at moves with each event and with etcd's
 *    progress notifications. When the watch breaks, the source reconnects to
 *    it from that revision + 1: etcd replays what it missed, so nothing is
 *    read again. A full read comes next only when etcd says that revision was
 *    compacted away, when etcd's revision or cluster ID shows it is not the
 *    store the pool came from (restored from a backup, rebuilt), or when a
 *    watch message is larger than maxBytes.
 * 4. A watch that carries nothing for watchTimeoutMs is renewed from the same
 *    revision (a connection that died without a reset would otherwise go
 *    unnoticed: over HTTP/1.1 the gateway's stream has no ping). An etcd that
 *    sends progress notifications more often than that keeps the watch alive
 *    and the pool's revision current; by default it sends them every 10 min.
 * 5. Any failure keeps the last good pool, is reported once, and is retried
 *    after reconnectDelayMs, doubling with each failure in a row up to
 *    maxReconnectDelayMs. A watch that breaks after it was set up is
 *    retried after reconnectDelayMs and reported only if that fails.
 *
 * Transport: etcd's own JSON gateway (POST /v3/kv/range, POST /v3/watch,
 * served on the client URL by every etcd from 3.4), over node:https, rather
 * than the etcd3 npm client. The gateway does all this source needs (a
 * prefix range with paging at a fixed revision, a watch with progress
 * notifications, fragments and compaction reports), with the TLS, CA and
 * deadline handling the other sources already share (http-get.ts), timers on
 * the injected clock, and no dependency: etcd3 would bring @grpc/grpc-js,
 * protobufjs and their install scripts for one feature. What the gateway lacks
 * is in-band pings and cancelling a watch on a shared stream; point 4 stands
 * in for the first, and one watch per connection needs no cancel.
 */
import type * as Https from 'node:https';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { sliced } from '../runtime/sliced.js';
import { parseEtcdUrl } from './etcd-source.js';
import { EtcdEntries } from './etcd-values.js';
import {
  gatewayErrorMessage,
  rangeRequest,
  readRangePage,
  readWatchMessage,
  watchRequest,
  type Etcd3Event,
  type Etcd3Header,
  type Etcd3Kv,
  type Etcd3RangePage,
} from './etcd3-gateway.js';
import { describeHttpError, httpPostJson, httpsModule, loadSystemCa } from './http-get.js';
import { LineTooLongError, openLineStream, type LineStream } from './http-lines.js';
import { LoopingPoolSource } from './looping-source.js';
import { PollLoop } from './poll-loop.js';
import { createSourceReporter, type ReporterSeed, type SourceReporter } from './source-reporter.js';
import type { PoolSource } from './types.js';

export interface Etcd3SourceOptions extends ReporterSeed {
  readonly clock: Clock;
  readonly logger: Logger;
  /** The wait before reconnecting after a failure (default 1000 ms); it doubles with each failure in a row. */
  readonly reconnectDelayMs?: number;
  /** The longest wait between two attempts (default 30 000 ms). */
  readonly maxReconnectDelayMs?: number;
  /** Deadline of one page of a full read, and of a watch's first answer (default 5000 ms). */
  readonly timeoutMs?: number;
  /** A watch that carries nothing for this long is renewed (default 60 000 ms). */
  readonly watchTimeoutMs?: number;
  /** Keys per page of a full read (default 1000). */
  readonly pageSize?: number;
  /** The largest page of a full read or watch message accepted (default 8 MiB). */
  readonly maxBytes?: number;
  /** Certificates to trust (PEM); default: Node's list plus the system's CAs. */
  readonly ca?: readonly string[];
}

export const ETCD3_SOURCE_DEFAULTS = {
  reconnectDelayMs: 1000,
  maxReconnectDelayMs: 30_000,
  timeoutMs: 5000,
  watchTimeoutMs: 60_000,
  pageSize: 1000,
  maxBytes: 8 * 1024 * 1024,
} as const;

export interface Etcd3Target {
  /** https://host:port/ (port 2379 by default). */
  readonly origin: URL;
  /** The key prefix: the URL's path and a slash, so that /pools/text does not take in /pools/text2. */
  readonly prefix: Buffer;
}

/** What an etcd3:// URL names, or undefined if it names no key prefix. The path is taken literally. */
export function etcd3Target(url: string): Etcd3Target | undefined {
  const parsed = parseEtcdUrl(url, 'etcd3');
  return parsed === undefined ? undefined : { origin: parsed.origin, prefix: Buffer.from(`${parsed.path}/`, 'utf8') };
}

/** Why a watch ended without a failure to report. */
type WatchEnd =
  /** It carried nothing for watchTimeoutMs: set it up again from the same revision. */
  | { readonly kind: 'renew' }
  /** The pool must be read in full again. */
  | { readonly kind: 'reread'; readonly reason: string }
  /** It broke after it was set up: reconnect. */
  | { readonly kind: 'broken'; readonly reason: string };

class Etcd3Failure extends Error {}

/** Keys loaded or events applied between two pauses. */
const ITEMS_PER_STEP = 256;

function* loadSteps(entries: EtcdEntries, kvs: readonly Etcd3Kv[], memo: EtcdEntries): Generator<void, void, undefined> {
  for (let i = 0; i < kvs.length; i++) {
    if (i % ITEMS_PER_STEP === ITEMS_PER_STEP - 1) yield;
    const kv = kvs[i] as Etcd3Kv;
    entries.set(kv.key, kv.value, memo);
  }
}

/** Applies events in order; returns the highest revision among them. */
function* applySteps(entries: EtcdEntries, events: readonly Etcd3Event[]): Generator<void, number, undefined> {
  let revision = 0;
  for (let i = 0; i < events.length; i++) {
    if (i % ITEMS_PER_STEP === ITEMS_PER_STEP - 1) yield;
    const { type, kv } = events[i] as Etcd3Event;
    if (type === 'put') entries.set(kv.key, kv.value);
    else entries.delete(kv.key);
    revision = Math.max(revision, kv.modRevision);
  }
  return revision;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** `HTTP 400 Bad Request: etcdserver: mvcc: required revision has been compacted`. */
function describeStatus(status: number, statusText: string, body: string): string {
  const message = gatewayErrorMessage(parseJson(body)) ?? body.trim().slice(0, 200);
  const hint = status === 404 ? ' (etcd serves its v3 JSON gateway at /v3/ from version 3.4)' : '';
  return `HTTP ${status} ${statusText}${message === '' ? '' : `: ${message}`}${hint}`;
}

export class Etcd3PoolSource extends LoopingPoolSource {
  readonly url: string;
  private readonly target: Etcd3Target | undefined;
  protected readonly clock: Clock;
  private readonly log: Logger;
  protected readonly reporter: SourceReporter;
  protected readonly loop: PollLoop;
  private readonly options: Required<Omit<Etcd3SourceOptions, 'clock' | 'logger' | 'ca' | 'lastGoodPool'>>;
  private ca: readonly string[] | undefined;
  private entries = new EtcdEntries();
  /** The revision the pool stands at; undefined means a full read comes next. */
  private revision: number | undefined;
  /** The cluster the pool was read from. */
  private clusterId: string | undefined;
  /** Failures in a row, for the backoff. */
  private failures = 0;

  constructor(url: string, options: Etcd3SourceOptions) {
    super();
    this.url = url;
    this.target = etcd3Target(url);
    this.clock = options.clock;
    this.log = options.logger;
    const d = ETCD3_SOURCE_DEFAULTS;
    this.options = {
      reconnectDelayMs: options.reconnectDelayMs ?? d.reconnectDelayMs,
      maxReconnectDelayMs: options.maxReconnectDelayMs ?? d.maxReconnectDelayMs,
      timeoutMs: options.timeoutMs ?? d.timeoutMs,
      watchTimeoutMs: options.watchTimeoutMs ?? d.watchTimeoutMs,
      pageSize: options.pageSize ?? d.pageSize,
      maxBytes: options.maxBytes ?? d.maxBytes,
    };
    this.ca = options.ca;
    this.reporter = createSourceReporter(url, this.log, options);
    this.loop = new PollLoop(options.clock, this.log, (signal) => this.step(signal), this.options.reconnectDelayMs);
  }

  protected urlProblem(): string | undefined {
    return this.target === undefined ? `${this.url}: not a valid etcd3://host[:port]/prefix URL` : undefined;
  }

  /** A full read if one is due, then a watch until it ends. Returns the delay before the next step. */
  private async step(signal: AbortSignal): Promise<number> {
    if (this.ca === undefined) this.ca = await loadSystemCa();
    const target = this.target as Etcd3Target;
    try {
      if (this.revision === undefined) await this.read(target, signal);
      const end = await this.watch(target, this.revision as number, signal);
      switch (end.kind) {
        case 'renew':
          this.log.debug(`${this.url}: the watch was quiet for ${this.options.watchTimeoutMs} ms, renewing it`);
          return 0;
        case 'reread':
          this.log.info(`${this.url}: ${end.reason}; reading the pool again`);
          this.revision = undefined;
          return 0;
        case 'broken':
          this.log.warn(`${this.url}: the watch broke (${end.reason}); reconnecting from revision ${(this.revision as number) + 1}`);
          return this.options.reconnectDelayMs;
      }
    } catch (e) {
      if (signal.aborted) return 0;
      this.failures++;
      this.reporter.fail(`${this.url}: ${e instanceof Etcd3Failure ? e.message : describeHttpError(e)}`);
      const delayMs = Math.min(this.options.maxReconnectDelayMs, this.options.reconnectDelayMs * 2 ** Math.min(this.failures - 1, 20));
      // Spread so that many sources (and directors) do not all come back in the same moment.
      return delayMs * (0.9 + 0.2 * Math.random());
    }
  }

  /** Reads every key under the prefix, page by page at one revision, then delivers the pool. */
  private async read(target: Etcd3Target, signal: AbortSignal): Promise<void> {
    const entries = new EtcdEntries();
    // The pages of one read share a connection.
    const agent = new (httpsModule().Agent)({ keepAlive: true, maxSockets: 1 });
    let header: Etcd3Header | undefined;
    let pages = 0;
    try {
      let from: string | undefined;
      do {
        const page = await this.readPage(target, from, header?.revision, agent, signal);
        header ??= page.header;
        await sliced(loadSteps(entries, page.kvs, this.entries));
        from = page.nextKey;
        pages++;
      } while (from !== undefined);
    } finally {
      agent.destroy();
    }
    this.entries = entries;
    this.revision = header.revision;
    this.clusterId = header.clusterId;
    this.log.debug(`read ${this.url} at revision ${header.revision}: ${entries.size} keys in ${pages} page(s)`);
    if (entries.size === 0) this.log.warn(`${this.url}: no key under ${target.prefix.toString('utf8')}`);
    await this.deliver();
  }

  private async readPage(target: Etcd3Target, from: string | undefined, revision: number | undefined, agent: Https.Agent, signal: AbortSignal): Promise<Etcd3RangePage> {
    const { clock } = this;
    const { timeoutMs, maxBytes, pageSize } = this.options;
    const response = await httpPostJson(new URL('/v3/kv/range', target.origin), rangeRequest(target.prefix, pageSize, from, revision), {
      clock,
      timeoutMs,
      maxBytes,
      ca: this.ca,
      signal,
      agent,
    });
    const text = response.body.toString('utf8');
    if (response.status !== 200) throw new Etcd3Failure(describeStatus(response.status, response.statusText, text));
    const body = parseJson(text);
    if (body === undefined) throw new Etcd3Failure(text === '' ? 'empty answer' : 'the answer is not JSON');
    const page = readRangePage(body);
    if (typeof page === 'string') throw new Etcd3Failure(page);
    return page;
  }

  /** Watches from revision + 1 until the watch ends; a failure throws. */
  private async watch(target: Etcd3Target, revision: number, signal: AbortSignal): Promise<WatchEnd> {
    const quiet = new AbortController();
    const stream = await openLineStream(new URL('/v3/watch', target.origin), {
      clock: this.clock,
      timeoutMs: this.options.timeoutMs,
      ca: this.ca,
      signal: AbortSignal.any([signal, quiet.signal]),
      json: watchRequest(target.prefix, revision + 1),
      maxLineLength: this.options.maxBytes,
    });
    let timer: Timer | undefined;
    const heard = (): void => {
      timer?.cancel();
      timer = this.clock.setTimeout(() => quiet.abort(), this.options.watchTimeoutMs);
    };
    heard();
    try {
      if (stream.status !== 200) throw new Etcd3Failure(describeStatus(stream.status, stream.statusText, await stream.text()));
      return await this.follow(stream, revision + 1, heard, quiet.signal, signal);
    } finally {
      timer?.cancel();
      stream.close();
    }
  }

  /** Applies what the watch sends; `heard` is called whenever something arrives, `quiet` aborts when nothing has for a while. */
  private async follow(stream: LineStream, from: number, heard: () => void, quiet: AbortSignal, signal: AbortSignal): Promise<WatchEnd> {
    let created = false;
    /** The revision of a fragmented revision's events so far (0: none pending), and how many fragments came. */
    let fragmentRevision = 0;
    let fragments = 0;
    let changed = false;
    for (;;) {
      let lines: string[] | undefined;
      try {
        lines = await stream.next();
      } catch (e) {
        if (signal.aborted) throw e;
        if (e instanceof LineTooLongError) return { kind: 'reread', reason: `a watch message is larger than ${this.options.maxBytes} bytes` };
        if (quiet.aborted) {
          if (created) return { kind: 'renew' };
          throw new Etcd3Failure(`the watch said nothing for ${this.options.watchTimeoutMs} ms`);
        }
        if (created) return { kind: 'broken', reason: describeHttpError(e) };
        throw e;
      }
      if (lines === undefined) {
        if (!created) throw new Etcd3Failure('etcd ended the watch before setting it up');
        return { kind: 'broken', reason: 'etcd ended the watch' };
      }
      heard();
      for (const line of lines) {
        const message = readWatchMessage(parseJson(line));
        if (typeof message === 'string') throw new Etcd3Failure(`unexpected watch message: ${message}`);
        switch (message.kind) {
          case 'created': {
            const stale = this.staleStore(message.header);
            if (stale !== undefined) return { kind: 'reread', reason: stale };
            created = true;
            this.failures = 0;
            this.log.debug(`${this.url}: watching from revision ${from}`);
            // Back after a failure, with the pool as it was: say so (a change that follows is delivered as usual).
            if (this.reporter.status().error !== undefined) this.reporter.unchanged();
            break;
          }
          case 'events': {
            fragmentRevision = Math.max(fragmentRevision, await sliced(applySteps(this.entries, message.events)));
            changed = true;
            // A revision counts as seen only once all its fragments have come: a break in between replays it whole.
            if (message.fragment) {
              fragments++;
            } else {
              if (fragments > 0) this.log.debug(`${this.url}: revision ${fragmentRevision} came in ${fragments + 1} fragments`);
              this.revision = Math.max(this.revision ?? 0, fragmentRevision);
              fragmentRevision = 0;
              fragments = 0;
            }
            break;
          }
          case 'progress':
            // etcd has sent every event up to this revision: a reconnection can start after it.
            if (fragmentRevision === 0 && message.revision > (this.revision ?? 0)) {
              this.revision = message.revision;
              this.log.debug(`${this.url}: etcd has sent every change up to revision ${message.revision}`);
            }
            break;
          case 'compacted':
            return { kind: 'reread', reason: `etcd has compacted its history past revision ${from} (to ${message.compactRevision})` };
          case 'canceled':
          case 'error': {
            // After the watch was set up, etcd going away (its gateway says "server closed the stream
            // without sending trailers") is a break like any other; before, it is why the watch failed.
            const reason = message.kind === 'canceled' ? `etcd canceled the watch: ${message.reason}` : `the watch failed: ${message.message}`;
            if (created) return { kind: 'broken', reason };
            throw new Etcd3Failure(reason);
          }
        }
      }
      if (changed && fragmentRevision === 0) {
        changed = false;
        await this.deliver();
      }
    }
  }

  /** Why etcd's store is not the one the pool was read from, if it is not. */
  private staleStore(header: Etcd3Header): string | undefined {
    if (this.clusterId !== undefined && header.clusterId !== this.clusterId) {
      return `etcd's cluster ID changed from ${this.clusterId} to ${header.clusterId}`;
    }
    const revision = this.revision ?? 0;
    if (header.revision < revision) return `etcd is at revision ${header.revision}, behind the pool's ${revision} (restored from a backup?)`;
    return undefined;
  }

  private async deliver(): Promise<void> {
    this.reporter.good(await sliced(this.entries.steps()));
  }
}

export function createEtcd3Source(url: string, options: Etcd3SourceOptions): PoolSource {
  return new Etcd3PoolSource(url, options);
}
