import { describe, expect, it } from 'vitest';
import { ADMIT_PER_TURN_BEHIND_JOBS, createAdmission } from '../../src/monitors/admission.js';
import { sliced, controlPlaneWaiting, holdAdmission } from '../../src/runtime/sliced.js';
import { ManualClock } from '../../src/runtime/clock.js';
import { createPeriodicMonitor } from '../../src/monitors/periodic.js';
import type { CheckOutcome } from '../../src/monitors/types.js';
import { recorder } from './support/helpers.js';

describe('admission of check starts', () => {
  it('admits a batch per turn, in order, with turns in between for I/O', async () => {
    const turns: (() => void)[] = [];
    const admit = createAdmission(3, (fn) => turns.push(fn));
    const admitted: number[] = [];
    const all = Array.from({ length: 7 }, (_, i) => admit().then(() => admitted.push(i)));
    expect(turns).toHaveLength(1);
    const turn = async (): Promise<void> => {
      turns.shift()!();
      await Promise.resolve();
    };
    await turn();
    expect(admitted).toEqual([0, 1, 2]);
    await turn();
    expect(admitted).toEqual([0, 1, 2, 3, 4, 5]);
    await turn();
    await Promise.all(all);
    expect(admitted).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(turns).toHaveLength(0);
    // Idle again: the next admission schedules a turn of its own.
    void admit();
    expect(turns).toHaveLength(1);
  });

  it('holds only what waits (and a bounded tail) when admissions never stop long enough for the queue to empty', async () => {
    const turns: (() => void)[] = [];
    const admit = createAdmission(32, (fn) => turns.push(fn), () => 0);
    let admitted = 0;
    // 33 new starts each turn against 32 admitted: the queue never empties, for 20,000 turns.
    for (let t = 0; t < 20_000; t++) {
      for (let i = 0; i < 33; i++) void admit().then(() => admitted++);
      turns.shift()!();
    }
    await Promise.resolve();
    expect(admitted).toBe(20_000 * 32);
    // 20,000 start waiting; what was admitted is not kept with them (640,000 entries if it were).
    const waiting = 20_000 * 33 - admitted;
    expect(admit.held()).toBeGreaterThanOrEqual(waiting);
    expect(admit.held()).toBeLessThanOrEqual(waiting * 2 + 1_100);
    // And they are all admitted, in order, as the turns go on.
    while (turns.length > 0) turns.shift()!();
    await Promise.resolve();
    expect(admitted).toBe(20_000 * 33);
  });

  it('call(fn) waits in the same queue as admit(), in order, and fn runs within its turn', async () => {
    const turns: (() => void)[] = [];
    const admit = createAdmission(2, (fn) => turns.push(fn), () => 0);
    const order: string[] = [];
    void admit().then(() => order.push('promise 0'));
    admit.call(() => order.push('call 1'));
    admit.call(() => order.push('call 2'));
    void admit().then(() => order.push('promise 3'));
    expect(admit.held()).toBe(4);
    turns.shift()!();
    // The call ran inside the turn; the promise's continuation after it, as a microtask.
    expect(order).toEqual(['call 1']);
    await Promise.resolve();
    expect(order).toEqual(['call 1', 'promise 0']);
    turns.shift()!();
    expect(order).toEqual(['call 1', 'promise 0', 'call 2']);
    await Promise.resolve();
    expect(order).toEqual(['call 1', 'promise 0', 'call 2', 'promise 3']);
    expect(turns).toHaveLength(0);
  });

  it('admits only a few per turn while a control-plane job waits for its next slice', async () => {
    const turns: (() => void)[] = [];
    let jobs = 1;
    const admit = createAdmission(32, (fn) => turns.push(fn), () => jobs);
    const admitted: number[] = [];
    void Promise.all(Array.from({ length: 40 }, (_, i) => admit().then(() => admitted.push(i))));
    const turn = async (): Promise<void> => {
      turns.shift()!();
      await Promise.resolve();
    };
    await turn();
    expect(admitted).toHaveLength(ADMIT_PER_TURN_BEHIND_JOBS);
    await turn();
    expect(admitted).toHaveLength(2 * ADMIT_PER_TURN_BEHIND_JOBS);
    // The job is done: full batches again, in order.
    jobs = 0;
    await turn();
    expect(admitted).toEqual(Array.from({ length: 2 * ADMIT_PER_TURN_BEHIND_JOBS + 32 }, (_, i) => i));
  });

  it('counts a sliced job as waiting between its slices, unless it is background work', async () => {
    const before = controlPlaneWaiting();
    const seen: number[] = [];
    const job = function* (): Generator<unknown, void, undefined> {
      // More steps than a job takes before its first look at the clock.
      for (let i = 0; i < 10; i++) {
        seen.push(controlPlaneWaiting() - before);
        yield;
      }
    };
    await sliced(job(), { budgetMs: 0 });
    // The first slice runs before any wait; each later one was counted while it waited.
    expect(seen).toEqual(new Array(10).fill(0));
    const counts: number[] = [];
    const pending = sliced(job(), { budgetMs: 0, later: (fn) => setImmediate(() => (counts.push(controlPlaneWaiting() - before), fn())) });
    const background = sliced(job(), { budgetMs: 0, background: true, later: (fn) => setImmediate(() => (counts.push(controlPlaneWaiting() - before), fn())) });
    await Promise.all([pending, background]);
    expect(Math.max(...counts)).toBe(1);
    expect(controlPlaneWaiting()).toBe(before);
  });

  it('counts a hold (holdAdmission) as waiting until it is released, once', () => {
    const before = controlPlaneWaiting();
    const a = holdAdmission();
    const b = holdAdmission();
    expect(controlPlaneWaiting()).toBe(before + 2);
    a();
    a();
    expect(controlPlaneWaiting()).toBe(before + 1);
    b();
    expect(controlPlaneWaiting()).toBe(before);
  });

  it('a periodic check waits for admission before its deadline starts', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    let release: () => void = () => undefined;
    const admit = (): Promise<void> => new Promise((resolve) => (release = resolve));
    let runs = 0;
    const monitor = createPeriodicMonitor(
      'ProxyFetch',
      { intervalMs: 10_000, timeoutMs: 1_000, rise: 1, fall: 1 },
      { run: () => ((runs += 1), Promise.resolve<CheckOutcome>({ ok: true, reason: 'fine' })) },
      rec.deps(clock, { admit }),
    );
    monitor.start();
    // Not admitted for longer than the timeout: no check, and no timeout either.
    await clock.advanceAsync(5_000);
    expect(runs).toBe(0);
    expect(rec.reports).toEqual([]);
    release();
    await clock.advanceAsync(0);
    expect(runs).toBe(1);
    expect(rec.reports).toEqual([expect.objectContaining({ up: true })]);
    await monitor.stop();
  });
});
