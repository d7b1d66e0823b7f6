import { describe, expect, it } from 'vitest';
import { formatProgressLine, parseProgressLine, serviceId, TableProgressTracker } from '../../bench/lib/table-progress.js';

const a = serviceId('203.0.113.11', 18000);
const b = serviceId('203.0.113.11', 18001);
const other = serviceId('192.0.2.1', 80);

describe('TableProgressTracker', () => {
  it('counts present and complete services and dumps only what can still change', () => {
    const t = new TableProgressTracker({
      services: [
        { address: '203.0.113.11', port: 18000, dests: 10 },
        { address: '203.0.113.11', port: 18001, dests: 10 },
      ],
    });
    expect(a).toBe('203.0.113.11:18000');
    expect(t.progress([])).toEqual({ present: 0, complete: 0, dests: 0, weight: undefined });
    // Someone else's service is neither dumped nor counted.
    expect(t.toDump([other, a])).toEqual([a]);
    t.record(a, 4);
    expect(t.progress([other, a])).toEqual({ present: 1, complete: 0, dests: 4, weight: undefined });
    t.record(a, 10);
    expect(t.toDump([a, b])).toEqual([b]);
    t.record(b, 3);
    expect(t.progress([a, b])).toEqual({ present: 2, complete: 1, dests: 13, weight: undefined });
    // A service gone from the kernel counts for nothing.
    expect(t.progress([b])).toEqual({ present: 1, complete: 0, dests: 3, weight: undefined });
  });

  it('dumps the watched service on every poll and reports its destination weight', () => {
    const t = new TableProgressTracker({
      services: [{ address: '203.0.113.250', port: 18100, dests: 3 }],
      weightOf: { address: '203.0.113.250', port: 18100, dest: '127.20.0.2' },
    });
    const id = serviceId('203.0.113.250', 18100);
    t.record(id, 3, 10);
    expect(t.toDump([id])).toEqual([id]);
    expect(t.progress([id])).toEqual({ present: 1, complete: 1, dests: 3, weight: 10 });
    t.record(id, 3, 7);
    expect(t.progress([id]).weight).toBe(7);
    t.record(id, 2, undefined);
    expect(t.progress([id])).toEqual({ present: 1, complete: 0, dests: 2, weight: undefined });
    expect(t.progress([]).weight).toBeUndefined();
  });
});

describe('progress lines', () => {
  it('round-trip, with - for no weight, and reject anything else', () => {
    const line = formatProgressLine(1700000000123, { present: 1000, complete: 998, dests: 9990, weight: undefined });
    expect(line).toBe('1700000000123 1000 998 9990 -');
    expect(parseProgressLine(line)).toEqual({ atMs: 1700000000123, present: 1000, complete: 998, dests: 9990, weight: undefined });
    expect(parseProgressLine('5 1 1 40000 7')).toEqual({ atMs: 5, present: 1, complete: 1, dests: 40000, weight: 7 });
    expect(parseProgressLine('stats 12 3.0 4.5')).toBeUndefined();
    expect(parseProgressLine('')).toBeUndefined();
  });
});
