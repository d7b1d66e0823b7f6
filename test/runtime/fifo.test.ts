import { describe, expect, it } from 'vitest';
import { Fifo } from '../../src/runtime/fifo.js';

describe('Fifo', () => {
  it('gives items back oldest first, through many pushes and shifts, and undefined when empty', () => {
    const fifo = new Fifo<number>();
    expect(fifo.shift()).toBeUndefined();
    const out: number[] = [];
    let pushed = 0;
    // Shifts trail pushes so that the head runs far ahead of the array's start (its cut-downs), then drain.
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 300; i++) fifo.push(pushed++);
      for (let i = 0; i < 200; i++) out.push(fifo.shift()!);
      expect(fifo.size).toBe(pushed - out.length);
    }
    while (fifo.size > 0) out.push(fifo.shift()!);
    expect(out).toEqual(Array.from({ length: pushed }, (_, i) => i));
    expect(fifo.shift()).toBeUndefined();
    fifo.push(7);
    expect([fifo.size, fifo.shift(), fifo.size]).toEqual([1, 7, 0]);
  });

  it('clear() lets every item go, and the queue goes on from empty', () => {
    const fifo = new Fifo<number>();
    for (let i = 0; i < 2000; i++) fifo.push(i);
    for (let i = 0; i < 1500; i++) fifo.shift();
    fifo.clear();
    expect([fifo.size, fifo.shift()]).toEqual([0, undefined]);
    fifo.push(1);
    fifo.push(2);
    expect([fifo.shift(), fifo.shift(), fifo.size]).toEqual([1, 2, 0]);
  });
});
