/**
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
