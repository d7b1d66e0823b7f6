/**
 * UPDATE messages (RFC 4271 §4.3) with MP-BGP (RFC 4760), 4-octet AS paths
 * (RFC 6793) and communities (RFC 1997): the types and the encoder. Received
 * UPDATEs are decoded and judged in decode-update.ts.
 */
import type { AddressFamily, Community } from '../config/types.js';
import { parseAddress, parseIpv4, type Prefix } from './address.js';
import { ByteWriter } from './bytes.js';
import { Afi, AS_TRANS, AttrFlag, AttrType } from './constants.js';
import type { UpdateError } from './update-errors.js';

export interface AsPathSegment {
  readonly type: number;
  readonly asns: readonly number[];
}

export interface MpReachNlri {
  readonly afi: number;
  readonly safi: number;
  readonly nextHops: readonly string[];
  readonly nlri: readonly Prefix[];
}

export interface MpUnreachNlri {
  readonly afi: number;
  readonly safi: number;
  readonly withdrawn: readonly Prefix[];
}

export interface RawAttribute {
  readonly flags: number;
  readonly type: number;
  readonly value: Uint8Array;
}

export interface PathAttributes {
  readonly origin?: number;
  readonly asPath?: readonly AsPathSegment[];
  readonly nextHop?: string;
  readonly med?: number;
  readonly localPref?: number;
  readonly communities?: readonly Community[];
  readonly mpReach?: MpReachNlri;
  readonly mpUnreach?: MpUnreachNlri;
  /** Attributes kept as received (AS4_PATH, AGGREGATOR, unknown optional ones). */
  readonly other?: readonly RawAttribute[];
}

export interface UpdateMessage {
  readonly type: 'update';
  readonly withdrawn: readonly Prefix[];
  readonly attributes: PathAttributes;
  readonly nlri: readonly Prefix[];
  /**
   * Received only, absent when there were none: the errors the session
   * survives (RFC 7606 treat-as-withdraw and attribute-discard). The
   * attributes above are what was left after them.
   */
  readonly errors?: readonly UpdateError[];
}

export interface CodecOptions {
  /** Both sides sent the 4-octet AS capability: AS_PATH carries 4-byte ASNs. */
  readonly fourOctetAs: boolean;
  /**
   * Received only: the unicast families negotiated for the session. An
   * MP_REACH_NLRI or MP_UNREACH_NLRI of any other AFI/SAFI is discarded
   * unread. Default: IPv4 and IPv6 unicast.
   */
  readonly families?: readonly AddressFamily[];
  /**
   * Received only: the peer is in another AS, so LOCAL_PREF, ORIGINATOR_ID
   * and CLUSTER_LIST from it are discarded (RFC 7606 §7.5, §7.9, §7.10).
   * Default false.
   */
  readonly externalPeer?: boolean;
}

export function afiFamily(afi: number): AddressFamily | undefined {
  return afi === Afi.Ipv4 ? 4 : afi === Afi.Ipv6 ? 6 : undefined;
}

export function familyAfi(family: AddressFamily): number {
  return family === 4 ? Afi.Ipv4 : Afi.Ipv6;
}

// ---------------------------------------------------------------- encoding

/** Bytes a prefix takes in an NLRI field. */
export function prefixSize(p: Prefix): number {
  return 1 + Math.ceil(p.length / 8);
}

export function writePrefix(w: ByteWriter, p: Prefix): void {
  const parsed = parseAddress(p.address);
  if (!parsed || parsed.family !== p.family) throw new Error(`bad prefix address ${p.address}`);
  w.u8(p.length).bytes(parsed.bytes.subarray(0, Math.ceil(p.length / 8)));
}

function writeAsPath(w: ByteWriter, segments: readonly AsPathSegment[], fourOctet: boolean): void {
  for (const s of segments) {
    // A segment holds at most 255 ASNs; longer paths continue in further segments.
    for (let i = 0; i < s.asns.length || i === 0; i += 255) {
      const end = Math.min(i + 255, s.asns.length);
      w.u8(s.type).u8(end - i);
      for (let j = i; j < end; j++) {
        const asn = s.asns[j] as number;
        if (fourOctet) w.u32(asn);
        else w.u16(asn > 0xffff ? AS_TRANS : asn);
      }
      if (s.asns.length === 0) break;
    }
  }
}

/** The Optional and Transitive bits each kind of attribute carries (RFC 4271 §4.3). */
export const WELL_KNOWN = AttrFlag.Transitive;
export const OPTIONAL = AttrFlag.Optional;
export const OPTIONAL_TRANSITIVE = AttrFlag.Optional | AttrFlag.Transitive;

function addressBytes(text: string): Uint8Array {
  const p = parseAddress(text);
  if (!p) throw new Error(`not an IP address: ${text}`);
  return p.bytes;
}

/** Writes the path attributes into `w`: MP_REACH_NLRI and MP_UNREACH_NLRI first, then the rest in ascending type order. */
export function writeAttributes(w: ByteWriter, attrs: PathAttributes, options: CodecOptions): void {
  const needAs4 = !options.fourOctetAs && (attrs.asPath ?? []).some((s) => s.asns.some((asn) => asn > 0xffff));
  const others = [...(attrs.other ?? [])].filter((r) => !(r.type === AttrType.As4Path && needAs4)).sort((a, b) => a.type - b.type);
  let next = 0;
  /** Writes the raw attributes that sort before `type`. */
  const othersBefore = (type: number): void => {
    for (; next < others.length && (others[next] as RawAttribute).type < type; next++) {
      const raw = others[next] as RawAttribute;
      const at = w.beginAttribute(raw.flags, raw.type);
      w.bytes(raw.value);
      w.endAttribute(at);
    }
  };
  const attribute = (flags: number, type: number, body: () => void): void => {
    othersBefore(type);
    const at = w.beginAttribute(flags, type);
    body();
    w.endAttribute(at);
  };
  // RFC 7606 §5.1: MP_REACH_NLRI and MP_UNREACH_NLRI come first, so that a
  // receiver that finds a later attribute malformed has already found the
  // NLRI it must treat as withdrawn. The others follow in ascending type order.
  const mpAttribute = (type: number, body: () => void): void => {
    const at = w.beginAttribute(OPTIONAL, type);
    body();
    w.endAttribute(at);
  };
  const mpReach = attrs.mpReach;
  if (mpReach !== undefined) {
    mpAttribute(AttrType.MpReachNlri, () => {
      const hops = mpReach.nextHops.map(addressBytes);
      w.u16(mpReach.afi).u8(mpReach.safi).u8(hops.reduce((n, h) => n + h.length, 0));
      for (const h of hops) w.bytes(h);
      w.u8(0);
      for (const p of mpReach.nlri) writePrefix(w, p);
    });
  }
  const mpUnreach = attrs.mpUnreach;
  if (mpUnreach !== undefined) {
    mpAttribute(AttrType.MpUnreachNlri, () => {
      w.u16(mpUnreach.afi).u8(mpUnreach.safi);
      for (const p of mpUnreach.withdrawn) writePrefix(w, p);
    });
  }
  if (attrs.origin !== undefined) attribute(WELL_KNOWN, AttrType.Origin, () => w.u8(attrs.origin as number));
  if (attrs.asPath !== undefined) attribute(WELL_KNOWN, AttrType.AsPath, () => writeAsPath(w, attrs.asPath ?? [], options.fourOctetAs));
  if (attrs.nextHop !== undefined) {
    const nh = parseIpv4(attrs.nextHop);
    if (!nh) throw new Error(`NEXT_HOP must be IPv4: ${attrs.nextHop}`);
    attribute(WELL_KNOWN, AttrType.NextHop, () => w.bytes(nh));
  }
  if (attrs.med !== undefined) attribute(OPTIONAL, AttrType.MultiExitDisc, () => w.u32(attrs.med as number));
  if (attrs.localPref !== undefined) attribute(WELL_KNOWN, AttrType.LocalPref, () => w.u32(attrs.localPref as number));
  if (attrs.communities !== undefined && attrs.communities.length > 0) {
    attribute(OPTIONAL_TRANSITIVE, AttrType.Communities, () => {
      for (const c of attrs.communities ?? []) w.u16(c.asn).u16(c.value);
    });
  }
  // RFC 6793 §4.2.2: a 2-octet session carries the real path in AS4_PATH.
  if (needAs4) attribute(OPTIONAL_TRANSITIVE, AttrType.As4Path, () => writeAsPath(w, attrs.asPath ?? [], true));
  othersBefore(256);
}

/** The path attributes as bytes. */
export function encodeAttributes(attrs: PathAttributes, options: CodecOptions): Buffer {
  const w = new ByteWriter(128);
  writeAttributes(w, attrs, options);
  return w.result();
}

/** The UPDATE body (without the 19-byte header). */
export function encodeUpdateBody(msg: Omit<UpdateMessage, 'type'>, options: CodecOptions): Buffer {
  const w = new ByteWriter(256);
  w.u16(0);
  for (const p of msg.withdrawn) writePrefix(w, p);
  w.patch16(0, w.length - 2);
  const attrStart = w.length;
  w.u16(0);
  writeAttributes(w, msg.attributes, options);
  w.patch16(attrStart, w.length - attrStart - 2);
  for (const p of msg.nlri) writePrefix(w, p);
  return w.result();
}
