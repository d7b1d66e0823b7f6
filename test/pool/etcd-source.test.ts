import { beforeEach, afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { formatProblem } from '../../src/runtime/errors.js';
import { createMemoryLogger, type MemoryLog } from '../../src/runtime/logger.js';
import { EtcdPoolState } from '../../src/pool/etcd-nodes.js';
import { decodeEtcdValue } from '../../src/pool/etcd-values.js';
import { createEtcdSource, etcdKeyUrl, type EtcdSourceOptions } from '../../src/pool/etcd-source.js';
import type { PoolEvent, PoolSource } from '../../src/pool/types.js';
import { useEtcd } from './etcd-server.js';
import { advanceFor, advanceUntil, freePort, rows, summarize } from './helpers.js';

const KEY = '/conftool/v1/pools/eqiad/text/nginx';

describe('etcd pool values', () => {
  const decode = (value: string): unknown => {
    const entry = decodeEtcdValue(`${KEY}/mw1`, value);
    if (entry.kind === 'server') return { ...entry.server, problems: entry.problems.map(formatProblem) };
    if (entry.kind === 'bad') return entry.problems.map(formatProblem);
    return entry.kind;
  };

  it.each([
    ['{"pooled": "yes", "weight": 10}', { host: 'mw1', weight: 10, enabled: true, problems: [] }],
    ['{"pooled": "no", "weight": 0}', { host: 'mw1', weight: 0, enabled: false, problems: [] }],
    ['{"weight": 3}', { host: 'mw1', weight: 3, enabled: true, problems: [] }],
    ['{"pooled": "inactive", "weight": 3}', 'inactive'],
    ['{"pooled": "maybe", "weight": 3}', [`${KEY}/mw1: pooled: expected "yes", "no" or "inactive", got string "maybe"`]],
    ['{"pooled": true}', [`${KEY}/mw1: pooled: expected "yes", "no" or "inactive", got boolean true`]],
    ['{"pooled": "yes", "weight": "10"}', [`${KEY}/mw1: weight: expected an integer >= 0, got string "10"`]],
    ['{"pooled": "yes", "weight": 2.5}', [`${KEY}/mw1: weight: expected an integer >= 0, got number 2.5`]],
    ['{"pooled": "yes", "weight": 1, "dc": "eqiad"}', { host: 'mw1', weight: 1, enabled: true, problems: [`${KEY}/mw1: dc: unknown key, ignored (known keys: pooled, weight)`] }],
    ['{"pooled": "yes",', [`${KEY}/mw1: invalid JSON at offset 0: object is never closed`]],
    ['"yes"', [`${KEY}/mw1: expected an object like {"pooled": "yes", "weight": 10}, got string "yes"`]],
  ])('decodes %s', (value, expected) => {
    expect(decode(value)).toEqual(expected);
  });

  it('keeps the state through events, removing deleted keys and directories', () => {
    const state = new EtcdPoolState();
    state.reset({
      key: KEY,
      dir: true,
      nodes: [
        { key: `${KEY}/mw1`, value: '{"pooled": "yes", "weight": 10}' },
        { key: `${KEY}/mw2`, value: '{"pooled": "no", "weight": 5}' },
        { key: `${KEY}/sub`, dir: true, nodes: [{ key: `${KEY}/sub/mw9`, value: '{"pooled": "yes", "weight": 1}' }] },
      ],
    });
    expect(rows(state.result().pool)).toEqual([['mw1', 10, true], ['mw2', 5, false], ['mw9', 1, true]]);
    state.apply({ action: 'set', node: { key: `${KEY}/mw3`, value: '{"pooled": "yes", "weight": 7}' } });
    state.apply({ action: 'delete', node: { key: `${KEY}/mw1` } });
    state.apply({ action: 'delete', node: { key: `${KEY}/sub`, dir: true } });
    state.apply({ action: 'compareAndSwap', node: { key: `${KEY}/mw2`, value: '{"pooled": "inactive", "weight": 5}' } });
    expect(rows(state.result().pool)).toEqual([['mw3', 7, true]]);
    state.apply({ action: 'expire', node: { key: `${KEY}/mw3` } });
    expect(rows(state.result().pool)).toEqual([]);
  });

  it('maps etcd:// URLs to the v2 key over https', () => {
    expect(etcdKeyUrl('etcd://conf1001.eqiad.wmnet/conftool/v1/pools/eqiad/text/nginx')?.href).toBe(
      'https://conf1001.eqiad.wmnet:2379/v2/keys/conftool/v1/pools/eqiad/text/nginx',
    );
    expect(etcdKeyUrl('etcd://127.0.0.1:4001/a/b/')?.href).toBe('https://127.0.0.1:4001/v2/keys/a/b');
    expect(etcdKeyUrl('etcd://[::1]:4001/a')?.href).toBe('https://[::1]:4001/v2/keys/a');
    expect(etcdKeyUrl('etcd://host')).toBeUndefined();
    expect(etcdKeyUrl('etcd://host/')).toBeUndefined();
  });
});

describe('etcd pool source against a real etcd', () => {
  const fx = useEtcd();
  let clock: ManualClock;
  let memory: MemoryLog;
  let events: PoolEvent[];
  let source: PoolSource | undefined;
  let testNo = 0;
  let prefix: string;

  beforeEach(() => {
    clock = new ManualClock();
    memory = createMemoryLogger();
    events = [];
    source = undefined;
    prefix = `/conftool/v1/pools/test${++testNo}/text`;
  });

  afterEach(async () => {
    await source?.stop();
  });

  function start(options: Partial<EtcdSourceOptions> = {}, url = `etcd://127.0.0.1:${fx.etcd.clientPort}${prefix}`): PoolSource {
    source = createEtcdSource(url, { clock, logger: memory.logger.child({ component: 'pool', service: 'text' }), ca: [fx.tls.cert], ...options });
    source.start((e) => events.push(e));
    return source;
  }

  it('reads the pool, then follows changes through the watch', async () => {
    await fx.etcd.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    await fx.etcd.put(`${prefix}/mw2`, '{"pooled": "no", "weight": 5}');
    await fx.etcd.put(`${prefix}/mw3`, '{"pooled": "inactive", "weight": 5}');
    start();
    await advanceUntil(clock, () => events.length === 1);
    expect(summarize(events)).toEqual([{ type: 'pool', servers: [['mw1', 10, true], ['mw2', 5, false]], problems: [] }]);

    await fx.etcd.put(`${prefix}/mw4`, '{"pooled": "yes", "weight": 1}');
    await advanceUntil(clock, () => events.length === 2);
    await fx.etcd.put(`${prefix}/mw1`, '{"pooled": "no", "weight": 10}');
    await advanceUntil(clock, () => events.length === 3);
    await fx.etcd.remove(`${prefix}/mw2`);
    await advanceUntil(clock, () => events.length === 4);
    await fx.etcd.put(`${prefix}/mw3`, '{"pooled": "yes", "weight": 5}');
    await advanceUntil(clock, () => events.length === 5);
    await fx.etcd.put(`${prefix}/mw4`, '{"pooled": "inactive", "weight": 1}');
    await advanceUntil(clock, () => events.length === 6);
    expect(summarize(events.slice(1)).map((e) => (e as { servers: unknown }).servers)).toEqual([
      [['mw1', 10, true], ['mw2', 5, false], ['mw4', 1, true]],
      [['mw1', 10, false], ['mw2', 5, false], ['mw4', 1, true]],
      [['mw1', 10, false], ['mw4', 1, true]],
      [['mw1', 10, false], ['mw3', 5, true], ['mw4', 1, true]],
      [['mw1', 10, false], ['mw3', 5, true]],
    ]);
  });

  it('reports a bad value and applies the other servers', async () => {
    await fx.etcd.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    start();
    await advanceUntil(clock, () => events.length === 1);
    await fx.etcd.put(`${prefix}/mw2`, '{"pooled": "yes", "weight": "heavy"}');
    await advanceUntil(clock, () => events.length === 3);
    const bad = `${prefix}/mw2: weight: expected an integer >= 0, got string "heavy"`;
    expect(summarize(events.slice(1))).toEqual([
      { type: 'pool', servers: [['mw1', 10, true]], problems: [':weight:expected an integer >= 0, got string "heavy"'] },
      { type: 'error', message: `etcd://127.0.0.1:${fx.etcd.clientPort}${prefix}: 1 key(s) skipped (first: ${bad})` },
    ]);
    expect(memory.lines()).toContain(`[text pool] WARN: ${bad}`);
  });

  it('keeps a server whose value turns bad, and refuses to lose every key', async () => {
    await fx.etcd.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    await fx.etcd.put(`${prefix}/mw2`, '{"pooled": "yes", "weight": 5}');
    start();
    await advanceUntil(clock, () => events.length === 1);
    const url = `etcd://127.0.0.1:${fx.etcd.clientPort}${prefix}`;

    await fx.etcd.put(`${prefix}/mw2`, '{"pooled": "maybe", "weight": 5}');
    await advanceUntil(clock, () => events.length === 3);
    expect(summarize(events.slice(1))).toEqual([
      { type: 'pool', servers: [['mw1', 10, true], ['mw2', 5, true]], problems: [':pooled:expected "yes", "no" or "inactive", got string "maybe"'] },
      {
        type: 'error',
        message:
          `${url}: 1 key(s) skipped (first: ${prefix}/mw2: pooled: expected "yes", "no" or "inactive", got string "maybe"); ` +
          'keeping mw2 from the last good pool until it reads clean',
      },
    ]);

    // Fixed, then every key removed: the removal of all is refused, the last good pool stays.
    await fx.etcd.put(`${prefix}/mw2`, '{"pooled": "no", "weight": 5}');
    await advanceUntil(clock, () => events.length === 5);
    expect(summarize(events.slice(3))).toEqual([{ type: 'recovered' }, { type: 'pool', servers: [['mw1', 10, true], ['mw2', 5, false]], problems: [] }]);
    await fx.etcd.remove(`${prefix}/mw1`);
    await advanceUntil(clock, () => events.length === 6);
    await fx.etcd.remove(`${prefix}/mw2`);
    await advanceUntil(clock, () => events.length === 7);
    await advanceFor(clock, 2000);
    expect(summarize(events.slice(5))).toEqual([
      { type: 'pool', servers: [['mw2', 5, false]], problems: [] },
      { type: 'error', message: `${url}: lists no server; refusing to empty the pool (to take every server out, disable each one)` },
    ]);
    expect(rows(source?.status().pool)).toEqual([['mw2', 5, false]]);
  });

  it('renews a quiet watch, and reads everything again when its index is outdated (PyBal kept the stale index)', async () => {
    await fx.etcd.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    start({ watchTimeoutMs: 5000 });
    await advanceUntil(clock, () => events.length === 1);
    // Over a thousand changes elsewhere push the watch's index out of etcd's history.
    for (let i = 0; i < 1010; i++) await fx.etcd.put(`/elsewhere/x`, String(i));
    await advanceUntil(clock, () => memory.lines().some((l) => l.includes('is outdated, reading the pool again')));
    await fx.etcd.put(`${prefix}/mw2`, '{"pooled": "yes", "weight": 2}');
    await advanceUntil(clock, () => events.length === 2);
    expect(summarize(events)).toEqual([
      { type: 'pool', servers: [['mw1', 10, true]], problems: [] },
      { type: 'pool', servers: [['mw1', 10, true], ['mw2', 2, true]], problems: [] },
    ]);
    expect(memory.lines().filter((l) => l.includes('outdated'))).toHaveLength(1);
  }, 60_000);

  it('reports a missing key once and reads the pool when it appears', async () => {
    start();
    await advanceUntil(clock, () => events.length === 1);
    await advanceFor(clock, 3000);
    expect(events).toEqual([
      {
        type: 'error',
        // etcd names the first path component that does not exist.
        message: `etcd://127.0.0.1:${fx.etcd.clientPort}${prefix}: HTTP 404 Not Found: Key not found (${prefix.replace(/\/text$/, '')})`,
      },
    ]);
    await fx.etcd.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    await advanceUntil(clock, () => events.length === 3);
    expect(summarize(events.slice(1))).toEqual([{ type: 'recovered' }, { type: 'pool', servers: [['mw1', 10, true]], problems: [] }]);
  });

  it('refuses a certificate it does not trust', async () => {
    source = createEtcdSource(`etcd://127.0.0.1:${fx.etcd.clientPort}${prefix}`, { clock, logger: memory.logger });
    source.start((e) => events.push(e));
    await advanceUntil(clock, () => events.length === 1);
    expect(events).toEqual([{ type: 'error', message: `etcd://127.0.0.1:${fx.etcd.clientPort}${prefix}: TLS: self-signed certificate` }]);
  });

  it('reports a refused connection', async () => {
    const port = await freePort();
    start({}, `etcd://127.0.0.1:${port}/x`);
    await advanceUntil(clock, () => events.length === 1);
    await advanceFor(clock, 3000);
    expect(events).toEqual([{ type: 'error', message: `etcd://127.0.0.1:${port}/x: connection refused` }]);
  });

  it('stop() ends an open watch and leaves no timer', async () => {
    await fx.etcd.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    const s = start();
    await advanceUntil(clock, () => events.length === 1);
    await advanceFor(clock, 200);
    await s.stop();
    expect(clock.pendingCount()).toBe(0);
    await fx.etcd.put(`${prefix}/mw1`, '{"pooled": "no", "weight": 10}');
    await advanceFor(clock, 500);
    expect(events).toHaveLength(1);
  });

  // Last: it restarts the shared fx.etcd.
  it('keeps the pool while etcd is down and recovers when it is back', async () => {
    await fx.etcd.put(`${prefix}/mw1`, '{"pooled": "yes", "weight": 10}');
    start();
    await advanceUntil(clock, () => events.length === 1);
    await fx.etcd.stop();
    const refused = { type: 'error', message: `etcd://127.0.0.1:${fx.etcd.clientPort}${prefix}: connection refused` };
    await advanceUntil(clock, () => events.some((e) => e.type === 'error' && e.message === refused.message));
    await advanceFor(clock, 3000);
    // The open watch may first end with its own error (reset, closed); then connection refused, once.
    const errors = events.slice(1);
    expect(errors.length).toBeLessThanOrEqual(2);
    expect(errors.at(-1)).toEqual(refused);
    expect(errors.every((e) => e.type === 'error')).toBe(true);
    expect(new Set(errors.map((e) => (e.type === 'error' ? e.message : ''))).size).toBe(errors.length);
    expect(rows(source?.status().pool)).toEqual([['mw1', 10, true]]);
    await fx.etcd.restart();
    const before = events.length;
    await advanceUntil(clock, () => events.length === before + 1);
    await fx.etcd.put(`${prefix}/mw1`, '{"pooled": "no", "weight": 10}');
    await advanceUntil(clock, () => events.length === before + 2);
    expect(summarize(events.slice(before))).toEqual([{ type: 'recovered' }, { type: 'pool', servers: [['mw1', 10, false]], problems: [] }]);
  }, 60_000);
});
