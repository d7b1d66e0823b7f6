import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger, type MemoryLog } from '../../src/runtime/logger.js';
import { createEtcdSource } from '../../src/pool/etcd-source.js';
import { createEtcd3Source, type Etcd3SourceOptions } from '../../src/pool/etcd3-source.js';
import type { PoolEvent, PoolSource } from '../../src/pool/types.js';
import { useEtcd } from './etcd-server.js';
import { advanceFor, advanceUntil, freePort, rows, summarize, waitReal } from './helpers.js';

const b64 = (text: string): string => Buffer.from(text).toString('base64');

/**
 * Against a real etcd 3.4 with the v2 API off (its default, made explicit),
 * which sends a progress notification every second and splits a watch
 * message of more than about 540 KB into fragments (30 KB requests, plus the
 * 512 KB etcd allows over that).
 */
describe('etcd3 pool source against a real etcd without the v2 API', () => {
  const fx = useEtcd({ v2: false, args: ['--experimental-watch-progress-notify-interval=1s', '--max-request-bytes=30000'] });
  let clock: ManualClock;
  let memory: MemoryLog;
  let events: PoolEvent[];
  let source: PoolSource | undefined;
  let testNo = 0;
  let prefix: string;
  let url: string;

  beforeEach(() => {
    clock = new ManualClock();
    memory = createMemoryLogger();
    events = [];
    source = undefined;
    prefix = `/conftool/v1/pools/test${++testNo}/text`;
    url = `etcd3://127.0.0.1:${fx.etcd.clientPort}${prefix}`;
  });

  afterEach(async () => {
    await source?.stop();
  });

  function start(options: Partial<Etcd3SourceOptions> = {}, sourceUrl = url): PoolSource {
    const logger = memory.logger.child({ component: 'pool', service: 'text' });
    source = createEtcd3Source(sourceUrl, { clock, logger, ca: [fx.tls.cert], maxReconnectDelayMs: 2000, ...options });
    source.start((e) => events.push(e));
    return source;
  }

  /** Until the watch is set up (after the first pool is delivered). */
  const watching = (): boolean => memory.lines().some((l) => l.includes(`${url}: watching from revision`));
  const fullReads = (): number => memory.lines().filter((l) => l.includes(`read ${url} at revision`)).length;
  const servers = (from: number): unknown[] => summarize(events.slice(from)).map((e) => (e as { servers?: unknown }).servers ?? e);

  it('runs with the v2 API off: a v2 request fails, and the etcd:// source cannot read the pool', async () => {
    expect((await fx.etcd.request('GET', '/v2/keys/')).status).toBe(404);
    expect((await fx.etcd.request('PUT', '/v2/keys/x', 'value=1', 'application/x-www-form-urlencoded')).status).toBe(404);
    await fx.etcd.v3.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    const v2 = createEtcdSource(`etcd://127.0.0.1:${fx.etcd.clientPort}${prefix}`, { clock, logger: memory.logger, ca: [fx.tls.cert] });
    const v2Events: PoolEvent[] = [];
    v2.start((e) => v2Events.push(e));
    try {
      await advanceUntil(clock, () => v2Events.length === 1);
      expect(v2Events).toEqual([{ type: 'error', message: `etcd://127.0.0.1:${fx.etcd.clientPort}${prefix}: HTTP 404 Not Found` }]);
    } finally {
      await v2.stop();
    }
    start();
    await advanceUntil(clock, () => events.length === 1);
    expect(summarize(events)).toEqual([{ type: 'pool', servers: [['mw1', 10, true]], problems: [] }]);
  });

  it('reads the pool once, then follows puts and deletes through the watch', async () => {
    await fx.etcd.v3.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    await fx.etcd.v3.put(`${prefix}/mw2`, '{"pooled": "no", "weight": 5}');
    await fx.etcd.v3.put(`${prefix}/mw3`, '{"pooled": "inactive", "weight": 5}');
    // Neither a sibling pool whose name starts alike nor the prefix's own key is part of it.
    await fx.etcd.v3.put(`${prefix}2/mw9`, '{"pooled": "yes", "weight": 1}');
    await fx.etcd.v3.put(prefix, '{"pooled": "yes", "weight": 1}');
    start();
    await advanceUntil(clock, () => events.length === 1);
    expect(summarize(events)).toEqual([{ type: 'pool', servers: [['mw1', 10, true], ['mw2', 5, false]], problems: [] }]);

    const changes: [string, string | undefined][] = [
      ['mw4', '{"pooled": "yes", "weight": 1}'], // a new server
      ['mw1', '{"pooled": "no", "weight": 10}'], // disabled
      ['mw2', undefined], // deleted: forgotten
      ['mw3', '{"pooled": "yes", "weight": 5}'], // inactive to pooled
      ['mw4', '{"pooled": "inactive", "weight": 1}'], // pooled to inactive
      ['mw1', '{"pooled": "no", "weight": 30}'], // a weight change
    ];
    for (const [host, value] of changes) {
      const before = events.length;
      if (value === undefined) await fx.etcd.v3.remove(`${prefix}/${host}`);
      else await fx.etcd.v3.put(`${prefix}/${host}`, value);
      await advanceUntil(clock, () => events.length === before + 1);
    }
    expect(servers(1)).toEqual([
      [['mw1', 10, true], ['mw2', 5, false], ['mw4', 1, true]],
      [['mw1', 10, false], ['mw2', 5, false], ['mw4', 1, true]],
      [['mw1', 10, false], ['mw4', 1, true]],
      [['mw1', 10, false], ['mw3', 5, true], ['mw4', 1, true]],
      [['mw1', 10, false], ['mw3', 5, true]],
      [['mw1', 30, false], ['mw3', 5, true]],
    ]);
    // Changes to other keys deliver nothing.
    await fx.etcd.v3.put(`${prefix}2/mw9`, '{"pooled": "no", "weight": 1}');
    await advanceFor(clock, 1000);
    expect(events).toHaveLength(7);
    expect(fullReads()).toBe(1);
  });

  it('starts with an empty pool when no key is under the prefix, with a warning, and fills it later', async () => {
    start();
    await advanceUntil(clock, () => events.length === 1);
    expect(summarize(events)).toEqual([{ type: 'pool', servers: [], problems: [] }]);
    expect(memory.lines()).toContain(`[text pool] WARN: ${url}: no key under ${prefix}/`);
    await fx.etcd.v3.put(`${prefix}/mw1`, '{"weight": 3}');
    await advanceUntil(clock, () => events.length === 2);
    expect(summarize(events.slice(1))).toEqual([{ type: 'pool', servers: [['mw1', 3, true]], problems: [] }]);
  });

  it('renews a quiet watch from where it was, without reading the pool again', async () => {
    await fx.etcd.v3.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    start({ watchTimeoutMs: 2000 });
    await advanceUntil(clock, () => events.length === 1);
    await advanceUntil(clock, () => memory.lines().some((l) => l.includes('the watch was quiet for 2000 ms, renewing it')));
    await fx.etcd.v3.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 11}');
    await advanceUntil(clock, () => events.length === 2);
    expect(servers(1)).toEqual([[['mw1', 11, true]]]);
    expect(fullReads()).toBe(1);
    expect(events.every((e) => e.type === 'pool')).toBe(true);
  });

  it('reads 10,000 keys in pages at one revision, then applies one change', async () => {
    const hosts = Array.from({ length: 10_000 }, (_, i) => `mw${String(i).padStart(5, '0')}`);
    await fx.etcd.v3.putMany(hosts.map((h, i) => [`${prefix}/${h}`, `{"pooled": "${i % 10 === 0 ? 'no' : 'yes'}", "weight": ${i % 7}}`] as const));
    start();
    await advanceUntil(clock, () => events.length === 1, 50, 2000);
    const first = events[0];
    expect(first?.type).toBe('pool');
    const pool = first?.type === 'pool' ? first.pool : new Map();
    expect(pool.size).toBe(10_000);
    expect([...pool.keys()]).toEqual(hosts);
    expect(rows(pool).slice(0, 2)).toEqual([['mw00000', 0, false], ['mw00001', 1, true]]);
    expect(pool.get('mw09999')).toEqual({ host: 'mw09999', weight: 9999 % 7, enabled: true });
    expect(memory.lines()).toContainEqual(expect.stringMatching(/read etcd3:\S+ at revision \d+: 10000 keys in 10 page\(s\)$/));

    await fx.etcd.v3.put(`${prefix}/mw05000`, '{"pooled": "yes", "weight": 99}');
    await advanceUntil(clock, () => events.length === 2);
    const second = events[1];
    expect(second?.type === 'pool' ? second.pool.get('mw05000') : second).toEqual({ host: 'mw05000', weight: 99, enabled: true });
    expect(second?.type === 'pool' ? second.pool.size : 0).toBe(10_000);
    expect(fullReads()).toBe(1);
  }, 60_000);

  it('applies a revision that etcd sends in fragments as one change', async () => {
    await fx.etcd.v3.put(`${prefix}/mw-keep`, '{"weight": 1}');
    // 5,000 keys with long names: deleting them is one revision of some 1.2 MB of events.
    const bulk = Array.from({ length: 5000 }, (_, i) => `${prefix}/bulk/${'x'.repeat(200)}-${i}`);
    await fx.etcd.v3.putMany(bulk.map((key) => [key, '{"weight": 2}'] as const));
    start();
    await advanceUntil(clock, () => events.length === 1 && watching(), 50, 2000);
    expect(events[0]?.type === 'pool' ? events[0].pool.size : 0).toBe(5001);
    const revision = await fx.etcd.request('POST', '/v3/kv/deleterange', JSON.stringify({ key: b64(`${prefix}/bulk/`), range_end: b64(`${prefix}/bulk0`) }));
    expect(revision.status).toBe(200);
    await advanceUntil(clock, () => events.length === 2);
    await advanceFor(clock, 500);
    expect(servers(1)).toEqual([[['mw-keep', 1, true]]]);
    expect(memory.lines()).toContainEqual(expect.stringMatching(/: revision \d+ came in [2-9] fragments$/));
    expect(fullReads()).toBe(1);
  }, 60_000);

  it('reads a pool over many small pages the same as in one', async () => {
    await fx.etcd.v3.putMany(['a', 'b', 'c', 'd', 'e'].map((h) => [`${prefix}/mw-${h}`, '{"weight": 2}'] as const));
    start({ pageSize: 2 });
    await advanceUntil(clock, () => events.length === 1);
    expect(servers(0)).toEqual([[['mw-a', 2, true], ['mw-b', 2, true], ['mw-c', 2, true], ['mw-d', 2, true], ['mw-e', 2, true]]]);
    expect(memory.lines()).toContainEqual(expect.stringMatching(/: 5 keys in 3 page\(s\)$/));
  });

  it('refuses a certificate it does not trust', async () => {
    source = createEtcd3Source(url, { clock, logger: memory.logger });
    source.start((e) => events.push(e));
    await advanceUntil(clock, () => events.length === 1);
    expect(events).toEqual([{ type: 'error', message: `${url}: TLS: self-signed certificate` }]);
  });

  it('reports a refused connection once while it retries with backoff', async () => {
    const port = await freePort();
    start({}, `etcd3://127.0.0.1:${port}/x`);
    await advanceUntil(clock, () => events.length === 1);
    await advanceFor(clock, 5000);
    expect(events).toEqual([{ type: 'error', message: `etcd3://127.0.0.1:${port}/x: connection refused` }]);
  });

  it('reports an unusable URL', () => {
    start({}, 'etcd3://127.0.0.1');
    expect(events).toEqual([{ type: 'error', message: 'etcd3://127.0.0.1: not a valid etcd3://host[:port]/prefix URL' }]);
  });

  it('stop() ends an open watch and leaves no timer', async () => {
    await fx.etcd.v3.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    const s = start();
    await advanceUntil(clock, () => events.length === 1);
    await advanceFor(clock, 200);
    await s.stop();
    expect(clock.pendingCount()).toBe(0);
    await fx.etcd.v3.put(`${prefix}/mw1`, '{"pooled": "no", "weight": 10}');
    await advanceFor(clock, 500);
    expect(events).toHaveLength(1);
    expect(memory.lines().filter((l) => l.includes('WARN') || l.includes('ERROR'))).toEqual([]);
  });

  // Last: these restart the shared etcd (with its data).
  it('keeps the pool while etcd is down, then resumes the watch and gets a change made meanwhile, without a full read', async () => {
    await fx.etcd.v3.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    start();
    await advanceUntil(clock, () => events.length === 1 && watching());
    await fx.etcd.stop();
    const refused = { type: 'error', message: `${url}: connection refused` };
    await advanceUntil(clock, () => events.some((e) => e.type === 'error' && e.message === refused.message));
    await advanceFor(clock, 3000);
    // The watch breaking is logged, not reported; connecting again fails, reported once.
    expect(events.slice(1)).toEqual([refused]);
    expect(memory.lines()).toContainEqual(expect.stringContaining(`WARN: ${url}: the watch broke (`));
    expect(rows(source?.status().pool)).toEqual([['mw1', 10, true]]);

    await fx.etcd.restart();
    // The source waits on the manual clock: this change comes before it reconnects.
    await fx.etcd.v3.put(`${prefix}/mw1`, '{"pooled": "no", "weight": 10}');
    await fx.etcd.v3.put(`${prefix}/mw2`, '{"pooled": "yes", "weight": 2}');
    await advanceUntil(clock, () => events.length === 4);
    expect(summarize(events.slice(2))).toEqual([{ type: 'recovered' }, { type: 'pool', servers: [['mw1', 10, false], ['mw2', 2, true]], problems: [] }]);
    expect(fullReads()).toBe(1);
  }, 60_000);

  it('reads the pool again when etcd compacted its history while the source was away', async () => {
    await fx.etcd.v3.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    await fx.etcd.v3.put(`${prefix}/mw2`, '{"pooled": "yes", "weight": 20}');
    // No progress notification may move the source's revision past the changes below.
    start({ watchTimeoutMs: 600_000 });
    await advanceUntil(clock, () => events.length === 1 && watching());
    await fx.etcd.stop();
    await advanceUntil(clock, () => events.length === 2);
    await fx.etcd.restart();
    await fx.etcd.v3.remove(`${prefix}/mw1`);
    const revision = await fx.etcd.v3.put(`${prefix}/mw3`, '{"pooled": "yes", "weight": 30}');
    await fx.etcd.v3.compact(revision);
    await advanceUntil(clock, () => events.length === 4);
    expect(summarize(events.slice(2))).toEqual([{ type: 'recovered' }, { type: 'pool', servers: [['mw2', 20, true], ['mw3', 30, true]], problems: [] }]);
    expect(memory.lines()).toContainEqual(expect.stringMatching(/INFO: etcd3:\S+: etcd has compacted its history past revision \d+ \(to \d+\); reading the pool again$/));
    expect(fullReads()).toBe(2);
  }, 60_000);

  it('keeps a quiet pool`s revision current from progress notifications, so compaction costs no full read', async () => {
    await fx.etcd.v3.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    start({ watchTimeoutMs: 600_000 });
    await advanceUntil(clock, () => events.length === 1 && watching());
    // Changes elsewhere move etcd's revision; a progress notification (every second) tells the watch.
    let revision = 0;
    for (let i = 0; i < 5; i++) revision = await fx.etcd.v3.put('/elsewhere/x', String(i));
    const progressed = (): boolean =>
      memory.lines().some((l) => {
        const match = /etcd has sent every change up to revision (\d+)$/.exec(l);
        return match !== null && Number(match[1]) >= revision;
      });
    await waitReal(() => progressed(), 10_000);
    await fx.etcd.stop();
    await advanceUntil(clock, () => events.length === 2);
    await fx.etcd.restart();
    await fx.etcd.v3.compact(await fx.etcd.v3.revision());
    await fx.etcd.v3.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 12}');
    await advanceUntil(clock, () => events.length === 4);
    expect(summarize(events.slice(2))).toEqual([{ type: 'recovered' }, { type: 'pool', servers: [['mw1', 12, true]], problems: [] }]);
    expect(fullReads()).toBe(1);
  }, 60_000);
});
