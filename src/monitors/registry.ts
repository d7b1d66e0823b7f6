/**
 * The static registry: MonitorConfig kind -> factory. createMonitor is the
 * one entry point the daemon uses.
 */
import type { MonitorConfig, MonitorKind } from '../config/types.js';
import { createDnsQueryMonitor } from './dns-query.js';
import { createIdleConnectionMonitor } from './idle-connection.js';
import { createPingMonitor } from './ping.js';
import { createProxyFetchMonitor, prepareProxyFetchMonitor } from './proxyfetch.js';
import { createRunCommandMonitor } from './run-command.js';
import { createSshMonitor } from './ssh.js';
import { createTcpConnectMonitor } from './tcp-connect.js';
import type { Monitor, MonitorDeps, MonitorTarget } from './types.js';
import { createUdpMonitor } from './udp.js';

type Factory<K extends MonitorKind> = (config: Extract<MonitorConfig, { kind: K }>, target: MonitorTarget, deps: MonitorDeps) => Monitor;

export const MONITOR_FACTORIES: { readonly [K in MonitorKind]: Factory<K> } = {
  ProxyFetch: createProxyFetchMonitor,
  IdleConnection: createIdleConnectionMonitor,
  RunCommand: createRunCommandMonitor,
  SSH: createSshMonitor,
  DNSQuery: createDnsQueryMonitor,
  UDP: createUdpMonitor,
  Ping: createPingMonitor,
  TCPConnect: createTcpConnectMonitor,
};

/** Creates (does not start) the monitor a config names, for one server. */
export function createMonitor(config: MonitorConfig, target: MonitorTarget, deps: MonitorDeps): Monitor {
  const factory = MONITOR_FACTORIES[config.kind] as Factory<MonitorKind>;
  return factory(config as never, target, deps);
}

/** Creates (does not start) a monitor of one config for a server. */
export type MonitorMaker = (target: MonitorTarget, deps: MonitorDeps) => Monitor;

/**
 * The monitors of one config for all of its servers: what can be worked out
 * from the config alone is worked out once (ProxyFetch parses its URLs),
 * not once per server. Throws only where createMonitor would.
 */
export function prepareMonitor(config: MonitorConfig): MonitorMaker {
  if (config.kind === 'ProxyFetch') return prepareProxyFetchMonitor(config);
  return (target, deps) => createMonitor(config, target, deps);
}
