import { describe, expect, it } from 'vitest';
import { proxyFetchConfig, idleConnectionConfig } from './support/configs.js';
import { createStartPacer, IDLE_CONNECTION_START_WINDOW_MS, startWindowMs } from '../../src/monitors/start-pacer.js';
import { ManualClock } from '../../src/runtime/clock.js';

describe('start pacer', () => {
  it('starts a few monitors at once and spreads a large start at its rate, never past the window', () => {
    const clock = new ManualClock();
    let r = 0;
    const pacer = createStartPacer(clock, { ratePerSecond: 500, random: () => (r = (r + 0.37) % 1) });
    // A handful: within a few milliseconds.
    const few = Array.from({ length: 5 }, () => pacer(10_000));
    expect(few).toEqual([0, 2, 4, 6, 8]);
    // Ten thousand more, in the same instant, window 10 s.
    const many = Array.from({ length: 10_000 }, () => pacer(10_000));
    expect(Math.max(...many)).toBeLessThanOrEqual(10_000);
    // Per second of the window: at most the rate from the slots plus the overflow spread evenly.
    const perSecond = new Array<number>(10).fill(0);
    for (const d of [...few, ...many]) perSecond[Math.min(9, Math.floor(d / 1000))]! += 1;
    for (const n of perSecond) {
      expect(n).toBeGreaterThan(700);
      expect(n).toBeLessThan(1300);
    }
  });

  it('forgets a burst once time has passed it: a later start is immediate', () => {
    const clock = new ManualClock();
    const pacer = createStartPacer(clock, { ratePerSecond: 100, random: () => 0.5 });
    for (let i = 0; i < 300; i++) pacer(60_000);
    expect(pacer(60_000)).toBe(3_000);
    clock.advance(5_000);
    expect(pacer(60_000)).toBe(0);
  });

  it('uses the monitor interval as the window, and a fixed one for IdleConnection', () => {
    expect(startWindowMs(proxyFetchConfig({ intervalMs: 7_000 }))).toBe(7_000);
    expect(startWindowMs(idleConnectionConfig())).toBe(IDLE_CONNECTION_START_WINDOW_MS);
  });
});
