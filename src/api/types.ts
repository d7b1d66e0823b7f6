/**
 * What the API serves: one plain snapshot of the whole daemon, taken on each
 * request (DESIGN: the API only reads snapshots).
 */
import type { BfdPeerSummary } from '../bfd/bfd.js';
import type { DrainState } from '../bgp/announcements.js';
import type { PeerStatus } from '../bgp/speaker.js';
import type { ServiceSnapshot } from '../coordinator/types.js';
import type { IpvsManagerStats } from '../ipvs/manager.js';
import type { SloppyStatus } from '../ipvs/sloppy.js';

/** The IPVS manager's counters. */
export type IpvsStatsValue = IpvsManagerStats;

/** One BGP peer: the speaker's status() value, plus the local address it uses when configured. */
export type BgpPeerValue = PeerStatus & { readonly localAddress?: string | undefined; readonly bfd?: BfdPeerSummary | undefined };

/** BGP as the API shows it: the speaker, and whether the director is drained (`drained`, since when, the drain MED). */
export interface BgpStatusValue extends DrainState {
  readonly enabled: boolean;
  /**
   * The configuration asks for BGP sessions and this is no dry run: BGP
   * should be running. With `enabled` false, the speaker could not start
   * (the log says why). Absent in a snapshot from an older pybal.
   */
  readonly wanted?: boolean;
  /**
   * At a start the speaker waits until every service is programmed (10 s at
   * most) before its thread starts: `wanted`, not yet `enabled`. Absent in a
   * snapshot from an older pybal.
   */
  readonly starting?: boolean;
  /** undefined when BGP is off. */
  readonly localAsn: number | undefined;
  readonly peers: readonly BgpPeerValue[];
  /** The prefixes offered to the peers now (`192.0.2.1/32`); each Established peer is sent them. Absent from older snapshots. */
  readonly announced?: readonly string[];
}

/** The answer to POST /drain and POST /undrain (control socket only). */
export interface DrainAnswer extends DrainState {
  /** False when the director already was in the state asked for. */
  readonly changed: boolean;
  /** The VIPs announced now (with the drain's attributes while drained). */
  readonly announced: number;
}

/**
 * What a snapshot takes: one service (`service`), or no server at all
 * (`servers: false`); without each monitor's latest check (`checks: false`)
 * where nothing reads it (only /status and the status page show it).
 */
export interface SnapshotScope {
  readonly service?: string;
  readonly servers?: boolean;
  readonly checks?: boolean;
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
  /**
   * IPVS's sloppy sysctls (net.ipv4.vs.sloppy_tcp, sloppy_sctp) when pybal.conf
   * sets them or an mh or sh service depends on them: whether connections
   * moved here from another director are reset. Absent in a snapshot from an
   * older pybal.
   */
  readonly ipvsSysctls?: readonly SloppyStatus[];
  /** The event loop's stalls (runtime/stall-watch.ts); undefined when not watched. */
  readonly eventLoop?: { readonly stalls: number; readonly longestMs: number };
  /** The checks thread's event loop (monitors/check-thread.ts), as it last said; undefined without one. */
  readonly checksEventLoop?: { readonly stalls: number; readonly longestMs: number };
  /** The checks thread's JS heap, as it last said; undefined without one, or before it has. */
  readonly checksHeap?: { readonly usedBytes: number; readonly totalBytes: number };
  /**
   * The C heap (glibc's malloc, all threads), as last read (every 10 s), and
   * the trims that gave its free pages back (runtime/malloc-trim.ts); undefined
   * where it cannot be read (no memtrim addon, not glibc).
   */
  readonly mallocHeap?: { readonly heapBytes: number; readonly inUseBytes: number; readonly trims: number };
}
