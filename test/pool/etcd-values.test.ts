import { describe, expect, it } from 'vitest';
import { formatProblem } from '../../src/runtime/errors.js';
import { EtcdEntries } from '../../src/pool/etcd-values.js';
import { rows } from './helpers.js';

const DIR = '/pools/text';
const yes = (weight: number): string => `{"pooled": "yes", "weight": ${weight}}`;

describe('EtcdEntries', () => {
  it('lists keys in key order, whatever order a full read gave them in', () => {
    const entries = new EtcdEntries();
    for (const host of ['mw3', 'mw1', 'mw2']) entries.set(`${DIR}/${host}`, yes(1));
    expect(rows(entries.result().pool)).toEqual([['mw1', 1, true], ['mw2', 1, true], ['mw3', 1, true]]);
    entries.set(`${DIR}/mw0`, yes(2));
    entries.set(`${DIR}/mw25`, yes(3));
    entries.delete(`${DIR}/mw1`);
    entries.delete(`${DIR}/absent`);
    expect(rows(entries.result().pool)).toEqual([['mw0', 2, true], ['mw2', 1, true], ['mw25', 3, true], ['mw3', 1, true]]);
    expect(entries.size).toBe(4);
  });

  it('keeps key order through any mix of sets and deletes, a key set again after a delete included', () => {
    const entries = new EtcdEntries();
    const expected = new Map<string, number>();
    // A small linear congruential generator: the same sequence on every run.
    let seed = 12345;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let round = 0; round < 20; round++) {
      for (let op = 0; op < 300; op++) {
        const host = `mw${next(500)}`;
        if (next(3) === 0) {
          entries.delete(`${DIR}/${host}`);
          expected.delete(host);
        } else {
          const weight = next(100);
          entries.set(`${DIR}/${host}`, yes(weight));
          expected.set(host, weight);
        }
      }
      const want = [...expected.keys()].sort().map((host) => [host, expected.get(host), true]);
      expect(rows(entries.result().pool)).toEqual(want);
      expect(entries.size).toBe(expected.size);
    }
  });

  it('deletes a directory with everything under it, and only that', () => {
    const entries = new EtcdEntries();
    for (const key of ['/a/mw1', '/a/sub/mw2', '/a/sub/deeper/mw3', '/a/sub2/mw4', '/a/sub', '/a/su/mw5']) entries.set(key, yes(1));
    entries.deleteTree('/a/sub');
    expect(rows(entries.result().pool).map(([host]) => host)).toEqual(['mw1', 'mw5', 'mw4']);
    entries.deleteTree('/a/');
    expect(entries.size).toBe(0);
  });

  it('decodes a value once: a re-read or a rewrite of the same value reuses the entry', () => {
    const first = new EtcdEntries();
    first.set(`${DIR}/mw1`, yes(1));
    first.set(`${DIR}/mw2`, '{"pooled": "maybe"}');
    const before = first.result();
    const second = new EtcdEntries();
    second.set(`${DIR}/mw1`, yes(1), first);
    second.set(`${DIR}/mw2`, '{"pooled": "maybe"}', first);
    const after = second.result();
    // The very same server object and problem: nothing was decoded again.
    expect(after.pool.get('mw1')).toBe(before.pool.get('mw1'));
    expect(after.skipped[0]).toBe(before.skipped[0]);
    second.set(`${DIR}/mw1`, yes(1));
    expect(second.result().pool.get('mw1')).toBe(before.pool.get('mw1'));
    second.set(`${DIR}/mw1`, yes(5));
    expect(rows(second.result().pool)).toEqual([['mw1', 5, true]]);
  });

  it('gives problems and skipped keys in key order; inactive keys are left out', () => {
    const entries = new EtcdEntries();
    entries.set(`${DIR}/mw3`, '{"pooled": "yes", "weight": 1, "dc": "x"}');
    entries.set(`${DIR}/mw2`, '{"pooled": "inactive"}');
    entries.set(`${DIR}/mw1`, '{"weight": -1}');
    const result = entries.result();
    expect(rows(result.pool)).toEqual([['mw3', 1, true]]);
    expect(result.problems.map(formatProblem)).toEqual([
      `${DIR}/mw1: weight: expected an integer >= 0, got number -1`,
      `${DIR}/mw3: dc: unknown key, ignored (known keys: pooled, weight)`,
    ]);
    expect(result.skipped.map(formatProblem)).toEqual([`${DIR}/mw1: weight: expected an integer >= 0, got number -1`]);
  });

  it('builds a large pool in steps, undisturbed by a change between two steps', () => {
    const entries = new EtcdEntries();
    for (let i = 0; i < 10_000; i++) entries.set(`${DIR}/mw${String(i).padStart(5, '0')}`, yes(1));
    const job = entries.steps();
    let pauses = 0;
    let step = job.next();
    while (step.done !== true) {
      pauses++;
      if (pauses === 1) entries.delete(`${DIR}/mw09999`);
      step = job.next();
    }
    expect(pauses).toBeGreaterThan(1);
    expect(step.value.pool.size).toBe(9_999);
    expect(entries.result().pool.size).toBe(9_999);
  });
});
