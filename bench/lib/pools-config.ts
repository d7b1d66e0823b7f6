/**
 * Configuration text for the pool-application benchmark (bench/pools.ts):
 * real-server addresses, pool files in PyBal's legacy format, a pybal.conf,
 * and the same table as `ipvsadm -R` commands. Pure: no file is written here.
 */

/** Servers per second octet when addresses are numbered 127.B.C.D (C and D each 250 values). */
const PER_SECOND_OCTET = 250 * 250;

/**
 * `count` distinct loopback addresses, 127.<first>.0.1 onwards, 250 per third
 * octet (D = 1..250) and 62,500 per second octet. All of 127/8 is local on
 * Linux: one listener on 0.0.0.0 answers every one of them, and IPVS accepts
 * a local address as a real server (its type is RTN_LOCAL).
 */
export function poolServerAddresses(count: number, firstSecondOctet = 20): string[] {
  const lastSecondOctet = firstSecondOctet + Math.ceil(count / PER_SECOND_OCTET) - 1;
  if (!Number.isInteger(count) || count < 0) throw new Error(`a server count must be a non-negative integer, not ${count}`);
  if (firstSecondOctet < 1 || lastSecondOctet > 254) throw new Error(`${count} servers from 127.${firstSecondOctet}.0.1 do not fit in 127/8`);
  return Array.from({ length: count }, (_, i) => {
    const b = firstSecondOctet + Math.floor(i / PER_SECOND_OCTET);
    const k = i % PER_SECOND_OCTET;
    return `127.${b}.${Math.floor(k / 250)}.${(k % 250) + 1}`;
  });
}

export interface PoolServer {
  readonly host: string;
  readonly weight: number;
}

/** A pool file in PyBal's legacy format, one server a line, every server enabled. */
export function formatLegacyPool(servers: readonly PoolServer[]): string {
  let text = '';
  for (const s of servers) text += `{ 'host': '${s.host}', 'weight': ${s.weight}, 'enabled': True }\n`;
  return text;
}

/** The servers of `hosts`, every one at `weight` except those in `overrides` (host -> weight). */
export function weighted(hosts: readonly string[], weight: number, overrides: ReadonlyMap<string, number> = new Map()): PoolServer[] {
  return hosts.map((host) => ({ host, weight: overrides.get(host) ?? weight }));
}

export interface BenchService {
  /** The section name in pybal.conf. */
  readonly name: string;
  readonly vip: string;
  readonly port: number;
  readonly scheduler: string;
  readonly poolPath: string;
  /** Monitor names; [] is PyBal's "never health-checked". */
  readonly monitors: readonly string[];
}

/** `[ 'IdleConnection' ]`, or `[]` for none: a Python list literal as PyBal reads it. */
export function formatMonitorList(monitors: readonly string[]): string {
  return monitors.length === 0 ? '[]' : `[ ${monitors.map((m) => `'${m}'`).join(', ')} ]`;
}

/**
 * BGP on as a director runs it, towards a router that is not there: the
 * speaker listens on 127.0.0.1 only and its peer 127.0.0.2 refuses the
 * connection, so the BGP thread starts and its session keeps trying (every
 * `bgp-connect-retry`), at no cost to anything else on the guest.
 */
export const BGP_TOWARDS_NO_ROUTER: readonly string[] = [
  'bgp = yes',
  'bgp-local-asn = 64600',
  "bgp-peer-address = [ '127.0.0.2' ]",
  "bgp-local-ips = [ '127.0.0.1' ]",
  'bgp-nexthop-ipv4 = 192.0.2.100',
  'bgp-router-id = 192.0.2.100',
];

/**
 * pybal.conf: `bgp` lines in [global] (no BGP by default), the
 * instrumentation API on 127.0.0.1:`metricsPort`, `globalExtra` lines, one
 * section per service with a file:// pool.
 */
export function formatPoolsConf(services: readonly BenchService[], metricsPort: number, globalExtra: readonly string[] = [], bgp: readonly string[] = ['bgp = no']): string {
  const lines = ['[global]', ...bgp, 'instrumentation = yes', `instrumentation_port = ${metricsPort}`, "instrumentation_ips = [ '127.0.0.1' ]", ...globalExtra, ''];
  for (const s of services) {
    lines.push(
      `[${s.name}]`,
      'protocol = tcp',
      `ip = ${s.vip}`,
      `port = ${s.port}`,
      `scheduler = ${s.scheduler}`,
      `config = file://${s.poolPath}`,
      `monitors = ${formatMonitorList(s.monitors)}`,
      '',
    );
  }
  return lines.join('\n');
}

export interface ServiceSlot {
  readonly vip: string;
  readonly port: number;
}

/**
 * Where `count` services go: `portsPerVip` consecutive ports from `firstPort`
 * on each VIP, VIPs 203.0.113.<firstHost> onwards (as bench/daemon.ts spreads
 * its 1,000 services).
 */
export function spreadServices(count: number, portsPerVip: number, firstPort: number, firstHost = 11): ServiceSlot[] {
  const lastHost = firstHost + Math.ceil(count / portsPerVip) - 1;
  if (lastHost > 254) throw new Error(`${count} services over ${portsPerVip} ports need VIPs up to 203.0.113.${lastHost}`);
  return Array.from({ length: count }, (_, i) => ({ vip: `203.0.113.${firstHost + Math.floor(i / portsPerVip)}`, port: firstPort + (i % portsPerVip) }));
}

export interface RestoreService {
  readonly vip: string;
  readonly port: number;
  readonly scheduler: string;
  readonly servers: readonly PoolServer[];
}

/**
 * The table as `ipvsadm -R` reads it on stdin, spelt as PyBal's ipvs.py
 * spells its commands: `-A -t VIP:PORT -s SCHED`, then `-a -t VIP:PORT -r IP -w N`
 * per server (no port: the service's; no forwarding flag: direct routing).
 */
export function formatIpvsadmRestore(services: readonly RestoreService[]): string {
  const lines: string[] = [];
  for (const s of services) {
    const svc = `-t ${s.vip}:${s.port}`;
    lines.push(`-A ${svc} -s ${s.scheduler}`);
    for (const d of s.servers) lines.push(`-a ${svc} -r ${d.host} -w ${d.weight}`);
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** `ipvsadm -R` commands that delete exactly these services (and their destinations), nothing else. */
export function formatIpvsadmDelete(services: readonly ServiceSlot[]): string {
  return services.map((s) => `-D -t ${s.vip}:${s.port}\n`).join('');
}
