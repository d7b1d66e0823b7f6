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
import type { LineLogger } from '../runtime/logger.js';
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

/** Where a Health sends its reports: a monitor's deps (called as a method), with the logger that logs them, if any. */
type HealthSink = Pick<MonitorDeps, 'clock' | 'onReport'> & { readonly logger?: LineLogger | undefined };

/**
 * The Health of one monitor. A class rather than closures: there is one per
 * server (10,000 of them), and its state lives in fields instead of a
 * context and three closures; a result allocates nothing but its step (and
 * the report, on a change). It keeps its monitor's deps, not their clock,
 * logger and report callback apart (the checks thread makes a logger when
 * asked, and has onReport on the prototype).
 */
class HealthTracker implements Health {
  private current: HealthState | undefined = undefined;
  private streak = 0;
  /** Up was presumed and no result has come yet. */
  private presumed = false;

  constructor(
    private readonly kind: MonitorKind,
    private readonly options: HealthOptions,
    /** Its logger, when it has one, logs each report (up at info, down at warn) before it is sent. */
    private readonly sink: HealthSink,
  ) {}

  record(ok: boolean, reason: string): MonitorReport | undefined {
    const firstCheck = this.current === undefined || this.presumed;
    // A presumed server's first good result is reported (it confirms what
    // was assumed); a bad one counts towards `fall` like any other.
    const confirms = this.presumed && ok;
    this.presumed = false;
    const next = stepHealth({ state: this.current, streak: this.streak }, ok, this.options);
    this.current = next.state;
    this.streak = next.streak;
    if (!next.changed && !confirms) return undefined;
    const sink = this.sink;
    const report: MonitorReport = { kind: this.kind, up: next.state === 'up', reason, firstCheck, atMs: sink.clock.now() };
    const logger = sink.logger;
    if (logger) {
      if (report.up) logger.info(`up: ${report.reason}`);
      else logger.warn(`down: ${report.reason}`);
    }
    sink.onReport(report);
    return report;
  }

  presumeUp(): void {
    if (this.current !== undefined) return;
    this.current = 'up';
    this.streak = 0;
    this.presumed = true;
  }

  state(): HealthState | undefined {
    return this.current;
  }
}

export function createHealth(
  kind: MonitorKind,
  options: HealthOptions,
  clock: Clock,
  onReport: (report: MonitorReport) => void,
): Health {
  return new HealthTracker(kind, options, { clock, onReport });
}

/** createHealth that also logs each report (up at info, down at warn) and forwards it. */
export function createReportingHealth(kind: MonitorKind, options: HealthOptions, deps: Pick<MonitorDeps, 'clock' | 'logger' | 'onReport'>): Health {
  return new HealthTracker(kind, options, deps);
}
