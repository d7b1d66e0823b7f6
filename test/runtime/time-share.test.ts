// TimeShare: a periodic job's interval stretches to `share` times its last
// run, and it says so once when it starts and once when it is back.
import { describe, expect, it } from 'vitest';
import { TimeShare } from '../../src/runtime/time-share.js';

describe('TimeShare', () => {
  it('keeps the interval while runs are short, stretches it to share x the last run, and says each change once', () => {
    const said: { stretched: boolean; lastMs: number; delayMs: number }[] = [];
    const share = new TimeShare(20, (change) => said.push({ ...change }));
    expect(share.delayMs(10_000, 0)).toBe(10_000);
    expect(share.delayMs(10_000, 500)).toBe(10_000); // exactly 1/20: not stretched
    expect(said).toEqual([]);
    expect(share.delayMs(10_000, 2_000)).toBe(40_000);
    expect(share.delayMs(10_000, 3_000.2)).toBe(60_004);
    expect(said).toEqual([{ stretched: true, lastMs: 2_000, delayMs: 40_000 }]);
    expect(share.delayMs(10_000, 10)).toBe(10_000);
    expect(share.delayMs(10_000, 10)).toBe(10_000);
    expect(said).toEqual([
      { stretched: true, lastMs: 2_000, delayMs: 40_000 },
      { stretched: false, lastMs: 10, delayMs: 10_000 },
    ]);
  });
});
