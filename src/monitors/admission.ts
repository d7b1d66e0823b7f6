/**
 * Admission of check starts, a batch per turn of the event loop. Node runs
 * every expired timer before it reads a socket: when a few thousand checks
 * come due together (after a stall, or at 1,000 checks a second on a slow
 * director), starting them all in one go holds the loop for seconds while
 * the answers to earlier checks wait unread and time out. Admitted in
 * batches, each batch in its own turn, the answers are read between batches;
 * an overloaded director checks late instead of failing healthy servers.
 */

/** Check starts per turn of the event loop. */
export const ADMIT_PER_TURN = 32;

/** Resolves when the caller may start its check. */
export type Admit = () => Promise<void>;

export function createAdmission(perTurn = ADMIT_PER_TURN, later: (fn: () => void) => void = (fn) => void setImmediate(fn)): Admit {
  let queue: (() => void)[] = [];
  let next = 0;
  let scheduled = false;
  const drain = (): void => {
    const end = Math.min(queue.length, next + perTurn);
    while (next < end) queue[next++]!();
    if (next < queue.length) {
      later(drain);
      return;
    }
    queue = [];
    next = 0;
    scheduled = false;
  };
  return () =>
    new Promise<void>((resolve) => {
      queue.push(resolve);
      if (scheduled) return;
      scheduled = true;
      later(drain);
    });
}
