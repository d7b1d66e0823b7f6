import { describe, expect, it } from 'vitest';
import { Interner } from '../../src/runtime/interner.js';

describe('interner', () => {
  it('keeps one entry per distinct string and returns an equal string', () => {
    const interner = new Interner(100);
    const reasons = ['Fetch successful (http://a/), 0.003 s', 'Fetch failed (http://a/): timed out', 'Fetch successful (http://a/), 0.003 s'];
    // Made afresh each time, as a message from the checks thread makes them.
    const out = reasons.map((r) => interner.intern(r.split('').join('')));
    expect(out).toEqual(reasons);
    expect(interner.size).toBe(2);
  });

  it('never holds more than its bound: a stream of distinct strings starts it afresh', () => {
    const interner = new Interner(1_000);
    for (let i = 0; i < 10_500; i++) {
      expect(interner.intern(`connect ECONNREFUSED 10.0.${i >> 8}.${i & 255}:80`)).toBe(`connect ECONNREFUSED 10.0.${i >> 8}.${i & 255}:80`);
      expect(interner.size).toBeLessThanOrEqual(1_000);
    }
    expect(interner.size).toBe(500);
  });
});
