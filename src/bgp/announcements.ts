/**
 * From configuration and service health to what the speaker announces (pure).
 *
 * PyBal announces the VIP of every service with `bgp` on, always. We do the
 * same, except that a VIP whose services all ask for `bgp-withdraw-when-down`
 * is withdrawn while none of them has a healthy pooled server. Several
 * services on one IP count together: one that announces unconditionally, or
 * one that is healthy, keeps the VIP announced.
 */
import type { AddressFamily, Community, GlobalConfig, ServiceConfig } from '../config/types.js';
import { familyOf, hostPrefix, ipv4ToNumber, normalizeAddress, parseIpv4 } from './address.js';
import type { PeerOptions, SpeakerOptions } from './speaker.js';
import type { Route } from './pack.js';

/** GRACEFUL_SHUTDOWN, the well-known community of RFC 8326: "this path is going away, prefer another". */
export const GRACEFUL_SHUTDOWN: Community = { asn: 0xffff, value: 0x0000 };

/** How the routes are announced beyond the configuration: drained (see decideRoutes). */
export interface AnnounceOptions {
  /**
   * Drained for planned maintenance: every route also carries GRACEFUL_SHUTDOWN
   * and its MED is `bgp-drain-med`, so the routers prefer the other directors;
   * the routes stay announced, so traffic flows here until they have moved it.
   */
  readonly drained?: boolean;
}

/** Whether the director is drained, since when, and with which MED: for the API, `pybal status` and the metrics. */
export interface DrainState {
  readonly drained: boolean;
  /** When it was drained (wall clock, ms since the epoch), while it is. */
  readonly drainedSinceWallMs: number | undefined;
  /** The MED every VIP carries while drained (`bgp-drain-med`). */
  readonly drainMed: number;
}

/** Services that announce: global `bgp` on and the service's own `bgp` on. */
export function announcingServices(global: GlobalConfig, services: readonly ServiceConfig[]): ServiceConfig[] {
  return global.bgp ? services.filter((s) => s.bgp) : [];
}

/** The address families that have something to announce. */
export function announcedFamilies(global: GlobalConfig, services: readonly ServiceConfig[]): AddressFamily[] {
  const families = new Set(announcingServices(global, services).map((s) => s.family));
  return ([4, 6] as const).filter((f) => families.has(f));
}

function mergeCommunities(lists: readonly (readonly Community[])[]): Community[] {
  const seen = new Map<string, Community>();
  for (const list of lists) for (const c of list) seen.set(`${c.asn}:${c.value}`, c);
  return [...seen.values()].sort((a, b) => a.asn - b.asn || a.value - b.value);
}

/**
 * The routes to announce now. `healthy(service)` says whether the service has
 * at least one healthy pooled server; it matters only with bgp-withdraw-when-down.
 * `programmed(service)` says whether the kernel has the service (adopted or
 * written): a VIP is announced only once every service on it is programmed,
 * since announcing a VIP this director cannot forward yet would attract its
 * traffic into a black hole.
 * The first service of an IP (file order) gives the MED; communities are the
 * global ones plus those of every service on the IP. Drained (`options`),
 * every route has the MED `bgp-drain-med` and GRACEFUL_SHUTDOWN among its
 * communities: the same routes, less preferred.
 */
export function decideRoutes(
  global: GlobalConfig,
  services: readonly ServiceConfig[],
  healthy: (service: ServiceConfig) => boolean,
  programmed: (service: ServiceConfig) => boolean = () => true,
  options: AnnounceOptions = {},
): Route[] {
  return routesFromPlan(planRoutes(global, services, options), healthy, programmed);
}

/** A VIP's route as the configuration makes it, and the services on that VIP. */
export interface PlannedRoute {
  readonly route: Route;
  readonly services: readonly ServiceConfig[];
}

/**
 * What decideRoutes makes of the configuration alone (each VIP's route, in
 * file order), so that a caller publishing often can keep it until the
 * configuration or the drain changes and pay only for the health per
 * publish: grouping 1,000 services by VIP at every publish of a cold start
 * grew with the square of the number of services.
 */
export function planRoutes(global: GlobalConfig, services: readonly ServiceConfig[], options: AnnounceOptions = {}): PlannedRoute[] {
  const drained = options.drained === true;
  const byIp = new Map<string, ServiceConfig[]>();
  for (const s of announcingServices(global, services)) {
    const ip = normalizeAddress(s.ip) ?? s.ip;
    const group = byIp.get(ip);
    if (group === undefined) byIp.set(ip, [s]);
    else group.push(s);
  }
  const plan: PlannedRoute[] = [];
  for (const [ip, group] of byIp) {
    const family = familyOf(ip);
    const nextHop = family === 4 ? global.bgpNexthopIpv4 : global.bgpNexthopIpv6;
    if (nextHop === undefined) continue; // the config parser rejects this; never announce without a next hop
    const first = group[0] as ServiceConfig;
    plan.push({
      services: group,
      route: {
        prefix: hostPrefix(ip),
        nextHop,
        asPath: global.bgpAsPath.length > 0 ? global.bgpAsPath : global.bgpLocalAsn !== undefined ? [global.bgpLocalAsn] : [],
        med: drained ? global.bgpDrainMed : (first.bgpMed ?? global.bgpMed),
        communities: mergeCommunities([global.bgpCommunities, ...group.map((s) => s.bgpCommunities), drained ? [GRACEFUL_SHUTDOWN] : []]),
      },
    });
  }
  return plan;
}

/** The planned routes that the services' health and the kernel allow now (see decideRoutes). */
export function routesFromPlan(plan: readonly PlannedRoute[], healthy: (service: ServiceConfig) => boolean, programmed: (service: ServiceConfig) => boolean): Route[] {
  const routes: Route[] = [];
  for (const { route, services } of plan) {
    const keep = services.some((s) => !s.bgpWithdrawWhenDown || healthy(s));
    if (keep && services.every(programmed)) routes.push(route);
  }
  return routes;
}

/**
 * The router ID: `bgp-router-id` when given, else the first IPv4 address among
 * `bgp-local-ips`, else the lowest non-loopback IPv4 address of the host.
 */
export function deriveRouterId(global: GlobalConfig, hostIpv4Addresses: readonly string[]): string | undefined {
  if (global.bgpRouterId !== undefined) return global.bgpRouterId;
  const fromLocal = global.bgpLocalIps.find((a) => parseIpv4(a) !== undefined);
  if (fromLocal) return fromLocal;
  const candidates = hostIpv4Addresses
    .filter((a) => {
      const b = parseIpv4(a);
      return b !== undefined && b[0] !== 127 && !b.every((x) => x === 0);
    })
    .sort((a, b) => ipv4ToNumber(a) - ipv4ToNumber(b));
  return candidates[0];
}

/**
 * Peers from `bgp-peer-address`. Outgoing connections go to port 179, as
 * PyBal's do, from the first `bgp-local-ips` address of the peer's family when
 * one is given.
 */
export function peersFromConfig(global: GlobalConfig): PeerOptions[] {
  return global.bgpPeerAddresses.map((address) => {
    const family = familyOf(address);
    const localAddress = global.bgpLocalIps.find((a) => a !== '' && familyOf(a) === family);
    return localAddress ? { address, localAddress } : { address };
  });
}

/**
 * Speaker options from the configuration. Throws when bgp is on but the router
 * ID cannot be derived (the config parser validates everything else).
 */
export function speakerOptionsFromConfig(
  global: GlobalConfig,
  services: readonly ServiceConfig[],
  env: Pick<SpeakerOptions, 'clock' | 'logger'> & {
    readonly hostIpv4Addresses: readonly string[];
    /** Graceful restart: the families the kernel forwards for already (see FsmConfig). */
    readonly forwardingFamilies?: () => readonly AddressFamily[];
  },
): SpeakerOptions {
  const localAsn = global.bgpLocalAsn;
  if (localAsn === undefined) throw new Error('bgp-local-asn is required when bgp is on');
  const routerId = deriveRouterId(global, env.hostIpv4Addresses);
  if (routerId === undefined) {
    throw new Error('cannot derive a BGP router ID: the host has no IPv4 address; set bgp-router-id');
  }
  return {
    localAsn,
    routerId,
    holdTimeSec: global.bgpHoldTimeSec,
    peerAsn: global.bgpPeerAsn,
    connectRetryMs: global.bgpConnectRetryMs,
    families: announcedFamilies(global, services),
    peers: peersFromConfig(global),
    listen: { addresses: global.bgpLocalIps, port: global.bgpLocalPort },
    clock: env.clock,
    logger: env.logger,
    ...(global.bgpGracefulRestartSec > 0
      ? { gracefulRestart: { restartTimeSec: global.bgpGracefulRestartSec, forwarding: env.forwardingFamilies ?? (() => []) } }
      : {}),
  };
}
