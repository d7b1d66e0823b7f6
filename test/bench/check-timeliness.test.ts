import { describe, expect, it } from 'vitest';
import { freshMs, measureTimeliness } from '../../bench/lib/check-timeliness.js';
import { percentile } from '../../bench/lib/stats.js';

const window = { startMs: 10_000, endMs: 20_000 };

describe('percentile', () => {
  it('takes the nearest rank', () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(xs, 50)).toBe(5);
    expect(percentile(xs, 99)).toBe(10);
    expect(percentile(xs, 0)).toBe(1);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });
});

describe('freshMs', () => {
  it('counts the window time covered by some check no older than the tolerance', () => {
    // Checks every 1 s from 9 s on, fresh for 1.5 s: the whole 10 s window.
    const every = Array.from({ length: 12 }, (_, i) => 9_000 + i * 1000);
    expect(freshMs(every, window, 1500)).toBe(10_000);
    // One check at 9.5 s covers 10.0-11.0 s only.
    expect(freshMs([9_500], window, 1500)).toBe(1000);
    // Overlapping coverage is not counted twice; a check after the window counts nothing.
    expect(freshMs([12_000, 12_500, 25_000], window, 1500)).toBe(2000);
    // Coverage is cut at the window's end.
    expect(freshMs([19_800], window, 1500)).toBe(200);
    expect(freshMs([], window, 1500)).toBe(0);
  });
});

describe('measureTimeliness', () => {
  it('scores a checker that keeps its interval as fully on time', () => {
    const times = { a: Array.from({ length: 12 }, (_, i) => 9_000 + i * 1000), b: Array.from({ length: 12 }, (_, i) => 9_400 + i * 1000) };
    const t = measureTimeliness(times, ['a', 'b'], window, 1000);
    expect(t.servers).toBe(2);
    // a: 10..19 s (10 checks; 20 s is outside); b: 10.4..19.4 s (10 checks).
    expect(t.checks).toBe(20);
    expect(t.checksPerSecond).toBe(2);
    expect(t.onTimeShare).toBe(1);
    expect(t.unchecked).toBe(0);
    expect(t.gapP50).toBe(1);
    expect(t.gapP99).toBe(1);
    expect(t.gapMax).toBe(1);
  });

  it('charges a late server the time it spent stale and a silent one the whole window', () => {
    // a: checked at 9, 10, then nothing until 14 s, then every second; fresh until 11.5, stale 11.5-14.
    const a = [9_000, 10_000, 14_000, 15_000, 16_000, 17_000, 18_000, 19_000];
    const t = measureTimeliness({ a, zzz: [1, 2, 3] }, ['a', 'silent'], window, 1000);
    expect(t.checks).toBe(7);
    expect(t.unchecked).toBe(1);
    // a is on time for 10 - 2.5 = 7.5 s of 10; silent for none: 7.5 of 20 server-seconds.
    expect(t.onTimeShare).toBeCloseTo(0.375, 10);
    // Gaps ending in the window: 1 (9->10), 4 (10->14), then five of 1.
    expect(t.gapMax).toBe(4);
    expect(t.gapP50).toBe(1);
    expect(t.gapP99).toBe(4);
  });

  it('accepts times in any order and tolerates jitter within the factor', () => {
    // Every 1.4 s: late by 40% each time, still within 1.5 intervals.
    const a = Array.from({ length: 10 }, (_, i) => 8_800 + i * 1400).reverse();
    const t = measureTimeliness({ a }, ['a'], window, 1000);
    expect(t.onTimeShare).toBe(1);
    expect(t.gapMax).toBeCloseTo(1.4, 10);
    // With a tolerance of 1.2 intervals each 1.4 s gap leaves 0.2 s stale.
    expect(measureTimeliness({ a }, ['a'], window, 1000, 1.2).onTimeShare).toBeLessThan(1);
  });

  it('refuses an empty window', () => {
    expect(() => measureTimeliness({}, ['a'], { startMs: 5, endMs: 5 }, 1000)).toThrow(/positive/);
  });
});
