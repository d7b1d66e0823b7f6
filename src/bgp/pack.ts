/**
 * Turns route changes into UPDATE messages of at most 4096 bytes (pure).
 * Per family: withdrawals first, then one run of messages per distinct set of
 * path attributes, each packing as many prefixes as fit. IPv4 uses the
 * classic fields and NEXT_HOP; IPv6 uses MP_REACH_NLRI / MP_UNREACH_NLRI.
 */
import type { AddressFamily, Community } from '../config/types.js';
import { formatPrefix, type Prefix } from './address.js';
import { encodeMessage, encodeUpdateWithAttributes, type CodecOptions } from './codec.js';
import { encodeAttributes, familyAfi, prefixSize, type PathAttributes } from './codec-update.js';
import { AsPathSegmentType, HEADER_LENGTH, MAX_MESSAGE_LENGTH, Origin, Safi } from './constants.js';

/** One announced VIP with what we say about it. */
export interface Route {
  readonly prefix: Prefix;
  /** IPv4 for IPv4 prefixes, IPv6 for IPv6 ones. */
  readonly nextHop: string;
  /** One AS_SEQUENCE; our ASN first, as `bgp-as-path` spells it. */
  readonly asPath: readonly number[];
  readonly med: number;
  readonly communities: readonly Community[];
}

export function prefixKey(p: Prefix): string {
  return formatPrefix(p);
}

/** Equal for routes that can share one UPDATE's attributes. */
export function attributesKey(r: Route): string {
  return `${r.nextHop}|${r.asPath.join(' ')}|${r.med}|${r.communities.map((c) => `${c.asn}:${c.value}`).join(' ')}`;
}

function pathAttributes(r: Route): PathAttributes {
  const base = {
    origin: Origin.Igp,
    asPath: r.asPath.length > 0 ? [{ type: AsPathSegmentType.AsSequence, asns: r.asPath }] : [],
    med: r.med,
    communities: r.communities,
  };
  return r.prefix.family === 4 ? { ...base, nextHop: r.nextHop } : base;
}

/** Room left for NLRI once the header, the two length fields and the attributes are in. */
function room(attrBytes: number): number {
  return MAX_MESSAGE_LENGTH - HEADER_LENGTH - 4 - attrBytes;
}

/** Splits prefixes into runs whose encoded size fits `budget` bytes. */
function chunks(prefixes: readonly Prefix[], budget: number): Prefix[][] {
  const out: Prefix[][] = [];
  let current: Prefix[] = [];
  let size = 0;
  for (const p of prefixes) {
    const n = prefixSize(p);
    if (current.length > 0 && size + n > budget) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(p);
    size += n;
  }
  if (current.length > 0) out.push(current);
  return out;
}

export interface Changes {
  readonly withdraw: readonly Prefix[];
  readonly announce: readonly Route[];
}

/** Attribute header of MP_(UN)REACH with the extended length, plus AFI/SAFI. */
const MP_UNREACH_OVERHEAD = 4 + 3;
/** A 1-byte attribute length may become 2 once NLRI is added. */
const LENGTH_SLACK = 1;

/** The UPDATE messages, in order, for one family's changes. */
export function packUpdates(family: AddressFamily, changes: Changes, options: CodecOptions): Buffer[] {
  const out: Buffer[] = [];
  const afi = familyAfi(family);
  if (family === 4) {
    const none = new Uint8Array(0);
    for (const withdrawn of chunks(changes.withdraw, room(0))) out.push(encodeUpdateWithAttributes(withdrawn, none, []));
  } else {
    for (const withdrawn of chunks(changes.withdraw, room(MP_UNREACH_OVERHEAD))) {
      out.push(encodeMessage({ type: 'update', withdrawn: [], attributes: { mpUnreach: { afi, safi: Safi.Unicast, withdrawn } }, nlri: [] }, options));
    }
  }
  const groups = new Map<string, Route[]>();
  for (const r of changes.announce) {
    const key = attributesKey(r);
    const group = groups.get(key);
    if (group) group.push(r);
    else groups.set(key, [r]);
  }
  for (const group of groups.values()) {
    const first = group[0] as Route;
    const attrs = pathAttributes(first);
    const prefixes = group.map((r) => r.prefix);
    if (family === 4) {
      const attrBytes = encodeAttributes(attrs, options);
      for (const nlri of chunks(prefixes, room(attrBytes.length))) out.push(encodeUpdateWithAttributes([], attrBytes, nlri));
    } else {
      const mpEmpty = { afi, safi: Safi.Unicast, nextHops: [first.nextHop], nlri: [] };
      const attrBytes = encodeAttributes({ ...attrs, mpReach: mpEmpty }, options).length + LENGTH_SLACK;
      for (const nlri of chunks(prefixes, room(attrBytes))) {
        out.push(encodeMessage({ type: 'update', withdrawn: [], attributes: { ...attrs, mpReach: { ...mpEmpty, nlri } }, nlri: [] }, options));
      }
    }
  }
  return out;
}

/** RFC 4724 §2: the End-of-RIB marker of a family. */
export function endOfRib(family: AddressFamily, options: CodecOptions): Buffer {
  const attributes = family === 4 ? {} : { mpUnreach: { afi: familyAfi(family), safi: Safi.Unicast, withdrawn: [] } };
  return encodeMessage({ type: 'update', withdrawn: [], attributes, nlri: [] }, options);
}
