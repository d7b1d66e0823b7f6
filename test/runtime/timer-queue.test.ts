import { describe, expect, it, vi } from 'vitest';
import { TimerQueue, type TimerQueueHost } from '../../src/runtime/timer-queue.js';
import { createSystemClock } from '../../src/runtime/clock.js';

/** A host whose time moves only when told, with one runtime timer at most (as the queue should need). */
class FakeHost implements TimerQueueHost {
  time = 0;
  /** The reading of the current run of code (the queue's "recent"); tests make it stale on purpose. */
  cached: number | undefined;
  reads = 0;
  arms: number[] = [];
  armed: { fn: () => void; at: number } | undefined;
  disarms = 0;

  readonly read = (): number => {
    this.reads++;
    this.cached = this.time;
    return this.time;
  };
  readonly recent = (): number => this.cached ?? this.read();
  readonly arm = (fn: () => void, delayMs: number): unknown => {
    expect(this.armed).toBeUndefined();
    this.arms.push(delayMs);
    this.armed = { fn, at: this.time + delayMs };
    return this.armed;
  };
  readonly disarm = (handle: unknown): void => {
    expect(handle).toBe(this.armed);
    this.disarms++;
    this.armed = undefined;
  };

  /** Moves time to `to`, firing the runtime timer whenever it is due (a new run of code each time). */
  advanceTo(to: number): void {
    while (this.armed !== undefined && this.armed.at <= to) {
      const { fn, at } = this.armed;
      this.armed = undefined;
      this.time = Math.max(this.time, at);
      this.cached = undefined;
      fn();
    }
    this.time = to;
    this.cached = undefined;
  }
}

describe('timer queue', () => {
  it('fires in deadline order, ties in the order set, and arms one runtime timer for the earliest', () => {
    const host = new FakeHost();
    const queue = new TimerQueue(host);
    const fired: string[] = [];
    queue.add(() => fired.push('c300'), 300);
    queue.add(() => fired.push('a100'), 100);
    queue.add(() => fired.push('b100'), 100);
    queue.add(() => fired.push('d0'), 0);
    expect(queue.size).toBe(4);
    host.advanceTo(99);
    expect(fired).toEqual(['d0']);
    host.advanceTo(100);
    expect(fired).toEqual(['d0', 'a100', 'b100']);
    host.advanceTo(1000);
    expect(fired).toEqual(['d0', 'a100', 'b100', 'c300']);
    expect(queue.size).toBe(0);
    expect(host.armed).toBeUndefined();
  });

  it('sets a thousand timers in one run with no clock read and one runtime timer, and reads per wake, not per timer', () => {
    const host = new FakeHost();
    host.time = 5_000;
    host.cached = 5_000; // the run's reading, taken before
    const queue = new TimerQueue(host);
    const fired: number[] = [];
    // 100 distinct deadlines, 10 timers each.
    for (let i = 0; i < 1000; i++) queue.add(() => fired.push(i), 10_000 + (((i * 7919) % 1000) % 100));
    expect(host.reads).toBe(0);
    expect(host.arms).toEqual([10_000]);
    host.advanceTo(20_000);
    expect(fired).toHaveLength(1000);
    // In deadline order: (i * 7919) % 1000 is a permutation of 0..999.
    const deadlines = fired.map((i) => ((i * 7919) % 1000) % 100);
    expect(deadlines).toEqual([...deadlines].sort((a, b) => a - b));
    // Firing reads once per wake (100) and again after every 8 timers of a wake (1 each): not once per timer.
    expect(host.reads).toBe(200);
  });

  it('re-arms for a timer earlier than the armed one, and not for a later one', () => {
    const host = new FakeHost();
    const queue = new TimerQueue(host);
    const fired: string[] = [];
    queue.add(() => fired.push('late'), 5000);
    queue.add(() => fired.push('later'), 6000);
    expect(host.arms).toEqual([5000]);
    queue.add(() => fired.push('soon'), 50);
    expect(host.arms).toEqual([5000, 50]);
    expect(host.disarms).toBe(1);
    host.advanceTo(6000);
    expect(fired).toEqual(['soon', 'late', 'later']);
  });

  it('cancels: a cancelled timer never fires, cancelling twice or after firing is harmless, an empty queue disarms', () => {
    const host = new FakeHost();
    const queue = new TimerQueue(host);
    const fired: number[] = [];
    const timers = [0, 1, 2, 3, 4, 5].map((i) => queue.add(() => fired.push(i), 100 * (i + 1)));
    timers[0]?.cancel();
    timers[3]?.cancel();
    timers[3]?.cancel();
    host.advanceTo(250);
    expect(fired).toEqual([1]);
    timers[1]?.cancel();
    for (const t of timers) t.cancel();
    expect(queue.size).toBe(0);
    // Nothing left: no runtime timer keeps the process alive.
    expect(host.armed).toBeUndefined();
    host.advanceTo(10_000);
    expect(fired).toEqual([1]);
  });

  it('sets a timer that fired or was cancelled again when asked to reuse it, in order with the rest; never one still waiting, nor another queue\'s', () => {
    const host = new FakeHost();
    const queue = new TimerQueue(host);
    const fired: string[] = [];
    const tick = queue.add(() => fired.push('tick1'), 100);
    queue.add(() => fired.push('other200'), 200);
    host.advanceTo(100);
    expect(fired).toEqual(['tick1']);
    // Fired: set again (the same object), due at 250, in order with the others.
    const again = queue.add(() => fired.push('tick2'), 150, tick);
    expect(again).toBe(tick);
    queue.add(() => fired.push('late250'), 150);
    host.advanceTo(300);
    expect(fired).toEqual(['tick1', 'other200', 'tick2', 'late250']);
    // Cancelled: set again too; cancelling it cancels the new round.
    const cancelled = queue.add(() => fired.push('never'), 50);
    cancelled.cancel();
    expect(queue.add(() => fired.push('again350'), 50, cancelled)).toBe(cancelled);
    // Still waiting: not taken from its round; a new one is made.
    const waiting = queue.add(() => fired.push('waiting400'), 100);
    const fresh = queue.add(() => fired.push('fresh360'), 60, waiting);
    expect(fresh).not.toBe(waiting);
    // Another queue's timer is not taken either.
    const other = new TimerQueue(new FakeHost());
    const foreign = other.add(() => undefined, 0);
    foreign.cancel();
    expect(queue.add(() => fired.push('own370'), 70, foreign)).not.toBe(foreign);
    host.advanceTo(1000);
    expect(fired).toEqual(['tick1', 'other200', 'tick2', 'late250', 'again350', 'fresh360', 'own370', 'waiting400']);
    expect(queue.size).toBe(0);
  });

  it('wakes early without firing what is not due, and arms again for the rest', () => {
    const host = new FakeHost();
    const queue = new TimerQueue(host);
    const fired: string[] = [];
    const first = queue.add(() => fired.push('first'), 100);
    queue.add(() => fired.push('second'), 300);
    // Cancelling the earliest leaves the runtime timer as it was (no clear and set per cancel)...
    first.cancel();
    expect(host.armed?.at).toBe(100);
    // ...and its wake finds nothing due, and arms for the next.
    host.advanceTo(150);
    expect(fired).toEqual([]);
    expect(host.armed?.at).toBe(300);
    host.advanceTo(300);
    expect(fired).toEqual(['second']);
  });

  it('a timer set while timers fire waits for the next round, even at 0 ms', () => {
    const host = new FakeHost();
    const queue = new TimerQueue(host);
    let rounds = 0;
    const again = (): void => {
      rounds++;
      if (rounds < 5) queue.add(again, 0);
    };
    queue.add(again, 10);
    host.advanceTo(10);
    // The round leaves the new timer armed rather than firing it in the same run.
    expect(rounds).toBe(1);
    expect(host.armed).toBeDefined();
    host.advanceTo(100);
    expect(rounds).toBe(5);
  });

  it('a callback that throws does not lose the timers after it', () => {
    const host = new FakeHost();
    const queue = new TimerQueue(host);
    const fired: string[] = [];
    queue.add(() => fired.push('a'), 10);
    queue.add(() => {
      throw new Error('boom');
    }, 10);
    queue.add(() => fired.push('c'), 10);
    expect(() => host.advanceTo(10)).toThrow('boom');
    expect(fired).toEqual(['a']);
    expect(host.armed).toBeDefined();
    host.advanceTo(20);
    expect(fired).toEqual(['a', 'c']);
  });

  it('treats NaN and delays beyond 2^31-1 ms as 1 ms and negative ones as 0, as Node does', () => {
    const host = new FakeHost();
    const queue = new TimerQueue(host);
    const fired: string[] = [];
    queue.add(() => fired.push('huge'), 2 ** 40);
    queue.add(() => fired.push('nan'), Number.NaN);
    queue.add(() => fired.push('negative'), -50);
    // The runtime timer waits 1 ms at least, as Node's does; then the 0 ms timer goes first.
    host.advanceTo(1);
    expect(fired).toEqual(['negative', 'huge', 'nan']);
  });

  it('with slack, fires the timers due within one grid step together at its end, never early, and wakes once per step', () => {
    const host = new FakeHost();
    host.time = 1_003;
    const queue = new TimerQueue(host);
    queue.setSlack(10);
    const fired: [number, number][] = [];
    // Due at 1,004 .. 1,033: three steps of the grid (1,010, 1,020, 1,030) and one at 1,033 (step 1,040).
    for (let at = 1_004; at <= 1_033; at++) queue.add(() => fired.push([at, host.time]), at - 1_003);
    expect(host.arms).toEqual([7]);
    host.advanceTo(1_009);
    expect(fired).toEqual([]);
    host.advanceTo(1_010);
    expect(fired.map(([at]) => at)).toEqual([1_004, 1_005, 1_006, 1_007, 1_008, 1_009, 1_010]);
    host.advanceTo(2_000);
    expect(fired.map(([at]) => at)).toEqual(Array.from({ length: 30 }, (_, i) => 1_004 + i));
    // Each fired at or after its deadline, at most one step late, and at a step of the grid.
    for (const [at, when] of fired) {
      expect(when).toBeGreaterThanOrEqual(at);
      expect(when - at).toBeLessThan(10);
      expect(when % 10).toBe(0);
    }
    // One wake per step: 1,010, 1,020, 1,030, 1,040.
    expect(host.arms).toEqual([7, 10, 10, 10]);
    expect(queue.size).toBe(0);
  });

  it('with slack, a timer set within the armed step joins it without re-arming; one in an earlier step re-arms', () => {
    const host = new FakeHost();
    host.time = 100;
    const queue = new TimerQueue(host);
    queue.setSlack(20);
    const fired: string[] = [];
    queue.add(() => fired.push('a'), 135); // due 235: wakes at 240
    queue.add(() => fired.push('b'), 122); // due 222: same step
    expect(host.arms).toEqual([140]);
    queue.add(() => fired.push('c'), 50); // due 150: step 160, earlier
    expect(host.arms).toEqual([140, 60]);
    host.advanceTo(159);
    expect(fired).toEqual([]);
    host.advanceTo(160);
    expect(fired).toEqual(['c']);
    host.advanceTo(240);
    expect(fired).toEqual(['c', 'b', 'a']);
  });

  it('with slack, a runtime timer that wakes a little early still fires its whole step', () => {
    const host = new FakeHost();
    const queue = new TimerQueue(host);
    queue.setSlack(10);
    const fired: number[] = [];
    queue.add(() => fired.push(1), 3);
    queue.add(() => fired.push(2), 9.8);
    const armed = host.armed;
    expect(armed?.at).toBe(10);
    // Node's timers count whole milliseconds of a cached loop time: the wake may read 9.6.
    host.armed = undefined;
    host.time = 9.6;
    host.cached = undefined;
    armed?.fn();
    expect(fired).toEqual([1, 2]);
    expect(host.armed).toBeUndefined();
  });

  it('without slack (setSlack(0) again), fires each timer at its own deadline', () => {
    const host = new FakeHost();
    const queue = new TimerQueue(host);
    queue.setSlack(10);
    queue.setSlack(0);
    const fired: [number, number][] = [];
    for (const at of [3, 7, 12]) queue.add(() => fired.push([at, host.time]), at);
    host.advanceTo(100);
    expect(fired).toEqual([
      [3, 3],
      [7, 7],
      [12, 12],
    ]);
  });

  it('matches a sorted-list model under random sets, cancels and advances', () => {
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 0; round < 20; round++) {
      const host = new FakeHost();
      const queue = new TimerQueue(host);
      const fired: number[] = [];
      const model: { id: number; at: number; cancelled: boolean }[] = [];
      const live = new Map<number, { cancel(): void }>();
      let id = 0;
      for (let step = 0; step < 300; step++) {
        const r = random();
        if (r < 0.5) {
          const delay = Math.floor(random() * 500);
          const me = id++;
          model.push({ id: me, at: host.recent() + delay, cancelled: false });
          live.set(
            me,
            queue.add(() => fired.push(me), delay),
          );
        } else if (r < 0.7 && live.size > 0) {
          const ids = [...live.keys()];
          const victim = ids[Math.floor(random() * ids.length)] as number;
          live.get(victim)?.cancel();
          live.delete(victim);
          const m = model.find((x) => x.id === victim);
          if (m) m.cancelled = true;
        } else {
          host.advanceTo(host.time + Math.floor(random() * 200));
          for (const f of fired) live.delete(f);
        }
      }
      host.advanceTo(host.time + 10_000);
      const expected = model
        .filter((m) => !m.cancelled)
        .sort((a, b) => a.at - b.at || a.id - b.id)
        .map((m) => m.id);
      expect(fired).toEqual(expected);
      expect(queue.size).toBe(0);
    }
  });
});

describe('system clock timers', () => {
  it('share one Node timer: a hundred timers set together create one, and fire in order', async () => {
    const clock = createSystemClock();
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const fired: number[] = [];
    let done!: () => void;
    const all = new Promise<void>((resolve) => {
      done = resolve;
    });
    try {
      await Promise.resolve();
      for (let i = 0; i < 100; i++) {
        clock.setTimeout(() => {
          fired.push(i);
          if (fired.length === 100) done();
        }, 30 + (i % 10));
      }
      expect(spy.mock.calls.length).toBe(1);
    } finally {
      spy.mockRestore();
    }
    const start = performance.now();
    await all;
    expect(performance.now() - start).toBeGreaterThanOrEqual(25);
    const order = fired.map((i) => i % 10);
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });

  it('lets the process go when every timer is cancelled (no Node timer left behind)', async () => {
    const clock = createSystemClock();
    await Promise.resolve();
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const timers = [1000, 2000, 3000].map((ms) => clock.setTimeout(() => undefined, ms));
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBe(before + 1);
    for (const t of timers) t.cancel();
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBe(before);
  });
});
