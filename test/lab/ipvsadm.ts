// Parsing `ipvsadm -Ln` (the lab's ground truth for what the kernel holds),
// so tests compare structures rather than grep text. Pure.

export type IpvsDestinationEntry = {
  /** IPv6 without brackets. */
  address: string;
  port: number;
  /** As ipvsadm prints it, lower-cased: route (DR), masq (NAT), tunnel, local. */
  forward: string;
  weight: number;
  activeConns: number;
  inactiveConns: number;
};

export type IpvsServiceEntry = {
  protocol: 'tcp' | 'udp' | 'sctp' | 'fwm';
  /** Absent for a firewall-mark service. */
  address?: string;
  port?: number;
  fwmark?: number;
  scheduler: string;
  /** Scheduler flags, e.g. ['sh-fallback', 'sh-port']. */
  flags: string[];
  persistentSec?: number;
  netmask?: string;
  /** One-packet scheduling (UDP). */
  ops: boolean;
  destinations: IpvsDestinationEntry[];
};

/** "203.0.113.1:80" or "[2001:db8::1]:80" → address and port. */
function splitHostPort(text: string): { address: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m) throw new Error(`ipvsadm output: ${JSON.stringify(text)} is not ADDRESS:PORT`);
  return { address: m[1]!, port: Number(m[2]) };
}

export function parseIpvsadmList(text: string): IpvsServiceEntry[] {
  const services: IpvsServiceEntry[] = [];
  for (const line of text.split('\n')) {
    const dest = /^\s+->\s+(\S+)\s+(\w+)\s+(\d+)\s+(\d+)\s+(\d+)/.exec(line);
    if (dest) {
      const service = services.at(-1);
      if (service === undefined) throw new Error(`ipvsadm output: destination before any service: ${line.trim()}`);
      service.destinations.push({
        ...splitHostPort(dest[1]!),
        forward: dest[2]!.toLowerCase(),
        weight: Number(dest[3]),
        activeConns: Number(dest[4]),
        inactiveConns: Number(dest[5]),
      });
      continue;
    }
    const head = /^(TCP|UDP|SCTP|FWM)\s+(\S+)\s+(\S+)(.*)$/.exec(line);
    if (!head) continue;
    const [, proto, where, scheduler, rest = ''] = head;
    const service: IpvsServiceEntry = {
      protocol: proto!.toLowerCase() as IpvsServiceEntry['protocol'],
      ...(proto === 'FWM' ? { fwmark: Number(where) } : splitHostPort(where!)),
      scheduler: scheduler!,
      flags: /\(([^)]*)\)/.exec(rest)?.[1]?.split(',').filter(Boolean) ?? [],
      ops: /\bops\b/.test(rest),
      destinations: [],
    };
    const persistent = /\bpersistent (\d+)/.exec(rest);
    if (persistent) service.persistentSec = Number(persistent[1]);
    const mask = /\bmask (\S+)/.exec(rest);
    if (mask) service.netmask = mask[1]!;
    services.push(service);
  }
  return services;
}
