/**
 * Received UPDATE messages (RFC 4271 §4.3, §6.3) with the revised error
 * handling of RFC 7606, RFC 4760 §7 and RFC 6793 §6. Pure.
 *
 * An error found here has one of three outcomes:
 * - session reset: a BgpDecodeError carrying the NOTIFICATION, only where
 *   RFC 7606 still asks for one: the routes cannot be located or read
 *   reliably (lengths that overrun the message §3.b, a repeated or malformed
 *   MP_REACH_NLRI/MP_UNREACH_NLRI §3.g, §3.j, §5.3, §7.11, a malformed NLRI
 *   or Withdrawn Routes field §5.3), an UPDATE with no reachable NLRI whose
 *   errors are not all attribute-discard (§5.2), and an unrecognized
 *   well-known attribute (RFC 4271 §6.3, which RFC 7606 leaves alone);
 * - treat-as-withdraw or attribute-discard: reported in the `errors` of the
 *   decoded UPDATE (see update-errors.ts), and the session goes on.
 */
import type { AddressFamily, Community } from '../config/types.js';
import { addressBits, formatAddress, type Prefix } from './address.js';
import { ByteReader } from './bytes.js';
import { AsPathSegmentType, AttrFlag, AttrType, ErrorCode, Origin, Safi, UpdateSubcode } from './constants.js';
import {
  afiFamily,
  OPTIONAL,
  OPTIONAL_TRANSITIVE,
  WELL_KNOWN,
  type AsPathSegment,
  type CodecOptions,
  type MpReachNlri,
  type MpUnreachNlri,
  type PathAttributes,
  type RawAttribute,
  type UpdateMessage,
} from './codec-update.js';
import { BgpDecodeError, notification, type Notification } from './notification.js';
import { attributeName, type UpdateError, type UpdateErrorAction } from './update-errors.js';

const malformedAttrList = notification(ErrorCode.UpdateMessage, UpdateSubcode.MalformedAttributeList);
const invalidNetwork = notification(ErrorCode.UpdateMessage, UpdateSubcode.InvalidNetworkField);
const EMPTY = new Uint8Array(0);
const TREAT_AS_WITHDRAW = 'treat-as-withdraw';
const DISCARD = 'attribute-discard';

function updateNotification(subcode: number, data: Uint8Array): Notification {
  return notification(ErrorCode.UpdateMessage, subcode, Uint8Array.from(data));
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

// ------------------------------------------------------------ per attribute

type Action = UpdateErrorAction | 'session-reset';

/** A malformed attribute value. */
interface Problem {
  readonly reason: string;
  /** RFC 4271's subcode for it; the NOTIFICATION data is the whole attribute unless `data` is given. */
  readonly subcode: number;
  readonly data?: Uint8Array;
  /** When another rule than the attribute's own applies (RFC 6793 §4.1, RFC 4760 §6). */
  readonly action?: UpdateErrorAction;
  readonly section?: string;
}

/** What the attributes decoded so far add up to. */
interface Decoding {
  readonly options: CodecOptions;
  readonly out: {
    origin?: number;
    asPath?: AsPathSegment[];
    nextHop?: string;
    med?: number;
    localPref?: number;
    communities?: Community[];
    mpReach?: MpReachNlri;
    mpUnreach?: MpUnreachNlri;
    other?: RawAttribute[];
  };
  /** An MP_REACH_NLRI carried NLRI, whether or not of a family we read (RFC 7606 §5.2). */
  mpReachable: boolean;
}

/** One attribute as received. */
interface Received {
  readonly flags: number;
  readonly type: number;
  readonly value: Uint8Array;
  /** Flags, type, length and value: the data of most NOTIFICATIONs about it. */
  readonly whole: Uint8Array;
}

interface Rule {
  /** The Optional and Transitive bits it carries. */
  readonly flags: number;
  /** What a malformed one costs, and the section that says so. */
  readonly action: Action;
  readonly section: string;
  /** Discarded when it comes from an external peer, as this section says. */
  readonly internalOnly?: string;
  /** Checks the value and stores it; a Problem when it is malformed. Session resets throw. */
  readonly decode: (d: Decoding, a: Received) => Problem | undefined;
}

function keepRaw(d: Decoding, a: Received): void {
  (d.out.other ??= []).push({ flags: a.flags, type: a.type, value: Uint8Array.from(a.value) });
}

function lengthProblem(value: Uint8Array, expected: string): Problem {
  return { reason: `length ${value.length}, expected ${expected}`, subcode: UpdateSubcode.AttributeLengthError };
}

/** For the list-valued attributes: a length that is a non-zero multiple of `unit`. */
function listLength(value: Uint8Array, unit: number): Problem | undefined {
  return value.length === 0 || value.length % unit !== 0 ? lengthProblem(value, `a non-zero multiple of ${unit}`) : undefined;
}

/** An attribute with nothing to check but its length, kept as received. */
function rawRule(flags: number, action: Action, section: string, check: (value: Uint8Array, options: CodecOptions) => Problem | undefined, internalOnly?: string): Rule {
  return {
    flags,
    action,
    section,
    ...(internalOnly ? { internalOnly } : {}),
    decode(d, a) {
      const problem = check(a.value, d.options);
      if (!problem) keepRaw(d, a);
      return problem;
    },
  };
}

/** A 4-octet number (MULTI_EXIT_DISC, LOCAL_PREF), treat-as-withdraw when it is not 4 octets. */
function u32Rule(flags: number, section: string, store: (d: Decoding, value: number) => void, internalOnly?: string): Rule {
  return {
    flags,
    action: TREAT_AS_WITHDRAW,
    section,
    ...(internalOnly ? { internalOnly } : {}),
    decode(d, a) {
      if (a.value.length !== 4) return lengthProblem(a.value, '4');
      store(d, Buffer.from(a.value).readUInt32BE(0));
      return undefined;
    },
  };
}

/** Segments of an AS_PATH or AS4_PATH with `size`-octet ASNs, or why it is malformed (RFC 7606 §7.2). */
function parseAsPath(value: Uint8Array, size: 2 | 4): AsPathSegment[] | string {
  const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const segments: AsPathSegment[] = [];
  let off = 0;
  while (off < b.length) {
    if (b.length - off < 2) return 'one octet left after the last segment';
    const type = b.readUInt8(off);
    const count = b.readUInt8(off + 1);
    off += 2;
    if (type < AsPathSegmentType.AsSet || type > AsPathSegmentType.AsConfedSet) return `unrecognized segment type ${type}`;
    if (count === 0) return 'a segment of length 0';
    if (off + count * size > b.length) return `a segment of ${count} ASNs runs past the attribute`;
    const asns: number[] = [];
    for (let i = 0; i < count; i++, off += size) asns.push(size === 4 ? b.readUInt32BE(off) : b.readUInt16BE(off));
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

/** The AFI/SAFI is one the session negotiated (RFC 4760 §6), so its NLRI are ours to read. */
function negotiatedFamily(afi: number, safi: number, options: CodecOptions): AddressFamily | undefined {
  const family = afiFamily(afi);
  if (family === undefined || safi !== Safi.Unicast) return undefined;
  return (options.families ?? [4, 6]).includes(family) ? family : undefined;
}

/**
 * RFC 4760 §6: both sides advertise an AFI/SAFI before routes of it are
 * exchanged. Routes of one that was not are ignored, which is RFC 7606's
 * AFI/SAFI disable for a family that was never enabled.
 */
function notNegotiated(afi: number, safi: number): Problem {
  return { reason: `AFI/SAFI ${afi}/${safi} was not negotiated`, subcode: UpdateSubcode.OptionalAttributeError, action: 'attribute-discard', section: 'RFC 4760 §6' };
}

/** RFC 4760 §7: a malformed MP_(UN)REACH_NLRI is an Optional Attribute Error carrying the attribute. */
function mpError(a: Received): BgpDecodeError {
  return new BgpDecodeError(updateNotification(UpdateSubcode.OptionalAttributeError, a.whole));
}

function decodeMpReach(d: Decoding, a: Received): Problem | undefined {
  const v = a.value;
  // RFC 7606 §5.3: shorter than AFI, SAFI, next hop length and reserved octet.
  if (v.length < 5) throw mpError(a);
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  const afi = b.readUInt16BE(0);
  const safi = b.readUInt8(2);
  const nhLen = b.readUInt8(3);
  const family = negotiatedFamily(afi, safi, d.options);
  if (family === undefined) {
    if (v.length > 5 + nhLen) d.mpReachable = true;
    return notNegotiated(afi, safi);
  }
  // RFC 7606 §7.11: a next hop length other than expected hides where the NLRI start.
  const size = family === 4 ? 4 : 16;
  if (5 + nhLen > v.length || !(nhLen === size || (family === 6 && nhLen === 32))) throw mpError(a);
  const nextHops: string[] = [];
  for (let i = 0; i < nhLen; i += size) nextHops.push(formatAddress(family, v.subarray(4 + i, 4 + i + size)));
  // RFC 7606 §5.3: NLRI that cannot be parsed.
  const nlri = readPrefixes(new ByteReader(v, 5 + nhLen), family, updateNotification(UpdateSubcode.OptionalAttributeError, a.whole));
  if (nlri.length > 0) d.mpReachable = true;
  d.out.mpReach = { afi, safi, nextHops, nlri };
  return undefined;
}

function decodeMpUnreach(d: Decoding, a: Received): Problem | undefined {
  const v = a.value;
  // RFC 7606 §5.3: shorter than AFI and SAFI.
  if (v.length < 3) throw mpError(a);
  const afi = ((v[0] ?? 0) << 8) | (v[1] ?? 0);
  const safi = v[2] ?? 0;
  const family = negotiatedFamily(afi, safi, d.options);
  if (family === undefined) return notNegotiated(afi, safi);
  const withdrawn = readPrefixes(new ByteReader(v, 3), family, updateNotification(UpdateSubcode.OptionalAttributeError, a.whole));
  d.out.mpUnreach = { afi, safi, withdrawn };
  return undefined;
}

/** RFC 6793 §4.1: AS4_PATH and AS4_AGGREGATOR never pass between two 4-octet AS speakers. */
function fromFourOctetSpeaker(d: Decoding): Problem | undefined {
  return d.options.fourOctetAs
    ? { reason: 'received from a 4-octet AS speaker', subcode: UpdateSubcode.OptionalAttributeError, section: 'RFC 6793 §4.1' }
    : undefined;
}

function decodeAs4Path(d: Decoding, a: Received): Problem | undefined {
  const early = fromFourOctetSpeaker(d);
  if (early) return early;
  // RFC 6793 §6: too short for one ASN, an odd length, or a malformed segment.
  if (a.value.length < 6 || a.value.length % 2 !== 0) return lengthProblem(a.value, 'an even number of 6 or more');
  const segments = parseAsPath(a.value, 4);
  if (typeof segments === 'string') return { reason: segments, subcode: UpdateSubcode.OptionalAttributeError };
  const confed = (s: AsPathSegment): boolean => s.type === AsPathSegmentType.AsConfedSequence || s.type === AsPathSegmentType.AsConfedSet;
  if (!segments.some(confed)) {
    keepRaw(d, a);
    return undefined;
  }
  // RFC 6793 §6: confederation segments are dropped and the rest kept.
  const kept = segments.filter((s) => !confed(s));
  if (kept.length > 0) {
    const value = Buffer.alloc(kept.reduce((n, s) => n + 2 + 4 * s.asns.length, 0));
    let off = 0;
    for (const s of kept) {
      off = value.writeUInt8(s.type, off);
      off = value.writeUInt8(s.asns.length, off);
      for (const asn of s.asns) off = value.writeUInt32BE(asn, off);
    }
    keepRaw(d, { ...a, value });
  }
  return { reason: 'its AS_CONFED_SEQUENCE and AS_CONFED_SET segments were discarded', subcode: UpdateSubcode.OptionalAttributeError };
}

/**
 * The attributes we recognize, with what RFC 7606 §7 (and RFC 6793 §6,
 * RFC 8092 §6) make of a malformed one. Anything else optional is kept as
 * received; anything else well-known resets the session.
 */
const RULES: Readonly<Record<number, Rule>> = {
  [AttrType.Origin]: {
    flags: WELL_KNOWN,
    action: TREAT_AS_WITHDRAW,
    section: 'RFC 7606 §7.1',
    decode(d, a) {
      if (a.value.length !== 1) return lengthProblem(a.value, '1');
      const origin = a.value[0] ?? 0;
      if (origin > Origin.Incomplete) return { reason: `undefined value ${origin}`, subcode: UpdateSubcode.InvalidOriginAttribute };
      d.out.origin = origin;
      return undefined;
    },
  },
  [AttrType.AsPath]: {
    flags: WELL_KNOWN,
    action: TREAT_AS_WITHDRAW,
    section: 'RFC 7606 §7.2',
    decode(d, a) {
      const segments = parseAsPath(a.value, d.options.fourOctetAs ? 4 : 2);
      if (typeof segments === 'string') return { reason: segments, subcode: UpdateSubcode.MalformedAsPath, data: EMPTY };
      d.out.asPath = segments;
      return undefined;
    },
  },
  [AttrType.NextHop]: {
    flags: WELL_KNOWN,
    action: TREAT_AS_WITHDRAW,
    // §3.e covers the invalid address, which RFC 4271 §6.3 made a session reset.
    section: 'RFC 7606 §7.3, §3.e',
    decode(d, a) {
      if (a.value.length !== 4) return lengthProblem(a.value, '4');
      const address = formatAddress(4, a.value);
      if (isBadNextHop(a.value)) return { reason: `${address} is not a host address`, subcode: UpdateSubcode.InvalidNextHopAttribute };
      d.out.nextHop = address;
      return undefined;
    },
  },
  [AttrType.MultiExitDisc]: u32Rule(OPTIONAL, 'RFC 7606 §7.4', (d, med) => (d.out.med = med)),
  [AttrType.LocalPref]: u32Rule(WELL_KNOWN, 'RFC 7606 §7.5', (d, localPref) => (d.out.localPref = localPref), 'RFC 7606 §7.5'),
  [AttrType.AtomicAggregate]: rawRule(WELL_KNOWN, DISCARD, 'RFC 7606 §7.6', (v) => (v.length === 0 ? undefined : lengthProblem(v, '0'))),
  [AttrType.Aggregator]: rawRule(OPTIONAL_TRANSITIVE, DISCARD, 'RFC 7606 §7.7', (v, o) => {
    const expected = o.fourOctetAs ? 8 : 6;
    return v.length === expected ? undefined : lengthProblem(v, String(expected));
  }),
  [AttrType.Communities]: {
    flags: OPTIONAL_TRANSITIVE,
    action: TREAT_AS_WITHDRAW,
    section: 'RFC 7606 §7.8',
    decode(d, a) {
      const problem = listLength(a.value, 4);
      if (problem) return problem;
      const b = Buffer.from(a.value);
      const cs: Community[] = [];
      for (let i = 0; i < b.length; i += 4) cs.push({ asn: b.readUInt16BE(i), value: b.readUInt16BE(i + 2) });
      d.out.communities = cs;
      return undefined;
    },
  },
  [AttrType.OriginatorId]: rawRule(OPTIONAL, TREAT_AS_WITHDRAW, 'RFC 7606 §7.9', (v) => (v.length === 4 ? undefined : lengthProblem(v, '4')), 'RFC 7606 §7.9'),
  [AttrType.ClusterList]: rawRule(OPTIONAL, TREAT_AS_WITHDRAW, 'RFC 7606 §7.10', (v) => listLength(v, 4), 'RFC 7606 §7.10'),
  // §5.3: MP attributes whose flags disagree with RFC 4760 are incorrect, like their NLRI.
  [AttrType.MpReachNlri]: { flags: OPTIONAL, action: 'session-reset', section: 'RFC 7606 §5.3', decode: decodeMpReach },
  [AttrType.MpUnreachNlri]: { flags: OPTIONAL, action: 'session-reset', section: 'RFC 7606 §5.3', decode: decodeMpUnreach },
  [AttrType.ExtendedCommunities]: rawRule(OPTIONAL_TRANSITIVE, TREAT_AS_WITHDRAW, 'RFC 7606 §7.14', (v) => listLength(v, 8)),
  [AttrType.As4Path]: { flags: OPTIONAL_TRANSITIVE, action: DISCARD, section: 'RFC 6793 §6', decode: decodeAs4Path },
  [AttrType.As4Aggregator]: {
    flags: OPTIONAL_TRANSITIVE,
    action: DISCARD,
    section: 'RFC 6793 §6',
    decode(d, a) {
      const problem = fromFourOctetSpeaker(d) ?? (a.value.length === 8 ? undefined : lengthProblem(a.value, '8'));
      if (!problem) keepRaw(d, a);
      return problem;
    },
  },
  [AttrType.Ipv6ExtendedCommunities]: rawRule(OPTIONAL_TRANSITIVE, TREAT_AS_WITHDRAW, 'RFC 7606 §7.15', (v) => listLength(v, 20)),
  [AttrType.LargeCommunities]: rawRule(OPTIONAL_TRANSITIVE, TREAT_AS_WITHDRAW, 'RFC 8092 §6', (v) => listLength(v, 12)),
};

/** Optional and Transitive as the type wants them, and Partial only where allowed (RFC 4271 §4.3). */
function flagsConflict(received: number, wanted: number): boolean {
  const partial = (received & AttrFlag.Partial) !== 0 && wanted !== OPTIONAL_TRANSITIVE;
  return (received & (AttrFlag.Optional | AttrFlag.Transitive)) !== wanted || partial;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

// ------------------------------------------------------------ the attribute list

export interface DecodedAttributes {
  readonly attributes: PathAttributes;
  readonly errors: readonly UpdateError[];
  /** Types that were there, malformed or not: not also missing (RFC 7606 §3.d). */
  readonly present: ReadonlySet<number>;
  /** The list was cut short (RFC 7606 §4): what followed is unknown, so nothing is known missing. */
  readonly truncated: boolean;
  /** An MP_REACH_NLRI carried NLRI, read or not. */
  readonly mpReachable: boolean;
  /** Something other than MP_UNREACH_NLRI was there (RFC 7606 §5.2). */
  readonly beyondMpUnreach: boolean;
}

function isMp(type: number): boolean {
  return type === AttrType.MpReachNlri || type === AttrType.MpUnreachNlri;
}

/** Decodes and judges the path attributes field. */
export function decodeAttributes(bytes: Uint8Array, options: CodecOptions): DecodedAttributes {
  const r = new ByteReader(bytes);
  const d: Decoding = { options, out: {}, mpReachable: false };
  const present = new Set<number>();
  const errors: UpdateError[] = [];
  let beyondMpUnreach = false;
  let truncated = false;
  const report = (type: number, action: UpdateErrorAction, reason: string, n: Notification | undefined, name = attributeName(type)): void => {
    errors.push({ attribute: type, action, reason: `${name}: ${reason}`, ...(n ? { notification: n } : {}) });
  };
  while (r.remaining > 0) {
    const start = r.off;
    const flags = r.buf.readUInt8(start);
    const type = r.remaining >= 2 ? r.buf.readUInt8(start + 1) : 0;
    const headerLength = flags & AttrFlag.ExtendedLength ? 4 : 3;
    const length = r.remaining < headerLength ? -1 : headerLength === 4 ? r.buf.readUInt16BE(start + 2) : r.buf.readUInt8(start + 2);
    if (length < 0 || start + headerLength + length > r.end) {
      // RFC 7606 §4: an attribute header cut short, or a value running past the
      // attributes. The NLRI are still found from the Total Path Attribute
      // Length, but not those of an MP attribute (§3.j).
      if (isMp(type)) throw new BgpDecodeError(malformedAttrList);
      beyondMpUnreach = true;
      truncated = true;
      const what = length < 0 ? `${r.remaining} octet(s) left, too few for an attribute header` : `length ${length} runs past the path attributes`;
      report(type, TREAT_AS_WITHDRAW, `${what} (RFC 7606 §4)`, malformedAttrList, r.remaining < 2 ? 'path attributes' : attributeName(type));
      break;
    }
    r.off = start + headerLength + length;
    const a: Received = { flags, type, value: r.buf.subarray(start + headerLength, r.off), whole: r.buf.subarray(start, r.off) };
    if (type !== AttrType.MpUnreachNlri) beyondMpUnreach = true;
    if (present.has(type)) {
      // RFC 7606 §3.g: a repeated MP attribute is a session reset, any other repeat is dropped.
      if (isMp(type)) throw new BgpDecodeError(malformedAttrList);
      report(type, DISCARD, 'repeated; the first is kept (RFC 7606 §3.g)', malformedAttrList);
      continue;
    }
    present.add(type);
    const rule = RULES[type];
    if (!rule) {
      // RFC 4271 §6.3, unchanged by RFC 7606.
      if (!(flags & AttrFlag.Optional)) throw new BgpDecodeError(updateNotification(UpdateSubcode.UnrecognizedWellKnownAttribute, a.whole));
      keepRaw(d, a);
      continue;
    }
    if (rule.internalOnly && options.externalPeer) {
      report(type, DISCARD, `from an external peer (${rule.internalOnly})`, undefined);
      continue;
    }
    if (flagsConflict(flags, rule.flags)) {
      const n = updateNotification(UpdateSubcode.AttributeFlagsError, a.whole);
      if (rule.action === 'session-reset') throw new BgpDecodeError(n);
      // §3.c: treat-as-withdraw, unless the attribute's own rules say otherwise (§3.f, RFC 6793 §6).
      const section = rule.action === TREAT_AS_WITHDRAW ? 'RFC 7606 §3.c' : rule.section;
      report(type, rule.action, `flags 0x${hex2(flags)} conflict with the type (${section})`, n);
      continue;
    }
    const problem = rule.decode(d, a);
    if (problem) {
      const action = problem.action ?? rule.action;
      if (action === 'session-reset') throw new BgpDecodeError(updateNotification(problem.subcode, problem.data ?? a.whole));
      report(type, action, `${problem.reason} (${problem.section ?? rule.section})`, updateNotification(problem.subcode, problem.data ?? a.whole));
    }
  }
  return { attributes: d.out, errors, present, truncated, mpReachable: d.mpReachable, beyondMpUnreach };
}

// ------------------------------------------------------------ the message

/** Decodes an UPDATE body (after the header). */
export function decodeUpdateBody(body: Uint8Array, options: CodecOptions): UpdateMessage {
  const r = new ByteReader(body);
  // RFC 7606 §3.b: lengths that overrun the message stay a session reset.
  const withdrawnLength = r.u16(malformedAttrList);
  r.need(withdrawnLength, malformedAttrList);
  // §3.i, §5.3: a Withdrawn Routes or NLRI field that cannot be parsed is a session reset.
  const withdrawn = readPrefixes(new ByteReader(body, r.off, r.off + withdrawnLength), 4, invalidNetwork);
  r.off += withdrawnLength;
  const attrLength = r.u16(malformedAttrList);
  r.need(attrLength, malformedAttrList);
  const decoded = decodeAttributes(body.subarray(r.off, r.off + attrLength), options);
  r.off += attrLength;
  const nlri = readPrefixes(new ByteReader(body, r.off, r.end), 4, invalidNetwork);
  const errors = [...decoded.errors];
  // §3.d: a missing well-known mandatory attribute is treat-as-withdraw; NEXT_HOP
  // is needed only by the classic NLRI field (RFC 4760 §3).
  const missing = (type: number): void => {
    if (decoded.present.has(type)) return;
    const n = notification(ErrorCode.UpdateMessage, UpdateSubcode.MissingWellKnownAttribute, Uint8Array.of(type));
    errors.push({ attribute: type, action: TREAT_AS_WITHDRAW, reason: `${attributeName(type)}: missing (RFC 7606 §3.d)`, notification: n });
  };
  if (!decoded.truncated && (nlri.length > 0 || (decoded.attributes.mpReach?.nlri.length ?? 0) > 0)) {
    missing(AttrType.Origin);
    missing(AttrType.AsPath);
    if (nlri.length > 0) missing(AttrType.NextHop);
  }
  // §5.2: attributes but no reachable NLRI: unless every error is an
  // attribute-discard, we cannot trust that the NLRI were found at all.
  if (nlri.length === 0 && !decoded.mpReachable && decoded.beyondMpUnreach) {
    const withdraw = errors.find((e) => e.action === TREAT_AS_WITHDRAW);
    if (withdraw) throw new BgpDecodeError(withdraw.notification ?? malformedAttrList);
  }
  const message: UpdateMessage = { type: 'update', withdrawn, attributes: decoded.attributes, nlri };
  return errors.length > 0 ? { ...message, errors } : message;
}
