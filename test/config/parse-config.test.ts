import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { parseConfig } from '../../src/config/parse-config.js';
import type { Config, GlobalConfig, MonitorConfig, ServiceConfig } from '../../src/config/types.js';
import { formatProblem } from '../../src/runtime/errors.js';

const FILE = 'test.conf';

function check(text: string): { config: Config | undefined; errors: string[]; warnings: string[] } {
  const r = parseConfig(text, FILE);
  return { config: r.config, errors: r.errors.map(formatProblem), warnings: r.warnings.map(formatProblem) };
}

function valid(text: string): Config {
  const r = check(text);
  expect(r.errors).toEqual([]);
  if (!r.config) throw new Error('no config');
  return r.config;
}

/** A valid service; `over` replaces base keys in place (null removes one) and appends new keys from line 8. */
const BASE: Record<string, string> = {
  protocol: 'tcp',
  ip: '192.0.2.1',
  port: '80',
  scheduler: 'wlc',
  config: 'file:///etc/pybal/pools/s',
  monitors: "[ 'IdleConnection' ]",
};
function service(over: Record<string, string | null> = {}, name = 's'): string {
  const lines = Object.entries({ ...BASE, ...over })
    .filter((e): e is [string, string] => e[1] !== null)
    .map(([k, v]) => `${k} = ${v}`);
  return `[${name}]\n${lines.join('\n')}\n`;
}

const GLOBAL_DEFAULTS: GlobalConfig = {
  bgp: false,
  bgpLocalAsn: undefined,
  bgpPeerAddresses: [],
  bgpAsPath: [],
  bgpMed: 0,
  bgpNexthopIpv4: undefined,
  bgpNexthopIpv6: undefined,
  bgpLocalIps: [''],
  bgpLocalPort: 179,
  bgpPeerAsn: undefined,
  bgpHoldTimeSec: 180,
  bgpRouterId: undefined,
  bgpCommunities: [],
  bgpConnectRetryMs: 5000,
  bgpGracefulRestartSec: 0,
  bgpDrain: false,
  bgpDrainMed: 4294967295,
  bgpBfd: false,
  bgpBfdIntervalMs: 300,
  bgpBfdMultiplier: 3,
  instrumentation: false,
  instrumentationPort: 9090,
  instrumentationIps: ['127.0.0.1', '::1'],
  runcommandMaxConcurrent: 32,
  ipvsResyncIntervalMs: 60_000,
  eventHistorySize: 1000,
  ipvsStatsIntervalMs: 10_000,
  dryRun: false,
  advertisedInstrumentationIps: [],
  ipvsSync: undefined,
  ipvsSloppyTcp: undefined,
  ipvsSloppySctp: undefined,
  dataPathFwmarkBase: 0x70b00000,
  dataPathSourceIpv4: undefined,
  dataPathSourceIpv6: undefined,
  memorySaving: false,
};

const IDLE_DEFAULTS: MonitorConfig = {
  kind: 'IdleConnection',
  timeoutCleanReconnectMs: 3000,
  maxDelayMs: 300000,
  keepalive: true,
  keepaliveRetries: 3,
  keepaliveIdleMs: 10000,
  keepaliveIntervalMs: 30000,
  connectTimeoutMs: 5000,
  rise: 1,
  fall: 1,
};

const SERVICE_DEFAULTS = {
  schedulerFlags: [],
  ops: false,
  depoolThreshold: 0.5,
  bgp: true,
  bgpMed: undefined,
  bgpCommunities: [],
  bgpWithdrawWhenDown: false,
  forwardMethod: 'dr',
  tunnel: { type: 'ipip', port: 0, checksum: 'none' },
  fwmark: undefined,
  realPort: undefined,
  persistenceTimeoutSec: 0,
  persistenceNetmask: undefined,
  persistenceEngine: undefined,
  upperThreshold: 0,
  lowerThreshold: 0,
  dataPathMonitors: [],
} as const;

// The example shipped in PyBal's debian/pybal.conf (pybal-behaviour.md section 2), verbatim.
const PYBAL_EXAMPLE = readFileSync(fileURLToPath(new URL('./fixtures/pybal-debian-example.conf', import.meta.url)), 'utf8');

describe('parseConfig: the example config of PyBal', () => {
  it('reads every value as PyBal does', () => {
    const r = parseConfig(PYBAL_EXAMPLE, FILE);
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.config).toStrictEqual({
      file: FILE,
      global: {
        ...GLOBAL_DEFAULTS,
        bgp: false,
        bgpLocalAsn: 64496,
        bgpPeerAddresses: ['192.0.2.254'],
        bgpAsPath: [64496, 64511],
        bgpNexthopIpv4: '192.0.2.100',
        bgpNexthopIpv6: '2001:db8:1:1::100',
      },
      services: [
        {
          ...SERVICE_DEFAULTS,
          name: 'text',
          source: { file: FILE, line: 9 },
          protocol: 'tcp',
          ip: '192.0.2.11',
          family: 4,
          port: 80,
          scheduler: 'wlc',
          poolUrl: 'file:///etc/pybal/text-servers',
          depoolThreshold: 0.5,
          bgp: false,
          monitors: [
            {
              kind: 'ProxyFetch',
              urls: ['http://www.example.com/'],
              intervalMs: 10000,
              timeoutMs: 5000,
              rise: 1,
              fall: 1,
              httpStatus: 200,
              checkAll: false,
              maxFailures: 0,
              expectBody: undefined,
              expectBodyRegex: undefined,
              verifyTls: false,
              caFile: undefined,
            },
            IDLE_DEFAULTS,
            {
              kind: 'RunCommand',
              command: '/bin/sh',
              arguments: [{ literal: '/etc/pybal/command-test' }, { server: 'host' }, { literal: 'one' }, { literal: '2' }, { literal: 'III' }],
              intervalMs: 60000,
              timeoutMs: 10000,
              rise: 1,
              fall: 1,
              logOutput: true,
            },
          ],
        },
        {
          ...SERVICE_DEFAULTS,
          name: 'dns',
          source: { file: FILE, line: 27 },
          protocol: 'udp',
          ip: '192.0.2.22',
          family: 4,
          port: 53,
          scheduler: 'wrr',
          poolUrl: 'file:///etc/pybal/dns',
          monitors: [
            {
              kind: 'DNSQuery',
              hostnames: ['www.example.com', 'nxdomain.example.com'],
              intervalMs: 10000,
              timeoutMs: 5000,
              rise: 1,
              fall: 1,
              failOnNxdomain: false,
            },
            IDLE_DEFAULTS,
          ],
        },
      ],
    });
  });
});

describe("parseConfig: a configuration as Wikimedia's templates render it for newer PyBal", () => {
  const text = readFileSync(fileURLToPath(new URL('./fixtures/wikimedia-rendered.conf', import.meta.url)), 'utf8');

  it('loads with neither errors nor warnings, and reads the newer keys with their meaning', () => {
    const r = check(text);
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    const config = r.config as Config;
    expect(config.global).toMatchObject({ dryRun: false, advertisedInstrumentationIps: ['192.0.2.30'], instrumentationIps: ['127.0.0.1', '::1', '192.0.2.30'] });
    const [text443, text443v6, dns] = config.services;
    // tunneling = true: IPIP, not the direct routing PyBal 1.15 would program.
    expect(text443).toMatchObject({ forwardMethod: 'tunnel', tunnel: { type: 'ipip', port: 0, checksum: 'none' }, scheduler: 'mh', ops: false });
    expect(text443?.poolUrl).toBe('etcd://conf.example.org:4001/conftool/v1/pools/eqiad/cache_text/cdn/');
    expect(text443?.monitors.map((m) => m.kind)).toEqual(['IdleConnection', 'ProxyFetch']);
    expect(text443v6).toMatchObject({ family: 6, ip: '2001:db8:0:ed1a::1', forwardMethod: 'dr' });
    expect(dns).toMatchObject({ protocol: 'udp', ops: true, forwardMethod: 'dr', bgp: true });
    expect(dns?.monitors[0]).toMatchObject({ kind: 'DNSQuery', hostnames: ['www.example.org', 'nxdomain.example.org'], failOnNxdomain: false });
  });
});

describe('parseConfig: defaults', () => {
  it('fills in every default of [global], a service and every monitor', () => {
    const config = valid(`[s]
protocol = tcp
ip = 192.0.2.1
port = 80
scheduler = wlc
config = file:///etc/pybal/pools/s
monitors = [ 'ProxyFetch', 'IdleConnection', 'RunCommand', 'SSH', 'DNSQuery', 'UDP', 'Ping', 'TCPConnect' ]
proxyfetch.url = [ 'http://example.org/' ]
runcommand.command = /bin/true
ssh.private-key = /etc/pybal/ssh/key
dnsquery.hostnames = [ 'example.org' ]
`);
    expect(config.global).toStrictEqual(GLOBAL_DEFAULTS);
    const s = config.services[0] as ServiceConfig;
    expect({ ...s, monitors: [] }).toStrictEqual({
      ...SERVICE_DEFAULTS,
      name: 's',
      source: { file: FILE, line: 1 },
      protocol: 'tcp',
      ip: '192.0.2.1',
      family: 4,
      port: 80,
      scheduler: 'wlc',
      poolUrl: 'file:///etc/pybal/pools/s',
      monitors: [],
    });
    const periodic = (intervalMs: number, timeoutMs: number) => ({ intervalMs, timeoutMs, rise: 1, fall: 1 });
    expect(s.monitors).toStrictEqual([
      {
        kind: 'ProxyFetch',
        ...periodic(10000, 5000),
        urls: ['http://example.org/'],
        httpStatus: 200,
        checkAll: false,
        maxFailures: 0,
        expectBody: undefined,
        expectBodyRegex: undefined,
        verifyTls: false,
        caFile: undefined,
      },
      IDLE_DEFAULTS,
      { kind: 'RunCommand', ...periodic(60000, 20000), command: '/bin/true', arguments: [{ literal: '' }], logOutput: true },
      {
        kind: 'SSH',
        ...periodic(60000, 10000),
        user: 'root',
        privateKeyFile: '/etc/pybal/ssh/key',
        command: 'true',
        port: 22,
        knownHostsFile: undefined,
      },
      { kind: 'DNSQuery', ...periodic(10000, 5000), hostnames: ['example.org'], failOnNxdomain: false },
      { kind: 'UDP', intervalMs: 10000, icmpTimeoutMs: 20000, rise: 1, fall: 1 },
      { kind: 'Ping', ...periodic(1000, 1000), count: 1 },
      { kind: 'TCPConnect', ...periodic(10000, 5000) },
    ]);
  });

  it('defaults bgp-as-path to the local AS alone', () => {
    const config = valid(`[global]\nbgp = yes\nbgp-local-asn = 4200000000\nbgp-peer-address = 192.0.2.254\nbgp-nexthop-ipv4 = 192.0.2.100\n${service()}`);
    expect(config.global.bgpAsPath).toEqual([4200000000]);
    expect(config.global.bgpLocalAsn).toBe(4200000000);
  });
});

describe('parseConfig: every key set', () => {
  it('reads a non-default value for every key', () => {
    const config = valid(`[global]
BGP = on
bgp-local-asn = 64496
bgp-peer-address = [ '192.0.2.254', u'2001:DB8::FE' ]
bgp-as-path = 64496 64511 4200000000
bgp-med = 7
bgp-nexthop-ipv4 = 192.0.2.100
bgp-nexthop-ipv6 = 2001:db8:0:0::100
bgp-local-ips = [ '192.0.2.100', '2001:db8::100' ]
bgp-local-port = 1179
bgp-peer-asn = 64511
bgp-hold-time = 0
bgp-router-id = 192.0.2.100
bgp-communities = 64496:100 no-export no-advertise no-export-subconfed
bgp-connect-retry = 2.5
bgp-graceful-restart = 90
bgp-drain = yes
bgp-drain-med = 1000
bgp-bfd = yes
bgp-bfd-interval = 0.1
bgp-bfd-multiplier = 5
instrumentation = true
instrumentation_port = 9091
instrumentation_ips = [ '' ]
runcommand-max-concurrent = 4
ipvs-resync-interval = 12.5
event-history-size = 50
dry-run = yes
advertised_instrumentation_ips = [ '192.0.2.100' ]
ipvs-sync-daemon = both
ipvs-sync-interface = eth1
ipvs-sync-id = 9
ipvs-sync-group = 239.1.2.3
ipvs-sync-port = 8850
ipvs-sync-ttl = 3
ipvs-sloppy-tcp = yes
ipvs-sloppy-sctp = off
datapath-fwmark-base = 0x1000
datapath-source-ipv4 = 192.0.2.50
datapath-source-ipv6 = 2001:DB8::50
memory-saving = yes

[v6]
protocol = sctp
ip = 2001:DB8::11
port = 443
scheduler = mh
scheduler-flags = [ 'mh-fallback', 'mh-port' ]
ops: off
config = etcd://etcd.example.org:2379/conftool/v1/pools/v6
monitors = [ 'proxyfetch', 'IDLECONNECTION', 'RunCommand', 'ssh', 'DNSQuery', 'Ping' ]
depool-threshold = 0.25
bgp = yes
bgp-med = 20
bgp-communities = 64496:443
bgp-withdraw-when-down = yes
forward-method = tunnel
tunnel-type = gue
tunnel-port = 6080
tunnel-checksum = remcsum
fwmark = 0x10
persistence-timeout = 600
persistence-netmask = /48
upper-threshold = 50
lower-threshold = 40
proxyfetch.url = 'https://example.org/health'
proxyfetch.interval = 0.5
proxyfetch.timeout = 0.25
proxyfetch.rise = 3
proxyfetch.fall = 4
proxyfetch.http_status = 302
proxyfetch.check_all = yes
proxyfetch.max_failures = 1
proxyfetch.expect-body = OK
proxyfetch.expect-body-regex = ^ok$
proxyfetch.verify-tls = yes
proxyfetch.ca-file = /etc/ssl/ca.pem
idleconnection.timeout-clean-reconnect = 1
idleconnection.max-delay = 60
idleconnection.keepalive = no
idleconnection.keepalive-retries = 5
idleconnection.keepalive-idle = 20
idleconnection.keepalive-interval = 7
idleconnection.timeout = 2
idleconnection.rise = 2
idleconnection.fall = 3
idleconnection.datapath = no
datapath-check = yes
runcommand.command = /usr/local/bin/check
runcommand.arguments = [ server.ip, '--port', '443' ]
runcommand.interval = 30
runcommand.timeout = 0
runcommand.rise = 2
runcommand.fall = 2
runcommand.log-output = off
ssh.user = check
ssh.private-key = /etc/pybal/id
ssh.command = /bin/check
ssh.port = 2222
ssh.known-hosts = /etc/pybal/known_hosts
ssh.interval = 120
ssh.timeout = 15
ssh.rise = 1
ssh.fall = 2
dnsquery.hostnames = [ 'a.example.org', "b.example.org" ]
dnsquery.interval = 3
dnsquery.timeout = 1
dnsquery.rise = 2
dnsquery.fall = 2
dnsquery.fail-on-nxdomain = yes
ping.count = 5
ping.interval = 2
ping.timeout = 1.5
ping.rise = 2
ping.fall = 5

[v4udp]
protocol = udp
ip = 192.0.2.53
port = 53
scheduler = sh
scheduler-flags = sh-port
ops = 1
config = https://config.example.org/pools/v4udp.json
monitors = [ 'UDP' ]
persistence-timeout = 60
persistence-netmask = 255.255.255.0
persistence-engine = sip
forward-method = nat
real-port = 5353
udp.interval = 5
udp.icmp-timeout = 8
udp.rise = 2
udp.fall = 3

[v4tcp]
protocol = tcp
ip = 192.0.2.54
port = 80
scheduler = wrr
config = file:///p
monitors = [ 'TCPConnect' ]
tcpconnect.datapath = yes
`);
    expect(config.global).toStrictEqual({
      bgp: true,
      bgpLocalAsn: 64496,
      bgpPeerAddresses: ['192.0.2.254', '2001:db8::fe'],
      bgpAsPath: [64496, 64511, 4200000000],
      bgpMed: 7,
      bgpNexthopIpv4: '192.0.2.100',
      bgpNexthopIpv6: '2001:db8::100',
      bgpLocalIps: ['192.0.2.100', '2001:db8::100'],
      bgpLocalPort: 1179,
      bgpPeerAsn: 64511,
      bgpHoldTimeSec: 0,
      bgpRouterId: '192.0.2.100',
      bgpCommunities: [
        { asn: 64496, value: 100 },
        { asn: 65535, value: 65281 },
        { asn: 65535, value: 65282 },
        { asn: 65535, value: 65283 },
      ],
      bgpConnectRetryMs: 2500,
      bgpGracefulRestartSec: 90,
      bgpDrain: true,
      bgpDrainMed: 1000,
      bgpBfd: true,
      bgpBfdIntervalMs: 100,
      bgpBfdMultiplier: 5,
      instrumentation: true,
      instrumentationPort: 9091,
      instrumentationIps: [''],
      runcommandMaxConcurrent: 4,
      ipvsResyncIntervalMs: 12_500,
      eventHistorySize: 50,
      ipvsStatsIntervalMs: 10_000,
      dryRun: true,
      advertisedInstrumentationIps: ['192.0.2.100'],
      ipvsSync: { mode: 'both', interface: 'eth1', syncId: 9, group: '239.1.2.3', port: 8850, ttl: 3 },
      ipvsSloppyTcp: true,
      ipvsSloppySctp: false,
      dataPathFwmarkBase: 0x1000,
      dataPathSourceIpv4: '192.0.2.50',
      dataPathSourceIpv6: '2001:db8::50',
      memorySaving: true,
    });
    const [v6, v4udp, v4tcp] = config.services;
    expect(v4tcp?.dataPathMonitors).toEqual(['TCPConnect']);
    expect(v6).toStrictEqual({
      name: 'v6',
      source: { file: FILE, line: 43 },
      protocol: 'sctp',
      ip: '2001:db8::11',
      family: 6,
      port: 443,
      scheduler: 'mh',
      schedulerFlags: ['fallback', 'port'],
      ops: false,
      poolUrl: 'etcd://etcd.example.org:2379/conftool/v1/pools/v6',
      depoolThreshold: 0.25,
      bgp: true,
      bgpMed: 20,
      bgpCommunities: [{ asn: 64496, value: 443 }],
      bgpWithdrawWhenDown: true,
      forwardMethod: 'tunnel',
      tunnel: { type: 'gue', port: 6080, checksum: 'remcsum' },
      fwmark: 16,
      realPort: undefined,
      persistenceTimeoutSec: 600,
      persistenceNetmask: '48',
      persistenceEngine: undefined,
      upperThreshold: 50,
      lowerThreshold: 40,
      // datapath-check = yes, but IdleConnection says no for itself.
      dataPathMonitors: ['ProxyFetch'],
      monitors: [
        {
          kind: 'ProxyFetch',
          urls: ['https://example.org/health'],
          intervalMs: 500,
          timeoutMs: 250,
          rise: 3,
          fall: 4,
          httpStatus: 302,
          checkAll: true,
          maxFailures: 1,
          expectBody: 'OK',
          expectBodyRegex: '^ok$',
          verifyTls: true,
          caFile: '/etc/ssl/ca.pem',
        },
        {
          kind: 'IdleConnection',
          timeoutCleanReconnectMs: 1000,
          maxDelayMs: 60000,
          keepalive: false,
          keepaliveRetries: 5,
          keepaliveIdleMs: 20000,
          keepaliveIntervalMs: 7000,
          connectTimeoutMs: 2000,
          rise: 2,
          fall: 3,
        },
        {
          kind: 'RunCommand',
          command: '/usr/local/bin/check',
          arguments: [{ server: 'ip' }, { literal: '--port' }, { literal: '443' }],
          intervalMs: 30000,
          timeoutMs: 0,
          rise: 2,
          fall: 2,
          logOutput: false,
        },
        {
          kind: 'SSH',
          user: 'check',
          privateKeyFile: '/etc/pybal/id',
          command: '/bin/check',
          port: 2222,
          knownHostsFile: '/etc/pybal/known_hosts',
          intervalMs: 120000,
          timeoutMs: 15000,
          rise: 1,
          fall: 2,
        },
        { kind: 'DNSQuery', hostnames: ['a.example.org', 'b.example.org'], intervalMs: 3000, timeoutMs: 1000, rise: 2, fall: 2, failOnNxdomain: true },
        { kind: 'Ping', count: 5, intervalMs: 2000, timeoutMs: 1500, rise: 2, fall: 5 },
      ],
    });
    expect(v4udp).toStrictEqual({
      name: 'v4udp',
      source: { file: FILE, line: 117 },
      protocol: 'udp',
      ip: '192.0.2.53',
      family: 4,
      port: 53,
      scheduler: 'sh',
      schedulerFlags: ['port'],
      ops: true,
      poolUrl: 'https://config.example.org/pools/v4udp.json',
      depoolThreshold: 0.5,
      bgp: true,
      bgpMed: undefined,
      bgpCommunities: [],
      bgpWithdrawWhenDown: false,
      forwardMethod: 'nat',
      tunnel: { type: 'ipip', port: 0, checksum: 'none' },
      fwmark: undefined,
      realPort: 5353,
      persistenceTimeoutSec: 60,
      persistenceNetmask: '255.255.255.0',
      persistenceEngine: 'sip',
      upperThreshold: 0,
      lowerThreshold: 0,
      dataPathMonitors: [],
      monitors: [{ kind: 'UDP', intervalMs: 5000, icmpTimeoutMs: 8000, rise: 2, fall: 3 }],
    });
  });

  it('accepts every boolean spelling of ConfigParser and PyBal, in any case', () => {
    for (const [word, value] of [
      ['1', true],
      ['yes', true],
      ['TRUE', true],
      ['On', true],
      ['t', true],
      ['Y', true],
      ['0', false],
      ['no', false],
      ['False', false],
      ['OFF', false],
      ['f', false],
      ['n', false],
    ] as const) {
      expect(valid(service({ bgp: word })).services[0]?.bgp, word).toBe(value);
    }
  });

  it('reads ipvs-stats-interval: 0 turns the counters off, fractions are kept', () => {
    expect(valid(`[global]\nipvs-stats-interval = 0\n${service()}`).global.ipvsStatsIntervalMs).toBe(0);
    expect(valid(`[global]\nipvs-stats-interval = 2.5\n${service()}`).global.ipvsStatsIntervalMs).toBe(2500);
    expect(valid(service()).global.ipvsStatsIntervalMs).toBe(10_000);
  });

  it('accepts every kernel scheduler', () => {
    for (const scheduler of ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos']) {
      expect(valid(service({ scheduler })).services[0]?.scheduler).toBe(scheduler);
    }
  });

  it('wraps a bgp-peer-address without [ as a list of one, and takes pool URLs of every supported scheme', () => {
    expect(
      valid(`[global]\nbgp = yes\nbgp-local-asn = 64496\nbgp-peer-address = 2001:DB8::1\nbgp-nexthop-ipv4 = 192.0.2.100\n${service()}`).global
        .bgpPeerAddresses,
    ).toEqual(['2001:db8::1']);
    for (const url of ['file:///etc/pybal/pools/s', 'http://config.example.org/s', 'https://config.example.org:8443/s.json', 'etcd://etcd1.example.org/pools/s', 'etcd3://etcd1.example.org:2379/pools/s']) {
      expect(valid(service({ config: url })).services[0]?.poolUrl).toBe(url);
    }
  });

  it('reads values through [DEFAULT] and %(name)s interpolation', () => {
    const config = valid(`[DEFAULT]
scheduler = wrr
pools = file:///etc/pybal/pools
[text_80]
protocol = tcp
ip = 192.0.2.11
port = 80
config = %(pools)s/%(__name__)s
monitors = [ 'IdleConnection' ]
`);
    expect(config.services[0]).toMatchObject({ name: 'text_80', scheduler: 'wrr', poolUrl: 'file:///etc/pybal/pools/text_80' });
  });
});

describe('parseConfig: errors, each with file:line: key: message', () => {
  const cases: [string, string, string[]][] = [
    ['protocol in upper case', service({ protocol: 'TCP' }), ["test.conf:2: protocol: unknown protocol 'TCP'; expected one of tcp, udp, sctp (write it in lower case: tcp)"]],
    ['protocol missing', service({ protocol: null }), ['test.conf:1: protocol: missing required key (in [s])']],
    ['bad IPv4', service({ ip: '192.0.2.256' }), ["test.conf:3: ip: expected an IPv4 or IPv6 address, got '192.0.2.256'"]],
    ['bad IPv6', service({ ip: '2001:db8::1::2' }), ["test.conf:3: ip: expected an IPv4 or IPv6 address, got '2001:db8::1::2'"]],
    ['ip missing', service({ ip: null }), ['test.conf:1: ip: missing required key (in [s])']],
    ['port not a number', service({ port: 'http' }), ["test.conf:4: port: expected an integer, got 'http'"]],
    ['port out of range', service({ port: '65536' }), ['test.conf:4: port: must be between 1 and 65535, got 65536']],
    ['port 0', service({ port: '0' }), ['test.conf:4: port: must be between 1 and 65535, got 0']],
    ['port missing', service({ port: null }), ['test.conf:1: port: missing required key (in [s])']],
    [
      'unknown scheduler',
      service({ scheduler: 'WLC' }),
      ["test.conf:5: scheduler: unknown scheduler 'WLC'; expected one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos (write it in lower case: wlc)"],
    ],
    ['scheduler missing', service({ scheduler: null }), ['test.conf:1: scheduler: missing required key (in [s])']],
    ['pool URL missing', service({ config: null }), ['test.conf:1: config: missing required key (in [s])']],
    ['pool URL empty', service({ config: '' }), ['test.conf:6: config: must not be empty']],
    [
      'pool URL scheme',
      service({ config: 'k8s://token@k8s.example.org' }),
      ["test.conf:6: config: unsupported pool URL scheme 'k8s:' in 'k8s://token@k8s.example.org' (supported: file://, http://, https://, etcd://, etcd3://)"],
    ],
    ['pool URL without scheme', service({ config: '/etc/pybal/pools/s' }), ["test.conf:6: config: expected a pool URL (file://, http://, https://, etcd://, etcd3://), got '/etc/pybal/pools/s'"]],
    ['relative file URL', service({ config: 'file://etc/pybal/s' }), ["test.conf:6: config: expected file:///absolute/path, got 'file://etc/pybal/s'"]],
    ['etcd URL without a path', service({ config: 'etcd://etcd.example.org' }), ["test.conf:6: config: expected etcd://host[:port]/path, got 'etcd://etcd.example.org'"]],
    ['etcd URL with a bad port', service({ config: 'etcd://etcd.example.org:70000/p' }), ["test.conf:6: config: expected etcd://host[:port]/path, got 'etcd://etcd.example.org:70000/p'"]],
    ['etcd3 URL without a path', service({ config: 'etcd3://etcd.example.org' }), ["test.conf:6: config: expected etcd3://host[:port]/path, got 'etcd3://etcd.example.org'"]],
    ['etcd3 URL with a bad port', service({ config: 'etcd3://etcd.example.org:0/p' }), ["test.conf:6: config: expected etcd3://host[:port]/path, got 'etcd3://etcd.example.org:0/p'"]],
    ['http URL without a host', service({ config: 'http:///pools' }), ["test.conf:6: config: expected http://host[:port]/path, got 'http:///pools'"]],
    ['ops with tcp', service({ ops: 'yes' }), ['test.conf:8: ops: OPS can only be used with UDP virtual services']],
    ['bad boolean', service({ ops: 'maybe' }), ["test.conf:8: ops: expected a boolean (yes/no, true/false, on/off, 1/0), got 'maybe'"]],
    [
      'unknown monitor',
      service({ monitors: "[ 'ProxyFech' ]" }),
      ["test.conf:7: monitors: unknown monitor 'ProxyFech'; did you mean 'ProxyFetch'? (known: ProxyFetch, IdleConnection, RunCommand, SSH, DNSQuery, UDP, Ping, TCPConnect)"],
    ],
    ['monitors not a list', service({ monitors: "'IdleConnection'" }), ["test.conf:7: monitors: expected a Python list such as [ 'a', 'b' ], got str 'IdleConnection'"]],
    ['monitors with a number', service({ monitors: "[ 'IdleConnection', 3 ]" }), ['test.conf:7: monitors: item 2 (3): expected a string, got int']],
    ['monitors never closed', service({ monitors: "[ 'IdleConnection'" }), ["test.conf:7: monitors: malformed Python literal at column 12: '[' is never closed"]],
    [
      'code in a list',
      service({ monitors: "[ 'IdleConnection', __import__('os') ]" }),
      ["test.conf:7: monitors: malformed Python literal at column 32: unknown name '__import__' (only literals are allowed here)"],
    ],
    ['depool-threshold above 1', service({ 'depool-threshold': '1.5' }), ['test.conf:8: depool-threshold: must be between 0 and 1, got 1.5']],
    ['depool-threshold not a number', service({ 'depool-threshold': 'half' }), ["test.conf:8: depool-threshold: expected a number, got 'half'"]],
    ['depool-threshold nan', service({ 'depool-threshold': 'nan' }), ["test.conf:8: depool-threshold: expected a number, got 'nan'"]],
    ['service MED negative', service({ 'bgp-med': '-1' }), ['test.conf:8: bgp-med: must be between 0 and 4294967295, got -1']],
    [
      'service community too big',
      service({ 'bgp-communities': '64496:65536' }),
      ["test.conf:8: bgp-communities: expected communities as asn:value (each 0..65535) or no-export, no-advertise, no-export-subconfed, got '64496:65536'"],
    ],
    ['forward method', service({ 'forward-method': 'masq' }), ["test.conf:8: forward-method: unknown forward method 'masq'; expected one of dr, nat, tunnel"]],
    ['persistence timeout negative', service({ 'persistence-timeout': '-5' }), ['test.conf:8: persistence-timeout: must be between 0 and 2147483647, got -5']],
    [
      'IPv4 netmask not contiguous',
      service({ 'persistence-timeout': '60', 'persistence-netmask': '255.0.255.0' }),
      ["test.conf:9: persistence-netmask: expected an IPv4 netmask such as 255.255.255.0 for an IPv4 service, got '255.0.255.0'"],
    ],
    [
      'prefix length on an IPv4 service',
      service({ 'persistence-timeout': '60', 'persistence-netmask': '24' }),
      ["test.conf:9: persistence-netmask: expected an IPv4 netmask such as 255.255.255.0 for an IPv4 service, got '24'"],
    ],
    [
      'IPv6 prefix length too long',
      service({ ip: '2001:db8::1', 'persistence-timeout': '60', 'persistence-netmask': '129' }),
      ["test.conf:9: persistence-netmask: expected an IPv6 prefix length between 1 and 128 for an IPv6 service, got '129'"],
    ],
    ['scheduler flag on the wrong scheduler', service({ 'scheduler-flags': 'sh-port' }), ['test.conf:8: scheduler-flags: sh-port needs the sh scheduler, not wlc']],
    ['sh flag on mh', service({ scheduler: 'mh', 'scheduler-flags': 'sh-port' }), ['test.conf:8: scheduler-flags: sh-port does not apply to the mh scheduler (use mh-port)']],
    [
      'unknown scheduler flag',
      service({ scheduler: 'sh', 'scheduler-flags': 'sh-sticky' }),
      ["test.conf:8: scheduler-flags: unknown flag 'sh-sticky'; expected sh-fallback, sh-port, mh-fallback or mh-port"],
    ],
    [
      'two services on one protocol, ip and port',
      `${service()}${service({ ip: '192.0.2.001'.replace('001', '1') }, 't')}`,
      ['test.conf:10: ip: [t] has the same protocol, ip and port (tcp 192.0.2.1:80) as [s] (line 1)'],
    ],
    [
      'two services, the same IPv6 address written differently',
      `${service({ ip: '2001:db8::1' })}${service({ ip: '2001:DB8:0::1' }, 't')}`,
      ['test.conf:10: ip: [t] has the same protocol, ip and port (tcp [2001:db8::1]:80) as [s] (line 1)'],
    ],
    [
      'services sharing an IP with different MEDs',
      `${service({ 'bgp-med': '10' })}${service({ port: '443', 'bgp-med': '20' }, 't')}`,
      ['test.conf:9: bgp-med: LVS service t MED value 20 differs from other MED values for IP 192.0.2.1 ([s] has 10)'],
    ],
    [
      'one MED set, one not',
      `${service({ 'bgp-med': '10' })}${service({ port: '443' }, 't')}`,
      ['test.conf:9: bgp-med: LVS service t MED value None differs from other MED values for IP 192.0.2.1 ([s] has 10)'],
    ],
  ];
  it.each(cases)('%s', (_name, text, expected) => {
    const r = check(text);
    expect(r.errors).toEqual(expected);
    expect(r.config).toBeUndefined();
  });

  it('accepts the same IP on other ports or protocols with one MED, and a differing MED on a service that does not announce', () => {
    valid(`${service({ 'bgp-med': '10' })}${service({ port: '443', bgp: 'no' }, 't')}${service({ protocol: 'udp', 'bgp-med': '10' }, 'u')}`);
  });
});

describe('parseConfig: monitor option errors', () => {
  const cases: [string, Record<string, string>, string[]][] = [
    ['proxyfetch.url missing', { monitors: "[ 'ProxyFetch' ]" }, ['test.conf:1: proxyfetch.url: missing required key (in [s])']],
    ['proxyfetch.url not http', { monitors: "[ 'ProxyFetch' ]", 'proxyfetch.url': "[ 'ftp://example.org/' ]" }, ["test.conf:8: proxyfetch.url: 'ftp://example.org/' is not an http:// or https:// URL"]],
    ['proxyfetch.url not a URL', { monitors: "[ 'ProxyFetch' ]", 'proxyfetch.url': "[ 'example.org' ]" }, ["test.conf:8: proxyfetch.url: 'example.org' is not an http:// or https:// URL"]],
    ['proxyfetch.url without a host', { monitors: "[ 'ProxyFetch' ]", 'proxyfetch.url': "[ 'http:///health' ]" }, ["test.conf:8: proxyfetch.url: 'http:///health' is not an http:// or https:// URL"]],
    ['proxyfetch.url empty list', { monitors: "[ 'ProxyFetch' ]", 'proxyfetch.url': '[]' }, ['test.conf:8: proxyfetch.url: must not be an empty list']],
    [
      'proxyfetch.url unquoted',
      { monitors: "[ 'ProxyFetch' ]", 'proxyfetch.url': '[ http://example.org/ ]' },
      ["test.conf:8: proxyfetch.url: malformed Python literal at column 20: unknown name 'http' (only literals are allowed here)"],
    ],
    ['interval 0', { 'idleconnection.max-delay': '0' }, ['test.conf:8: idleconnection.max-delay: must be greater than 0 seconds, got 0']],
    ['interval not a number', { monitors: "[ 'UDP' ]", 'udp.interval': 'ten' }, ["test.conf:8: udp.interval: expected a number of seconds, got 'ten'"]],
    ['interval too small', { monitors: "[ 'UDP' ]", 'udp.icmp-timeout': '0.0001' }, ['test.conf:8: udp.icmp-timeout: must be at least 0.001 seconds, got 0.0001']],
    ['interval beyond a timer', { monitors: "[ 'UDP' ]", 'udp.interval': '9999999' }, ['test.conf:8: udp.interval: must be at most 2147483 seconds, got 9999999']],
    [
      'http_status',
      { monitors: "[ 'ProxyFetch' ]", 'proxyfetch.url': "[ 'http://example.org/' ]", 'proxyfetch.http_status': '99' },
      ['test.conf:9: proxyfetch.http_status: must be between 100 and 599, got 99'],
    ],
    [
      'max_failures negative',
      { monitors: "[ 'ProxyFetch' ]", 'proxyfetch.url': "[ 'http://example.org/' ]", 'proxyfetch.check_all': 'yes', 'proxyfetch.max_failures': '-1' },
      ['test.conf:10: proxyfetch.max_failures: must be at least 0, got -1'],
    ],
    ['rise 0', { 'idleconnection.rise': '0' }, ['test.conf:8: idleconnection.rise: must be between 1 and 1000, got 0']],
    ['fall not an integer', { 'idleconnection.fall': '1.5' }, ["test.conf:8: idleconnection.fall: expected an integer, got '1.5'"]],
    ['keepalive-retries 0', { 'idleconnection.keepalive-retries': '0' }, ['test.conf:8: idleconnection.keepalive-retries: must be between 1 and 127, got 0']],
    ['keepalive-idle fraction', { 'idleconnection.keepalive-idle': '1.5' }, ["test.conf:8: idleconnection.keepalive-idle: expected an integer, got '1.5'"]],
    ['keepalive-interval too big', { 'idleconnection.keepalive-interval': '40000' }, ['test.conf:8: idleconnection.keepalive-interval: must be between 1 and 32767, got 40000']],
    ['keepalive not a boolean', { 'idleconnection.keepalive': 'sometimes' }, ["test.conf:8: idleconnection.keepalive: expected a boolean (yes/no, true/false, on/off, 1/0), got 'sometimes'"]],
    ['runcommand.command missing', { monitors: "[ 'RunCommand' ]" }, ['test.conf:1: runcommand.command: missing required key (in [s])']],
    ['runcommand.command empty', { monitors: "[ 'RunCommand' ]", 'runcommand.command': '' }, ['test.conf:8: runcommand.command: must not be empty']],
    [
      'runcommand.arguments with an unknown name',
      { monitors: "[ 'RunCommand' ]", 'runcommand.command': '/bin/true', 'runcommand.arguments': '[ server.port ]' },
      ["test.conf:9: runcommand.arguments: malformed Python literal at column 26: unknown name 'server.port' (only literals are allowed here)"],
    ],
    [
      'runcommand.arguments with a number',
      { monitors: "[ 'RunCommand' ]", 'runcommand.command': '/bin/true', 'runcommand.arguments': "[ 'a', 1 ]" },
      ['test.conf:9: runcommand.arguments: item 2 (1): expected a string, server.host or server.ip, got int'],
    ],
    [
      'runcommand.arguments not a list',
      { monitors: "[ 'RunCommand' ]", 'runcommand.command': '/bin/true', 'runcommand.arguments': "'-v'" },
      ["test.conf:9: runcommand.arguments: expected a Python list such as [ 'a', 'b' ], got str '-v'"],
    ],
    [
      'runcommand.timeout negative',
      { monitors: "[ 'RunCommand' ]", 'runcommand.command': '/bin/true', 'runcommand.timeout': '-1' },
      ['test.conf:9: runcommand.timeout: must be 0 or more seconds, got -1'],
    ],
    ['ssh.private-key missing', { monitors: "[ 'SSH' ]" }, ['test.conf:1: ssh.private-key: missing required key (in [s])']],
    ['ssh.port', { monitors: "[ 'SSH' ]", 'ssh.private-key': '/k', 'ssh.port': '0' }, ['test.conf:9: ssh.port: must be between 1 and 65535, got 0']],
    ['ssh.user empty', { monitors: "[ 'SSH' ]", 'ssh.private-key': '/k', 'ssh.user': '' }, ['test.conf:9: ssh.user: must not be empty']],
    ['dnsquery.hostnames missing', { monitors: "[ 'DNSQuery' ]" }, ['test.conf:1: dnsquery.hostnames: missing required key (in [s])']],
    ['dnsquery.hostnames with a number', { monitors: "[ 'DNSQuery' ]", 'dnsquery.hostnames': '[ 1 ]' }, ['test.conf:8: dnsquery.hostnames: item 1 (1): expected a string, got int']],
    ['ping.count', { monitors: "[ 'Ping' ]", 'ping.count': '0' }, ['test.conf:8: ping.count: must be between 1 and 100, got 0']],
    ['ping.timeout', { monitors: "[ 'Ping' ]", 'ping.timeout': '0' }, ['test.conf:8: ping.timeout: must be greater than 0 seconds, got 0']],
    ['tcpconnect.timeout 0', { monitors: "[ 'TCPConnect' ]", 'tcpconnect.timeout': '0' }, ['test.conf:8: tcpconnect.timeout: must be greater than 0 seconds, got 0']],
    ['tcpconnect.interval not a number', { monitors: "[ 'TCPConnect' ]", 'tcpconnect.interval': 'ten' }, ["test.conf:8: tcpconnect.interval: expected a number of seconds, got 'ten'"]],
    ['tcpconnect.rise 0', { monitors: "[ 'TCPConnect' ]", 'tcpconnect.rise': '0' }, ['test.conf:8: tcpconnect.rise: must be between 1 and 1000, got 0']],
    ['tcpconnect.fall not an integer', { monitors: "[ 'TCPConnect' ]", 'tcpconnect.fall': '2.5' }, ["test.conf:8: tcpconnect.fall: expected an integer, got '2.5'"]],
  ];
  it.each(cases)('%s', (_name, over, expected) => {
    expect(check(service(over)).errors).toEqual(expected);
  });

  it('reports a bad regular expression', () => {
    const r = check(service({ monitors: "[ 'ProxyFetch' ]", 'proxyfetch.url': "[ 'http://example.org/' ]", 'proxyfetch.expect-body-regex': '(unclosed' }));
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/^test\.conf:9: proxyfetch\.expect-body-regex: not a valid regular expression: .*unclosed/i);
  });

  it('names the line and column of a mistake inside a multi-line list', () => {
    const text = `${service({ monitors: "[ 'ProxyFetch' ]" })}proxyfetch.url = [ 'http://example.org/a',\n    'http://example.org/b' 'x' + 1 ]\n`;
    expect(check(text).errors).toEqual(["test.conf:9: proxyfetch.url: malformed Python literal at column 32: expected ',' or ']', found \"+\""]);
  });

  it('reads every TCPConnect option, and names a misspelt one', () => {
    const r = check(
      service({
        monitors: "[ 'tcpconnect' ]",
        'tcpconnect.interval': '2.5',
        'tcpconnect.timeout': '0.5',
        'tcpconnect.rise': '3',
        'tcpconnect.fall': '2',
        'tcpconnect.timout': '1',
      }),
    );
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual(["test.conf:12: tcpconnect.timout: unknown TCPConnect option; did you mean 'tcpconnect.timeout'?"]);
    expect(r.config?.services[0]?.monitors).toStrictEqual([{ kind: 'TCPConnect', intervalMs: 2500, timeoutMs: 500, rise: 3, fall: 2 }]);
  });
});

describe('parseConfig: [global] errors', () => {
  const bgp = (lines: string, svc = service()): string => `[global]\nbgp = yes\n${lines}\n${svc}`;
  const ASN = 'bgp-local-asn = 64496';
  const PEER = 'bgp-peer-address = 192.0.2.254';
  const NH4 = 'bgp-nexthop-ipv4 = 192.0.2.100';
  const ok = (more: string): string => bgp([ASN, PEER, NH4, more].join('\n'));
  const cases: [string, string, string[]][] = [
    ['bgp not a boolean', `[global]\nbgp = maybe\n${service()}`, ["test.conf:2: bgp: expected a boolean (yes/no, true/false, on/off, 1/0), got 'maybe'"]],
    ['local ASN missing', bgp([PEER, NH4].join('\n')), ['test.conf:1: bgp-local-asn: required when bgp is on (in [global])']],
    ['local ASN 0', bgp(['bgp-local-asn = 0', PEER, NH4].join('\n')), ["test.conf:3: bgp-local-asn: expected an AS number between 1 and 4294967295, got '0'"]],
    ['local ASN too big', bgp(['bgp-local-asn = 4294967296', PEER, NH4].join('\n')), ["test.conf:3: bgp-local-asn: expected an AS number between 1 and 4294967295, got '4294967296'"]],
    ['local ASN as text', bgp(['bgp-local-asn = AS64496', PEER, NH4].join('\n')), ["test.conf:3: bgp-local-asn: expected an AS number between 1 and 4294967295, got 'AS64496'"]],
    ['peer missing', bgp([ASN, NH4].join('\n')), ['test.conf:1: bgp-peer-address: required when bgp is on (in [global])']],
    ['peer empty list', bgp([ASN, 'bgp-peer-address = []', NH4].join('\n')), ['test.conf:4: bgp-peer-address: required when bgp is on: give at least one peer address']],
    ['peer a name', bgp([ASN, 'bgp-peer-address = router1.example.org', NH4].join('\n')), ["test.conf:4: bgp-peer-address: expected an IPv4 or IPv6 address, got 'router1.example.org'"]],
    ['peer in a list', bgp([ASN, "bgp-peer-address = [ '192.0.2.254', 'router1' ]", NH4].join('\n')), ["test.conf:4: bgp-peer-address: item 2 ('router1'): expected an IPv4 or IPv6 address"]],
    ['as path', ok('bgp-as-path = 64496 AS64511'), ["test.conf:6: bgp-as-path: expected space-separated AS numbers between 1 and 4294967295, got 'AS64511'"]],
    ['as path with 0', ok('bgp-as-path = 0'), ["test.conf:6: bgp-as-path: expected space-separated AS numbers between 1 and 4294967295, got '0'"]],
    ['MED too big', ok('bgp-med = 4294967296'), ['test.conf:6: bgp-med: must be between 0 and 4294967295, got 4294967296']],
    ['IPv6 next hop for IPv4', bgp([ASN, PEER, 'bgp-nexthop-ipv4 = 2001:db8::1'].join('\n')), ["test.conf:5: bgp-nexthop-ipv4: expected an IPv4 address, got '2001:db8::1'"]],
    ['IPv4 next hop for IPv6', ok('bgp-nexthop-ipv6 = 192.0.2.1'), ["test.conf:6: bgp-nexthop-ipv6: expected an IPv6 address, got '192.0.2.1'"]],
    ['IPv4 next hop missing', bgp([ASN, PEER].join('\n')), ["test.conf:1: bgp-nexthop-ipv4: IPv4 BGP NextHop (global configuration variable 'bgp-nexthop-ipv4') not set"]],
    [
      'IPv6 next hop missing',
      bgp([ASN, PEER, NH4].join('\n'), service({ ip: '2001:db8::1' })),
      ["test.conf:1: bgp-nexthop-ipv6: IPv6 BGP NextHop (global configuration variable 'bgp-nexthop-ipv6') not set"],
    ],
    ['local IPs', ok("bgp-local-ips = [ 'any' ]"), ["test.conf:6: bgp-local-ips: item 1 ('any'): expected an IPv4 or IPv6 address (or \"\" for every address)"]],
    ['local port', ok('bgp-local-port = 0'), ['test.conf:6: bgp-local-port: must be between 1 and 65535, got 0']],
    ['peer ASN', ok('bgp-peer-asn = 0'), ["test.conf:6: bgp-peer-asn: expected an AS number between 1 and 4294967295, got '0'"]],
    ['hold time 2', ok('bgp-hold-time = 2'), ['test.conf:6: bgp-hold-time: must be 0 or between 3 and 65535 seconds (RFC 4271), got 2']],
    ['hold time too long', ok('bgp-hold-time = 65536'), ['test.conf:6: bgp-hold-time: must be between 0 and 65535, got 65536']],
    ['router id IPv6', ok('bgp-router-id = 2001:db8::1'), ["test.conf:6: bgp-router-id: expected an IPv4 address, got '2001:db8::1'"]],
    ['router id 0', ok('bgp-router-id = 0.0.0.0'), ['test.conf:6: bgp-router-id: must not be 0.0.0.0']],
    [
      'community',
      ok('bgp-communities = 64496:1 blackhole'),
      ["test.conf:6: bgp-communities: expected communities as asn:value (each 0..65535) or no-export, no-advertise, no-export-subconfed, got 'blackhole'"],
    ],
    ['connect retry', ok('bgp-connect-retry = 0'), ['test.conf:6: bgp-connect-retry: must be greater than 0 seconds, got 0']],
    ['instrumentation', `[global]\ninstrumentation = 2\n${service()}`, ["test.conf:2: instrumentation: expected a boolean (yes/no, true/false, on/off, 1/0), got '2'"]],
    ['instrumentation port', `[global]\ninstrumentation_port = 70000\n${service()}`, ['test.conf:2: instrumentation_port: must be between 1 and 65535, got 70000']],
    ['runcommand cap', `[global]\nruncommand-max-concurrent = 0\n${service()}`, ['test.conf:2: runcommand-max-concurrent: must be between 1 and 10000, got 0']],
    ['IPVS resync too often', `[global]\nipvs-resync-interval = 0.5\n${service()}`, ['test.conf:2: ipvs-resync-interval: must be at least 1 seconds, got 0.5']],
    ['event history too small', `[global]\nevent-history-size = 5\n${service()}`, ['test.conf:2: event-history-size: must be between 10 and 1000000, got 5']],
    ['event history not a number', `[global]\nevent-history-size = lots\n${service()}`, ["test.conf:2: event-history-size: expected an integer, got 'lots'"]],
    ['IPVS resync not a number', `[global]\nipvs-resync-interval = 1m\n${service()}`, ["test.conf:2: ipvs-resync-interval: expected a number of seconds, got '1m'"]],
    ['IPVS stats too often', `[global]\nipvs-stats-interval = 0.5\n${service()}`, ['test.conf:2: ipvs-stats-interval: must be 0 (off) or at least 1 seconds, got 0.5']],
    ['IPVS stats negative', `[global]\nipvs-stats-interval = -1\n${service()}`, ['test.conf:2: ipvs-stats-interval: must be 0 or more seconds, got -1']],
    ['IPVS stats not a number', `[global]\nipvs-stats-interval = often\n${service()}`, ["test.conf:2: ipvs-stats-interval: expected a number of seconds, got 'often'"]],
    [
      'instrumentation IPs',
      `[global]\ninstrumentation_ips = [ '127.0.0.1', 'localhost' ]\n${service()}`,
      ["test.conf:2: instrumentation_ips: item 2 ('localhost'): expected an IPv4 or IPv6 address (or \"\" for every address)"],
    ],
  ];
  it.each(cases)('%s', (_name, text, expected) => {
    expect(check(text).errors).toEqual(expected);
  });

  it('needs no next hop for a family whose services do not announce, nor when global bgp is off', () => {
    valid(bgp([ASN, PEER].join('\n'), service({ bgp: 'no' })));
    valid(`[global]\nbgp = no\n${service()}`);
  });

  it('checks BGP keys even while bgp is off', () => {
    expect(check(`[global]\nbgp-local-asn = 70000000000\n${service()}`).errors).toEqual([
      "test.conf:2: bgp-local-asn: expected an AS number between 1 and 4294967295, got '70000000000'",
    ]);
  });
});

describe('parseConfig: warnings for what PyBal accepts but an operator should hear about', () => {
  const cases: [string, string, string[]][] = [
    [
      'a service without monitors',
      service({ monitors: null }),
      ["test.conf:1: monitors: LVS service s does not have a 'monitors' configuration option set; its servers will never be health-checked"],
    ],
    ['an empty monitors list', service({ monitors: '[]' }), ['test.conf:7: monitors: an empty list: the servers of s will never be health-checked']],
    ['a monitor listed twice', service({ monitors: "[ 'IdleConnection', 'idleconnection' ]" }), ['test.conf:7: monitors: IdleConnection is listed more than once; it runs once']],
    [
      'CLI keys in the file',
      `[global]\ndryrun = yes\ndebug = yes\n${service({ conffile: '/x' })}`,
      [
        "test.conf:2: dryrun: ignored: PyBal's command line always overrides it (use -n)",
        "test.conf:3: debug: ignored: PyBal's command line always overrides it (use -d)",
        "test.conf:11: conffile: ignored: PyBal's command line always overrides it (use -c)",
      ],
    ],
    [
      'a typo in a monitor option',
      service({ monitors: "[ 'ProxyFetch' ]", 'proxyfetch.url': "[ 'http://example.org/' ]", 'proxyfetch.ulr': "[ 'http://example.org/' ]" }),
      ["test.conf:9: proxyfetch.ulr: unknown ProxyFetch option; did you mean 'proxyfetch.url'?"],
    ],
    ['an unknown key', service({ colour: 'blue' }), ['test.conf:8: colour: unknown key; ignored']],
    ['a typo in a harmless global key', `[global]\ninstrumentaton = yes\n${service()}`, ["test.conf:2: instrumentaton: unknown key; did you mean 'instrumentation'?"]],
    ['a harmless global key in a service', service({ instrumentation_port: '9091' }), ['test.conf:8: instrumentation_port: a [global] key; ignored in a service section']],
    [
      'an unknown monitor option, even a likely typo',
      service({ 'idleconnection.colour': 'blue' }),
      ["test.conf:8: idleconnection.colour: unknown IdleConnection option; did you mean 'idleconnection.timeout'?"],
    ],
    [
      'options of a monitor not listed',
      service({ 'udp.interval': '5', 'proxyfetch.url': "[ 'http://example.org/' ]" }),
      [
        "test.conf:8: udp.interval: an option of the UDP monitor, which 'monitors' does not list; ignored",
        "test.conf:9: proxyfetch.url: an option of the ProxyFetch monitor, which 'monitors' does not list; ignored",
      ],
    ],
    [
      'RunCommand timeout 0',
      service({ monitors: "[ 'RunCommand' ]", 'runcommand.command': '/bin/true', 'runcommand.timeout': '0' }),
      ['test.conf:9: runcommand.timeout: 0 means no timeout (as in PyBal): a command that hangs is never killed and its server never marked down'],
    ],
    [
      'max_failures without check_all',
      service({ monitors: "[ 'ProxyFetch' ]", 'proxyfetch.url': "[ 'http://example.org/' ]", 'proxyfetch.max_failures': '2' }),
      ['test.conf:9: proxyfetch.max_failures: ignored unless proxyfetch.check_all is on (as in PyBal)'],
    ],
    [
      'ca-file without verify-tls',
      service({ monitors: "[ 'ProxyFetch' ]", 'proxyfetch.url': "[ 'https://example.org/' ]", 'proxyfetch.ca-file': '/ca.pem' }),
      ['test.conf:9: proxyfetch.ca-file: ignored unless proxyfetch.verify-tls is on'],
    ],
    [
      'a single URL string',
      service({ monitors: "[ 'ProxyFetch' ]", 'proxyfetch.url': "'http://example.org/'" }),
      ["test.conf:8: proxyfetch.url: a single string; write a list: [ 'http://example.org/' ] (PyBal would pick single characters from it)"],
    ],
    [
      'an empty arguments list',
      service({ monitors: "[ 'RunCommand' ]", 'runcommand.command': '/bin/true', 'runcommand.arguments': '[]' }),
      ['test.conf:9: runcommand.arguments: an empty list means one empty argument, as in PyBal'],
    ],
    ['a netmask without persistence', service({ 'persistence-netmask': '255.255.255.0' }), ['test.conf:8: persistence-netmask: ignored unless persistence-timeout is greater than 0']],
    [
      'a peer listed twice',
      `[global]\nbgp = yes\nbgp-local-asn = 64496\nbgp-peer-address = [ '192.0.2.254', '192.0.2.254' ]\nbgp-nexthop-ipv4 = 192.0.2.100\n${service()}`,
      ['test.conf:4: bgp-peer-address: lists a peer more than once; one session per peer'],
    ],
    [
      'an unknown key in [DEFAULT], reported once',
      `[DEFAULT]\ncolour = blue\nscheduler = wlc\n${service({ scheduler: null })}${service({ scheduler: null, port: '443' }, 't')}`,
      ['test.conf:2: colour: unknown key; ignored'],
    ],
  ];
  it.each(cases)('%s', (_name, text, expected) => {
    const r = check(text);
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual(expected);
    expect(r.config).toBeDefined();
  });

  it('keeps the values it warned about as PyBal reads them', () => {
    const urls = valid(service({ monitors: "[ 'ProxyFetch' ]", 'proxyfetch.url': "'http://example.org/'" })).services[0]?.monitors[0];
    expect(urls).toMatchObject({ kind: 'ProxyFetch', urls: ['http://example.org/'] });
    const args = valid(service({ monitors: "[ 'RunCommand' ]", 'runcommand.command': '/bin/true', 'runcommand.arguments': '[]' })).services[0]?.monitors[0];
    expect(args).toMatchObject({ kind: 'RunCommand', arguments: [{ literal: '' }] });
    expect(valid(service({ monitors: "[ 'IdleConnection', 'idleconnection' ]" })).services[0]?.monitors.map((m) => m.kind)).toEqual(['IdleConnection']);
  });

  it('suggests [global] for a misspelt global section', () => {
    const r = check(`[globl]\nbgp = no\n${service({}, 'local')}`);
    expect(r.warnings).toEqual([
      'test.conf:1: [globl] is read as a service section; did you mean [global]?',
      "test.conf:1: monitors: LVS service globl does not have a 'monitors' configuration option set; its servers will never be health-checked",
    ]);
    expect(r.errors).toContain('test.conf:1: protocol: missing required key (in [globl])');
  });

  it('warns that [Global] is a service, not the global section', () => {
    const r = check('[Global]\nbgp = no\n');
    expect(r.warnings).toContain('test.conf:1: [Global] is a service section; the global section is spelled [global] (case matters)');
    expect(r.errors).toContain('test.conf:1: protocol: missing required key (in [Global])');
  });
});

describe('parseConfig: a file with several mistakes', () => {
  it('reports every one of them, in line order, and no config', () => {
    const text = `[global]
bgp = yes
bgp-local-asn = 64496
bgp-hold-time = 1

[text_80]
protocol = tpc
ip = 192.0.2.11
port = 80
scheduler = wlc
config = file:///etc/pybal/pools/text_80
monitors = [ 'ProxyFetch', 'IdleConection' ]
proxyfetch.url = [ 'gopher://example.org/' ]
proxyfetch.ulr = [ 'http://example.org/' ]
depool-threshold = 2

[dns_53]
protocol = udp
ip = 192.0.2.53
port = 53
scheduler = wrr
ops = yes
config = etcd://etcd.example.org
`;
    const r = check(text);
    expect(r.errors).toEqual([
      'test.conf:1: bgp-peer-address: required when bgp is on (in [global])',
      'test.conf:1: bgp-nexthop-ipv4: IPv4 BGP NextHop (global configuration variable \'bgp-nexthop-ipv4\') not set',
      'test.conf:4: bgp-hold-time: must be 0 or between 3 and 65535 seconds (RFC 4271), got 1',
      "test.conf:7: protocol: unknown protocol 'tpc'; expected one of tcp, udp, sctp",
      "test.conf:12: monitors: unknown monitor 'IdleConection'; did you mean 'IdleConnection'? (known: ProxyFetch, IdleConnection, RunCommand, SSH, DNSQuery, UDP, Ping, TCPConnect)",
      "test.conf:13: proxyfetch.url: 'gopher://example.org/' is not an http:// or https:// URL",
      'test.conf:15: depool-threshold: must be between 0 and 1, got 2',
      "test.conf:23: config: expected etcd://host[:port]/path, got 'etcd://etcd.example.org'",
    ]);
    expect(r.warnings).toEqual([
      "test.conf:14: proxyfetch.ulr: unknown ProxyFetch option; did you mean 'proxyfetch.url'?",
      "test.conf:17: monitors: LVS service dns_53 does not have a 'monitors' configuration option set; its servers will never be health-checked",
    ]);
    expect(r.config).toBeUndefined();
  });

  it('includes the reader mistakes: syntax, interpolation, and list errors in interpolated values', () => {
    const text = `[DEFAULT]
mon = 'IdleConnection'
[s]
protocol = tcp
ip = 192.0.2.1
port = 80
scheduler = wlc
config = %(pools)s/s
monitors = [ %(mon)s %(mon)s
this is not a key
`;
    const r = check(text);
    expect(r.errors).toEqual([
      "test.conf:8: config: %(pools)s refers to 'pools', which is not set in this section or [DEFAULT]",
      "test.conf:9: monitors: malformed Python literal at character 1 of the interpolated value: '[' is never closed",
      `test.conf:10: expected 'key = value', 'key: value' or '[section]', got "this is not a key"`,
    ]);
    expect(r.config).toBeUndefined();
  });

  it('never evaluates list values: code is an error, not a call', () => {
    const r = check(service({ monitors: "[ 'IdleConnection' ] + [ __import__('os').system('touch /tmp/pwned') ]" }));
    expect(r.errors).toEqual(["test.conf:7: monitors: malformed Python literal at column 33: unexpected \"+\" after the value"]);
  });
});

describe('a configuration with no services', () => {
  const NONE = 'no services are defined (every section other than [global] is a service); pybal refuses to run without one';
  it.each([
    ['an empty file', '', [`test.conf: the file is empty: ${NONE}`]],
    ['only white space', '\n  \n\t\n', [`test.conf: the file is empty: ${NONE}`]],
    ['only comments', '# nothing here yet\n; nor here\nrem nor here\n', [`test.conf: ${NONE}`]],
    ['only [global]', '[global]\nbgp = no\n', [`test.conf: ${NONE}`]],
    ['only [DEFAULT]', '[DEFAULT]\nscheduler = wlc\n', [`test.conf: ${NONE}`]],
  ])('is an error: %s', (_name, text, expected) => {
    const r = check(text);
    expect(r.errors).toEqual(expected);
    expect(r.warnings).toEqual([]);
    expect(r.config).toBeUndefined();
  });

  it('is reported beside the other errors of the file', () => {
    const r = check('[global]\nbgp = maybe\n');
    expect(r.errors).toEqual([`test.conf: ${NONE}`, "test.conf:2: bgp: expected a boolean (yes/no, true/false, on/off, 1/0), got 'maybe'"]);
    expect(r.config).toBeUndefined();
  });
});

describe('line endings', () => {
  it('reads CRLF files as PyBal does', () => {
    const config = valid(service().replace(/\n/g, '\r\n'));
    expect(config.services.map((s) => `${s.name} ${s.ip}:${s.port}`)).toEqual(['s 192.0.2.1:80']);
  });

  it('refuses a file with CR-only line endings, whose services PyBal would never see', () => {
    // Python 2 reads this as one line, "[global]": no services at all.
    const r = check(`[global]\rbgp = no\r${service().replace(/\n/g, '\r')}`);
    expect(r.errors).toEqual([
      "test.conf: the file uses CR-only line endings (old Mac): pybal, like PyBal, ends lines only at '\\n', so it would read the whole file as one line; convert it, e.g. with: tr '\\r' '\\n'",
    ]);
    expect(r.warnings).toEqual([]);
    expect(r.config).toBeUndefined();
  });

  it('refuses a carriage return in the middle of a line, naming the line', () => {
    const r = check(service({ port: '80\rscheduler = sh' }));
    expect(r.errors).toEqual([
      "test.conf:4: a carriage return ('\\r') in the middle of the line: the file mixes in CR-only line endings (old Mac), and the text after it would not be read as a line of its own",
    ]);
    expect(r.config).toBeUndefined();
  });

  it('accepts a carriage return followed only by white space (PyBal strips it)', () => {
    expect(valid(service({ port: '80\r\r ' })).services[0]?.port).toBe(80);
  });
});

const CANNOT = 'pybal cannot honour it, and ignoring it could change how traffic is forwarded, addressed, pooled or announced';

describe('parseConfig: an unknown key that could change forwarding, addressing, pooling or announcements is an error', () => {
  const cases: [string, string, string[]][] = [
    ['a typo in a service key', service({ shceduler: 'wlc' }), [`test.conf:8: shceduler: unknown key: ${CANNOT}; did you mean 'scheduler'?`]],
    ['a typo of monitors (servers never checked)', service({ monitor: "[ 'ProxyFetch' ]" }), [`test.conf:8: monitor: unknown key: ${CANNOT}; did you mean 'monitors'?`]],
    ["keepalived's lb_kind", service({ lb_kind: 'TUN' }), [`test.conf:8: lb_kind: unknown key: ${CANNOT}`]],
    ['tunnelling, spelt the British way', service({ tunnelling: 'yes' }), [`test.conf:8: tunnelling: unknown key: ${CANNOT}; did you mean 'tunneling'?`]],
    ['a made-up encapsulation key', service({ 'encap-mode': 'gue' }), [`test.conf:8: encap-mode: unknown key: ${CANNOT}`]],
    ['a weight for every server', service({ 'default-weight': '10' }), [`test.conf:8: default-weight: unknown key: ${CANNOT}`]],
    ['a typo in a global BGP key', `[global]\nbgp-local-sn = 64496\n${service()}`, [`test.conf:2: bgp-local-sn: unknown key: ${CANNOT}; did you mean 'bgp-local-asn'?`]],
    ['an unknown global BGP key', `[global]\nbgp-graceful-shutdown = yes\n${service()}`, [`test.conf:2: bgp-graceful-shutdown: unknown key: ${CANNOT}; did you mean 'bgp-graceful-restart'?`]],
    [
      'a global BGP key in a service',
      service({ 'bgp-nexthop-ipv4': '192.0.2.9' }),
      [`test.conf:8: bgp-nexthop-ipv4: a [global] key, which does nothing in a service section: ${CANNOT}; set it in [global]`],
    ],
    [
      'a service key in [global]',
      `[global]\nscheduler = wlc\n${service()}`,
      [`test.conf:2: scheduler: a service key, which does nothing in [global]: ${CANNOT}; set it in each service, or in [DEFAULT] for all of them`],
    ],
    [
      'tunneling in [global]',
      `[global]\ntunneling = yes\n${service()}`,
      [`test.conf:2: tunneling: a service key, which does nothing in [global]: ${CANNOT}; set it in each service, or in [DEFAULT] for all of them`],
    ],
    [
      'a typo in [DEFAULT], reported once',
      `[DEFAULT]\nscheduller = wlc\nscheduler = wlc\n${service({ scheduler: null })}${service({ scheduler: null, port: '443' }, 't')}`,
      [`test.conf:2: scheduller: unknown key: ${CANNOT}; did you mean 'scheduler'?`],
    ],
  ];
  it.each(cases)('%s', (_name, text, expected) => {
    const r = check(text);
    expect(r.errors).toEqual(expected);
    expect(r.config).toBeUndefined();
  });

  it('still only warns about the keys of PyBal\'s command line', () => {
    const r = check(`[global]\ndryrun = yes\n${service()}`);
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual(["test.conf:2: dryrun: ignored: PyBal's command line always overrides it (use -n)"]);
  });
});

describe('parseConfig: forwarding, addressing and the other IPVS features', () => {
  const one = (over: Record<string, string | null>): ServiceConfig => {
    const s = valid(service(over)).services[0];
    if (!s) throw new Error('no service');
    return s;
  };

  it("reads newer PyBal's tunneling as tunnel forwarding over IPIP, and tunneling = no as PyBal's direct routing", () => {
    expect(one({ tunneling: 'true' })).toMatchObject({ forwardMethod: 'tunnel', tunnel: { type: 'ipip', port: 0, checksum: 'none' } });
    expect(one({ tunneling: 'True' }).forwardMethod).toBe('tunnel');
    expect(one({ tunneling: 'false' }).forwardMethod).toBe('dr');
    expect(one({ tunneling: 'no', 'forward-method': 'nat' }).forwardMethod).toBe('nat');
    expect(one({ tunneling: 'yes', 'forward-method': 'tunnel' }).forwardMethod).toBe('tunnel');
  });

  it('reads GUE and GRE tunnels with their port and checksum', () => {
    expect(one({ tunneling: 'yes', 'tunnel-type': 'gue', 'tunnel-port': '6080', 'tunnel-checksum': 'remcsum' }).tunnel).toEqual({ type: 'gue', port: 6080, checksum: 'remcsum' });
    expect(one({ 'forward-method': 'tunnel', 'tunnel-type': 'gre', 'tunnel-checksum': 'csum' }).tunnel).toEqual({ type: 'gre', port: 0, checksum: 'csum' });
  });

  it('reads a firewall mark in decimal or hexadecimal, for either family', () => {
    expect(one({ fwmark: '3' }).fwmark).toBe(3);
    expect(one({ fwmark: '0x1F' }).fwmark).toBe(31);
    expect(one({ fwmark: '4294967295' }).fwmark).toBe(4294967295);
    expect(one({ ip: '2001:db8::1', fwmark: '3' })).toMatchObject({ family: 6, fwmark: 3 });
    expect(one({}).fwmark).toBeUndefined();
  });

  it('lets two services share a firewall mark only across families, and a mark service share its ip:port with a plain one', () => {
    valid(`${service({ fwmark: '3' })}${service({ ip: '2001:db8::1', fwmark: '3' }, 't')}`);
    valid(`${service({ fwmark: '3' })}${service({}, 't')}`);
    expect(check(`${service({ fwmark: '3' })}${service({ port: '443', fwmark: '3' }, 't')}`).errors).toEqual([
      'test.conf:16: fwmark: [t] has the same firewall mark (IPv4 fwmark 3) as [s] (line 1)',
    ]);
  });

  it('reads the real servers\' port, the persistence engine and the connection thresholds', () => {
    expect(one({ 'forward-method': 'nat', 'real-port': '8080' }).realPort).toBe(8080);
    expect(one({ protocol: 'udp', 'persistence-timeout': '60', 'persistence-engine': 'sip' }).persistenceEngine).toBe('sip');
    expect(one({ 'upper-threshold': '100', 'lower-threshold': '80' })).toMatchObject({ upperThreshold: 100, lowerThreshold: 80 });
    expect(one({ 'upper-threshold': '100' })).toMatchObject({ upperThreshold: 100, lowerThreshold: 0 });
  });

  it('reads the scheduler flags as keys of their own, alone or with scheduler-flags', () => {
    expect(one({ scheduler: 'sh', 'sh-port': 'yes' }).schedulerFlags).toEqual(['port']);
    expect(one({ scheduler: 'sh', 'sh-port': 'no' }).schedulerFlags).toEqual([]);
    expect(one({ scheduler: 'sh', 'scheduler-flags': 'sh-port', 'sh-fallback': 'on', 'sh-port': 'yes' }).schedulerFlags).toEqual(['port', 'fallback']);
    expect(one({ scheduler: 'mh', 'mh-fallback': 'yes', 'mh-port': 'true' }).schedulerFlags).toEqual(['fallback', 'port']);
  });

  it("reads [global]'s dry-run and advertised_instrumentation_ips, as Wikimedia's templates render them", () => {
    const config = valid(`[global]\ndry-run = yes\nadvertised_instrumentation_ips = [ '192.0.2.7', '2001:db8::7' ]\n${service()}`);
    expect(config.global).toMatchObject({ dryRun: true, advertisedInstrumentationIps: ['192.0.2.7', '2001:db8::7'] });
    expect(valid(service()).global.dryRun).toBe(false);
  });

  const errors: [string, Record<string, string | null>, string[]][] = [
    ['tunneling against forward-method nat', { tunneling: 'yes', 'forward-method': 'nat' }, ['test.conf:8: tunneling: tunneling = yes contradicts forward-method = nat']],
    ['tunneling = no against forward-method tunnel', { tunneling: 'no', 'forward-method': 'tunnel' }, ['test.conf:8: tunneling: tunneling = no contradicts forward-method = tunnel']],
    ['tunneling not a boolean', { tunneling: 'ipip' }, ["test.conf:8: tunneling: expected a boolean (yes/no, true/false, on/off, 1/0), got 'ipip'"]],
    [
      'a tunnel type without tunnelling',
      { 'tunnel-type': 'gre' },
      ['test.conf:8: tunnel-type: applies only to tunnel forwarding (tunneling = yes or forward-method = tunnel); this service uses direct routing'],
    ],
    ['GUE without its port', { tunneling: 'yes', 'tunnel-type': 'gue' }, ['test.conf:1: tunnel-port: required with tunnel-type = gue: the UDP port the real servers receive GUE on (in [s])']],
    ['a port for IPIP', { tunneling: 'yes', 'tunnel-port': '6080' }, ['test.conf:9: tunnel-port: applies only to tunnel-type = gue (a UDP port); ipip has none']],
    ['remote checksums for GRE', { tunneling: 'yes', 'tunnel-type': 'gre', 'tunnel-checksum': 'remcsum' }, ['test.conf:10: tunnel-checksum: remcsum needs tunnel-type = gue, not gre']],
    ['checksums for IPIP', { tunneling: 'yes', 'tunnel-checksum': 'csum' }, ['test.conf:9: tunnel-checksum: IPIP carries no checksum: csum needs tunnel-type = gue or gre']],
    ['an unknown tunnel type', { tunneling: 'yes', 'tunnel-type': 'vxlan' }, ["test.conf:9: tunnel-type: unknown tunnel type 'vxlan'; expected one of ipip, gue, gre"]],
    ['fwmark 0', { fwmark: '0' }, ["test.conf:8: fwmark: expected a firewall mark between 1 and 4294967295 (decimal or 0x hexadecimal), got '0'"]],
    ['fwmark above 32 bits', { fwmark: '4294967296' }, ["test.conf:8: fwmark: expected a firewall mark between 1 and 4294967295 (decimal or 0x hexadecimal), got '4294967296'"]],
    ['fwmark not a number', { fwmark: 'web' }, ["test.conf:8: fwmark: expected a firewall mark between 1 and 4294967295 (decimal or 0x hexadecimal), got 'web'"]],
    ['a real-server port with direct routing', { 'real-port': '8080' }, ["test.conf:8: real-port: needs forward-method = nat: with direct routing the real servers receive the VIP's own port"]],
    [
      'a real-server port with tunnelling',
      { tunneling: 'yes', 'real-port': '8080' },
      ["test.conf:9: real-port: needs forward-method = nat: with tunnelling the real servers receive the VIP's own port"],
    ],
    ['a real-server port out of range', { 'forward-method': 'nat', 'real-port': '0' }, ['test.conf:9: real-port: must be between 1 and 65535, got 0']],
    ['a persistence engine without persistence', { protocol: 'udp', 'persistence-engine': 'sip' }, ['test.conf:8: persistence-engine: works only on a persistent service: set persistence-timeout too']],
    ['sip on tcp', { 'persistence-timeout': '60', 'persistence-engine': 'sip' }, ['test.conf:9: persistence-engine: sip reads SIP over UDP; this service is tcp']],
    ['an unknown persistence engine', { 'persistence-timeout': '60', 'persistence-engine': 'http' }, ["test.conf:9: persistence-engine: unknown persistence engine 'http'; expected one of sip"]],
    [
      'a lower threshold alone',
      { 'lower-threshold': '10' },
      ['test.conf:8: lower-threshold: means nothing without upper-threshold: a server is overloaded only above the upper threshold'],
    ],
    ['a lower threshold above the upper one', { 'upper-threshold': '10', 'lower-threshold': '20' }, ['test.conf:9: lower-threshold: 20 is above upper-threshold 10']],
    ['sh-port on wlc', { 'sh-port': 'yes' }, ['test.conf:8: sh-port: sh-port needs the sh scheduler, not wlc']],
    ['mh-port on sh', { scheduler: 'sh', 'mh-port': 'yes' }, ['test.conf:8: mh-port: mh-port does not apply to the sh scheduler (use sh-port)']],
  ];
  it.each(errors)('%s', (_name, over, expected) => {
    const r = check(service(over));
    expect(r.errors).toEqual(expected);
    expect(r.config).toBeUndefined();
  });
});

describe('parseConfig: the sloppy sysctls ([global] ipvs-sloppy-tcp, ipvs-sloppy-sctp)', () => {
  const global = (...lines: string[]): string => `[global]\n${lines.join('\n')}\n${service()}`;

  it('absent: undefined (pybal leaves the kernel value); yes or no: the value pybal sets', () => {
    expect(valid(service()).global).toMatchObject({ ipvsSloppyTcp: undefined, ipvsSloppySctp: undefined });
    expect(valid(global('ipvs-sloppy-tcp = yes', 'ipvs-sloppy-sctp = no')).global).toMatchObject({ ipvsSloppyTcp: true, ipvsSloppySctp: false });
    expect(valid(global('ipvs-sloppy-tcp = False')).global.ipvsSloppyTcp).toBe(false);
  });

  it('anything but a boolean is an error at its line', () => {
    expect(check(global('bgp = no', 'ipvs-sloppy-tcp = unset')).errors).toEqual([
      "test.conf:3: ipvs-sloppy-tcp: expected a boolean (yes/no, true/false, on/off, 1/0), got 'unset'",
    ]);
    expect(check(global('ipvs-sloppy-sctp = 2')).errors).toEqual(["test.conf:2: ipvs-sloppy-sctp: expected a boolean (yes/no, true/false, on/off, 1/0), got '2'"]);
  });
});

describe('parseConfig: the IPVS connection-sync daemons ([global] ipvs-sync-*)', () => {
  const global = (...lines: string[]): string => `[global]\n${lines.join('\n')}\n${service()}`;

  it('reads the daemons and their settings; the kernel defaults stay unset', () => {
    expect(valid(global('ipvs-sync-daemon = both', 'ipvs-sync-interface = eth1')).global.ipvsSync).toEqual({
      mode: 'both',
      interface: 'eth1',
      syncId: 0,
      group: undefined,
      port: undefined,
      ttl: undefined,
    });
    const all = global(
      'ipvs-sync-daemon = master',
      'ipvs-sync-interface = bond0.100',
      'ipvs-sync-id = 7',
      'ipvs-sync-group = FF02::51',
      'ipvs-sync-port = 8850',
      'ipvs-sync-ttl = 2',
    );
    expect(valid(all).global.ipvsSync).toEqual({ mode: 'master', interface: 'bond0.100', syncId: 7, group: 'ff02::51', port: 8850, ttl: 2 });
    expect(valid(global('ipvs-sync-daemon = none')).global.ipvsSync).toMatchObject({ mode: 'none' });
  });

  it('without ipvs-sync-daemon, pybal leaves the daemons alone; its companions alone only warn', () => {
    expect(valid(service()).global.ipvsSync).toBeUndefined();
    const r = check(global('ipvs-sync-interface = eth1', 'ipvs-sync-id = 3'));
    expect(r.errors).toEqual([]);
    expect(r.config?.global.ipvsSync).toBeUndefined();
    expect(r.warnings).toEqual([
      'test.conf:2: ipvs-sync-interface: has no effect: without ipvs-sync-daemon, pybal starts no sync daemon',
      'test.conf:3: ipvs-sync-id: has no effect: without ipvs-sync-daemon, pybal starts no sync daemon',
    ]);
    expect(check(global('ipvs-sync-daemon = none', 'ipvs-sync-interface = eth1')).warnings).toEqual([
      'test.conf:3: ipvs-sync-interface: has no effect: ipvs-sync-daemon = none starts no sync daemon',
    ]);
  });

  const cases: [string, string[], string[]][] = [
    ['no interface', ['ipvs-sync-daemon = backup'], ['test.conf:1: ipvs-sync-interface: required with ipvs-sync-daemon = backup: the interface the sync messages use (in [global])']],
    ['an unknown mode', ['ipvs-sync-daemon = primary', 'ipvs-sync-interface = eth1'], ["test.conf:2: ipvs-sync-daemon: unknown sync daemon mode 'primary'; expected one of master, backup, both, none"]],
    ['a mode in capitals', ['ipvs-sync-daemon = Master', 'ipvs-sync-interface = eth1'], ["test.conf:2: ipvs-sync-daemon: unknown sync daemon mode 'Master'; expected one of master, backup, both, none (write it in lower case: master)"]],
    ['an interface name too long', ['ipvs-sync-daemon = both', 'ipvs-sync-interface = enp0s31f6.10000v'], ["test.conf:3: ipvs-sync-interface: expected an interface name (1 to 15 characters, no '/', ':' or spaces), got 'enp0s31f6.10000v'"]],
    ['an interface with an alias', ['ipvs-sync-daemon = both', 'ipvs-sync-interface = eth0:1'], ["test.conf:3: ipvs-sync-interface: expected an interface name (1 to 15 characters, no '/', ':' or spaces), got 'eth0:1'"]],
    ['a sync id over 255', ['ipvs-sync-daemon = both', 'ipvs-sync-interface = eth1', 'ipvs-sync-id = 256'], ['test.conf:4: ipvs-sync-id: must be between 0 and 255, got 256']],
    ['a unicast group', ['ipvs-sync-daemon = both', 'ipvs-sync-interface = eth1', 'ipvs-sync-group = 192.0.2.81'], ['test.conf:4: ipvs-sync-group: expected a multicast group (224.0.0.0/4 or ff00::/8), got 192.0.2.81']],
    ['a group that is no address', ['ipvs-sync-daemon = both', 'ipvs-sync-interface = eth1', 'ipvs-sync-group = lvs-sync'], ["test.conf:4: ipvs-sync-group: expected an IPv4 or IPv6 address, got 'lvs-sync'"]],
    ['port 0', ['ipvs-sync-daemon = both', 'ipvs-sync-interface = eth1', 'ipvs-sync-port = 0'], ['test.conf:4: ipvs-sync-port: must be between 1 and 65535, got 0']],
    ['TTL 0', ['ipvs-sync-daemon = master', 'ipvs-sync-interface = eth1', 'ipvs-sync-ttl = 0'], ['test.conf:4: ipvs-sync-ttl: must be between 1 and 255, got 0']],
    ['a sync key in a service', [], [
        'test.conf:8: ipvs-sync-daemon: a [global] key, which does nothing in a service section: pybal cannot honour it, and ignoring it could change how traffic is forwarded, addressed, pooled or announced; set it in [global]',
      ]],
  ];
  for (const [name, lines, want] of cases) {
    it(`refuses ${name}, naming file, line and key`, () => {
      const text = lines.length > 0 ? global(...lines) : service({ 'ipvs-sync-daemon': 'both' });
      const r = check(text);
      expect(r.config).toBeUndefined();
      expect(r.errors).toEqual(want);
    });
  }
});

describe('parseConfig: BFD with the BGP peers ([global] bgp-bfd*)', () => {
  const bgp = ['bgp = yes', 'bgp-local-asn = 64496', 'bgp-peer-address = 192.0.2.254', 'bgp-nexthop-ipv4 = 192.0.2.100'];
  const global = (...lines: string[]): string => `[global]\n${lines.join('\n')}\n${service()}`;

  it('is off unless asked for; 0.3 s and 3 by default', () => {
    expect(valid(global(...bgp)).global).toMatchObject({ bgpBfd: false, bgpBfdIntervalMs: 300, bgpBfdMultiplier: 3 });
    expect(valid(global(...bgp, 'bgp-bfd = yes')).global).toMatchObject({ bgpBfd: true, bgpBfdIntervalMs: 300, bgpBfdMultiplier: 3 });
    expect(valid(global(...bgp, 'bgp-bfd = yes', 'bgp-bfd-interval = 0.05', 'bgp-bfd-multiplier = 4')).global).toMatchObject({ bgpBfdIntervalMs: 50, bgpBfdMultiplier: 4 });
  });

  it('warns when its timers are set without it, or it is set without BGP', () => {
    expect(check(global(...bgp, 'bgp-bfd-interval = 0.1')).warnings).toEqual(['test.conf:6: bgp-bfd-interval: has no effect without bgp-bfd = yes']);
    expect(check(global('bgp-bfd = yes')).warnings).toEqual(['test.conf:2: bgp-bfd: has no effect without bgp = yes: BFD runs with the BGP peers']);
  });

  const cases: [string, string[], string[]][] = [
    ['an interval under 10 ms', ['bgp-bfd = yes', 'bgp-bfd-interval = 0.005'], ['test.conf:7: bgp-bfd-interval: must be at least 0.01 seconds, got 0.005']],
    ['an interval over a minute', ['bgp-bfd = yes', 'bgp-bfd-interval = 61'], ['test.conf:7: bgp-bfd-interval: must be at most 60 seconds, got 61']],
    ['a multiplier of 0', ['bgp-bfd = yes', 'bgp-bfd-multiplier = 0'], ['test.conf:7: bgp-bfd-multiplier: must be between 1 and 255, got 0']],
    ['bfd not a boolean', ['bgp-bfd = fast'], ["test.conf:6: bgp-bfd: expected a boolean (yes/no, true/false, on/off, 1/0), got 'fast'"]],
  ];
  for (const [name, lines, want] of cases) {
    it(`refuses ${name}, naming file, line and key`, () => {
      const r = check(global(...bgp, ...lines));
      expect(r.config).toBeUndefined();
      expect(r.errors).toEqual(want);
    });
  }
});

describe('parseConfig: BGP graceful restart ([global] bgp-graceful-restart)', () => {
  const global = (...lines: string[]): string => `[global]\n${lines.join('\n')}\n${service()}`;
  it('is off (0) unless given a restart time in seconds', () => {
    expect(valid(service()).global.bgpGracefulRestartSec).toBe(0);
    expect(valid(global('bgp-graceful-restart = 120')).global.bgpGracefulRestartSec).toBe(120);
  });
  it('refuses a time the capability cannot carry (12 bits), naming file, line and key', () => {
    expect(check(global('bgp-graceful-restart = 4096')).errors).toEqual(['test.conf:2: bgp-graceful-restart: must be between 0 and 4095, got 4096']);
    expect(check(global('bgp-graceful-restart = yes')).errors).toEqual(["test.conf:2: bgp-graceful-restart: expected an integer, got 'yes'"]);
  });
});

describe('parseConfig: draining ([global] bgp-drain, bgp-drain-med)', () => {
  const bgp = ['bgp = yes', 'bgp-local-asn = 64496', 'bgp-peer-address = 192.0.2.254', 'bgp-nexthop-ipv4 = 192.0.2.100'];
  const global = (...lines: string[]): string => `[global]\n${lines.join('\n')}\n${service()}`;

  it('is off by default, with the worst MED; both keys read as the file says', () => {
    expect(valid(global(...bgp)).global).toMatchObject({ bgpDrain: false, bgpDrainMed: 4294967295 });
    expect(valid(global(...bgp, 'bgp-drain = yes')).global).toMatchObject({ bgpDrain: true, bgpDrainMed: 4294967295 });
    expect(valid(global(...bgp, 'bgp-drain = off', 'bgp-drain-med = 1000')).global).toMatchObject({ bgpDrain: false, bgpDrainMed: 1000 });
    expect(check(global(...bgp, 'bgp-drain = yes', 'bgp-drain-med = 1000')).warnings).toEqual([]);
  });

  it('warns when set without BGP: nothing is announced to drain', () => {
    expect(check(global('bgp-drain = yes', 'bgp-drain-med = 5')).warnings).toEqual([
      'test.conf:2: bgp-drain: has no effect without bgp = yes: nothing is announced to drain',
      'test.conf:3: bgp-drain-med: has no effect without bgp = yes: nothing is announced to drain',
    ]);
  });

  it('warns, at the key, when the drain MED would not make a VIP less preferred', () => {
    expect(check(global(...bgp, 'bgp-med = 100', 'bgp-drain-med = 100')).warnings).toEqual([
      'test.conf:7: bgp-drain-med: 100 is not higher than the MED 100 (the global bgp-med): a drained VIP would not be less preferred by MED, ' +
        'and only routers that honour GRACEFUL_SHUTDOWN (65535:0) would move its traffic',
    ]);
    // A service's own MED counts; the default drain MED is named at the [global] header.
    const text = `[global]\n${bgp.join('\n')}\n${service({ 'bgp-med': '4294967295' }, 'worst')}`;
    expect(check(text).warnings).toEqual([
      'test.conf:1: bgp-drain-med: 4294967295 is not higher than the MED 4294967295 (bgp-med of [worst]): a drained VIP would not be less preferred by MED, ' +
        'and only routers that honour GRACEFUL_SHUTDOWN (65535:0) would move its traffic',
    ]);
    // A service that does not announce does not count.
    expect(check(`[global]\n${bgp.join('\n')}\nbgp-drain-med = 5\n${service({ 'bgp-med': '50', bgp: 'no' })}`).warnings).toEqual([]);
  });

  const cases: [string, string[], string[]][] = [
    ['bgp-drain not a boolean', ['bgp-drain = soon'], ["test.conf:6: bgp-drain: expected a boolean (yes/no, true/false, on/off, 1/0), got 'soon'"]],
    ['a negative MED', ['bgp-drain-med = -1'], ['test.conf:6: bgp-drain-med: must be between 0 and 4294967295, got -1']],
    ['a MED over 32 bits', ['bgp-drain-med = 4294967296'], ['test.conf:6: bgp-drain-med: must be between 0 and 4294967295, got 4294967296']],
    ['a MED that is not a number', ['bgp-drain-med = max'], ["test.conf:6: bgp-drain-med: expected an integer, got 'max'"]],
    [
      'a misspelt key (it could change what is announced)',
      ['bgp-drian = yes'],
      ["test.conf:6: bgp-drian: unknown key: pybal cannot honour it, and ignoring it could change how traffic is forwarded, addressed, pooled or announced; did you mean 'bgp-drain'?"],
    ],
    [
      'a drain key of some other tool',
      ['drained = yes'],
      ['test.conf:6: drained: unknown key: pybal cannot honour it, and ignoring it could change how traffic is forwarded, addressed, pooled or announced'],
    ],
  ];
  for (const [name, lines, want] of cases) {
    it(`refuses ${name}, naming file, line and key`, () => {
      const r = check(global(...bgp, ...lines));
      expect(r.config).toBeUndefined();
      expect(r.errors).toEqual(want);
    });
  }
});
