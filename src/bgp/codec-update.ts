/**
 * UPDATE messages (RFC 4271 §4.3) with MP-BGP (RFC 4760), 4-octet AS paths
 * (RFC 6793) and communities (RFC 1997). Decoding validates as RFC 4271 §6.3
 * says, and every error carries the NOTIFICATION to send.
 */
import type { AddressFamily, Community } from '../config/types.js';
import { addressBits, formatAddress, parseAddress, parseIpv4, type Prefix } from './address.js';
import { ByteReader, ByteWriter } from './bytes.js';
import { Afi, AS_TRANS, AsPathSegmentType, AttrFlag, AttrType, ErrorCode, UpdateSubcode } from './constants.js';
import { BgpDecodeError, notification, type Notification } from './notification.js';

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
}

export interface CodecOptions {
  /** Both sides sent the 4-octet AS capability: AS_PATH carries 4-byte ASNs. */
  readonly fourOctetAs: boolean;
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

const WELL_KNOWN = AttrFlag.Transitive;
const OPTIONAL = AttrFlag.Optional;
const OPTIONAL_TRANSITIVE = AttrFlag.Optional | AttrFlag.Transitive;

function addressBytes(text: string): Uint8Array {
  const p = parseAddress(text);
  if (!p) throw new Error(`not an IP address: ${text}`);
  return p.bytes;
}

/** Writes the path attributes into `w` in ascending type order. */
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
  const mpReach = attrs.mpReach;
  if (mpReach !== undefined) {
    attribute(OPTIONAL, AttrType.MpReachNlri, () => {
      const hops = mpReach.nextHops.map(addressBytes);
      w.u16(mpReach.afi).u8(mpReach.safi).u8(hops.reduce((n, h) => n + h.length, 0));
      for (const h of hops) w.bytes(h);
      w.u8(0);
      for (const p of mpReach.nlri) writePrefix(w, p);
    });
  }
  const mpUnreach = attrs.mpUnreach;
  if (mpUnreach !== undefined) {
    attribute(OPTIONAL, AttrType.MpUnreachNlri, () => {
      w.u16(mpUnreach.afi).u8(mpUnreach.safi);
      for (const p of mpUnreach.withdrawn) writePrefix(w, p);
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

// ---------------------------------------------------------------- decoding

const malformedAttrList = notification(ErrorCode.UpdateMessage, UpdateSubcode.MalformedAttributeList);
const invalidNetwork = notification(ErrorCode.UpdateMessage, UpdateSubcode.InvalidNetworkField);
const malformedAsPath = notification(ErrorCode.UpdateMessage, UpdateSubcode.MalformedAsPath);

function updateError(subcode: number, data?: Uint8Array): BgpDecodeError {
  return new BgpDecodeError(notification(ErrorCode.UpdateMessage, subcode, data ? Uint8Array.from(data) : undefined));
}

/** Reads prefixes of one family until the reader's end; `error` on any malformation. */
export function readPrefixes(r: ByteReader, family: AddressFamily, error: Notification): Prefix[] {
  const out: Prefix[] = [];
  const bits = addressBits(family);
  while (r.remaining > 0) {
    const length = r.u8(error);
    if (length > bits) throw new BgpDecodeError(error);
    const raw = r.bytes(Math.ceil(length / 8), error);
    const full = new Uint8Array(bits / 8);
    full.set(raw);
    // Bits past the prefix length are ignored on receipt (RFC 4271 §4.3), so clear them.
    if (length % 8 !== 0) full[raw.length - 1] = (full[raw.length - 1] ?? 0) & (0xff << (8 - (length % 8)));
    out.push({ family, address: formatAddress(family, full), length });
  }
  return out;
}

interface AttrSpec {
  readonly flags: number;
  /** Exact value lengths allowed, when fixed. */
  readonly lengths?: readonly number[];
}

/** Recognised attributes with the Optional/Transitive bits they must carry. */
function specFor(type: number, fourOctet: boolean): AttrSpec | undefined {
  switch (type) {
    case AttrType.Origin:
      return { flags: WELL_KNOWN, lengths: [1] };
    case AttrType.AsPath:
      return { flags: WELL_KNOWN };
    case AttrType.NextHop:
      return { flags: WELL_KNOWN, lengths: [4] };
    case AttrType.MultiExitDisc:
      return { flags: OPTIONAL, lengths: [4] };
    case AttrType.LocalPref:
      return { flags: WELL_KNOWN, lengths: [4] };
    case AttrType.AtomicAggregate:
      return { flags: WELL_KNOWN, lengths: [0] };
    case AttrType.Aggregator:
      return { flags: OPTIONAL_TRANSITIVE, lengths: [fourOctet ? 8 : 6] };
    case AttrType.Communities:
      return { flags: OPTIONAL_TRANSITIVE };
    case AttrType.MpReachNlri:
    case AttrType.MpUnreachNlri:
      return { flags: OPTIONAL };
    case AttrType.As4Path:
      return { flags: OPTIONAL_TRANSITIVE };
    case AttrType.As4Aggregator:
      return { flags: OPTIONAL_TRANSITIVE, lengths: [8] };
    default:
      return undefined;
  }
}

function decodeAsPath(value: Uint8Array, fourOctet: boolean): AsPathSegment[] {
  const r = new ByteReader(value);
  const size = fourOctet ? 4 : 2;
  const segments: AsPathSegment[] = [];
  while (r.remaining > 0) {
    const type = r.u8(malformedAsPath);
    const count = r.u8(malformedAsPath);
    if (type < AsPathSegmentType.AsSet || type > AsPathSegmentType.AsConfedSet || count === 0) {
      throw new BgpDecodeError(malformedAsPath);
    }
    r.need(count * size, malformedAsPath);
    const asns: number[] = [];
    for (let i = 0; i < count; i++) asns.push(size === 4 ? r.u32(malformedAsPath) : r.u16(malformedAsPath));
    segments.push({ type, asns });
  }
  return segments;
}

function isBadNextHop(bytes: Uint8Array): boolean {
  const first = bytes[0] ?? 0;
  const all = (v: number): boolean => bytes.every((b) => b === v);
  // 0.0.0.0, 255.255.255.255 and class D/E addresses can never be a next hop.
  return all(0) || all(255) || first >= 224;
}

/** RFC 4760 §7: a malformed MP_(UN)REACH_NLRI is an Optional Attribute Error carrying the attribute. */
function mpError(whole: Uint8Array): Notification {
  return notification(ErrorCode.UpdateMessage, UpdateSubcode.OptionalAttributeError, Uint8Array.from(whole));
}

function decodeMpReach(value: Uint8Array, whole: Uint8Array): MpReachNlri | undefined {
  const err = mpError(whole);
  const r = new ByteReader(value);
  const afi = r.u16(err);
  const safi = r.u8(err);
  const nhLen = r.u8(err);
  const nh = r.bytes(nhLen, err);
  r.u8(err); // reserved
  const family = afiFamily(afi);
  if (family === undefined) return undefined; // a family we never asked for: ignore
  const size = family === 4 ? 4 : 16;
  if (nhLen === 0 || nhLen % size !== 0 || nhLen > 2 * size) throw new BgpDecodeError(err);
  const nextHops: string[] = [];
  for (let i = 0; i < nhLen; i += size) nextHops.push(formatAddress(family, nh.subarray(i, i + size)));
  return { afi, safi, nextHops, nlri: readPrefixes(r, family, err) };
}

function decodeMpUnreach(value: Uint8Array, whole: Uint8Array): MpUnreachNlri | undefined {
  const err = mpError(whole);
  const r = new ByteReader(value);
  const afi = r.u16(err);
  const safi = r.u8(err);
  const family = afiFamily(afi);
  if (family === undefined) return undefined;
  return { afi, safi, withdrawn: readPrefixes(r, family, err) };
}

/** Decodes and validates path attributes (RFC 4271 §6.3). */
export function decodeAttributes(bytes: Uint8Array, options: CodecOptions): PathAttributes {
  const r = new ByteReader(bytes);
  const seen = new Set<number>();
  const out: {
    origin?: number;
    asPath?: AsPathSegment[];
    nextHop?: string;
    med?: number;
    localPref?: number;
    communities?: Community[];
    mpReach?: MpReachNlri;
    mpUnreach?: MpUnreachNlri;
    other?: RawAttribute[];
  } = {};
  while (r.remaining > 0) {
    const start = r.off;
    const flags = r.u8(malformedAttrList);
    const type = r.u8(malformedAttrList);
    const length = flags & AttrFlag.ExtendedLength ? r.u16(malformedAttrList) : r.u8(malformedAttrList);
    const value = r.bytes(length, malformedAttrList);
    const whole = r.buf.subarray(start, r.off);
    if (seen.has(type)) throw new BgpDecodeError(malformedAttrList);
    seen.add(type);
    const spec = specFor(type, options.fourOctetAs);
    if (!spec) {
      if (!(flags & AttrFlag.Optional)) throw updateError(UpdateSubcode.UnrecognizedWellKnownAttribute, whole);
      out.other = [...(out.other ?? []), { flags, type, value: Uint8Array.from(value) }];
      continue;
    }
    const mask = AttrFlag.Optional | AttrFlag.Transitive;
    // Partial is allowed only on optional transitive attributes.
    if ((flags & mask) !== spec.flags || (flags & AttrFlag.Partial && spec.flags !== OPTIONAL_TRANSITIVE)) {
      throw updateError(UpdateSubcode.AttributeFlagsError, whole);
    }
    if (spec.lengths && !spec.lengths.includes(length)) throw updateError(UpdateSubcode.AttributeLengthError, whole);
    switch (type) {
      case AttrType.Origin: {
        const origin = value[0] ?? 0;
        if (origin > 2) throw updateError(UpdateSubcode.InvalidOriginAttribute, whole);
        out.origin = origin;
        break;
      }
      case AttrType.AsPath:
        out.asPath = decodeAsPath(value, options.fourOctetAs);
        break;
      case AttrType.NextHop:
        if (isBadNextHop(value)) throw updateError(UpdateSubcode.InvalidNextHopAttribute, whole);
        out.nextHop = formatAddress(4, value);
        break;
      case AttrType.MultiExitDisc:
        out.med = Buffer.from(value).readUInt32BE(0);
        break;
      case AttrType.LocalPref:
        out.localPref = Buffer.from(value).readUInt32BE(0);
        break;
      case AttrType.Communities: {
        if (length % 4 !== 0) throw updateError(UpdateSubcode.AttributeLengthError, whole);
        const b = Buffer.from(value);
        const cs: Community[] = [];
        for (let i = 0; i < length; i += 4) cs.push({ asn: b.readUInt16BE(i), value: b.readUInt16BE(i + 2) });
        out.communities = cs;
        break;
      }
      case AttrType.MpReachNlri: {
        const mp = decodeMpReach(value, whole);
        if (mp) out.mpReach = mp;
        break;
      }
      case AttrType.MpUnreachNlri: {
        const mp = decodeMpUnreach(value, whole);
        if (mp) out.mpUnreach = mp;
        break;
      }
      case AttrType.As4Path:
        // RFC 6793 §6: a malformed AS4_PATH is discarded, not a session error; keep it raw.
        out.other = [...(out.other ?? []), { flags, type, value: Uint8Array.from(value) }];
        break;
      default:
        out.other = [...(out.other ?? []), { flags, type, value: Uint8Array.from(value) }];
    }
  }
  return out;
}

/** Decodes an UPDATE body (after the header). */
export function decodeUpdateBody(body: Uint8Array, options: CodecOptions): UpdateMessage {
  const r = new ByteReader(body);
  const withdrawnLength = r.u16(malformedAttrList);
  r.need(withdrawnLength, malformedAttrList);
  const withdrawn = readPrefixes(new ByteReader(body, r.off, r.off + withdrawnLength), 4, invalidNetwork);
  r.off += withdrawnLength;
  const attrLength = r.u16(malformedAttrList);
  r.need(attrLength, malformedAttrList);
  const attributes = decodeAttributes(body.subarray(r.off, r.off + attrLength), options);
  r.off += attrLength;
  const nlri = readPrefixes(new ByteReader(body, r.off, r.end), 4, invalidNetwork);
  const missing = (type: number): never => {
    throw updateError(UpdateSubcode.MissingWellKnownAttribute, Uint8Array.of(type));
  };
  if (nlri.length > 0 || (attributes.mpReach && attributes.mpReach.nlri.length > 0)) {
    if (attributes.origin === undefined) missing(AttrType.Origin);
    if (attributes.asPath === undefined) missing(AttrType.AsPath);
    if (nlri.length > 0 && attributes.nextHop === undefined) missing(AttrType.NextHop);
  }
  return { type: 'update', withdrawn, attributes, nlri };
}
