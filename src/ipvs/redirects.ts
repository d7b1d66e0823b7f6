/**
 * LVS-NAT and ICMP redirects. When the director, the real servers and the
 * router share one network, a real server's reply enters the director and
 * leaves it by the same interface, so the kernel tells the real server (ICMP
 * redirect) to send straight to the router. A real server that obeys sends
 * its replies around IPVS, which never rewrites them back to the VIP, and
 * clients lose them at random. pybal cannot know the topology, so it warns
 * whenever an IPv4 service uses NAT on a director that sends redirects.
 * (IPv6 has no switch for sending redirects; real servers can refuse them.)
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServiceConfig } from '../config/types.js';

export const IPV4_CONF_DIR = '/proc/sys/net/ipv4/conf';

/**
 * The interfaces (but lo) this network namespace would send ICMP redirects
 * from: the kernel does when `all` or the interface's own send_redirects is
 * 1. Undefined when /proc cannot tell (not Linux, or not mounted).
 */
export async function interfacesSendingRedirects(confDir = IPV4_CONF_DIR): Promise<string[] | undefined> {
  const enabled = async (name: string): Promise<boolean> => (await readFile(join(confDir, name, 'send_redirects'), 'utf8')).trim() !== '0';
  try {
    const names = (await readdir(confDir)).filter((n) => n !== 'all' && n !== 'default' && n !== 'lo').sort();
    const all = await enabled('all');
    const sending: string[] = [];
    for (const name of names) {
      // An interface gone between readdir and read is not sending anything.
      if (all || (await enabled(name).catch(() => false))) sending.push(name);
    }
    return sending;
  } catch {
    return undefined;
  }
}

/** The warning to log, if any IPv4 service forwards by NAT while redirects are on. */
export function natRedirectWarning(services: readonly ServiceConfig[], sending: readonly string[] | undefined): string | undefined {
  const nat = services.filter((s) => s.forwardMethod === 'nat' && s.family === 4).map((s) => s.name);
  if (nat.length === 0 || sending === undefined || sending.length === 0) return undefined;
  return (
    `forward-method = nat (${nat.join(', ')}) on a host that sends ICMP redirects (${sending.join(', ')}): ` +
    'if the real servers share a network with the router, replies they are redirected to send around the director ' +
    'bypass IPVS and clients lose them; set net.ipv4.conf.all.send_redirects=0 and ' +
    // sysctl names write a dot in an interface name (a VLAN, eth0.100) as a slash.
    `${sending.map((n) => `net.ipv4.conf.${n.replaceAll('.', '/')}.send_redirects=0`).join(', ')}`
  );
}
