/**
 * The status page, /events and /events/stream against a real ApiServer on
 * loopback: what is emitted reaches the stream, resume works, the cap holds,
 * and closed or slow clients are let go.
 */
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PybalMetrics } from '../../src/api/metrics.js';
import { createApiServer, type ApiServer } from '../../src/api/server.js';
import { domIdPart } from '../../src/api/status-page.js';
import { EventHistory, type EventInput } from '../../src/events/history.js';
import type { DaemonSnapshot } from '../../src/api/types.js';
import { createMemoryLogger, type MemoryLog } from '../../src/runtime/logger.js';
import { daemon, monitor, server, service } from './fixtures.js';

const snapshotValue = daemon([
  service('text-https', [server('mw1001'), server('mw1002', { up: false, pooledDown: true, monitors: [monitor({ up: false, reason: 'Connection refused' })] })]),
]);

interface Stream {
  readonly response: IncomingMessage;
  readonly req: ClientRequest;
  /** Everything received so far. */
  text(): string;
  /** Resolves once the received text satisfies `predicate` (or rejects when the stream ends first). */
  until(predicate: (text: string) => boolean): Promise<string>;
  ended: Promise<void>;
}

let port: number;
let api: ApiServer;
let history: EventHistory;

function openStream(path: string, headers: Record<string, string> = {}): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (response) => {
      let text = '';
      const waiters = new Set<() => void>();
      let done = false;
      const ended = new Promise<void>((r) => {
        const end = (): void => {
          done = true;
          for (const w of waiters) w();
          r();
        };
        response.on('end', end);
        response.on('close', end);
        response.on('error', end);
      });
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        text += chunk;
        for (const w of waiters) w();
      });
      resolve({
        response,
        req,
        text: () => text,
        ended,
        until: (predicate) =>
          new Promise((ok, fail) => {
            const check = (): void => {
              if (predicate(text)) {
                waiters.delete(check);
                ok(text);
              } else if (done) {
                waiters.delete(check);
                fail(new Error(`stream ended without it; got: ${text.slice(-500)}`));
              }
            };
            waiters.add(check);
            check();
          }),
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function get(path: string, method = 'GET', headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (c: string) => (body += c));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Waits for a condition the server reaches on its own (a socket closing); no time is asserted. */
async function eventually(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(condition()).toBe(true);
}

const event = (n: number, over: Partial<EventInput> = {}): EventInput => ({
  kind: 'depooled',
  level: 'info',
  service: 'text-https',
  server: 'mw1002',
  pooled: false,
  message: `Depooling server mw1002 (${n})`,
  ...over,
});

/** The seqs of the `change` events in a stream's text. */
const seqs = (text: string): number[] => [...text.matchAll(/^id: (\d+)\nevent: change\n/gm)].map((m) => Number(m[1]));

async function start(
  options: { capacity?: number; maxClients?: number; maxBufferedBytes?: number; snapshotSliced?: () => Promise<DaemonSnapshot>; log?: MemoryLog } = {},
): Promise<void> {
  history = new EventHistory(options.capacity ?? 100, () => 1_700_000_000_000);
  api = createApiServer({
    snapshot: () => snapshotValue,
    snapshotSliced: options.snapshotSliced,
    metrics: new PybalMetrics({ processMetrics: false }),
    logger: (options.log ?? createMemoryLogger()).logger,
    events: history,
    stream: { maxClients: options.maxClients ?? 4, maxBufferedBytes: options.maxBufferedBytes, summaryIntervalMs: 60_000, retryMs: 1500 },
  });
  port = (await api.listen({ ips: ['127.0.0.1'], port: 0 }))[0]?.port ?? 0;
}

afterEach(async () => {
  await api.close();
});

describe('the page and /events over HTTP', () => {
  beforeEach(() => start());

  it('GET / answers the whole page with the state the snapshot has; HEAD the headers alone', async () => {
    history.emit(event(1));
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toMatch(/^default-src 'none'/);
    expect(page.body).toContain(`<tr id="server-${domIdPart('text-https')}-mw1002" data-service="text-https" data-host="mw1002" data-state="down" data-pooled="yes"`);
    expect(page.body).toContain('<li data-seq="1" data-kind="depooled"');
    expect(page.body).toContain('<body data-latest-seq="1">');
    expect(Number(page.headers['content-length'])).toBe(Buffer.byteLength(page.body));
    const head = await get('/', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBe(page.headers['content-length']);
  });

  it('GET and HEAD /events answer the history as JSON', async () => {
    history.emit(event(1));
    history.emit(event(2));
    const reply = await get('/events?since=1');
    expect(reply.headers['content-type']).toBe('application/json');
    expect(JSON.parse(reply.body)).toMatchObject({ latestSeq: 2, events: [{ seq: 2, message: 'Depooling server mw1002 (2)' }] });
    expect(await get('/events', 'HEAD')).toMatchObject({ status: 200, body: '' });
  });

  it('the other paths answer as before', async () => {
    expect((await get('/pools/text-https')).body).toBe('mw1001:\tenabled/up/pooled\nmw1002:\tenabled/down/pooled\n');
    expect((await get('/alerts')).body).toMatch(/^CRITICAL - text-https/);
    expect((await get('/status')).status).toBe(200);
    expect((await get('/metrics')).status).toBe(200);
    expect((await get('/events/stream', 'POST')).status).toBe(405);
  });
});

describe('GET /events/stream', () => {
  it('sends retry and a summary at once, then each event emitted after connecting', async () => {
    await start();
    history.emit(event(1)); // before connecting: not sent (no resume point asked)
    const stream = await openStream('/events/stream');
    expect(stream.response.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    await stream.until((t) => t.includes('event: summary\n'));
    expect(stream.text().startsWith('retry: 1500\n\n')).toBe(true);
    expect(stream.text()).toContain('"name":"text-https","total":2');
    history.emit(event(2, { message: 'Could not depool server mw1002 because of too many down!', kind: 'depool-held', up: false, pooled: true }));
    const text = await stream.until((t) => seqs(t).includes(2));
    expect(seqs(text)).toEqual([2]);
    const data = /^id: 2\nevent: change\ndata: (.*)$/m.exec(text)?.[1] ?? '';
    expect(JSON.parse(data)).toEqual({ seq: 2, atWallMs: 1_700_000_000_000, kind: 'depool-held', level: 'info', service: 'text-https', server: 'mw1002', up: false, pooled: true, message: 'Could not depool server mw1002 because of too many down!' });
    stream.req.destroy();
  });

  it('after events, one summary follows with the counts as they are then (not one per event), so a service row follows its servers', async () => {
    await start();
    const stream = await openStream('/events/stream');
    await stream.until((t) => t.includes('event: summary'));
    const summaries = (t: string): string[] => [...t.matchAll(/^event: summary\ndata: (.*)$/gm)].map((m) => m[1] as string);
    expect(summaries(stream.text())).toHaveLength(1);
    // The periodic summary is a minute away here: a second one can only be the one that follows the events.
    for (let i = 1; i <= 50; i++) history.emit(event(i));
    const text = await stream.until((t) => summaries(t).length >= 2);
    expect(seqs(text)).toHaveLength(50);
    // After the events, not before them.
    expect(text.lastIndexOf('event: summary')).toBeGreaterThan(text.indexOf('id: 50\n'));
    await new Promise((r) => setTimeout(r, 1_500));
    expect(summaries(stream.text())).toHaveLength(2);
    stream.req.destroy();
  });

  it('takes its summaries from the snapshot taken in slices; one that fails is logged, and the next one comes', async () => {
    let calls = 0;
    const log = createMemoryLogger();
    await start({
      log,
      snapshotSliced: async () => {
        calls++;
        await new Promise((resolve) => setImmediate(resolve));
        if (calls === 1) throw new Error('no snapshot now');
        return snapshotValue;
      },
    });
    const stream = await openStream('/events/stream');
    await stream.until((t) => t.startsWith('retry: 1500\n\n'));
    // The first summary failed: said in the log, nothing sent for it.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(log.lines().some((l) => l.includes('The event stream summary failed'))).toBe(true);
    expect(stream.text()).not.toContain('event: summary');
    // After an event, the next summary: from a fresh snapshot, not the failed one kept.
    history.emit(event(1));
    const text = await stream.until((t) => t.includes('event: summary'));
    expect(text).toContain('"name":"text-https","total":2');
    expect(calls).toBe(2);
    stream.req.destroy();
  });

  it('a burst (a mass depool) arrives whole and in order', async () => {
    await start({ capacity: 5000 });
    const stream = await openStream('/events/stream');
    await stream.until((t) => t.includes('event: summary'));
    for (let i = 1; i <= 3000; i++) history.emit(event(i));
    const text = await stream.until((t) => seqs(t).includes(3000));
    expect(seqs(text)).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
    stream.req.destroy();
  });

  it('resumes after Last-Event-ID (what EventSource sends on reconnecting), or after ?since=', async () => {
    await start();
    for (let i = 1; i <= 5; i++) history.emit(event(i));
    const resumed = await openStream('/events/stream?since=1', { 'last-event-id': '3' });
    expect(seqs(await resumed.until((t) => seqs(t).includes(5)))).toEqual([4, 5]);
    const since = await openStream('/events/stream?since=2');
    expect(seqs(await since.until((t) => seqs(t).includes(5)))).toEqual([3, 4, 5]);
    resumed.req.destroy();
    since.req.destroy();
  });

  it('says when events to resume from are no longer kept, then goes on from the oldest kept', async () => {
    await start({ capacity: 10 });
    for (let i = 1; i <= 25; i++) history.emit(event(i));
    const stream = await openStream('/events/stream', { 'last-event-id': '2' });
    const text = await stream.until((t) => seqs(t).includes(25));
    expect(text).toContain('event: reset\ndata: {"reason":"missed","missedFrom":3,"oldestSeq":16}');
    expect(seqs(text)).toEqual(Array.from({ length: 10 }, (_, i) => i + 16));
    stream.req.destroy();
  });

  it('takes at most maxClients streams (503 beyond), and forgets a client that disconnects', async () => {
    await start({ maxClients: 2 });
    const a = await openStream('/events/stream');
    const b = await openStream('/events/stream');
    await a.until((t) => t.includes('event: summary'));
    await b.until((t) => t.includes('event: summary'));
    expect(api.streams).toBe(2);
    const refused = await get('/events/stream');
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('30');
    expect(refused.body).toBe('too many event streams open (at most 2)\n');
    a.req.destroy();
    await eventually(() => api.streams === 1);
    const c = await openStream('/events/stream');
    await c.until((t) => t.includes('event: summary'));
    expect(api.streams).toBe(2);
    // The remaining streams still get events.
    history.emit(event(1));
    await b.until((t) => seqs(t).includes(1));
    await c.until((t) => seqs(t).includes(1));
    b.req.destroy();
    c.req.destroy();
    await eventually(() => api.streams === 0);
  });

  it('holds back a client that does not read, drops it once the history laps it, and keeps serving the others', async () => {
    await start({ capacity: 2000 });
    const slow = await openStream('/events/stream');
    const fast = await openStream('/events/stream');
    await slow.until((t) => t.includes('event: summary'));
    await fast.until((t) => t.includes('event: summary'));
    slow.response.pause();
    const message = 'x'.repeat(500);
    let seq = 0;
    // 15 bursts of 1000 events of some 700 bytes: 10 MB that the slow client never reads.
    for (let burst = 0; burst < 15; burst++) {
      for (let i = 0; i < 1000; i++) history.emit(event(++seq, { message }));
      const last = seq;
      await fast.until((t) => t.slice(-4000).includes(`id: ${last}\n`));
    }
    await eventually(() => api.streams === 1);
    // The fast client had every event, in order.
    expect(seqs(fast.text())).toEqual(Array.from({ length: seq }, (_, i) => i + 1));
    // What the slow one was sent stayed within a few batches, not the 60 MB.
    expect(slow.text().length + slow.response.readableLength + (slow.req.socket?.readableLength ?? 0)).toBeLessThan(8 * 1024 * 1024);
    fast.req.destroy();
  });

  it('ends every stream when the server closes (daemon stop)', async () => {
    await start();
    const stream = await openStream('/events/stream');
    await stream.until((t) => t.includes('event: summary'));
    await api.close();
    await stream.ended;
    expect(api.streams).toBe(0);
  });
});
