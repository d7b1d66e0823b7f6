/**
 * Each monitor's options from a service section (`<monitor>.<option>`), with
 * PyBal's defaults and the new options. Pure.
 */

import type { FieldReader } from './field-reader.js';
import { isHttpUrl, show } from './field-reader.js';
import { MONITOR_OPTIONS, monitorPrefix } from './keys.js';
import { MONITOR_KINDS } from './types.js';
import type {
  CommandArgument,
  DnsQueryConfig,
  IdleConnectionConfig,
  MonitorConfig,
  MonitorKind,
  PeriodicMonitorOptions,
  PingConfig,
  ProxyFetchConfig,
  RunCommandConfig,
  SshConfig,
  TcpConnectConfig,
  UdpConfig,
} from './types.js';

/** PyBal's interval and timeout defaults, in seconds, per monitor. */
const PERIODIC_DEFAULTS = {
  ProxyFetch: { interval: 10, timeout: 5 },
  RunCommand: { interval: 60, timeout: 20 },
  SSH: { interval: 60, timeout: 10 },
  DNSQuery: { interval: 10, timeout: 5 },
  Ping: { interval: 1, timeout: 1 },
  // New monitor, no PyBal default: ProxyFetch's (its closest kin: a connect is a fetch's first step).
  TCPConnect: { interval: 10, timeout: 5 },
} as const;

const COUNT = { min: 1, max: 1000 } as const;

type KeyOf = (option: string) => string;

function riseFall(r: FieldReader, key: KeyOf): { rise: number; fall: number } {
  return { rise: r.int(key('rise'), 1, COUNT), fall: r.int(key('fall'), 1, COUNT) };
}

function periodic(r: FieldReader, kind: keyof typeof PERIODIC_DEFAULTS, key: KeyOf, timeoutAllowsZero = false): PeriodicMonitorOptions {
  const defaults = PERIODIC_DEFAULTS[kind];
  return {
    intervalMs: r.seconds(key('interval'), defaults.interval),
    timeoutMs: r.seconds(key('timeout'), defaults.timeout, { allowZero: timeoutAllowsZero }),
    ...riseFall(r, key),
  };
}

function proxyFetch(r: FieldReader, key: KeyOf): ProxyFetchConfig {
  const urls = r.requiredStringList(key('url')) ?? [];
  for (const url of urls) {
    if (!isHttpUrl(url)) r.error(key('url'), `${show(url)} is not an http:// or https:// URL`);
  }
  const checkAll = r.bool(key('check_all'), false);
  if (!checkAll && r.has(key('max_failures'))) r.warn(key('max_failures'), `ignored unless ${key('check_all')} is on (as in PyBal)`);
  const expectBodyRegex = r.text(key('expect-body-regex'));
  if (expectBodyRegex !== undefined) {
    try {
      new RegExp(expectBodyRegex);
    } catch (e) {
      r.error(key('expect-body-regex'), `not a valid regular expression: ${(e as Error).message}`);
    }
  }
  const verifyTls = r.bool(key('verify-tls'), false);
  const caFile = r.text(key('ca-file'));
  if (caFile !== undefined && !verifyTls) r.warn(key('ca-file'), `ignored unless ${key('verify-tls')} is on`);
  return {
    kind: 'ProxyFetch',
    ...periodic(r, 'ProxyFetch', key),
    urls,
    httpStatus: r.int(key('http_status'), 200, { min: 100, max: 599 }),
    checkAll,
    maxFailures: r.int(key('max_failures'), 0, { min: 0 }),
    expectBody: r.text(key('expect-body')),
    expectBodyRegex,
    verifyTls,
    caFile: caFile === '' ? undefined : caFile,
  };
}

function idleConnection(r: FieldReader, key: KeyOf): IdleConnectionConfig {
  // Keepalive values go to setsockopt in whole seconds (TCP_KEEPIDLE, TCP_KEEPINTVL: 1..32767; TCP_KEEPCNT: 1..127).
  return {
    kind: 'IdleConnection',
    timeoutCleanReconnectMs: r.seconds(key('timeout-clean-reconnect'), 3),
    maxDelayMs: r.seconds(key('max-delay'), 300),
    keepalive: r.bool(key('keepalive'), true),
    keepaliveRetries: r.int(key('keepalive-retries'), 3, { min: 1, max: 127 }),
    keepaliveIdleMs: r.int(key('keepalive-idle'), 10, { min: 1, max: 32767 }) * 1000,
    keepaliveIntervalMs: r.int(key('keepalive-interval'), 30, { min: 1, max: 32767 }) * 1000,
    connectTimeoutMs: r.seconds(key('timeout'), 5),
    ...riseFall(r, key),
  };
}

const SERVER_NAMES = ['server.host', 'server.ip'] as const;

function runCommand(r: FieldReader, key: KeyOf): RunCommandConfig {
  const options = periodic(r, 'RunCommand', key, true);
  if (r.has(key('timeout')) && options.timeoutMs === 0) {
    r.warn(key('timeout'), '0 means no timeout (as in PyBal): a command that hangs is never killed and its server never marked down');
  }
  let args: CommandArgument[] = [{ literal: '' }];
  if (r.has(key('arguments'))) {
    const list = r.list<CommandArgument>(
      key('arguments'),
      (v) => {
        if (v.type === 'str') return { value: { literal: v.value } };
        if (v.type === 'name') return { value: { server: v.name === 'server.host' ? 'host' : 'ip' } };
        return { error: `expected a string, server.host or server.ip, got ${v.type}` };
      },
      SERVER_NAMES,
    );
    if (list !== undefined && list.length === 0) {
      r.warn(key('arguments'), 'an empty list means one empty argument, as in PyBal');
    } else if (list !== undefined) {
      args = list;
    }
  }
  return {
    kind: 'RunCommand',
    ...options,
    command: r.requiredText(key('command')) ?? '',
    arguments: args,
    logOutput: r.bool(key('log-output'), true),
  };
}

function ssh(r: FieldReader, key: KeyOf): SshConfig {
  const user = r.text(key('user')) ?? 'root';
  if (user === '') r.error(key('user'), 'must not be empty');
  const command = r.text(key('command')) ?? 'true';
  if (command === '') r.error(key('command'), 'must not be empty');
  const knownHosts = r.text(key('known-hosts'));
  return {
    kind: 'SSH',
    ...periodic(r, 'SSH', key),
    user,
    privateKeyFile: r.requiredText(key('private-key')) ?? '',
    command,
    port: r.int(key('port'), 22, { min: 1, max: 65535 }),
    knownHostsFile: knownHosts === '' ? undefined : knownHosts,
  };
}

function dnsQuery(r: FieldReader, key: KeyOf): DnsQueryConfig {
  return {
    kind: 'DNSQuery',
    ...periodic(r, 'DNSQuery', key),
    hostnames: r.requiredStringList(key('hostnames')) ?? [],
    failOnNxdomain: r.bool(key('fail-on-nxdomain'), false),
  };
}

function udp(r: FieldReader, key: KeyOf): UdpConfig {
  return {
    kind: 'UDP',
    intervalMs: r.seconds(key('interval'), 10),
    icmpTimeoutMs: r.seconds(key('icmp-timeout'), 20),
    ...riseFall(r, key),
  };
}

function ping(r: FieldReader, key: KeyOf): PingConfig {
  return {
    kind: 'Ping',
    ...periodic(r, 'Ping', key),
    count: r.int(key('count'), 1, { min: 1, max: 100 }),
  };
}

function tcpConnect(r: FieldReader, key: KeyOf): TcpConnectConfig {
  return { kind: 'TCPConnect', ...periodic(r, 'TCPConnect', key) };
}

const PARSERS: { readonly [K in MonitorKind]: (r: FieldReader, key: KeyOf) => Extract<MonitorConfig, { kind: K }> } = {
  ProxyFetch: proxyFetch,
  IdleConnection: idleConnection,
  RunCommand: runCommand,
  SSH: ssh,
  DNSQuery: dnsQuery,
  UDP: udp,
  Ping: ping,
  TCPConnect: tcpConnect,
};

/** Each monitor's `<monitor>.<option>` keys, made once rather than again for every service that reads them. */
const KEY_OF = Object.fromEntries(
  MONITOR_KINDS.map((kind): [MonitorKind, KeyOf] => {
    const prefix = monitorPrefix(kind);
    const keys = new Map(MONITOR_OPTIONS[kind].map((option) => [option, `${prefix}.${option}`]));
    return [kind, (option) => keys.get(option) ?? `${prefix}.${option}`];
  }),
) as Readonly<Record<MonitorKind, KeyOf>>;

/** One monitor's configuration, read from the service section's `<monitor>.` keys. */
export function parseMonitor(r: FieldReader, kind: MonitorKind): MonitorConfig {
  return PARSERS[kind](r, KEY_OF[kind]);
}
