/**
 * Codec: golden bytes written by hand from the RFCs, round trips, a stream
 * split at every offset, and malformed messages each with its exact
 * NOTIFICATION, or, since RFC 7606, with the exact error the session
 * survives (more of those in update-errors.test.ts).
 */
import { describe, expect, test } from 'vitest';
import { hostPrefix, formatIpv6, parseIpv6, normalizeAddress } from '../../src/bgp/address.js';
import { decodeMessage, encodeMessage, type BgpMessage } from '../../src/bgp/codec.js';
import { Framer } from '../../src/bgp/framer.js';
import { BgpDecodeError, shutdownMessage, shutdownNotification, type Notification } from '../../src/bgp/notification.js';
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

interface Golden {
  readonly name: string;
  readonly message: BgpMessage;
  readonly fourOctetAs: boolean;
  readonly bytes: Buffer;
}

const v4 = hostPrefix('198.51.100.1');
const v6 = hostPrefix('2001:db8:2::1');

const GOLDEN: Golden[] = [
  {
    name: 'KEEPALIVE (RFC 4271 §4.4)',
    message: { type: 'keepalive' },
    fourOctetAs: false,
    bytes: hex(`${MARKER} 0013 04`),
  },
  {
    name: 'OPEN, AS 64600, hold 180, MP IPv4+IPv6, route refresh, 4-octet AS',
    message: {
      type: 'open',
      version: 4,
      myAs: 64600,
      holdTimeSec: 180,
      bgpId: '192.0.2.11',
      capabilities: [
        { kind: 'multiprotocol', afi: 1, safi: 1 },
        { kind: 'multiprotocol', afi: 2, safi: 1 },
        { kind: 'routeRefresh' },
        { kind: 'fourOctetAs', asn: 64600 },
      ],
    },
    fourOctetAs: false,
    bytes: hex(`${MARKER} 0033 01
      04 fc58 00b4 c000020b   # version, My AS, hold time, BGP identifier
      16 02 14                # opt params length 22; Capabilities, 20 bytes
      01 04 0001 00 01        # MP IPv4 unicast (RFC 4760)
      01 04 0002 00 01        # MP IPv6 unicast
      02 00                   # route refresh (RFC 2918)
      41 04 0000fc58          # 4-octet AS 64600 (RFC 6793)`),
  },
  {
    name: 'OPEN with a 4-octet local ASN: AS_TRANS in My AS',
    message: {
      type: 'open',
      version: 4,
      myAs: 23456,
      holdTimeSec: 0,
      bgpId: '192.0.2.11',
      capabilities: [{ kind: 'fourOctetAs', asn: 4200000000 }],
    },
    fourOctetAs: false,
    bytes: hex(`${MARKER} 0025 01 04 5ba0 0000 c000020b 08 02 06 41 04 fa56ea00`),
  },
  {
    name: 'UPDATE IPv4, 2-octet AS_PATH, MED, community',
    message: {
      type: 'update',
      withdrawn: [],
      attributes: {
        origin: 0,
        asPath: [{ type: 2, asns: [64600, 64600] }],
        nextHop: '192.0.2.11',
        med: 100,
        communities: [{ asn: 64600, value: 1 }],
      },
      nlri: [v4],
    },
    fourOctetAs: false,
    bytes: hex(`${MARKER} 003e 02
      0000 0022                      # no withdrawn routes; 34 bytes of attributes
      40 01 01 00                    # ORIGIN IGP
      40 02 06 02 02 fc58 fc58       # AS_PATH: AS_SEQUENCE of 2
      40 03 04 c000020b              # NEXT_HOP 192.0.2.11
      80 04 04 00000064              # MULTI_EXIT_DISC 100
      c0 08 04 fc58 0001             # COMMUNITIES 64600:1
      20 c6336401                    # 198.51.100.1/32`),
  },
  {
    name: 'UPDATE IPv4, 4-octet AS_PATH',
    message: {
      type: 'update',
      withdrawn: [],
      attributes: { origin: 0, asPath: [{ type: 2, asns: [64600, 64600] }], nextHop: '192.0.2.11', med: 100, communities: [{ asn: 64600, value: 1 }] },
      nlri: [v4],
    },
    fourOctetAs: true,
    bytes: hex(`${MARKER} 0042 02 0000 0026
      40 01 01 00
      40 02 0a 02 02 0000fc58 0000fc58
      40 03 04 c000020b
      80 04 04 00000064
      c0 08 04 fc58 0001
      20 c6336401`),
  },
  {
    name: 'UPDATE IPv6 in MP_REACH_NLRI',
    message: {
      type: 'update',
      withdrawn: [],
      attributes: {
        origin: 0,
        asPath: [{ type: 2, asns: [64600] }],
        med: 50,
        mpReach: { afi: 2, safi: 1, nextHops: ['2001:db8:ffff::11'], nlri: [v6] },
      },
      nlri: [],
    },
    fourOctetAs: true,
    // RFC 7606 §5.1: MP_REACH_NLRI first, then the others in type order.
    bytes: hex(`${MARKER} 0054 02 0000 003d
      80 0e 26 0002 01 10 20010db8ffff00000000000000000011 00   # AFI 2, SAFI 1, next hop, reserved
         80 20010db8000200000000000000000001                     # 2001:db8:2::1/128
      40 01 01 00
      40 02 06 02 01 0000fc58
      80 04 04 00000032`),
  },
  {
    name: 'UPDATE withdrawing IPv4 in the classic field',
    message: { type: 'update', withdrawn: [v4], attributes: {}, nlri: [] },
    fourOctetAs: true,
    bytes: hex(`${MARKER} 001c 02 0005 20 c6336401 0000`),
  },
  {
    name: 'UPDATE withdrawing IPv6 in MP_UNREACH_NLRI',
    message: { type: 'update', withdrawn: [], attributes: { mpUnreach: { afi: 2, safi: 1, withdrawn: [v6] } }, nlri: [] },
    fourOctetAs: true,
    bytes: hex(`${MARKER} 002e 02 0000 0017 80 0f 14 0002 01 80 20010db8000200000000000000000001`),
  },
  {
    name: 'End-of-RIB IPv6 (RFC 4724): an empty MP_UNREACH_NLRI',
    message: { type: 'update', withdrawn: [], attributes: { mpUnreach: { afi: 2, safi: 1, withdrawn: [] } }, nlri: [] },
    fourOctetAs: true,
    bytes: hex(`${MARKER} 001d 02 0000 0006 80 0f 03 0002 01`),
  },
  {
    name: 'NOTIFICATION Cease/administrative shutdown with an RFC 8203 message',
    message: { type: 'notification', ...shutdownNotification('bye') },
    fourOctetAs: false,
    bytes: hex(`${MARKER} 0019 03 06 02 03 627965`),
  },
  {
    name: 'ROUTE-REFRESH IPv4 unicast (RFC 2918)',
    message: { type: 'routeRefresh', afi: 1, subtype: 0, safi: 1 },
    fourOctetAs: false,
    bytes: hex(`${MARKER} 0017 05 0001 00 01`),
  },
];

describe('golden messages', () => {
  for (const g of GOLDEN) {
    test(`encode: ${g.name}`, () => {
      expect(encodeMessage(g.message, { fourOctetAs: g.fourOctetAs }).toString('hex')).toBe(g.bytes.toString('hex'));
    });
    test(`decode: ${g.name}`, () => {
      const decoded = decodeMessage(g.bytes, { fourOctetAs: g.fourOctetAs });
      expect(JSON.parse(JSON.stringify(decoded))).toEqual(JSON.parse(JSON.stringify(g.message)));
    });
  }

  test('a 4-octet ASN on a 2-octet session goes as AS_TRANS in AS_PATH and in full in AS4_PATH (RFC 6793 §4.2.2)', () => {
    const bytes = encodeMessage(
      { type: 'update', withdrawn: [], attributes: { origin: 0, asPath: [{ type: 2, asns: [4200000000] }], nextHop: '192.0.2.11' }, nlri: [v4] },
      { fourOctetAs: false },
    );
    expect(bytes.toString('hex')).toBe(
      hex(`${MARKER} 0037 02 0000 001b 40 01 01 00 40 02 04 02 01 5ba0 40 03 04 c000020b c0 11 06 02 01 fa56ea00 20 c6336401`).toString('hex'),
    );
    const decoded = decodeMessage(bytes, { fourOctetAs: false });
    expect(decoded.type === 'update' && decoded.attributes.other?.[0]?.type).toBe(17);
  });

  test('MP_REACH_NLRI and MP_UNREACH_NLRI go first, before attributes of lower type, the rest in type order (RFC 7606 §5.1)', () => {
    const bytes = encodeMessage(
      {
        type: 'update',
        withdrawn: [],
        attributes: {
          origin: 0,
          asPath: [{ type: 2, asns: [64600] }],
          med: 50,
          communities: [{ asn: 64600, value: 1 }],
          // ATOMIC_AGGREGATE (6) and a large community (32) passed through as raw attributes.
          other: [
            { flags: 0xc0, type: 32, value: Uint8Array.from(Array.from({ length: 12 }, (_, i) => i)) },
            { flags: 0x40, type: 6, value: new Uint8Array(0) },
          ],
          mpReach: { afi: 2, safi: 1, nextHops: ['2001:db8:ffff::11'], nlri: [v6] },
          mpUnreach: { afi: 2, safi: 1, withdrawn: [hostPrefix('2001:db8:2::2')] },
        },
        nlri: [],
      },
      { fourOctetAs: true },
    );
    // Walk the path attributes: flags, type, one or two length bytes.
    const types: number[] = [];
    const attrLen = bytes.readUInt16BE(19 + 2);
    for (let at = 19 + 4, end = at + attrLen; at < end; ) {
      const flags = bytes[at]!;
      types.push(bytes[at + 1]!);
      const extended = (flags & 0x10) !== 0;
      at += 2 + (extended ? 2 : 1) + (extended ? bytes.readUInt16BE(at + 2) : bytes[at + 2]!);
    }
    expect(types).toEqual([14, 15, 1, 2, 4, 6, 8, 32]);
    const decoded = decodeMessage(bytes, { fourOctetAs: true });
    expect(decoded.type === 'update' && decoded.attributes.mpReach?.nlri).toEqual([v6]);
    expect(decoded.type === 'update' && decoded.attributes.mpUnreach?.withdrawn).toEqual([hostPrefix('2001:db8:2::2')]);
  });

  test('AS paths longer than 255 ASNs continue in another segment', () => {
    const asns = Array.from({ length: 300 }, (_, i) => 64512 + i);
    const bytes = encodeMessage(
      { type: 'update', withdrawn: [], attributes: { origin: 0, asPath: [{ type: 2, asns }], nextHop: '192.0.2.11' }, nlri: [v4] },
      { fourOctetAs: true },
    );
    const decoded = decodeMessage(bytes, { fourOctetAs: true });
    expect(decoded.type === 'update' && decoded.attributes.asPath?.map((s) => s.asns.length)).toEqual([255, 45]);
  });
});

describe('round trips', () => {
  const messages: [BgpMessage, boolean][] = [
    ...GOLDEN.map((g): [BgpMessage, boolean] => [g.message, g.fourOctetAs]),
    [{ type: 'notification', code: 4, subcode: 0, data: new Uint8Array(0) }, false],
    [
      {
        type: 'update',
        withdrawn: [{ family: 4, address: '10.0.0.0', length: 8 }, { family: 4, address: '0.0.0.0', length: 0 }],
        attributes: { origin: 2, asPath: [{ type: 1, asns: [1, 2, 3] }], nextHop: '192.0.2.1', localPref: 200, med: 0 },
        nlri: [{ family: 4, address: '203.0.113.128', length: 25 }],
      },
      false,
    ],
  ];
  for (const [i, [m, four]] of messages.entries()) {
    test(`message ${i} (${m.type}) survives encode -> decode -> encode`, () => {
      const once = encodeMessage(m, { fourOctetAs: four });
      const again = encodeMessage(decodeMessage(once, { fourOctetAs: four }), { fourOctetAs: four });
      expect(again.toString('hex')).toBe(once.toString('hex'));
    });
  }

  test('attribute values over 255 bytes use the extended length', () => {
    const nlri = Array.from({ length: 60 }, (_, i) => hostPrefix(`2001:db8:3::${(i + 1).toString(16)}`));
    const m: BgpMessage = {
      type: 'update',
      withdrawn: [],
      attributes: { origin: 0, asPath: [], mpReach: { afi: 2, safi: 1, nextHops: ['2001:db8::1'], nlri } },
      nlri: [],
    };
    const bytes = encodeMessage(m, { fourOctetAs: true });
    const mpAt = bytes.indexOf(Buffer.from([0x90, 0x0e]));
    expect(mpAt).toBeGreaterThan(0);
    const decoded = decodeMessage(bytes, { fourOctetAs: true });
    expect(decoded.type === 'update' && decoded.attributes.mpReach?.nlri.length).toBe(60);
  });
});

describe('framer', () => {
  const stream = Buffer.concat(GOLDEN.map((g) => g.bytes));

  test('a stream split at every offset gives the same messages', () => {
    const whole = new Framer().push(stream).map((b) => b.toString('hex'));
    expect(whole).toHaveLength(GOLDEN.length);
    for (let cut = 0; cut <= stream.length; cut++) {
      const f = new Framer();
      const got = [...f.push(stream.subarray(0, cut)), ...f.push(stream.subarray(cut))].map((b) => b.toString('hex'));
      expect(got).toEqual(whole);
      expect(f.buffered).toBe(0);
    }
  });

  test('byte by byte', () => {
    const f = new Framer();
    const got: string[] = [];
    for (const byte of stream) got.push(...f.push(Uint8Array.of(byte)).map((b) => b.toString('hex')));
    expect(got).toEqual(GOLDEN.map((g) => g.bytes.toString('hex')));
  });

  test('two NOTIFICATIONs back to back in one chunk', () => {
    const a = encodeMessage({ type: 'notification', code: 6, subcode: 3, data: new Uint8Array(0) });
    const b = encodeMessage({ type: 'notification', ...shutdownNotification('going away') });
    const frames = new Framer().push(Buffer.concat([a, b]));
    expect(frames.map((m) => decodeMessage(m).type)).toEqual(['notification', 'notification']);
    expect(shutdownMessage(decodeMessage(frames[1] as Buffer) as Notification)).toBe('going away');
  });

  test('a bad marker is reported as soon as the header is in', () => {
    const f = new Framer();
    const bad = Buffer.from(GOLDEN[0]!.bytes);
    bad[3] = 0;
    expect(() => f.push(bad)).toThrow(BgpDecodeError);
  });
});

interface Malformed {
  readonly name: string;
  readonly bytes: Buffer;
  readonly fourOctetAs?: boolean;
  readonly expect: ExpectedNotification;
}

const MALFORMED: Malformed[] = [
  { name: 'marker not all ones', bytes: hex(`${'ff'.repeat(15)}fe 0013 04`), expect: [1, 1] },
  { name: 'length below 19', bytes: hex(`${MARKER} 0012 04`), expect: [1, 2, '0012'] },
  { name: 'length above 4096', bytes: Buffer.concat([hex(`${MARKER} 1001 02`), Buffer.alloc(4097 - 19)]), expect: [1, 2, '1001'] },
  { name: 'unknown message type', bytes: hex(`${MARKER} 0013 06`), expect: [1, 3, '06'] },
  { name: 'KEEPALIVE with a body', bytes: hex(`${MARKER} 0014 04 00`), expect: [1, 2, '0014'] },
  { name: 'NOTIFICATION without a subcode', bytes: hex(`${MARKER} 0014 03 06`), expect: [1, 2, '0014'] },
  { name: 'ROUTE-REFRESH of 24 bytes', bytes: hex(`${MARKER} 0018 05 0001 00 01 00`), expect: [1, 2, '0018'] },
  { name: 'OPEN shorter than 29 bytes', bytes: hex(`${MARKER} 001c 01 04 fc58 00b4 c000020b`), expect: [1, 2, '001c'] },
  { name: 'OPEN version 3', bytes: hex(`${MARKER} 001d 01 03 fc58 00b4 c000020b 00`), expect: [2, 1, '0004'] },
  { name: 'OPEN with an unknown optional parameter', bytes: hex(`${MARKER} 0020 01 04 fc58 00b4 c000020b 03 01 01 00`), expect: [2, 4] },
  { name: 'OPEN whose parameters overrun their length', bytes: hex(`${MARKER} 0020 01 04 fc58 00b4 c000020b 02 02 05 00`), expect: [2, 0] },
  { name: 'OPEN whose parameter length disagrees with the message', bytes: hex(`${MARKER} 001e 01 04 fc58 00b4 c000020b 05 00`), expect: [2, 0] },
  { name: 'OPEN with a 3-byte 4-octet-AS capability', bytes: hex(`${MARKER} 0022 01 04 fc58 00b4 c000020b 05 02 03 41 01 00`), expect: [2, 0] },
  { name: 'UPDATE withdrawn length past the end', bytes: update('', '', '').fill(0x40, 19, 20), expect: [3, 1] },
  { name: 'UPDATE attribute length past the end', bytes: hex(`${MARKER} 0017 02 0000 0004`), expect: [3, 1] },
  { name: 'unrecognized well-known attribute', bytes: update(`${ORIGIN} ${AS_PATH} ${NEXT_HOP} 40 63 01 00`), expect: [3, 2, '40630100'] },
  {
    name: 'MP_REACH_NLRI with a 5-byte IPv6 next hop',
    bytes: update(`${ORIGIN} ${AS_PATH} 80 0e 0a 0002 01 05 2001db8000 00`, ''),
    expect: [3, 9, '800e0a000201052001db800000'],
  },
  {
    name: 'MP_UNREACH_NLRI with a /129',
    bytes: update(`80 0f 04 0002 01 81`, ''),
    expect: [3, 9, '800f0400020181'],
  },
  { name: 'NLRI /33', bytes: update(`${ORIGIN} ${AS_PATH} ${NEXT_HOP}`, '21 c633640100'), expect: [3, 10] },
  { name: 'NLRI running past the end', bytes: update(`${ORIGIN} ${AS_PATH} ${NEXT_HOP}`, '20 c63364'), expect: [3, 10] },
  { name: 'withdrawn /40', bytes: update('', '', '28 c633640100'), expect: [3, 10] },
];

/**
 * Malformed UPDATEs that reset the session before RFC 7606 and no longer do:
 * the same bytes as before, the error the session now survives, and in `was`
 * the NOTIFICATION it used to send, which the error still carries (RFC 7606
 * §5.2 sends it after all when the UPDATE has no reachable NLRI).
 */
interface Kept {
  readonly name: string;
  readonly bytes: Buffer;
  readonly fourOctetAs?: boolean;
  readonly was: ExpectedNotification;
  readonly errors: readonly ExpectedError[];
}

const TAW = 'treat-as-withdraw';

const NO_LONGER_A_RESET: Kept[] = [
  // RFC 7606 §4: the NLRI are found from the Total Path Attribute Length.
  {
    name: 'attribute running past the attribute field',
    bytes: update(`${ORIGIN} 40 02 09 02 01 fc58`),
    was: [3, 1],
    errors: [[2, TAW, 'AS_PATH: length 9 runs past the path attributes (RFC 7606 §4)']],
  },
  // RFC 7606 §3.g: any repeat but an MP attribute's is dropped.
  {
    name: 'ORIGIN twice',
    bytes: update(`${ORIGIN} ${ORIGIN} ${AS_PATH} ${NEXT_HOP}`),
    was: [3, 1],
    errors: [[1, 'attribute-discard', 'ORIGIN: repeated; the first is kept (RFC 7606 §3.g)']],
  },
  // RFC 7606 §3.d: a missing well-known mandatory attribute.
  { name: 'NEXT_HOP missing with NLRI', bytes: update(`${ORIGIN} ${AS_PATH}`), was: [3, 3, '03'], errors: [[3, TAW, 'NEXT_HOP: missing (RFC 7606 §3.d)']] },
  { name: 'ORIGIN missing with NLRI', bytes: update(`${AS_PATH} ${NEXT_HOP}`), was: [3, 3, '01'], errors: [[1, TAW, 'ORIGIN: missing (RFC 7606 §3.d)']] },
  {
    name: 'AS_PATH missing with MP_REACH NLRI',
    bytes: update(`${ORIGIN} 80 0e 16 0002 01 10 20010db8ffff00000000000000000011 00 00`, ''),
    was: [3, 3, '02'],
    errors: [[2, TAW, 'AS_PATH: missing (RFC 7606 §3.d)']],
  },
  // RFC 7606 §3.c: Optional or Transitive bits in conflict with the type; RFC 4271 §4.3 for Partial.
  {
    name: 'ORIGIN flagged optional',
    bytes: update(`c0 01 01 00 ${AS_PATH} ${NEXT_HOP}`),
    was: [3, 4, 'c0010100'],
    errors: [[1, TAW, 'ORIGIN: flags 0xc0 conflict with the type (RFC 7606 §3.c)']],
  },
  {
    name: 'MED flagged well-known',
    bytes: update(`${ORIGIN} ${AS_PATH} ${NEXT_HOP} 40 04 04 00000001`),
    was: [3, 4, '400404' + '00000001'],
    errors: [[4, TAW, 'MULTI_EXIT_DISC: flags 0x40 conflict with the type (RFC 7606 §3.c)']],
  },
  {
    name: 'partial bit on a well-known attribute',
    bytes: update(`60 01 01 00 ${AS_PATH} ${NEXT_HOP}`),
    was: [3, 4, '60010100'],
    errors: [[1, TAW, 'ORIGIN: flags 0x60 conflict with the type (RFC 7606 §3.c)']],
  },
  // RFC 7606 §7.1, §7.3, §7.8: attribute lengths.
  {
    name: 'ORIGIN of two bytes',
    bytes: update(`40 01 02 0000 ${AS_PATH} ${NEXT_HOP}`),
    was: [3, 5, '4001020000'],
    errors: [[1, TAW, 'ORIGIN: length 2, expected 1 (RFC 7606 §7.1)']],
  },
  {
    name: 'NEXT_HOP of five bytes',
    bytes: update(`${ORIGIN} ${AS_PATH} 40 03 05 c000020b00`),
    was: [3, 5, '400305c000020b00'],
    errors: [[3, TAW, 'NEXT_HOP: length 5, expected 4 (RFC 7606 §7.3, §3.e)']],
  },
  {
    name: 'COMMUNITIES of five bytes',
    bytes: update(`${ORIGIN} ${AS_PATH} ${NEXT_HOP} c0 08 05 fc58000100`),
    was: [3, 5, 'c00805fc58000100'],
    errors: [[8, TAW, 'COMMUNITIES: length 5, expected a non-zero multiple of 4 (RFC 7606 §7.8)']],
  },
  // RFC 7606 §7.1: an undefined ORIGIN.
  {
    name: 'ORIGIN value 3',
    bytes: update(`40 01 01 03 ${AS_PATH} ${NEXT_HOP}`),
    was: [3, 6, '40010103'],
    errors: [[1, TAW, 'ORIGIN: undefined value 3 (RFC 7606 §7.1)']],
  },
  // RFC 7606 §3.e: the session resets RFC 4271 §6.3 asked for with NEXT_HOP become treat-as-withdraw.
  {
    name: 'NEXT_HOP multicast',
    bytes: update(`${ORIGIN} ${AS_PATH} 40 03 04 e0000001`),
    was: [3, 8, '400304e0000001'],
    errors: [[3, TAW, 'NEXT_HOP: 224.0.0.1 is not a host address (RFC 7606 §7.3, §3.e)']],
  },
  {
    name: 'NEXT_HOP 0.0.0.0',
    bytes: update(`${ORIGIN} ${AS_PATH} 40 03 04 00000000`),
    was: [3, 8, '40030400000000'],
    errors: [[3, TAW, 'NEXT_HOP: 0.0.0.0 is not a host address (RFC 7606 §7.3, §3.e)']],
  },
  // RFC 7606 §7.2: a malformed AS_PATH.
  {
    name: 'AS_PATH segment type 5',
    bytes: update(`${ORIGIN} 40 02 04 05 01 fc58 ${NEXT_HOP}`),
    was: [3, 11],
    errors: [[2, TAW, 'AS_PATH: unrecognized segment type 5 (RFC 7606 §7.2)']],
  },
  {
    name: 'AS_PATH segment count past its end',
    bytes: update(`${ORIGIN} 40 02 04 02 02 fc58 ${NEXT_HOP}`),
    was: [3, 11],
    errors: [[2, TAW, 'AS_PATH: a segment of 2 ASNs runs past the attribute (RFC 7606 §7.2)']],
  },
  {
    name: 'AS_PATH empty segment',
    bytes: update(`${ORIGIN} 40 02 02 02 00 ${NEXT_HOP}`),
    was: [3, 11],
    errors: [[2, TAW, 'AS_PATH: a segment of length 0 (RFC 7606 §7.2)']],
  },
  {
    name: 'AS_PATH of 2-byte ASNs on a 4-octet session',
    bytes: update(`${ORIGIN} 40 02 06 02 02 fc58 fc58 ${NEXT_HOP}`),
    fourOctetAs: true,
    was: [3, 11],
    errors: [[2, TAW, 'AS_PATH: a segment of 2 ASNs runs past the attribute (RFC 7606 §7.2)']],
  },
];

describe('malformed messages get their exact NOTIFICATION', () => {
  for (const m of MALFORMED) {
    test(m.name, () => {
      expectNotification(decodeError(m.bytes, { fourOctetAs: m.fourOctetAs ?? false }), m.expect);
    });
  }

  test('well-formed UPDATEs from the peer decode without errors (we then ignore them)', () => {
    const ok = update(`${ORIGIN} ${AS_PATH} ${NEXT_HOP} c0 63 01 00`);
    const decoded = decodeMessage(ok);
    expect(decoded.type === 'update' && decoded.attributes.other?.[0]).toMatchObject({ type: 0x63, flags: 0xc0 });
    expect(decoded.type === 'update' && decoded.errors).toBeUndefined();
  });
});

describe('malformed UPDATEs that no longer reset the session (RFC 7606)', () => {
  for (const k of NO_LONGER_A_RESET) {
    test(k.name, () => {
      const options = { fourOctetAs: k.fourOctetAs ?? false };
      expect(updateErrors(k.bytes, options)).toEqual(k.errors);
      const decoded = decodeMessage(k.bytes, options);
      const first = decoded.type === 'update' ? decoded.errors?.[0]?.notification : undefined;
      expectNotification(first ?? { code: 0, subcode: 0, data: new Uint8Array(0) }, k.was);
    });
  }
});

describe('addresses and shutdown messages', () => {
  test('IPv6 is formatted the RFC 5952 way', () => {
    expect(formatIpv6(parseIpv6('2001:0db8:0000:0000:0001:0000:0000:0001')!)).toBe('2001:db8::1:0:0:1');
    expect(formatIpv6(parseIpv6('::')!)).toBe('::');
    expect(formatIpv6(parseIpv6('::ffff:192.0.2.1')!)).toBe('::ffff:c000:201');
    expect(normalizeAddress('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(parseIpv6('1::2::3')).toBeUndefined();
    expect(parseIpv6('1:2:3:4:5:6:7:8:9')).toBeUndefined();
  });

  test('shutdown messages are cut to 255 bytes at a character boundary', () => {
    const n = shutdownNotification('é'.repeat(200));
    expect(n.data[0]).toBe(254);
    expect(shutdownMessage(n)).toBe('é'.repeat(127));
  });
});
