import { describe, expect, it, vi } from 'vitest';
import { ManualClock, createSystemClock, flushAsync, setAnswerTimeout, WALL_RESYNC_MS, wallNow } from '../../src/runtime/clock.js';

describe('ManualClock', () => {
  it('fires timers in deadline order, ties in creation order', () => {
    const clock = new ManualClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b'), 20);
    clock.setTimeout(() => fired.push('a'), 10);
    clock.setTimeout(() => fired.push('c'), 20);
    clock.advance(15);
    expect(fired).toEqual(['a']);
    expect(clock.now()).toBe(15);
    clock.advance(5);
    expect(fired).toEqual(['a', 'b', 'c']);
  });

  it('fires timers set during an advance when they fall inside it', () => {
    const clock = new ManualClock();
    const at: number[] = [];
    const tick = (): void => {
      at.push(clock.now());
      clock.setTimeout(tick, 100);
    };
    clock.setTimeout(tick, 100);
    clock.advance(350);
    expect(at).toEqual([100, 200, 300]);
    expect(clock.pendingCount()).toBe(1);
    expect(clock.nextDeadline()).toBe(400);
  });

  it('does not fire cancelled timers', () => {
    const clock = new ManualClock();
    let fired = false;
    const timer = clock.setTimeout(() => {
      fired = true;
    }, 5);
    timer.cancel();
    clock.advance(10);
    expect(fired).toBe(false);
    expect(clock.pendingCount()).toBe(0);
  });

  it('sleep resolves on advance and rejects on abort', async () => {
    const clock = new ManualClock();
    let done = false;
    const slept = clock.sleep(50).then(() => {
      done = true;
    });
    await clock.advanceAsync(49);
    expect(done).toBe(false);
    await clock.advanceAsync(1);
    await slept;
    expect(done).toBe(true);

    const controller = new AbortController();
    const aborted = clock.sleep(1000, controller.signal);
    controller.abort(new Error('stop'));
    await expect(aborted).rejects.toThrow('stop');
    expect(clock.pendingCount()).toBe(0);
  });

  it('advanceAsync lets async code react between timers', async () => {
    const clock = new ManualClock();
    const seen: number[] = [];
    const loop = async (): Promise<void> => {
      for (let i = 0; i < 3; i++) {
        await clock.sleep(10);
        seen.push(clock.now());
      }
    };
    const running = loop();
    await clock.advanceAsync(30);
    await running;
    expect(seen).toEqual([10, 20, 30]);
  });

  it('keeps wall time moving with monotonic time', () => {
    const clock = new ManualClock(0, 1_000_000);
    clock.advance(250);
    expect(clock.wallNow()).toBe(1_000_250);
  });
});

describe('system clock', () => {
  it('runs real timers and can cancel them', async () => {
    const clock = createSystemClock();
    const start = clock.now();
    await clock.sleep(20);
    expect(clock.now() - start).toBeGreaterThanOrEqual(19);
    let fired = false;
    clock.setTimeout(() => {
      fired = true;
    }, 5).cancel();
    await new Promise((r) => setTimeout(r, 20));
    expect(fired).toBe(false);
  });
});

describe('system clock reads', () => {
  it('reads the time once per turn of the event loop, through awaits, and afresh in the next turn', async () => {
    const clock = createSystemClock();
    await new Promise((resolve) => setImmediate(resolve));
    const first = clock.now();
    // Busy for a few ms in the same run: the reading is the same.
    const until = performance.now() + 5;
    while (performance.now() < until) {
      // spin
    }
    expect(clock.now()).toBe(first);
    // A chain of awaits in the same callback (a check's end: fetch, summary, report) shares it.
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(clock.now()).toBe(first);
    // The next turn reads afresh.
    await new Promise((resolve) => setImmediate(resolve));
    const afresh = clock.now();
    expect(afresh).toBeGreaterThanOrEqual(until);
    // In a later callback: a new reading (no older than the time taken just before it), kept for that callback.
    const inTimer = await new Promise<[number, number, number]>((resolve) =>
      setTimeout(() => {
        const before = performance.now();
        const a = clock.now();
        void Promise.resolve().then(() => resolve([before, a, clock.now()]));
      }, 10),
    );
    expect(inTimer[1]).toBeGreaterThanOrEqual(inTimer[0]);
    expect(inTimer[2]).toBe(inTimer[1]);
  });

  it('counts the reads: one per turn however many awaits it takes', async () => {
    const perf = vi.spyOn(performance, 'now');
    try {
      await new Promise((resolve) => setImmediate(resolve));
      perf.mockClear();
      const clock = createSystemClock();
      const step = async (): Promise<number> => {
        await Promise.resolve();
        return clock.now();
      };
      for (let callback = 0; callback < 3; callback++) {
        await new Promise((resolve) => setImmediate(resolve));
        clock.now();
        for (let i = 0; i < 8; i++) await step();
      }
      expect(perf).toHaveBeenCalledTimes(3);
    } finally {
      perf.mockRestore();
    }
  });
});

describe('system wall clock', () => {
  const nextRun = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  it('reads as Date.now() does', async () => {
    const clock = createSystemClock();
    for (let i = 0; i < 3; i++) {
      await nextRun();
      const before = Date.now();
      const read = clock.wallNow();
      const after = Date.now();
      // The offset may be up to a second old: wall and monotonic time do not drift apart by a millisecond in that.
      expect(read).toBeGreaterThanOrEqual(before - 1);
      expect(read).toBeLessThanOrEqual(after + 1);
    }
  });

  it('reads Date.now() at most once a second, and follows a step of the system clock within that second', async () => {
    let mono = 1e9;
    let wall = 1_767_225_600_000;
    const perf = vi.spyOn(performance, 'now').mockImplementation(() => mono);
    const date = vi.spyOn(Date, 'now').mockImplementation(() => wall);
    try {
      await nextRun();
      expect(wallNow()).toBe(wall);
      const reads = date.mock.calls.length;
      mono += 500;
      wall += 500;
      await nextRun();
      expect(wallNow()).toBe(wall);
      expect(date.mock.calls.length).toBe(reads);
      // The system clock is stepped an hour ahead: shown at the next resync, not before.
      wall += 3_600_000 + 400;
      mono += 400;
      await nextRun();
      expect(wallNow()).toBe(wall - 3_600_000);
      mono += WALL_RESYNC_MS - 900;
      wall += WALL_RESYNC_MS - 900;
      await nextRun();
      expect(wallNow()).toBe(wall);
      expect(date.mock.calls.length).toBe(reads + 1);
    } finally {
      perf.mockRestore();
      date.mockRestore();
      // The clock keeps a reading for the rest of the turn: let the made-up one go.
      await nextRun();
    }
  });
});

describe('setAnswerTimeout', () => {
  it('fires one turn after its time, and not at all when cancelled in that turn', async () => {
    const clock = new ManualClock();
    const fired: string[] = [];
    const late = setAnswerTimeout(clock, () => fired.push('late'), 1_000);
    const answered = setAnswerTimeout(clock, () => fired.push('answered'), 1_000);
    // The answer is read in the same turn as the expiry, before the immediates.
    setImmediate(() => answered.cancel());
    clock.advance(1_000);
    expect(fired).toEqual([]);
    await flushAsync();
    expect(fired).toEqual(['late']);
    late.cancel();
    expect(clock.pendingCount()).toBe(0);
  });
});
