import { describe, expect, it } from 'vitest';
import { createAdmission } from '../../src/monitors/admission.js';
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
