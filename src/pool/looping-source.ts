/**
 * What every pool source shares: a reporter that turns results into events
 * and a loop that runs one step at a time. Subclasses say what is wrong with
 * their URL (if anything) and do the reading in their loop's step.
 */
import { holdForFirstRead } from '../runtime/sliced.js';
import type { PollLoop } from './poll-loop.js';
import type { SourceReporter } from './source-reporter.js';
import type { PoolEvent, PoolSource, PoolSourceStatus } from './types.js';

export abstract class LoopingPoolSource implements PoolSource {
  abstract readonly url: string;
  protected abstract readonly reporter: SourceReporter;
  protected abstract readonly loop: PollLoop;

  /**
   * Until its first read has an outcome (a pool, or an error: each request
   * has its deadline) the service cannot be programmed, so the source counts
   * as a pool waiting for its first read (holdForFirstRead): check admission
   * goes slower meanwhile, and at a cold start the checks thread waits for
   * it. The file source keeps that count its own way (FileSource).
   */
  protected readonly holdsFirstRead: boolean = true;
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
    if (this.holdsFirstRead) {
      this.releaseFirstRead = holdForFirstRead();
      this.reporter.afterFirstOutcome(this.releaseFirstRead);
    }
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
