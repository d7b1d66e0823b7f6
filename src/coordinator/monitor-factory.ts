/**
 * A CreateMonitorFn that runs the monitors on this thread: the monitors
 * registry, with each monitor logging under its server and kind. The daemon
 * runs them on the checks thread instead (monitors/check-thread.ts), whose
 * reports, results and log lines are the same; this one serves where one
 * thread is wanted (the coordinator's tests with real monitors).
 */
import type { MonitorConfig, MonitorKind } from '../config/types.js';
import type { ArpWatchLike } from '../monitors/types.js';
import { prepareMonitor, type CheckResult, type MonitorDeps, type MonitorMaker, type MonitorReport, type MonitorTarget, type Pinger, type RunLimiter } from '../monitors/index.js';
import type { Clock } from '../runtime/clock.js';
import { bindLogger, type LineLogger, type Logger } from '../runtime/logger.js';
import type { CheckSummary, CreateMonitorFn } from './types.js';

export interface MonitorFactoryDeps {
  readonly clock: Clock;
  /** Bound to the service; each monitor gets a child bound to its server and kind. */
  readonly logger: Logger;
  readonly runLimiter?: RunLimiter;
  readonly pinger?: Pinger;
  /** Shared admission of check starts (monitors/admission.ts). */
  readonly admit?: () => Promise<void>;
  /** Every check result, for the per-check metrics. */
  readonly onResult?: (target: MonitorTarget, result: CheckResult) => void;
  /** Who answers ARP for a VIP, for data-path checks of IPv4 direct routing. */
  readonly arpWatch?: ArpWatchLike;
}

export function createMonitorFactory(deps: MonitorFactoryDeps): CreateMonitorFn {
  // A service's servers share its monitor configs (the same objects): each
  // is prepared once for all of them, and forgotten with the config.
  const makers = new WeakMap<MonitorConfig, MonitorMaker>();
  return (config, target, onReport, onCheck) => {
    let make = makers.get(config);
    if (make === undefined) {
      make = prepareMonitor(config);
      makers.set(config, make);
    }
    return make(target, new ServerMonitorDeps(deps, config.kind, target, onReport, onCheck));
  };
}

/**
 * The MonitorDeps of one server's monitor, one per server: a class, so that
 * passing each result on with its target is a method rather than a closure
 * per server, and its logger binds the server and kind to each line rather
 * than being a pino child (same lines, a fraction of the memory).
 */
class ServerMonitorDeps implements MonitorDeps {
  readonly clock: Clock;
  readonly logger: LineLogger;
  readonly runLimiter: RunLimiter | undefined;
  readonly pinger: Pinger | undefined;
  readonly admit: (() => Promise<void>) | undefined;
  readonly arpWatch: ArpWatchLike | undefined;
  /** Absent without a sink, as the monitors expect of an optional hook. */
  readonly onResult: ((result: CheckResult) => void) | undefined;

  constructor(
    private readonly factory: MonitorFactoryDeps,
    kind: MonitorKind,
    private readonly target: MonitorTarget,
    readonly onReport: (report: MonitorReport) => void,
    /** The coordinator's hook for every check (the status page's last check). */
    private readonly onCheck?: (result: CheckSummary) => void,
  ) {
    this.clock = factory.clock;
    this.logger = bindLogger(factory.logger, { server: target.host, monitor: kind });
    this.runLimiter = factory.runLimiter;
    this.pinger = factory.pinger;
    this.admit = factory.admit;
    this.arpWatch = factory.arpWatch;
    this.onResult = factory.onResult || onCheck ? this.passResult : undefined;
  }

  /** onResult when the factory has a sink: the prototype's method, called on this object. */
  private passResult(this: ServerMonitorDeps, result: CheckResult): void {
    this.factory.onResult?.(this.target, result);
    this.onCheck?.(result);
  }
}
