import { describe, expect, it } from 'vitest';
import type { Problem } from '../../src/runtime/errors.js';
import { decidePoolUpdate, describeSkipped, mergeKeeping } from '../../src/pool/pool-guard.js';
import type { Pool, PoolServer } from '../../src/pool/types.js';
import { createRandomInt } from '../support/random.js';

const FILE = '/p/text';

function pool(specs: string): Pool {
  return new Map(
    specs
      .split(' ')
      .filter((s) => s !== '')
      .map((spec) => {
        const [host = '', weight = '10'] = spec.split('/');
        return [host, { host, weight: Number(weight), enabled: true }];
      }),
  );
}

const show = (p: Pool): string => [...p.values()].map((s) => `${s.host}/${s.weight}`).join(' ');
const skip = (line: number): Problem => ({ file: FILE, line, message: 'bad' });

describe('mergeKeeping', () => {
  /** The rule as first written (a splice after the old predecessor, per kept server): the reference. */
  function byInsertion(last: Pool, next: Pool): { pool: Pool; kept: string[] } {
    const order = [...next.keys()];
    const kept: string[] = [];
    let previous: string | undefined;
    for (const host of last.keys()) {
      if (!next.has(host)) {
        order.splice(previous === undefined ? 0 : order.indexOf(previous) + 1, 0, host);
        kept.push(host);
      }
      previous = host;
    }
    return { pool: new Map(order.map((h) => [h, (next.get(h) ?? last.get(h)) as PoolServer])), kept };
  }

  it('places every kept server as inserting each after its old predecessor would, on 2,000 random pools', () => {
    const random = createRandomInt(7);
    for (let round = 0; round < 2000; round++) {
      const hosts = Array.from({ length: 1 + random(12) }, (_, i) => `h${i}`);
      const last = hosts.filter(() => random(4) !== 0);
      const next = [...hosts.filter(() => random(2) === 0)].sort(() => random(3) - 1);
      const a = pool(last.join(' '));
      const b = pool(next.map((h) => `${h}/${1 + random(20)}`).join(' '));
      const fast = mergeKeeping(a, b);
      const reference = byInsertion(a, b);
      expect([...fast.pool.entries()], `${last.join(' ')} | ${next.join(' ')}`).toEqual([...reference.pool.entries()]);
      expect(fast.kept).toEqual(reference.kept);
    }
  });

  it('keeps 50,000 of 100,000 servers, each at its place', () => {
    const last = new Map(Array.from({ length: 100_000 }, (_, i) => [`h${i}`, { host: `h${i}`, weight: 10, enabled: true }] as const));
    const next = new Map([...last].filter((_, i) => i % 2 === 0));
    const { pool: merged, kept } = mergeKeeping(last, next);
    expect(kept).toHaveLength(50_000);
    expect([...merged.keys()]).toEqual([...last.keys()]);
  });

  it.each([
    ['a b c', 'a b c', 'a/10 b/10 c/10', ''],
    ['a b c d', 'a c/5', 'a/10 b/10 c/5 d/10', 'b d'],
    ['a b c', 'c', 'a/10 b/10 c/10', 'a b'],
    ['a b c', 'x', 'a/10 b/10 c/10 x/10', 'a b c'],
    // The document's order wins for the servers it lists; a kept one follows its old predecessor.
    ['a b c', 'c a', 'c/10 a/10 b/10', 'b'],
    ['a b', 'x a', 'x/10 a/10 b/10', 'b'],
    ['', 'a', 'a/10', ''],
  ])('last %j, document %j -> %j keeping %j', (last, next, merged, kept) => {
    const result = mergeKeeping(pool(last), pool(next));
    expect(show(result.pool)).toBe(merged);
    expect(result.kept.join(' ')).toBe(kept);
  });
});

describe('decidePoolUpdate', () => {
  const rows: [string, Pool | undefined, string, number[], string][] = [
    ['first read', undefined, 'a b', [], 'apply a/10 b/10'],
    ['first read, empty', undefined, '', [], 'apply '],
    ['first read, every line bad', undefined, '', [1], 'hold  | src: 1 line(s) skipped (first: /p/text:1: bad)'],
    ['clean removal', pool('a b'), 'a', [], 'apply a/10'],
    ['empty after an empty pool', pool(''), '', [], 'apply '],
    ['emptied', pool('a b'), '', [], 'refuse src: lists no server; refusing to empty the pool (to take every server out, disable each one)'],
    ['every line bad', pool('a b'), '', [1, 2], 'refuse src: no valid server: 2 line(s) skipped (first: /p/text:1: bad)'],
    ['cut mid-line', pool('a b c'), 'a', [2], 'hold a/10 b/10 c/10 | src: 1 line(s) skipped (first: /p/text:2: bad); keeping b, c from the last good pool until it reads clean'],
    ['bad line, nothing lost', pool('a'), 'a/3 b', [3], 'hold a/3 b/10 | src: 1 line(s) skipped (first: /p/text:3: bad)'],
  ];
  it.each(rows)('%s', (_name, last, next, skipped, expected) => {
    const problems = skipped.map(skip);
    const verdict = decidePoolUpdate(last, { pool: pool(next), problems, skipped: problems }, 'src');
    const shown =
      verdict.kind === 'apply' ? `apply ${show(verdict.pool)}` : verdict.kind === 'hold' ? `hold ${show(verdict.pool)} | ${verdict.message}` : `refuse ${verdict.message}`;
    expect(shown).toBe(expected);
  });

  it('names etcd keys, which have no line, as keys', () => {
    expect(describeSkipped([{ file: '/conftool/v1/pools/text/mw2', key: 'weight', message: 'bad' }])).toBe(
      '1 key(s) skipped (first: /conftool/v1/pools/text/mw2: weight: bad)',
    );
  });
});
