// What every BGP daemon in the lab offers (BIRD and GoBGP, as router or as a
// test speaker): its routes with their attributes parsed, its peers' states,
// and waits with a deadline built on those.
import { waitFor } from '../exec.js';
import type { Family } from '../topology.js';

export type BgpOrigin = 'igp' | 'egp' | 'incomplete';

export type BgpRoute = {
  /** As the daemon prints it, e.g. 203.0.113.1/32 or 2001:db8:3::1/128. */
  prefix: string;
  family: Family;
  nextHop: string | undefined;
  /** AS numbers in order (AS_SEQUENCE and AS_SET flattened). */
  asPath: number[];
  med: number | undefined;
  localPref: number | undefined;
  /** Standard communities as "asn:value". */
  communities: string[];
  origin: BgpOrigin | undefined;
  /** The neighbor the route came from; undefined for a route the daemon originated. */
  from: string | undefined;
  best: boolean;
};

export const PEER_STATES = ['idle', 'connect', 'active', 'opensent', 'openconfirm', 'established'] as const;
export type PeerState = (typeof PEER_STATES)[number];

export type BgpPeer = { address: string; asn: number | undefined; state: PeerState };

export type RouteWait = {
  timeoutMs?: number;
  /** Only a route for which this holds counts (e.g. r => r.med === 100). */
  where?: (route: BgpRoute) => boolean;
};

/** Compares prefixes the way daemons print them (case and IPv6 zero runs aside). */
export function samePrefix(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** "64600:1" from the 32-bit wire value. */
export function formatCommunity(value: number): string {
  return `${Math.floor(value / 65536)}:${value % 65536}`;
}

export function familyOfPrefix(prefix: string): Family {
  return prefix.includes(':') ? 6 : 4;
}

export abstract class BgpDaemon {
  abstract readonly kind: 'bird' | 'gobgp';
  abstract readonly asn: number;
  /** Every route in the daemon's RIB (all paths, not only the best). */
  abstract routes(): Promise<BgpRoute[]>;
  abstract peers(): Promise<BgpPeer[]>;
  /** The daemon's own log so far (for failure messages). */
  abstract log(): string;
  abstract stop(): Promise<void>;

  /** The paths for one prefix (empty when absent). */
  async route(prefix: string): Promise<BgpRoute[]> {
    return (await this.routes()).filter((r) => samePrefix(r.prefix, prefix));
  }

  /** Polls until a path for `prefix` (matching `where`) is in the RIB; returns it. */
  waitForRoute(prefix: string, options: RouteWait = {}): Promise<BgpRoute> {
    return waitFor(
      async () => (await this.route(prefix)).find((r) => options.where?.(r) ?? true),
      { timeoutMs: options.timeoutMs ?? 15_000, what: `${this.kind}: route ${prefix}` },
    );
  }

  /** Polls until no path for `prefix` (matching `where`) is left. */
  async waitForNoRoute(prefix: string, options: RouteWait = {}): Promise<void> {
    await waitFor(
      async () => ((await this.route(prefix)).some((r) => options.where?.(r) ?? true) ? undefined : true),
      { timeoutMs: options.timeoutMs ?? 15_000, what: `${this.kind}: route ${prefix} to go away` },
    );
  }

  async peer(address: string): Promise<BgpPeer | undefined> {
    return (await this.peers()).find((p) => p.address === address);
  }

  /** Polls until the session with `address` is in `state` (default established). */
  waitForPeer(address: string, state: PeerState = 'established', timeoutMs = 30_000): Promise<BgpPeer> {
    return waitFor(
      async () => {
        const peer = await this.peer(address);
        if (peer === undefined) throw new Error(`no peer ${address} configured`);
        if (peer.state !== state) throw new Error(`peer ${address} is ${peer.state}`);
        return peer;
      },
      { timeoutMs, what: `${this.kind}: session with ${address} ${state}` },
    );
  }
}
