/**
 * The "depressed ActiveConn" alert (Wikimedia's LVS runbook): a pooled real
 * server that gets no traffic, or does not answer it, while its siblings in
 * the same service do. A real server that lost the VIP from `lo`, or whose
 * replies have no route back, stays pooled (its health check goes to its own
 * address and passes) and silently drops its share of the clients.
 *
 * The rule, over a window of readings of the kernel's counters (pure,
 * table-tested in test/ipvs/quiet-servers.test.ts):
 *
 * - Only servers with weight above 0 in every reading of the window count
 *   (eligible): a server pooled, re-weighted from 0 or re-created during the
 *   window (its counters went back) waits a full window.
 * - `no-connections`: the eligible servers together got new connections,
 *   and this server's fair share of them by weight is at least
 *   MIN_EXPECTED_CONNECTIONS, yet its connection counter did not move. Not
 *   applied to sh, mh or persistent services: their clients stick to a
 *   server by address, so a few clients can all land elsewhere.
 * - `no-replies` (NAT only: replies pass the director): it got at least
 *   MIN_SENT_CONNECTIONS new connections and sent not one packet back,
 *   while its siblings' replies did pass.
 * - `not-established` (direct routing and tunnels: the director sees only
 *   the client's side): it got at least MIN_SENT_CONNECTIONS new
 *   connections, and at every reading of the window its connections were
 *   all of one kind, ActiveConn 0 or InActConn 0, while its siblings had
 *   both kinds at every reading. A client completes the handshake only
 *   when the server answered, so a server that cannot answer leaves every
 *   connection in SYN_RECV until it expires, never established and never
 *   closed. Older kernels count SYN_RECV as inactive: its ActiveConn stays 0
 *   (the "depressed ActiveConn" of Wikimedia's runbook). Newer ones count it
 *   as active (for the lc/wlc schedulers): its InActConn stays 0,
 *   as nothing it got ever closed (seen in the lab on 6.1: 20 active, 0
 *   inactive, while the siblings had 10 and 10). Siblings that serve
 *   connections which open and close have both kinds at any moment (the
 *   closed ones linger in TIME_WAIT); where they do not (only long-lived
 *   connections, or very little traffic), nothing is flagged.
 */
import type { QuietReason } from './types.js';

/** A server's fair share of the window's new connections must be at least this for `no-connections` (Poisson: P(0) = e^-20). */
export const MIN_EXPECTED_CONNECTIONS = 20;
/** New connections a server must have got in the window for `no-replies` and `not-established`. */
export const MIN_SENT_CONNECTIONS = 20;

/** One server over the window. */
export interface QuietServerInput {
  /** The destination's address, as the kernel gave it (the key of the result). */
  readonly address: string;
  /** The lowest weight it had in the window's readings; 0 when it was missing from one of them. */
  readonly minWeight: number;
  /** Its latest weight (the fair share's weight). */
  readonly weight: number;
  /** Counter increases from the window's first reading to its last; negative when a counter went back (re-created). */
  readonly newConnections: number;
  readonly newOutPackets: number;
  /** ActiveConn at each reading of the window, oldest first. */
  readonly activeConnections: readonly number[];
  /** InActConn at each reading of the window, oldest first. */
  readonly inactiveConnections: readonly number[];
}

export interface QuietServiceInput {
  /** The IPVS scheduler (wrr, sh, mh...). */
  readonly scheduler: string;
  /** Persistence (`persistence-timeout`): clients stick to a server. */
  readonly persistent: boolean;
  readonly forwarding: 'masq' | 'droute' | 'tunnel' | 'local' | 'bypass';
  readonly servers: readonly QuietServerInput[];
}

export interface QuietVerdict {
  readonly address: string;
  readonly reason: QuietReason;
  readonly detail: string;
}

const STICKY_SCHEDULERS: ReadonlySet<string> = new Set(['sh', 'mh']);

/** The servers of one service that the rule flags, in input order. */
export function decideQuietServers(service: QuietServiceInput): QuietVerdict[] {
  const eligible = service.servers.filter((s) => s.minWeight > 0 && s.newConnections >= 0 && s.newOutPackets >= 0);
  if (eligible.length < 2) return [];
  const totalConnections = eligible.reduce((n, s) => n + s.newConnections, 0);
  const totalWeight = eligible.reduce((n, s) => n + s.weight, 0);
  const totalOutPackets = eligible.reduce((n, s) => n + s.newOutPackets, 0);
  const readings = Math.min(...eligible.map((s) => Math.min(s.activeConnections.length, s.inactiveConnections.length)));
  const activeAt = Array.from({ length: readings }, (_, i) => eligible.reduce((n, s) => n + (s.activeConnections[i] ?? 0), 0));
  const inactiveAt = Array.from({ length: readings }, (_, i) => eligible.reduce((n, s) => n + (s.inactiveConnections[i] ?? 0), 0));
  const sticky = STICKY_SCHEDULERS.has(service.scheduler) || service.persistent;
  const out: QuietVerdict[] = [];
  for (const s of eligible) {
    const expected = totalWeight > 0 ? (totalConnections * s.weight) / totalWeight : 0;
    if (!sticky && s.newConnections === 0 && expected >= MIN_EXPECTED_CONNECTIONS) {
      out.push({
        address: s.address,
        reason: 'no-connections',
        detail: `no new connection while the service's servers got ${totalConnections} (its share by weight: ${Math.floor(expected)})`,
      });
      continue;
    }
    if (s.newConnections < MIN_SENT_CONNECTIONS) continue;
    if (service.forwarding === 'masq') {
      const siblings = totalOutPackets - s.newOutPackets;
      if (s.newOutPackets === 0 && siblings > 0) {
        out.push({
          address: s.address,
          reason: 'no-replies',
          detail: `${s.newConnections} new connections and not one packet back, while its siblings sent ${siblings}`,
        });
      }
      continue;
    }
    if ((service.forwarding === 'droute' || service.forwarding === 'tunnel') && readings > 0) {
      const active = (i: number): number => s.activeConnections[i] ?? 0;
      const inactive = (i: number): number => s.inactiveConnections[i] ?? 0;
      let oneKindEachTime = true;
      let siblingsBothEachTime = true;
      for (let i = 0; i < readings; i++) {
        if (active(i) > 0 && inactive(i) > 0) oneKindEachTime = false;
        if ((activeAt[i] ?? 0) - active(i) === 0 || (inactiveAt[i] ?? 0) - inactive(i) === 0) siblingsBothEachTime = false;
      }
      if (oneKindEachTime && siblingsBothEachTime) {
        const kind = [...Array(readings).keys()].every((i) => active(i) === 0) ? 'ActiveConn' : 'InActConn';
        out.push({
          address: s.address,
          reason: 'not-established',
          detail: `${s.newConnections} new connections, none completed (${kind} 0 at each of ${readings} readings), while its siblings had both established and closed ones`,
        });
      }
    }
  }
  return out;
}
