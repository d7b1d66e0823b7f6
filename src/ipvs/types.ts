/**
 * IPVS values as the rest of the daemon sees them: plain data, no bytes.
 * The same shapes describe what the kernel has and what we want it to have.
 */
import type { IpFamily } from './address.js';

export type IpvsProtocol = 'tcp' | 'udp' | 'sctp';

/** A virtual service is named by protocol+address+port, or by firewall mark. */
export type ServiceKey =
  | { readonly family: IpFamily; readonly protocol: IpvsProtocol; readonly address: string; readonly port: number }
  | { readonly family: IpFamily; readonly fwmark: number };

/** Forwarding methods (IP_VS_CONN_F_*): masq = NAT (-m), droute = DR (-g), tunnel (-i). */
export type FwdMethod = 'masq' | 'local' | 'tunnel' | 'droute' | 'bypass';
export type TunnelType = 'ipip' | 'gue' | 'gre';

/** Settable service attributes (everything but the key). */
export interface ServiceSettings {
  /** Scheduler module name without `ip_vs_` (wrr, mh...). */
  readonly scheduler: string;
  /** IP_VS_SVC_F_* bits, HASHED excluded (it is kernel state). */
  readonly flags: number;
  /** Persistence timeout in seconds (0 unless the PERSISTENT flag is set). */
  readonly timeoutSec: number;
  /** Persistence netmask as a prefix length (IPv4 0..32, IPv6 1..128). */
  readonly netmask: number;
  /** Persistence engine (e.g. sip), or '' for none. */
  readonly peName: string;
}

export interface ServiceSpec extends ServiceSettings {
  readonly key: ServiceKey;
}

export interface Stats {
  readonly conns: bigint;
  readonly inPkts: bigint;
  readonly outPkts: bigint;
  readonly inBytes: bigint;
  readonly outBytes: bigint;
  readonly cps: bigint;
  readonly inPps: bigint;
  readonly outPps: bigint;
  readonly inBps: bigint;
  readonly outBps: bigint;
}

/** A service as a dump returns it. */
export interface KernelService extends ServiceSpec {
  /** The raw flags including HASHED, as the kernel sent them. */
  readonly rawFlags: number;
  readonly stats: Stats | undefined;
  readonly stats64: Stats | undefined;
}

export interface DestKey {
  /** The destination's own family (may differ from the service's, since 3.18). */
  readonly family: IpFamily;
  readonly address: string;
  readonly port: number;
}

export interface DestSettings {
  readonly fwdMethod: FwdMethod;
  /** u32 in the kernel; 0 = drained (no new connections). */
  readonly weight: number;
  /** Upper connection threshold, 0 = none. */
  readonly upperThreshold: number;
  /** Lower connection threshold, 0 = none; must be <= upper. */
  readonly lowerThreshold: number;
  /** Tunnel encapsulation (tunnel method only). */
  readonly tunnelType: TunnelType;
  /** GUE destination port (required for GUE; 0 otherwise). */
  readonly tunnelPort: number;
  /** IP_VS_TUNNEL_ENCAP_FLAG_* bits: CSUM 1, REMCSUM 2. */
  readonly tunnelFlags: number;
}

export interface DestSpec extends DestKey, DestSettings {}

export interface KernelDest extends DestSpec {
  readonly activeConns: number;
  readonly inactConns: number;
  readonly persistConns: number;
  readonly stats: Stats | undefined;
  readonly stats64: Stats | undefined;
}

export interface IpvsInfo {
  readonly versionCode: number;
  /** "1.2.1" */
  readonly version: string;
  readonly connTabSize: number;
}

export interface IpvsTimeouts {
  readonly tcpSec: number;
  readonly tcpFinSec: number;
  readonly udpSec: number;
}

export type SyncState = 'master' | 'backup';

export interface SyncDaemon {
  readonly state: SyncState;
  readonly mcastIfn: string;
  readonly syncId: number;
  /** Maximum sync message length (0 = kernel default). */
  readonly syncMaxLen: number;
  /** Multicast group, IPv4 or IPv6, or '' for the default. */
  readonly mcastGroup: string;
  /** Multicast port (0 = default 8848). */
  readonly mcastPort: number;
  /** Multicast TTL (0 = default 1). */
  readonly mcastTtl: number;
}

/**
 * The kernel's counters of a service or destination as the API shows them:
 * plain numbers (a double holds any count a director reaches: 2^53 bytes is
 * 9 PB), the totals since the service or destination was created (or
 * zeroed), and the kernel's rate estimates (an average over the last few
 * seconds, updated every 2 s).
 */
export interface TrafficValue {
  readonly connections: number;
  readonly inPackets: number;
  readonly outPackets: number;
  readonly inBytes: number;
  readonly outBytes: number;
  readonly connectionsPerSec: number;
  readonly inPacketsPerSec: number;
  readonly outPacketsPerSec: number;
  readonly inBytesPerSec: number;
  readonly outBytesPerSec: number;
  /** Destinations only: connections in ESTABLISHED state now, and in any other state. */
  readonly activeConnections?: number;
  readonly inactiveConnections?: number;
  /** When pybal read these from the kernel (wall clock, ms). */
  readonly readAtWallMs: number;
}

/** Why a pooled server is flagged as getting no traffic while its siblings do (see quiet-servers.ts). */
export type QuietReason = 'no-connections' | 'no-replies' | 'not-established';

export interface QuietServerValue {
  readonly reason: QuietReason;
  /** One line for people: what was seen over the window. */
  readonly detail: string;
  /** Since when the rule holds (wall clock, ms). */
  readonly sinceWallMs: number;
}
