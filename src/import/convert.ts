/**
 * LVS services (model.ts) -> pybal.conf text and one pool file per service
 * in PyBal's legacy format, with every note of the reader written as a
 * comment naming its source file and line. Pure.
 *
 * Decided here, for every service:
 * - depool-threshold is written as .5 (pybal's default), with a comment:
 *   keepalived and ldirectord remove every failed server, pybal keeps at
 *   least that share of a pool pooled even when its checks fail.
 * - BGP stays off ([global] bgp = no): the VIPs must reach this director as
 *   they did (VRRP, heartbeat); announcing them is a decision to make.
 * - one monitor of each kind per service: a second check of the same kind
 *   is left out, with a note.
 */

import { formatPyValue } from '../config/python-literal.js';
import type { CommandArgument } from '../config/types.js';
import { formatSourceRef, type ImportNote, type LvsCheck, type LvsImport, type LvsServer, type LvsService, type SourceRef } from './model.js';
import { checkRegex, hasRegexSpecials } from './service-builder.js';
import { DEFAULT_POOL_DIR } from '../runtime/defaults.js';

export { DEFAULT_POOL_DIR };
export const DEFAULT_DEPOOL_THRESHOLD = '.5';

export interface ConvertOptions {
  /** The directory the pool files live in on the director (`config = file://DIR/NAME`). */
  readonly poolDir?: string;
}

export interface PoolFile {
  /** The service (section) it belongs to; also the file's name. */
  readonly service: string;
  readonly text: string;
}

export interface ConvertedService {
  readonly name: string;
  readonly servers: number;
  /** Comment lines written for it. */
  readonly comments: number;
  /** What must be filled in by hand before pybal can use it (an unknown VIP...). */
  readonly missing: readonly string[];
}

export interface Conversion {
  readonly conf: string;
  readonly pools: readonly PoolFile[];
  readonly services: readonly ConvertedService[];
  /** Comment lines that carry notes (file:line: why), in the whole pybal.conf. */
  readonly comments: number;
}

/** Monitor names and option prefixes, per check kind. */
const MONITORS: Readonly<Record<LvsCheck['kind'], { readonly name: string; readonly prefix: string }>> = {
  http: { name: 'ProxyFetch', prefix: 'proxyfetch' },
  tcp: { name: 'TCPConnect', prefix: 'tcpconnect' },
  command: { name: 'RunCommand', prefix: 'runcommand' },
  ping: { name: 'Ping', prefix: 'ping' },
  udp: { name: 'UDP', prefix: 'udp' },
  dns: { name: 'DNSQuery', prefix: 'dnsquery' },
};

/** Service names for well-known ports. */
const PORT_NAMES: Readonly<Record<number, string>> = {
  21: 'ftp',
  22: 'ssh',
  25: 'smtp',
  53: 'dns',
  80: 'http',
  110: 'pop3',
  123: 'ntp',
  143: 'imap',
  389: 'ldap',
  443: 'https',
  587: 'submission',
  636: 'ldaps',
  993: 'imaps',
  995: 'pop3s',
  1812: 'radius',
  3306: 'mysql',
  5060: 'sip',
  5432: 'pgsql',
  8080: 'http',
  8443: 'https',
};

/** The source format as its users call it, for comments. */
const TOOL: Readonly<Record<LvsImport['format'], string>> = { keepalived: 'keepalived', ldirectord: 'ldirectord' };

/**
 * A value as ConfigParser reads it back unchanged, or undefined when it
 * cannot be written: white space at either end is stripped, a `;` after
 * white space starts a comment, and a newline ends the value. `%` is
 * doubled (interpolation).
 */
export function iniValue(value: string): string | undefined {
  if (value !== value.trim() || /[\r\n]/.test(value) || /\s;/.test(value) || value === '') return undefined;
  return value.replaceAll('%', '%%');
}

/** A Python string literal as a pool file line holds it. */
function poolString(value: string): string {
  return formatPyValue({ type: 'str', value }).replaceAll('\r', '\\r').replaceAll('\t', '\\t');
}

/** A Python string literal inside a pybal.conf value: `;` kept out of ConfigParser's sight, `%` doubled. */
function pyString(value: string): string {
  return poolString(value).replaceAll(';', '\\x3b').replaceAll('%', '%%');
}

function pyList(items: readonly string[]): string {
  return items.length === 0 ? '[ ]' : `[ ${items.join(', ')} ]`;
}

function argument(a: CommandArgument): string {
  return 'literal' in a ? pyString(a.literal) : `server.${a.server}`;
}

function seconds(value: number): string {
  return String(Number(value.toFixed(3)));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A regular expression written so that ConfigParser keeps it whole (`;` and end spaces as \x escapes). */
function iniRegex(source: string): string | undefined {
  const safe = source
    .replace(/(?<!\\)((?:\\\\)*);/g, '$1\\x3b')
    .replace(/^ /, '\\x20')
    .replace(/(?<!\\) $/, '\\x20');
  return checkRegex(safe) === undefined ? iniValue(safe) : undefined;
}

function sectionName(service: LvsService, used: Set<string>): string {
  const hint = service.nameHint?.replace(/[^\w.-]+/g, '_').replace(/^_+|_+$/g, '');
  const base =
    hint !== undefined && hint !== ''
      ? hint
      : service.fwmark !== undefined
        ? `fwmark_${service.fwmark}`
        : `${PORT_NAMES[service.port ?? 0] ?? service.protocol}_${service.port ?? 0}`;
  const free = (name: string): boolean => !used.has(name.toLowerCase()) && name.toLowerCase() !== 'global' && name !== 'DEFAULT';
  let name = [base, `${base}_${service.protocol}`].find(free);
  for (let n = 2; name === undefined; n++) name = free(`${base}_${n}`) ? `${base}_${n}` : undefined;
  used.add(name.toLowerCase());
  return name;
}

/** `# file:12,30: message`: notes with the same message grouped, in source order. */
function formatNotes(notes: readonly ImportNote[]): string[] {
  const groups = new Map<string, { refs: SourceRef[]; message: string }>();
  for (const n of notes) {
    const key = `${n.at.file}\u0000${n.message}`;
    const group = groups.get(key) ?? { refs: [], message: n.message };
    group.refs.push(n.at);
    groups.set(key, group);
  }
  const first = (refs: readonly SourceRef[]): number => Math.min(...refs.map((r) => r.line));
  return [...groups.values()]
    .sort((a, b) => first(a.refs) - first(b.refs))
    .map(({ refs, message }) => {
      const [head, ...rest] = [...refs].sort((x, y) => x.line - y.line);
      const where = [formatSourceRef(head as SourceRef), ...rest.map((r) => formatSourceRef(r).slice(r.file.length + 1))].join(',');
      return `# ${where}: ${message.replace(/\s*\n\s*/g, ' ')}`;
    });
}

interface Section {
  readonly lines: string[];
  readonly notes: ImportNote[];
  readonly missing: string[];
}

function key(section: Section, name: string, value: string): void {
  section.lines.push(`${name} = ${value}`);
}

function monitorLines(section: Section, checks: readonly LvsCheck[], service: LvsService): void {
  const kept: LvsCheck[] = [];
  for (const check of checks) {
    if (kept.some((k) => k.kind === check.kind)) {
      section.notes.push({ at: check.at, message: `a second ${MONITORS[check.kind].name} check is not carried over: a pybal service runs each monitor once` });
    } else {
      kept.push(check);
    }
  }
  key(section, 'monitors', pyList(kept.map((c) => pyString(MONITORS[c.kind].name))));
  for (const check of kept) {
    const p = MONITORS[check.kind].prefix;
    const k = (option: string, value: string): void => key(section, `${p}.${option}`, value);
    switch (check.kind) {
      case 'http':
        k('url', pyList(check.urls.map(pyString)));
        if (check.urls.length > 1) k('check_all', 'yes');
        if (check.redirectStatus !== undefined) k('http_status', String(check.redirectStatus));
        if (check.expectBody !== undefined) {
          const plain = iniValue(check.expectBody);
          const regex = plain === undefined ? iniRegex(escapeRegExp(check.expectBody)) : undefined;
          if (plain !== undefined) k('expect-body', plain);
          else if (regex !== undefined) k('expect-body-regex', regex);
          else section.notes.push({ at: check.at, message: `the expected text ${JSON.stringify(check.expectBody)} cannot be written in pybal.conf; not carried over` });
        }
        if (check.expectBodyRegex !== undefined && !hasRegexSpecials(check.expectBodyRegex) && iniValue(check.expectBodyRegex) !== undefined) {
          // A regular expression without special characters is a plain text to find.
          k('expect-body', iniValue(check.expectBodyRegex) as string);
        } else if (check.expectBodyRegex !== undefined) {
          const regex = iniRegex(check.expectBodyRegex);
          if (regex !== undefined) k('expect-body-regex', regex);
          else section.notes.push({ at: check.at, message: `the regular expression ${JSON.stringify(check.expectBodyRegex)} cannot be written in pybal.conf; not carried over` });
        }
        break;
      case 'command': {
        const command = iniValue(check.command);
        if (command === undefined) {
          section.notes.push({ at: check.at, message: `the command ${JSON.stringify(check.command)} cannot be written in pybal.conf` });
          section.missing.push('runcommand.command');
          k('command', '');
        } else {
          k('command', command);
        }
        k('arguments', pyList(check.arguments.map(argument)));
        break;
      }
      case 'dns':
        k('hostnames', pyList(check.hostnames.map(pyString)));
        break;
      case 'ping':
        if (check.count > 1) k('count', String(check.count));
        break;
      case 'tcp':
      case 'udp':
        break;
    }
    k('interval', seconds(check.intervalSec));
    if (check.kind !== 'udp') k('timeout', seconds(check.timeoutSec));
    k('fall', String(check.fall));
  }
  if (kept.length === 0 && service.servers.some((s) => s.enabled)) {
    section.notes.push({ at: service.at, message: 'no health check carried over: every server stays pooled whatever its state (pybal warns about a service without monitors)' });
  }
}

function serviceSection(service: LvsService, name: string, poolDir: string): Section {
  const section: Section = { lines: [], notes: [...service.notes], missing: [] };
  section.lines.push(`# from ${formatSourceRef(service.at)}: ${service.label}`, `[${name}]`);
  key(section, 'protocol', service.protocol);
  if (service.ip !== undefined) {
    key(section, 'ip', service.ip);
  } else {
    section.lines.push(`# ip = (the VIP announced for firewall mark ${service.fwmark ?? '?'}: fill it in, or import again with --fwmark-ip ${service.fwmark ?? 'N'}=ADDRESS)`);
    section.missing.push('ip');
  }
  if (service.port !== undefined) {
    key(section, 'port', String(service.port));
  } else {
    section.lines.push('# port = (the port health checks connect to: fill it in)');
    section.missing.push('port');
  }
  if (service.fwmark !== undefined) key(section, 'fwmark', String(service.fwmark));
  key(section, 'scheduler', service.scheduler);
  if (service.schedulerFlags.length > 0) key(section, 'scheduler-flags', pyList(service.schedulerFlags.map(pyString)));
  if (service.ops) key(section, 'ops', 'true');
  key(section, 'forward-method', service.forwarding);
  if (service.tunnel !== undefined) {
    key(section, 'tunnel-type', service.tunnel.type);
    if (service.tunnel.port !== undefined) key(section, 'tunnel-port', String(service.tunnel.port));
    if (service.tunnel.checksum !== undefined) key(section, 'tunnel-checksum', service.tunnel.checksum);
  }
  if (service.realPort !== undefined) key(section, 'real-port', String(service.realPort));
  if (service.persistence !== undefined) {
    key(section, 'persistence-timeout', String(service.persistence.timeoutSec));
    if (service.persistence.netmask !== undefined) key(section, 'persistence-netmask', service.persistence.netmask);
    if (service.persistence.engine !== undefined) key(section, 'persistence-engine', service.persistence.engine);
  }
  if (service.upperThreshold !== undefined) key(section, 'upper-threshold', String(service.upperThreshold));
  if (service.lowerThreshold !== undefined) key(section, 'lower-threshold', String(service.lowerThreshold));
  key(section, 'config', `file://${poolDir.replace(/\/+$/, '')}/${name}`);
  key(section, 'depool-threshold', DEFAULT_DEPOOL_THRESHOLD);
  monitorLines(section, service.checks, service);
  return section;
}

function poolText(service: LvsService, name: string, servers: readonly LvsServer[]): string {
  const lines = [`# The pool of [${name}], from ${formatSourceRef(service.at)} (${service.label}).`, "# One server per line; 'enabled': False takes a server out without forgetting it."];
  for (const s of servers) {
    lines.push(`{ 'host': ${poolString(s.host)}, 'weight': ${s.weight}, 'enabled': ${s.enabled ? 'True' : 'False'} }`);
  }
  return `${lines.join('\n')}\n`;
}

/** The servers a pool can hold: one entry per host (a host listed twice keeps its first entry). */
function uniqueServers(service: LvsService, notes: ImportNote[]): LvsServer[] {
  const seen = new Map<string, LvsServer>();
  for (const s of service.servers) {
    const first = seen.get(s.host);
    if (first === undefined) seen.set(s.host, s);
    else notes.push({ at: s.at, message: `${s.host} is listed again (first at ${formatSourceRef(first.at)}); a pool has one entry per host: the first one is kept` });
  }
  return [...seen.values()];
}

function header(imported: LvsImport): string[] {
  const tool = TOOL[imported.format];
  return [
    `# pybal.conf written by \`pybal import\` from ${imported.file} (${tool}).`,
    '# Check it with `pybal check-config -c pybal.conf` and read every comment before use.',
    `# A comment "# FILE:LINE: ..." names a part of ${imported.file} that is not carried over,`,
    '# or is carried over differently, and says why.',
    '#',
    `# depool-threshold: ${tool} removed every server whose checks failed; pybal keeps at`,
    '# least this share of a pool pooled even when their checks fail, so that a broken check',
    `# cannot empty a service. 0 removes every failed server, as ${tool} did.`,
    '# bgp = no: the VIPs must reach this director as they did before (VRRP, heartbeat, a',
    '# static route). pybal can announce them to your routers instead: see the bgp-* keys.',
  ];
}

/** The pybal.conf and pool files for what a reader read. */
export function convertToPybal(imported: LvsImport, options: ConvertOptions = {}): Conversion {
  const poolDir = options.poolDir ?? DEFAULT_POOL_DIR;
  const used = new Set<string>();
  const globalNotes = formatNotes(imported.notes);
  const out: string[] = [...header(imported), ''];
  if (globalNotes.length > 0) out.push(...globalNotes, '');
  out.push('[global]', 'bgp = no', '');
  let comments = globalNotes.length;
  const pools: PoolFile[] = [];
  const services: ConvertedService[] = [];
  for (const service of imported.services) {
    const name = sectionName(service, used);
    const section = serviceSection(service, name, poolDir);
    const servers = uniqueServers(service, section.notes);
    const noteLines = formatNotes(section.notes);
    out.push(...section.lines, ...noteLines, '');
    comments += noteLines.length;
    pools.push({ service: name, text: poolText(service, name, servers) });
    services.push({ name, servers: servers.length, comments: noteLines.length, missing: section.missing });
  }
  return { conf: `${out.join('\n').replace(/\n+$/, '')}\n`, pools, services, comments };
}
