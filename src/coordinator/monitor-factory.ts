/**
 * The production CreateMonitorFn: the monitors registry, with each monitor
 * logging under its server and kind.
 */
import type { MonitorConfig } from '../config/types.js';
import { prepareMonitor, type CheckResult, type MonitorMaker, type MonitorTarget, type Pinger, type RunLimiter } from '../monitors/index.js';
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { CreateMonitorFn } from './types.js';

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
}

export function createMonitorFactory(deps: MonitorFactoryDeps): CreateMonitorFn {
  // A service's servers share its monitor configs (the same objects): each
  // is prepared once for all of them, and forgotten with the config.
  const makers = new WeakMap<MonitorConfig, MonitorMaker>();
  return (config, target, onReport) => {
    const onResult = deps.onResult;
    let make = makers.get(config);
    if (make === undefined) {
      make = prepareMonitor(config);
      makers.set(config, make);
    }
    return make(target, {
      clock: deps.clock,
      logger: deps.logger.child({ server: target.host, monitor: config.kind }),
      onReport,
      ...(onResult ? { onResult: (result: CheckResult) => onResult(target, result) } : {}),
      ...(deps.runLimiter ? { runLimiter: deps.runLimiter } : {}),
      ...(deps.pinger ? { pinger: deps.pinger } : {}),
      ...(deps.admit ? { admit: deps.admit } : {}),
    });
  };
}
