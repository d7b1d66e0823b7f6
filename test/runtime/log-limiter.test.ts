import { describe, expect, test } from 'vitest';
import { LogLimiter } from '../../src/runtime/log-limiter.js';

describe('LogLimiter', () => {
  test('one line per kind per interval, the next one counting what was held back', () => {
    const limiter = new LogLimiter(60_000);
    const at = (kind: string, ms: number): string => {
      const a = limiter.admit(kind, ms);
      return a.log ? `log +${a.suppressed}` : 'held';
    };
    expect([
      at('a', 0),
      at('a', 1),
      at('b', 2),
      at('a', 59_999),
      at('a', 60_000),
      at('a', 60_001),
      at('b', 60_002),
      at('a', 200_000),
    ]).toEqual(['log +0', 'held', 'log +0', 'held', 'log +2', 'held', 'log +0', 'log +1']);
  });
});
