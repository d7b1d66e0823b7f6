// Packet filter rules in a lab node, with legacy iptables: the guest's UML
// kernel has nf_tables without its ip, ip6 and inet families (nft can create
// nothing there), but has x_tables with the mangle table, u32, multiport,
// comment and MARK. Tests of IPVS features use it to mark packets for
// firewall-mark services (in a director) and to count in a real server how
// packets arrived (tunnelled or not, which encapsulation, with a checksum or
// not). Load IPTABLES_MODULES first (loadGuestModules): the guest's kernel
// cannot load modules by itself.
import type { Lab } from './lab.js';
import type { Family } from './topology.js';

export const IPTABLES_MODULES = ['ip_tables', 'iptable_mangle', 'ip6_tables', 'ip6table_mangle', 'xt_tcpudp', 'xt_u32', 'xt_comment', 'xt_multiport', 'xt_mark'] as const;

const tool = (family: Family, what: 'restore' | 'save'): string => `${family === 4 ? 'iptables' : 'ip6tables'}-legacy-${what}`;

/**
 * Appends rules to the mangle table of a node, each an iptables argument
 * list after `-A` (e.g. ['PREROUTING', '-p', '4', '-m', 'comment', '--comment', 'ipip']).
 */
export async function appendMangleRules(lab: Lab, node: string, family: Family, rules: readonly (readonly string[])[]): Promise<void> {
  const quote = (w: string): string => (/^[\w@%+=:,./!-]+$/.test(w) ? w : `"${w.replaceAll('"', '\\"')}"`);
  const input = ['*mangle', ...rules.map((r) => `-A ${r.map(quote).join(' ')}`), 'COMMIT', ''].join('\n');
  await lab.execOk(node, [tool(family, 'restore'), '--noflush'], { input });
}

/**
 * Packets matched by the rules of each comment, summed over rules that share
 * it, from `iptables-save -c` text (lines like `[12:720] -A PREROUTING ...
 * -m comment --comment ipip`). Pure.
 */
export function parseCommentCounters(saved: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of saved.split('\n')) {
    const m = /^\[(\d+):\d+\] -A .*?--comment ("[^"]*"|\S+)/.exec(line);
    if (m === null) continue;
    const name = m[2]!.replace(/^"(.*)"$/, '$1');
    counts[name] = (counts[name] ?? 0) + Number(m[1]);
  }
  return counts;
}

/** A node's mangle-table counters by comment (see parseCommentCounters). */
export async function mangleCounters(lab: Lab, node: string, family: Family = 4): Promise<Record<string, number>> {
  return parseCommentCounters((await lab.execOk(node, [tool(family, 'save'), '-c', '-t', 'mangle'])).stdout);
}
