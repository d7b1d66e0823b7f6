/**
 * pybal.conf text -> the typed Config, with every problem of the file
 * collected: errors (the file cannot be used) and warnings (PyBal accepts it,
 * but an operator should hear about it). Nothing is thrown and nothing in the
 * file is evaluated. Pure: no I/O.
 */

import type { Problem } from '../runtime/errors.js';
import { finish } from '../runtime/sliced.js';
import { FieldReader, isHttpUrl, type LiteralCache, MAX_U32, show } from './field-reader.js';
import { checkLineEndings, pyStrip, readIniSteps, resolveSection, type IniDocument, type IniSection, type ResolvedEntry } from './ini-reader.js';
import { parseIpv4Octets, type IpAddress } from './ip-address.js';
import {
  CLI_KEYS,
  closest,
  couldChangeTraffic,
  DATAPATH_MONITORS,
  GLOBAL_KEYS,
  isKnownKey,
  MONITOR_KEYS,
  MONITOR_OPTIONS,
  monitorOfKey,
  monitorPrefix,
  SERVICE_KEYS,
  type KeyScope,
} from './keys.js';
import { parseMonitor } from './parse-monitors.js';
import {
  type AddressFamily,
  type Config,
  DATAPATH_FWMARK_COUNT,
  DEFAULT_DATAPATH_FWMARK_BASE,
  type ForwardMethod,
  type GlobalConfig,
  IPVS_SYNC_MODES,
  type IpvsSyncConfig,
  MONITOR_KINDS,
  type MonitorConfig,
  type MonitorKind,
  PERSISTENCE_ENGINES,
  type Protocol,
  SCHEDULERS,
  type Scheduler,
  type ServiceConfig,
  TUNNEL_CHECKSUMS,
  TUNNEL_TYPES,
  type TunnelConfig,
} from './types.js';

export interface ParseResult {
  /** Present only when there are no errors. */
  readonly config?: Config;
  readonly errors: readonly Problem[];
  readonly warnings: readonly Problem[];
}

export const GLOBAL_SECTION = 'global';

const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];
const FORWARD_METHODS: readonly ForwardMethod[] = ['dr', 'nat', 'tunnel'];
const POOL_SCHEMES = ['file:', 'http:', 'https:', 'etcd:', 'etcd3:'];

interface Collector {
  readonly file: string;
  readonly document: IniDocument;
  readonly errors: Problem[];
  readonly warnings: Problem[];
  /** See isVariable; found when first asked for. */
  variables?: ReadonlySet<string>;
  readonly literals: LiteralCache;
  /** What unknownKey said of each key, by scope and key. */
  readonly unknownKeys: Map<string, UnknownKey>;
}

const REFERENCES_RE = /%\(([^)]*)\)s/g;

/** Every `%(name)s` reference in the file, as ConfigParser looks names up (lower case). */
function interpolationVariables(document: IniDocument): Set<string> {
  const names = new Set<string>();
  for (const section of [...(document.defaults ? [document.defaults] : []), ...document.sections]) {
    for (const entry of section.entries.values()) {
      if (!entry.value.includes('%(')) continue;
      for (const m of entry.value.matchAll(REFERENCES_RE)) names.add((m[1] as string).toLowerCase());
    }
  }
  return names;
}

/**
 * Whether some value refers to this name as `%(name)s`: a variable for
 * interpolation, not a key pybal should know. Only keys pybal does not know
 * ask, so a file without any does not look for references.
 */
function isVariable(c: Collector, name: string): boolean {
  c.variables ??= interpolationVariables(c.document);
  return c.variables.has(name);
}

function readerFor(c: Collector, section: IniSection): { r: FieldReader; entries: ReadonlyMap<string, ResolvedEntry> } {
  const { entries, errors, failed } = resolveSection(c.document, section);
  c.errors.push(...errors);
  const r = new FieldReader({
    file: c.file,
    failed,
    section: section.name,
    sectionLine: section.line > 0 ? section.line : undefined,
    entries,
    errors: c.errors,
    warnings: c.warnings,
    literals: c.literals,
  });
  return { r, entries };
}

const ALL_KNOWN_KEYS: readonly string[] = [...new Set([...GLOBAL_KEYS, ...SERVICE_KEYS, ...MONITOR_KEYS])];

/** Appended to the message of a key pybal must not ignore. */
const NOT_IGNORED = 'pybal cannot honour it, and ignoring it could change how traffic is forwarded, addressed, pooled or announced';

function unknownKeyMessage(key: string, scope: KeyScope | 'default'): string {
  const other: KeyScope = scope === 'global' ? 'service' : 'global';
  if (scope !== 'default' && isKnownKey(key, other)) {
    if (mustNotIgnore(key, scope)) {
      return scope === 'global'
        ? `a service key, which does nothing in [global]: ${NOT_IGNORED}; set it in each service, or in [DEFAULT] for all of them`
        : `a [global] key, which does nothing in a service section: ${NOT_IGNORED}; set it in [global]`;
    }
    return scope === 'global' ? 'a service key; ignored in [global]' : 'a [global] key; ignored in a service section';
  }
  const monitor = monitorOfKey(key);
  const candidates =
    monitor !== undefined
      ? MONITOR_OPTIONS[monitor].map((o) => `${monitorPrefix(monitor)}.${o}`)
      : scope === 'global'
        ? GLOBAL_KEYS
        : scope === 'service'
          ? [...SERVICE_KEYS, ...MONITOR_KEYS]
          : ALL_KNOWN_KEYS;
  const suggestion = closest(key, candidates);
  const what = monitor !== undefined ? `unknown ${monitor} option` : 'unknown key';
  const hint = suggestion !== undefined ? `did you mean '${suggestion}'?` : undefined;
  if (couldChangeTraffic(key, scope)) return `${what}: ${NOT_IGNORED}${hint !== undefined ? `; ${hint}` : ''}`;
  return hint !== undefined ? `${what}; ${hint}` : `${what}; ignored`;
}

/**
 * Whether a key of this section that pybal does not use there must stop the
 * configuration. A key of the other scope: any service key (it means nothing
 * in [global]), and the BGP keys among the global ones.
 */
function mustNotIgnore(key: string, scope: KeyScope | 'default'): boolean {
  if (scope === 'global' && isKnownKey(key, 'service')) return true;
  if (scope === 'service' && isKnownKey(key, 'global')) return key.startsWith('bgp') || key.startsWith('ipvs-sync-');
  return couldChangeTraffic(key, scope);
}

interface UnknownKey {
  readonly message: string;
  /** Whether the key stops the configuration (mustNotIgnore). */
  readonly error: boolean;
}

/**
 * What to say of a key pybal does not know in this scope. Worked out once
 * per file, scope and key: a key repeated in every service would otherwise
 * be compared with every known key (for a suggestion) in each.
 */
function unknownKey(c: Collector, key: string, scope: KeyScope): UnknownKey {
  const id = `${scope}:${key}`;
  let known = c.unknownKeys.get(id);
  if (known === undefined) {
    known = { message: unknownKeyMessage(key, scope), error: mustNotIgnore(key, scope) };
    c.unknownKeys.set(id, known);
  }
  return known;
}

const cliKeyMessage = (flag: string): string => `ignored: PyBal's command line always overrides it (use ${flag})`;

/**
 * A section's own keys: warnings for PyBal's CLI keys, harmless unknown keys
 * and options of unlisted monitors; errors for unknown keys that could change
 * traffic (mustNotIgnore). Variables of interpolation are neither.
 */
function checkKeys(c: Collector, r: FieldReader, entries: ReadonlyMap<string, ResolvedEntry>, scope: KeyScope, listed?: readonly MonitorKind[]): void {
  for (const entry of entries.values()) {
    if (entry.fromDefault) continue; // reported once, at [DEFAULT]
    if (!isKnownKey(entry.key, scope) && isVariable(c, entry.key)) continue;
    const flag = CLI_KEYS[entry.key];
    if (flag !== undefined) {
      r.warn(entry.key, cliKeyMessage(flag));
    } else if (!isKnownKey(entry.key, scope)) {
      const { message, error } = unknownKey(c, entry.key, scope);
      if (error) r.error(entry.key, message);
      else r.warn(entry.key, message);
    } else if (listed !== undefined) {
      const monitor = monitorOfKey(entry.key);
      if (monitor !== undefined && !listed.includes(monitor)) {
        r.warn(entry.key, `an option of the ${monitor} monitor, which 'monitors' does not list; ignored`);
      }
    }
  }
}

function checkDefaultKeys(c: Collector): void {
  const defaults = c.document.defaults;
  if (defaults === undefined) return;
  for (const entry of defaults.entries.values()) {
    if (!ALL_KNOWN_KEYS.includes(entry.key) && isVariable(c, entry.key)) continue;
    const flag = CLI_KEYS[entry.key];
    const message =
      flag !== undefined
        ? cliKeyMessage(flag)
        : ALL_KNOWN_KEYS.includes(entry.key)
          ? undefined
          : unknownKeyMessage(entry.key, 'default');
    if (message === undefined) continue;
    const problem = { file: c.file, line: entry.line, key: entry.key, message };
    if (flag === undefined && mustNotIgnore(entry.key, 'default')) c.errors.push(problem);
    else c.warnings.push(problem);
  }
}

function parseGlobal(c: Collector, section: IniSection, present: boolean): GlobalConfig {
  const { r, entries } = readerFor(c, section);
  if (present) checkKeys(c, r, entries, 'global');

  const bgp = r.bool('bgp', false);
  const bgpLocalAsn = r.asn('bgp-local-asn');
  if (bgp && !r.has('bgp-local-asn')) r.missing('bgp-local-asn', 'required when bgp is on');

  let bgpPeerAddresses: string[] = [];
  const peerText = r.text('bgp-peer-address');
  const errorsBefore = c.errors.length;
  if (peerText !== undefined && peerText !== '') {
    // PyBal wraps a value that does not start with '[' as a one-element list.
    if (peerText.startsWith('[')) bgpPeerAddresses = r.ipList('bgp-peer-address', [], false);
    else bgpPeerAddresses = [r.ip('bgp-peer-address')?.address ?? ''].filter((a) => a !== '');
    const unique = [...new Set(bgpPeerAddresses)];
    if (unique.length !== bgpPeerAddresses.length) {
      r.warn('bgp-peer-address', 'lists a peer more than once; one session per peer');
      bgpPeerAddresses = unique;
    }
  }
  if (bgp && bgpPeerAddresses.length === 0 && c.errors.length === errorsBefore) {
    if (peerText === undefined) r.missing('bgp-peer-address', 'required when bgp is on');
    else r.error('bgp-peer-address', 'required when bgp is on: give at least one peer address');
  }

  let bgpAsPath: number[] = bgpLocalAsn !== undefined ? [bgpLocalAsn] : [];
  const asPathText = r.text('bgp-as-path');
  if (asPathText !== undefined) {
    bgpAsPath = [];
    for (const word of asPathText.split(/\s+/).filter((w) => w !== '')) {
      const asn = /^\d+$/.test(word) ? Number(word) : NaN;
      if (asn >= 1 && asn <= MAX_U32) bgpAsPath.push(asn);
      else r.error('bgp-as-path', `expected space-separated AS numbers between 1 and ${MAX_U32}, got ${show(word)}`);
    }
  }

  const holdTime = r.int('bgp-hold-time', 180, { min: 0, max: 65535 });
  if (holdTime === 1 || holdTime === 2) r.error('bgp-hold-time', `must be 0 or between 3 and 65535 seconds (RFC 4271), got ${holdTime}`);

  const routerId = r.ip('bgp-router-id', 4);
  if (routerId?.address === '0.0.0.0') r.error('bgp-router-id', 'must not be 0.0.0.0');

  return {
    bgp,
    bgpLocalAsn,
    bgpPeerAddresses,
    bgpAsPath,
    bgpMed: r.int('bgp-med', 0, { min: 0, max: MAX_U32 }),
    bgpNexthopIpv4: r.ip('bgp-nexthop-ipv4', 4)?.address,
    bgpNexthopIpv6: r.ip('bgp-nexthop-ipv6', 6)?.address,
    bgpLocalIps: r.ipList('bgp-local-ips', [''], true),
    bgpLocalPort: r.int('bgp-local-port', 179, { min: 1, max: 65535 }),
    bgpPeerAsn: r.asn('bgp-peer-asn'),
    bgpHoldTimeSec: holdTime,
    bgpRouterId: routerId?.address,
    bgpCommunities: r.communities('bgp-communities'),
    bgpConnectRetryMs: r.seconds('bgp-connect-retry', 5),
    bgpGracefulRestartSec: r.int('bgp-graceful-restart', 0, { min: 0, max: 4095 }),
    ...parseDrain(r, bgp),
    ...parseBfd(r, bgp),
    instrumentation: r.bool('instrumentation', false),
    instrumentationPort: r.int('instrumentation_port', 9090, { min: 1, max: 65535 }),
    instrumentationIps: r.ipList('instrumentation_ips', ['127.0.0.1', '::1'], true),
    runcommandMaxConcurrent: r.int('runcommand-max-concurrent', 32, { min: 1, max: 10000 }),
    ipvsResyncIntervalMs: r.seconds('ipvs-resync-interval', 60, { minSec: 1 }),
    eventHistorySize: r.int('event-history-size', 1000, { min: 10, max: 1_000_000 }),
    ipvsStatsIntervalMs: parseStatsInterval(r),
    dryRun: r.bool('dry-run', false),
    advertisedInstrumentationIps: r.ipList('advertised_instrumentation_ips', [], false),
    ipvsSync: parseIpvsSync(r),
    ipvsSloppyTcp: r.has('ipvs-sloppy-tcp') ? r.bool('ipvs-sloppy-tcp', false) : undefined,
    ipvsSloppySctp: r.has('ipvs-sloppy-sctp') ? r.bool('ipvs-sloppy-sctp', false) : undefined,
    dataPathFwmarkBase: parseFwmark(r, 'datapath-fwmark-base', MAX_U32 - DATAPATH_FWMARK_COUNT + 1) ?? DEFAULT_DATAPATH_FWMARK_BASE,
    dataPathSourceIpv4: r.ip('datapath-source-ipv4', 4)?.address,
    dataPathSourceIpv6: r.ip('datapath-source-ipv6', 6)?.address,
    memorySaving: r.bool('memory-saving', false),
  };
}

/** `ipvs-stats-interval`: 0 (off), or at least 1 s (a reading dumps every destination of pybal's services). */
function parseStatsInterval(r: FieldReader): number {
  const ms = r.seconds('ipvs-stats-interval', 10, { allowZero: true });
  if (ms !== 0 && ms < 1000) {
    r.error('ipvs-stats-interval', `must be 0 (off) or at least 1 seconds, got ${ms / 1000}`);
    return 10_000;
  }
  return ms;
}

/** `bgp-bfd` and its timers ([global]). */
function parseBfd(r: FieldReader, bgp: boolean): Pick<GlobalConfig, 'bgpBfd' | 'bgpBfdIntervalMs' | 'bgpBfdMultiplier'> {
  const bfd = r.bool('bgp-bfd', false);
  const intervalMs = r.seconds('bgp-bfd-interval', 0.3, { minSec: 0.01 });
  if (intervalMs > 60_000) r.error('bgp-bfd-interval', `must be at most 60 seconds, got ${intervalMs / 1000}`);
  const multiplier = r.int('bgp-bfd-multiplier', 3, { min: 1, max: 255 });
  if (!bfd) {
    for (const key of ['bgp-bfd-interval', 'bgp-bfd-multiplier']) if (r.has(key)) r.warn(key, 'has no effect without bgp-bfd = yes');
  } else if (!bgp) {
    r.warn('bgp-bfd', 'has no effect without bgp = yes: BFD runs with the BGP peers');
  }
  return { bgpBfd: bfd, bgpBfdIntervalMs: intervalMs, bgpBfdMultiplier: multiplier };
}

/** `bgp-drain` and `bgp-drain-med` ([global]); checked against the MEDs of the services in crossCheck. */
function parseDrain(r: FieldReader, bgp: boolean): Pick<GlobalConfig, 'bgpDrain' | 'bgpDrainMed'> {
  const drain = r.bool('bgp-drain', false);
  const med = r.int('bgp-drain-med', MAX_U32, { min: 0, max: MAX_U32 });
  if (!bgp) {
    for (const key of ['bgp-drain', 'bgp-drain-med']) if (r.has(key)) r.warn(key, 'has no effect without bgp = yes: nothing is announced to drain');
  }
  return { bgpDrain: drain, bgpDrainMed: med };
}

/**
 * Draining makes a VIP less preferred by raising its MED to bgp-drain-med: a
 * service already announced with that MED or a higher one would not be
 * (only routers that honour GRACEFUL_SHUTDOWN would move its traffic).
 */
function checkDrainMed(c: Collector, global: GlobalConfig, services: readonly ServiceConfig[], globalSection: IniSection | undefined): void {
  const announced = services.filter((s) => s.bgp && s.ip !== '').map((s) => ({ s, med: s.bgpMed ?? global.bgpMed }));
  const worst = announced.reduce<(typeof announced)[number] | undefined>((a, b) => (a === undefined || b.med > a.med ? b : a), undefined);
  if (worst === undefined || worst.med < global.bgpDrainMed) return;
  const key = 'bgp-drain-med';
  const line = globalSection?.entries.get(key)?.line ?? c.document.defaults?.entries.get(key)?.line ?? globalSection?.line;
  const where = worst.s.bgpMed === undefined ? 'the global bgp-med' : `bgp-med of [${worst.s.name}]`;
  c.warnings.push({
    file: c.file,
    line,
    key,
    message:
      `${global.bgpDrainMed} is not higher than the MED ${worst.med} (${where}): a drained VIP would not be less preferred by MED, ` +
      'and only routers that honour GRACEFUL_SHUTDOWN (65535:0) would move its traffic',
  });
}

const IPVS_SYNC_COMPANIONS = ['ipvs-sync-interface', 'ipvs-sync-id', 'ipvs-sync-group', 'ipvs-sync-port', 'ipvs-sync-ttl'] as const;
/** An interface name as the kernel takes it (IFNAMSIZ - 1 bytes, no '/', ':' or white space). */
const IFNAME_RE = /^[^/:\s]{1,15}$/;

/** `ipvs-sync-daemon` and its companions ([global]); undefined when the daemon key is absent. */
function parseIpvsSync(r: FieldReader): IpvsSyncConfig | undefined {
  const modeText = r.text('ipvs-sync-daemon');
  const mode = r.oneOf('ipvs-sync-daemon', IPVS_SYNC_MODES, 'sync daemon mode');
  const interfaceName = r.text('ipvs-sync-interface');
  if (interfaceName !== undefined && !IFNAME_RE.test(interfaceName)) {
    r.error('ipvs-sync-interface', `expected an interface name (1 to 15 characters, no '/', ':' or spaces), got ${show(interfaceName)}`);
  }
  const syncId = r.int('ipvs-sync-id', 0, { min: 0, max: 255 });
  const group = r.ip('ipvs-sync-group');
  if (group !== undefined && !isMulticast(group)) r.error('ipvs-sync-group', `expected a multicast group (224.0.0.0/4 or ff00::/8), got ${group.address}`);
  const port = r.optionalInt('ipvs-sync-port', { min: 1, max: 65535 });
  const ttl = r.optionalInt('ipvs-sync-ttl', { min: 1, max: 255 });
  if (modeText === undefined || mode === 'none') {
    const why = modeText === undefined ? 'without ipvs-sync-daemon, pybal starts no sync daemon' : 'ipvs-sync-daemon = none starts no sync daemon';
    for (const key of IPVS_SYNC_COMPANIONS) if (r.has(key)) r.warn(key, `has no effect: ${why}`);
    return mode === 'none' ? { mode, interface: '', syncId: 0, group: undefined, port: undefined, ttl: undefined } : undefined;
  }
  if (mode === undefined) return undefined;
  if (interfaceName === undefined) r.missing('ipvs-sync-interface', `required with ipvs-sync-daemon = ${mode}: the interface the sync messages use`);
  return { mode, interface: interfaceName ?? '', syncId, group: group?.address, port, ttl };
}

function isMulticast(ip: IpAddress): boolean {
  if (ip.family === 6) return ip.address.toLowerCase().startsWith('ff');
  const first = Number(ip.address.split('.')[0]);
  return first >= 224 && first <= 239;
}

const ETCD_URL_RE = /^etcd3?:\/\/[^/:@?#\s]+(?::(\d{1,5}))?\/[^?#\s]+$/;

function checkPoolUrl(r: FieldReader): string {
  const url = r.requiredText('config');
  if (url === undefined) return '';
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    r.error('config', `expected a pool URL (file://, http://, https://, etcd://, etcd3://), got ${show(url)}`);
  } else if (!POOL_SCHEMES.includes(`${scheme}:`)) {
    r.error('config', `unsupported pool URL scheme '${scheme}:' in ${show(url)} (supported: file://, http://, https://, etcd://, etcd3://)`);
  } else if (scheme === 'file') {
    if (!/^file:\/\/\/./i.test(url)) r.error('config', `expected file:///absolute/path, got ${show(url)}`);
  } else if (scheme === 'etcd' || scheme === 'etcd3') {
    const port = ETCD_URL_RE.exec(url)?.[1];
    if (!ETCD_URL_RE.test(url) || (port !== undefined && (Number(port) < 1 || Number(port) > 65535))) {
      r.error('config', `expected ${scheme}://host[:port]/path, got ${show(url)}`);
    }
  } else if (!isHttpUrl(url)) {
    r.error('config', `expected ${scheme}://host[:port]/path, got ${show(url)}`);
  }
  return url;
}

/** PyBal finds a monitor's module by its name in any case. */
const MONITOR_KIND_BY_LOWER_NAME: ReadonlyMap<string, MonitorKind> = new Map(MONITOR_KINDS.map((kind) => [kind.toLowerCase(), kind]));

/** The listed monitors; undefined when the list itself is malformed. */
function parseMonitorList(r: FieldReader, service: string): MonitorKind[] | undefined {
  if (!r.has('monitors')) {
    r.warn('monitors', `LVS service ${service} does not have a 'monitors' configuration option set; its servers will never be health-checked`);
    return [];
  }
  const names = r.stringList('monitors');
  if (names === undefined) return undefined;
  if (names.length === 0) r.warn('monitors', `an empty list: the servers of ${service} will never be health-checked`);
  const kinds: MonitorKind[] = [];
  for (const name of names) {
    const kind = MONITOR_KIND_BY_LOWER_NAME.get(name.toLowerCase());
    if (kind === undefined) {
      const hint = closest(name, MONITOR_KINDS);
      r.error('monitors', `unknown monitor '${name}'${hint !== undefined ? `; did you mean '${hint}'?` : ''} (known: ${MONITOR_KINDS.join(', ')})`);
    } else if (kinds.includes(kind)) {
      r.warn('monitors', `${kind} is listed more than once; it runs once`);
    } else {
      kinds.push(kind);
    }
  }
  return kinds;
}

const SCHEDULER_FLAG_SCHEDULERS: readonly Scheduler[] = ['sh', 'mh'];
/** The scheduler flags also written as keys of their own (`sh-port = yes`, as keepalived and ipvsadm name them). */
const SCHEDULER_FLAG_KEYS = ['sh-fallback', 'sh-port', 'mh-fallback', 'mh-port'] as const;

/** `scheduler-flags` (a list, or words) and the boolean keys `sh-port` and the like, checked against the scheduler. */
function parseSchedulerFlags(r: FieldReader, scheduler: Scheduler | undefined): ('fallback' | 'port')[] {
  const flags: ('fallback' | 'port')[] = [];
  const add = (key: string, word: string): void => {
    const m = /^(sh|mh)-(fallback|port)$/.exec(word);
    if (!m) {
      r.error(key, `unknown flag ${show(word)}; expected sh-fallback, sh-port, mh-fallback or mh-port`);
    } else if (scheduler !== undefined && m[1] !== scheduler) {
      r.error(
        key,
        SCHEDULER_FLAG_SCHEDULERS.includes(scheduler)
          ? `${word} does not apply to the ${scheduler} scheduler (use ${scheduler}-${m[2] as string})`
          : `${word} needs the ${m[1] as string} scheduler, not ${scheduler}`,
      );
    } else if (!flags.includes(m[2] as 'fallback' | 'port')) {
      flags.push(m[2] as 'fallback' | 'port');
    }
  };
  const key = 'scheduler-flags';
  const text = r.text(key);
  if (text !== undefined && text !== '') {
    const words = text.startsWith('[') ? r.stringList(key) : text.split(/[\s,]+/).filter((w) => w !== '');
    for (const word of words ?? []) add(key, word);
  }
  for (const flagKey of SCHEDULER_FLAG_KEYS) if (r.bool(flagKey, false)) add(flagKey, flagKey);
  return flags;
}

const FORWARDING_NAMES: Readonly<Record<ForwardMethod, string>> = { dr: 'direct routing', nat: 'NAT', tunnel: 'tunnelling' };

/** `forward-method`, or newer PyBal's `tunneling = true`; the two must agree. */
function parseForwardMethod(r: FieldReader): ForwardMethod {
  const method = r.oneOf('forward-method', FORWARD_METHODS, 'forward method');
  if (!r.has('tunneling')) return method ?? 'dr';
  const tunneling = r.bool('tunneling', false);
  if (tunneling && method !== undefined && method !== 'tunnel') {
    r.error('tunneling', `tunneling = ${r.text('tunneling') as string} contradicts forward-method = ${method}`);
  } else if (!tunneling && method === 'tunnel') {
    r.error('tunneling', `tunneling = ${r.text('tunneling') as string} contradicts forward-method = tunnel`);
  }
  return tunneling ? 'tunnel' : (method ?? 'dr');
}

/** `tunnel-type`, `tunnel-port`, `tunnel-checksum`: only for tunnel forwarding, each checked against the type. */
function parseTunnel(r: FieldReader, method: ForwardMethod): TunnelConfig {
  const type = r.oneOf('tunnel-type', TUNNEL_TYPES, 'tunnel type') ?? 'ipip';
  const port = r.optionalInt('tunnel-port', { min: 1, max: 65535 });
  const checksum = r.oneOf('tunnel-checksum', TUNNEL_CHECKSUMS, 'tunnel checksum') ?? 'none';
  if (method !== 'tunnel') {
    for (const key of ['tunnel-type', 'tunnel-port', 'tunnel-checksum']) {
      if (r.has(key)) r.error(key, `applies only to tunnel forwarding (tunneling = yes or forward-method = tunnel); this service uses ${FORWARDING_NAMES[method]}`);
    }
  } else if (type === 'gue' && port === undefined && !r.has('tunnel-port')) {
    r.missing('tunnel-port', 'required with tunnel-type = gue: the UDP port the real servers receive GUE on');
  } else if (type !== 'gue' && port !== undefined) {
    r.error('tunnel-port', `applies only to tunnel-type = gue (a UDP port); ${type} has none`);
  }
  if (method === 'tunnel' && checksum === 'remcsum' && type !== 'gue') r.error('tunnel-checksum', `remcsum needs tunnel-type = gue, not ${type}`);
  if (method === 'tunnel' && checksum === 'csum' && type === 'ipip') r.error('tunnel-checksum', 'IPIP carries no checksum: csum needs tunnel-type = gue or gre');
  return { type, port: port ?? 0, checksum };
}

/** A firewall mark 1..max, decimal or 0x hexadecimal (as iptables and nft print marks); `key` is `fwmark` unless said. */
function parseFwmark(r: FieldReader, key = 'fwmark', max = MAX_U32): number | undefined {
  const text = r.text(key);
  if (text === undefined) return undefined;
  const mark = /^0x[0-9a-f]{1,8}$/i.test(text) ? Number.parseInt(text.slice(2), 16) : /^\d{1,10}$/.test(text) ? Number(text) : NaN;
  if (mark >= 1 && mark <= max) return mark;
  r.error(key, `expected a firewall mark between 1 and ${max} (decimal or 0x hexadecimal), got ${show(text)}`);
  return undefined;
}

/**
 * `datapath-check` and `<monitor>.datapath`: the monitors that check through
 * the data path. A monitor's own key overrides the service's; only monitors
 * that can (DATAPATH_MONITORS) take it, and only direct routing and tunnels
 * have a data path other than the server's address.
 */
function parseDataPathMonitors(r: FieldReader, monitors: readonly MonitorConfig[], forwardMethod: ServiceConfig['forwardMethod']): MonitorKind[] {
  const serviceWide = r.bool('datapath-check', false);
  const kinds: MonitorKind[] = [];
  for (const m of monitors) {
    const key = `${monitorPrefix(m.kind)}.datapath`;
    if (!DATAPATH_MONITORS.has(m.kind)) continue;
    if (r.has(key) ? r.bool(key, serviceWide) : serviceWide) kinds.push(m.kind);
  }
  if (forwardMethod === 'nat' && (serviceWide || kinds.length > 0)) {
    r.warn(r.has('datapath-check') ? 'datapath-check' : undefined, 'has no effect with forward-method = nat: checks of a NAT service reach the real server the way client traffic does already');
    return [];
  }
  if (serviceWide && kinds.length === 0 && monitors.length > 0) {
    r.warn('datapath-check', `none of this service's monitors can check through the data path (only ${[...DATAPATH_MONITORS].join(', ')} can)`);
  }
  return kinds;
}

/** `persistence-engine`: a kernel persistence engine, on a persistent service. */
function parsePersistenceEngine(r: FieldReader, persistent: boolean, protocol: Protocol | undefined, fwmark: number | undefined): string | undefined {
  const key = 'persistence-engine';
  const engine = r.oneOf(key, PERSISTENCE_ENGINES, 'persistence engine');
  if (engine === undefined) return undefined;
  if (!persistent) r.error(key, 'works only on a persistent service: set persistence-timeout too');
  // ip_vs_pe_sip reads the Call-ID of UDP datagrams; other packets fall back to plain persistence.
  if (engine === 'sip' && fwmark === undefined && protocol !== undefined && protocol !== 'udp') r.error(key, `sip reads SIP over UDP; this service is ${protocol}`);
  return engine;
}

/** `upper-threshold` and `lower-threshold`, connections per real server. */
function parseThresholds(r: FieldReader): { upperThreshold: number; lowerThreshold: number } {
  const upperThreshold = r.int('upper-threshold', 0, { min: 0, max: MAX_U32 });
  const lowerThreshold = r.int('lower-threshold', 0, { min: 0, max: MAX_U32 });
  if (lowerThreshold > 0 && upperThreshold === 0) {
    r.error('lower-threshold', 'means nothing without upper-threshold: a server is overloaded only above the upper threshold');
  } else if (lowerThreshold > upperThreshold) {
    r.error('lower-threshold', `${lowerThreshold} is above upper-threshold ${upperThreshold}`);
  }
  return { upperThreshold, lowerThreshold };
}

/** `real-port`: NAT only, since direct routing and tunnelling deliver the packet to the VIP's own port. */
function parseRealPort(r: FieldReader, method: ForwardMethod): number | undefined {
  const realPort = r.optionalInt('real-port', { min: 1, max: 65535 });
  if (realPort !== undefined && method !== 'nat') {
    r.error('real-port', `needs forward-method = nat: with ${FORWARDING_NAMES[method]} the real servers receive the VIP's own port`);
  }
  return realPort;
}

function parsePersistenceNetmask(r: FieldReader, family: AddressFamily | undefined): string | undefined {
  const key = 'persistence-netmask';
  const text = r.text(key);
  if (text === undefined) return undefined;
  if (family === 6) {
    const m = /^\/?(\d{1,3})$/.exec(text);
    const bits = m ? Number(m[1]) : NaN;
    if (bits >= 1 && bits <= 128) return String(bits);
    r.error(key, `expected an IPv6 prefix length between 1 and 128 for an IPv6 service, got ${show(text)}`);
    return undefined;
  }
  const octets = parseIpv4Octets(text);
  const mask = octets === undefined ? undefined : octets.reduce((acc, o) => acc * 256 + o, 0);
  // Contiguous: the inverted mask plus one is a power of two.
  const contiguous = mask !== undefined && mask !== 0 && ((MAX_U32 - mask + 1) & (MAX_U32 - mask)) === 0;
  if (octets !== undefined && contiguous) return octets.join('.');
  r.error(key, `expected an IPv4 netmask such as 255.255.255.0 for an IPv4 service, got ${show(text)}`);
  return undefined;
}

function parseService(c: Collector, section: IniSection): ServiceConfig {
  const { r, entries } = readerFor(c, section);
  const name = section.name;
  if (name.toLowerCase() === GLOBAL_SECTION) {
    r.warn(undefined, `[${name}] is a service section; the global section is spelled [global] (case matters)`);
  } else if (!r.has('protocol') && closest(name, [GLOBAL_SECTION]) !== undefined) {
    r.warn(undefined, `[${name}] is read as a service section; did you mean [global]?`);
  }

  const protocolText = r.text('protocol');
  const protocol = protocolText === undefined ? (r.missing('protocol'), undefined) : r.oneOf('protocol', PROTOCOLS, 'protocol');
  const ipText = r.text('ip');
  const ip = ipText === undefined ? (r.missing('ip'), undefined) : r.ip('ip');
  const portText = r.text('port');
  const port = portText === undefined ? (r.missing('port'), undefined) : r.parseInt('port', portText, { min: 1, max: 65535 });
  const schedulerText = r.text('scheduler');
  const scheduler = schedulerText === undefined ? (r.missing('scheduler'), undefined) : r.oneOf('scheduler', SCHEDULERS, 'scheduler');

  const ops = r.bool('ops', false);
  if (ops && protocol !== undefined && protocol !== 'udp') r.error('ops', 'OPS can only be used with UDP virtual services');

  const kinds = parseMonitorList(r, name);
  checkKeys(c, r, entries, 'service', kinds);
  const monitors: MonitorConfig[] = (kinds ?? []).map((kind) => parseMonitor(r, kind));

  const persistenceTimeoutSec = r.int('persistence-timeout', 0, { min: 0, max: 2147483647 });
  const persistenceNetmask = parsePersistenceNetmask(r, ip?.family);
  if (persistenceNetmask !== undefined && persistenceTimeoutSec === 0) {
    r.warn('persistence-netmask', 'ignored unless persistence-timeout is greater than 0');
  }
  const forwardMethod = parseForwardMethod(r);
  const fwmark = parseFwmark(r);
  const bgpMed = r.optionalInt('bgp-med', { min: 0, max: MAX_U32 });
  const bgp = r.bool('bgp', true);

  return {
    name,
    source: { file: c.file, line: section.line },
    protocol: protocol ?? 'tcp',
    ip: ip?.address ?? '',
    family: ip?.family ?? 4,
    port: port ?? 0,
    scheduler: scheduler ?? 'wlc',
    schedulerFlags: parseSchedulerFlags(r, scheduler),
    ops,
    poolUrl: checkPoolUrl(r),
    monitors,
    depoolThreshold: r.float('depool-threshold', 0.5, { min: 0, max: 1 }),
    bgp,
    bgpMed,
    bgpCommunities: r.communities('bgp-communities'),
    bgpWithdrawWhenDown: r.bool('bgp-withdraw-when-down', false),
    forwardMethod,
    tunnel: parseTunnel(r, forwardMethod),
    fwmark,
    realPort: parseRealPort(r, forwardMethod),
    persistenceTimeoutSec,
    persistenceNetmask,
    persistenceEngine: parsePersistenceEngine(r, persistenceTimeoutSec > 0, protocol, fwmark),
    ...parseThresholds(r),
    dataPathMonitors: parseDataPathMonitors(r, monitors, forwardMethod),
  };
}

/**
 * Checks that need every service: duplicates, MEDs shared by an IP, next hops.
 * `sections[i]` is the section of `services[i]`.
 */
function crossCheck(
  c: Collector,
  global: GlobalConfig,
  services: readonly ServiceConfig[],
  sections: readonly IniSection[],
  globalSection: IniSection | undefined,
): void {
  const seen = new Map<string, ServiceConfig>();
  const meds = new Map<string, ServiceConfig>();
  const markBase = global.dataPathFwmarkBase;
  for (const [i, s] of services.entries()) {
    if (s.fwmark !== undefined && s.fwmark >= markBase && s.fwmark < markBase + DATAPATH_FWMARK_COUNT) {
      const line = sections[i]?.entries.get('fwmark')?.line ?? s.source.line;
      const range = `0x${markBase.toString(16)}-0x${(markBase + DATAPATH_FWMARK_COUNT - 1).toString(16)}`;
      c.errors.push({ file: c.file, line, key: 'fwmark', message: `[${s.name}] fwmark ${s.fwmark} is in the range data-path checks use (${range}, datapath-fwmark-base): choose another mark or move datapath-fwmark-base` });
    }
    if (s.ip === '' || s.port === 0) continue;
    // The kernel service's identity: a firewall mark (per family), or protocol, ip and port.
    const id = s.fwmark !== undefined ? `fwmark ${s.family} ${s.fwmark}` : `${s.protocol} ${s.ip} ${s.port}`;
    const first = seen.get(id);
    if (first !== undefined) {
      // Named at the later section's fwmark or ip (its own or the [DEFAULT] one it inherits).
      const key = s.fwmark !== undefined ? 'fwmark' : 'ip';
      const line = sections[i]?.entries.get(key)?.line ?? c.document.defaults?.entries.get(key)?.line ?? s.source.line;
      const same = s.fwmark !== undefined ? `the same firewall mark (IPv${s.family} fwmark ${s.fwmark})` : `the same protocol, ip and port (${s.protocol} ${formatEndpoint(s)})`;
      c.errors.push({ file: c.file, line, key, message: `[${s.name}] has ${same} as [${first.name}] (line ${first.source.line})` });
    } else {
      seen.set(id, s);
    }
    if (!s.bgp) continue;
    // PyBal: every service announcing one IP must have the same per-service MED (or none).
    const other = meds.get(s.ip);
    if (other === undefined) {
      meds.set(s.ip, s);
    } else if (other.bgpMed !== s.bgpMed) {
      c.errors.push({
        file: c.file,
        line: s.source.line,
        key: 'bgp-med',
        message: `LVS service ${s.name} MED value ${s.bgpMed ?? 'None'} differs from other MED values for IP ${s.ip} ([${other.name}] has ${other.bgpMed ?? 'None'})`,
      });
    }
  }
  if (!global.bgp) return;
  checkDrainMed(c, global, services, globalSection);
  const line = globalSection?.line;
  for (const family of [4, 6] as const) {
    const nexthop = family === 4 ? global.bgpNexthopIpv4 : global.bgpNexthopIpv6;
    const key = `bgp-nexthop-ipv${family}`;
    const announcing = services.some((s) => s.bgp && s.family === family && s.ip !== '');
    if (announcing && nexthop === undefined && !c.errors.some((e) => e.key === key)) {
      c.errors.push({ file: c.file, line, key, message: `IPv${family} BGP NextHop (global configuration variable '${key}') not set` });
    }
  }
}

export function formatEndpoint(s: Pick<ServiceConfig, 'ip' | 'family' | 'port'>): string {
  return s.family === 6 ? `[${s.ip}]:${s.port}` : `${s.ip}:${s.port}`;
}

function byLine(a: Problem, b: Problem): number {
  return (a.line ?? 0) - (b.line ?? 0);
}

/** Keeps the first of identical problems (a [DEFAULT] value is checked in every section). */
function unique(problems: readonly Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const id = `${p.line ?? ''}\u0000${p.key ?? ''}\u0000${p.message}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

export function parseConfig(text: string, file: string): ParseResult {
  return finish(parseConfigSteps(text, file));
}

/**
 * parseConfig as a job for a sliced runner (src/runtime/sliced.ts): it
 * yields every few hundred lines of the file and at each service. A SIGHUP
 * of 1,000 services parsed and planned in one go held the event loop 0.7 to
 * 1 s in the lab guest.
 */
export function* parseConfigSteps(text: string, file: string): Generator<unknown, ParseResult, undefined> {
  // The lines are not what they seem: report that alone, not its consequences.
  const lineEndings = checkLineEndings(text, file);
  if (lineEndings.length > 0) return { errors: lineEndings, warnings: [] };
  const ini = yield* readIniSteps(text, file);
  const c: Collector = {
    file,
    document: ini.document,
    errors: [...ini.errors],
    warnings: [...ini.warnings],
    literals: new Map(),
    unknownKeys: new Map(),
  };
  checkDefaultKeys(c);
  const globalSection = ini.document.sections.find((s) => s.name === GLOBAL_SECTION);
  // Without a [global] section, [DEFAULT] alone still applies (line 0: no line to name).
  const global = parseGlobal(c, globalSection ?? { name: GLOBAL_SECTION, line: 0, entries: new Map() }, globalSection !== undefined);
  const serviceSections = ini.document.sections.filter((s) => s.name !== GLOBAL_SECTION);
  const services: ServiceConfig[] = [];
  for (const section of serviceSections) {
    services.push(parseService(c, section));
    yield;
  }
  crossCheck(c, global, services, serviceSections, globalSection);
  // PyBal runs with no services; for pybal it is an error, so that an emptied or
  // truncated file can neither start a director that serves nothing nor, on
  // SIGHUP, remove every service of a running one.
  if (services.length === 0) {
    const empty = pyStrip(text.replace(/^\ufeff/, '')) === '' ? 'the file is empty: ' : '';
    c.errors.push({ file, message: `${empty}no services are defined (every section other than [global] is a service); pybal refuses to run without one` });
  }
  const errors = unique(c.errors).sort(byLine);
  const warnings = unique(c.warnings).sort(byLine);
  if (errors.length > 0) return { errors, warnings };
  return { config: { file, global, services }, errors, warnings };
}
