/**
 * What every pool source shares: a reporter that turns results into events
 * and a loop that runs one step at a time. Subclasses say what is wrong with
 * their URL (if anything) and do the reading in their loop's step.
 */
import type { PollLoop } from './poll-loop.js';
import type { SourceReporter } from './source-reporter.js';
import type { PoolEvent, PoolSource, PoolSourceStatus } from './types.js';

export abstract class LoopingPoolSource implements PoolSource {
  abstract readonly url: string;
  protected abstract readonly reporter: SourceReporter;
  protected abstract readonly loop: PollLoop;

  /** Why this source's URL cannot be used, or undefined when it can. */
  protected abstract urlProblem(): string | undefined;

  start(listener: (event: PoolEvent) => void): void {
    this.reporter.listen(listener);
    const problem = this.urlProblem();
    if (problem !== undefined) {
      this.reporter.fail(problem);
      return;
    }
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  status(): PoolSourceStatus {
    return this.reporter.status();
  }
}
