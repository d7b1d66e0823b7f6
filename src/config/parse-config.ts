/**
 * pybal.conf text -> the typed Config, with every problem of the file
 * collected: errors (the file cannot be used) and warnings (PyBal accepts it,
 * but an operator should hear about it). Nothing is thrown and nothing in the
 * file is evaluated. Pure: no I/O.
 */

import type { Problem } from '../runtime/errors.js';
import { createFieldReader, type FieldReader, isHttpUrl, MAX_U32, show } from './field-reader.js';
import { checkLineEndings, pyStrip, readIni, resolveSection, type IniDocument, type IniSection, type ResolvedEntry } from './ini-reader.js';
import { parseIpv4Octets } from './ip-address.js';
import {
  CLI_KEYS,
  closest,
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
  type ForwardMethod,
  type GlobalConfig,
  MONITOR_KINDS,
  type MonitorConfig,
  type MonitorKind,
  type Protocol,
  SCHEDULERS,
  type Scheduler,
  type ServiceConfig,
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
}

function readerFor(c: Collector, section: IniSection): { r: FieldReader; entries: ReadonlyMap<string, ResolvedEntry> } {
  const { entries, errors, failed } = resolveSection(c.document, section);
  c.errors.push(...errors);
  const r = createFieldReader({
    file: c.file,
    failed,
    section: section.name,
    sectionLine: section.line > 0 ? section.line : undefined,
    entries,
    errors: c.errors,
    warnings: c.warnings,
  });
  return { r, entries };
}

const ALL_KNOWN_KEYS: readonly string[] = [...new Set([...GLOBAL_KEYS, ...SERVICE_KEYS, ...MONITOR_KEYS])];

function unknownKeyMessage(key: string, scope: KeyScope | 'default'): string {
  const other: KeyScope = scope === 'global' ? 'service' : 'global';
  if (scope !== 'default' && isKnownKey(key, other)) {
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
  return suggestion !== undefined ? `${what}; did you mean '${suggestion}'?` : `${what}; ignored`;
}

const cliKeyMessage = (flag: string): string => `ignored: PyBal's command line always overrides it (use ${flag})`;

/** Warnings about a section's own keys: PyBal's CLI keys, unknown keys and options of unlisted monitors. */
function checkKeys(r: FieldReader, entries: ReadonlyMap<string, ResolvedEntry>, scope: KeyScope, listed?: ReadonlySet<MonitorKind>): void {
  for (const entry of entries.values()) {
    if (entry.fromDefault) continue; // reported once, at [DEFAULT]
    const flag = CLI_KEYS[entry.key];
    if (flag !== undefined) {
      r.warn(entry.key, cliKeyMessage(flag));
    } else if (!isKnownKey(entry.key, scope)) {
      r.warn(entry.key, unknownKeyMessage(entry.key, scope));
    } else if (listed !== undefined) {
      const monitor = monitorOfKey(entry.key);
      if (monitor !== undefined && !listed.has(monitor)) {
        r.warn(entry.key, `an option of the ${monitor} monitor, which 'monitors' does not list; ignored`);
      }
    }
  }
}

function checkDefaultKeys(c: Collector): void {
  const defaults = c.document.defaults;
  if (defaults === undefined) return;
  for (const entry of defaults.entries.values()) {
    const flag = CLI_KEYS[entry.key];
    const message =
      flag !== undefined
        ? cliKeyMessage(flag)
        : ALL_KNOWN_KEYS.includes(entry.key)
          ? undefined
          : unknownKeyMessage(entry.key, 'default');
    if (message !== undefined) c.warnings.push({ file: c.file, line: entry.line, key: entry.key, message });
  }
}

function parseGlobal(c: Collector, section: IniSection, present: boolean): GlobalConfig {
  const { r, entries } = readerFor(c, section);
  if (present) checkKeys(r, entries, 'global');

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
    instrumentation: r.bool('instrumentation', false),
    instrumentationPort: r.int('instrumentation_port', 9090, { min: 1, max: 65535 }),
    instrumentationIps: r.ipList('instrumentation_ips', ['127.0.0.1', '::1'], true),
    runcommandMaxConcurrent: r.int('runcommand-max-concurrent', 32, { min: 1, max: 10000 }),
    ipvsResyncIntervalMs: r.seconds('ipvs-resync-interval', 60, { minSec: 1 }),
  };
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
    const kind = MONITOR_KINDS.find((k) => k.toLowerCase() === name.toLowerCase());
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

function parseSchedulerFlags(r: FieldReader, scheduler: Scheduler | undefined): ('fallback' | 'port')[] {
  const key = 'scheduler-flags';
  const text = r.text(key);
  if (text === undefined || text === '') return [];
  const words = text.startsWith('[') ? r.stringList(key) : text.split(/[\s,]+/).filter((w) => w !== '');
  if (words === undefined) return [];
  const flags: ('fallback' | 'port')[] = [];
  for (const word of words) {
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
  }
  return flags;
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
  checkKeys(r, entries, 'service', kinds && new Set(kinds));
  const monitors: MonitorConfig[] = (kinds ?? []).map((kind) => parseMonitor(r, kind));

  const persistenceTimeoutSec = r.int('persistence-timeout', 0, { min: 0, max: 2147483647 });
  const persistenceNetmask = parsePersistenceNetmask(r, ip?.family);
  if (persistenceNetmask !== undefined && persistenceTimeoutSec === 0) {
    r.warn('persistence-netmask', 'ignored unless persistence-timeout is greater than 0');
  }
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
    forwardMethod: r.oneOf('forward-method', FORWARD_METHODS, 'forward method') ?? 'dr',
    persistenceTimeoutSec,
    persistenceNetmask,
  };
}

/** Checks that need every service: duplicates, MEDs shared by an IP, next hops. */
function crossCheck(c: Collector, global: GlobalConfig, services: readonly ServiceConfig[], globalSection: IniSection | undefined): void {
  const seen = new Map<string, ServiceConfig>();
  const meds = new Map<string, ServiceConfig>();
  for (const s of services) {
    if (s.ip === '' || s.port === 0) continue;
    const id = `${s.protocol} ${s.ip} ${s.port}`;
    const first = seen.get(id);
    if (first !== undefined) {
      // Named at the later section's ip (its own or the [DEFAULT] one it inherits).
      const section = c.document.sections.find((x) => x.name === s.name);
      const ipLine = section?.entries.get('ip')?.line ?? c.document.defaults?.entries.get('ip')?.line ?? s.source.line;
      c.errors.push({
        file: c.file,
        line: ipLine,
        key: 'ip',
        message: `[${s.name}] has the same protocol, ip and port (${s.protocol} ${formatEndpoint(s)}) as [${first.name}] (line ${first.source.line})`,
      });
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
  // The lines are not what they seem: report that alone, not its consequences.
  const lineEndings = checkLineEndings(text, file);
  if (lineEndings.length > 0) return { errors: lineEndings, warnings: [] };
  const ini = readIni(text, file);
  const c: Collector = { file, document: ini.document, errors: [...ini.errors], warnings: [...ini.warnings] };
  checkDefaultKeys(c);
  const globalSection = ini.document.sections.find((s) => s.name === GLOBAL_SECTION);
  // Without a [global] section, [DEFAULT] alone still applies (line 0: no line to name).
  const global = parseGlobal(c, globalSection ?? { name: GLOBAL_SECTION, line: 0, entries: new Map() }, globalSection !== undefined);
  const services = ini.document.sections.filter((s) => s.name !== GLOBAL_SECTION).map((s) => parseService(c, s));
  crossCheck(c, global, services, globalSection);
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
