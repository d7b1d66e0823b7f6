import { describe, expect, it } from 'vitest';
import { flushAsync, ManualClock, type Timer } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { stepHealth } from '../../src/monitors/health.js';
import { createDeadline, type CheckSignal } from '../../src/monitors/deadline.js';
import { createPeriodicMonitor } from '../../src/monitors/periodic.js';
import { createAdmission } from '../../src/monitors/admission.js';
import type { CheckOutcome } from '../../src/monitors/types.js';
import { recorder } from './support/helpers.js';

const opts = { intervalMs: 10_000, timeoutMs: 5_000, rise: 1, fall: 1 };

/** A check whose results the test scripts; each run waits for the test to answer it. */
function scripted() {
  const pending: { resolve: (o: CheckOutcome) => void; signal: AbortSignal }[] = [];
  let runs = 0;
  return {
    check: {
      run: (signal: AbortSignal) =>
        new Promise<CheckOutcome>((resolve) => {
          runs += 1;
          pending.push({ resolve, signal });
        }),
    },
    runs: () => runs,
    pending,
    answer(ok: boolean, reason = ok ? 'fine' : 'broken') {
      const p = pending.shift();
      if (!p) throw new Error('no check in flight');
      p.resolve({ ok, reason });
    },
  };
}

describe('stepHealth (rise/fall)', () => {
  const table: [string, boolean[], number, number, (string | undefined)[]][] = [
    ['first result sets the state at once, whatever rise/fall', [false], 3, 3, ['down']],
    ['first good with rise 3', [true], 3, 3, ['up']],
    ['fall 2 needs two bad in a row', [true, false, true, false, false], 1, 2, ['up', undefined, undefined, undefined, 'down']],
    ['rise 3 needs three good in a row', [false, true, true, false, true, true, true], 3, 1, ['down', undefined, undefined, undefined, undefined, undefined, 'up']],
    ['rise/fall 1 is PyBal: every change reported', [true, false, true, true, false], 1, 1, ['up', 'down', 'up', undefined, 'down']],
  ];
  it.each(table)('%s', (_name, results, rise, fall, expected) => {
    let current: { state: 'up' | 'down' | undefined; streak: number } = { state: undefined, streak: 0 };
    const changes = results.map((ok) => {
      const next = stepHealth(current, ok, { rise, fall });
      current = next;
      return next.changed ? next.state : undefined;
    });
    expect(changes).toEqual(expected);
  });
});

describe('periodic wrapper (manual clock)', () => {
  it('sets each next tick with the timer of the tick that fired, and checks on schedule', async () => {
    const calls: { fn: () => void; reuse: Timer | undefined; timer: Timer }[] = [];
    class RecordingClock extends ManualClock {
      override setTimeout(fn: () => void, delayMs: number, reuse?: Timer): Timer {
        const timer = super.setTimeout(fn, delayMs);
        calls.push({ fn, reuse, timer });
        return timer;
      }
    }
    const clock = new RecordingClock();
    const rec = recorder();
    const s = scripted();
    const monitor = createPeriodicMonitor('ProxyFetch', opts, s.check, rec.deps(clock, { random: () => 0.5 }));
    monitor.start({ delayMs: 1_000 });
    for (let round = 1; round <= 3; round++) {
      await clock.advanceAsync(round === 1 ? 1_000 : 10_000);
      expect(s.runs()).toBe(round);
      s.answer(true);
      await flushAsync();
    }
    // The ticks are the calls with start()'s callback (the checks' deadlines are others).
    const ticks = calls.filter((c) => c.fn === calls[0]?.fn);
    expect(ticks).toHaveLength(4);
    expect(ticks[0]?.reuse).toBeUndefined();
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]?.reuse).toBe(ticks[i - 1]?.timer);
    expect(rec.states()).toEqual(['up']);
    await monitor.stop();
    expect(clock.pendingCount()).toBe(0);
  });

  it('runs the first check at once, reports the first result and then only transitions', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    const s = scripted();
    const monitor = createPeriodicMonitor('ProxyFetch', opts, s.check, rec.deps(clock, { random: () => 0.5 }));
    monitor.start();
    expect(s.runs()).toBe(1);
    s.answer(true);
    await flushAsync();
    expect(rec.states()).toEqual(['up']);
    expect(rec.reports[0]?.firstCheck).toBe(true);
    // random 0.5: the second check is exactly one interval later.
    await clock.advanceAsync(9_999);
    expect(s.runs()).toBe(1);
    await clock.advanceAsync(1);
    expect(s.runs()).toBe(2);
    s.answer(true);
    await flushAsync();
    expect(rec.states()).toEqual(['up']);
    await clock.advanceAsync(10_000);
    s.answer(false, 'HTTP status 500');
    await flushAsync();
    expect(rec.states()).toEqual(['up', 'down']);
    expect(rec.reports[1]).toMatchObject({ up: false, reason: 'HTTP status 500', firstCheck: false });
    expect(rec.results.map((r) => r.ok)).toEqual([true, true, false]);
    expect(monitor.state()).toBe('down');
    await monitor.stop();
    expect(clock.pendingCount()).toBe(0);
  });

  it('fails a check at the deadline even if the check never settles on its own', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    let sawAbort = false;
    const monitor = createPeriodicMonitor(
      'DNSQuery',
      opts,
      {
        run: (signal) =>
          new Promise<CheckOutcome>((resolve) => {
            // Honours the signal, but only reports it as cancelled.
            signal.addEventListener('abort', () => {
              sawAbort = true;
              resolve({ ok: true, reason: 'late success must not count' });
            });
          }),
      },
      rec.deps(clock, { random: () => 0.5 }),
    );
    monitor.start();
    await clock.advanceAsync(4_999);
    expect(rec.reports).toEqual([]);
    await clock.advanceAsync(1);
    expect(sawAbort).toBe(true);
    expect(rec.reports).toEqual([expect.objectContaining({ up: false, reason: 'timed out after 5 s' })]);
    await monitor.stop();
  });

  it('never overlaps checks: an overrunning check delays the next, which then runs at once; missed ticks are dropped', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    const s = scripted();
    const monitor = createPeriodicMonitor('RunCommand', { ...opts, timeoutMs: 0 }, s.check, rec.deps(clock, { random: () => 0.5 }));
    monitor.start();
    await clock.advanceAsync(35_000); // no deadline: the first check is still running past the ticks at 10, 20 and 30 s
    expect(s.runs()).toBe(1);
    s.answer(true);
    await flushAsync();
    await clock.advanceAsync(0);
    // The late tick runs as soon as the first check ends; 10 and 20 s are not made up.
    expect(s.runs()).toBe(2);
    s.answer(true);
    await flushAsync();
    // Then the original phase again: 40 s.
    await clock.advanceAsync(4_999);
    expect(s.runs()).toBe(2);
    await clock.advanceAsync(1);
    expect(s.runs()).toBe(3);
    s.answer(true);
    await monitor.stop();
  });

  it('a server that hangs is found down within interval × fall + timeout, even when jitter makes an interval shorter than the timeout', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    let hanging = false;
    const interval = 1_000;
    const options = { intervalMs: interval, timeoutMs: 1_000, rise: 1, fall: 2 };
    // random() = 0: the second check half an interval after the first, then every 0.9 intervals.
    const monitor = createPeriodicMonitor(
      'ProxyFetch',
      options,
      { run: (signal) => (hanging ? new Promise<CheckOutcome>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))) : Promise.resolve({ ok: true, reason: 'fine' })) },
      rec.deps(clock, { random: () => 0 }),
    );
    monitor.start();
    await clock.advanceAsync(501); // checks at 0 and 500 ms answered
    expect(rec.reports).toEqual([expect.objectContaining({ up: true })]);
    hanging = true;
    const hungAt = clock.now();
    // Checks at 1400 (times out at 2400) and, late, at 2400 (times out at 3400).
    await clock.advanceAsync(options.intervalMs * options.fall + options.timeoutMs);
    expect(rec.reports).toEqual([expect.objectContaining({ up: true }), expect.objectContaining({ up: false })]);
    expect(clock.now() - hungAt).toBeLessThanOrEqual(interval * options.fall + options.timeoutMs);
    await monitor.stop();
  });

  it('spreads monitors started together over the interval (jitter)', async () => {
    const clock = new ManualClock();
    const starts: number[][] = [];
    const monitors = [0, 0.25, 0.5, 0.75, 0.999].map((r, i) => {
      starts[i] = [];
      return createPeriodicMonitor(
        'ProxyFetch',
        opts,
        {
          run: async () => {
            starts[i]!.push(clock.now());
            return { ok: true, reason: 'ok' };
          },
        },
        recorder().deps(clock, { random: () => r }),
      );
    });
    for (const m of monitors) m.start();
    await clock.advanceAsync(30_000);
    // All first checks at once, then each on its own phase between 0.5 and 1.5 intervals.
    expect(starts.map((s) => s[0])).toEqual([0, 0, 0, 0, 0]);
    expect(starts.map((s) => Math.round(s[1]!))).toEqual([5_000, 7_500, 10_000, 12_500, 14_990]);
    // Later gaps stay within ±10% of the interval.
    expect(starts.map((s) => Math.round(s[2]! - s[1]!))).toEqual([9_000, 9_500, 10_000, 10_500, 10_998]);
    await Promise.all(monitors.map((m) => m.stop()));
  });

  it('stop() aborts the check in flight with the stop reason; no timer, report or result after it', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    const s = scripted();
    const monitor = createPeriodicMonitor('ProxyFetch', opts, s.check, rec.deps(clock));
    monitor.start();
    const signal = s.pending[0]!.signal;
    const stopping = monitor.stop();
    expect(signal.aborted).toBe(true);
    expect((signal.reason as Error).message).toBe('monitor stopped');
    // The wrapper waits for the aborted check to end before stop resolves.
    s.answer(false);
    await stopping;
    expect(rec.reports).toEqual([]);
    expect(rec.results).toEqual([]);
    expect(clock.pendingCount()).toBe(0);
  });

  it('a gate (command slot) is waited for before the deadline starts', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    const s = scripted();
    let openGate: () => void = () => undefined;
    const gate = () => new Promise<() => void>((resolve) => (openGate = () => resolve(() => undefined)));
    const monitor = createPeriodicMonitor('RunCommand', opts, { ...s.check, gate }, rec.deps(clock));
    monitor.start();
    await clock.advanceAsync(60_000);
    expect(s.runs()).toBe(0);
    expect(rec.reports).toEqual([]);
    openGate();
    await flushAsync();
    expect(s.runs()).toBe(1);
    s.answer(true);
    await flushAsync();
    expect(rec.states()).toEqual(['up']);
    await monitor.stop();
  });

  it('a check that throws is a bad result and the loop goes on', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    let n = 0;
    const monitor = createPeriodicMonitor(
      'ProxyFetch',
      opts,
      {
        run: async () => {
          n += 1;
          if (n === 1) throw new Error('boom');
          return { ok: true, reason: 'ok' };
        },
      },
      rec.deps(clock, { random: () => 0.5 }),
    );
    monitor.start();
    await clock.advanceAsync(10_000);
    expect(rec.reports.map((r) => [r.up, r.reason])).toEqual([
      [false, 'boom'],
      [true, 'ok'],
    ]);
    await monitor.stop();
  });

  it('a check that throws synchronously is a bad result too; the deadline of a finished check never fires', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    const signals: CheckSignal[] = [];
    let n = 0;
    const monitor = createPeriodicMonitor(
      'ProxyFetch',
      opts,
      {
        run: (signal) => {
          signals.push(signal);
          n += 1;
          if (n === 1) throw new Error('sync boom');
          return Promise.resolve({ ok: true, reason: 'ok' });
        },
      },
      rec.deps(clock, { random: () => 0.5 }),
    );
    monitor.start();
    await clock.advanceAsync(10_000);
    expect(rec.reports.map((r) => [r.up, r.reason])).toEqual([
      [false, 'sync boom'],
      [true, 'ok'],
    ]);
    // The deadline timers of the finished checks are gone: only the next tick is pending.
    expect(clock.pendingCount()).toBe(1);
    await clock.advanceAsync(60_000);
    expect(signals.length).toBeGreaterThan(2);
    expect(signals.slice(0, 2).map((s) => s.aborted)).toEqual([false, false]);
    await monitor.stop();
  });

  it('a check that times itself from the start time it is given sets the result duration', async () => {
    const clock = new ManualClock(1_000);
    const rec = recorder();
    const starts: number[] = [];
    const monitor = createPeriodicMonitor(
      'ProxyFetch',
      opts,
      {
        run: (_signal, startMs) => {
          starts.push(startMs);
          return Promise.resolve({ ok: true, reason: 'ok', durationMs: 42 });
        },
      },
      rec.deps(clock, { random: () => 0.5 }),
    );
    monitor.start();
    await flushAsync();
    expect(starts).toEqual([1_000]);
    expect(rec.results[0]).toMatchObject({ ok: true, durationMs: 42 });
    await monitor.stop();
  });

  it('an interval of 0 is raised to the minimum instead of checking in a tight loop', async () => {
    const clock = new ManualClock();
    let runs = 0;
    const monitor = createPeriodicMonitor(
      'ProxyFetch',
      { ...opts, intervalMs: 0 },
      {
        run: async () => {
          runs += 1;
          return { ok: true, reason: 'ok' };
        },
      },
      recorder().deps(clock, { random: () => 0.5 }),
    );
    monitor.start();
    await clock.advanceAsync(1_000);
    expect(runs).toBe(11); // at 0, 100, 200, ... 1000 ms
    await monitor.stop();
  });
});

describe('periodic wrapper start options', () => {
  it('waits the start delay before the first check, then keeps the interval from there', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    const s = scripted();
    const monitor = createPeriodicMonitor('ProxyFetch', opts, s.check, rec.deps(clock, { random: () => 0.5 }));
    monitor.start({ delayMs: 3_000 });
    expect(s.runs()).toBe(0);
    await clock.advanceAsync(2_999);
    expect(s.runs()).toBe(0);
    await clock.advanceAsync(1);
    expect(s.runs()).toBe(1);
    s.answer(false, 'refused');
    await flushAsync();
    expect(rec.reports).toEqual([expect.objectContaining({ up: false, firstCheck: true })]);
    await clock.advanceAsync(10_000);
    expect(s.runs()).toBe(2);
    s.answer(true);
    await monitor.stop();
    expect(clock.pendingCount()).toBe(0);
  });

  it('a monitor stopped before its delayed first check never checks', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    const s = scripted();
    const monitor = createPeriodicMonitor('ProxyFetch', opts, s.check, rec.deps(clock));
    monitor.start({ delayMs: 5_000 });
    await monitor.stop();
    await clock.advanceAsync(20_000);
    expect(s.runs()).toBe(0);
    expect(clock.pendingCount()).toBe(0);
  });

  it('presumed up: a failure is reported only after `fall` of them; a first success confirms up', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    const s = scripted();
    const monitor = createPeriodicMonitor('ProxyFetch', { ...opts, fall: 3 }, s.check, rec.deps(clock, { random: () => 0.5 }));
    monitor.start({ assumeUp: true });
    expect(monitor.state()).toBe('up');
    for (let i = 0; i < 2; i++) {
      s.answer(false, 'timed out');
      await flushAsync();
      await clock.advanceAsync(10_000);
    }
    // Two failures of three: nothing said yet, still up.
    expect(rec.reports).toEqual([]);
    expect(monitor.state()).toBe('up');
    s.answer(false, 'timed out');
    await flushAsync();
    expect(rec.reports).toEqual([expect.objectContaining({ up: false, reason: 'timed out' })]);
    expect(monitor.state()).toBe('down');
    await monitor.stop();

    const rec2 = recorder();
    const s2 = scripted();
    const confirmed = createPeriodicMonitor('ProxyFetch', { ...opts, fall: 3 }, s2.check, rec2.deps(clock, { random: () => 0.5 }));
    confirmed.start({ assumeUp: true });
    s2.answer(true);
    await flushAsync();
    expect(rec2.reports).toEqual([expect.objectContaining({ up: true, firstCheck: true })]);
    await confirmed.stop();
  });

  it('a monitor stopped while its gate is granted starts the check aborted, reports nothing and frees the slot', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    const s = scripted();
    let openGate: () => void = () => undefined;
    let released = 0;
    const gate = (signal: AbortSignal) =>
      new Promise<() => void>((resolve, reject) => {
        openGate = () => resolve(() => (released += 1));
        signal.addEventListener('abort', () => reject(signal.reason as Error));
      });
    const monitor = createPeriodicMonitor('RunCommand', opts, { ...s.check, gate }, rec.deps(clock));
    monitor.start();
    await flushAsync();
    // The slot is granted, and the monitor stopped before the wrapper resumes.
    openGate();
    const stopping = monitor.stop();
    await flushAsync();
    expect(s.pending.map((p) => p.signal.aborted)).toEqual([true]);
    s.answer(true);
    await stopping;
    expect(released).toBe(1);
    expect(rec.reports).toEqual([]);
    expect(rec.results).toEqual([]);
    expect(clock.pendingCount()).toBe(0);
  });

  it('passes each result on with its kind, duration and the fields of the outcome', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    const urls = [{ url: 'http://a/', ok: true, reason: 'HTTP status 200', durationMs: 7 }];
    const outcomes: CheckOutcome[] = [
      { ok: true, reason: 'fetched', urls, durationMs: 7 },
      { ok: false, reason: 'exit 2', exitCode: 2 },
    ];
    const monitor = createPeriodicMonitor('ProxyFetch', opts, { run: () => Promise.resolve(outcomes.shift()!) }, rec.deps(clock, { random: () => 0.5 }));
    monitor.start();
    await clock.advanceAsync(10_000);
    expect(rec.results).toEqual([
      { kind: 'ProxyFetch', ok: true, reason: 'fetched', urls, durationMs: 7 },
      { kind: 'ProxyFetch', ok: false, reason: 'exit 2', exitCode: 2, durationMs: 0 },
    ]);
    await monitor.stop();
  });

  it('logs each result at debug level, and only when debug is on', async () => {
    const clock = new ManualClock();
    const debug = recorder();
    const info = createMemoryLogger('info');
    const check = { run: () => Promise.resolve({ ok: false, reason: 'HTTP status 503' }) };
    const monitors = [
      createPeriodicMonitor('ProxyFetch', opts, check, debug.deps(clock)),
      createPeriodicMonitor('ProxyFetch', opts, check, { ...debug.deps(clock), logger: info.logger }),
    ];
    for (const m of monitors) m.start();
    await flushAsync();
    expect(debug.log.lines()).toEqual(['[pybal] DEBUG: bad check: HTTP status 503', '[pybal] WARN: down: HTTP status 503']);
    expect(info.lines()).toEqual(['[pybal] WARN: down: HTTP status 503']);
    await Promise.all(monitors.map((m) => m.stop()));
  });
});

describe('deadline after a stall of the event loop', () => {
  it('lets an answer that is already waiting win over a deadline that expired meanwhile', async () => {
    const clock = new ManualClock();
    const deadline = createDeadline(clock, 1_000);
    let answer: (value: string) => void = () => undefined;
    const raced = deadline.race(new Promise<string>((resolve) => (answer = resolve))).finally(() => deadline.dispose());
    // The answer was read while the loop was held (I/O runs before the next turn's immediates)...
    setImmediate(() => answer('HTTP status 200'));
    // ...and the deadline's timer fired when the loop came back.
    clock.advance(1_000);
    await expect(raced).resolves.toBe('HTTP status 200');
    expect(deadline.signal.aborted).toBe(false);
  });

  it('still fails a check that has no answer, one turn after the timer', async () => {
    const clock = new ManualClock();
    const deadline = createDeadline(clock, 1_000);
    const raced = deadline.race(new Promise<string>(() => undefined));
    clock.advance(1_000);
    expect(deadline.signal.aborted).toBe(false);
    await expect(raced).rejects.toThrow('timed out after 1 s');
    expect(deadline.signal.aborted).toBe(true);
    deadline.dispose();
  });
});

describe('periodic wrapper with admission in its callback form (admitCall)', () => {
  /** An admission whose turns the test runs, one batch of `perTurn` a turn. */
  function manualAdmission(perTurn = 2) {
    const turns: (() => void)[] = [];
    const admission = createAdmission(perTurn, (fn) => turns.push(fn), () => 0);
    return { admission, turn: () => turns.shift()?.(), waiting: () => turns.length };
  }

  it('a due check starts only when admitted, and rounds go on through it', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    const s = scripted();
    const { admission, turn } = manualAdmission();
    const monitor = createPeriodicMonitor('ProxyFetch', opts, s.check, rec.deps(clock, { random: () => 0.5, admitCall: (fn) => admission.call(fn) }));
    monitor.start();
    await flushAsync();
    expect(s.runs()).toBe(0);
    expect(admission.held()).toBe(1);
    turn();
    expect(s.runs()).toBe(1); // started within the admission's turn
    s.answer(true);
    await flushAsync();
    for (let round = 2; round <= 4; round++) {
      await clock.advanceAsync(15_000);
      expect(s.runs()).toBe(round - 1);
      turn();
      expect(s.runs()).toBe(round);
      s.answer(round !== 3);
      await flushAsync();
    }
    expect(rec.states()).toEqual(['up', 'down', 'up']);
    expect(rec.results.map((r) => r.ok)).toEqual([true, true, false, true]);
    await monitor.stop();
  });

  it('stopped while it waits for admission: stop() does not wait for it, and no check runs when it comes', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    const s = scripted();
    const { admission, turn } = manualAdmission();
    const monitor = createPeriodicMonitor('ProxyFetch', opts, s.check, rec.deps(clock, { admitCall: (fn) => admission.call(fn) }));
    monitor.start();
    let stopped = false;
    void monitor.stop().then(() => (stopped = true));
    await flushAsync();
    expect(stopped).toBe(true);
    turn();
    await flushAsync();
    expect(s.runs()).toBe(0);
    expect(rec.results).toHaveLength(0);
    expect(clock.pendingCount()).toBe(0);
  });

  it('many monitors due at once start a batch per turn, in order', async () => {
    const clock = new ManualClock();
    const { admission, turn } = manualAdmission(3);
    const checks = Array.from({ length: 7 }, () => scripted());
    const monitors = checks.map((s) => createPeriodicMonitor('ProxyFetch', opts, s.check, recorder().deps(clock, { admitCall: (fn) => admission.call(fn) })));
    for (const m of monitors) m.start();
    const started = (): number[] => checks.map((s) => s.runs());
    expect(started()).toEqual([0, 0, 0, 0, 0, 0, 0]);
    turn();
    expect(started()).toEqual([1, 1, 1, 0, 0, 0, 0]);
    turn();
    expect(started()).toEqual([1, 1, 1, 1, 1, 1, 0]);
    turn();
    expect(started()).toEqual([1, 1, 1, 1, 1, 1, 1]);
    for (const s of checks) s.answer(true);
    await Promise.all(monitors.map((m) => m.stop()));
  });
});
