/**
 * ldirectord.cf -> LVS services (model.ts): its global settings, then
 * `virtual=` sections whose lines are indented (ldirectord(8)), with
 * ldirectord's defaults and a note for every setting pybal cannot carry.
 * Pure.
 *
 * Mappings decided here:
 * - checkinterval -> the monitor's interval; failurecount -> fall;
 *   negotiatetimeout (negotiate checks) or checktimeout (the others) ->
 *   timeout, with ldirectord's fallbacks between the two.
 * - checktype negotiate: http/https -> ProxyFetch (request -> the URL path,
 *   receive -> proxyfetch.expect-body, or expect-body-regex when it is a
 *   regular expression); dns -> DNSQuery; other services -> TCPConnect (UDP
 *   for UDP services), the protocol dialogue unchecked. connect ->
 *   TCPConnect (Ping for UDP, as ldirectord). ping -> Ping (checkcount ->
 *   ping.count). external -> RunCommand with ldirectord's four arguments.
 *   on -> no monitor; off -> the servers written disabled.
 * - gate/masq/ipip -> forward-method dr/nat/tunnel; weight (default 1) ->
 *   the pool file's weight.
 */

import type { AddressFamily, CommandArgument, Protocol } from '../config/types.js';
import type { Problem } from '../runtime/errors.js';
import { parseCheckCommand } from './command-line.js';
import type { Forwarding, ImportNote, LvsCheck, LvsImport, LvsServer, LvsService, ReadOptions, SourceRef } from './model.js';
import {
  checkUrl,
  checkRegex,
  hasRegexSpecials,
  isScheduler,
  parseIpAddress,
  parsePort,
  OPS_NOT_UDP,
  reduceServers,
  type ServerDraft,
} from './service-builder.js';

/** ldirectord's defaults (set_defaults and ld_setup in ldirectord). */
const DEFAULTS = { checkinterval: 10, checktimeout: 5, negotiatetimeout: 30, failurecount: 1, checkcount: 1, scheduler: 'wrr', weight: 1 } as const;

/** The service each well-known virtual port implies (ldirectord's ld_port_to_service). */
const PORT_SERVICES: Readonly<Record<number, string>> = {
  21: 'ftp',
  25: 'smtp',
  53: 'dns',
  80: 'http',
  110: 'pop',
  119: 'nntp',
  143: 'imap',
  389: 'ldap',
  443: 'https',
  587: 'submission',
  993: 'imaps',
  995: 'pops',
  1521: 'oracle',
  1812: 'radius',
  3128: 'http_proxy',
  3306: 'mysql',
  5060: 'sip',
  5432: 'pgsql',
};

/** Port names as /etc/services spells the common ones. */
const PORT_NAMES: Readonly<Record<string, number>> = {
  ftp: 21,
  ssh: 22,
  smtp: 25,
  domain: 53,
  http: 80,
  www: 80,
  pop3: 110,
  nntp: 119,
  imap: 143,
  imap2: 143,
  snmp: 161,
  ldap: 389,
  https: 443,
  submission: 587,
  ldaps: 636,
  imaps: 993,
  pop3s: 995,
  'ms-sql-s': 1433,
  oracle: 1521,
  radius: 1812,
  mysql: 3306,
  sip: 5060,
  postgresql: 5432,
  'http-alt': 8080,
};

const SERVICES = new Set(['dns', 'ftp', 'http', 'https', 'http_proxy', 'imap', 'imaps', 'ldap', 'nntp', 'mysql', 'none', 'oracle', 'pop', 'pops', 'radius', 'pgsql', 'sip', 'smtp', 'submission', 'simpletcp']);
const CHECKTYPES = new Set(['connect', 'negotiate', 'ping', 'off', 'on', 'external', 'external-perl']);

const NO_EMAIL = 'pybal sends no e-mail; watch /alerts or /metrics';

/** Settings with no counterpart, global or per virtual, and why. */
const SETTING_NOTES: Readonly<Record<string, string>> = {
  autoreload: 'autoreload is not carried over: pybal re-reads pool files by itself, and pybal.conf on SIGHUP',
  callback: 'callback is not carried over: pybal runs no script when its configuration changes',
  fallbackcommand: 'fallbackcommand is not carried over: pybal runs no scripts when servers fail',
  logfile: 'logfile is not carried over: pybal logs to /var/log/pybal.log (pybal --log-file)',
  emailalert: `emailalert is not carried over: ${NO_EMAIL}`,
  emailalertfreq: `emailalertfreq is not carried over: ${NO_EMAIL}`,
  emailalertstatus: `emailalertstatus is not carried over: ${NO_EMAIL}`,
  emailalertfrom: `emailalertfrom is not carried over: ${NO_EMAIL}`,
  smtp: `smtp is not carried over: ${NO_EMAIL}`,
  execute: 'execute is not carried over: import that configuration too (pybal import FILE)',
  supervised: 'supervised is not carried over: pybal always runs in the foreground (under systemd)',
  fork: 'fork is not carried over: pybal checks every server concurrently',
  readdquiescent: 'readdquiescent is not carried over: pybal removes failed servers from IPVS',
  maintenancedir: "maintenancedir is not carried over: disable a server with 'enabled': False in its pool file instead",
  monitorfile: 'monitorfile is not carried over: pybal logs every state change to its log, and every check result with -d',
  login: 'login is not carried over: pybal does not log in to check a service',
  passwd: 'passwd is not carried over: pybal does not log in to check a service',
  database: 'database is not carried over: pybal does not query databases',
  secret: 'secret is not carried over: pybal does not speak RADIUS',
  load: 'load is not carried over: pybal does not set weights from server load',
  connecttimeout: 'connecttimeout is not carried over: ldirectord rejects it too (use negotiatetimeout)',
  timeout: 'timeout is not carried over: ldirectord rejects it too (use checktimeout and negotiatetimeout)',
};

interface Settings {
  checkinterval?: number;
  checktimeout?: number;
  negotiatetimeout?: number;
  failurecount?: number;
  checkcount?: number;
  fork?: boolean;
}

interface Line {
  readonly at: SourceRef;
  readonly key: string;
  readonly value: string;
}

interface Virtual {
  readonly at: SourceRef;
  readonly header: Line;
  readonly lines: Line[];
  endLine: number;
}

type Context = { errors: Problem[]; notes: ImportNote[] };

/** Strips a `#` comment outside double quotes (one at the start of a word). */
function stripComment(text: string): string {
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') quoted = !quoted;
    else if (c === '#' && !quoted && (i === 0 || /\s/.test(text[i - 1] as string))) return text.slice(0, i);
  }
  return text;
}

/** `"value"` -> value (ldirectord quotes strings). */
function unquote(value: string): string {
  const m = /^"(.*)"$/.exec(value.trim());
  return m ? (m[1] as string) : value.trim();
}

function positiveInt(c: Context, line: Line, allowZero = false): number | undefined {
  const m = /^(\d+)$/.exec(line.value.trim());
  const n = m ? Number(m[1]) : NaN;
  if (Number.isNaN(n) || (!allowZero && n === 0)) {
    c.errors.push({ file: line.at.file, line: line.at.line, message: `${line.key}: expected a ${allowZero ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(line.value)}` });
    return undefined;
  }
  return n;
}

function yesNo(c: Context, line: Line): boolean | undefined {
  const v = line.value.trim();
  if (v === 'yes' || v === 'no') return v === 'yes';
  c.errors.push({ file: line.at.file, line: line.at.line, message: `${line.key}: expected yes or no, got ${JSON.stringify(line.value)}` });
  return undefined;
}

/** Reads a timing setting into `into`; false when the key is not one. */
function readTiming(c: Context, line: Line, into: Settings): boolean {
  switch (line.key) {
    case 'checkinterval':
    case 'checktimeout':
    case 'negotiatetimeout':
    case 'failurecount':
    case 'checkcount': {
      const value = positiveInt(c, line);
      if (value !== undefined) into[line.key] = value;
      return true;
    }
    default:
      return false;
  }
}

/** The file's lines: global settings and virtual sections. */
function splitLines(c: Context, text: string, file: string): { globals: Line[]; virtuals: Virtual[] } {
  const globals: Line[] = [];
  const virtuals: Virtual[] = [];
  let current: Virtual | undefined;
  text
    .replace(/^\ufeff/, '')
    .split('\n')
    .forEach((raw, index) => {
      const lineNo = index + 1;
      const at = { file, line: lineNo };
      const expanded = raw.replace(/\r$/, '').replace(/\t/g, '    ');
      if (/^\s*(#|$)/.test(expanded)) return;
      const body = stripComment(expanded).trimEnd();
      if (body.trim() === '') return;
      // ldirectord wants 4 spaces or a tab; any indentation is taken here.
      const indented = /^\s/.test(body);
      const m = /^\s*([A-Za-z][\w-]*)\s*=\s*(.*)$/.exec(body);
      if (m === null) {
        c.errors.push({ file, line: lineNo, message: `expected key = value, got ${JSON.stringify(body.trim())}` });
        return;
      }
      const line: Line = { at, key: (m[1] as string).toLowerCase(), value: (m[2] as string).trim() };
      if (!indented && (line.key === 'virtual' || line.key === 'virtual6')) {
        current = { at, header: line, lines: [], endLine: lineNo };
        virtuals.push(current);
      } else if (indented) {
        if (current === undefined) {
          c.errors.push({ file, line: lineNo, message: `${line.key}: an indented line belongs to a virtual section, and none is open` });
          return;
        }
        current.lines.push(line);
        current.endLine = lineNo;
      } else {
        current = undefined;
        globals.push(line);
      }
    });
  return { globals, virtuals };
}

interface RealSpec {
  readonly at: SourceRef;
  readonly hosts: string[];
  readonly port: number | undefined;
  readonly forwarding: Forwarding;
  readonly weight: number;
  readonly request?: string;
  readonly receive?: string;
}

const FORWARD_METHODS: Readonly<Record<string, Forwarding>> = { gate: 'dr', masq: 'nat', ipip: 'tunnel' };

function parsePortOrName(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  return parsePort(text) ?? PORT_NAMES[text.toLowerCase()];
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** `real=HOST[->HOST2][:PORT] gate|masq|ipip [WEIGHT] ["REQUEST", "RECEIVE"]`. */
function parseReal(c: Context, line: Line): RealSpec | undefined {
  const error = (message: string): undefined => void c.errors.push({ file: line.at.file, line: line.at.line, message: `${line.key}: ${message}` });
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?:->(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+))?(?::([A-Za-z0-9_-]+))?\s+(\w+)(.*)$/.exec(line.value);
  if (m === null) return error(`expected HOST[:PORT] gate|masq|ipip [WEIGHT] ["REQUEST", "RECEIVE"], got ${JSON.stringify(line.value)}`);
  const [, first, last, portText, method, restText] = m as unknown as [string, string, string | undefined, string | undefined, string, string];
  const strip = (h: string): string => h.replace(/^\[|\]$/g, '');
  const port = portText === undefined ? undefined : parsePortOrName(portText);
  if (portText !== undefined && port === undefined && portText !== '0') return error(`unknown port ${JSON.stringify(portText)}; write the port number`);
  const forwarding = FORWARD_METHODS[method];
  if (forwarding === undefined) return error(`the forwarding method must be gate, masq or ipip, got ${JSON.stringify(method)}`);
  let rest = restText;
  let weight: number = DEFAULTS.weight;
  const w = /^\s+(\d+)(.*)$/.exec(rest);
  if (w) {
    weight = Number(w[1]);
    rest = w[2] as string;
  }
  let request: string | undefined;
  let receive: string | undefined;
  const rr = /^\s+"(.*)"[, ]\s*"(.*)"(.*)$/.exec(rest);
  if (rr) {
    request = (rr[1] as string).startsWith('/') ? (rr[1] as string) : `/${rr[1] as string}`;
    receive = rr[2] as string;
    rest = rr[3] as string;
  }
  if (rest.trim() !== '') return error(`unexpected ${JSON.stringify(rest.trim())}`);
  let hosts = [strip(first)];
  if (last !== undefined) {
    const a = parseIpAddress(strip(first));
    const b = parseIpAddress(strip(last));
    if (a?.family !== 4 || b?.family !== 4) return error('an address range needs two IPv4 addresses');
    const from = ipv4ToInt(a.address);
    const to = ipv4ToInt(b.address);
    if (to < from) return error(`the range ${a.address}->${b.address} runs backwards`);
    if (to - from > 1023) return error(`the range ${a.address}->${b.address} is larger than 1024 addresses`);
    hosts = Array.from({ length: to - from + 1 }, (_, i) => intToIpv4(from + i));
  }
  return {
    at: line.at,
    hosts: hosts.map((h) => parseIpAddress(h)?.address ?? h),
    port: port === 0 ? undefined : port,
    forwarding,
    weight,
    ...(request !== undefined ? { request } : {}),
    ...(receive !== undefined ? { receive } : {}),
  };
}

interface VirtualFacts {
  readonly label: string;
  readonly ip: string | undefined;
  readonly family: AddressFamily;
  readonly port: number | undefined;
  readonly fwmark: number | undefined;
  readonly protocol: Protocol;
}

interface CheckPlan {
  readonly checktype: string;
  readonly checktypeAt: SourceRef | undefined;
  readonly combined?: number;
  readonly service: string;
  readonly serviceAt: SourceRef | undefined;
  readonly request: string;
  readonly receive: string;
  readonly checkcommand: string;
  readonly checkcommandAt: SourceRef | undefined;
  readonly checkport: number | undefined;
  readonly virtualhost: string | undefined;
  readonly intervalSec: number;
  readonly checkTimeoutSec: number;
  readonly negotiateTimeoutSec: number;
  readonly fall: number;
  readonly count: number;
}

/** The checks of one real server (its own request/receive when it has them). */
function serverChecks(c: Context, plan: CheckPlan, facts: VirtualFacts, real: RealSpec): LvsCheck[] {
  const at = plan.checktypeAt ?? real.at;
  const connect: LvsCheck[] =
    facts.protocol === 'udp'
      ? [{ kind: 'ping', at, intervalSec: plan.intervalSec, timeoutSec: plan.checkTimeoutSec, fall: plan.fall, count: plan.count }]
      : [{ kind: 'tcp', at, intervalSec: plan.intervalSec, timeoutSec: plan.checkTimeoutSec, fall: plan.fall }];
  switch (plan.checktype) {
    case 'on':
    case 'off':
      return [];
    case 'connect':
      return connect;
    case 'ping':
      return [{ kind: 'ping', at, intervalSec: plan.intervalSec, timeoutSec: plan.checkTimeoutSec, fall: plan.fall, count: plan.count }];
    case 'external':
    case 'external-perl': {
      const parsed = parseCheckCommand(plan.checkcommand);
      if ('problem' in parsed) {
        c.notes.push({ at: plan.checkcommandAt ?? at, message: `checkcommand is not carried over: ${parsed.problem}` });
        return [];
      }
      const { spec } = parsed;
      // ldirectord appends: virtual address (or firewall mark), virtual port, real address, real port.
      const extra: CommandArgument[] = [
        { literal: facts.fwmark !== undefined ? String(facts.fwmark) : (facts.ip ?? '') },
        { literal: String(facts.port ?? 0) },
        { server: 'ip' },
        { literal: String(real.port ?? facts.port ?? 0) },
      ];
      // Through a shell, the line gets them as "$@", as if appended to the command line.
      const args = spec.shell ? [{ literal: '-c' }, { literal: `${plan.checkcommand.trim()} "$@"` }, { literal: 'sh' }, ...extra] : [...spec.arguments, ...extra];
      return [{ kind: 'command', at, intervalSec: plan.intervalSec, timeoutSec: plan.checkTimeoutSec, fall: plan.fall, command: spec.command, arguments: args }];
    }
    default: {
      const negotiate = negotiateCheck(c, plan, facts, real);
      if (plan.combined === undefined) return negotiate;
      const slower = negotiate.map((check) => ({ ...check, intervalSec: plan.intervalSec * Math.max(1, plan.combined ?? 1) }));
      return [...connect, ...slower];
    }
  }
}

function negotiateCheck(c: Context, plan: CheckPlan, facts: VirtualFacts, real: RealSpec): LvsCheck[] {
  const at = plan.checktypeAt ?? plan.serviceAt ?? real.at;
  const timing = { intervalSec: plan.intervalSec, timeoutSec: plan.negotiateTimeoutSec, fall: plan.fall };
  const request = real.request ?? plan.request;
  const receive = real.receive ?? plan.receive;
  switch (plan.service) {
    case 'http':
    case 'https': {
      const tls = plan.service === 'https';
      let path = request;
      let host = plan.virtualhost ?? facts.ip ?? 'localhost';
      const absolute = /^\/?https?:\/\/([^/]+)(\/.*)?$/.exec(request);
      if (absolute) {
        host = plan.virtualhost ?? (absolute[1] as string).replace(/:\d+$/, '');
        path = absolute[2] ?? '/';
      }
      const url = checkUrl(tls, host, plan.checkport ?? real.port ?? facts.port, path);
      if (receive === '') return [{ kind: 'http', at, ...timing, urls: [url] }];
      const body = hasRegexSpecials(receive) ? { expectBodyRegex: receive } : { expectBody: receive };
      const problem = 'expectBodyRegex' in body ? checkRegex(receive) : undefined;
      if (problem !== undefined) {
        c.notes.push({ at: real.receive !== undefined ? real.at : at, message: `receive is not carried over: JavaScript does not read it as a regular expression (${problem})` });
        return [{ kind: 'http', at, ...timing, urls: [url] }];
      }
      return [{ kind: 'http', at, ...timing, urls: [url], ...body }];
    }
    case 'dns':
      return [{ kind: 'dns', at, ...timing, hostnames: [request.replace(/^\//, '') || '.'] }];
    case 'none':
      return [];
    default:
      return facts.protocol === 'udp' ? [{ kind: 'udp', at, ...timing }] : [{ kind: 'tcp', at, ...timing }];
  }
}

/** Notes on how the check plan is carried over (once per virtual). */
function planNotes(c: Context, plan: CheckPlan, facts: VirtualFacts, headerAt: SourceRef, reals: readonly RealSpec[], lines: readonly Line[]): void {
  const where = plan.checktypeAt ?? plan.serviceAt ?? headerAt;
  const add = (message: string, ref?: SourceRef): void => void c.notes.push({ at: ref ?? where, message });
  switch (plan.checktype) {
    case 'on':
      add('checktype on: no check at all; the servers stay pooled (pybal warns that the service has no monitors)');
      break;
    case 'off':
      add("checktype off: ldirectord never activates the real servers; they are written disabled ('enabled': False) in the pool file");
      break;
    case 'external-perl':
      add('checktype external-perl: RunCommand runs checkcommand as a program (same arguments and exit status), not inside a Perl interpreter', plan.checkcommandAt);
      break;
    default:
      break;
  }
  if (plan.checktype === 'connect' && facts.protocol === 'udp') add('checktype connect on a UDP service: ldirectord pings the servers, and so does pybal (Ping)');
  if (plan.combined !== undefined) {
    add(`checktype ${plan.combined}: TCPConnect every ${plan.intervalSec} s, and the negotiate check every ${plan.intervalSec * plan.combined} s (pybal runs both on their own schedules)`);
  }
  const negotiates = plan.checktype === 'negotiate' || plan.combined !== undefined;
  if (negotiates) {
    const service = plan.service;
    if (service === 'none') add("service none: ldirectord does not check the servers, and neither does pybal (no monitor)", plan.serviceAt);
    else if (service === 'dns' && reals.some((r) => (r.receive ?? plan.receive) !== '')) add('receive is not carried over: DNSQuery checks that the server answers, not which addresses it returns');
    else if (!['http', 'https', 'dns'].includes(service)) {
      const monitor = facts.protocol === 'udp' ? 'UDP (ICMP port-unreachable only)' : 'TCPConnect';
      add(`service ${service}: pybal cannot speak ${service}; ${monitor} checks only that the port is open (request, receive and logins are not checked)`, plan.serviceAt);
    }
    if ((service === 'http' || service === 'https') && /^\/?https?:\/\//.test(plan.request)) {
      add("request is a full URL: ProxyFetch takes its host for the Host header and its path, but always connects to the real server itself");
    }
  }
  for (const line of lines) {
    if (line.key === 'httpmethod' && line.value.toUpperCase() === 'HEAD') c.notes.push({ at: line.at, message: 'httpmethod HEAD is not carried over: ProxyFetch sends GET' });
    if (line.key === 'checkcount' && plan.checktype !== 'ping') c.notes.push({ at: line.at, message: 'checkcount is not carried over: ldirectord uses it for ping checks only' });
  }
}

function readVirtual(c: Context, v: Virtual, globals: Settings, options: ReadOptions): LvsService | undefined {
  const header = v.header;
  const family: AddressFamily = header.key === 'virtual6' ? 6 : 4;
  const error = (message: string): undefined => void c.errors.push({ file: header.at.file, line: header.at.line, message });
  const notes: ImportNote[] = [];
  const sc: Context = { errors: c.errors, notes };
  let ip: string | undefined;
  let port: number | undefined;
  let fwmark: number | undefined;
  const fw = /^(\d+)$/.exec(header.value);
  if (fw) {
    fwmark = Number(fw[1]);
    if (fwmark < 1 || fwmark > 4294967295) return error(`${header.key}: a firewall mark must be from 1 to 4294967295, got ${fwmark}`);
  } else {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:]+):([A-Za-z0-9_-]+)$/.exec(header.value);
    if (m === null) return error(`${header.key}: expected ADDRESS:PORT or a firewall mark, got ${JSON.stringify(header.value)}`);
    const address = parseIpAddress((m[1] as string).replace(/^\[|\]$/g, ''));
    if (address === undefined) return error(`${header.key}: ${JSON.stringify(m[1])} is not an IP address (pybal needs the VIP's address, not a host name)`);
    if (address.family !== family) return error(`${header.key}: ${address.address} is not an IPv${family} address (use ${family === 4 ? 'virtual6' : 'virtual'})`);
    ip = address.address;
    port = parsePortOrName(m[2]);
    if (port === undefined) return error(`${header.key}: unknown port ${JSON.stringify(m[2])}; write the port number`);
  }
  const label = `${header.key}=${header.value}`;

  const own: Settings = {};
  let protocol: Protocol = fwmark !== undefined ? 'tcp' : port === 53 ? 'udp' : 'tcp';
  let scheduler: string = DEFAULTS.scheduler;
  let persistent: number | undefined;
  let netmask: string | undefined;
  let ops = false;
  let checktype = 'negotiate';
  let checktypeAt: SourceRef | undefined;
  let combined: number | undefined;
  let service: string | undefined;
  let serviceAt: SourceRef | undefined;
  let request = '/';
  let receive = '';
  let checkcommand = '/bin/true';
  let checkcommandAt: SourceRef | undefined;
  let checkport: number | undefined;
  let virtualhost: string | undefined;
  const reals: RealSpec[] = [];
  for (const line of v.lines) {
    if (readTiming(sc, line, own)) continue;
    const value = line.value;
    switch (line.key) {
      case 'real':
      case 'real6': {
        if ((line.key === 'real6') !== (family === 6)) {
          sc.errors.push({ file: line.at.file, line: line.at.line, message: `${line.key} cannot be used in a ${header.key} section (use ${family === 6 ? 'real6' : 'real'})` });
          break;
        }
        const real = parseReal(sc, line);
        if (real !== undefined) reals.push(real);
        break;
      }
      case 'request':
        request = unquote(value);
        if (!request.startsWith('/')) request = `/${request}`;
        break;
      case 'receive':
        receive = unquote(value);
        break;
      case 'checktype': {
        const t = value.toLowerCase();
        checktypeAt = line.at;
        if (/^\d+$/.test(t)) {
          checktype = 'negotiate';
          combined = Number(t);
        } else if (CHECKTYPES.has(t)) {
          checktype = t;
        } else {
          sc.errors.push({ file: line.at.file, line: line.at.line, message: `checktype: expected connect, negotiate, ping, external, external-perl, on, off or a number, got ${JSON.stringify(value)}` });
        }
        break;
      }
      case 'service':
        if (SERVICES.has(value.toLowerCase())) {
          service = value.toLowerCase();
          serviceAt = line.at;
        } else {
          sc.errors.push({ file: line.at.file, line: line.at.line, message: `service: ${JSON.stringify(value)} is not a service ldirectord knows` });
        }
        break;
      case 'checkcommand':
        checkcommand = unquote(value);
        checkcommandAt = line.at;
        break;
      case 'checkport':
        checkport = parsePort(value);
        if (checkport === undefined) sc.errors.push({ file: line.at.file, line: line.at.line, message: `checkport: expected a port, got ${JSON.stringify(value)}` });
        break;
      case 'virtualhost':
        virtualhost = unquote(value);
        break;
      case 'scheduler':
        if (isScheduler(value.toLowerCase())) scheduler = value.toLowerCase();
        else sc.notes.push({ at: line.at, message: `scheduler ${value} is not a scheduler pybal knows: using ${DEFAULTS.scheduler}, ldirectord's default` });
        break;
      case 'persistent':
        persistent = positiveInt(sc, line, true);
        break;
      case 'netmask':
        netmask = value;
        break;
      case 'protocol': {
        const p = value.toLowerCase();
        if (fwmark !== undefined) {
          if (p !== 'fwm') sc.errors.push({ file: line.at.file, line: line.at.line, message: `protocol must be fwm for a firewall-mark virtual, got ${JSON.stringify(value)}` });
        } else if (p === 'tcp' || p === 'udp') {
          protocol = p;
        } else {
          sc.errors.push({ file: line.at.file, line: line.at.line, message: `protocol: expected tcp or udp, got ${JSON.stringify(value)}` });
        }
        break;
      }
      case 'ops':
        ops = yesNo(sc, line) ?? ops;
        break;
      case 'httpmethod':
        break; // noted with the check plan
      case 'fallback':
      case 'fallback6':
        notes.push({ at: line.at, message: `${line.key} is not carried over: pybal has no fallback server; when every server fails, depool-threshold keeps some of them pooled instead of sending clients elsewhere` });
        break;
      case 'quiescent':
        if (yesNo(sc, line) === true) notes.push({ at: line.at, message: quiescentNote });
        break;
      case 'cleanstop':
        if (yesNo(sc, line) === true) notes.push({ at: line.at, message: cleanstopNote });
        break;
      default:
        if (SETTING_NOTES[line.key] !== undefined) notes.push({ at: line.at, message: SETTING_NOTES[line.key] as string });
        else notes.push({ at: line.at, message: `${line.key} is not an ldirectord setting pybal import knows; not carried over` });
    }
  }

  if (fwmark !== undefined) {
    ip = options.fwmarkIp?.(fwmark);
    if (ip !== undefined && parseIpAddress(ip)?.family !== family) ip = undefined;
  }
  const fork = globals.fork === true;
  if (own.checkinterval !== undefined && !fork) {
    const line = v.lines.find((l) => l.key === 'checkinterval');
    if (line !== undefined) notes.push({ at: line.at, message: 'checkinterval in a virtual section is not carried over: ldirectord ignores it unless fork = yes, and so does this import' });
  }
  const chain = (...values: (number | undefined)[]): number | undefined => values.find((x) => x !== undefined);
  const resolvedService = service ?? (fwmark !== undefined ? 'none' : (PORT_SERVICES[port ?? 0] ?? 'none'));
  const plan: CheckPlan = {
    checktype,
    checktypeAt,
    ...(combined !== undefined ? { combined } : {}),
    service: resolvedService,
    serviceAt,
    request,
    receive,
    checkcommand,
    checkcommandAt,
    checkport,
    virtualhost,
    intervalSec: (fork ? own.checkinterval : undefined) ?? globals.checkinterval ?? DEFAULTS.checkinterval,
    checkTimeoutSec: chain(own.checktimeout, own.negotiatetimeout, globals.checktimeout, globals.negotiatetimeout) ?? DEFAULTS.checktimeout,
    negotiateTimeoutSec: chain(own.negotiatetimeout, own.checktimeout, globals.negotiatetimeout, globals.checktimeout) ?? DEFAULTS.negotiatetimeout,
    fall: own.failurecount ?? globals.failurecount ?? DEFAULTS.failurecount,
    count: own.checkcount ?? globals.checkcount ?? DEFAULTS.checkcount,
  };
  const facts: VirtualFacts = { label, ip, family, port, fwmark, protocol };
  planNotes(sc, plan, facts, header.at, reals, v.lines);

  const drafts: ServerDraft[] = reals.flatMap((real) =>
    real.hosts.map((host): ServerDraft => {
      const server: LvsServer = { at: real.at, host, port: real.port, weight: real.weight, enabled: checktype !== 'off' };
      const checks = serverChecks(sc, plan, facts, real);
      return { server, checks, checkPorts: checks.map(() => checkport), forwarding: real.forwarding };
    }),
  );
  if (drafts.length === 0) notes.push({ at: header.at, message: `${label} has no real server: pybal will run it with an empty pool` });
  const first = drafts[0];
  const forwarding = first?.forwarding ?? 'dr';
  const reduced = reduceServers(drafts, { forwarding, vipPort: port, fwmark });
  notes.push(...reduced.notes);

  if (ops && protocol !== 'udp') {
    notes.push({ at: header.at, message: OPS_NOT_UDP });
    ops = false;
  }
  let persistence: LvsService['persistence'];
  if (persistent !== undefined && persistent > 0) {
    const mask = netmask === undefined ? undefined : family === 4 ? (parseIpAddress(netmask)?.family === 4 ? netmask : undefined) : /^\d{1,3}$/.test(netmask) ? netmask : undefined;
    if (netmask !== undefined && mask === undefined) notes.push({ at: header.at, message: `netmask ${netmask} is not carried over: expected an IPv4 netmask, or an IPv6 prefix length` });
    persistence = { timeoutSec: persistent, ...(mask !== undefined ? { netmask: mask } : {}) };
  } else if (netmask !== undefined) {
    notes.push({ at: header.at, message: 'netmask is not carried over without persistent' });
  }
  return {
    at: { file: v.at.file, line: v.at.line, endLine: v.endLine },
    label,
    ip,
    family,
    port: fwmark === undefined ? port : reduced.checkPort,
    ...(fwmark !== undefined ? { fwmark } : {}),
    protocol,
    scheduler,
    schedulerFlags: [],
    ops,
    forwarding,
    ...(reduced.realPort !== undefined ? { realPort: reduced.realPort } : {}),
    ...(persistence !== undefined ? { persistence } : {}),
    servers: drafts.map((d) => d.server),
    checks: reduced.checks,
    notes,
  };
}

const quiescentNote = 'quiescent = yes is not carried over: pybal removes a failed server from IPVS (its established connections end) rather than setting its weight to 0';
const cleanstopNote = 'cleanstop = yes is not carried over: pybal leaves its services in IPVS when it stops, as cleanstop = no does, so that traffic flows while it restarts';

/** ldirectord.cf text -> services. */
export function parseLdirectord(text: string, file: string, options: ReadOptions = {}): LvsImport {
  const c: Context = { errors: [], notes: [] };
  const { globals, virtuals } = splitLines(c, text, file);
  const settings: Settings = {};
  for (const line of globals) {
    if (readTiming(c, line, settings)) continue;
    switch (line.key) {
      case 'fork':
        settings.fork = yesNo(c, line);
        c.notes.push({ at: line.at, message: SETTING_NOTES.fork as string });
        break;
      case 'quiescent':
        if (yesNo(c, line) === true) c.notes.push({ at: line.at, message: quiescentNote });
        break;
      case 'cleanstop':
        if (yesNo(c, line) === true) c.notes.push({ at: line.at, message: cleanstopNote });
        break;
      case 'fallback':
      case 'fallback6':
        c.notes.push({ at: line.at, message: `${line.key} is not carried over: pybal has no fallback server; when every server fails, depool-threshold keeps some of them pooled instead of sending clients elsewhere` });
        break;
      default:
        if (SETTING_NOTES[line.key] !== undefined) c.notes.push({ at: line.at, message: SETTING_NOTES[line.key] as string });
        else c.notes.push({ at: line.at, message: `${line.key} is not an ldirectord setting pybal import knows (or belongs in a virtual section); not carried over` });
    }
  }
  const services = virtuals.flatMap((v) => readVirtual(c, v, settings, options) ?? []);
  if (services.length === 0 && c.errors.length === 0) c.errors.push({ file, message: 'no virtual section to convert' });
  const errors = [...c.errors].sort((x, y) => (x.line ?? 0) - (y.line ?? 0));
  return { format: 'ldirectord', file, services, notes: c.notes, errors };
}
