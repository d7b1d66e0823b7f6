// The check deadline's own signal: the part of AbortSignal the monitors use,
// shown to behave as AbortSignal does, side by side with a real one.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { createDeadline, DeadlineError, type AbortListener, type CheckSignal } from '../../src/monitors/deadline.js';

/** A deadline's signal and a real AbortSignal, each with an abort(reason). */
function both(): { name: string; signal: CheckSignal; abort: (reason: unknown) => void }[] {
  const deadline = createDeadline(new ManualClock(), 0);
  const controller = new AbortController();
  return [
    { name: 'deadline', signal: deadline.signal, abort: (r) => deadline.abort(r) },
    { name: 'AbortSignal', signal: controller.signal, abort: (r) => controller.abort(r) },
  ];
}

describe('the deadline signal behaves as AbortSignal for what checks use', () => {
  it.each(both())('$name: listeners run once each, in the order added; removed and late ones never', ({ signal, abort }) => {
    const calls: string[] = [];
    const object = { handleEvent: () => calls.push('object') };
    const first = (): void => void calls.push('first');
    const removed = (): void => void calls.push('removed');
    signal.addEventListener('abort', first, { once: true });
    signal.addEventListener('abort', removed);
    signal.addEventListener('abort', object);
    signal.addEventListener('abort', first); // the same listener twice is one
    signal.removeEventListener('abort', removed);
    expect(signal.aborted).toBe(false);
    expect(signal.reason).toBeUndefined();
    const reason = new DeadlineError(5_000);
    abort(reason);
    abort(new Error('second abort is ignored'));
    signal.addEventListener('abort', () => calls.push('late'));
    expect(calls).toEqual(['first', 'object']);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe(reason);
  });

  it.each(both())('$name: removing the only listener leaves none; another added after it is called', ({ signal, abort }) => {
    const calls: string[] = [];
    const a: AbortListener = () => void calls.push('a');
    signal.addEventListener('abort', a);
    signal.removeEventListener('abort', a);
    signal.addEventListener('abort', { handleEvent: () => calls.push('b') });
    abort(new Error('stop'));
    expect(calls).toEqual(['b']);
  });

  it('a listener that throws does not keep the others or the deadline from aborting', async () => {
    const clock = new ManualClock();
    const deadline = createDeadline(clock, 1_000);
    const calls: string[] = [];
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      deadline.signal.addEventListener('abort', () => {
        throw new Error('listener bug');
      });
      deadline.signal.addEventListener('abort', () => calls.push('second'));
      const raced = deadline.race(new Promise<never>(() => undefined));
      clock.advance(1_000);
      await expect(raced).rejects.toThrow('timed out after 1 s');
      expect(calls).toEqual(['second']);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.some((w) => w.includes('listener bug'))).toBe(true);
    } finally {
      process.off('warning', onWarning);
      deadline.dispose();
    }
  });
});
