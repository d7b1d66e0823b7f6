/** GlobalConfig / ServiceConfig values for tests, with PyBal's defaults. */
import type { GlobalConfig, ServiceConfig } from '../../src/config/types.js';

export function globalConfig(overrides: Partial<GlobalConfig> = {}): GlobalConfig {
  return {
    bgp: true,
    bgpLocalAsn: 64600,
    bgpPeerAddresses: [],
    bgpAsPath: [64600],
    bgpMed: 0,
    bgpNexthopIpv4: '192.0.2.11',
    bgpNexthopIpv6: '2001:db8:ffff::11',
    bgpLocalIps: [''],
    bgpLocalPort: 179,
    bgpPeerAsn: undefined,
    bgpHoldTimeSec: 180,
    bgpRouterId: undefined,
    bgpCommunities: [],
    bgpConnectRetryMs: 5000,
    bgpBfd: false,
    bgpBfdIntervalMs: 300,
    bgpBfdMultiplier: 3,
    instrumentation: false,
    instrumentationPort: 9090,
    instrumentationIps: ['127.0.0.1', '::1'],
    runcommandMaxConcurrent: 32,
    ipvsResyncIntervalMs: 60_000,
    dryRun: false,
    advertisedInstrumentationIps: [],
    ipvsSync: undefined,
    ...overrides,
  };
}

export function serviceConfig(name: string, ip: string, overrides: Partial<ServiceConfig> = {}): ServiceConfig {
  return {
    name,
    source: { file: 'pybal.conf', line: 1 },
    protocol: 'tcp',
    ip,
    family: ip.includes(':') ? 6 : 4,
    port: 80,
    scheduler: 'wrr',
    schedulerFlags: [],
    ops: false,
    poolUrl: 'file:///etc/pybal/pools/x',
    monitors: [],
    depoolThreshold: 0.5,
    bgp: true,
    bgpMed: undefined,
    bgpCommunities: [],
    bgpWithdrawWhenDown: false,
    forwardMethod: 'dr',
    tunnel: { type: 'ipip', port: 0, checksum: 'none' },
    fwmark: undefined,
    realPort: undefined,
    persistenceTimeoutSec: 0,
    persistenceNetmask: undefined,
    persistenceEngine: undefined,
    upperThreshold: 0,
    lowerThreshold: 0,
    ...overrides,
  };
}
