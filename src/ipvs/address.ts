/**
 * IP address text <-> bytes, for IPVS attributes (pure). Output text is
 * canonical (RFC 5952 for IPv6) so that addresses compare as strings.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { formatIpv6Groups, ipv6BytesToGroups, ipv6GroupsToBytes, parseIpv6Groups, stripZone } from '../runtime/ip.js';

export type IpFamily = 4 | 6;

export function familyOf(address: string): IpFamily | undefined {
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  return undefined;
}

function parseIPv4(text: string): number[] {
  return text.split('.').map((p) => Number(p));
}

function parseIPv6(text: string): Uint8Array {
  return ipv6GroupsToBytes(parseIpv6Groups(stripZone(text.toLowerCase())) ?? []);
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
  return formatIpv6Groups(ipv6BytesToGroups(bytes));
}

/** Canonical text of an address (throws when it is not one). */
export function canonicalAddress(address: string): string {
  // Dotted decimal that isIPv4 accepts (no leading zeros, each part 0..255) is already canonical.
  if (isIPv4(address)) return address;
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
