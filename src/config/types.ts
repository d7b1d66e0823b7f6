/**
 * The typed configuration: what `pybal.conf` means once parsed and validated.
 * Keys keep PyBal's spelling in the file; this is the only camelCase view of
 * them, and every other component receives these plain values.
 *
 * Defaults are PyBal's unless a comment says otherwise. Durations are in
 * milliseconds here, whatever unit the file uses (PyBal's keys are seconds).
 */

/** Where a value came from, for messages that name file and line. */
export interface SourceRef {
  readonly file: string;
  readonly line: number;
}

export interface Config {
  /** The file the configuration was read from. */
  readonly file: string;
  readonly global: GlobalConfig;
  /** Services in file order. */
  readonly services: readonly ServiceConfig[];
}

export type AddressFamily = 4 | 6;

/** A BGP community, RFC 1997 (`64496:100`) or a well-known name resolved to its value. */
export interface Community {
  readonly asn: number;
  readonly value: number;
}

export interface GlobalConfig {
  /** `bgp` (default false). */
  readonly bgp: boolean;
  /** `bgp-local-asn`: required when bgp is on; 1..4294967295 (PyBal: 16 bits only). */
  readonly bgpLocalAsn: number | undefined;
  /** `bgp-peer-address`: one address or a Python list (default none). */
  readonly bgpPeerAddresses: readonly string[];
  /** `bgp-as-path`: space-separated ASNs (default: the local ASN alone). */
  readonly bgpAsPath: readonly number[];
  /** `bgp-med` (default 0). */
  readonly bgpMed: number;
  /** `bgp-nexthop-ipv4`: required when an IPv4 service announces. */
  readonly bgpNexthopIpv4: string | undefined;
  /** `bgp-nexthop-ipv6`: required when an IPv6 service announces. */
  readonly bgpNexthopIpv6: string | undefined;
  /** `bgp-local-ips` (default `[""]`, every address): where to accept incoming sessions. */
  readonly bgpLocalIps: readonly string[];
  /** `bgp-local-port` (default 179). */
  readonly bgpLocalPort: number;
  /** New: `bgp-peer-asn`, the peer's expected ASN; checked against its OPEN when given. */
  readonly bgpPeerAsn: number | undefined;
  /** New: `bgp-hold-time` in seconds (default 180, PyBal's); 0 or >= 3. */
  readonly bgpHoldTimeSec: number;
  /** New: `bgp-router-id` (default: derived from a local IPv4 address). */
  readonly bgpRouterId: string | undefined;
  /** New: `bgp-communities`, space-separated `asn:value` (default none). */
  readonly bgpCommunities: readonly Community[];
  /** New: `bgp-connect-retry` in seconds, the first retry delay; doubles up to 8x (default 5). */
  readonly bgpConnectRetryMs: number;
  /**
   * New: `bgp-graceful-restart` in seconds (0, the default: off; at most
   * 4095): offer BGP graceful restart (RFC 4724), the routers keeping our
   * routes this long while pybal restarts (`systemctl restart`, a crash).
   */
  readonly bgpGracefulRestartSec: number;
  /**
   * New: `bgp-drain` (default false): start drained. While drained, every
   * announced VIP carries GRACEFUL_SHUTDOWN (65535:0, RFC 8326) and
   * `bgp-drain-med`, so the routers prefer the other directors; `pybal drain`
   * and `pybal undrain` change it at run time, and a reload that changes the
   * key applies it.
   */
  readonly bgpDrain: boolean;
  /** New: `bgp-drain-med` (default 4294967295, the worst): the MED of every VIP while drained. */
  readonly bgpDrainMed: number;
  /** New: `bgp-bfd` (default false): run BFD (RFC 5880/5881) with every BGP peer, so a router drops a dead or hung director's routes within a second. */
  readonly bgpBfd: boolean;
  /** New: `bgp-bfd-interval` in seconds (default 0.3): how often BFD packets go and are expected, once a session is up. */
  readonly bgpBfdIntervalMs: number;
  /** New: `bgp-bfd-multiplier` (default 3): packets missed before a session is down. */
  readonly bgpBfdMultiplier: number;
  /** `instrumentation` (default false). */
  readonly instrumentation: boolean;
  /** `instrumentation_port` (default 9090). */
  readonly instrumentationPort: number;
  /** `instrumentation_ips` (default `["127.0.0.1", "::1"]`). */
  readonly instrumentationIps: readonly string[];
  /** New: `runcommand-max-concurrent`, how many RunCommand checks may run at once across all services (default 32). */
  readonly runcommandMaxConcurrent: number;
  /** New: `ipvs-resync-interval` in seconds, how often the IPVS table is re-read and drift repaired (default 60, at least 1). */
  readonly ipvsResyncIntervalMs: number;
  /**
   * New: `event-history-size` (default 1000, 10..1000000): how many of the
   * latest state changes the daemon keeps for the status page and `/events`.
   */
  readonly eventHistorySize: number;
  /**
   * New: `ipvs-stats-interval` in seconds, how often the kernel's IPVS
   * counters of the configured services are read, for /metrics, /status and
   * the quiet-server alert (default 10; 0 turns reading off). A SIGHUP applies a change.
   */
  readonly ipvsStatsIntervalMs: number;
  /**
   * `dry-run` (as Wikimedia's templates render it; default no): read the
   * kernel and say what would change, write nothing and announce nothing,
   * as `pybal -n`. Read at start; a reload that changes it is told to restart.
   */
  readonly dryRun: boolean;
  /** `advertised_instrumentation_ips`: for the tooling around PyBal; checked as a list of addresses, no effect here. */
  readonly advertisedInstrumentationIps: readonly string[];
  /** New: `ipvs-sync-daemon` and its companions; undefined (the key absent): pybal leaves the kernel's sync daemons alone. */
  readonly ipvsSync: IpvsSyncConfig | undefined;
  /**
   * New: `ipvs-sloppy-tcp`: pybal sets the network namespace's
   * net.ipv4.vs.sloppy_tcp to 1 (true) or 0 (false) at start, at each reload
   * and at each IPVS resync; undefined (the key absent): pybal leaves the
   * kernel's value and warns when an mh or sh TCP service runs with it at 0.
   */
  readonly ipvsSloppyTcp: boolean | undefined;
  /** New: `ipvs-sloppy-sctp`: the same for net.ipv4.vs.sloppy_sctp and SCTP services. */
  readonly ipvsSloppySctp: boolean | undefined;
  /**
   * New: `datapath-fwmark-base`: data-path checks use the firewall marks
   * from here on (DATAPATH_FWMARK_COUNT of them), one per checked server,
   * each with a one-destination IPVS service of its own.
   */
  readonly dataPathFwmarkBase: number;
  /** New: `datapath-source-ipv4` / `-ipv6`: the address data-path checks leave from (default: the kernel's choice towards each server). */
  readonly dataPathSourceIpv4: string | undefined;
  readonly dataPathSourceIpv6: string | undefined;
  /**
   * New: `memory-saving`: V8's memory savings mode for the main thread's
   * heap once the daemon has started (src/runtime/heap-mode.ts): some MB
   * less resident, for garbage collections that come more often and, in
   * the lab guest, hold the event loop over 100 ms during scrapes and
   * reloads. Off by default. Read at start.
   */
  readonly memorySaving: boolean;
}

/** New: `ipvs-sync-daemon`: which of the kernel's IPVS connection-sync daemons run; `none` stops any. */
export const IPVS_SYNC_MODES = ['master', 'backup', 'both', 'none'] as const;
export type IpvsSyncMode = (typeof IPVS_SYNC_MODES)[number];

/**
 * The kernel's connection-sync daemons, as `ipvsadm --start-daemon` starts
 * them: a master sends the director's connections to a multicast group, a
 * backup takes them in, so that the director the routers move to already
 * knows the established connections.
 */
export interface IpvsSyncConfig {
  readonly mode: IpvsSyncMode;
  /** `ipvs-sync-interface`: the interface the sync messages leave and arrive on (required unless mode is none). */
  readonly interface: string;
  /** `ipvs-sync-id` (0..255, default 0): a master tags its messages, a backup takes only its own id's (0: a backup takes any). */
  readonly syncId: number;
  /** `ipvs-sync-group`: the multicast group, IPv4 or IPv6 (default: the kernel's, 224.0.0.81). */
  readonly group: string | undefined;
  /** `ipvs-sync-port` (default: the kernel's, 8848). */
  readonly port: number | undefined;
  /** `ipvs-sync-ttl`: the master's multicast TTL (default: the kernel's, 1). */
  readonly ttl: number | undefined;
}

export type Protocol = 'tcp' | 'udp' | 'sctp';

/** Every scheduler the kernel ships (ip_vs_*.ko). */
export const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'] as const;
export type Scheduler = (typeof SCHEDULERS)[number];

/** New: `forward-method`; PyBal always uses direct routing (ipvsadm's default). */
export type ForwardMethod = 'dr' | 'nat' | 'tunnel';

/** New: `tunnel-type`, the encapsulation of `tunnel` forwarding (IPIP unless set). */
export const TUNNEL_TYPES = ['ipip', 'gue', 'gre'] as const;
export type TunnelKind = (typeof TUNNEL_TYPES)[number];

/** New: `tunnel-checksum`: none, csum (GUE and GRE) or remcsum (GUE only), as ipvsadm's --tun-nocsum/--tun-csum/--tun-remcsum. */
export const TUNNEL_CHECKSUMS = ['none', 'csum', 'remcsum'] as const;
export type TunnelChecksum = (typeof TUNNEL_CHECKSUMS)[number];

/** How `tunnel` forwarding encapsulates (meaningful only when forwardMethod is tunnel). */
export interface TunnelConfig {
  readonly type: TunnelKind;
  /** `tunnel-port`: GUE's UDP destination port (required for GUE, 0 otherwise). */
  readonly port: number;
  readonly checksum: TunnelChecksum;
}

/** How many firewall marks data-path checks may use, from `datapath-fwmark-base` on. */
export const DATAPATH_FWMARK_COUNT = 0x100000;
/** The default `datapath-fwmark-base`. */
export const DEFAULT_DATAPATH_FWMARK_BASE = 0x70b00000;

/** Persistence engines the kernel ships (ip_vs_pe_*.ko). */
export const PERSISTENCE_ENGINES = ['sip'] as const;

export interface ServiceConfig {
  /** The section name. */
  readonly name: string;
  /** Where the section starts, for messages. */
  readonly source: SourceRef;
  /** `protocol`: tcp or udp as PyBal; sctp too. */
  readonly protocol: Protocol;
  /** `ip`: the VIP, normalised. */
  readonly ip: string;
  readonly family: AddressFamily;
  /** `port`: 1..65535. */
  readonly port: number;
  /** `scheduler`. */
  readonly scheduler: Scheduler;
  /**
   * New: `scheduler-flags`, a list of `sh-fallback`, `sh-port`, `mh-fallback`,
   * `mh-port` (sh and mh only; default none).
   */
  readonly schedulerFlags: readonly ('fallback' | 'port')[];
  /** `ops`: one-packet scheduling, udp only (default false). */
  readonly ops: boolean;
  /** `config`: the pool source URL (file://, http://, https://, etcd://). */
  readonly poolUrl: string;
  /** `monitors` with each monitor's options. Empty when absent (PyBal warns). */
  readonly monitors: readonly MonitorConfig[];
  /** `depool-threshold` (default 0.5), 0..1. */
  readonly depoolThreshold: number;
  /** `bgp`: announce this VIP (default true; global bgp must be on too). */
  readonly bgp: boolean;
  /** `bgp-med`: per-VIP MED (default: the global one). */
  readonly bgpMed: number | undefined;
  /** New: `bgp-communities` for this VIP, added to the global ones. */
  readonly bgpCommunities: readonly Community[];
  /** New: `bgp-withdraw-when-down`: withdraw the VIP when no healthy server is pooled (default false). */
  readonly bgpWithdrawWhenDown: boolean;
  /** New: `forward-method` (default dr), or `tunneling = true` (newer PyBal) for tunnel. */
  readonly forwardMethod: ForwardMethod;
  /** New: `tunnel-type`, `tunnel-port`, `tunnel-checksum` (default IPIP). */
  readonly tunnel: TunnelConfig;
  /**
   * New: `fwmark`, a firewall-mark service (1..2^32-1) instead of protocol, ip
   * and port; `ip` stays the VIP announced (and its family), `port` the port
   * checks connect to. Undefined for an ip:port service.
   */
  readonly fwmark: number | undefined;
  /**
   * New: `real-port`, the real servers' port when it differs from the VIP's
   * (NAT rewrites it). Checks connect to it. Undefined: the service's port
   * (for a firewall-mark service, the packet's own port).
   */
  readonly realPort: number | undefined;
  /** New: `persistence-timeout` in seconds, 0 = no persistence (default 0). */
  readonly persistenceTimeoutSec: number;
  /** New: `persistence-netmask`: IPv4 dotted mask or IPv6 prefix length (default /32 or /128). */
  readonly persistenceNetmask: string | undefined;
  /** New: `persistence-engine` (sip; default none). */
  readonly persistenceEngine: string | undefined;
  /** New: `upper-threshold`, connections per real server above which it takes no new ones (0 = none). */
  readonly upperThreshold: number;
  /** New: `lower-threshold`, connections below which an overloaded server takes new ones again (0 = none). */
  readonly lowerThreshold: number;
  /**
   * New: the monitors that check each server through the data path (to the
   * VIP, forwarded to that server as client traffic is): `datapath-check`
   * for every monitor that can, `<monitor>.datapath` per monitor. Empty for
   * NAT (its checks take the real path already) and by default.
   */
  readonly dataPathMonitors: readonly MonitorKind[];
}

/** Options every periodic monitor has. */
export interface PeriodicMonitorOptions {
  /** `<monitor>.interval` in seconds. */
  readonly intervalMs: number;
  /** `<monitor>.timeout` in seconds: the overall deadline of one check. */
  readonly timeoutMs: number;
  /** New: `<monitor>.rise`, consecutive good results to go up (default 1). */
  readonly rise: number;
  /** New: `<monitor>.fall`, consecutive bad results to go down (default 1). */
  readonly fall: number;
}

export interface ProxyFetchConfig extends PeriodicMonitorOptions {
  readonly kind: 'ProxyFetch';
  /** `proxyfetch.url`: required, a list of http(s) URLs. Defaults: interval 10 s, timeout 5 s. */
  readonly urls: readonly string[];
  /** `proxyfetch.http_status` (default 200): 301, 302 or 303 expect that redirect instead. */
  readonly httpStatus: number;
  /** `proxyfetch.check_all` (default false). */
  readonly checkAll: boolean;
  /** `proxyfetch.max_failures` (default 0; read only with check_all). */
  readonly maxFailures: number;
  /** New: `proxyfetch.expect-body`, a substring the body must contain. */
  readonly expectBody: string | undefined;
  /** New: `proxyfetch.expect-body-regex`, a regular expression the body must match. */
  readonly expectBodyRegex: string | undefined;
  /** New: `proxyfetch.verify-tls` (default false, as PyBal). */
  readonly verifyTls: boolean;
  /** New: `proxyfetch.ca-file`, CA bundle for verify-tls (default: Node's). */
  readonly caFile: string | undefined;
}

export interface IdleConnectionConfig {
  readonly kind: 'IdleConnection';
  /** `idleconnection.timeout-clean-reconnect` (default 3 s). */
  readonly timeoutCleanReconnectMs: number;
  /** `idleconnection.max-delay` (default 300 s): backoff cap. */
  readonly maxDelayMs: number;
  /** `idleconnection.keepalive` (default true). */
  readonly keepalive: boolean;
  /** `idleconnection.keepalive-retries` (default 3). Accepted but not applied: Node 20's libuv fixes TCP_KEEPCNT at 10. */
  readonly keepaliveRetries: number;
  /** `idleconnection.keepalive-idle` (default 10 s). */
  readonly keepaliveIdleMs: number;
  /** `idleconnection.keepalive-interval` (default 30 s). Accepted but not applied: Node 20's libuv fixes TCP_KEEPINTVL at 1 s. */
  readonly keepaliveIntervalMs: number;
  /** New: `idleconnection.timeout`, connect timeout (default 5 s; PyBal's is Twisted's 30 s). */
  readonly connectTimeoutMs: number;
  /** New: `idleconnection.rise` / `.fall` (default 1). */
  readonly rise: number;
  readonly fall: number;
}

/** One element of `runcommand.arguments`: a literal or PyBal's `server.host` / `server.ip`. */
export type CommandArgument = { readonly literal: string } | { readonly server: 'host' | 'ip' };

export interface RunCommandConfig extends PeriodicMonitorOptions {
  readonly kind: 'RunCommand';
  /** `runcommand.command`: required, the executable. Defaults: interval 60 s, timeout 20 s. */
  readonly command: string;
  /** `runcommand.arguments` (default PyBal's `[""]`: one empty argument). */
  readonly arguments: readonly CommandArgument[];
  /** `runcommand.log-output` (default true; logged at debug). */
  readonly logOutput: boolean;
}

export interface SshConfig extends PeriodicMonitorOptions {
  readonly kind: 'SSH';
  /** New monitor. `ssh.user` (default root). Defaults: interval 60 s, timeout 10 s. */
  readonly user: string;
  /** `ssh.private-key`: required, path of the key file. */
  readonly privateKeyFile: string;
  /** `ssh.command` (default `true`): exit status 0 is up. */
  readonly command: string;
  /** `ssh.port` (default 22). */
  readonly port: number;
  /** `ssh.known-hosts`: an OpenSSH known_hosts file; when given, host keys are verified. */
  readonly knownHostsFile: string | undefined;
}

export interface DnsQueryConfig extends PeriodicMonitorOptions {
  readonly kind: 'DNSQuery';
  /** `dnsquery.hostnames`: required list. Defaults: interval 10 s, timeout 5 s. */
  readonly hostnames: readonly string[];
  /** `dnsquery.fail-on-nxdomain` (default false). */
  readonly failOnNxdomain: boolean;
}

export interface UdpConfig {
  readonly kind: 'UDP';
  /** `udp.interval` (default 10 s). */
  readonly intervalMs: number;
  /** `udp.icmp-timeout` (default 20 s): down while port-unreachable was seen within it. */
  readonly icmpTimeoutMs: number;
  readonly rise: number;
  readonly fall: number;
}

export interface PingConfig extends PeriodicMonitorOptions {
  readonly kind: 'Ping';
  /** New monitor. `ping.count`: echo requests per check, up when any is answered (default 1). Defaults: interval 1 s, timeout 1 s. */
  readonly count: number;
}

export interface TcpConnectConfig extends PeriodicMonitorOptions {
  /** New monitor (keepalived's TCP_CHECK): up when a TCP connect to the service port completes within the timeout. Defaults: interval 10 s, timeout 5 s. */
  readonly kind: 'TCPConnect';
}

export type MonitorConfig =
  | ProxyFetchConfig
  | IdleConnectionConfig
  | RunCommandConfig
  | SshConfig
  | DnsQueryConfig
  | UdpConfig
  | PingConfig
  | TcpConnectConfig;

export type MonitorKind = MonitorConfig['kind'];

/** Monitor names as a config's `monitors` list spells them (PyBal matches case-sensitively on the module; we accept any case). */
export const MONITOR_KINDS: readonly MonitorKind[] = ['ProxyFetch', 'IdleConnection', 'RunCommand', 'SSH', 'DNSQuery', 'UDP', 'Ping', 'TCPConnect'];
