export type * from './types.js';
export { Coordinator, resolveRetryDelayMs, textStatus, RESOLVE_REFRESH_MS, RESOLVE_RETRY_FIRST_MS, RESOLVE_RETRY_MAX_MS } from './coordinator.js';
export { canDepool, decidePool, upServerCount, type PoolDecision, type PoolTrigger, type ServerFacts } from './decide-pool.js';
export { createMonitorFactory, type MonitorFactoryDeps } from './monitor-factory.js';
export { describePoolChange, diffPools, type PoolDiff } from './pool-diff.js';
export { resolveHost } from './resolver.js';
