/**
 * Every key pybal.conf knows, as the file spells it: the one table that
 * unknown-key warnings, suggestions and the documentation agree on.
 */

import { MONITOR_KINDS, type MonitorKind } from './types.js';

export const GLOBAL_KEYS = [
  'bgp',
  'bgp-local-asn',
  'bgp-peer-address',
  'bgp-as-path',
  'bgp-med',
  'bgp-nexthop-ipv4',
  'bgp-nexthop-ipv6',
  'bgp-local-ips',
  'bgp-local-port',
  'bgp-peer-asn',
  'bgp-hold-time',
  'bgp-router-id',
  'bgp-communities',
  'bgp-connect-retry',
  'bgp-graceful-restart',
  'bgp-drain',
  'bgp-drain-med',
  'bgp-bfd',
  'bgp-bfd-interval',
  'bgp-bfd-multiplier',
  'instrumentation',
  'instrumentation_port',
  'instrumentation_ips',
  'runcommand-max-concurrent',
  'ipvs-resync-interval',
  'event-history-size',
  'ipvs-stats-interval',
  'dry-run',
  'advertised_instrumentation_ips',
  'ipvs-sync-daemon',
  'ipvs-sync-interface',
  'ipvs-sync-id',
  'ipvs-sync-group',
  'ipvs-sync-port',
  'ipvs-sync-ttl',
  'ipvs-sloppy-tcp',
  'ipvs-sloppy-sctp',
  'datapath-fwmark-base',
  'datapath-source-ipv4',
  'datapath-source-ipv6',
  'memory-saving',
] as const;

export const SERVICE_KEYS = [
  'protocol',
  'ip',
  'port',
  'scheduler',
  'scheduler-flags',
  'ops',
  'config',
  'monitors',
  'depool-threshold',
  'bgp',
  'bgp-med',
  'bgp-communities',
  'bgp-withdraw-when-down',
  'forward-method',
  'tunneling',
  'tunnel-type',
  'tunnel-port',
  'tunnel-checksum',
  'fwmark',
  'real-port',
  'persistence-timeout',
  'persistence-netmask',
  'persistence-engine',
  'upper-threshold',
  'lower-threshold',
  'sh-fallback',
  'sh-port',
  'mh-fallback',
  'mh-port',
  'datapath-check',
] as const;

const PERIODIC = ['interval', 'timeout', 'rise', 'fall'] as const;

/** Each monitor's options, without the `<monitor>.` prefix. */
export const MONITOR_OPTIONS: Readonly<Record<MonitorKind, readonly string[]>> = {
  ProxyFetch: ['url', ...PERIODIC, 'http_status', 'check_all', 'max_failures', 'expect-body', 'expect-body-regex', 'verify-tls', 'ca-file', 'datapath'],
  IdleConnection: [
    'timeout-clean-reconnect',
    'max-delay',
    'keepalive',
    'keepalive-retries',
    'keepalive-idle',
    'keepalive-interval',
    'timeout',
    'rise',
    'fall',
    'datapath',
  ],
  RunCommand: ['command', 'arguments', ...PERIODIC, 'log-output'],
  SSH: ['user', 'private-key', 'command', 'port', 'known-hosts', ...PERIODIC],
  DNSQuery: ['hostnames', ...PERIODIC, 'fail-on-nxdomain'],
  UDP: ['interval', 'icmp-timeout', 'rise', 'fall', 'datapath'],
  Ping: ['count', ...PERIODIC],
  TCPConnect: [...PERIODIC, 'datapath'],
};

/** Keys PyBal takes from its command line, overriding the file. */
export const CLI_KEYS: Readonly<Record<string, string>> = {
  dryrun: '-n',
  debug: '-d',
  conffile: '-c',
};

/** The prefix of a monitor's options in a service section (`proxyfetch`). */
export function monitorPrefix(kind: MonitorKind): string {
  return kind.toLowerCase();
}

const MONITOR_BY_PREFIX: ReadonlyMap<string, MonitorKind> = new Map(MONITOR_KINDS.map((kind) => [monitorPrefix(kind), kind]));

/** The monitor whose options a key belongs to, by prefix, if any. */
export function monitorOfKey(key: string): MonitorKind | undefined {
  const dot = key.indexOf('.');
  if (dot < 0) return undefined;
  return MONITOR_BY_PREFIX.get(key.slice(0, dot));
}

/** Every `<monitor>.<option>` key. */
export const MONITOR_KEYS: readonly string[] = MONITOR_KINDS.flatMap((kind) =>
  MONITOR_OPTIONS[kind].map((option) => `${monitorPrefix(kind)}.${option}`),
);

/** The monitors that can check through the data path (`datapath-check`, `<monitor>.datapath`). */
export const DATAPATH_MONITORS: ReadonlySet<MonitorKind> = new Set<MonitorKind>(['ProxyFetch', 'IdleConnection', 'TCPConnect', 'UDP']);

export type KeyScope = 'global' | 'service';

const KNOWN_KEYS: Readonly<Record<KeyScope, ReadonlySet<string>>> = {
  global: new Set(GLOBAL_KEYS),
  service: new Set([...SERVICE_KEYS, ...MONITOR_KEYS]),
};

export function isKnownKey(key: string, scope: KeyScope): boolean {
  return KNOWN_KEYS[scope].has(key);
}

/**
 * Words of keys that decide how packets are forwarded, where they go, which
 * servers take traffic, or what is announced to the routers. pybal cannot
 * honour a key it does not know; when the key is made of these words,
 * ignoring it could send traffic where the operator did not mean it to go,
 * so it is an error, not a warning.
 */
const CONSEQUENTIAL_WORDS: ReadonlySet<string> = new Set([
  // forwarding and encapsulation
  'forward', 'forwarding', 'fwd', 'method', 'lb', 'kind', 'mode', 'route', 'routing', 'dr', 'gate', 'gateway', 'nat', 'masq',
  'masquerade', 'masquerading', 'tunnel', 'tunnelling', 'tunneling', 'tun', 'ipip', 'gre', 'gue', 'fou', 'encap', 'encapsulation', 'csum',
  // addressing
  'ip', 'ips', 'ipv4', 'ipv6', 'address', 'addresses', 'addr', 'vip', 'port', 'ports', 'protocol', 'proto', 'family', 'mark', 'fwmark',
  'netmask', 'mask', 'prefix',
  // scheduling and pooling
  'scheduler', 'sched', 'schedule', 'algo', 'algorithm', 'fallback', 'sh', 'mh', 'ops', 'onepacket', 'persistence', 'persistent',
  'persist', 'granularity', 'pe', 'engine', 'weight', 'weights', 'threshold', 'thresholds', 'uthreshold', 'lthreshold',
  'pool', 'pooled', 'pools', 'depool', 'enabled', 'server', 'servers', 'real', 'dest', 'destination', 'backend', 'backends', 'quorum',
  'sorry', 'inhibit', 'sync', 'config', 'monitors', 'dry', 'dryrun',
  // announcements
  'bgp', 'med', 'community', 'communities', 'nexthop', 'peer', 'peers', 'asn', 'announce', 'withdraw', 'bfd',
  'graceful', 'restart',
  'drain', 'drained',
]);

/**
 * Whether an unknown key could change forwarding, addressing, pooling or
 * announcements: one of its words is such a word, or it is a likely typo of
 * a key that is. Options of monitors (`proxyfetch.foo`) only decide how
 * servers are checked: they are not counted here.
 */
export function couldChangeTraffic(key: string, scope: KeyScope | 'default'): boolean {
  if (monitorOfKey(key) !== undefined) return false;
  const words = key.toLowerCase().split(/[^a-z0-9]+/);
  if (words.some((w) => CONSEQUENTIAL_WORDS.has(w))) return true;
  const candidates = scope === 'global' ? GLOBAL_KEYS : scope === 'service' ? SERVICE_KEYS : [...GLOBAL_KEYS, ...SERVICE_KEYS];
  const typoOf = closest(key, candidates);
  return typoOf !== undefined && typoOf.split('-').some((w) => CONSEQUENTIAL_WORDS.has(w));
}

/** Levenshtein distance, for suggestions. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + cost));
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/** The closest of `candidates` to `word`, when it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}
