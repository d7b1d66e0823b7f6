import { describe, expect, it } from 'vitest';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { startStallWatch } from '../../src/runtime/stall-watch.js';

describe('stall watch', () => {
  it('counts stalls over the threshold, keeps the longest, and warns at most once per period with a count', () => {
    let wall = 0;
    let tick: () => void = () => undefined;
    const log = createMemoryLogger('info');
    const watch = startStallWatch({
      logger: log.logger,
      periodMs: 20,
      logEveryMs: 10_000,
      now: () => wall,
      every: (fn) => {
        tick = fn;
        return () => undefined;
      },
    });
    const fire = (afterMs: number): void => {
      wall += afterMs;
      tick();
    };
    fire(20);
    fire(70); // 50 ms late: under the threshold
    expect(watch.stats()).toEqual({ stalls: 0, longestMs: 50 });
    fire(270); // 250 ms late
    expect(watch.stats()).toEqual({ stalls: 1, longestMs: 250 });
    fire(150); // 130 ms late, within 10 s of the last line: counted, not logged yet
    fire(520); // 500 ms late
    for (let i = 0; i < 500; i++) fire(20);
    fire(140); // 120 ms late, more than 10 s after the first line
    expect(watch.stats()).toEqual({ stalls: 4, longestMs: 500 });
    const warnings = log.lines().filter((l) => l.includes('event loop'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/held for 250 ms/);
    expect(warnings[1]).toMatch(/held over 100 ms 3 times, at worst 500 ms/);
  });
});
