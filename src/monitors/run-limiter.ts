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
  /**
   * A new cap (a reload changed runcommand-max-concurrent): a higher one
   * starts waiters at once; a lower one lets running commands finish and
   * starts no new one until fewer than the cap run.
   */
  setMaxConcurrent(maxConcurrent: number): void;
}

function checkCap(maxConcurrent: number): void {
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) throw new RangeError(`maxConcurrent must be a positive integer, got ${maxConcurrent}`);
}

export function createRunLimiter(initialMaxConcurrent: number): RunLimiter {
  checkCap(initialMaxConcurrent);
  let maxConcurrent = initialMaxConcurrent;
  let running = 0;
  const queue: { grant: () => void }[] = [];

  const releaser = (): (() => void) => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // Over a lowered cap, a slot that frees up is not handed on.
      const next = running > maxConcurrent ? undefined : queue.shift();
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
    setMaxConcurrent(next) {
      checkCap(next);
      maxConcurrent = next;
      while (running < maxConcurrent && queue.length > 0) {
        running += 1;
        queue.shift()?.grant();
      }
    },
  };
}
