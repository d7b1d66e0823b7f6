/**
 * IP address text, one implementation for everyone (config, IPVS, BGP):
 * strict dotted quads, IPv6 groups, and RFC 5952 text so that equal
 * addresses compare equal as strings. Pure.
 */
const IPV4_RE = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

/** The four octets of a dotted quad, or undefined. Leading zeros are refused (inet_aton reads them as octal). */
export function parseIpv4Octets(text: string): number[] | undefined {
  const m = IPV4_RE.exec(text);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  return octets.every((o) => o <= 255) ? octets : undefined;
}

const HEX_GROUP_RE = /^[0-9a-fA-F]{1,4}$/;

/**
 * The eight 16-bit groups of an IPv6 literal (no zone: strip `%...` first),
 * or undefined. Accepts what node:net's isIPv6 accepts without a zone (test/runtime/ip.test.ts
 * compares them), without its expression: V8 takes 3 to 8 ms to compile that
 * on first use, which `pybal check-config` and `status` paid (issue 14).
 */
export function parseIpv6Groups(text: string): number[] | undefined {
  if (text.includes('%')) return undefined;
  let body = text;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    const v4 = parseIpv4Octets(last);
    if (!v4) return undefined;
    tail.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
    body = text.slice(0, lastColon + 1);
    if (!body.endsWith('::')) body = body.slice(0, -1);
  }
  let valid = true;
  const toGroups = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').map((g) => {
      if (!HEX_GROUP_RE.test(g)) valid = false;
      return parseInt(g, 16);
    });
  };
  const width = 8 - tail.length;
  const gap = body.indexOf('::');
  let groups: number[];
  if (gap < 0) {
    groups = toGroups(body);
  } else {
    const left = toGroups(body.slice(0, gap));
    const right = toGroups(body.slice(gap + 2));
    if (left.length + right.length >= width) return undefined;
    groups = [...left, ...Array<number>(width - left.length - right.length).fill(0), ...right];
  }
  return valid && groups.length === width ? [...groups, ...tail] : undefined;
}

/** RFC 5952: lower-case hex, no leading zeros, the longest run (>= 2) of zero groups as `::` (the first on a tie). */
export function formatIpv6Groups(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** 16 bytes, network order. */
export function ipv6GroupsToBytes(groups: readonly number[]): Uint8Array {
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = (g >> 8) & 0xff;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

/** The eight groups of the first 16 bytes. */
export function ipv6BytesToGroups(bytes: Uint8Array): number[] {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  return groups;
}

/** Drops an IPv6 zone (`fe80::1%eth0` -> `fe80::1`). */
export function stripZone(text: string): string {
  const zone = text.indexOf('%');
  return zone >= 0 ? text.slice(0, zone) : text;
}

/** `192.0.2.1:80`, `[2001:db8::1]:80`. */
export function formatHostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
