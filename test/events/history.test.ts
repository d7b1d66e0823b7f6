import { describe, expect, it } from 'vitest';
import { EventHistory, type EventInput } from '../../src/events/history.js';

const input = (n: number): EventInput => ({ kind: 'depooled', level: 'info', service: 'text', server: `mw${n}`, message: `Depooling server mw${n}` });

function history(capacity: number): { h: EventHistory; setWall: (ms: number) => void } {
  let wall = 1_700_000_000_000;
  return { h: new EventHistory(capacity, () => wall), setWall: (ms) => (wall = ms) };
}

describe('EventHistory (ring buffer)', () => {
  it('numbers events 1, 2, 3 and stamps them with the wall clock', () => {
    const { h, setWall } = history(4);
    expect(h.latestSeq).toBe(0);
    expect(h.oldestSeq).toBe(1);
    expect(h.size).toBe(0);
    const first = h.emit(input(1));
    setWall(1_700_000_000_500);
    const second = h.emit(input(2));
    expect(first).toEqual({ seq: 1, atWallMs: 1_700_000_000_000, ...input(1) });
    expect(second.seq).toBe(2);
    expect(second.atWallMs).toBe(1_700_000_000_500);
    expect(h.latestSeq).toBe(2);
    expect(h.since(0).map((e) => e.seq)).toEqual([1, 2]);
  });

  it('keeps the latest `capacity` events, overwriting the oldest, and sequence numbers keep growing', () => {
    const { h } = history(3);
    for (let i = 1; i <= 10; i++) h.emit(input(i));
    expect(h.size).toBe(3);
    expect(h.oldestSeq).toBe(8);
    expect(h.latestSeq).toBe(10);
    expect(h.since(0).map((e) => e.server)).toEqual(['mw8', 'mw9', 'mw10']);
    expect(h.latest().map((e) => e.seq)).toEqual([10, 9, 8]);
    expect(h.get(7)).toBeUndefined();
    expect(h.get(9)?.server).toBe('mw9');
    expect(h.get(11)).toBeUndefined();
  });

  it('since(seq, limit) pages forward from a sequence number; latest(limit) gives the newest first', () => {
    const { h } = history(100);
    for (let i = 1; i <= 20; i++) h.emit(input(i));
    expect(h.since(5, 3).map((e) => e.seq)).toEqual([6, 7, 8]);
    expect(h.since(18).map((e) => e.seq)).toEqual([19, 20]);
    expect(h.since(20)).toEqual([]);
    expect(h.since(99)).toEqual([]);
    expect(h.latest(3).map((e) => e.seq)).toEqual([20, 19, 18]);
    expect(h.latest(0)).toEqual([]);
  });

  it('wraps around at every offset: what is kept is always the latest, in order', () => {
    for (let emitted = 0; emitted <= 12; emitted++) {
      const { h } = history(5);
      for (let i = 1; i <= emitted; i++) h.emit(input(i));
      const expected = Array.from({ length: Math.min(5, emitted) }, (_, k) => emitted - Math.min(5, emitted) + 1 + k);
      expect(h.since(0).map((e) => e.seq)).toEqual(expected);
      expect(h.latest().map((e) => e.seq)).toEqual([...expected].reverse());
    }
  });

  it('resizes keeping the latest events that fit; numbering goes on', () => {
    const { h } = history(5);
    for (let i = 1; i <= 7; i++) h.emit(input(i));
    h.resize(2);
    expect(h.capacity).toBe(2);
    expect(h.since(0).map((e) => e.seq)).toEqual([6, 7]);
    h.emit(input(8));
    expect(h.since(0).map((e) => e.seq)).toEqual([7, 8]);
    h.resize(10);
    for (let i = 9; i <= 12; i++) h.emit(input(i));
    expect(h.since(0).map((e) => e.seq)).toEqual([7, 8, 9, 10, 11, 12]);
    expect(() => h.resize(0)).toThrow(RangeError);
  });

  it('tells subscribers each event as it is recorded; a failing subscriber does not stop recording', () => {
    const { h } = history(10);
    const seen: number[] = [];
    h.subscribe(() => {
      throw new Error('broken stream');
    });
    const unsubscribe = h.subscribe((e) => seen.push(e.seq));
    h.emit(input(1));
    h.emit(input(2));
    unsubscribe();
    h.emit(input(3));
    expect(seen).toEqual([1, 2]);
    expect(h.latestSeq).toBe(3);
  });

  it('a mass depool of 10,000 servers keeps only the last `capacity` events, as plain objects', () => {
    const { h } = history(1000);
    for (let i = 1; i <= 10_000; i++) h.emit(input(i));
    expect(h.size).toBe(1000);
    expect(h.oldestSeq).toBe(9001);
    const kept = h.since(0);
    expect(kept[0]?.server).toBe('mw9001');
    expect(kept.at(-1)?.server).toBe('mw10000');
    expect(JSON.parse(JSON.stringify(kept[0]))).toEqual(kept[0]);
  });
});
