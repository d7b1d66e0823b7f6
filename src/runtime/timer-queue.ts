/**
 * The daemon's timers in one queue behind one Node timer.
 *
 * Node reads the clock for every setTimeout (its timer lists start each
 * timer at a fresh uv_now), and a clock read is a system call where there is
 * no vDSO: some 50-80 us in the lab's UML guest. At 10,000 servers a check
 * sets two timers (its tick and its deadline), and a cold start sets one per
 * monitor, so that was some 2 s of a cold start's CPU and a sixth of a
 * check's. Here a timer starts at the reading the daemon's clock already
 * keeps for the current turn of the event loop, and only arming the one
 * Node timer, for the earliest deadline, reads the clock.
 *
 * Timers fire in deadline order, ties in the order they were set. A timer
 * set late in a turn that has taken a while starts at that turn's reading,
 * so it may fire early by as much as the turn has taken so far (a slice is
 * 15 ms; a turn over 100 ms is a stall the daemon reports); every
 * timer the daemon sets is a timeout or a period of seconds, where that does
 * not matter. A timer set while due timers fire waits for the next round, so
 * a callback that sets a timer of 0 ms does not keep the queue firing.
 */
import type { Timer } from './clock.js';

/** What the queue needs of the runtime (real timers, or a test's). */
export interface TimerQueueHost {
  /** The time now, read afresh (a clock read); monotonic ms. */
  readonly read: () => number;
  /** The time of the current turn: read once per turn, so possibly a little old. */
  readonly recent: () => number;
  /** Starts a one-shot timer of the runtime. */
  readonly arm: (fn: () => void, delayMs: number) => unknown;
  /** Stops a timer started by arm. */
  readonly disarm: (handle: unknown) => void;
}

/** Node's longest timeout; longer delays (and NaN) become 1 ms, as Node's setTimeout makes them. */
const TIMEOUT_MAX = 2 ** 31 - 1;
/** Due timers fired between two fresh clock reads while a round fires: bounds how old the reading gets. */
const FIRE_STRIDE = 8;

class QueuedTimer implements Timer {
  /** Position in the queue's heap; -1 once fired or cancelled. */
  index = -1;
  constructor(
    readonly queue: TimerQueue,
    public at: number,
    public seq: number,
    public fn: () => void,
  ) {}

  cancel(): void {
    this.queue.remove(this);
  }
}

function before(a: QueuedTimer, b: QueuedTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

export class TimerQueue {
  /** A binary min-heap by (deadline, sequence). */
  private readonly heap: QueuedTimer[] = [];
  private seq = 0;
  private handle: unknown;
  /** When the runtime timer is armed to wake (Infinity: not armed). */
  private armedAt = Number.POSITIVE_INFINITY;
  private firing = false;

  /** See setSlack (0: every timer fires as soon as it is due). */
  private slackMs = 0;

  constructor(private readonly host: TimerQueueHost) {}

  /**
   * Lets timers fire up to `ms` late, on a grid of `ms` (monotonic time):
   * the timers due within one step of the grid fire in one wake instead of
   * one each. Linux's timer slack, for a thread whose every wake costs
   * system calls (the checks thread: at 1,000 checks a second, each due at
   * its own millisecond, the loop woke for nearly every one).
   */
  setSlack(ms: number): void {
    this.slackMs = ms > 0 ? ms : 0;
    const next = this.heap[0];
    if (next !== undefined && !this.firing) this.armFor(next.at, this.host.recent());
  }

  /** Timers set and not yet fired or cancelled. */
  get size(): number {
    return this.heap.length;
  }

  /** A timer; `reuse`, one of this queue's that fired or was cancelled, is set again instead of a new one made (see Clock.setTimeout). */
  add(fn: () => void, delayMs: number, reuse?: Timer): Timer {
    const delay = delayMs <= 0 ? 0 : delayMs <= TIMEOUT_MAX ? delayMs : 1;
    const at = this.host.recent() + (Number.isNaN(delayMs) ? 1 : delay);
    let timer: QueuedTimer;
    if (reuse instanceof QueuedTimer && reuse.queue === this && reuse.index < 0) {
      timer = reuse;
      timer.at = at;
      timer.seq = this.seq++;
      timer.fn = fn;
    } else {
      timer = new QueuedTimer(this, at, this.seq++, fn);
    }
    timer.index = this.heap.length;
    this.heap.push(timer);
    this.up(timer.index);
    if (!this.firing && this.wakeAt(timer.at) < this.armedAt) this.armFor(timer.at, this.host.recent());
    return timer;
  }

  remove(timer: QueuedTimer): void {
    const i = timer.index;
    if (i < 0) return;
    timer.index = -1;
    const last = this.heap.pop() as QueuedTimer;
    if (i < this.heap.length) {
      this.place(last, i);
      this.up(i);
      this.down(last.index);
    }
    // An empty queue lets the process exit; otherwise an early wake finds nothing due and re-arms.
    if (this.heap.length === 0 && !this.firing) this.disarm();
  }

  private readonly onFire = (): void => {
    this.handle = undefined;
    // With slack, the timers due by the grid step it was armed for fire now, though the runtime's timer may wake a little early.
    const floor = this.slackMs > 0 ? this.armedAt : Number.NEGATIVE_INFINITY;
    this.armedAt = Number.POSITIVE_INFINITY;
    let now = Math.max(this.host.read(), floor);
    const firstLater = this.seq;
    this.firing = true;
    let sinceRead = 0;
    // The reading is at most FIRE_STRIDE timers old; arming for the next one may wake a little early, which costs a re-arm.
    try {
      for (;;) {
        const top = this.heap[0];
        if (top === undefined || top.at > now || top.seq >= firstLater) break;
        this.remove(top);
        top.fn();
        if (++sinceRead === FIRE_STRIDE) {
          sinceRead = 0;
          now = Math.max(this.host.read(), floor);
        }
      }
    } finally {
      this.firing = false;
      const next = this.heap[0];
      if (next !== undefined) this.armFor(next.at, now);
    }
  };

  /** When the runtime's timer should wake for a deadline: the deadline, or with slack the grid step at or after it. */
  private wakeAt(at: number): number {
    const slack = this.slackMs;
    return slack > 0 ? Math.ceil(at / slack) * slack : at;
  }

  private armFor(at: number, now: number): void {
    this.disarm();
    const wake = this.wakeAt(at);
    this.armedAt = wake;
    this.handle = this.host.arm(this.onFire, Math.max(1, Math.ceil(wake - now)));
  }

  private disarm(): void {
    if (this.handle !== undefined) this.host.disarm(this.handle);
    this.handle = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
  }

  private up(i: number): void {
    const heap = this.heap;
    const timer = heap[i] as QueuedTimer;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p] as QueuedTimer;
      if (!before(timer, parent)) break;
      this.place(parent, i);
      i = p;
    }
    this.place(timer, i);
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const timer = heap[i] as QueuedTimer;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(heap[r] as QueuedTimer, heap[l] as QueuedTimer) ? r : l;
      const child = heap[c] as QueuedTimer;
      if (!before(child, timer)) break;
      this.place(child, i);
      i = c;
    }
    this.place(timer, i);
  }

  private place(timer: QueuedTimer, i: number): void {
    this.heap[i] = timer;
    timer.index = i;
  }
}
