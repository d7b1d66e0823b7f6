import { describe, expect, it } from 'vitest';
import { finish, runSliced, sliced } from '../../src/runtime/sliced.js';
import { legacyPoolSteps, parseLegacyPool } from '../../src/pool/legacy-format.js';

describe('runSliced', () => {
  it('finishes a job that fits in one slice synchronously', () => {
    const seen: number[] = [];
    let ended = false;
    const sync = runSliced(
      (function* () {
        for (let i = 0; i < 5; i++) {
          seen.push(i);
          yield;
        }
      })(),
      () => (ended = true),
    );
    expect(sync).toBe(true);
    expect(ended).toBe(true);
    expect(seen).toEqual([0, 1, 2, 3, 4]);
  });

  it('gives the event loop a turn whenever a slice used its budget, and reports what the job threw', async () => {
    let wall = 0;
    const turns: (() => void)[] = [];
    let result: unknown = 'running';
    const sync = runSliced(
      (function* () {
        for (let i = 0; i < 10; i++) {
          wall += 4; // each step costs 4 ms of wall time
          yield;
        }
        throw new Error('broken at the end');
      })(),
      (error) => (result = error),
      { budgetMs: 10, now: () => wall, later: (fn) => turns.push(fn) },
    );
    expect(sync).toBe(false);
    let slices = 1;
    while (turns.length > 0) {
      turns.shift()!();
      slices++;
    }
    // 40 ms of work in slices of 10 ms (a step is not cut): 4 slices, then the end.
    expect(slices).toBe(4);
    expect(result).toBeInstanceOf(Error);
    expect((result as Error).message).toBe('broken at the end');
  });
});

describe('a legacy pool read in slices', () => {
  it('gives what the one-go parse gives, over many turns of the event loop', async () => {
    const lines = Array.from({ length: 3000 }, (_, i) =>
      i % 500 === 7 ? `{ 'host': 'bad${i}', 'weight': 'x' }` : `{ 'host': 'mw${i}', 'weight': ${i % 20}, 'enabled': ${i % 3 === 0 ? 'False' : 'True'} }`,
    );
    const text = `${lines.join('\n')}\n`;
    let turns = 0;
    const result = await sliced(legacyPoolSteps(text, 'pool'), {
      budgetMs: 0,
      later: (fn) => {
        turns++;
        setImmediate(fn);
      },
    });
    const direct = parseLegacyPool(text, 'pool');
    expect(turns).toBeGreaterThan(5);
    expect([...result.pool.values()]).toEqual([...direct.pool.values()]);
    expect(result.problems).toEqual(direct.problems);
    expect(result.pool.size).toBe(2994);
    expect(finish(legacyPoolSteps(text, 'pool')).skipped).toHaveLength(6);
  });
});
