/**
 * What data-path checks need of the director's kernel settings, said in the
 * log rather than changed (pybal changes no sysctl).
 *
 * IPv4 data-path checks need the director to take packets whose source is
 * one of its own addresses: the server's reply comes from the VIP, which the
 * director holds too, and Linux drops such a packet as a martian unless
 * net.ipv4.conf.<interface>.accept_local (or .all) is 1. IPv6 has no such
 * check. pybal does not change the setting; it says at start when no
 * interface has it, so that an operator is not left with every server
 * failing its checks and no word why.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Config } from '../config/types.js';
import type { Logger } from '../runtime/logger.js';

const CONF = '/proc/sys/net/ipv4/conf';
const IPV4 = '/proc/sys/net/ipv4';
/** How long a port a check closed first stays in TIME_WAIT (the kernel's TCP_TIMEWAIT_LEN). */
const TIME_WAIT_SEC = 60;

/** The interfaces with accept_local on (`all` counts for every one); undefined when /proc cannot say. */
export function acceptLocalInterfaces(root = CONF): string[] | undefined {
  try {
    return readdirSync(root).filter((name) => name !== 'default' && readFileSync(`${root}/${name}/accept_local`, 'utf8').trim() === '1');
  } catch {
    return undefined;
  }
}

/** Logs a warning when an IPv4 service checks through the data path and no interface takes replies from the VIP. */
export function warnAcceptLocal(config: Config, log: Logger, root = CONF): void {
  const services = config.services.filter((s) => s.family === 4 && s.dataPathMonitors.length > 0 && s.forwardMethod !== 'nat');
  if (services.length === 0) return;
  const on = acceptLocalInterfaces(root);
  if (on === undefined || on.length > 0) return;
  log.warn(
    `Data-path checks of ${services.map((s) => s.name).join(', ')}: net.ipv4.conf.*.accept_local is 0 on every interface, so this director drops ` +
      "the servers' replies (they come from the VIP, one of its own addresses) and every data-path check fails; set it to 1 on the interfaces towards the real servers (or on all)",
  );
}

/**
 * How many new TCP connections a second this director can make to one
 * address and port, sustained, when each leaves its local port in TIME_WAIT:
 * its ephemeral ports over 60 s; Infinity with tcp_tw_reuse = 1 (ports in
 * TIME_WAIT are taken again). Undefined when /proc cannot say.
 */
export function connectionsPerSecondToOneAddress(root = IPV4): number | undefined {
  try {
    if (readFileSync(`${root}/tcp_tw_reuse`, 'utf8').trim() === '1') return Number.POSITIVE_INFINITY;
    const [low = 0, high = 0] = readFileSync(`${root}/ip_local_port_range`, 'utf8').trim().split(/\s+/).map(Number);
    return (high - low + 1) / TIME_WAIT_SEC;
  } catch {
    return undefined;
  }
}

/**
 * A warning, once per service while it lasts, when its data-path checks
 * make more than four fifths of the new connections a second the director's
 * local ports allow towards one VIP and port; undefined otherwise.
 */
export function connectionRateWarning(service: string, perSec: number, capacity: number | undefined): string | undefined {
  if (capacity === undefined || perSec <= capacity * 0.8) return undefined;
  return (
    `[${service}] its data-path checks open about ${Math.round(perSec)} connections a second to its VIP, and this director's local ports allow about ` +
    `${Math.round(capacity)} a second to one address and port (net.ipv4.ip_local_port_range over 60 s of TIME_WAIT): set net.ipv4.tcp_tw_reuse = 1, ` +
    'or widen the port range (docs/data-path-checks.md); until then a check that finds no port checks its server at its own address'
  );
}
