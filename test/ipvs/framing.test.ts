import { describe, expect, it } from 'vitest';
import { canonicalAddress, decodeAddress, encodeAddress, maskToPrefix, prefixToMask } from '../../src/ipvs/address.js';
import {
  beginNested,
  createAttrWriter,
  decodeAttrs,
  decodeDonePayload,
  decodeErrorPayload,
  decodeGenl,
  decodeMessages,
  DumpReplies,
  encodeGenlMessage,
  endNested,
  NetlinkDecodeError,
  putBytes,
  putRaw,
  writtenBytes,
} from '../../src/ipvs/netlink-framing.js';
import { hex } from './hex.js';

describe('netlink framing', () => {
  it('splits a datagram holding an ACK, an error and a DONE', () => {
    const datagram = hex(`
      24 00 00 00 02 00 00 01 05 00 00 00 2a 00 00 00   # NLMSG_ERROR, flags CAPPED, seq 5, pid 42
        00 00 00 00                                     # error 0 = ACK
        5c 00 00 00 23 00 05 00 05 00 00 00 2a 00 00 00 # echoed request header (seq 5)
      24 00 00 00 02 00 00 00 06 00 00 00 2a 00 00 00
        ef ff ff ff                                     # -17 EEXIST
        30 00 00 00 23 00 01 00 06 00 00 00 2a 00 00 00
      14 00 00 00 03 00 02 00 07 00 00 00 2a 00 00 00
        fe ff ff ff                                     # DONE carrying -2 (ENOENT)
    `);
    const msgs = decodeMessages(datagram);
    expect(msgs.map((m) => [m.type, m.seq])).toEqual([
      [2, 5],
      [2, 6],
      [3, 7],
    ]);
    expect(decodeErrorPayload(msgs[0]!.payload)).toEqual({ errno: 0, requestSeq: 5, requestType: 0x23 });
    expect(decodeErrorPayload(msgs[1]!.payload)).toEqual({ errno: 17, requestSeq: 6, requestType: 0x23 });
    expect(decodeDonePayload(msgs[2]!.payload)).toBe(2);
  });

  it('round-trips a message with padding, and refuses truncated input', () => {
    const msg = encodeGenlMessage(0x10, 1, 0xfffffffe, 0, { cmd: 3, version: 1 }, Buffer.from([9]));
    expect(msg.length).toBe(24);
    expect(msg.readUInt32LE(0)).toBe(21);
    expect(msg.subarray(16).toString('hex')).toBe('0301000009000000');
    const [back] = decodeMessages(msg);
    expect(back).toMatchObject({ type: 0x10, flags: 1, seq: 0xfffffffe });
    expect(decodeGenl(back!.payload)).toMatchObject({ cmd: 3, version: 1 });
    expect(() => decodeMessages(msg.subarray(0, 20))).toThrow(/bad length 21/);
    expect(() => decodeErrorPayload(Buffer.alloc(8))).toThrow(/too short/);
  });

  it('writes padded and nested attributes, and ignores the NESTED and NET_BYTEORDER bits when reading', () => {
    const w = createAttrWriter(4); // grows as needed
    putBytes(w, 0x8001, Buffer.from([1, 2]));
    putRaw(w, 2, 0);
    const nest = beginNested(w, 3);
    putBytes(w, 1, Buffer.from([7, 7, 7, 7, 7]));
    endNested(w, nest);
    expect(writtenBytes(w).toString('hex')).toBe(hex('06 00 01 80 01 02 00 00  04 00 02 00  10 00 03 00 09 00 01 00 07 07 07 07 07 00 00 00').toString('hex'));
    const attrs = decodeAttrs(writtenBytes(w));
    expect([...attrs.keys()]).toEqual([1, 2, 3]);
    expect(attrs.get(1)?.toString('hex')).toBe('0102');
  });
});

describe('addresses', () => {
  it('encodes and canonicalises IPv4 and IPv6', () => {
    expect(encodeAddress(6, '2001:DB8::192.0.2.1').toString('hex')).toBe('20010db80000000000000000c0000201');
    expect(canonicalAddress('2001:0db8:0000:0000:0001:0000:0000:0001')).toBe('2001:db8::1:0:0:1');
    expect(canonicalAddress('::')).toBe('::');
    expect(canonicalAddress('::1')).toBe('::1');
    expect(canonicalAddress('fe80::')).toBe('fe80::');
    expect(canonicalAddress('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1');
    expect(decodeAddress(4, Buffer.from([198, 51, 100, 6, 0, 0]))).toBe('198.51.100.6');
    expect(() => encodeAddress(4, '198.51.100.256')).toThrow(/not an IPv4 address/);
  });

  it('converts netmasks and prefix lengths', () => {
    expect(prefixToMask(24)).toBe(0xffffff00);
    expect(prefixToMask(0)).toBe(0);
    expect(prefixToMask(32)).toBe(0xffffffff);
    expect(maskToPrefix(0xffffff00)).toBe(24);
    expect(maskToPrefix(0xff00ff00)).toBeUndefined();
  });
});

describe('DumpReplies', () => {
  /** A datagram of generic netlink messages, each with these attributes (as the kernel packs a dump's replies). */
  const datagram = (...attrs: Buffer[]): Buffer => Buffer.concat(attrs.map((a) => encodeGenlMessage(0x20, 2, 7, 0, { cmd: 1, version: 1 }, a)));

  it("gives each reply's attributes in the order read, across datagrams, as decodeGenl gives them", () => {
    const replies = new DumpReplies();
    const first = datagram(Buffer.from('aaaa'), Buffer.from('bbbbbbbb'), Buffer.alloc(0));
    const second = datagram(Buffer.from('cccc'));
    const payloads = [...decodeMessages(first), ...decodeMessages(second)].map((m) => m.payload);
    for (const payload of payloads) replies.add(payload);
    expect(replies.length).toBe(4);
    const taken: string[] = [];
    for (let attrs = replies.take(); attrs !== undefined; attrs = replies.take()) taken.push(attrs.toString('latin1'));
    expect(taken).toEqual(payloads.map((p) => decodeGenl(p).attrs.toString('latin1')));
    expect(taken).toEqual(['aaaa', 'bbbbbbbb', '', 'cccc']);
    expect(replies.length).toBe(0);
    expect(replies.take()).toBeUndefined();
  });

  it('refuses a payload too short for the generic netlink header, as decodeGenl does', () => {
    const replies = new DumpReplies();
    const short = Buffer.from([1, 2, 3]);
    expect(() => decodeGenl(short)).toThrow(NetlinkDecodeError);
    expect(() => replies.add(short)).toThrow('generic netlink payload too short (3 bytes)');
    expect(replies.length).toBe(0);
  });
});
