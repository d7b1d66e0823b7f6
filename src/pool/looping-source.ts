/**
 * What every pool source shares: a reporter that turns results into events
 * and a loop that runs one step at a time. Subclasses say what is wrong with
 * their URL (if anything) and do the reading in their loop's step.
 */
import type { Clock } from '../runtime/clock.js';
import { holdForFirstRead } from '../runtime/sliced.js';
import type { PollLoop } from './poll-loop.js';
import type { SourceReporter } from './source-reporter.js';
import type { PoolEvent, PoolSource, PoolSourceStatus } from './types.js';

/**
 * The longest a pool's first read counts as waiting: a read that never ends
 * (a hung network filesystem, a step that failed on a bug) must not keep
 * every check of the daemon at one start a turn.
 */
export const FIRST_READ_HOLD_MAX_MS = 30_000;

export abstract class LoopingPoolSource implements PoolSource {
  abstract readonly url: string;
  protected abstract readonly reporter: SourceReporter;
  protected abstract readonly loop: PollLoop;
  protected abstract readonly clock: Clock;

  /**
   * Until its first read has an outcome (a pool, or an error: a file that
   * cannot be read, a request past its deadline) the service cannot be
   * programmed, so from its start the source counts as a pool waiting for
   * its first read (holdForFirstRead): check admission goes slower meanwhile,
   * and at a cold start the checks thread waits for it. The count ends at
   * that outcome, at stop, or after FIRST_READ_HOLD_MAX_MS, whichever comes
   * first; a file still settling (a look, not a read) is no outcome.
   */
  private releaseFirstRead: (() => void) | undefined;

  /** Why this source's URL cannot be used, or undefined when it can. */
  protected abstract urlProblem(): string | undefined;

  start(listener: (event: PoolEvent) => void): void {
    this.reporter.listen(listener);
    const problem = this.urlProblem();
    if (problem !== undefined) {
      this.reporter.fail(problem);
      return;
    }
    const release = holdForFirstRead();
    const cap = this.clock.setTimeout(release, FIRST_READ_HOLD_MAX_MS);
    this.releaseFirstRead = () => {
      cap.cancel();
      release();
    };
    this.reporter.afterFirstOutcome(this.releaseFirstRead);
    this.loop.start();
  }

  stop(): Promise<void> {
    this.releaseFirstRead?.();
    return this.loop.stop();
  }

  status(): PoolSourceStatus {
    return this.reporter.status();
  }
}
