/**
 * The effective configuration (every key, defaults filled in) rendered as INI
 * with the `ini` package, for `pybal check-config --print`.
 *
 * The output is in the `ini` package's dialect: it quotes values that start
 * with `[` (the Python list values) and escapes `;` and `#`, so it reads back
 * with `ini.decode`, not with PyBal. It is for reading and diffing. Pure.
 */

import { encode } from 'ini';

import { WELL_KNOWN_COMMUNITIES } from './field-reader.js';
import { formatPyValue, type PyValue } from './python-literal.js';
import { DATAPATH_MONITORS, monitorPrefix } from './keys.js';
import type { CommandArgument, Community, Config, GlobalConfig, MonitorConfig, ServiceConfig } from './types.js';

export type Values = Record<string, string>;

const yesNo = (value: boolean): string => (value ? 'yes' : 'no');
const seconds = (ms: number): string => String(ms / 1000);
const str = (value: string): PyValue => ({ type: 'str', value });
const pyList = (items: readonly string[]): string => formatPyValue({ type: 'list', items: items.map(str) });
const communityName = (c: Community): string =>
  Object.entries(WELL_KNOWN_COMMUNITIES).find(([, k]) => k.asn === c.asn && k.value === c.value)?.[0] ?? `${c.asn}:${c.value}`;
const communities = (list: readonly Community[]): string => list.map(communityName).join(' ');
const argument = (a: CommandArgument): PyValue => ('literal' in a ? str(a.literal) : { type: 'name', name: `server.${a.server}` });

/** Leaves out keys whose value is undefined (optional keys with no default). */
function defined(values: Record<string, string | undefined>): Values {
  return Object.fromEntries(Object.entries(values).filter((e): e is [string, string] => e[1] !== undefined));
}

/** The `[global]` section's effective values, keyed as the file spells them. */
export function formatGlobal(g: GlobalConfig): Values {
  return defined({
    bgp: yesNo(g.bgp),
    'bgp-local-asn': g.bgpLocalAsn?.toString(),
    'bgp-peer-address': pyList(g.bgpPeerAddresses),
    'bgp-as-path': g.bgpAsPath.join(' '),
    'bgp-med': String(g.bgpMed),
    'bgp-nexthop-ipv4': g.bgpNexthopIpv4,
    'bgp-nexthop-ipv6': g.bgpNexthopIpv6,
    'bgp-local-ips': pyList(g.bgpLocalIps),
    'bgp-local-port': String(g.bgpLocalPort),
    'bgp-peer-asn': g.bgpPeerAsn?.toString(),
    'bgp-hold-time': String(g.bgpHoldTimeSec),
    'bgp-router-id': g.bgpRouterId,
    'bgp-communities': communities(g.bgpCommunities),
    'bgp-connect-retry': seconds(g.bgpConnectRetryMs),
    'bgp-graceful-restart': String(g.bgpGracefulRestartSec),
    'bgp-drain': yesNo(g.bgpDrain),
    'bgp-drain-med': String(g.bgpDrainMed),
    'bgp-bfd': yesNo(g.bgpBfd),
    'bgp-bfd-interval': seconds(g.bgpBfdIntervalMs),
    'bgp-bfd-multiplier': String(g.bgpBfdMultiplier),
    instrumentation: yesNo(g.instrumentation),
    instrumentation_port: String(g.instrumentationPort),
    instrumentation_ips: pyList(g.instrumentationIps),
    'runcommand-max-concurrent': String(g.runcommandMaxConcurrent),
    'ipvs-resync-interval': seconds(g.ipvsResyncIntervalMs),
    'event-history-size': String(g.eventHistorySize),
    'ipvs-stats-interval': seconds(g.ipvsStatsIntervalMs),
    'dry-run': yesNo(g.dryRun),
    advertised_instrumentation_ips: pyList(g.advertisedInstrumentationIps),
    'ipvs-sync-daemon': g.ipvsSync?.mode,
    'ipvs-sync-interface': g.ipvsSync?.interface || undefined,
    'ipvs-sync-id': g.ipvsSync && g.ipvsSync.mode !== 'none' ? String(g.ipvsSync.syncId) : undefined,
    'ipvs-sync-group': g.ipvsSync?.group,
    'ipvs-sync-port': g.ipvsSync?.port?.toString(),
    'ipvs-sync-ttl': g.ipvsSync?.ttl?.toString(),
    'ipvs-sloppy-tcp': g.ipvsSloppyTcp === undefined ? undefined : yesNo(g.ipvsSloppyTcp),
    'ipvs-sloppy-sctp': g.ipvsSloppySctp === undefined ? undefined : yesNo(g.ipvsSloppySctp),
    'datapath-fwmark-base': `0x${g.dataPathFwmarkBase.toString(16)}`,
    'datapath-source-ipv4': g.dataPathSourceIpv4,
    'datapath-source-ipv6': g.dataPathSourceIpv6,
    'memory-saving': yesNo(g.memorySaving),
  });
}

function monitorOptions(m: MonitorConfig): Record<string, string | undefined> {
  const periodic =
    'timeoutMs' in m ? { interval: seconds(m.intervalMs), timeout: seconds(m.timeoutMs), rise: String(m.rise), fall: String(m.fall) } : {};
  switch (m.kind) {
    case 'ProxyFetch':
      return {
        url: pyList(m.urls),
        ...periodic,
        http_status: String(m.httpStatus),
        check_all: yesNo(m.checkAll),
        max_failures: String(m.maxFailures),
        'expect-body': m.expectBody,
        'expect-body-regex': m.expectBodyRegex,
        'verify-tls': yesNo(m.verifyTls),
        'ca-file': m.caFile,
      };
    case 'IdleConnection':
      return {
        'timeout-clean-reconnect': seconds(m.timeoutCleanReconnectMs),
        'max-delay': seconds(m.maxDelayMs),
        keepalive: yesNo(m.keepalive),
        'keepalive-retries': String(m.keepaliveRetries),
        'keepalive-idle': seconds(m.keepaliveIdleMs),
        'keepalive-interval': seconds(m.keepaliveIntervalMs),
        timeout: seconds(m.connectTimeoutMs),
        rise: String(m.rise),
        fall: String(m.fall),
      };
    case 'RunCommand':
      return {
        command: m.command,
        arguments: formatPyValue({ type: 'list', items: m.arguments.map(argument) }),
        ...periodic,
        'log-output': yesNo(m.logOutput),
      };
    case 'SSH':
      return { user: m.user, 'private-key': m.privateKeyFile, command: m.command, port: String(m.port), 'known-hosts': m.knownHostsFile, ...periodic };
    case 'DNSQuery':
      return { hostnames: pyList(m.hostnames), ...periodic, 'fail-on-nxdomain': yesNo(m.failOnNxdomain) };
    case 'UDP':
      return { interval: seconds(m.intervalMs), 'icmp-timeout': seconds(m.icmpTimeoutMs), rise: String(m.rise), fall: String(m.fall) };
    case 'Ping':
      return { count: String(m.count), ...periodic };
    case 'TCPConnect':
      return periodic;
  }
}

/** A service section's effective values, keyed as the file spells them (monitor options as `proxyfetch.url`). */
export function formatService(s: ServiceConfig): Values {
  const monitors = s.monitors.flatMap((m) =>
    Object.entries(monitorOptions(m)).map(([option, value]) => [`${monitorPrefix(m.kind)}.${option}`, value] as const),
  );
  return defined({
    protocol: s.protocol,
    ip: s.ip,
    port: String(s.port),
    scheduler: s.scheduler,
    'scheduler-flags': s.schedulerFlags.map((f) => `${s.scheduler}-${f}`).join(' '),
    ops: yesNo(s.ops),
    config: s.poolUrl,
    monitors: pyList(s.monitors.map((m) => m.kind)),
    'depool-threshold': String(s.depoolThreshold),
    bgp: yesNo(s.bgp),
    'bgp-med': s.bgpMed?.toString(),
    'bgp-communities': communities(s.bgpCommunities),
    'bgp-withdraw-when-down': yesNo(s.bgpWithdrawWhenDown),
    'forward-method': s.forwardMethod,
    ...(s.forwardMethod === 'tunnel'
      ? { 'tunnel-type': s.tunnel.type, 'tunnel-port': s.tunnel.type === 'gue' ? String(s.tunnel.port) : undefined, 'tunnel-checksum': s.tunnel.checksum }
      : {}),
    fwmark: s.fwmark?.toString(),
    'real-port': s.realPort?.toString(),
    'persistence-timeout': String(s.persistenceTimeoutSec),
    'persistence-netmask': s.persistenceNetmask,
    'persistence-engine': s.persistenceEngine,
    'upper-threshold': String(s.upperThreshold),
    'lower-threshold': String(s.lowerThreshold),
    ...Object.fromEntries(monitors),
    // Each monitor's own say, so that the effective values show which ones check through the data path.
    ...Object.fromEntries(s.monitors.filter((m) => DATAPATH_MONITORS.has(m.kind)).map((m) => [`${monitorPrefix(m.kind)}.datapath`, yesNo(s.dataPathMonitors.includes(m.kind))])),
  });
}

/** Every section as `ini` sees it: `global` first, then the services in file order. */
export function effectiveSections(config: Config): Record<string, Values> {
  return Object.fromEntries([['global', formatGlobal(config.global)], ...config.services.map((s) => [s.name, formatService(s)] as const)]);
}

export function formatConfig(config: Config): string {
  return encode(effectiveSections(config), { whitespace: true });
}
