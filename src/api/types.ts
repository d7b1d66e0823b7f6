/**
 * What the API serves: one plain snapshot of the whole daemon, taken on each
 * request (DESIGN: the API only reads snapshots).
 */
import type { PeerStatus } from '../bgp/speaker.js';
import type { ServiceSnapshot } from '../coordinator/types.js';

/**
 * The IPVS manager's counters. Structurally identical to the ipvs branch's
 * `IpvsManagerStats` (declared here so that the API does not depend on it).
 */
export interface IpvsStatsValue {
  readonly reconciles: number;
  readonly failedReconciles: number;
  /** Write requests sent (or, in dry run, that would have been). */
  readonly requests: number;
  readonly failedRequests: number;
  /** Full dumps of the managed services. */
  readonly resyncs: number;
  /** Differences found between the kernel and our model. */
  readonly drift: number;
  /** Duration of the last reconcile, in ms. */
  readonly lastReconcileMs: number | undefined;
  readonly totalReconcileMs: number;
  readonly lastError: string | undefined;
}

/** One BGP peer: the speaker's status() value, plus the local address it uses when configured. */
export type BgpPeerValue = PeerStatus & { readonly localAddress?: string | undefined };

export interface BgpStatusValue {
  readonly enabled: boolean;
  /** undefined when BGP is off. */
  readonly localAsn: number | undefined;
  readonly peers: readonly BgpPeerValue[];
}

export interface DaemonSnapshot {
  readonly version: string;
  readonly startedAtWallMs: number;
  readonly dryRun: boolean;
  /** In configuration order. */
  readonly services: readonly ServiceSnapshot[];
  readonly bgp: BgpStatusValue;
  /** undefined when no IPVS manager runs (or it has no statistics yet). */
  readonly ipvs: IpvsStatsValue | undefined;
}
