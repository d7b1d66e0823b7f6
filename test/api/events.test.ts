import { describe, expect, it } from 'vitest';
import { PybalMetrics } from '../../src/api/metrics.js';
import { handleRequest } from '../../src/api/server.js';
import { EventHistory } from '../../src/events/history.js';
import { daemon } from './fixtures.js';

function deps(capacity = 100) {
  const events = new EventHistory(capacity, () => 1_700_000_000_000);
  return { events, snapshot: () => daemon([]), metrics: new PybalMetrics({ processMetrics: false }) };
}

async function get(d: ReturnType<typeof deps>, url: string) {
  const answer = await handleRequest(d, 'GET', url, undefined);
  return { status: answer.status, type: answer.contentType, value: JSON.parse(answer.body as string) as Record<string, unknown> & { events: { seq: number; message: string }[] } };
}

describe('GET /events', () => {
  it('answers the kept events oldest first, with the range kept, always in JSON', async () => {
    const d = deps(3);
    for (let i = 1; i <= 5; i++) d.events.emit({ kind: 'depooled', level: 'info', service: 'text', server: `mw${i}`, message: `Depooling server mw${i}` });
    const { status, type, value } = await get(d, '/events');
    expect(status).toBe(200);
    expect(type).toBe('application/json');
    expect(value).toMatchObject({ latestSeq: 5, oldestSeq: 3, capacity: 3 });
    expect(value.events).toEqual([
      { seq: 3, atWallMs: 1_700_000_000_000, kind: 'depooled', level: 'info', service: 'text', server: 'mw3', message: 'Depooling server mw3' },
      expect.objectContaining({ seq: 4 }),
      expect.objectContaining({ seq: 5 }),
    ]);
  });

  it('?since= pages forward, ?limit= bounds the answer (the latest without since)', async () => {
    const d = deps();
    for (let i = 1; i <= 10; i++) d.events.emit({ kind: 'reload', level: 'info', message: `reload ${i}` });
    expect((await get(d, '/events?since=4&limit=2')).value.events.map((e) => e.seq)).toEqual([5, 6]);
    expect((await get(d, '/events?since=10')).value.events).toEqual([]);
    expect((await get(d, '/events?limit=3')).value.events.map((e) => e.seq)).toEqual([8, 9, 10]);
  });

  it('refuses a malformed since or limit with 400 and says why', async () => {
    const d = deps();
    for (const [url, error] of [
      ['/events?since=abc', "since must be an integer between 0 and 9007199254740991, got 'abc'"],
      ['/events?limit=0', "limit must be an integer between 1 and 10000, got '0'"],
      ['/events?limit=-1', "limit must be an integer between 1 and 10000, got '-1'"],
    ] as const) {
      expect(await get(d, url)).toMatchObject({ status: 400, value: { error } });
    }
  });

  it('is 404 under it, and without a history', async () => {
    const d = deps();
    expect((await handleRequest(d, 'GET', '/events/x', undefined)).status).toBe(404);
    expect((await handleRequest({ snapshot: d.snapshot, metrics: d.metrics }, 'GET', '/events', undefined)).status).toBe(404);
  });
});
