import { describe, expect, it, vi } from 'vitest';
import { afterTurn, finish, runSliced, sliced, turn, TURN_SHARE_MS, type SliceOptions } from '../../src/runtime/sliced.js';
import { legacyPoolSteps, parseLegacyPool } from '../../src/pool/legacy-format.js';

/**
 * Runs 20,000 steps of 20 us (a server's share of a pool), then 200 of 1 ms
 * (50 times dearer), each moving the wall clock by `advance`; every pause is
 * a turn run at once. Returns the slices' lengths in ms.
 */
function cheapThenDear(advance: (ms: number) => number, options: SliceOptions): number[] {
  const turns: (() => void)[] = [];
  const ends: number[] = [];
  const start = advance(0);
  let stepMs = 0.02;
  runSliced(
    (function* () {
      for (let i = 0; i < 20_200; i++) {
        if (i === 20_000) stepMs = 1;
        advance(stepMs);
        yield;
      }
    })(),
    () => undefined,
    { ...options, later: (fn) => turns.push(fn) },
  );
  while (turns.length > 0) {
    ends.push(advance(0));
    turns.shift()!();
  }
  return ends.map((at, i) => at - (i === 0 ? start : (ends[i - 1] ?? 0)));
}

/** No slice ran far past its budget, not even when the steps grew dear (the stride shrinks back); once it has, slices are their budget again. */
function expectNearBudget(lengths: readonly number[], budgetMs: number): void {
  expect(Math.max(...lengths)).toBeLessThan(budgetMs + 50);
  expect(lengths.slice(-5).every((ms) => ms >= budgetMs && ms < budgetMs + 2)).toBe(true);
}

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

  it('reads the clock only now and then while the steps are cheap, and more often again when they grow dear', () => {
    let wall = 0;
    let reads = 0;
    const lengths = cheapThenDear(
      (ms) => (wall += ms),
      {
        budgetMs: 10,
        now: () => {
          reads++;
          return wall;
        },
      },
    );
    // The cheap part: some 400 ms of work, a read every 0.5-1 ms of it rather than every step.
    expect(reads).toBeLessThan(1500);
    expectNearBudget(lengths, 10);
  });
});

describe('runSliced on the real clock', () => {
  const nextRun = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  it('a small job reads no clock at all; a large one reads it now and then, and still gives turns', async () => {
    const perf = vi.spyOn(performance, 'now');
    try {
      await nextRun();
      perf.mockClear();
      // A pool of 10's job: a few phases.
      const sync = runSliced(
        (function* () {
          for (let i = 0; i < 3; i++) yield;
        })(),
        () => undefined,
      );
      expect(sync).toBe(true);
      expect(perf).not.toHaveBeenCalled();
      // A long one: 30 ms of steps of 0.1 ms, in a callback that took no reading before.
      await nextRun();
      perf.mockClear();
      let steps = 0;
      const done = new Promise<void>((resolve, reject) => {
        const synchronous = runSliced(
          (function* () {
            for (let i = 0; i < 300; i++) {
              const until = process.hrtime.bigint() + 100_000n;
              while (process.hrtime.bigint() < until) steps += 0;
              steps++;
              yield;
            }
          })(),
          (error) => (error === undefined ? resolve() : reject(error as Error)),
        );
        expect(synchronous).toBe(false);
      });
      await done;
      expect(steps).toBe(300);
      expect(perf.mock.calls.length).toBeGreaterThan(0);
      expect(perf.mock.calls.length).toBeLessThan(300);
    } finally {
      perf.mockRestore();
    }
  });

  it('a job of light steps (firstLookSteps) reads no clock before that many, and a slice of no budget then ends at its first look', async () => {
    const perf = vi.spyOn(performance, 'now');
    try {
      await nextRun();
      perf.mockClear();
      const steps = (n: number) =>
        (function* () {
          for (let i = 0; i < n; i++) yield;
        })();
      // A small service's dump decoded: 10 replies.
      expect(runSliced(steps(10), () => undefined, { firstLookSteps: 64, budgetMs: 0 })).toBe(true);
      expect(perf).not.toHaveBeenCalled();
      // Without the option, the same job looks after FIRST_LOOK_STEPS (4) and, with no budget, ends its slice there.
      let done: () => void = () => undefined;
      const ended = new Promise<void>((resolve) => (done = resolve));
      expect(runSliced(steps(10), () => done(), { budgetMs: 0 })).toBe(false);
      expect(perf).toHaveBeenCalled();
      await ended;
      // 100 light steps: the first slice ends at step 64.
      await nextRun();
      perf.mockClear();
      let taken = 0;
      const counted = (function* () {
        for (let i = 0; i < 100; i++) {
          taken++;
          yield;
        }
      })();
      const finished = new Promise<void>((resolve) => (done = resolve));
      expect(runSliced(counted, () => done(), { firstLookSteps: 64, budgetMs: 0 })).toBe(false);
      expect(taken).toBe(64);
      expect(perf).toHaveBeenCalledTimes(1);
      await finished;
      expect(taken).toBe(100);
    } finally {
      perf.mockRestore();
    }
  });
});

describe('runSliced on the real clock, steps growing dear', () => {
  it('keeps each slice near its budget when cheap steps (a long stride) give way to dear ones', async () => {
    let wall = 1_000;
    const perf = vi.spyOn(performance, 'now').mockImplementation(() => wall);
    let lengths: number[];
    try {
      lengths = cheapThenDear((ms) => (wall += ms), { budgetMs: 10 });
    } finally {
      perf.mockRestore();
      // The clock keeps a reading for the rest of the turn: let the made-up one go.
      await new Promise((resolve) => setImmediate(resolve));
    }
    expectNearBudget(lengths, 10);
  });
});

describe('a legacy pool read in slices', () => {
  it('gives what the one-go parse gives, over many turns of the event loop', async () => {
    const lines = Array.from({ length: 3000 }, (_, i) =>
      i % 500 === 7 ? `{ 'host': 'bad${i}', 'weight': 'x' }` : `{ 'host': 'mw${i}', 'weight': ${i % 20}, 'enabled': ${i % 3 === 0 ? 'False' : 'True'} }`,
    );
    const text = `${lines.join('\n')}\n`;
    let turns = 0;
    // Each look at the clock ends a slice, and a millisecond passes between looks: the slices do not depend on this host's speed.
    let nowMs = 0;
    const result = await sliced(legacyPoolSteps(text, 'pool'), {
      budgetMs: 0,
      now: () => (nowMs += 1),
      later: (fn) => {
        turns++;
        setImmediate(fn);
      },
    });
    const direct = parseLegacyPool(text, 'pool');
    // Cutting the lines and reading them, 256 a step each: some 20 steps, the first four in the first slice.
    expect(turns).toBeGreaterThan(15);
    expect([...result.pool.values()]).toEqual([...direct.pool.values()]);
    expect(result.problems).toEqual(direct.problems);
    expect(result.pool.size).toBe(2994);
    expect(finish(legacyPoolSteps(text, 'pool')).skipped).toHaveLength(6);
  });
});

describe('turn() and the next slices share a check phase of the event loop (afterTurn)', () => {
  const busyFor = (ms: number): void => {
    const until = performance.now() + ms;
    while (performance.now() < until) {
      // the work of a pool file's step, say
    }
  };

  it('runs the continuations of one phase for TURN_SHARE_MS or so, the rest in the next phases, in order, with timers in between', async () => {
    // A timer that fires again at once counts the loop's iterations: each continuation notes the one it ran in.
    let iteration = 0;
    let counting = true;
    const tick = (): void => {
      iteration++;
      if (counting) setTimeout(tick, 0);
    };
    setTimeout(tick, 0);
    const ran: { index: number; iteration: number }[] = [];
    const all = Array.from({ length: 24 }, (_, index) =>
      turn().then(() => {
        ran.push({ index, iteration });
        busyFor(8);
      }),
    );
    await Promise.all(all);
    counting = false;
    expect(ran.map((r) => r.index)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    const perIteration = new Map<number, number>();
    for (const r of ran) perIteration.set(r.iteration, (perIteration.get(r.iteration) ?? 0) + 1);
    // 8 ms each: four or five fit in a share of 30 ms (the one that crosses it ends the phase), never all 24.
    expect(Math.max(...perIteration.values())).toBeLessThanOrEqual(Math.ceil(TURN_SHARE_MS / 8) + 1);
    expect(perIteration.size).toBeGreaterThanOrEqual(Math.ceil(24 / (Math.ceil(TURN_SHARE_MS / 8) + 1)));
  });

  it('runs many short ones a few to a phase, all of them, in order, and those queued by them after them', async () => {
    const ran: number[] = [];
    const all = Array.from({ length: 100 }, (_, i) => turn().then(() => ran.push(i)));
    // One queued by a continuation goes behind those waiting already.
    const late = turn().then(async () => {
      await turn();
      ran.push(1000);
    });
    await Promise.all([...all, late]);
    expect(ran).toEqual([...Array.from({ length: 100 }, (_, i) => i), 1000]);
  });

  it('always runs the first continuation of a phase, however long the one before took', async () => {
    const order: string[] = [];
    afterTurn(() => {
      order.push('long');
      busyFor(TURN_SHARE_MS * 2);
    });
    await turn();
    order.push('after');
    await turn();
    order.push('next');
    expect(order).toEqual(['long', 'after', 'next']);
  });
});
