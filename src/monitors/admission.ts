/**
 * Admission of check starts, a batch per turn of the event loop. Node runs
 * every expired timer before it reads a socket: when a few thousand checks
 * come due together (after a stall, or at 1,000 checks a second on a slow
 * director), starting them all in one go holds the loop for seconds while
 * the answers to earlier checks wait unread and time out. Admitted in
 * batches, each batch in its own turn, the answers are read between batches;
 * an overloaded director checks late instead of failing healthy servers.
 */
import { controlPlaneWaiting } from '../runtime/sliced.js';

/** Check starts per turn of the event loop. */
export const ADMIT_PER_TURN = 32;
/**
 * ...and while control-plane work waits (a pool edit, a publish or a
 * reconcile between its slices, a pool's first read): it goes first. Under a
 * storm of 20,000 connects, a weight edit otherwise waited 20 s for its
 * turns; with 4 starts a turn, a cold start of 1,000 services still read its
 * pool files at about 70 a second in the lab guest, with 1 about twice that.
 * A check admitted late is late, never failed: its deadline starts after.
 */
export const ADMIT_PER_TURN_BEHIND_JOBS = 1;

/** Resolves when the caller may start its check. */
export type Admit = () => Promise<void>;

/**
 * Admitted starts are dropped from the front of the queue once this many
 * have gone and they are most of it. Under a load that never lets the queue
 * empty (a director checking late for minutes), keeping them until it does
 * grew the queue by every check ever admitted: some 100 KB a second at
 * 1,000 checks a second, for good.
 */
const DROP_ADMITTED_AFTER = 1024;

export interface Admission extends Admit {
  /**
   * Calls `fn` when the caller may start its check: admit() without the
   * promise. What waits is the function alone, nothing of the caller's
   * async frames: on a saturated director thousands of checks wait here at
   * once (in the lab guest at 10,000 servers, two suspended async functions,
   * their promises and contexts per waiting check were most of the checks
   * thread's live heap).
   */
  call(fn: () => void): void;
  /** Entries the queue holds, admitted ones not yet dropped included (tests). */
  held(): number;
}

export function createAdmission(
  perTurn = ADMIT_PER_TURN,
  later: (fn: () => void) => void = (fn) => void setImmediate(fn),
  jobsWaiting: () => number = controlPlaneWaiting,
): Admission {
  let queue: (() => void)[] = [];
  let next = 0;
  let scheduled = false;
  const drain = (): void => {
    const end = Math.min(queue.length, next + (jobsWaiting() > 0 ? Math.min(perTurn, ADMIT_PER_TURN_BEHIND_JOBS) : perTurn));
    while (next < end) queue[next++]!();
    if (next < queue.length) {
      if (next > DROP_ADMITTED_AFTER && next * 2 > queue.length) {
        queue = queue.slice(next);
        next = 0;
      }
      later(drain);
      return;
    }
    queue = [];
    next = 0;
    scheduled = false;
  };
  const call = (fn: () => void): void => {
    queue.push(fn);
    if (scheduled) return;
    scheduled = true;
    later(drain);
  };
  const admit = (): Promise<void> => new Promise<void>(call);
  return Object.assign(admit, { call, held: () => queue.length });
}
