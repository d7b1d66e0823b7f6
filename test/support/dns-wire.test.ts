import { describe, expect, it } from 'vitest';
import {
  DnsRcode,
  DnsType,
  answerDnsQuery,
  decodeDnsMessage,
  encodeDnsQuery,
  encodeDnsResponse,
  type DnsZone,
} from './dns-wire.js';

/** Bytes from a hex string with spaces, written by hand from RFC 1035 §4.1. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

// id 0x1234, RD, one question: www.example.com A IN
const wwwQuery = hex('1234 0100 0001 0000 0000 0000  03777777 076578616d706c65 03636f6d 00  0001 0001');
const wwwName = '03777777 076578616d706c65 03636f6d 00';

const zone: DnsZone = new Map([
  ['www.example.com', { a: ['192.0.2.10'], aaaa: ['2001:db8::10'] }],
  ['v4only.example.com', { a: ['192.0.2.20'], aaaa: [] }],
]);

describe('DNS wire codec', () => {
  it('encodes a query byte for byte', () => {
    expect(encodeDnsQuery({ id: 0x1234, name: 'www.example.com.', type: DnsType.A })).toEqual(wwwQuery);
  });

  it('decodes a query', () => {
    expect(decodeDnsMessage(wwwQuery)).toEqual({
      id: 0x1234,
      flags: { qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, rcode: 0 },
      questions: [{ name: 'www.example.com', type: DnsType.A, class: 1 }],
      answers: [],
      authorityCount: 0,
      additionalCount: 0,
    });
  });

  it('encodes an A and an AAAA answer with a pointer back to the question', () => {
    const question = { name: 'www.example.com', type: DnsType.ANY, class: 1 };
    const response = encodeDnsResponse({
      id: 0x1234,
      opcode: 0,
      rd: true,
      rcode: 0,
      question,
      answers: [
        { type: DnsType.A, address: '192.0.2.10', ttlSec: 300 },
        { type: DnsType.AAAA, address: '2001:db8::10', ttlSec: 0 },
      ],
    });
    expect(response).toEqual(
      hex(
        `1234 8500 0001 0002 0000 0000  ${wwwName} 00ff 0001
         c00c 0001 0001 0000012c 0004 c000020a
         c00c 001c 0001 00000000 0010 20010db8000000000000000000000010`,
      ),
    );
  });

  it('decodes answers, following compression pointers into the middle of a name', () => {
    // Answer name "mail" + pointer to "example.com" at offset 16 (inside the question name).
    const message = hex(`abcd 8180 0001 0001 0000 0000  ${wwwName} 0001 0001  046d61696c c010 0001 0001 00000e10 0004 c0000205`);
    const decoded = decodeDnsMessage(message);
    expect(decoded.flags).toEqual({ qr: true, opcode: 0, aa: false, tc: false, rd: true, ra: true, rcode: 0 });
    expect(decoded.answers).toEqual([
      { name: 'mail.example.com', type: 1, class: 1, ttlSec: 3600, address: '192.0.2.5', data: new Uint8Array([192, 0, 2, 5]) },
    ]);
  });

  it('round-trips IPv6 addresses, including an embedded IPv4 tail', () => {
    const question = { name: 'x', type: DnsType.AAAA, class: 1 };
    for (const address of ['2001:db8::10', '::ffff:192.0.2.1', '2001:db8:1:2:3:4:5:6', '::1', '2001:db8::']) {
      const bytes = encodeDnsResponse({ id: 1, opcode: 0, rd: false, rcode: 0, question, answers: [{ type: DnsType.AAAA, address, ttlSec: 0 }] });
      const back = decodeDnsMessage(bytes).answers[0]?.address;
      expect(new URL(`http://[${back}]/`).hostname).toBe(new URL(`http://[${address}]/`).hostname);
    }
  });

  it('keeps the case of names as sent', () => {
    const query = encodeDnsQuery({ id: 7, name: 'WwW.ExAmple.COM', type: DnsType.A });
    expect(decodeDnsMessage(query).questions[0]?.name).toBe('WwW.ExAmple.COM');
  });

  it.each([
    ['a short header', hex('1234 0100 0001'), 'message is 6 bytes, shorter than the 12-byte header'],
    ['a pointer to itself', hex('1234 0100 0001 0000 0000 0000 c00c 0001 0001'), 'compression pointer at offset 12 does not point backwards (to 12)'],
    ['a forward pointer', hex('1234 0100 0001 0000 0000 0000 c020 0001 0001'), 'compression pointer at offset 12 does not point backwards (to 32)'],
    ['a truncated pointer', hex('1234 0100 0001 0000 0000 0000 03777777 c0'), 'compression pointer at offset 16 is truncated'],
    ['a truncated label', hex('1234 0100 0001 0000 0000 0000 056162'), 'label at offset 12 runs past the end of the message'],
    ['a name without its end', hex('1234 0100 0001 0000 0000 0000 03777777'), 'name at offset 12 runs past the end of the message'],
    ['a reserved label type', hex('1234 0100 0001 0000 0000 0000 4161 00 0001 0001'), 'unsupported label type 0x41 at offset 12'],
    ['a question without type and class', hex(`1234 0100 0001 0000 0000 0000 ${wwwName} 0001`), 'question type and class at offset 29 runs past the end of the message'],
    ['record data past the end', hex(`1234 8100 0001 0001 0000 0000 ${wwwName} 0001 0001 c00c 0001 0001 00000000 0004 c000`), 'record data at offset 45 runs past the end of the message'],
    [
      'a name longer than 255 bytes',
      Buffer.concat([hex('1234 0100 0001 0000 0000 0000'), ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)])), hex('00 0001 0001')]),
      'name at offset 12 is longer than 255 bytes',
    ],
  ])('rejects %s', (_what, bytes, message) => {
    expect(() => decodeDnsMessage(bytes)).toThrow(message);
  });

  it('refuses to encode bad names and addresses', () => {
    expect(() => encodeDnsQuery({ id: 1, name: 'a..b', type: 1 })).toThrow('DNS name "a..b" has an empty label');
    expect(() => encodeDnsQuery({ id: 1, name: `${'x'.repeat(64)}.example`, type: 1 })).toThrow(/label longer than 63 bytes/);
    const question = { name: 'x', type: DnsType.A, class: 1 };
    expect(() => encodeDnsResponse({ id: 1, opcode: 0, rd: false, rcode: 0, question, answers: [{ type: DnsType.A, address: '::1', ttlSec: 0 }] })).toThrow(
      'A record address "::1" is not IPv4',
    );
  });
});

describe('answerDnsQuery', () => {
  const answer = (query: Buffer, forced?: 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED'): ReturnType<typeof decodeDnsMessage> => {
    const reply = answerDnsQuery(query, zone, forced);
    if (reply === undefined) throw new Error('no reply');
    return decodeDnsMessage(reply);
  };

  it('answers A from the zone, echoing id, RD and the question as asked, with AA set', () => {
    const reply = answer(encodeDnsQuery({ id: 99, name: 'WWW.example.com.', type: DnsType.A }));
    expect(reply.id).toBe(99);
    expect(reply.flags).toEqual({ qr: true, opcode: 0, aa: true, tc: false, rd: true, ra: false, rcode: DnsRcode.NOERROR });
    expect(reply.questions).toEqual([{ name: 'WWW.example.com', type: DnsType.A, class: 1 }]);
    expect(reply.answers.map((a) => [a.name, a.type, a.address, a.ttlSec])).toEqual([['WWW.example.com', DnsType.A, '192.0.2.10', 0]]);
  });

  it('answers ANY with both families, no-data for a missing family, NXDOMAIN for unknown names', () => {
    expect(answer(encodeDnsQuery({ id: 1, name: 'www.example.com', type: DnsType.ANY })).answers.map((a) => a.address)).toEqual([
      '192.0.2.10',
      '2001:db8::10',
    ]);
    const nodata = answer(encodeDnsQuery({ id: 2, name: 'v4only.example.com', type: DnsType.AAAA }));
    expect([nodata.flags.rcode, nodata.answers]).toEqual([DnsRcode.NOERROR, []]);
    const mx = answer(encodeDnsQuery({ id: 3, name: 'www.example.com', type: 15 }));
    expect([mx.flags.rcode, mx.answers]).toEqual([DnsRcode.NOERROR, []]);
    const nx = answer(encodeDnsQuery({ id: 4, name: 'nope.example.com', type: DnsType.A }));
    expect([nx.flags.rcode, nx.answers]).toEqual([DnsRcode.NXDOMAIN, []]);
  });

  it('answers a forced rcode with no records, even for a known name', () => {
    for (const rcode of ['NXDOMAIN', 'SERVFAIL', 'REFUSED'] as const) {
      const reply = answer(encodeDnsQuery({ id: 5, name: 'www.example.com', type: DnsType.A }), rcode);
      expect([reply.flags.rcode, reply.answers, reply.questions.length]).toEqual([DnsRcode[rcode], [], 1]);
    }
  });

  it('answers NOTIMP, FORMERR and REFUSED where the query calls for them', () => {
    const status = Buffer.from(wwwQuery);
    status[2] = 0x11; // opcode 2 (STATUS), RD
    expect(answer(status).flags).toMatchObject({ opcode: 2, rcode: DnsRcode.NOTIMP });
    const noQuestion = hex('0042 0100 0000 0000 0000 0000');
    expect(answer(noQuestion)).toMatchObject({ id: 0x42, flags: { rcode: DnsRcode.FORMERR }, questions: [] });
    const truncated = wwwQuery.subarray(0, 20);
    expect(answer(truncated)).toMatchObject({ id: 0x1234, flags: { rcode: DnsRcode.FORMERR, rd: true } });
    const chaos = Buffer.from(wwwQuery);
    chaos.writeUInt16BE(3, chaos.length - 2);
    expect(answer(chaos).flags.rcode).toBe(DnsRcode.REFUSED);
  });

  it('sets TC with no answers when the answer is larger than the limit', () => {
    const many: DnsZone = new Map([['big.example', { a: Array.from({ length: 40 }, (_, i) => `192.0.2.${i + 1}`), aaaa: [] }]]);
    const query = encodeDnsQuery({ id: 8, name: 'big.example', type: DnsType.A });
    const full = answerDnsQuery(query, many);
    expect(full?.length).toBe(12 + 17 + 40 * 16);
    expect(decodeDnsMessage(full ?? Buffer.alloc(0)).answers).toHaveLength(40);
    const cut = decodeDnsMessage(answerDnsQuery(query, many, undefined, 512) ?? Buffer.alloc(0));
    expect([cut.flags.tc, cut.flags.rcode, cut.answers, cut.questions[0]?.name]).toEqual([true, DnsRcode.NOERROR, [], 'big.example']);
  });

  it('does not answer responses or messages too short for a header', () => {
    const response = Buffer.from(wwwQuery);
    response[2] = 0x81;
    expect(answerDnsQuery(response, zone)).toBeUndefined();
    expect(answerDnsQuery(response.subarray(0, 20), zone)).toBeUndefined();
    expect(answerDnsQuery(hex('1234 01'), zone)).toBeUndefined();
  });
});
