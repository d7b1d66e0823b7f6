/**
 * From the configuration to desired IPVS state (pure): a pybal.conf service
 * plus the servers its coordinator wants pooled.
 */
import type { ServiceConfig } from '../config/types.js';
import { canonicalAddress, familyOf, maskToPrefix } from './address.js';
import { destKeyId } from './codec.js';
import { IP_VS_SVC_F, IP_VS_TUNNEL_ENCAP_FLAG } from './constants.js';
import type { DesiredService } from './diff.js';
import type { DestSpec, FwdMethod, ServiceKey } from './types.js';

/** A server the coordinator wants in IPVS: its resolved address and weight. */
export interface PooledServer {
  readonly address: string;
  readonly weight: number;
}

const FWD: Readonly<Record<ServiceConfig['forwardMethod'], FwdMethod>> = { dr: 'droute', nat: 'masq', tunnel: 'tunnel' };

/**
 * `persistence-netmask` as a prefix length: an IPv4 dotted mask, or a prefix
 * length with or without a slash. Default: a single host (/32, /128).
 */
export function persistencePrefix(service: Pick<ServiceConfig, 'family' | 'persistenceNetmask'>): number {
  const max = service.family === 4 ? 32 : 128;
  const text = service.persistenceNetmask?.trim();
  if (!text) return max;
  if (/^\/?\d+$/.test(text)) {
    const n = Number(text.replace('/', ''));
    if (n >= (service.family === 4 ? 0 : 1) && n <= max) return n;
  } else if (service.family === 4 && familyOf(text) === 4) {
    const [a = 0, b = 0, c = 0, d = 0] = text.split('.').map(Number);
    const prefix = maskToPrefix(((a << 24) | (b << 16) | (c << 8) | d) >>> 0);
    if (prefix !== undefined) return prefix;
  }
  throw new TypeError(`persistence netmask ${JSON.stringify(text)} is not a ${service.family === 4 ? 'contiguous IPv4 mask or prefix length 0..32' : 'prefix length 1..128'}`);
}

/**
 * The IPVS service for a configured service: PyBal's choices unless the
 * configuration says otherwise (direct routing, real-server port = VIP port).
 * Servers whose address is not an IP are skipped (the coordinator resolves
 * names); a duplicate address is kept once, with its first weight.
 */
/**
 * Destinations built before, by the address as the coordinator gave it:
 * reused while nothing about them changed, so that publishing a service of
 * 100,000 servers after one of them changed builds one object, not 100,000
 * (and IPVS normalisation skips the objects it has checked already).
 */
export type DestCache = Map<string, DestSpec>;

/** The settings every destination of a service shares (all but address, family and weight). */
type DestTemplate = Omit<DestSpec, 'family' | 'address' | 'weight'>;

const TUNNEL_CHECKSUM_FLAGS: Readonly<Record<ServiceConfig['tunnel']['checksum'], number>> = {
  none: 0,
  csum: IP_VS_TUNNEL_ENCAP_FLAG.CSUM,
  remcsum: IP_VS_TUNNEL_ENCAP_FLAG.REMCSUM,
};

function destTemplate(service: ServiceConfig): DestTemplate {
  const tunnel = service.forwardMethod === 'tunnel';
  return {
    // A firewall-mark service keeps the packet's port unless NAT maps it.
    port: service.realPort ?? (service.fwmark !== undefined ? 0 : service.port),
    fwdMethod: FWD[service.forwardMethod],
    upperThreshold: service.upperThreshold,
    lowerThreshold: service.lowerThreshold,
    tunnelType: tunnel ? service.tunnel.type : 'ipip',
    tunnelPort: tunnel && service.tunnel.type === 'gue' ? service.tunnel.port : 0,
    tunnelFlags: tunnel ? TUNNEL_CHECKSUM_FLAGS[service.tunnel.checksum] : 0,
  };
}

function hasTemplate(dest: DestSpec, t: DestTemplate): boolean {
  return (
    dest.port === t.port &&
    dest.fwdMethod === t.fwdMethod &&
    dest.upperThreshold === t.upperThreshold &&
    dest.lowerThreshold === t.lowerThreshold &&
    dest.tunnelType === t.tunnelType &&
    dest.tunnelPort === t.tunnelPort &&
    dest.tunnelFlags === t.tunnelFlags
  );
}

/** The kernel service's identity: a firewall mark, or protocol, VIP and port. */
export function serviceKeyFromConfig(service: ServiceConfig): ServiceKey {
  if (service.fwmark !== undefined) return { family: service.family, fwmark: service.fwmark };
  return { family: service.family, protocol: service.protocol, address: canonicalAddress(service.ip), port: service.port };
}

export function desiredServiceFromConfig(service: ServiceConfig, servers: readonly PooledServer[], cache?: DestCache): DesiredService {
  let flags = 0;
  if (service.ops) flags |= IP_VS_SVC_F.ONEPACKET;
  if (service.schedulerFlags.includes('fallback')) flags |= IP_VS_SVC_F.SCHED1;
  if (service.schedulerFlags.includes('port')) flags |= IP_VS_SVC_F.SCHED2;
  const persistent = service.persistenceTimeoutSec > 0;
  if (persistent) flags |= IP_VS_SVC_F.PERSISTENT;
  const template = destTemplate(service);
  const dests = new Map<string, DestSpec>();
  for (const server of servers) {
    const cached = cache?.get(server.address);
    if (cached && cached.weight === server.weight && hasTemplate(cached, template)) {
      const id = destKeyId(cached);
      if (!dests.has(id)) dests.set(id, cached);
      continue;
    }
    const family = familyOf(server.address);
    if (family === undefined) continue;
    const dest: DestSpec = { family, address: canonicalAddress(server.address), weight: server.weight, ...template };
    const id = destKeyId(dest);
    if (!dests.has(id)) dests.set(id, dest);
    cache?.set(server.address, dest);
  }
  // Forget servers long gone, now and then (at most twice the pool is kept).
  if (cache && cache.size > 2 * servers.length + 64) {
    const wanted = new Set(servers.map((s) => s.address));
    for (const address of cache.keys()) if (!wanted.has(address)) cache.delete(address);
  }
  return {
    key: serviceKeyFromConfig(service),
    scheduler: service.scheduler,
    flags,
    timeoutSec: persistent ? service.persistenceTimeoutSec : 0,
    netmask: persistencePrefix(service),
    peName: persistent ? (service.persistenceEngine ?? '') : '',
    destinations: [...dests.values()],
  };
}

function checkInt(what: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new TypeError(`${what} ${v} is not an integer in ${min}..${max}`);
}

/**
 * Checks a desired service before anything is sent for it, and writes its
 * addresses in canonical form (as the kernel's dumps read back), so that a
 * mistake is reported once, clearly, instead of as a kernel error on every retry.
 */
/** Destination objects already checked and canonical (they are immutable): not checked again. */
const NORMALIZED = new WeakSet<DestSpec>();

export function normalizeDesiredService(s: DesiredService): DesiredService {
  const key = s.key;
  const name = 'fwmark' in key ? `fwmark ${key.fwmark}` : `${key.protocol} ${key.address}:${key.port}`;
  const where = (what: string): string => `service ${name}: ${what}`;
  if ('fwmark' in key) checkInt(where('fwmark'), key.fwmark, 1, 0xffffffff);
  else {
    if (familyOf(key.address) !== key.family) throw new TypeError(where(`${JSON.stringify(key.address)} is not an IPv${key.family} address`));
    checkInt(where('port'), key.port, 0, 65535);
  }
  if (!/^[a-z0-9_]{1,15}$/.test(s.scheduler)) throw new TypeError(where(`scheduler ${JSON.stringify(s.scheduler)} is not a scheduler name`));
  if (s.peName && !/^[a-z0-9_]{1,15}$/.test(s.peName)) throw new TypeError(where(`persistence engine ${JSON.stringify(s.peName)} is not a name`));
  checkInt(where('flags'), s.flags, 0, 0xffffffff);
  checkInt(where('persistence timeout'), s.timeoutSec, 0, 0xffffffff);
  checkInt(where('netmask'), s.netmask, key.family === 4 ? 0 : 1, key.family === 4 ? 32 : 128);
  const destinations = s.destinations.map((d) => {
    if (NORMALIZED.has(d)) return d;
    const dname = where(`server ${d.address}`);
    if (familyOf(d.address) !== d.family) throw new TypeError(`${dname}: not an IPv${d.family} address`);
    checkInt(`${dname}: port`, d.port, 0, 65535);
    // The kernel takes the weight as an int: above 2^31-1 it says EINVAL.
    checkInt(`${dname}: weight`, d.weight, 0, 0x7fffffff);
    checkInt(`${dname}: upper threshold`, d.upperThreshold, 0, 0xffffffff);
    checkInt(`${dname}: lower threshold`, d.lowerThreshold, 0, d.upperThreshold === 0 ? 0xffffffff : d.upperThreshold);
    checkInt(`${dname}: tunnel port`, d.tunnelPort, 0, 65535);
    const canonical = d.family === 6 ? canonicalAddress(d.address) : d.address;
    const out = canonical === d.address ? d : { ...d, address: canonical };
    NORMALIZED.add(out);
    return out;
  });
  return { ...s, key: 'fwmark' in key || key.family === 4 ? key : { ...key, address: canonicalAddress(key.address) }, destinations };
}
