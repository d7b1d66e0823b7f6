/**
 * A cap on concurrent commands, shared by every RunCommand monitor of the
 * daemon, so that 1,000 servers do not fork 1,000 processes at once. Waiters
 * are served in arrival order.
 */

export interface RunLimiter {
  /** Resolves with a release function once a slot is free; rejects when the signal aborts first. */
  acquire(signal?: AbortSignal): Promise<() => void>;
  running(): number;
  waiting(): number;
}

export function createRunLimiter(maxConcurrent: number): RunLimiter {
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) throw new RangeError(`maxConcurrent must be a positive integer, got ${maxConcurrent}`);
  let running = 0;
  const queue: { grant: () => void }[] = [];

  const releaser = (): (() => void) => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = queue.shift();
      if (next) next.grant();
      else running -= 1;
    };
  };

  return {
    acquire(signal) {
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (running < maxConcurrent) {
        running += 1;
        return Promise.resolve(releaser());
      }
      return new Promise((resolve, reject) => {
        const entry = {
          grant: () => {
            signal?.removeEventListener('abort', onAbort);
            resolve(releaser());
          },
        };
        const onAbort = (): void => {
          const index = queue.indexOf(entry);
          if (index >= 0) queue.splice(index, 1);
          reject(signal?.reason);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        queue.push(entry);
      });
    },
    running: () => running,
    waiting: () => queue.length,
  };
}
