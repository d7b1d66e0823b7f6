/**
 * `GET /events/stream`: the event history as server-sent events
 * (text/event-stream), what the status page follows.
 *
 * - Each event as it happens: `id: <seq>`, `event: change`, `data: <the
 *   event as /events gives it>`. Events are written once per turn of the
 *   event loop, a burst (a mass depool) in one write per client; a flush
 *   formats at most MAX_EVENTS_PER_FLUSH per client, the rest on the next turn.
 * - Every `summaryIntervalMs` (and at once on connecting) `event: summary`
 *   with each service's counts and each peer's state: small at any pool
 *   size, and a keep-alive. After events, one more comes within
 *   SUMMARY_AFTER_CHANGE_MS (however many events), so that a service's pooled
 *   count follows its servers on the page.
 * - Resuming: from the `Last-Event-ID` header (what EventSource sends when
 *   it reconnects), else `?since=<seq>` (the page passes the seq it was
 *   rendered at), else from now. Events no longer kept are announced by
 *   `event: reset` (the page says to reload) and the stream goes on from the
 *   oldest kept. `retry:` tells the browser how long to wait before reconnecting.
 * - At most `maxClients` streams (503 beyond, with Retry-After). A slow
 *   reader never makes the daemon buffer without bound: once a write does
 *   not go straight to the socket, that client gets nothing more until the
 *   socket drains (so at most one batch waits for it); a client the history
 *   laps while it waits (it missed every event kept), or whose socket holds
 *   more than `maxBufferedBytes` when written to, is dropped. A closed client
 *   is forgotten at once; close() ends every stream (daemon stop).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DaemonEvent, EventHistory } from '../events/history.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { turn } from '../runtime/sliced.js';

export const DEFAULT_MAX_STREAMS = 32;
export const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;
export const DEFAULT_SUMMARY_INTERVAL_MS = 10_000;
export const DEFAULT_RETRY_MS = 3000;
/** How soon after events the counts follow them (one summary for any burst). */
export const SUMMARY_AFTER_CHANGE_MS = 1000;
/** Events one flush writes to one client; a client further behind gets the rest on the next turn. */
export const MAX_EVENTS_PER_FLUSH = 1000;

export interface EventStreamOptions {
  readonly history: EventHistory;
  /**
   * The periodic summary's value (see status-page.ts pageSummary), or a
   * promise of it: the daemon takes it from a snapshot taken in slices (at
   * 10,000 servers, taken at once, it held the event loop for a long turn
   * every 10 s for as long as a status page was open).
   */
  readonly summary: () => unknown;
  readonly clock: Pick<Clock, 'setTimeout'>;
  readonly logger: Logger;
  readonly maxClients?: number;
  readonly maxBufferedBytes?: number;
  readonly summaryIntervalMs?: number;
  readonly retryMs?: number;
}

interface Client {
  readonly response: ServerResponse;
  /** The latest event written to it. */
  sentSeq: number;
  /** Its last write is still buffered: nothing more until the socket drains. */
  waiting: boolean;
}

/** One event as an SSE message. */
export function formatStreamEvent(event: DaemonEvent): string {
  return `id: ${event.seq}\nevent: change\ndata: ${JSON.stringify(event)}\n\n`;
}

/** The sequence number to resume after: Last-Event-ID, else ?since=, else undefined (from now). */
export function resumePoint(lastEventId: string | undefined, query: URLSearchParams): number | undefined {
  for (const text of [lastEventId, query.get('since') ?? undefined]) {
    if (text !== undefined && /^\d{1,15}$/.test(text.trim())) return Number(text.trim());
  }
  return undefined;
}

export class EventStream {
  private readonly clients = new Set<Client>();
  private readonly maxClients: number;
  private readonly maxBufferedBytes: number;
  private readonly summaryIntervalMs: number;
  private readonly retryMs: number;
  private unsubscribe: (() => void) | undefined;
  private summaryTimer: Timer | undefined;
  /** The summary being made now, which whoever asks meanwhile shares. */
  private summarizing: Promise<string> | undefined;
  /** The summary that follows events, while one is due. */
  private changeSummaryTimer: Timer | undefined;
  private flushQueued = false;
  private closed = false;

  constructor(private readonly options: EventStreamOptions) {
    this.maxClients = options.maxClients ?? DEFAULT_MAX_STREAMS;
    this.maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.summaryIntervalMs = options.summaryIntervalMs ?? DEFAULT_SUMMARY_INTERVAL_MS;
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
  }

  /** Streams open now. */
  get size(): number {
    return this.clients.size;
  }

  /** Answers a GET (or HEAD) /events/stream. */
  open(request: IncomingMessage, response: ServerResponse, query: URLSearchParams): void {
    if (this.closed || this.clients.size >= this.maxClients) {
      const why = this.closed ? 'pybal is stopping' : `too many event streams open (at most ${this.maxClients})`;
      response.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '30', 'cache-control': 'no-store' });
      response.end(`${why}\n`);
      return;
    }
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // A reverse proxy must not hold the events back.
      'x-accel-buffering': 'no',
    });
    if (request.method === 'HEAD') {
      response.end();
      return;
    }
    const history = this.options.history;
    const lastEventId = request.headers['last-event-id'];
    const asked = resumePoint(typeof lastEventId === 'string' ? lastEventId : undefined, query);
    let sentSeq = asked ?? history.latestSeq;
    let preface = `retry: ${this.retryMs}\n\n`;
    if (sentSeq > history.latestSeq) {
      // A seq this daemon never gave: another process's (pybal restarted). The page is stale.
      preface += `event: reset\ndata: ${JSON.stringify({ reason: 'restarted', latestSeq: history.latestSeq })}\n\n`;
      sentSeq = history.latestSeq;
    }
    const client: Client = { response, sentSeq, waiting: false };
    this.clients.add(client);
    response.on('close', () => this.forget(client));
    response.on('error', () => this.forget(client));
    this.write(client, preface);
    void this.summaryMessage().then((text) => {
      if (this.clients.has(client)) this.write(client, text);
    });
    if (!this.unsubscribe) this.unsubscribe = history.subscribe(() => this.queueFlush());
    this.armSummary();
    if (client.sentSeq < history.latestSeq) this.queueFlush();
  }

  /** Ends every stream (the daemon stops) and refuses new ones. */
  close(): void {
    this.closed = true;
    for (const client of [...this.clients]) {
      this.forget(client);
      client.response.end();
    }
  }

  private forget(client: Client): void {
    if (!this.clients.delete(client)) return;
    if (this.clients.size > 0) return;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.summaryTimer?.cancel();
    this.summaryTimer = undefined;
    this.changeSummaryTimer?.cancel();
    this.changeSummaryTimer = undefined;
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    void turn().then(() => this.flush());
  }

  /** Writes each client the events it has not had, one write each; clients at the same point share the text. */
  private flush(): void {
    this.flushQueued = false;
    const history = this.options.history;
    const latest = history.latestSeq;
    const texts = new Map<number, { text: string; lastSeq: number }>();
    let more = false;
    let wrote = false;
    for (const client of [...this.clients]) {
      if (client.sentSeq >= latest) continue;
      if (client.waiting) {
        if (client.sentSeq + 1 < history.oldestSeq) this.drop(client, 'it stopped reading and missed every event kept');
        continue;
      }
      let from = client.sentSeq + 1;
      let prefix = '';
      if (from < history.oldestSeq) {
        prefix = `event: reset\ndata: ${JSON.stringify({ reason: 'missed', missedFrom: from, oldestSeq: history.oldestSeq })}\n\n`;
        from = history.oldestSeq;
      }
      let batch = texts.get(from);
      if (batch === undefined) {
        const events = history.since(from - 1, MAX_EVENTS_PER_FLUSH);
        batch = { text: events.map(formatStreamEvent).join(''), lastSeq: events.at(-1)?.seq ?? from - 1 };
        texts.set(from, batch);
      }
      client.sentSeq = batch.lastSeq;
      if (batch.lastSeq < latest) more = true;
      this.write(client, prefix + batch.text);
      wrote = true;
    }
    if (more) this.queueFlush();
    if (wrote) this.summaryAfterChange();
  }

  /** One summary SUMMARY_AFTER_CHANGE_MS after events (not one per event). */
  private summaryAfterChange(): void {
    if (this.changeSummaryTimer !== undefined) return;
    this.changeSummaryTimer = this.options.clock.setTimeout(() => {
      this.changeSummaryTimer = undefined;
      this.sendSummary();
    }, SUMMARY_AFTER_CHANGE_MS);
  }

  private sendSummary(): void {
    if (this.clients.size === 0) return;
    void this.summaryMessage().then((text) => {
      // A client waiting for its socket to drain is behind anyway: its next batch comes first.
      for (const client of [...this.clients]) if (!client.waiting) this.write(client, text);
    });
  }

  /**
   * Writes, unless the client's socket already holds too much (then it is
   * dropped); a write that the socket does not take at once makes the client
   * wait for its drain.
   */
  private write(client: Client, text: string): void {
    const response = client.response;
    if (response.destroyed || response.writableEnded) {
      this.forget(client);
      return;
    }
    const buffered = response.writableLength + (response.socket?.writableLength ?? 0);
    if (buffered > this.maxBufferedBytes) {
      this.drop(client, `${buffered} bytes unsent (at most ${this.maxBufferedBytes})`);
      return;
    }
    if (text === '' || response.write(text)) return;
    client.waiting = true;
    response.once('drain', () => {
      client.waiting = false;
      if (this.clients.has(client)) this.queueFlush();
    });
  }

  private drop(client: Client, why: string): void {
    this.options.logger.warn(`Dropped an event stream client that reads too slowly: ${why}`);
    this.forget(client);
    client.response.destroy();
  }

  /** The summary as a message ('' when it failed); one at a time, shared by whoever asks meanwhile. */
  private summaryMessage(): Promise<string> {
    if (this.summarizing === undefined) {
      const run = this.makeSummary();
      this.summarizing = run;
      void run.then(() => {
        if (this.summarizing === run) this.summarizing = undefined;
      });
    }
    return this.summarizing;
  }

  private async makeSummary(): Promise<string> {
    try {
      return `event: summary\ndata: ${JSON.stringify(await this.options.summary())}\n\n`;
    } catch (error) {
      this.options.logger.error({ err: error }, 'The event stream summary failed');
      return '';
    }
  }

  private armSummary(): void {
    if (this.summaryTimer !== undefined) return;
    this.summaryTimer = this.options.clock.setTimeout(() => {
      this.summaryTimer = undefined;
      if (this.clients.size === 0) return;
      this.sendSummary();
      this.armSummary();
    }, this.summaryIntervalMs);
  }
}
