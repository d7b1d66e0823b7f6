// TimeShare: a periodic job's interval stretches to `share` times what a run
// costs (the shorter of its last two runs, none before there are two), and it
// says so once when it starts and once when it is back.
import { describe, expect, it } from 'vitest';
import { TimeShare } from '../../src/runtime/time-share.js';

describe('TimeShare', () => {
  it('keeps the interval while runs are short, stretches it to share x the cost, and says each change once', () => {
    const said: { stretched: boolean; costMs: number; delayMs: number }[] = [];
    const share = new TimeShare(20, (change) => said.push({ ...change }));
    expect(share.delayMs(10_000)).toBe(10_000); // no run yet
    share.ran(500);
    expect(share.delayMs(10_000)).toBe(10_000); // exactly 1/20: not stretched
    expect(said).toEqual([]);
    share.ran(2_000);
    expect(share.delayMs(10_000)).toBe(10_000); // one slow run after a quick one
    share.ran(3_000.2);
    expect(share.delayMs(10_000)).toBe(40_000); // two slow runs: the shorter counts
    share.ran(4_000);
    expect(share.delayMs(10_000)).toBe(60_004);
    expect(said).toEqual([{ stretched: true, costMs: 2_000, delayMs: 40_000 }]);
    share.ran(10);
    expect(share.delayMs(10_000)).toBe(10_000); // quick again: back at once
    share.ran(10);
    expect(share.delayMs(10_000)).toBe(10_000);
    expect(said).toEqual([
      { stretched: true, costMs: 2_000, delayMs: 40_000 },
      { stretched: false, costMs: 10, delayMs: 10_000 },
    ]);
  });

  it('does not stretch the interval for a slow first run alone; a second one does', () => {
    const said: { stretched: boolean; costMs: number; delayMs: number }[] = [];
    const share = new TimeShare(20, (change) => said.push({ ...change }));
    share.ran(6_000);
    expect(share.costMs()).toBe(0);
    expect(share.delayMs(10_000)).toBe(10_000);
    expect(said).toEqual([]);
    share.ran(2_000);
    expect(share.costMs()).toBe(2_000);
    expect(share.delayMs(10_000)).toBe(40_000);
    expect(said).toEqual([{ stretched: true, costMs: 2_000, delayMs: 40_000 }]);
  });
});
