/**
 * keepalived.conf -> LVS services (model.ts): the meaning of its LVS
 * keywords (keepalived.conf(5), "LVS CONFIGURATION"), with keepalived's
 * defaults, inheritance (virtual server -> real server -> checker) and a note
 * for every keyword pybal cannot carry. Pure.
 *
 * Mappings decided here:
 * - delay_loop -> the monitor's interval; retry (nb_get_retry) -> fall =
 *   retry + 1 (keepalived retries `retry` times before calling a server down);
 *   delay_before_retry has no counterpart (pybal retries at its interval);
 *   connect_timeout (misc_timeout for MISC_CHECK) -> timeout.
 * - HTTP_GET/SSL_GET -> ProxyFetch; TCP_CHECK -> TCPConnect; MISC_CHECK ->
 *   RunCommand; PING_CHECK -> Ping; UDP_CHECK -> UDP; DNS_CHECK -> DNSQuery;
 *   SMTP_CHECK -> TCPConnect (the SMTP dialogue is not checked).
 * - lb_kind/lvs_method (default NAT, keepalived's) -> forward-method.
 * - weight (default 1) -> the pool file's weight; weight 0 stays 0.
 */

import type { AddressFamily, Protocol } from '../config/types.js';
import type { Problem } from '../runtime/errors.js';
import { parseCheckCommand } from './command-line.js';
import { parseKeepalivedSyntax, type IncludeResolver, type KaNode, type KaSyntax } from './keepalived-syntax.js';
import type { Forwarding, ImportNote, LvsCheck, LvsImport, LvsServer, LvsService, ReadOptions, SchedulerFlag, SourceRef, TunnelSpec } from './model.js';
import {
  checkRegex,
  checkUrl,
  isScheduler,
  parseIpAddress,
  parsePort,
  OPS_NOT_UDP,
  reduceServers,
  type ServerDraft,
} from './service-builder.js';

/** keepalived's defaults (keepalived.conf(5)). */
const DEFAULT_DELAY_LOOP_SEC = 60;
const DEFAULT_CONNECT_TIMEOUT_SEC = 5;
const DEFAULT_WEIGHT = 1;
const DEFAULT_PERSISTENCE_SEC = 360;

/** Top-level blocks and statements with no pybal counterpart, and why. */
const TOP_LEVEL_NOTES: Readonly<Record<string, string>> = {
  global_defs: 'global settings (notification e-mail, router_id, script security, IPVS sync daemon and timeouts...) are not carried over: pybal has no counterpart; it alerts through /alerts and /metrics',
  vrrp_instance: 'VRRP is not carried over: pybal does not run VRRP. It announces VIPs to routers with BGP (bgp = yes and the bgp-* keys in [global]); or keep keepalived for VRRP alone, without its virtual_server blocks',
  vrrp_sync_group: 'VRRP is not carried over: pybal does not run VRRP',
  vrrp_script: 'VRRP tracking scripts are not carried over: pybal does not run VRRP',
  vrrp_track_process: 'VRRP process tracking is not carried over: pybal does not run VRRP',
  vrrp_track_file: 'VRRP file tracking is not carried over: pybal does not run VRRP',
  track_file: 'tracked files are not carried over: pybal has no counterpart (disable a server in its pool file instead)',
  track_process: 'process tracking is not carried over: pybal has no counterpart',
  garp_group: 'gratuitous ARP settings are not carried over: pybal does not run VRRP',
  static_ipaddress: 'static addresses are not carried over: pybal configures no addresses; keep them in the system network configuration',
  static_routes: 'static routes are not carried over: pybal configures no routes; keep them in the system network configuration',
  static_rules: 'static rules are not carried over: pybal configures no routing rules; keep them in the system network configuration',
  static_track_group: 'static track groups are not carried over: pybal has no counterpart',
  linkbeat_interfaces: 'link beat settings are not carried over: pybal has no counterpart',
  interface_up_down_delays: 'interface delays are not carried over: pybal does not run VRRP',
  bfd_instance: 'BFD is not carried over: pybal has no BFD',
  SSL: "SSL_GET's client certificate and CA are not carried over: ProxyFetch sends no client certificate (proxyfetch.verify-tls and proxyfetch.ca-file verify servers)",
  virtual_server_group:
    'virtual_server_group is not carried over: pybal has one service per address and port; write one virtual_server per address of the group (each becomes a pybal service)',
  net_namespace: 'net_namespace is not carried over: run pybal in that namespace instead (ip netns exec)',
  net_namespace_ipvs: 'net_namespace_ipvs is not carried over: run pybal in that namespace instead (ip netns exec)',
  namespace_with_ipsets: 'ipset settings are not carried over: pybal has no counterpart',
  instance: 'instance is not carried over: pybal has no counterpart',
  use_pid_dir: 'use_pid_dir is not carried over: pybal keeps no pid file (run it under systemd)',
  linkbeat_use_polling: 'linkbeat_use_polling is not carried over: pybal has no counterpart',
  child_wait_time: 'child_wait_time is not carried over: pybal runs as one process',
};

/** virtual_server keywords with no counterpart. */
const SERVICE_NOTES: Readonly<Record<string, string>> = {
  ha_suspend: "ha_suspend is not carried over: pybal checks servers whether or not the VIP is configured on this host",
  smtp_alert: 'smtp_alert is not carried over: pybal sends no e-mail; watch /alerts or /metrics',
  alpha: 'alpha is not carried over: pybal starts every enabled server pooled and lets its first checks depool the failing ones',
  omega: 'omega is not carried over: pybal runs no scripts on shutdown',
  quorum:
    "quorum is not carried over: pybal has no minimum live weight; instead depool-threshold keeps a share of the servers pooled even when their checks fail, so a service is never left empty by its checks",
  hysteresis: 'hysteresis is not carried over: pybal has no quorum (see depool-threshold)',
  quorum_up: 'quorum_up is not carried over: pybal runs no scripts on pool changes; watch /alerts or /metrics',
  quorum_down: 'quorum_down is not carried over: pybal runs no scripts on pool changes; watch /alerts or /metrics',
  sorry_server:
    'sorry_server is not carried over: pybal has no fallback server; when every server fails, depool-threshold keeps some of them pooled instead of sending clients elsewhere',
  sorry_server_inhibit: 'sorry_server_inhibit is not carried over: pybal has no fallback server',
  sorry_server_lvs_method: 'sorry_server_lvs_method is not carried over: pybal has no fallback server',
  nat_mask: 'nat_mask is not carried over: an obsolete keyword that keepalived ignores too',
  inhibit_on_failure:
    'inhibit_on_failure is not carried over: pybal removes a failed server from IPVS (its established connections end) rather than setting its weight to 0',
  warmup: 'warmup is not carried over: pybal spreads the first checks of a service over its interval by itself',
  snmp_name: 'snmp_name is used as the service name; pybal has no SNMP (use /metrics)',
  ip_family: 'ip_family is not needed: the family follows from the addresses',
};

const SERVER_NOTES: Readonly<Record<string, string>> = {
  notify_up: 'notify_up is not carried over: pybal runs no scripts on state changes; it logs them and counts them in /metrics',
  notify_down: 'notify_down is not carried over: pybal runs no scripts on state changes; it logs them and counts them in /metrics',
  smtp_alert: 'smtp_alert is not carried over: pybal sends no e-mail; watch /alerts or /metrics',
  snmp_name: 'snmp_name is not carried over: pybal has no SNMP (use /metrics)',
  alpha: SERVICE_NOTES.alpha as string,
  inhibit_on_failure: SERVICE_NOTES.inhibit_on_failure as string,
  warmup: SERVICE_NOTES.warmup as string,
};

const CHECKER_NOTES: Readonly<Record<string, string>> = {
  connect_ip: "connect_ip is not carried over: pybal's monitors check the real server's own address",
  bindto: "bindto is not carried over: pybal's monitors let the kernel choose the source address",
  bind_if: 'bind_if is not carried over: pybal chooses no interface for its checks',
  bind_port: "bind_port is not carried over: pybal's monitors let the kernel choose the source port",
  fwmark: 'fwmark (on checker packets) is not carried over: pybal does not mark its checks',
  alpha: SERVICE_NOTES.alpha as string,
  warmup: SERVICE_NOTES.warmup as string,
  log_all_failures: 'log_all_failures is not carried over: pybal logs every state change, and every check result with -d',
  http_protocol: "http_protocol is not carried over: ProxyFetch sends HTTP/1.1 requests with 'Connection: close'",
  fast_recovery: 'fast_recovery is not carried over: a pybal server is up again after proxyfetch.rise good checks (1)',
  enable_sni: "enable_sni is not needed: ProxyFetch always sends the URL's host as SNI",
  tls_compliant: 'tls_compliant is not carried over: it has no effect on the check result',
  helo_name: 'helo_name is not carried over: pybal only checks that the SMTP port accepts connections',
  type: 'type is not carried over: DNSQuery asks for A or AAAA records, whichever it picks',
  misc_dynamic: 'misc_dynamic is not carried over: pybal does not set weights from check results; the exit status only says up (0) or down',
  user: 'user is not carried over: RunCommand runs commands as pybal itself, with an empty environment',
  payload: "payload is not carried over: pybal's UDP monitor sends an empty datagram and only notices ICMP port-unreachable answers",
  require_reply: "require_reply is not carried over: pybal's UDP monitor does not wait for an answer, it only notices ICMP port-unreachable",
  min_reply_length: "min_reply_length is not carried over: pybal's UDP monitor does not read answers",
  max_reply_length: "max_reply_length is not carried over: pybal's UDP monitor does not read answers",
};

const URL_NOTES: Readonly<Record<string, string>> = {
  digest: 'digest (MD5 of the page) has no pybal equivalent; the page is still fetched and its status checked',
  regex_options: 'regex_options is not carried over: proxyfetch.expect-body-regex takes no options',
  regex_stack: 'regex_stack is not carried over: it has no meaning for pybal',
  regex_min_offset: 'regex_min_offset is not carried over: proxyfetch.expect-body-regex searches the whole body',
  regex_max_offset: 'regex_max_offset is not carried over: proxyfetch.expect-body-regex searches the whole body',
  tls_compliant: CHECKER_NOTES.tls_compliant as string,
};

/** Checker blocks pybal has no monitor for. */
const UNSUPPORTED_CHECKERS: Readonly<Record<string, string>> = {
  BFD_CHECK: 'BFD_CHECK is not carried over: pybal has no BFD',
  FILE_CHECK: "FILE_CHECK is not carried over: pybal reads no such file (disable a server in its pool file instead)",
};

/** Settings a virtual server passes to its real servers and those to their checkers. */
interface Inherited {
  readonly delayLoop?: number;
  readonly retry?: number;
  readonly delayBeforeRetry?: { readonly value: number; readonly at: SourceRef };
  readonly connectTimeout?: number;
  readonly virtualhost?: string;
}

interface Context {
  readonly errors: Problem[];
  readonly notes: ImportNote[];
}

type CheckerKind = 'HTTP_GET' | 'SSL_GET' | 'TCP_CHECK' | 'SMTP_CHECK' | 'DNS_CHECK' | 'MISC_CHECK' | 'PING_CHECK' | 'UDP_CHECK';
const CHECKERS: readonly string[] = ['HTTP_GET', 'SSL_GET', 'TCP_CHECK', 'SMTP_CHECK', 'DNS_CHECK', 'MISC_CHECK', 'PING_CHECK', 'UDP_CHECK'];

function note(c: Context, node: KaNode, message: string): void {
  c.notes.push({ at: node.at, message });
}

function unknown(c: Context, node: KaNode, where: string): void {
  note(c, node, `${node.keyword} is not a ${where} keyword pybal import knows; not carried over`);
}

function blockRef(node: KaNode): SourceRef {
  return node.children === undefined ? node.at : { file: node.at.file, line: node.at.line, endLine: node.at.endLine ?? node.at.line };
}

/** A number argument (seconds may have a fraction), or an error. */
function numberArg(c: Context, node: KaNode, options: { integer?: boolean; min?: number; max?: number; index?: number } = {}): number | undefined {
  const text = node.args[options.index ?? 0];
  const value = text !== undefined && /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  const ok = !Number.isNaN(value) && (!options.integer || Number.isInteger(value)) && value >= (options.min ?? 0) && value <= (options.max ?? Number.MAX_SAFE_INTEGER);
  if (!ok) {
    const range = options.max !== undefined ? ` from ${options.min ?? 0} to ${options.max}` : '';
    c.errors.push({ file: node.at.file, line: node.at.line, message: `${node.keyword}: expected ${options.integer ? 'an integer' : 'a number'}${range}, got ${text === undefined ? 'nothing' : JSON.stringify(text)}` });
    return undefined;
  }
  return value;
}

/** Handles the settings every level may set (delay_loop, retry...); false when the keyword is not one. */
function readInherited(c: Context, node: KaNode, into: { -readonly [K in keyof Inherited]: Inherited[K] }): boolean {
  switch (node.keyword) {
    case 'delay_loop':
      into.delayLoop = numberArg(c, node, { min: 0.001 }) ?? into.delayLoop;
      return true;
    case 'retry':
    case 'nb_get_retry':
      into.retry = numberArg(c, node, { integer: true, max: 999 }) ?? into.retry;
      return true;
    case 'delay_before_retry': {
      const value = numberArg(c, node);
      if (value !== undefined) into.delayBeforeRetry = { value, at: node.at };
      return true;
    }
    case 'connect_timeout':
      into.connectTimeout = numberArg(c, node, { min: 0.001 }) ?? into.connectTimeout;
      return true;
    case 'virtualhost':
      if (node.args[0] !== undefined) into.virtualhost = node.args[0];
      return true;
    default:
      return false;
  }
}

function readProtocol(c: Context, node: KaNode): Protocol | undefined {
  const value = node.args[0]?.toLowerCase();
  if (value === 'tcp' || value === 'udp' || value === 'sctp') return value;
  c.errors.push({ file: node.at.file, line: node.at.line, message: `protocol: expected TCP, UDP or SCTP, got ${JSON.stringify(node.args[0] ?? '')}` });
  return undefined;
}

/** lvs_method/lb_kind NAT|DR|TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum]. */
function readForwarding(c: Context, node: KaNode): { forwarding: Forwarding; tunnel?: TunnelSpec } | undefined {
  const [kind, ...rest] = node.args;
  switch (kind?.toUpperCase()) {
    case 'NAT':
      return { forwarding: 'nat' };
    case 'DR':
      return { forwarding: 'dr' };
    case 'TUN': {
      let type: TunnelSpec['type'] = 'ipip';
      let port: number | undefined;
      let checksum: TunnelSpec['checksum'];
      for (let i = 0; i < rest.length; i++) {
        const word = rest[i]?.toLowerCase();
        if (word === 'type' && (rest[i + 1] === 'ipip' || rest[i + 1] === 'gue' || rest[i + 1] === 'gre')) type = rest[++i] as TunnelSpec['type'];
        else if (word === 'port' && parsePort(rest[i + 1]) !== undefined) port = parsePort(rest[++i]);
        else if (word === 'nocsum') checksum = 'none';
        else if (word === 'csum' || word === 'remcsum') checksum = word;
        else {
          c.errors.push({ file: node.at.file, line: node.at.line, message: `${node.keyword}: unexpected ${JSON.stringify(rest[i])} (expected TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum])` });
          return undefined;
        }
      }
      if (type === 'gue' && port === undefined) {
        c.errors.push({ file: node.at.file, line: node.at.line, message: `${node.keyword}: a GUE tunnel needs a port` });
        return undefined;
      }
      const tunnel: TunnelSpec = { type, ...(port !== undefined ? { port } : {}), ...(checksum !== undefined ? { checksum } : {}) };
      return { forwarding: 'tunnel', ...(type !== 'ipip' || checksum !== undefined ? { tunnel } : {}) };
    }
    default:
      c.errors.push({ file: node.at.file, line: node.at.line, message: `${node.keyword}: expected NAT, DR or TUN, got ${JSON.stringify(kind ?? '')}` });
      return undefined;
  }
}

/** status_code 200 | 200-299 | ... -> what pybal can check, with a note when it differs. */
function readStatusCodes(c: Context, node: KaNode): number | undefined {
  const ranges: [number, number][] = [];
  for (const word of node.args) {
    const m = /^(\d{3})(?:-(\d{3}))?$/.exec(word);
    if (!m) {
      c.errors.push({ file: node.at.file, line: node.at.line, message: `status_code: expected HTTP status codes or ranges (200, 200-299), got ${JSON.stringify(word)}` });
      return undefined;
    }
    ranges.push([Number(m[1]), Number(m[2] ?? m[1])]);
  }
  const inside = (lo: number, hi: number): boolean => ranges.every(([a, b]) => a >= lo && b <= hi);
  const text = node.args.join(' ');
  if (inside(200, 299)) {
    if (!(ranges.length === 1 && ranges[0]?.[0] === 200 && ranges[0]?.[1] === 299)) {
      note(c, node, `status_code ${text}: ProxyFetch accepts any 2xx status`);
    }
    return undefined;
  }
  if (inside(301, 303)) {
    if (text !== '301-303') note(c, node, `status_code ${text}: ProxyFetch, told to expect a redirect, accepts any of 301, 302 and 303`);
    return ranges[0]?.[0];
  }
  note(c, node, `status_code ${text} is not carried over: ProxyFetch accepts a 2xx status, or (proxyfetch.http_status) a 301-303 redirect`);
  return undefined;
}

interface ServiceFacts {
  readonly ip: string | undefined;
  readonly family: AddressFamily;
  readonly port: number | undefined;
}

interface CheckDraft {
  readonly check: LvsCheck;
  readonly port: number | undefined;
}

/** The timing of a checker: its own settings over the real server's over the virtual server's, then keepalived's defaults. */
function timing(inherited: Inherited, kind: CheckerKind, c: Context): { intervalSec: number; timeoutSec: number; fall: number } {
  const intervalSec = inherited.delayLoop ?? DEFAULT_DELAY_LOOP_SEC;
  const defaultRetry = kind === 'MISC_CHECK' ? 0 : kind === 'DNS_CHECK' ? 3 : 1;
  const retry = inherited.retry ?? defaultRetry;
  const dbr = inherited.delayBeforeRetry;
  if (dbr !== undefined && retry > 0 && dbr.value !== intervalSec) {
    c.notes.push({
      at: dbr.at,
      message: `delay_before_retry ${dbr.value} is not carried over: pybal retries at the check interval (${intervalSec} s), so a failing server is down after about ${(retry + 1) * intervalSec} s (fall ${retry + 1} x interval) rather than keepalived's ${intervalSec + retry * dbr.value} s`,
    });
  }
  return { intervalSec, timeoutSec: inherited.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_SEC, fall: retry + 1 };
}

function readChecker(c: Context, node: KaNode, parent: Inherited, facts: ServiceFacts, server: LvsServer): CheckDraft | undefined {
  const kind = node.keyword as CheckerKind;
  const own: { -readonly [K in keyof Inherited]: Inherited[K] } = { ...parent };
  let port: number | undefined;
  const urls: KaNode[] = [];
  let miscPath: KaNode | undefined;
  let miscTimeout: number | undefined;
  let dnsName: string | undefined;
  let sniName: string | undefined;
  for (const child of node.children ?? []) {
    if (readInherited(c, child, own)) continue;
    const k = child.keyword;
    if (k === 'connect_port') {
      port = parsePort(child.args[0]);
      if (port === undefined) c.errors.push({ file: child.at.file, line: child.at.line, message: `connect_port: expected a port, got ${JSON.stringify(child.args[0] ?? '')}` });
    } else if (k === 'url' && (kind === 'HTTP_GET' || kind === 'SSL_GET')) {
      urls.push(child);
    } else if (k === 'sni_name' && kind === 'SSL_GET') {
      sniName = child.args[0];
    } else if (k === 'misc_path' && kind === 'MISC_CHECK') {
      miscPath = child;
    } else if (k === 'misc_timeout' && kind === 'MISC_CHECK') {
      miscTimeout = numberArg(c, child, { min: 0.001 });
    } else if (k === 'name' && kind === 'DNS_CHECK') {
      dnsName = child.args[0];
    } else if (CHECKER_NOTES[k] !== undefined) {
      note(c, child, CHECKER_NOTES[k] as string);
    } else {
      unknown(c, child, `${kind}`);
    }
  }
  const t = timing(own, kind, c);
  const at = node.at;
  switch (kind) {
    case 'HTTP_GET':
    case 'SSL_GET':
      return readHttp(c, node, urls, own, t, facts, sniName, port, server);
    case 'TCP_CHECK':
      return { check: { kind: 'tcp', at, ...t }, port };
    case 'SMTP_CHECK':
      note(c, node, 'SMTP_CHECK becomes TCPConnect: pybal checks that the port accepts a TCP connection, not the SMTP greeting');
      return { check: { kind: 'tcp', at, ...t }, port };
    case 'PING_CHECK':
      return { check: { kind: 'ping', at, ...t, count: 1 }, port };
    case 'UDP_CHECK':
      return { check: { kind: 'udp', at, ...t }, port };
    case 'DNS_CHECK':
      return { check: { kind: 'dns', at, ...t, hostnames: [dnsName ?? '.'] }, port };
    case 'MISC_CHECK': {
      if (miscPath === undefined || miscPath.args.length === 0) {
        c.errors.push({ file: at.file, line: at.line, message: 'MISC_CHECK without misc_path' });
        return undefined;
      }
      // Several words (misc_path /bin/check arg): keepalived joins them into one command line.
      const parsed = parseCheckCommand(miscPath.args.join(' '), server.host);
      if ('problem' in parsed) {
        note(c, miscPath, `misc_path is not carried over: ${parsed.problem}`);
        return undefined;
      }
      const { spec } = parsed;
      if (spec.shell) note(c, miscPath, 'misc_path needs a shell (pipes, redirections or variables): RunCommand runs it with /bin/sh -c');
      else if (!spec.command.startsWith('/')) note(c, miscPath, `misc_path: ${spec.command} is not an absolute path, and RunCommand runs commands with an empty environment (no PATH): give its full path`);
      return {
        check: { kind: 'command', at, intervalSec: t.intervalSec, timeoutSec: miscTimeout ?? t.intervalSec, fall: t.fall, command: spec.command, arguments: spec.arguments },
        port,
      };
    }
  }
}

function readHttp(
  c: Context,
  node: KaNode,
  urlNodes: readonly KaNode[],
  own: Inherited,
  t: { intervalSec: number; timeoutSec: number; fall: number },
  facts: ServiceFacts,
  sniName: string | undefined,
  connectPort: number | undefined,
  server: LvsServer,
): CheckDraft | undefined {
  const tls = node.keyword === 'SSL_GET';
  const checkPort = connectPort ?? server.port ?? facts.port;
  const urls: string[] = [];
  const expectations: { redirect?: number; regex?: string }[] = [];
  for (const urlNode of urlNodes) {
    let path: string | undefined;
    let host = own.virtualhost;
    let redirect: number | undefined;
    let regex: string | undefined;
    let inverted = false;
    for (const child of urlNode.children ?? []) {
      switch (child.keyword) {
        case 'path':
          path = child.args[0];
          break;
        case 'status_code':
          redirect = readStatusCodes(c, child);
          break;
        case 'virtualhost':
          host = child.args[0] ?? host;
          break;
        case 'regex': {
          const source = child.args.join(' ');
          const problem = checkRegex(source);
          if (problem === undefined) regex = source;
          else note(c, child, `regex is not carried over: JavaScript does not read it (${problem})`);
          break;
        }
        case 'regex_no_match':
          inverted = true;
          note(c, child, 'regex_no_match is not carried over: proxyfetch.expect-body-regex cannot be inverted, so the regex is dropped');
          break;
        default:
          if (URL_NOTES[child.keyword] !== undefined) note(c, child, URL_NOTES[child.keyword] as string);
          else unknown(c, child, 'url');
      }
    }
    if (path === undefined) {
      note(c, urlNode, 'a url block without path is ignored (as keepalived does)');
      continue;
    }
    if (host === undefined && sniName === undefined) {
      note(c, urlNode, `no virtualhost: keepalived sent each server its own address as Host; ProxyFetch sends one Host for all, the VIP (${facts.ip ?? 'localhost'})`);
    }
    urls.push(checkUrl(tls, host ?? sniName ?? facts.ip ?? 'localhost', checkPort, path));
    expectations.push({ ...(redirect !== undefined ? { redirect } : {}), ...(regex !== undefined && !inverted ? { regex } : {}) });
  }
  if (urls.length === 0) {
    note(c, node, `${node.keyword} without a url is not carried over`);
    return undefined;
  }
  const first = expectations[0] ?? {};
  if (expectations.some((e) => e.redirect !== first.redirect || e.regex !== first.regex)) {
    note(c, node, `the url blocks of ${node.keyword} expect different statuses or texts; ProxyFetch checks every URL the same way, as the first one says`);
  }
  return {
    check: {
      kind: 'http',
      at: node.at,
      ...t,
      urls,
      ...(first.redirect !== undefined ? { redirectStatus: first.redirect } : {}),
      ...(first.regex !== undefined ? { expectBodyRegex: first.regex } : {}),
    },
    port: connectPort,
  };
}

function readRealServer(c: Context, node: KaNode, inherited: Inherited, facts: ServiceFacts, serviceForwarding: Forwarding): ServerDraft | undefined {
  const [address, portText] = node.args;
  const ip = address === undefined ? undefined : parseIpAddress(address);
  if (ip === undefined) {
    c.errors.push({ file: node.at.file, line: node.at.line, message: `real_server: expected an IP address, got ${JSON.stringify(address ?? '')}` });
    return undefined;
  }
  const port = portText === undefined ? undefined : parsePort(portText);
  if (portText !== undefined && port === undefined) {
    c.errors.push({ file: node.at.file, line: node.at.line, message: `real_server: expected a port, got ${JSON.stringify(portText)}` });
    return undefined;
  }
  const own: { -readonly [K in keyof Inherited]: Inherited[K] } = { ...inherited };
  let weight = DEFAULT_WEIGHT;
  let forwarding = serviceForwarding;
  let forwardingAt: SourceRef | undefined;
  let upper: number | undefined;
  let lower: number | undefined;
  const checkers: KaNode[] = [];
  for (const child of node.children ?? []) {
    if (readInherited(c, child, own)) continue;
    switch (child.keyword) {
      case 'weight':
        weight = numberArg(c, child, { integer: true, max: 2147483647 }) ?? weight;
        break;
      case 'lvs_method':
      case 'lb_kind': {
        const method = readForwarding(c, child);
        if (method !== undefined) {
          forwarding = method.forwarding;
          forwardingAt = child.at;
          if (method.tunnel !== undefined) note(c, child, `the tunnel type of one real server is not carried over: pybal sets it per service`);
        }
        break;
      }
      case 'uthreshold':
        upper = numberArg(c, child, { integer: true, max: 2147483647 });
        break;
      case 'lthreshold':
        lower = numberArg(c, child, { integer: true, max: 2147483647 });
        break;
      default:
        if (CHECKERS.includes(child.keyword)) checkers.push(child);
        else if (UNSUPPORTED_CHECKERS[child.keyword] !== undefined) note(c, child, UNSUPPORTED_CHECKERS[child.keyword] as string);
        else if (SERVER_NOTES[child.keyword] !== undefined) note(c, child, SERVER_NOTES[child.keyword] as string);
        else unknown(c, child, 'real_server');
    }
  }
  const server: LvsServer = { at: node.at, host: ip.address, port, weight, enabled: true };
  const drafts = checkers.flatMap((checker) => {
    const draft = readChecker(c, checker, own, facts, server);
    return draft === undefined ? [] : [draft];
  });
  return {
    server,
    checks: drafts.map((d) => d.check),
    checkPorts: drafts.map((d) => d.port),
    forwarding,
    ...(forwardingAt !== undefined ? { forwardingAt } : {}),
    ...(upper !== undefined ? { upperThreshold: upper } : {}),
    ...(lower !== undefined ? { lowerThreshold: lower } : {}),
  };
}

const FLAG_NAMES: Readonly<Record<string, SchedulerFlag | 'flag-1' | 'flag-2' | 'flag-3'>> = {
  'sh-port': 'sh-port',
  'sh-fallback': 'sh-fallback',
  'mh-port': 'mh-port',
  'mh-fallback': 'mh-fallback',
  'flag-1': 'flag-1',
  'flag-2': 'flag-2',
  'flag-3': 'flag-3',
};

/** flag-1 is the fallback flag and flag-2 the port flag of sh and mh (ipvsadm's -b). */
function schedulerFlag(c: Context, node: KaNode, scheduler: string): SchedulerFlag | undefined {
  const name = FLAG_NAMES[node.keyword];
  if (name === undefined) return undefined;
  if (name === 'flag-3') {
    note(c, node, 'flag-3 is not carried over: no scheduler pybal knows uses it');
    return undefined;
  }
  const family = scheduler === 'sh' || scheduler === 'mh' ? scheduler : undefined;
  const flag = name === 'flag-1' ? 'fallback' : name === 'flag-2' ? 'port' : name.slice(3);
  const wanted = name.startsWith('flag-') ? family : name.slice(0, 2);
  if (family === undefined || wanted !== family) {
    note(c, node, `${node.keyword} is not carried over: it applies to the ${wanted ?? 'sh and mh'} scheduler, and this service uses ${scheduler}`);
    return undefined;
  }
  return `${family}-${flag}` as SchedulerFlag;
}

function readVirtualServer(c: Context, node: KaNode, vrrpVips: readonly { address: string; family: AddressFamily; at: SourceRef }[], options: ReadOptions): LvsService | undefined {
  const [first, second] = node.args;
  const error = (message: string): undefined => void c.errors.push({ file: node.at.file, line: node.at.line, message });
  let fwmark: number | undefined;
  let address: { address: string; family: AddressFamily } | undefined;
  let vipPort: number | undefined;
  if (first === 'group') {
    c.notes.push({ at: blockRef(node), message: `virtual_server group ${second ?? ''} is not carried over: pybal has no virtual server groups; write one virtual_server per address of the group` });
    return undefined;
  }
  if (first === 'fwmark') {
    fwmark = second !== undefined && /^\d+$/.test(second) && Number(second) >= 1 && Number(second) <= 4294967295 ? Number(second) : undefined;
    if (fwmark === undefined) return error(`virtual_server fwmark: expected a mark from 1 to 4294967295, got ${JSON.stringify(second ?? '')}`);
  } else {
    address = first === undefined ? undefined : parseIpAddress(first);
    if (address === undefined) return error(`virtual_server: expected an IP address, fwmark N or group NAME, got ${JSON.stringify(first ?? '')}`);
    if (second !== undefined) {
      vipPort = parsePort(second);
      if (vipPort === undefined) return error(`virtual_server: expected a port, got ${JSON.stringify(second)}`);
    }
  }
  const label = `virtual_server ${node.args.join(' ')}`;
  const serviceNotes: ImportNote[] = [];
  const sc: Context = { errors: c.errors, notes: serviceNotes };
  const inherited: { -readonly [K in keyof Inherited]: Inherited[K] } = {};
  let scheduler: string | undefined;
  let schedulerNode: KaNode | undefined;
  const flagNodes: KaNode[] = [];
  let ops = false;
  let forwarding: Forwarding = 'nat';
  let tunnel: TunnelSpec | undefined;
  let methodGiven = false;
  let protocol: Protocol = 'tcp';
  let persistenceTimeout: number | undefined;
  let netmask: string | undefined;
  let engine: string | undefined;
  let nameHint: string | undefined;
  let family: AddressFamily = address?.family ?? 4;
  const realServers: KaNode[] = [];
  for (const child of node.children ?? []) {
    if (readInherited(sc, child, inherited)) continue;
    const k = child.keyword;
    switch (k) {
      case 'lvs_sched':
      case 'lb_algo':
        scheduler = child.args[0]?.toLowerCase();
        schedulerNode = child;
        break;
      case 'lvs_method':
      case 'lb_kind': {
        const method = readForwarding(sc, child);
        if (method !== undefined) {
          forwarding = method.forwarding;
          tunnel = method.tunnel;
          methodGiven = true;
        }
        break;
      }
      case 'ops':
        ops = true;
        break;
      case 'protocol':
        protocol = readProtocol(sc, child) ?? protocol;
        break;
      case 'persistence_timeout':
        persistenceTimeout = child.args.length === 0 ? DEFAULT_PERSISTENCE_SEC : numberArg(sc, child, { integer: true, max: 2147483647 });
        break;
      case 'persistence_granularity':
        netmask = child.args[0];
        break;
      case 'persistence_engine':
        engine = child.args[0];
        if (engine !== 'sip') {
          note(sc, child, `persistence_engine ${engine ?? ''} is not carried over: pybal knows only the sip engine`);
          engine = undefined;
        }
        break;
      case 'ip_family':
        if (child.args[0] === 'inet6') family = 6;
        note(sc, child, SERVICE_NOTES.ip_family as string);
        break;
      case 'snmp_name':
        nameHint = child.args[0];
        note(sc, child, SERVICE_NOTES.snmp_name as string);
        break;
      case 'real_server':
        realServers.push(child);
        break;
      default:
        if (FLAG_NAMES[k] !== undefined) flagNodes.push(child);
        else if (SERVICE_NOTES[k] !== undefined) note(sc, child, SERVICE_NOTES[k] as string);
        else if (CHECKERS.includes(k)) note(sc, child, `${k} directly in a virtual_server is not carried over: keepalived runs checkers of real servers`);
        else unknown(sc, child, 'virtual_server');
    }
  }

  if (scheduler === undefined) {
    note(sc, node, 'no lvs_sched (lb_algo): using wlc, the kernel tools\' default');
    scheduler = 'wlc';
  } else if (!isScheduler(scheduler)) {
    note(sc, schedulerNode ?? node, `lvs_sched ${scheduler} is not a scheduler pybal knows: using wlc`);
    scheduler = 'wlc';
  }
  if (!methodGiven) note(sc, node, 'no lvs_method (lb_kind): keepalived forwards by NAT then, and so does this service (forward-method = nat)');
  const schedulerFlags = [...new Set(flagNodes.flatMap((f) => schedulerFlag(sc, f, scheduler as string) ?? []))];
  if (ops && protocol !== 'udp') {
    note(sc, node, OPS_NOT_UDP);
    ops = false;
  }
  let persistence: LvsService['persistence'];
  if (persistenceTimeout !== undefined && persistenceTimeout > 0) {
    const mask = netmask === undefined ? undefined : granularity(netmask, family);
    if (netmask !== undefined && mask === undefined) note(sc, node, `persistence_granularity ${netmask} is not carried over: expected an IPv4 netmask, or an IPv6 prefix length`);
    persistence = { timeoutSec: persistenceTimeout, ...(mask !== undefined ? { netmask: mask } : {}), ...(engine !== undefined ? { engine } : {}) };
  } else if (netmask !== undefined || engine !== undefined) {
    note(sc, node, 'persistence_granularity and persistence_engine are not carried over without persistence_timeout');
  }

  let ip = address?.address;
  if (fwmark !== undefined) {
    ip = options.fwmarkIp?.(fwmark);
    if (ip === undefined) {
      const candidates = vrrpVips.filter((v) => v.family === family);
      const only = candidates.length === 1 ? candidates[0] : undefined;
      if (only !== undefined) {
        ip = only.address;
        note(sc, node, `firewall mark ${fwmark} has no address of its own: pybal announces and checks it as ${only.address}, the one VIP of vrrp_instance (${only.at.file}:${only.at.line})`);
      }
    }
  }
  const facts: ServiceFacts = { ip, family, port: vipPort };
  const drafts = realServers.flatMap((rs) => readRealServer(sc, rs, inherited, facts, forwarding) ?? []);
  if (drafts.length === 0) note(sc, node, `${label} has no real server: pybal will run it with an empty pool`);
  const reduced = reduceServers(drafts, { forwarding, vipPort, fwmark });
  serviceNotes.push(...reduced.notes);
  const hostNode = (node.children ?? []).find((n) => n.keyword === 'virtualhost');
  if (hostNode !== undefined && !reduced.checks.some((check) => check.kind === 'http')) {
    note(sc, hostNode, 'virtualhost is not carried over: only HTTP_GET and SSL_GET checks use it, and this service has none');
  }

  return {
    at: blockRef(node),
    label,
    ...(nameHint !== undefined ? { nameHint } : {}),
    ip,
    family,
    port: fwmark === undefined ? vipPort : reduced.checkPort,
    ...(fwmark !== undefined ? { fwmark } : {}),
    protocol,
    scheduler,
    schedulerFlags,
    ops,
    forwarding,
    ...(tunnel !== undefined ? { tunnel } : {}),
    ...(reduced.realPort !== undefined ? { realPort: reduced.realPort } : {}),
    ...(persistence !== undefined ? { persistence } : {}),
    ...(reduced.upperThreshold !== undefined ? { upperThreshold: reduced.upperThreshold } : {}),
    ...(reduced.lowerThreshold !== undefined ? { lowerThreshold: reduced.lowerThreshold } : {}),
    servers: drafts.map((d) => d.server),
    checks: reduced.checks,
    notes: serviceNotes,
  };
}

/** persistence_granularity: a dotted IPv4 mask, or an IPv6 prefix length (also written /64 or as a mask). */
function granularity(text: string, family: AddressFamily): string | undefined {
  if (family === 4) return parseIpAddress(text)?.family === 4 ? text : undefined;
  const m = /^\/?(\d{1,3})$/.exec(text);
  if (m && Number(m[1]) >= 1 && Number(m[1]) <= 128) return m[1];
  const mask = parseIpAddress(text);
  if (mask?.family !== 6) return undefined;
  // An IPv6 mask written as an address: count its leading ones.
  const bits = mask.address
    .split(':')
    .map((g) => parseInt(g || '0', 16).toString(2).padStart(16, '0'))
    .join('')
    .padEnd(128, '0');
  const length = bits.indexOf('0') < 0 ? 128 : bits.indexOf('0');
  return /^1*0*$/.test(bits) && length > 0 ? String(length) : undefined;
}

/** The addresses VRRP instances hold (virtual_ipaddress), to give firewall-mark services an address. */
function vrrpAddresses(nodes: readonly KaNode[]): { address: string; family: AddressFamily; at: SourceRef }[] {
  return nodes
    .filter((n) => n.keyword === 'vrrp_instance')
    .flatMap((n) => n.children ?? [])
    .filter((n) => n.keyword === 'virtual_ipaddress')
    .flatMap((n) => n.children ?? [])
    .flatMap((entry) => {
      const ip = parseIpAddress(entry.keyword.replace(/\/\d+$/, ''));
      return ip === undefined ? [] : [{ ...ip, at: entry.at }];
    });
}

/** Statements of keepalived.conf -> services. */
export function readKeepalived(syntax: KaSyntax, file: string, options: ReadOptions = {}): LvsImport {
  const c: Context = { errors: [...syntax.errors], notes: [...syntax.notes] };
  const vips = vrrpAddresses(syntax.nodes);
  const services: LvsService[] = [];
  for (const node of syntax.nodes) {
    if (node.keyword === 'virtual_server') {
      const service = readVirtualServer(c, node, vips, options);
      if (service !== undefined) services.push(service);
    } else if (TOP_LEVEL_NOTES[node.keyword] !== undefined) {
      c.notes.push({ at: blockRef(node), message: `${node.keyword}${node.args.length > 0 ? ` ${node.args.join(' ')}` : ''}: ${TOP_LEVEL_NOTES[node.keyword] as string}` });
    } else if (node.keyword.startsWith('vrrp_')) {
      c.notes.push({ at: blockRef(node), message: `${node.keyword} is not carried over: pybal does not run VRRP` });
    } else {
      c.notes.push({ at: blockRef(node), message: `${node.keyword} is not a keepalived keyword pybal import knows; not carried over` });
    }
  }
  if (services.length === 0 && c.errors.length === 0) {
    c.errors.push({ file, message: 'no virtual_server to convert' });
  }
  return { format: 'keepalived', file, services, notes: c.notes, errors: c.errors };
}

/** keepalived.conf text -> services; includes are read through `resolve`. */
export function parseKeepalived(text: string, file: string, resolve?: IncludeResolver, options: ReadOptions = {}): LvsImport {
  return readKeepalived(parseKeepalivedSyntax(text, file, resolve), file, options);
}
