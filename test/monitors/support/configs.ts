/**
 * Monitor configs as the config parser produces them, with the defaults that
 * src/config/types.ts documents (PyBal's), for tests to override.
 */
import type {
  DnsQueryConfig,
  IdleConnectionConfig,
  PingConfig,
  ProxyFetchConfig,
  RunCommandConfig,
  SshConfig,
  TcpConnectConfig,
  UdpConfig,
} from '../../../src/config/types.js';

export const proxyFetchConfig = (o: Partial<ProxyFetchConfig> = {}): ProxyFetchConfig => ({
  kind: 'ProxyFetch',
  urls: ['http://www.example.com/'],
  intervalMs: 10_000,
  timeoutMs: 5_000,
  rise: 1,
  fall: 1,
  httpStatus: 200,
  checkAll: false,
  maxFailures: 0,
  expectBody: undefined,
  expectBodyRegex: undefined,
  verifyTls: false,
  caFile: undefined,
  ...o,
});

export const idleConnectionConfig = (o: Partial<IdleConnectionConfig> = {}): IdleConnectionConfig => ({
  kind: 'IdleConnection',
  timeoutCleanReconnectMs: 3_000,
  maxDelayMs: 300_000,
  keepalive: true,
  keepaliveRetries: 3,
  keepaliveIdleMs: 10_000,
  keepaliveIntervalMs: 30_000,
  connectTimeoutMs: 5_000,
  rise: 1,
  fall: 1,
  ...o,
});

export const runCommandConfig = (o: Partial<RunCommandConfig> = {}): RunCommandConfig => ({
  kind: 'RunCommand',
  command: '/bin/true',
  arguments: [{ literal: '' }],
  logOutput: true,
  intervalMs: 60_000,
  timeoutMs: 20_000,
  rise: 1,
  fall: 1,
  ...o,
});

export const sshConfig = (o: Partial<SshConfig> & Pick<SshConfig, 'privateKeyFile'>): SshConfig => ({
  kind: 'SSH',
  user: 'root',
  command: 'true',
  port: 22,
  knownHostsFile: undefined,
  intervalMs: 60_000,
  timeoutMs: 10_000,
  rise: 1,
  fall: 1,
  ...o,
});

export const dnsQueryConfig = (o: Partial<DnsQueryConfig> = {}): DnsQueryConfig => ({
  kind: 'DNSQuery',
  hostnames: ['www.example.com'],
  failOnNxdomain: false,
  intervalMs: 10_000,
  timeoutMs: 5_000,
  rise: 1,
  fall: 1,
  ...o,
});

export const udpConfig = (o: Partial<UdpConfig> = {}): UdpConfig => ({
  kind: 'UDP',
  intervalMs: 10_000,
  icmpTimeoutMs: 20_000,
  rise: 1,
  fall: 1,
  ...o,
});

export const pingConfig = (o: Partial<PingConfig> = {}): PingConfig => ({
  kind: 'Ping',
  count: 1,
  intervalMs: 1_000,
  timeoutMs: 1_000,
  rise: 1,
  fall: 1,
  ...o,
});

export const tcpConnectConfig = (o: Partial<TcpConnectConfig> = {}): TcpConnectConfig => ({
  kind: 'TCPConnect',
  intervalMs: 10_000,
  timeoutMs: 5_000,
  rise: 1,
  fall: 1,
  ...o,
});
