/**
 * IP address text <-> bytes, for IPVS attributes (pure). Output text is
 * canonical (RFC 5952 for IPv6) so that addresses compare as strings.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 4 | 6;

export function familyOf(address: string): IpFamily | undefined {
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  return undefined;
}

function parseIPv4(text: string): number[] {
  return text.split('.').map((p) => Number(p));
}

function parseIPv6(text: string): number[] {
  let s = text.toLowerCase();
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  // An embedded IPv4 tail becomes two groups.
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = parseIPv4(tail);
    s = `${s.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = s.split('::');
  const left = head ? head.split(':') : [];
  const right = rest === undefined ? [] : rest ? rest.split(':') : [];
  const fill = rest === undefined ? 0 : 8 - left.length - right.length;
  const groups = [...left, ...Array<string>(fill).fill('0'), ...right].map((g) => parseInt(g, 16));
  const bytes: number[] = [];
  for (const g of groups) bytes.push((g >> 8) & 0xff, g & 0xff);
  return bytes;
}

/** Writes the 4 or 16 bytes of an address at `offset` (already validated text). */
export function writeAddress(family: IpFamily, address: string, out: Buffer, offset: number): void {
  if (family === 4) {
    // A hand loop: this runs for every destination of a large batch.
    let octet = 0;
    let i = offset;
    for (let c = 0; c < address.length; c++) {
      const code = address.charCodeAt(c);
      if (code === 46) {
        out[i++] = octet;
        octet = 0;
      } else octet = octet * 10 + (code - 48);
    }
    out[i] = octet;
    return;
  }
  out.set(parseIPv6(address), offset);
}

/** The address as 4 or 16 bytes; throws on text that is not an address of that family. */
export function encodeAddress(family: IpFamily, address: string): Buffer {
  if (family === 4) {
    if (!isIPv4(address)) throw new TypeError(`not an IPv4 address: ${JSON.stringify(address)}`);
    return Buffer.from(parseIPv4(address));
  }
  if (!isIPv6(address)) throw new TypeError(`not an IPv6 address: ${JSON.stringify(address)}`);
  return Buffer.from(parseIPv6(address));
}

/** Reads an address; the kernel sends 16 bytes even for IPv4 (in the first 4). */
export function decodeAddress(family: IpFamily, bytes: Buffer): string {
  if (family === 4) {
    if (bytes.length < 4) throw new TypeError(`IPv4 address needs 4 bytes, got ${bytes.length}`);
    return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  }
  if (bytes.length < 16) throw new TypeError(`IPv6 address needs 16 bytes, got ${bytes.length}`);
  return formatIPv6(bytes);
}

function formatIPv6(bytes: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // The longest run of two or more zero groups becomes "::" (the first when tied).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Canonical text of an address (throws when it is not one). */
export function canonicalAddress(address: string): string {
  const family = familyOf(address);
  if (family === undefined) throw new TypeError(`not an IP address: ${JSON.stringify(address)}`);
  return decodeAddress(family, encodeAddress(family, address));
}

/** The prefix length of a contiguous IPv4 mask (`255.255.255.0` -> 24), or undefined. */
export function maskToPrefix(mask: number): number | undefined {
  const m = mask >>> 0;
  const inverted = ~m >>> 0;
  // Contiguous masks have all ones after the first zero when inverted: inverted+1 is a power of two.
  if ((inverted & (inverted + 1)) !== 0) return undefined;
  let n = 0;
  for (let b = 31; b >= 0 && (m >>> b) & 1; b--) n++;
  return n;
}

export function prefixToMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}
