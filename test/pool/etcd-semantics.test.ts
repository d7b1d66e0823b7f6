/**
 * The etcd:// (v2) and etcd3:// (v3) sources read the same pools the same
 * way: each case writes the same keys into a real etcd with the v2 API on
 * (for etcd://) and one with it off (for etcd3://), makes the same changes
 * in both, and expects the same events from both sources.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { createEtcdSource } from '../../src/pool/etcd-source.js';
import { createEtcd3Source } from '../../src/pool/etcd3-source.js';
import type { PoolEvent, PoolSource } from '../../src/pool/types.js';
import { useEtcd } from './etcd-server.js';
import { advanceFor, advanceUntil, summarize } from './helpers.js';

/** Host (or a path under the pool) to value; undefined deletes the key. */
type Step = Readonly<Record<string, string | undefined>>;

interface Case {
  readonly name: string;
  /** The keys before the sources start, then one change after another. */
  readonly steps: readonly Step[];
  /** The summarized events of the first read, as both sources must give them. */
  readonly first: readonly unknown[];
}

const SKIPPED = (url: string, count: number, first: string, kept = ''): PoolEvent => ({
  type: 'error',
  message: `${url}: ${count} key(s) skipped (first: ${first})${kept}`,
});

const CASES: readonly Case[] = [
  {
    name: 'pooled yes, no, inactive and left out',
    steps: [{ mw1: '{"pooled": "yes", "weight": 10}', mw2: '{"pooled": "no", "weight": 5}', mw3: '{"pooled": "inactive", "weight": 1}', mw4: '{"weight": 3}', mw5: '{}' }],
    first: [{ type: 'pool', servers: [['mw1', 10, true], ['mw2', 5, false], ['mw4', 3, true], ['mw5', 10, true]], problems: [] }],
  },
  {
    name: 'bad values are skipped with the same messages, the rest applies',
    steps: [
      {
        mw1: '{"pooled": "yes", "weight": 0}',
        mw2: '{"pooled": "maybe"}',
        mw3: '{"pooled": "yes", "weight": "10"}',
        mw4: '{"weight": 2.5}',
        mw5: '{"pooled": "yes",',
        mw6: '"yes"',
        mw7: '',
        mw8: '{"pooled": "no", "dc": "eqiad"}',
        mw9: '{"pooled": true}',
      },
    ],
    first: [
      {
        type: 'pool',
        servers: [['mw1', 0, true], ['mw8', 10, false]],
        problems: [
          ':pooled:expected "yes", "no" or "inactive", got string "maybe"',
          ':weight:expected an integer >= 0, got string "10"',
          ':weight:expected an integer >= 0, got number 2.5',
          '::invalid JSON at offset 0: object is never closed',
          '::expected an object like {"pooled": "yes", "weight": 10}, got string "yes"',
          '::invalid JSON at offset 0: the document is empty',
          ':dc:unknown key, ignored (known keys: pooled, weight)',
          ':pooled:expected "yes", "no" or "inactive", got boolean true',
        ],
      },
      SKIPPED('URL', 7, 'PREFIX/mw2: pooled: expected "yes", "no" or "inactive", got string "maybe"'),
    ],
  },
  {
    name: 'keys in subdirectories count, and a host named by two keys takes the value of the later key',
    steps: [{ mw1: '{"weight": 1}', 'a/mw2': '{"weight": 2}', 'b/mw1': '{"weight": 3}', 'b/c/mw3': '{"pooled": "no"}' }, { mw1: undefined }],
    // In key order: /a/mw2, /b/c/mw3, /b/mw1, /mw1 (which wins, at /b/mw1's place).
    first: [{ type: 'pool', servers: [['mw2', 2, true], ['mw3', 10, false], ['mw1', 1, true]], problems: [] }],
  },
  {
    name: 'puts and deletes, a value turning bad and fixed, and every key removed',
    steps: [
      { mw1: '{"pooled": "yes", "weight": 10}', mw2: '{"pooled": "yes", "weight": 20}' },
      { mw2: '{"pooled": "inactive", "weight": 20}' },
      { mw3: '{"pooled": "yes", "weight": 30}' },
      { mw1: '{"pooled": "no", "weight": 10}' },
      { mw2: '{"pooled": "yes", "weight": 0}' },
      { mw3: undefined },
      { mw1: '{"pooled": "no", "weight": -1}' },
      { mw1: '{"pooled": "yes", "weight": 1}' },
      { mw1: undefined },
      { mw2: undefined },
    ],
    first: [{ type: 'pool', servers: [['mw1', 10, true], ['mw2', 20, true]], problems: [] }],
  },
];

describe('etcd:// and etcd3:// read pools alike', () => {
  const v2 = useEtcd({ v2: true });
  const v3 = useEtcd({ v2: false });
  let caseNo = 0;

  it.each(CASES)('$name', async ({ steps, first }) => {
    const prefix = `/conftool/v1/pools/case${++caseNo}/text`;
    const write = async (step: Step): Promise<void> => {
      for (const [name, value] of Object.entries(step)) {
        const key = `${prefix}/${name}`;
        if (value === undefined) await Promise.all([v2.etcd.remove(key), v3.etcd.v3.remove(key)]);
        else await Promise.all([v2.etcd.put(key, value), v3.etcd.v3.put(key, value)]);
      }
    };
    const clock = new ManualClock();
    const logger = createMemoryLogger().logger;
    const urls = [`etcd://127.0.0.1:${v2.etcd.clientPort}${prefix}`, `etcd3://127.0.0.1:${v3.etcd.clientPort}${prefix}`] as const;
    const sources: PoolSource[] = [
      createEtcdSource(urls[0], { clock, logger, ca: [v2.tls.cert] }),
      createEtcd3Source(urls[1], { clock, logger, ca: [v3.tls.cert] }),
    ];
    const seen: PoolEvent[][] = [[], []];
    /** Events so far, with each source's URL and prefix written alike. */
    const normalized = (i: number): unknown[] =>
      summarize(seen[i] as PoolEvent[]).map((e) => JSON.parse(JSON.stringify(e).replaceAll(urls[i] as string, 'URL').replaceAll(prefix, 'PREFIX')));
    const settle = async (before: readonly number[]): Promise<void> => {
      await advanceUntil(clock, () => seen.every((events, i) => events.length > (before[i] as number)));
      // Whatever follows a pool (an error) comes with it.
      await advanceFor(clock, 300);
      expect(normalized(1)).toEqual(normalized(0));
    };
    try {
      await write(steps[0] as Step);
      sources.forEach((source, i) => source.start((e) => seen[i]?.push(e)));
      await settle([0, 0]);
      expect(normalized(0)).toEqual(first);
      for (const step of steps.slice(1)) {
        const before = seen.map((events) => events.length);
        await write(step);
        await settle(before);
      }
    } finally {
      await Promise.all(sources.map((s) => s.stop()));
    }
    // Each source went through the same pools and errors.
    expect(normalized(1)).toEqual(normalized(0));
  }, 60_000);
});
