/**
 * A loop that runs one asynchronous step at a time on the injected clock:
 * the step returns the delay before the next one, so steps never overlap,
 * and stop() waits for the running step to finish.
 */
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';

export class PollLoop {
  private timer: Timer | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private started = false;
  private readonly abort = new AbortController();
  /** When the pending timer fires (clock ms). */
  private dueAtMs = 0;
  /** wake() was called while a step ran. */
  private woken = false;

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    /** One step; resolves to the delay in ms before the next. `signal` aborts on stop(). */
    private readonly step: (signal: AbortSignal) => Promise<number>,
    /** The delay after a step that threw (a bug: steps report their own errors). */
    private readonly fallbackDelayMs: number,
    /**
     * After wake(), the next step comes within this (0 when nothing waits).
     * A shorter wait that a step asked for (a change settling) is kept.
     */
    private readonly wakeDelayMs = 0,
  ) {}

  /**
   * Something changed (a file notification): the next step runs now, or
   * within wakeDelayMs after the step running now, unless it is due sooner anyway.
   */
  wake(): void {
    if (this.stopped || !this.started) return;
    if (this.running) {
      this.woken = true;
      return;
    }
    if (this.timer && this.dueAtMs - this.clock.now() > this.wakeDelayMs) {
      this.timer.cancel();
      this.timer = undefined;
      this.schedule(0);
    }
  }

  /** Runs the first step now (on the next turn), then as each step asks. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    // Only a running step holds the signal: aborting it otherwise made an Error (its stack) and
    // an event for nobody, per service (1,000 of them at a daemon's stop).
    if (this.running) this.abort.abort(new Error('stopped'));
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.dueAtMs = this.clock.now() + delayMs;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.running = this.run();
    }, delayMs);
  }

  private async run(): Promise<void> {
    let delayMs = this.fallbackDelayMs;
    try {
      delayMs = await this.step(this.abort.signal);
    } catch (e) {
      if (!this.stopped) this.log.error({ err: e }, 'pool source step failed');
    }
    this.running = undefined;
    if (this.woken) delayMs = Math.min(delayMs, this.wakeDelayMs);
    this.woken = false;
    this.schedule(delayMs);
  }
}
