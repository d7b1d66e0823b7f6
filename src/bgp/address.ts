/**
 * IP addresses and prefixes as BGP carries them. Pure: text <-> bytes, with
 * IPv6 formatted the RFC 5952 way so that equal addresses compare equal.
 */
import type { AddressFamily } from '../config/types.js';
import { formatIpv6Groups, ipv6BytesToGroups, ipv6GroupsToBytes, parseIpv6Groups, stripZone } from '../runtime/ip.js';

export interface Prefix {
  readonly family: AddressFamily;
  /** Canonical text form of the network address. */
  readonly address: string;
  readonly length: number;
}

/** Parses dotted-quad IPv4 (no leading zeros beyond one digit groups of up to 3); undefined when it is not one. */
export function parseIpv4(text: string): Uint8Array | undefined {
  // A hand-rolled scan: this runs for every prefix of every UPDATE.
  const out = new Uint8Array(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || part === 3) return undefined;
      out[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      value = value * 10 + (c - 48);
      if (++digits > 3 || value > 255) return undefined;
    } else {
      return undefined;
    }
  }
  if (part !== 3 || digits === 0) return undefined;
  out[3] = value;
  return out;
}

/** Parses IPv6 text (with `::` and an embedded IPv4 tail; a zone is ignored); undefined when it is not one. */
export function parseIpv6(text: string): Uint8Array | undefined {
  const groups = parseIpv6Groups(stripZone(text));
  return groups ? ipv6GroupsToBytes(groups) : undefined;
}

/** An IPv4 address as an unsigned 32-bit number (0 when it is not one), for comparing BGP identifiers. */
export function ipv4ToNumber(address: string): number {
  const b = parseIpv4(address);
  return b ? (((b[0] ?? 0) << 24) | ((b[1] ?? 0) << 16) | ((b[2] ?? 0) << 8) | (b[3] ?? 0)) >>> 0 : 0;
}

export function formatIpv4(bytes: Uint8Array): string {
  return `${bytes[0] ?? 0}.${bytes[1] ?? 0}.${bytes[2] ?? 0}.${bytes[3] ?? 0}`;
}

/** RFC 5952 text of 16 bytes. */
export function formatIpv6(bytes: Uint8Array): string {
  return formatIpv6Groups(ipv6BytesToGroups(bytes));
}

export function familyOf(address: string): AddressFamily | undefined {
  if (parseIpv4(address)) return 4;
  if (parseIpv6(address)) return 6;
  return undefined;
}

/** Parses either family. */
export function parseAddress(address: string): { family: AddressFamily; bytes: Uint8Array } | undefined {
  const v4 = parseIpv4(address);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseIpv6(address);
  // An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) is that IPv4 address.
  if (v6 && v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff) {
    return { family: 4, bytes: v6.slice(12) };
  }
  return v6 ? { family: 6, bytes: v6 } : undefined;
}

/** Canonical text of an address, for comparing configured and observed peers. */
export function normalizeAddress(address: string): string | undefined {
  const parsed = parseAddress(address);
  if (!parsed) return undefined;
  return parsed.family === 4 ? formatIpv4(parsed.bytes) : formatIpv6(parsed.bytes);
}

export function formatAddress(family: AddressFamily, bytes: Uint8Array): string {
  return family === 4 ? formatIpv4(bytes) : formatIpv6(bytes);
}

/** A host prefix (/32 or /128) for a VIP. */
export function hostPrefix(address: string): Prefix {
  const parsed = parseAddress(address);
  if (!parsed) throw new Error(`not an IP address: ${address}`);
  return { family: parsed.family, address: formatAddress(parsed.family, parsed.bytes), length: parsed.family === 4 ? 32 : 128 };
}

export function formatPrefix(prefix: Prefix): string {
  return `${prefix.address}/${prefix.length}`;
}

export function addressBits(family: AddressFamily): number {
  return family === 4 ? 32 : 128;
}
