export type { CheckOutcome, CheckResult, HealthState, Monitor, MonitorDeps, MonitorReport, MonitorTarget, UrlResult } from './types.js';
export { createMonitor, MONITOR_FACTORIES, prepareMonitor, type MonitorMaker } from './registry.js';
export { createRunLimiter, type RunLimiter } from './run-limiter.js';
export { createFpingPinger, type Pinger, type PingerOptions, type PingSample } from './pinger.js';
