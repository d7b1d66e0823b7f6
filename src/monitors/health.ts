/**
 * Rise/fall and report-on-change, shared by every monitor. The first result
 * sets the state at once and is reported (PyBal's firstCheck); after that the
 * state changes only after `rise` consecutive good or `fall` consecutive bad
 * results, and only changes are reported. A server presumed up (the kernel
 * had it pooled at start) starts from 'up' instead: its first failure counts
 * towards `fall` rather than depooling it at once.
 */
import type { MonitorKind } from '../config/types.js';
import type { Clock } from '../runtime/clock.js';
import type { HealthState, MonitorDeps, MonitorReport } from './types.js';

export interface HealthOptions {
  readonly rise: number;
  readonly fall: number;
}

export interface Health {
  /** Feeds one result; returns the report it caused, if any (already sent). */
  record(ok: boolean, reason: string): MonitorReport | undefined;
  /**
   * Before any result: starts from 'up' without reporting it, so that a
   * failure needs `fall` results, as for a server that was up all along.
   */
  presumeUp(): void;
  state(): HealthState | undefined;
}

/** Pure step: the next state and streak after one result. */
export function stepHealth(
  current: { state: HealthState | undefined; streak: number },
  ok: boolean,
  options: HealthOptions,
): { state: HealthState; streak: number; changed: boolean } {
  const wanted: HealthState = ok ? 'up' : 'down';
  if (current.state === undefined) return { state: wanted, streak: 0, changed: true };
  if (current.state === wanted) return { state: wanted, streak: 0, changed: false };
  const streak = current.streak + 1;
  const needed = Math.max(1, ok ? options.rise : options.fall);
  if (streak >= needed) return { state: wanted, streak: 0, changed: true };
  return { state: current.state, streak, changed: false };
}

export function createHealth(
  kind: MonitorKind,
  options: HealthOptions,
  clock: Clock,
  onReport: (report: MonitorReport) => void,
): Health {
  let current: { state: HealthState | undefined; streak: number } = { state: undefined, streak: 0 };
  /** Up was presumed and no result has come yet. */
  let presumed = false;
  return {
    record(ok, reason) {
      const firstCheck = current.state === undefined || presumed;
      // A presumed server's first good result is reported (it confirms what
      // was assumed); a bad one counts towards `fall` like any other.
      const confirms = presumed && ok;
      presumed = false;
      const next = stepHealth(current, ok, options);
      current = { state: next.state, streak: next.streak };
      if (!next.changed && !confirms) return undefined;
      const report: MonitorReport = { kind, up: next.state === 'up', reason, firstCheck, atMs: clock.now() };
      onReport(report);
      return report;
    },
    presumeUp() {
      if (current.state !== undefined) return;
      current = { state: 'up', streak: 0 };
      presumed = true;
    },
    state: () => current.state,
  };
}

/** createHealth that also logs each report (up at info, down at warn) and forwards it. */
export function createReportingHealth(kind: MonitorKind, options: HealthOptions, deps: Pick<MonitorDeps, 'clock' | 'logger' | 'onReport'>): Health {
  return createHealth(kind, options, deps.clock, (report) => {
    if (report.up) deps.logger.info(`up: ${report.reason}`);
    else deps.logger.warn(`down: ${report.reason}`);
    deps.onReport(report);
  });
}
