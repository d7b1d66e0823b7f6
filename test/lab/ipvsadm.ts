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
  /** A firewall-mark service's address family (ipvsadm writes `IPv6` after the mark). */
  fwmarkFamily?: 4 | 6;
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
    const head = /^(TCP|UDP|SCTP|FWM)\s+(\S+)\s+(IPv6\s+)?(\S+)(.*)$/.exec(line);
    if (!head) continue;
    const [, proto, where, ipv6, scheduler, rest = ''] = head;
    const service: IpvsServiceEntry = {
      protocol: proto!.toLowerCase() as IpvsServiceEntry['protocol'],
      ...(proto === 'FWM' ? { fwmark: Number(where), fwmarkFamily: ipv6 === undefined ? 4 : 6 } : splitHostPort(where!)),
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

export type IpvsStatsEntry = {
  /** The service as ipvsadm names it: "TCP  203.0.113.1:80", "FWM  1", "FWM  1 IPv6" (spaces as printed). */
  service: string;
  /** Connections scheduled since the service was created (or zeroed). */
  conns: number;
  inPackets: number;
  outPackets: number;
  destinations: Array<{ address: string; port: number; conns: number; inPackets: number; outPackets: number }>;
};

/** `ipvsadm -Ln --stats --exact` → per service and destination counters. */
export function parseIpvsadmStats(text: string): IpvsStatsEntry[] {
  const services: IpvsStatsEntry[] = [];
  for (const line of text.split('\n')) {
    const dest = /^\s+->\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\d+\s*$/.exec(line);
    if (dest) {
      const service = services.at(-1);
      if (service === undefined) throw new Error(`ipvsadm output: destination before any service: ${line.trim()}`);
      service.destinations.push({ ...splitHostPort(dest[1]!), conns: Number(dest[2]), inPackets: Number(dest[3]), outPackets: Number(dest[4]) });
      continue;
    }
    const head = /^((?:TCP|UDP|SCTP|FWM)\s+\S+(?: IPv6)?)\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\d+\s*$/.exec(line);
    if (head) services.push({ service: head[1]!, conns: Number(head[2]), inPackets: Number(head[3]), outPackets: Number(head[4]), destinations: [] });
  }
  return services;
}
