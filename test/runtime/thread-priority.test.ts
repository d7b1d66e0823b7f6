import { describe, expect, it } from 'vitest';
import { CHECKS_NICE, leaveControlPlanePriority, type ThreadPriorityOs } from '../../src/runtime/thread-priority.js';

/** A thread's nice value, as node:os's getPriority(0)/setPriority(0, n) see the calling thread's. */
function fakeThread(nice: number, refuse?: Error): ThreadPriorityOs & { calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    getPriority: (pid) => {
      expect(pid).toBe(0);
      return nice;
    },
    setPriority: (pid, priority) => {
      expect(pid).toBe(0);
      calls.push(priority);
      if (refuse !== undefined) throw refuse;
      nice = priority;
    },
  };
}

describe('the checks thread leaves the control plane its priority', () => {
  it('goes back to nice 0 from a negative one (pybal.service: Nice=-5) and says from what', () => {
    const thread = fakeThread(-5);
    expect(leaveControlPlanePriority(thread)).toEqual({ from: -5, to: CHECKS_NICE });
    expect(thread.calls).toEqual([0]);
  });

  it('keeps nice 0 and any positive value it was started with, asking for nothing', () => {
    for (const nice of [0, 5, 19]) {
      const thread = fakeThread(nice);
      expect(leaveControlPlanePriority(thread)).toBeUndefined();
      expect(thread.calls).toEqual([]);
    }
  });

  it('lets a refusal through to its caller (which logs it and runs on)', () => {
    const thread = fakeThread(-10, Object.assign(new Error('EACCES'), { code: 'EACCES' }));
    expect(() => leaveControlPlanePriority(thread)).toThrow('EACCES');
  });
});
