/**
 * IP address literals in configuration: strict parsing and one normal form
 * (IPv4 dotted quad without leading zeros; IPv6 lower-case and compressed as
 * RFC 5952 section 4 says), so that equal addresses compare equal. Pure.
 */

import { formatIpv6Groups, parseIpv4Octets, parseIpv6Groups } from '../runtime/ip.js';
import type { AddressFamily } from './types.js';

export interface IpAddress {
  readonly address: string;
  readonly family: AddressFamily;
}

export { parseIpv4Octets };

/** Parses an IPv4 or IPv6 literal into its normal form. */
export function parseIpAddress(text: string): IpAddress | undefined {
  const v4 = parseIpv4Octets(text);
  if (v4) return { address: v4.join('.'), family: 4 };
  const v6 = parseIpv6Groups(text);
  if (v6 && v6.length === 8) return { address: formatIpv6Groups(v6), family: 6 };
  return undefined;
}
