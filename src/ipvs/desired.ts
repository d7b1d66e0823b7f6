/**
 * From the configuration to desired IPVS state (pure): a pybal.conf service
 * plus the servers its coordinator wants pooled.
 */
import type { ServiceConfig } from '../config/types.js';
import { canonicalAddress, familyOf, maskToPrefix } from './address.js';
import { destKeyId } from './codec.js';
import { IP_VS_SVC_F, IP_VS_TUNNEL_ENCAP_FLAG } from './constants.js';
import type { DesiredService } from './diff.js';
import type { DestSpec, FwdMethod, ServiceKey, ServiceSpec } from './types.js';
import { finish } from '../runtime/sliced.js';

/** A server the coordinator wants in IPVS: its resolved address and weight (and its host, the address if not given). */
export interface PooledServer {
  readonly host?: string;
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

/**
 * Whether `d` has each field of a destination as `spec` has it: then `spec`
 * may stand for it (an object kept instead of a new equal one, as a resync
 * keeps the model's). The settings a service's destinations share are
 * compared as a rebuild compares them (hasTemplate).
 */
export function sameDestSpec(spec: DestSpec, d: DestSpec): boolean {
  return spec.address === d.address && spec.family === d.family && spec.weight === d.weight && hasTemplate(d, spec);
}

/** The kernel service's identity: a firewall mark, or protocol, VIP and port. */
export function serviceKeyFromConfig(service: ServiceConfig): ServiceKey {
  if (service.fwmark !== undefined) return { family: service.family, fwmark: service.fwmark };
  return { family: service.family, protocol: service.protocol, address: canonicalAddress(service.ip), port: service.port };
}

/**
 * The IPVS service for a configured service: PyBal's choices unless the
 * configuration says otherwise (direct routing, real-server port = VIP port).
 * Servers whose address is not an IP are skipped (the coordinator resolves
 * names); a duplicate address is kept once, with its first weight.
 */
export function desiredServiceFromConfig(service: ServiceConfig, servers: readonly PooledServer[]): DesiredService {
  return new DesiredServiceBuilder().build(service, visitEach(servers));
}

/**
 * The probe service of one server's data-path checks: a firewall-mark service
 * (the server's own mark) whose one destination is that server, forwarded as
 * the configured service forwards (direct routing, or its tunnel), so that a
 * check to the VIP carrying the mark reaches that server as client traffic
 * does. Weight 1 whatever the pool says (a server at weight 0 is checked
 * too), no thresholds, no persistence; port 0 keeps the packet's own.
 */
export function probeServiceFor(service: ServiceConfig, address: string, mark: number): DesiredService {
  const family = service.family;
  const dest: DestSpec = { ...destTemplate(service), family, address: canonicalAddress(address), weight: 1, port: 0, upperThreshold: 0, lowerThreshold: 0 };
  return { key: { family, fwmark: mark }, scheduler: 'rr', flags: 0, timeoutSec: 0, netmask: family === 4 ? 32 : 128, peName: '', destinations: [dest] };
}

/** A list of servers as PooledServers visits. */
function visitEach(servers: readonly PooledServer[]): PooledServers {
  return (visit) => {
    for (const s of servers) visit(s.host ?? s.address, s.address, s.weight);
  };
}

/**
 * A destination of the service's template, or undefined when `address` is
 * not an IP address. It is checked here (normalizeDest), in the builder's
 * slices, so that the IPVS manager finds it checked; one that fails (a weight
 * out of range) is left for the manager to report.
 */
function destOf(template: DestTemplate, address: string, weight: number): DestSpec | undefined {
  const family = familyOf(address);
  if (family === undefined) return undefined;
  // Written out, one literal: spread into a literal of three, the template's seven went to a
  // property array of each destination's own (56 bytes more each, 10,000 of them).
  const dest: DestSpec = {
    family,
    address: canonicalAddress(address),
    weight,
    port: template.port,
    fwdMethod: template.fwdMethod,
    upperThreshold: template.upperThreshold,
    lowerThreshold: template.lowerThreshold,
    tunnelType: template.tunnelType,
    tunnelPort: template.tunnelPort,
    tunnelFlags: template.tunnelFlags,
  };
  try {
    return normalizeDest(dest, '');
  } catch {
    return dest;
  }
}

/** The IPVS service's own settings for a configured service. */
function serviceSpecFromConfig(service: ServiceConfig): Omit<DesiredService, 'destinations'> {
  let flags = 0;
  if (service.ops) flags |= IP_VS_SVC_F.ONEPACKET;
  if (service.schedulerFlags.includes('fallback')) flags |= IP_VS_SVC_F.SCHED1;
  if (service.schedulerFlags.includes('port')) flags |= IP_VS_SVC_F.SCHED2;
  const persistent = service.persistenceTimeoutSec > 0;
  if (persistent) flags |= IP_VS_SVC_F.PERSISTENT;
  return {
    key: serviceKeyFromConfig(service),
    scheduler: service.scheduler,
    flags,
    timeoutSec: persistent ? service.persistenceTimeoutSec : 0,
    netmask: persistencePrefix(service),
    peName: persistent ? (service.persistenceEngine ?? '') : '',
  };
}

/** Calls `visit` for each server to publish, in pool order (CoordinatorApi.forEachPooled). */
export type PooledServers = (visit: (host: string, address: string, weight: number) => void) => void;

/**
 * The servers to publish as they were at one moment, in columns: what
 * buildSteps works through in slices while the coordinator goes on.
 */
export interface PooledTaken {
  readonly hosts: readonly string[];
  readonly addresses: readonly string[];
  readonly weights: readonly number[];
}

/**
 * Takes the servers to publish, in one go so that they are one moment's:
 * those `pooled` visits, or `ordered` when the kernel must get them in that
 * order (see DesiredServiceBuilder.build). `expected` (how many there may
 * be) sizes the columns at once: grown a push at a time, they took three
 * times as long (host, 100,000 servers: 10.4 against 3.6 ms; in the lab guest
 * such a turn takes ten times that).
 */
export function takePooled(pooled: PooledServers, ordered?: readonly PooledServer[], expected = 0): PooledTaken {
  if (ordered !== undefined) return takePooled(visitEach(ordered), undefined, ordered.length);
  const hosts = new Array<string>(expected);
  const addresses = new Array<string>(expected);
  const weights = new Array<number>(expected);
  let n = 0;
  pooled((host, address, weight) => {
    // Past `expected`, an assignment at the end grows the column as a push would.
    hosts[n] = host;
    addresses[n] = address;
    weights[n] = weight;
    n++;
  });
  hosts.length = n;
  addresses.length = n;
  weights.length = n;
  return { hosts, addresses, weights };
}

/** Servers a build goes through between two chances to end a slice. */
const BUILD_STEP = 256;

/** What a rebuild worked out, which becomes the builder's state. */
interface Rebuilt {
  readonly template: DestTemplate;
  readonly byHost: Map<string, Published>;
  readonly dests: Map<string, DestSpec>;
  readonly shared: boolean;
  /** A map of the same destinations for the IPVS manager, when every one of them is checked. */
  readonly handed: Map<string, DestSpec> | undefined;
}

/** What the builder published for one host. */
interface Published {
  /** The address as the coordinator gave it. */
  readonly address: string;
  readonly dest: DestSpec;
  /** The scan that saw it last. */
  scan: number;
}

/**
 * Builds a service's desired state publish after publish, keeping what it
 * published last by host, so that the next publish says only what changed
 * (DesiredService.patch): a weight edited in a pool of 100,000 reaches the
 * IPVS manager as one destination. Each publish still takes every pooled
 * server once (takePooled, three columns) and compares it, in slices when
 * it runs as a job (buildSteps); building, normalising and diffing are in
 * the number of changes.
 *
 * A whole rebuild (no patch) when the configuration changed (a reload: new
 * IPVS settings or destination template), when `ordered` servers are
 * published (mh with fallback: the kernel's table follows the address order,
 * which a patch would not keep), and while two hosts share an address (the
 * first in pool order wins, which a patch cannot follow).
 */
export class DesiredServiceBuilder {
  private config: ServiceConfig | undefined;
  private template: DestTemplate | undefined;
  private last: DesiredService | undefined;
  private byHost = new Map<string, Published>();
  /** What `last` has, by destKeyId, in the order destinations were first published. */
  private dests = new Map<string, DestSpec>();
  /** Two hosts had one address at the last rebuild: every publish rebuilds until they no longer do. */
  private shared = false;
  private scan = 0;
  /** Builds finished: a build in slices that another overtook gives up (see buildSteps). */
  private builds = 0;

  /**
   * The desired service now. `pooled` visits the servers to publish in pool
   * order; `ordered` is the whole list in the order the kernel must get it,
   * when that order matters (always a rebuild); `expected`, how many
   * servers `pooled` may visit (see takePooled).
   */
  build(service: ServiceConfig, pooled: PooledServers, ordered?: readonly PooledServer[], expected?: number): DesiredService {
    return finish(this.buildSteps(service, takePooled(pooled, ordered, expected), ordered !== undefined))!;
  }

  /**
   * build() as a job in slices, from servers taken at one moment (`ordered`:
   * they are in the order the kernel must get them, see build). Its result
   * is undefined, and nothing changed, when another build of this builder
   * finished while it waited between slices: it would stand on what that one
   * replaced.
   */
  *buildSteps(service: ServiceConfig, servers: PooledTaken, ordered = false): Generator<void, DesiredService | undefined, undefined> {
    const builds = this.builds;
    const incremental = !ordered && service === this.config && this.last !== undefined && !this.shared;
    let desired = incremental ? yield* this.patch(servers, builds) : undefined;
    if (desired === undefined) {
      const rebuilt = yield* this.rebuildSteps(service, servers);
      if (this.builds !== builds) return undefined;
      desired = this.rebuilt(service, rebuilt);
    }
    if (desired === 'overtaken') return undefined;
    this.builds++;
    // A patch names its base; the base's own patch is history no one will read (and would keep every base alive).
    if (this.last !== undefined && this.last !== desired) this.last.patch = undefined;
    this.last = desired;
    return desired;
  }

  /** Works through the servers for a rebuild: what the builder keeps of them (see rebuilt). */
  private *rebuildSteps(service: ServiceConfig, servers: PooledTaken): Generator<void, Rebuilt, undefined> {
    const template = destTemplate(service);
    const before = this.byHost;
    const byHost = new Map<string, Published>();
    const dests = new Map<string, DestSpec>();
    // The same again, for the IPVS manager to keep (DesiredService.byId): built here, in the slices, not by it in one go.
    const handed = new Map<string, DestSpec>();
    let checked = true;
    const scan = ++this.scan;
    let shared = false;
    const { hosts, addresses, weights } = servers;
    for (let i = 0; i < hosts.length; i++) {
      if (i % BUILD_STEP === BUILD_STEP - 1) yield;
      const host = hosts[i]!;
      const address = addresses[i]!;
      const weight = weights[i]!;
      const was = before.get(host);
      // The same object as before where nothing changed: the manager has checked it already.
      const dest = was !== undefined && was.address === address && was.dest.weight === weight && hasTemplate(was.dest, template) ? was.dest : destOf(template, address, weight);
      if (dest === undefined) continue;
      const id = destKeyId(dest);
      if (dests.has(id)) {
        shared = true;
        continue;
      }
      dests.set(id, dest);
      handed.set(id, dest);
      checked &&= NORMALIZED.has(dest);
      byHost.set(host, { address, dest, scan });
    }
    return { template, byHost, dests, shared, handed: checked ? handed : undefined };
  }

  /** The builder's state is a rebuild's from here on. */
  private rebuilt(service: ServiceConfig, { template, byHost, dests, shared, handed }: Rebuilt): DesiredService {
    this.config = service;
    this.template = template;
    this.byHost = byHost;
    this.dests = dests;
    this.shared = shared;
    const desired: DesiredService = { ...serviceSpecFromConfig(service), destinations: [...dests.values()] };
    // Not enumerable: a copy of the service ({ ...desired }, a patch's settings) must not carry a map handed over once.
    if (handed !== undefined) Object.defineProperty(desired, 'byId', { value: handed, enumerable: false });
    return desired;
  }

  /**
   * What changed since `last`, as a patch on it; undefined when only a
   * rebuild can say it (an address now shared); 'overtaken' when another
   * build finished meanwhile. It changes the builder's state only after its
   * last slice.
   */
  private *patch(servers: PooledTaken, builds: number): Generator<void, DesiredService | 'overtaken' | undefined, undefined> {
    const scan = ++this.scan;
    const changed: { host: string; address: string; weight: number; was: Published | undefined }[] = [];
    let seen = 0;
    const { hosts, addresses, weights } = servers;
    for (let i = 0; i < hosts.length; i++) {
      if (i % BUILD_STEP === BUILD_STEP - 1) {
        yield;
        if (this.builds !== builds) return 'overtaken';
      }
      const host = hosts[i]!;
      const address = addresses[i]!;
      const weight = weights[i]!;
      const was = this.byHost.get(host);
      if (was !== undefined) {
        was.scan = scan;
        seen++;
        if (was.address === address && was.dest.weight === weight) continue;
      }
      changed.push({ host, address, weight, was });
    }
    if (this.builds !== builds) return 'overtaken';
    const last = this.last!;
    const template = this.template!;
    if (changed.length === 0 && seen === this.byHost.size) return last;
    const set: DestSpec[] = [];
    const removed: DestSpec[] = [];
    const drop = (host: string, was: Published): void => {
      this.byHost.delete(host);
      this.dests.delete(destKeyId(was.dest));
      removed.push(was.dest);
    };
    // Gone first, so that an address another host gave up is free for the one that takes it.
    if (seen < this.byHost.size) for (const [host, was] of this.byHost) if (was.scan !== scan) drop(host, was);
    for (const { host, address, weight, was } of changed) {
      const dest = destOf(template, address, weight);
      const id = dest === undefined ? undefined : destKeyId(dest);
      if (was !== undefined && (id === undefined || destKeyId(was.dest) !== id)) drop(host, was);
      if (dest === undefined || id === undefined) continue;
      // Another host has this address: the first in pool order wins, which only a rebuild knows.
      if (this.dests.has(id) && !(was !== undefined && destKeyId(was.dest) === id)) return undefined;
      this.dests.set(id, dest);
      this.byHost.set(host, { address, dest, scan });
      set.push(dest);
    }
    const { destinations: _, patch: __, ...spec } = last;
    return { ...spec, destinations: [...this.dests.values()], patch: { base: last, set, removed } };
  }
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

/**
 * A destination checked and in canonical form; `where` names its service
 * ("service tcp 192.0.2.1:80: "). The same object when it already was.
 */
export function normalizeDest(d: DestSpec, where: string): DestSpec {
  if (NORMALIZED.has(d)) return d;
  const dname = `${where}server ${d.address}`;
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
}

export function normalizeDesiredService(s: DesiredService): DesiredService {
  const spec = normalizeServiceSpec(s);
  return { ...spec, destinations: s.destinations.map((d) => normalizeDest(d, `${serviceWhere(s.key)}: `)) };
}

function serviceWhere(key: ServiceKey): string {
  return `service ${'fwmark' in key ? `fwmark ${key.fwmark}` : `${key.protocol} ${key.address}:${key.port}`}`;
}

/** A desired service's own settings, checked and in canonical form, without its destinations. */
export function normalizeServiceSpec(s: DesiredService): ServiceSpec {
  const key = s.key;
  const where = (what: string): string => `${serviceWhere(key)}: ${what}`;
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
  return {
    key: 'fwmark' in key || key.family === 4 ? key : { ...key, address: canonicalAddress(key.address) },
    scheduler: s.scheduler,
    flags: s.flags,
    timeoutSec: s.timeoutSec,
    netmask: s.netmask,
    peName: s.peName,
  };
}
