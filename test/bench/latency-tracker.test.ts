import { describe, expect, it } from 'vitest';
import { LatencyTracker } from '../../bench/lib/latency-tracker.js';

describe('LatencyTracker', () => {
  it('times each request from when it was due until it answered', () => {
    const t = new LatencyTracker(50, 1000);
    expect(t.nextDue).toBe(1000);
    expect(t.send()).toBe(1000);
    t.done(1004, true);
    expect(t.nextDue).toBe(1050);
    // Sent late (the client was descheduled): the delay counts.
    expect(t.send()).toBe(1050);
    t.done(1062, true);
    expect(t.nextDue).toBe(1100);
    const s = t.summary(1070);
    expect(s).toEqual({ count: 2, failures: 0, beforeUp: 0, firstAnswerMs: 1004, skipped: 0, worstMs: 12, medianMs: 4, p99Ms: 12 });
  });

  it('counts a request in flight across the due times it holds back, until it answers', () => {
    const t = new LatencyTracker(50, 0);
    t.send();
    t.done(3, true);
    t.send(); // due at 50
    // Still in flight at 400: counted with its age so far.
    expect(t.summary(400).worstMs).toBe(350);
    expect(t.inFlight).toBe(true);
    expect(() => t.send()).toThrow(/already in flight/);
    t.done(430, true);
    // Due times 100..400 were held back; the next is the first after the answer.
    expect(t.nextDue).toBe(450);
    const s = t.summary(430);
    expect(s.skipped).toBe(7);
    expect(s.worstMs).toBe(380);
    expect(s.count).toBe(2);
  });

  it('skips due times up to and including one equal to the answer time', () => {
    const t = new LatencyTracker(50, 0);
    t.send();
    t.done(100, true);
    expect(t.nextDue).toBe(150);
    expect(t.summary(100).skipped).toBe(2);
  });

  it('ignores failures before the first answer and counts them after it', () => {
    const t = new LatencyTracker(50, 0);
    t.send();
    t.done(1, false); // refused: not listening yet
    t.send();
    t.done(51, false);
    expect(t.summary(60)).toMatchObject({ count: 0, beforeUp: 2, firstAnswerMs: undefined });
    expect(t.summary(60).worstMs).toBeNaN();
    t.send();
    t.done(102, true);
    t.send();
    t.done(170, false);
    expect(t.summary(170)).toMatchObject({ count: 2, failures: 1, beforeUp: 2, firstAnswerMs: 102, worstMs: 20, medianMs: 2 });
    expect(() => t.done(171, true)).toThrow(/no request in flight/);
  });

  it('takes the 99th percentile by nearest rank (the 198th of 200)', () => {
    const t = new LatencyTracker(10, 0);
    const slow = new Map([[7, 500], [8, 300], [9, 200]]);
    for (let i = 0; i < 200; i++) {
      const due = t.send();
      t.done(due + (slow.get(i) ?? 1), true);
    }
    const s = t.summary(t.nextDue);
    expect(s.count).toBe(200);
    expect(s.worstMs).toBe(500);
    expect(s.p99Ms).toBe(200);
    expect(s.medianMs).toBe(1);
  });

  it('refuses a period that is not positive', () => {
    expect(() => new LatencyTracker(0, 0)).toThrow(/positive/);
  });
});
