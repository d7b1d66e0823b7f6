/** Snapshot builders for the API tests. */
import type { MonitorSnapshot, ServerSnapshot, ServiceSnapshot } from '../../src/coordinator/types.js';
import type { BgpPeerValue, DaemonSnapshot } from '../../src/api/types.js';

export function monitor(over: Partial<MonitorSnapshot> = {}): MonitorSnapshot {
  return { kind: 'ProxyFetch', up: true, reason: 'Fetch successful', sinceWallMs: 1_700_000_000_000, ...over };
}

export function server(host: string, over: Partial<ServerSnapshot> = {}): ServerSnapshot {
  return {
    host,
    address: '192.0.2.10',
    weight: 10,
    enabled: true,
    up: true,
    pooled: true,
    pooledDown: false,
    monitors: [monitor()],
    resolveError: undefined,
    ...over,
  };
}

export function service(name: string, servers: readonly ServerSnapshot[], over: Partial<ServiceSnapshot> = {}): ServiceSnapshot {
  return {
    name,
    protocol: 'tcp',
    ip: '192.0.2.1',
    port: 80,
    fwmark: undefined,
    forwardMethod: 'dr',
    scheduler: 'wrr',
    depoolThreshold: 0.5,
    servers,
    canDepool: true,
    couldNotDepoolTotal: 0,
    poolError: undefined,
    awaitingPool: false,
    initializing: false,
    ...over,
  };
}

export function peer(address: string, over: Partial<BgpPeerValue> = {}): BgpPeerValue {
  return {
    peer: address,
    state: 'Established',
    establishedAtWallMs: 1_700_000_100_000,
    uptimeMs: 5000,
    lastError: undefined,
    lastNotificationIn: undefined,
    lastNotificationOut: undefined,
    lastUpdateError: undefined,
    holdTimeSec: 90,
    fourOctetAs: true,
    gracefulRestart: false,
    side: 'active',
    queuedUpdateBytes: 0,
    prefixesSent: 2,
    messagesIn: 3,
    messagesOut: 4,
    updatesOut: 1,
    updatesTreatedAsWithdraw: 0,
    attributesDiscarded: 0,
    routeRefreshesIgnored: 0,
    ...over,
  };
}

/** The drain fields of BgpStatusValue for a director that is not drained. */
export const NOT_DRAINED = { drained: false, drainedSinceWallMs: undefined, drainMed: 4294967295 } as const;

export function daemon(services: readonly ServiceSnapshot[], over: Partial<DaemonSnapshot> = {}): DaemonSnapshot {
  return {
    version: '2.0.0',
    startedAtWallMs: 1_700_000_000_000,
    dryRun: false,
    services,
    bgp: { enabled: false, localAsn: undefined, peers: [], ...NOT_DRAINED },
    ipvs: undefined,
    ...over,
  };
}
