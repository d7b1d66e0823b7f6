/**
 * What every pool source does with what it reads: apply the safety rules of
 * pool-guard (refuse a read that would empty the pool; keep the servers a
 * document with skipped entries lacks), deliver a pool only when it differs
 * from the last one delivered (or its problems changed), report an error
 * once per change of error while keeping the last good pool, announce
 * recovery, and log each of these for the operator.
 *
 * Event order: `pool` clears the listener's error, so a held pool is sent
 * first and its error right after it, even when that error is unchanged.
 */
import type { Logger } from '../runtime/logger.js';
import { formatProblem } from '../runtime/errors.js';
import type { PoolParseResult } from './pool-builder.js';
import { decidePoolUpdate } from './pool-guard.js';
import { samePool, sameProblems } from './pool-format.js';
import type { Pool, PoolDelta, PoolEvent, PoolSourceStatus } from './types.js';

/** Problems logged per delivery; the event still carries all of them. */
export const MAX_LOGGED_PROBLEMS = 50;

export interface SourceReporter {
  listen(listener: (event: PoolEvent) => void): void;
  /**
   * A document was read and parsed: delivers the pool if it changed and
   * clears any error, unless the safety rules refuse it or hold servers back.
   */
  good(result: PoolParseResult): void;
  /** The source answered that the last document read still stands (HTTP 304): it is judged again. */
  unchanged(): void;
  /** The source cannot be read or parsed; the last good pool stays. */
  fail(message: string): void;
  /** Calls `fn` once the source has its first outcome (a document judged, or an error); at once if it has one. */
  afterFirstOutcome(fn: () => void): void;
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

/** What a source can be told of the source it replaces. */
export interface ReporterSeed {
  /**
   * The last good pool of the source this one replaces (a reload changed the
   * service's pool URL), which the listener already has: this source's reads
   * are judged against it as if it had delivered it, so its first read can
   * neither empty the service nor, with skipped lines, drop servers.
   */
  readonly lastGoodPool?: Pool;
}

/** The pool of a delta has what its base has at the delta's hosts (the other hosts are the base's by definition). */
function sameAt(delta: PoolDelta, pool: Pool): boolean {
  for (const host of delta.hosts) {
    const a = delta.base.get(host);
    const b = pool.get(host);
    if (a === undefined || b === undefined || a.weight !== b.weight || a.enabled !== b.enabled) return false;
  }
  return true;
}

export function createSourceReporter(url: string, log: Logger, seed: ReporterSeed = {}): SourceReporter {
  let listener: ((event: PoolEvent) => void) | undefined;
  /** The last pool delivered (the last good pool) and the problems it was delivered with. */
  let delivered: { readonly pool: Pool; readonly problems: PoolParseResult['problems'] } | undefined =
    seed.lastGoodPool === undefined ? undefined : { pool: seed.lastGoodPool, problems: [] };
  /** The last document given to good(), which an HTTP 304 stands for. */
  let lastRead: PoolParseResult | undefined;
  let error: string | undefined;
  /** Whether a first outcome came, and who waits for it (afterFirstOutcome). */
  let outcome = false;
  let waitingForOutcome: (() => void)[] = [];
  const settled = (): void => {
    if (outcome) return;
    outcome = true;
    const waiting = waitingForOutcome;
    waitingForOutcome = [];
    for (const fn of waiting) fn();
  };

  const emit = (event: PoolEvent): void => {
    try {
      listener?.(event);
    } catch (e) {
      // A listener's bug must not stop the source.
      log.error({ err: e }, `pool listener failed on a ${event.type} event`);
    }
  };

  const logProblems = (problems: PoolParseResult['problems']): void => {
    for (const problem of problems.slice(0, MAX_LOGGED_PROBLEMS)) log.warn(formatProblem(problem));
    if (problems.length > MAX_LOGGED_PROBLEMS) {
      log.warn(`... and ${problems.length - MAX_LOGGED_PROBLEMS} more problems in ${url}`);
    }
  };

  const recover = (): void => {
    if (error === undefined) return;
    error = undefined;
    log.info(`${url} reads fine again`);
    emit({ type: 'recovered' });
  };

  /**
   * Sends the pool unless it is the one last delivered; true when sent. A
   * delta from the pool last delivered is compared (and passed on) by its
   * changed hosts alone: a weight edited in a pool of 40,000 costs no pass
   * over the other 39,999.
   */
  const deliver = (pool: Pool, problems: PoolParseResult['problems'], delta?: PoolDelta): boolean => {
    const changedFrom = delta !== undefined && delta.base === delivered?.pool ? delta : undefined;
    const same = delivered !== undefined && (changedFrom !== undefined ? sameAt(changedFrom, pool) : samePool(delivered.pool, pool));
    if (same && sameProblems(delivered!.problems, problems)) return false;
    const before = delivered?.pool;
    delivered = { pool, problems };
    logProblems(problems);
    // Three passes over the pool: only when someone reads them.
    if (log.isLevelEnabled('debug')) log.debug(`pool from ${url}: ${describeChange(before, pool)}`);
    emit(changedFrom === undefined ? { type: 'pool', pool, problems } : { type: 'pool', pool, problems, changedFrom });
    return true;
  };

  /** Reports an error once per change of message, or again when a pool event has just cleared it. */
  const report = (message: string, logged: string, again: boolean): void => {
    if (message === error && !again) return;
    error = message;
    if (delivered === undefined) log.error(`${logged} (no pool read yet)`);
    else log.warn(logged);
    emit({ type: 'error', message });
  };

  const fail = (message: string): void =>
    report(message, delivered === undefined ? message : `${message} (keeping the last good pool of ${delivered.pool.size} servers)`, false);

  const judge = (result: PoolParseResult): void => {
    const verdict = decidePoolUpdate(delivered?.pool, result, url);
    switch (verdict.kind) {
      case 'apply':
        recover();
        deliver(verdict.pool, result.problems, verdict.pool === result.pool ? result.changedFrom : undefined);
        return;
      case 'hold': {
        const sent = deliver(verdict.pool, result.problems);
        report(verdict.message, verdict.message, sent);
        return;
      }
      case 'refuse':
        // Logged with its lines once per change of error; the pool is not touched.
        if (verdict.message !== error) logProblems(result.problems);
        fail(verdict.message);
        return;
    }
  };

  return {
    listen(l) {
      listener = l;
    },
    good(result) {
      lastRead = result;
      judge(result);
      settled();
    },
    unchanged() {
      if (lastRead === undefined) recover();
      else judge(lastRead);
      settled();
    },
    fail(message) {
      fail(message);
      settled();
    },
    afterFirstOutcome(fn) {
      if (outcome) fn();
      else waitingForOutcome.push(fn);
    },
    status: () => ({ url, pool: delivered?.pool, error }),
  };
}
