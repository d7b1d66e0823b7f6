import { describe, expect, it } from 'vitest';
import { ManualClock, flushAsync } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { PollLoop } from '../../src/pool/poll-loop.js';

describe('PollLoop', () => {
  it('runs one step at a time, each after the delay the previous one asked for', async () => {
    const clock = new ManualClock();
    const starts: number[] = [];
    let finish: (() => void) | undefined;
    const loop = new PollLoop(
      clock,
      createMemoryLogger().logger,
      async () => {
        starts.push(clock.now());
        await new Promise<void>((resolve) => (finish = resolve));
        return 100;
      },
      1000,
    );
    loop.start();
    await clock.advanceAsync(0);
    expect(starts).toEqual([0]);
    await clock.advanceAsync(500); // the step is still running: no second one
    expect(starts).toEqual([0]);
    finish?.();
    await flushAsync();
    await clock.advanceAsync(99);
    expect(starts).toEqual([0]);
    await clock.advanceAsync(1);
    expect(starts).toEqual([0, 600]);
    finish?.();
    await loop.stop();
    expect(clock.pendingCount()).toBe(0);
  });

  it('wake() runs a step now instead of at the end of a long wait, but never cuts a short wait short', async () => {
    const clock = new ManualClock();
    const starts: number[] = [];
    let release: (() => void) | undefined;
    let nextDelay = 1000;
    const loop = new PollLoop(
      clock,
      createMemoryLogger().logger,
      async () => {
        starts.push(clock.now());
        if (starts.length === 3) await new Promise<void>((resolve) => (release = resolve));
        return nextDelay;
      },
      1000,
      50,
    );
    loop.wake(); // not started: nothing
    loop.start();
    await clock.advanceAsync(0);
    expect(starts).toEqual([0]);
    // A long wait (the poll interval): cut short.
    await clock.advanceAsync(300);
    nextDelay = 40; // the step asks for a short wait (a change settling)
    loop.wake();
    await clock.advanceAsync(0);
    expect(starts).toEqual([0, 300]);
    // A short wait is kept: the wake changes nothing.
    loop.wake();
    await clock.advanceAsync(39);
    expect(starts).toEqual([0, 300]);
    nextDelay = 1000;
    await clock.advanceAsync(1);
    expect(starts).toEqual([0, 300, 340]);
    // Woken while a step runs: the next comes within the wake delay (50), not the second it asked for.
    loop.wake();
    release?.();
    await flushAsync();
    await clock.advanceAsync(50);
    expect(starts).toEqual([0, 300, 340, 390]);
    await loop.stop();
    expect(clock.pendingCount()).toBe(0);
  });

  it('logs a step that throws and runs again after the fallback delay', async () => {
    const clock = new ManualClock();
    const memory = createMemoryLogger();
    let calls = 0;
    const loop = new PollLoop(
      clock,
      memory.logger,
      () => {
        calls++;
        return Promise.reject(new Error('boom'));
      },
      1000,
    );
    loop.start();
    await clock.advanceAsync(0);
    expect(calls).toBe(1);
    expect(memory.lines()).toHaveLength(1);
    expect(memory.lines()[0]).toMatch(/^\[pybal\] ERROR: pool source step failed: Error: boom\n\t +at /);
    await clock.advanceAsync(999);
    expect(calls).toBe(1);
    await clock.advanceAsync(1);
    expect(calls).toBe(2);
    await loop.stop();
  });

  it('stop() aborts the running step and waits for it', async () => {
    const clock = new ManualClock();
    let aborted = false;
    let ended = false;
    const loop = new PollLoop(
      clock,
      createMemoryLogger().logger,
      async (signal) => {
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
        aborted = signal.aborted;
        ended = true;
        return 0;
      },
      1000,
    );
    loop.start();
    await clock.advanceAsync(0);
    await loop.stop();
    expect(aborted).toBe(true);
    expect(ended).toBe(true);
    expect(clock.pendingCount()).toBe(0);
  });

  it('stop() between steps aborts nothing (no step holds the signal) and no step runs after it', async () => {
    const clock = new ManualClock();
    const signals: AbortSignal[] = [];
    const loop = new PollLoop(
      clock,
      createMemoryLogger().logger,
      (signal) => {
        signals.push(signal);
        return Promise.resolve(100);
      },
      1000,
    );
    loop.start();
    await clock.advanceAsync(0);
    await clock.advanceAsync(100);
    expect(signals).toHaveLength(2);
    await loop.stop();
    expect(signals[1]!.aborted).toBe(false);
    await clock.advanceAsync(1000);
    expect(signals).toHaveLength(2);
    expect(clock.pendingCount()).toBe(0);
  });
});
