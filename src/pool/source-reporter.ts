/**
 * What every pool source does with what it reads: deliver a pool only when it
 * differs from the last one delivered (or its problems changed), report an
 * error once per change of error while keeping the last good pool, announce
 * recovery, and log each of these for the operator.
 */
import type { Logger } from '../runtime/logger.js';
import { formatProblem } from '../runtime/errors.js';
import type { PoolParseResult } from './pool-builder.js';
import { samePool, sameProblems } from './pool-format.js';
import type { Pool, PoolEvent, PoolSourceStatus } from './types.js';

/** Problems logged per delivery; the event still carries all of them. */
export const MAX_LOGGED_PROBLEMS = 50;

export interface SourceReporter {
  listen(listener: (event: PoolEvent) => void): void;
  /** A document was read and parsed: clears any error, delivers the pool if it changed. */
  good(result: PoolParseResult): void;
  /** The source answered that nothing changed since the last good read (HTTP 304). */
  unchanged(): void;
  /** The source cannot be read or parsed; the last good pool stays. */
  fail(message: string): void;
  status(): PoolSourceStatus;
}

/** `+a -b ~c` for the log line of a pool change. */
function describeChange(before: Pool | undefined, after: Pool): string {
  if (before === undefined) return `${after.size} servers`;
  const added = [...after.keys()].filter((h) => !before.has(h));
  const removed = [...before.keys()].filter((h) => !after.has(h));
  const changed = [...after.values()].filter((s) => {
    const old = before.get(s.host);
    return old !== undefined && (old.weight !== s.weight || old.enabled !== s.enabled);
  });
  const parts = [`${after.size} servers`];
  if (added.length > 0) parts.push(`added ${added.join(', ')}`);
  if (removed.length > 0) parts.push(`removed ${removed.join(', ')}`);
  if (changed.length > 0) parts.push(`changed ${changed.map((s) => s.host).join(', ')}`);
  return parts.join('; ');
}

export function createSourceReporter(url: string, log: Logger): SourceReporter {
  let listener: ((event: PoolEvent) => void) | undefined;
  let delivered: PoolParseResult | undefined;
  let error: string | undefined;

  const emit = (event: PoolEvent): void => {
    try {
      listener?.(event);
    } catch (e) {
      // A listener's bug must not stop the source.
      log.error({ err: e }, `pool listener failed on a ${event.type} event`);
    }
  };

  const recover = (): void => {
    if (error === undefined) return;
    error = undefined;
    log.info(`${url} reads fine again`);
    emit({ type: 'recovered' });
  };

  return {
    listen(l) {
      listener = l;
    },
    good(result) {
      recover();
      if (delivered !== undefined && samePool(delivered.pool, result.pool) && sameProblems(delivered.problems, result.problems)) return;
      const before = delivered?.pool;
      delivered = result;
      for (const problem of result.problems.slice(0, MAX_LOGGED_PROBLEMS)) log.warn(formatProblem(problem));
      if (result.problems.length > MAX_LOGGED_PROBLEMS) {
        log.warn(`... and ${result.problems.length - MAX_LOGGED_PROBLEMS} more problems in ${url}`);
      }
      log.debug(`pool from ${url}: ${describeChange(before, result.pool)}`);
      emit({ type: 'pool', pool: result.pool, problems: result.problems });
    },
    unchanged: recover,
    fail(message) {
      if (message === error) return;
      error = message;
      if (delivered === undefined) log.error(`${message} (no pool read yet)`);
      else log.warn(`${message} (keeping the last good pool of ${delivered.pool.size} servers)`);
      emit({ type: 'error', message });
    },
    status: () => ({ url, pool: delivered?.pool, error }),
  };
}
