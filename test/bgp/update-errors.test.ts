/**
 * Errors in what a router sends, judged as RFC 7606 (UPDATE), RFC 6793 §6
 * (AS4_PATH, AS4_AGGREGATOR), RFC 4760 (families) and RFC 7313 (ROUTE-REFRESH)
 * say: each case is bytes written by hand from the RFCs and the exact outcome,
 * either the errors the session survives or the NOTIFICATION of a session
 * reset. The cases that reset the session before RFC 7606 and no longer do are
 * in codec.test.ts, beside the corpus they came from.
 */
import { describe, expect, test } from 'vitest';
import { decodeMessage, type CodecOptions } from '../../src/bgp/codec.js';
import { strongestAction } from '../../src/bgp/update-errors.js';
import {
  AS_PATH,
  decodeError,
  expectNotification,
  hex,
  MARKER,
  NEXT_HOP,
  ORIGIN,
  update,
  updateErrors,
  type ExpectedError,
  type ExpectedNotification,
} from './wire.js';

const TAW = 'treat-as-withdraw';
const DISCARD = 'attribute-discard';

/** AS_PATH 64600 with 4-octet ASNs. */
const AS_PATH4 = '40 02 06 02 01 0000fc58';
const NH6 = '20010db8ffff00000000000000000011';
const V6 = '20010db8000200000000000000000001';
/** MP_REACH_NLRI IPv6 unicast, next hop 2001:db8:ffff::11, NLRI 2001:db8:2::1/128. */
const MP_REACH_V6 = `80 0e 26 0002 01 10 ${NH6} 00 80 ${V6}`;
const WELL_FORMED = `${ORIGIN} ${AS_PATH} ${NEXT_HOP}`;

const TWO_OCTET: CodecOptions = { fourOctetAs: false };
const FOUR_OCTET: CodecOptions = { fourOctetAs: true };
const EXTERNAL: CodecOptions = { fourOctetAs: false, externalPeer: true };
const IPV4_ONLY: CodecOptions = { fourOctetAs: false, families: [4] };

interface Kept {
  readonly name: string;
  readonly bytes: Buffer;
  readonly options?: CodecOptions;
  readonly errors: readonly ExpectedError[];
}

/** UPDATEs with errors the session survives. */
const KEPT: Kept[] = [
  // RFC 7606 §7.4, and §4: only AS_PATH and ATOMIC_AGGREGATE may be empty.
  { name: 'MED of 0 bytes', bytes: update(`${WELL_FORMED} 80 04 00`), errors: [[4, TAW, 'MULTI_EXIT_DISC: length 0, expected 4 (RFC 7606 §7.4)']] },
  // RFC 7606 §7.5: malformed from an internal peer; discarded, whatever it holds, from an external one.
  { name: 'LOCAL_PREF of 3 bytes', bytes: update(`${WELL_FORMED} 40 05 03 000064`), errors: [[5, TAW, 'LOCAL_PREF: length 3, expected 4 (RFC 7606 §7.5)']] },
  {
    name: 'LOCAL_PREF from an external peer',
    bytes: update(`${WELL_FORMED} 40 05 04 00000064`),
    options: EXTERNAL,
    errors: [[5, DISCARD, 'LOCAL_PREF: from an external peer (RFC 7606 §7.5)']],
  },
  // RFC 7606 §7.6, §3.f: ATOMIC_AGGREGATE is discarded, for its length or its flags.
  { name: 'ATOMIC_AGGREGATE of 1 byte', bytes: update(`${WELL_FORMED} 40 06 01 00`), errors: [[6, DISCARD, 'ATOMIC_AGGREGATE: length 1, expected 0 (RFC 7606 §7.6)']] },
  {
    name: 'ATOMIC_AGGREGATE flagged optional',
    bytes: update(`${WELL_FORMED} c0 06 00`),
    errors: [[6, DISCARD, 'ATOMIC_AGGREGATE: flags 0xc0 conflict with the type (RFC 7606 §7.6)']],
  },
  // RFC 7606 §7.7: AGGREGATOR is 6 bytes, or 8 when both sides have 4-octet ASNs.
  {
    name: 'AGGREGATOR of 8 bytes on a 2-octet session',
    bytes: update(`${WELL_FORMED} c0 07 08 0000fc58 c000020b`),
    errors: [[7, DISCARD, 'AGGREGATOR: length 8, expected 6 (RFC 7606 §7.7)']],
  },
  {
    name: 'AGGREGATOR of 6 bytes on a 4-octet session',
    bytes: update(`${ORIGIN} ${AS_PATH4} ${NEXT_HOP} c0 07 06 fc58 c000020b`),
    options: FOUR_OCTET,
    errors: [[7, DISCARD, 'AGGREGATOR: length 6, expected 8 (RFC 7606 §7.7)']],
  },
  // RFC 7606 §7.8.
  { name: 'COMMUNITIES of 0 bytes', bytes: update(`${WELL_FORMED} c0 08 00`), errors: [[8, TAW, 'COMMUNITIES: length 0, expected a non-zero multiple of 4 (RFC 7606 §7.8)']] },
  // RFC 7606 §7.9, §7.10: route-reflection attributes, malformed from an internal peer or discarded from an external one.
  { name: 'ORIGINATOR_ID of 5 bytes', bytes: update(`${WELL_FORMED} 80 09 05 c000020b00`), errors: [[9, TAW, 'ORIGINATOR_ID: length 5, expected 4 (RFC 7606 §7.9)']] },
  {
    name: 'ORIGINATOR_ID from an external peer',
    bytes: update(`${WELL_FORMED} 80 09 04 c000020b`),
    options: EXTERNAL,
    errors: [[9, DISCARD, 'ORIGINATOR_ID: from an external peer (RFC 7606 §7.9)']],
  },
  {
    name: 'CLUSTER_LIST of 6 bytes',
    bytes: update(`${WELL_FORMED} 80 0a 06 c000020b0000`),
    errors: [[10, TAW, 'CLUSTER_LIST: length 6, expected a non-zero multiple of 4 (RFC 7606 §7.10)']],
  },
  {
    name: 'CLUSTER_LIST from an external peer',
    bytes: update(`${WELL_FORMED} 80 0a 04 c000020b`),
    options: EXTERNAL,
    errors: [[10, DISCARD, 'CLUSTER_LIST: from an external peer (RFC 7606 §7.10)']],
  },
  // RFC 7606 §7.14, §7.15; RFC 8092 §6.
  {
    name: 'EXTENDED_COMMUNITIES of 7 bytes',
    bytes: update(`${WELL_FORMED} c0 10 07 00020000fc5800`),
    errors: [[16, TAW, 'EXTENDED_COMMUNITIES: length 7, expected a non-zero multiple of 8 (RFC 7606 §7.14)']],
  },
  {
    name: 'IPv6 address specific extended communities of 21 bytes',
    bytes: update(`${WELL_FORMED} c0 19 15 ${'00'.repeat(21)}`),
    errors: [[25, TAW, 'IPV6_EXTENDED_COMMUNITIES: length 21, expected a non-zero multiple of 20 (RFC 7606 §7.15)']],
  },
  {
    name: 'LARGE_COMMUNITY of 13 bytes',
    bytes: update(`${WELL_FORMED} c0 20 0d ${'00'.repeat(13)}`),
    errors: [[32, TAW, 'LARGE_COMMUNITY: length 13, expected a non-zero multiple of 12 (RFC 8092 §6)']],
  },
  // RFC 7606 §3.g: the repeat of an attribute we do not know is dropped too.
  {
    name: 'an unknown optional attribute twice',
    bytes: update(`${WELL_FORMED} c0 63 01 00 c0 63 01 01`),
    errors: [[99, DISCARD, 'attribute 99: repeated; the first is kept (RFC 7606 §3.g)']],
  },
  // RFC 6793 §6: a malformed AS4_PATH is discarded, never a reset.
  {
    name: 'AS4_PATH of 5 bytes',
    bytes: update(`${WELL_FORMED} c0 11 05 02 01 fa56ea`),
    errors: [[17, DISCARD, 'AS4_PATH: length 5, expected an even number of 6 or more (RFC 6793 §6)']],
  },
  {
    name: 'AS4_PATH with an empty segment',
    bytes: update(`${WELL_FORMED} c0 11 06 02 00 fa56ea00`),
    errors: [[17, DISCARD, 'AS4_PATH: a segment of length 0 (RFC 6793 §6)']],
  },
  {
    name: 'AS4_PATH with segment type 7',
    bytes: update(`${WELL_FORMED} c0 11 06 07 01 fa56ea00`),
    errors: [[17, DISCARD, 'AS4_PATH: unrecognized segment type 7 (RFC 6793 §6)']],
  },
  {
    name: 'AS4_PATH segment running past its end',
    bytes: update(`${WELL_FORMED} c0 11 06 02 02 fa56ea00`),
    errors: [[17, DISCARD, 'AS4_PATH: a segment of 2 ASNs runs past the attribute (RFC 6793 §6)']],
  },
  {
    name: 'AS4_PATH flagged non-transitive',
    bytes: update(`${WELL_FORMED} 80 11 06 02 01 fa56ea00`),
    errors: [[17, DISCARD, 'AS4_PATH: flags 0x80 conflict with the type (RFC 6793 §6)']],
  },
  // RFC 6793 §4.1: AS4_PATH and AS4_AGGREGATOR never pass between two 4-octet AS speakers.
  {
    name: 'AS4_PATH on a 4-octet session',
    bytes: update(`${ORIGIN} ${AS_PATH4} ${NEXT_HOP} c0 11 06 02 01 fa56ea00`),
    options: FOUR_OCTET,
    errors: [[17, DISCARD, 'AS4_PATH: received from a 4-octet AS speaker (RFC 6793 §4.1)']],
  },
  {
    name: 'AS4_AGGREGATOR of 6 bytes',
    bytes: update(`${WELL_FORMED} c0 12 06 fc58 c000020b`),
    errors: [[18, DISCARD, 'AS4_AGGREGATOR: length 6, expected 8 (RFC 6793 §6)']],
  },
  {
    name: 'AS4_AGGREGATOR on a 4-octet session',
    bytes: update(`${ORIGIN} ${AS_PATH4} ${NEXT_HOP} c0 12 08 fa56ea00 c000020b`),
    options: FOUR_OCTET,
    errors: [[18, DISCARD, 'AS4_AGGREGATOR: received from a 4-octet AS speaker (RFC 6793 §4.1)']],
  },
  // RFC 4760 §6: routes of a family that was not negotiated are ignored, unread.
  {
    name: 'MP_REACH_NLRI for IPv6 on a session that negotiated IPv4 only',
    bytes: update(`${ORIGIN} ${AS_PATH} ${MP_REACH_V6}`, ''),
    options: IPV4_ONLY,
    errors: [[14, DISCARD, 'MP_REACH_NLRI: AFI/SAFI 2/1 was not negotiated (RFC 4760 §6)']],
  },
  {
    // Read as IPv4 unicast, its /112 labelled VPN prefix was a 3/9 session reset before.
    name: 'MP_REACH_NLRI for VPNv4 (AFI 1, SAFI 128)',
    bytes: update(`${ORIGIN} ${AS_PATH} 80 0e 20 0001 80 0c 0000000000000000 c000020b 00  70 000641 0000fc580000000a 0a0000`, ''),
    errors: [[14, DISCARD, 'MP_REACH_NLRI: AFI/SAFI 1/128 was not negotiated (RFC 4760 §6)']],
  },
  {
    name: 'MP_UNREACH_NLRI for L2VPN EVPN (AFI 25, SAFI 70)',
    bytes: update('80 0f 06 0019 46 02 01 00', ''),
    errors: [[15, DISCARD, 'MP_UNREACH_NLRI: AFI/SAFI 25/70 was not negotiated (RFC 4760 §6)']],
  },
  {
    name: 'End-of-RIB for IPv6 on a session that negotiated IPv4 only',
    bytes: update('80 0f 03 0002 01', ''),
    options: IPV4_ONLY,
    errors: [[15, DISCARD, 'MP_UNREACH_NLRI: AFI/SAFI 2/1 was not negotiated (RFC 4760 §6)']],
  },
  // RFC 7606 §4: too few octets left for an attribute header; the NLRI are still found.
  {
    name: 'a stray octet after the last attribute',
    bytes: update(`${WELL_FORMED} 40`),
    errors: [[0, TAW, 'path attributes: 1 octet(s) left, too few for an attribute header (RFC 7606 §4)']],
  },
  {
    name: 'an extended-length attribute header cut short',
    bytes: update(`${WELL_FORMED} d0 08 00`),
    errors: [[8, TAW, 'COMMUNITIES: 3 octet(s) left, too few for an attribute header (RFC 7606 §4)']],
  },
  // RFC 7606 §3.h: every error is reported; the strongest applies.
  {
    name: 'a malformed ORIGIN and a malformed AGGREGATOR',
    bytes: update(`40 01 01 03 ${AS_PATH} ${NEXT_HOP} c0 07 05 fc58 c00002`),
    errors: [
      [1, TAW, 'ORIGIN: undefined value 3 (RFC 7606 §7.1)'],
      [7, DISCARD, 'AGGREGATOR: length 5, expected 6 (RFC 7606 §7.7)'],
    ],
  },
  // RFC 7606 §5.2 resets only for errors other than attribute-discard.
  {
    name: 'withdrawn routes with a malformed ATOMIC_AGGREGATE and no NLRI',
    bytes: update('40 06 01 00', '', '20 c6336401'),
    errors: [[6, DISCARD, 'ATOMIC_AGGREGATE: length 1, expected 0 (RFC 7606 §7.6)']],
  },
];

interface Reset {
  readonly name: string;
  readonly bytes: Buffer;
  readonly options?: CodecOptions;
  readonly expect: ExpectedNotification;
}

/** What still resets the session, with its NOTIFICATION. */
const RESETS: Reset[] = [
  // RFC 7606 §5.2: attributes but no reachable NLRI, so the errors cannot be limited to some routes.
  { name: 'ORIGIN value 3 and no NLRI', bytes: update(`40 01 01 03 ${AS_PATH} ${NEXT_HOP}`, ''), expect: [3, 6, '40010103'] },
  { name: 'withdrawn routes with a MED of 3 bytes', bytes: update('80 04 03 000001', '', '20 c6336401'), expect: [3, 5, '800403000001'] },
  { name: 'an attribute running past the attributes and no NLRI', bytes: update(`${ORIGIN} 40 02 09 02 01 fc58`, ''), expect: [3, 1] },
  // RFC 7606 §3.g: a repeated MP attribute.
  { name: 'MP_REACH_NLRI twice', bytes: update(`${ORIGIN} ${AS_PATH} ${MP_REACH_V6} ${MP_REACH_V6}`, ''), expect: [3, 1] },
  { name: 'MP_UNREACH_NLRI twice', bytes: update('80 0f 03 0002 01 80 0f 03 0002 01', ''), expect: [3, 1] },
  // RFC 7606 §5.3 (RFC 4760 §7): an MP attribute too short, or flagged unlike RFC 4760 says.
  { name: 'MP_REACH_NLRI of 4 bytes', bytes: update(`${ORIGIN} ${AS_PATH} 80 0e 04 0002 01 10`, ''), expect: [3, 9, '800e04 0002 01 10'] },
  { name: 'MP_UNREACH_NLRI of 2 bytes', bytes: update('80 0f 02 0002', ''), expect: [3, 9, '800f02 0002'] },
  {
    name: 'MP_REACH_NLRI flagged transitive',
    bytes: update(`${ORIGIN} ${AS_PATH} c0 0e 26 0002 01 10 ${NH6} 00 80 ${V6}`, ''),
    expect: [3, 4, `c00e26 0002 01 10 ${NH6} 00 80 ${V6}`],
  },
  { name: 'MP_UNREACH_NLRI with the Partial bit', bytes: update('a0 0f 03 0002 01', ''), expect: [3, 4, 'a00f03 0002 01'] },
  // RFC 7606 §7.11: an unexpected next hop length hides where the NLRI start.
  {
    name: 'MP_REACH_NLRI for IPv4 with a 16-byte next hop',
    bytes: update(`${ORIGIN} ${AS_PATH} 80 0e 1a 0001 01 10 ${NH6} 00 20 c6336401`, ''),
    expect: [3, 9, `800e1a 0001 01 10 ${NH6} 00 20 c6336401`],
  },
  // RFC 7606 §5.3: MP NLRI that cannot be parsed.
  {
    name: 'MP_REACH_NLRI with a /129',
    bytes: update(`${ORIGIN} ${AS_PATH} 80 0e 26 0002 01 10 ${NH6} 00 81 ${V6}`, ''),
    expect: [3, 9, `800e26 0002 01 10 ${NH6} 00 81 ${V6}`],
  },
  // RFC 7606 §3.j: an MP attribute cut short by the end of the attributes cannot be read.
  { name: 'MP_REACH_NLRI running past the attributes', bytes: update(`${ORIGIN} ${AS_PATH} 80 0e 30 0002 01 10`, ''), expect: [3, 1] },
  { name: 'MP_REACH_NLRI header cut short', bytes: update(`${ORIGIN} ${AS_PATH} 90 0e 00`, ''), expect: [3, 1] },
  // RFC 7313 §5: a BoRR or EoRR of another length; the data is the whole message.
  { name: 'ROUTE-REFRESH BoRR of 24 bytes', bytes: hex(`${MARKER} 0018 05 0001 01 01 00`), expect: [7, 1, `${MARKER} 0018 05 0001 01 01 00`] },
  { name: 'ROUTE-REFRESH EoRR of 22 bytes', bytes: hex(`${MARKER} 0016 05 0001 02`), expect: [7, 1, `${MARKER} 0016 05 0001 02`] },
  // RFC 4271 §6.1: too short to hold a subtype.
  { name: 'ROUTE-REFRESH of 21 bytes', bytes: hex(`${MARKER} 0015 05 0001`), expect: [1, 2, '0015'] },
];

describe('UPDATE errors the session survives', () => {
  for (const k of KEPT) {
    test(k.name, () => {
      expect(updateErrors(k.bytes, k.options ?? TWO_OCTET)).toEqual(k.errors);
    });
  }

  test('the strongest action of several is treat-as-withdraw (RFC 7606 §3.h)', () => {
    const m = decodeMessage(update(`40 01 01 03 ${AS_PATH} ${NEXT_HOP} c0 07 05 fc58 c00002`));
    expect(m.type === 'update' && strongestAction(m.errors)).toBe(TAW);
    const discardOnly = decodeMessage(update(`${WELL_FORMED} 40 06 01 00`));
    expect(discardOnly.type === 'update' && strongestAction(discardOnly.errors)).toBe(DISCARD);
    expect(strongestAction(undefined)).toBeUndefined();
  });

  test('what is well-formed is decoded around what is not', () => {
    const m = decodeMessage(update(`40 01 01 03 ${AS_PATH} ${NEXT_HOP} c0 07 05 fc58 c00002 80 04 04 00000064`));
    expect(m.type === 'update' && m.attributes).toEqual({ asPath: [{ type: 2, asns: [64600] }], nextHop: '192.0.2.11', med: 100 });
    expect(m.type === 'update' && m.nlri).toEqual([{ family: 4, address: '198.51.100.1', length: 32 }]);
  });

  test('a repeated attribute keeps its first value', () => {
    const m = decodeMessage(update(`40 01 01 02 ${ORIGIN} ${AS_PATH} ${NEXT_HOP}`));
    expect(m.type === 'update' && m.attributes.origin).toBe(2);
  });

  test('an AS4_PATH loses its confederation segments and keeps the rest (RFC 6793 §6)', () => {
    const bytes = update(`${WELL_FORMED} c0 11 0c 03 01 0000fde8 02 01 fa56ea00`);
    expect(updateErrors(bytes)).toEqual([[17, DISCARD, 'AS4_PATH: its AS_CONFED_SEQUENCE and AS_CONFED_SET segments were discarded (RFC 6793 §6)']]);
    const m = decodeMessage(bytes);
    const as4 = m.type === 'update' ? m.attributes.other?.find((a) => a.type === 17) : undefined;
    expect(Buffer.from(as4?.value ?? []).toString('hex')).toBe('0201fa56ea00');
  });

  test('a route of a family not negotiated is not decoded at all', () => {
    const m = decodeMessage(update(`${ORIGIN} ${AS_PATH} ${MP_REACH_V6}`, ''), IPV4_ONLY);
    expect(m.type === 'update' && m.attributes.mpReach).toBeUndefined();
    const both = decodeMessage(update(`${ORIGIN} ${AS_PATH} ${MP_REACH_V6}`, ''), TWO_OCTET);
    expect(both.type === 'update' && both.attributes.mpReach?.nlri).toHaveLength(1);
  });

  test('each treat-as-withdraw carries the NOTIFICATION RFC 4271 would have sent', () => {
    const m = decodeMessage(update(`${WELL_FORMED} 40 05 03 000064`));
    const n = m.type === 'update' ? m.errors?.[0]?.notification : undefined;
    expectNotification(n ?? { code: 0, subcode: 0, data: new Uint8Array(0) }, [3, 5, '400503000064']);
  });
});

describe('what still resets the session', () => {
  for (const r of RESETS) {
    test(r.name, () => {
      expectNotification(decodeError(r.bytes, r.options), r.expect);
    });
  }
});

describe('ROUTE-REFRESH subtypes (RFC 7313)', () => {
  const decoded = (text: string): unknown => decodeMessage(hex(text));
  test('BoRR and EoRR decode', () => {
    expect(decoded(`${MARKER} 0017 05 0001 01 01`)).toEqual({ type: 'routeRefresh', afi: 1, subtype: 1, safi: 1 });
    expect(decoded(`${MARKER} 0017 05 0002 02 01`)).toEqual({ type: 'routeRefresh', afi: 2, subtype: 2, safi: 1 });
  });

  test('an unknown subtype decodes whatever its length, for the FSM to ignore (§5)', () => {
    expect(decoded(`${MARKER} 0017 05 0001 03 01`)).toEqual({ type: 'routeRefresh', afi: 1, subtype: 3, safi: 1 });
    expect(decoded(`${MARKER} 001e 05 0001 07 01 00000000000000`)).toEqual({ type: 'routeRefresh', afi: 1, subtype: 7, safi: 1 });
    expect(decoded(`${MARKER} 0016 05 0001 ff`)).toEqual({ type: 'routeRefresh', afi: 1, subtype: 255, safi: 0 });
  });
});
