/**
 * A small, pure DNS wire codec (RFC 1035 §4) for the test real server: enough
 * to read a query, answer it with A/AAAA records or an error rcode, and let
 * tests build queries and read answers. No I/O here.
 */
import { isIPv4, isIPv6 } from 'node:net';

export const DnsType = { A: 1, NS: 2, CNAME: 5, SOA: 6, TXT: 16, AAAA: 28, OPT: 41, ANY: 255 } as const;
export const DnsClass = { IN: 1, ANY: 255 } as const;
export const DnsRcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type DnsRcodeName = keyof typeof DnsRcode;

const headerBytes = 12;
const maxLabelBytes = 63;
const maxNameBytes = 255;
const pointerTag = 0xc0;

export interface DnsQuestion {
  /** As sent (case kept, for 0x20 randomisation), no trailing dot; '' is the root. */
  readonly name: string;
  readonly type: number;
  readonly class: number;
}

export interface DnsRecord {
  readonly name: string;
  readonly type: number;
  readonly class: number;
  readonly ttlSec: number;
  /** For A/AAAA: the address in text form; otherwise undefined. */
  readonly address?: string;
  readonly data: Uint8Array;
}

export interface DnsFlags {
  readonly qr: boolean;
  readonly opcode: number;
  readonly aa: boolean;
  readonly tc: boolean;
  readonly rd: boolean;
  readonly ra: boolean;
  readonly rcode: number;
}

export interface DnsMessage {
  readonly id: number;
  readonly flags: DnsFlags;
  readonly questions: readonly DnsQuestion[];
  readonly answers: readonly DnsRecord[];
  /** Authority and additional counts are kept; their records are not decoded. */
  readonly authorityCount: number;
  readonly additionalCount: number;
}

export class DnsDecodeError extends Error {
  /** The query id when the header could be read, so a FORMERR can still be sent. */
  readonly id: number | undefined;

  constructor(message: string, id?: number) {
    super(message);
    this.name = 'DnsDecodeError';
    this.id = id;
  }
}

/** Canonical form used for comparisons: lower case, no trailing dot. */
export function normalizeDnsName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

export function decodeDnsFlags(word: number): DnsFlags {
  return {
    qr: (word & 0x8000) !== 0,
    opcode: (word >> 11) & 0xf,
    aa: (word & 0x0400) !== 0,
    tc: (word & 0x0200) !== 0,
    rd: (word & 0x0100) !== 0,
    ra: (word & 0x0080) !== 0,
    rcode: word & 0xf,
  };
}

export function encodeDnsFlags(flags: DnsFlags): number {
  return (
    (flags.qr ? 0x8000 : 0) |
    ((flags.opcode & 0xf) << 11) |
    (flags.aa ? 0x0400 : 0) |
    (flags.tc ? 0x0200 : 0) |
    (flags.rd ? 0x0100 : 0) |
    (flags.ra ? 0x0080 : 0) |
    (flags.rcode & 0xf)
  );
}

/** Reads a possibly compressed name at `offset`; returns it and where the name ended in place. */
function decodeName(buf: Uint8Array, offset: number, id: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = offset;
  let next: number | undefined;
  let nameBytes = 1;
  // Every pointer must go strictly backwards, which rules out loops.
  let pointerLimit = offset;
  for (;;) {
    const len = buf[pos];
    if (len === undefined) throw new DnsDecodeError(`name at offset ${offset} runs past the end of the message`, id);
    if ((len & pointerTag) === pointerTag) {
      const low = buf[pos + 1];
      if (low === undefined) throw new DnsDecodeError(`compression pointer at offset ${pos} is truncated`, id);
      const target = ((len & 0x3f) << 8) | low;
      if (target >= pointerLimit) {
        throw new DnsDecodeError(`compression pointer at offset ${pos} does not point backwards (to ${target})`, id);
      }
      next ??= pos + 2;
      pointerLimit = target;
      pos = target;
      continue;
    }
    if ((len & pointerTag) !== 0) throw new DnsDecodeError(`unsupported label type 0x${len.toString(16)} at offset ${pos}`, id);
    if (len === 0) {
      next ??= pos + 1;
      return { name: labels.join('.'), next };
    }
    if (pos + 1 + len > buf.length) throw new DnsDecodeError(`label at offset ${pos} runs past the end of the message`, id);
    nameBytes += len + 1;
    if (nameBytes > maxNameBytes) throw new DnsDecodeError(`name at offset ${offset} is longer than ${maxNameBytes} bytes`, id);
    labels.push(Buffer.from(buf.subarray(pos + 1, pos + 1 + len)).toString('latin1'));
    pos += 1 + len;
  }
}

function encodeName(name: string): Buffer {
  const normalized = name.replace(/\.$/, '');
  const labels = normalized === '' ? [] : normalized.split('.');
  const parts: Buffer[] = [];
  for (const label of labels) {
    const bytes = Buffer.from(label, 'latin1');
    if (bytes.length === 0) throw new Error(`DNS name ${JSON.stringify(name)} has an empty label`);
    if (bytes.length > maxLabelBytes) throw new Error(`DNS name ${JSON.stringify(name)} has a label longer than ${maxLabelBytes} bytes`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > maxNameBytes) throw new Error(`DNS name ${JSON.stringify(name)} is longer than ${maxNameBytes} bytes`);
  return out;
}

function need(buf: Uint8Array, offset: number, bytes: number, what: string, id: number): void {
  if (offset + bytes > buf.length) throw new DnsDecodeError(`${what} at offset ${offset} runs past the end of the message`, id);
}

function formatAddress(type: number, data: Uint8Array): string | undefined {
  if (type === DnsType.A && data.length === 4) return Array.from(data).join('.');
  if (type === DnsType.AAAA && data.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push((((data[i] ?? 0) << 8) | (data[i + 1] ?? 0)).toString(16));
    // Let the URL parser compress the longest zero run the standard way.
    return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
  }
  return undefined;
}

/** Decodes a whole DNS message (query or response). */
export function decodeDnsMessage(input: Uint8Array): DnsMessage {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length < headerBytes) throw new DnsDecodeError(`message is ${buf.length} bytes, shorter than the ${headerBytes}-byte header`);
  const id = buf.readUInt16BE(0);
  const flags = decodeDnsFlags(buf.readUInt16BE(2));
  const qdCount = buf.readUInt16BE(4);
  const anCount = buf.readUInt16BE(6);
  let pos = headerBytes;
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < qdCount; i++) {
    const { name, next } = decodeName(buf, pos, id);
    need(buf, next, 4, 'question type and class', id);
    questions.push({ name, type: buf.readUInt16BE(next), class: buf.readUInt16BE(next + 2) });
    pos = next + 4;
  }
  const answers: DnsRecord[] = [];
  for (let i = 0; i < anCount; i++) {
    const { name, next } = decodeName(buf, pos, id);
    need(buf, next, 10, 'record header', id);
    const type = buf.readUInt16BE(next);
    const rdLength = buf.readUInt16BE(next + 8);
    need(buf, next + 10, rdLength, 'record data', id);
    const data = new Uint8Array(buf.subarray(next + 10, next + 10 + rdLength));
    const address = formatAddress(type, data);
    answers.push({
      name,
      type,
      class: buf.readUInt16BE(next + 2),
      ttlSec: buf.readUInt32BE(next + 4),
      ...(address === undefined ? {} : { address }),
      data,
    });
    pos = next + 10 + rdLength;
  }
  return { id, flags, questions, answers, authorityCount: buf.readUInt16BE(8), additionalCount: buf.readUInt16BE(10) };
}

export interface DnsQueryInput {
  readonly id: number;
  readonly name: string;
  readonly type: number;
  readonly rd?: boolean;
}

/** A standard query with one question (class IN). */
export function encodeDnsQuery(query: DnsQueryInput): Buffer {
  const header = Buffer.alloc(headerBytes);
  header.writeUInt16BE(query.id, 0);
  header.writeUInt16BE(encodeDnsFlags({ qr: false, opcode: 0, aa: false, tc: false, rd: query.rd ?? true, ra: false, rcode: 0 }), 2);
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(query.type, 0);
  tail.writeUInt16BE(DnsClass.IN, 2);
  return Buffer.concat([header, encodeName(query.name), tail]);
}

export interface DnsAnswerInput {
  readonly type: typeof DnsType.A | typeof DnsType.AAAA;
  readonly address: string;
  readonly ttlSec: number;
}

export interface DnsResponseInput {
  readonly id: number;
  readonly opcode: number;
  readonly rd: boolean;
  readonly rcode: number;
  readonly question?: DnsQuestion;
  /** Records for the question's name (they point back at it with compression). */
  readonly answers: readonly DnsAnswerInput[];
  /** TC: the answers did not fit (RFC 1035 §4.2.1); the client should retry over TCP. */
  readonly truncated?: boolean;
}

function encodeAddress(answer: DnsAnswerInput): Buffer {
  if (answer.type === DnsType.A) {
    if (!isIPv4(answer.address)) throw new Error(`A record address ${JSON.stringify(answer.address)} is not IPv4`);
    return Buffer.from(answer.address.split('.').map(Number));
  }
  if (!isIPv6(answer.address)) throw new Error(`AAAA record address ${JSON.stringify(answer.address)} is not IPv6`);
  return ipv6Bytes(answer.address);
}

/** 16 bytes of an IPv6 address in text form (with `::` and an optional dotted IPv4 tail). */
function ipv6Bytes(address: string): Buffer {
  // The URL parser gives the canonical, fully hex form, expanding dotted quads.
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canonical.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  const groups = tail === undefined ? headGroups : [...headGroups, ...zeros, ...tailGroups];
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => out.writeUInt16BE(parseInt(group, 16), i * 2));
  return out;
}

/** A response: AA set, RA clear, the question echoed, answers compressed against it. */
export function encodeDnsResponse(response: DnsResponseInput): Buffer {
  const header = Buffer.alloc(headerBytes);
  header.writeUInt16BE(response.id, 0);
  const flags = { qr: true, opcode: response.opcode, aa: true, tc: response.truncated ?? false, rd: response.rd, ra: false, rcode: response.rcode };
  header.writeUInt16BE(encodeDnsFlags(flags), 2);
  header.writeUInt16BE(response.question === undefined ? 0 : 1, 4);
  header.writeUInt16BE(response.answers.length, 6);
  const parts: Buffer[] = [header];
  if (response.question !== undefined) {
    const tail = Buffer.alloc(4);
    tail.writeUInt16BE(response.question.type, 0);
    tail.writeUInt16BE(response.question.class, 2);
    parts.push(encodeName(response.question.name), tail);
  } else if (response.answers.length > 0) {
    throw new Error('a DNS response with answers needs the question they answer');
  }
  for (const answer of response.answers) {
    const data = encodeAddress(answer);
    const record = Buffer.alloc(12);
    // Pointer to the question name, which always sits right after the header.
    record.writeUInt16BE((pointerTag << 8) | headerBytes, 0);
    record.writeUInt16BE(answer.type, 2);
    record.writeUInt16BE(DnsClass.IN, 4);
    record.writeUInt32BE(answer.ttlSec, 6);
    record.writeUInt16BE(data.length, 10);
    parts.push(record, data);
  }
  return Buffer.concat(parts);
}

/** The server's data: normalized name -> addresses. */
export type DnsZone = ReadonlyMap<string, { readonly a: readonly string[]; readonly aaaa: readonly string[] }>;

export const dnsAnswerTtlSec = 0;

/**
 * What the server sends back for `query`: A/AAAA from the zone, NXDOMAIN for
 * unknown names, `forcedRcode` (with no answers) when the test asks for one.
 * Answers longer than `maxBytes` (UDP) are replaced by an empty one with TC set.
 * Returns undefined when the message cannot be answered at all (too short for a header, or a response).
 */
/** The most a DNS message over UDP may carry without EDNS (RFC 1035 §4.2.1); EDNS is not offered. */
export const dnsUdpMaxBytes = 512;

export function answerDnsQuery(
  query: Uint8Array,
  zone: DnsZone,
  forcedRcode?: DnsRcodeName,
  maxBytes = Number.POSITIVE_INFINITY,
): Buffer | undefined {
  let message: DnsMessage;
  try {
    message = decodeDnsMessage(query);
  } catch (error) {
    const isResponse = ((query[2] ?? 0) & 0x80) !== 0;
    if (error instanceof DnsDecodeError && error.id !== undefined && !isResponse) {
      const rd = query.length > 2 && ((query[2] ?? 0) & 0x01) !== 0;
      return encodeDnsResponse({ id: error.id, opcode: ((query[2] ?? 0) >> 3) & 0xf, rd, rcode: DnsRcode.FORMERR, answers: [] });
    }
    return undefined;
  }
  if (message.flags.qr) return undefined;
  const base = { id: message.id, opcode: message.flags.opcode, rd: message.flags.rd };
  const question = message.questions[0];
  if (message.flags.opcode !== 0) return encodeDnsResponse({ ...base, rcode: DnsRcode.NOTIMP, answers: [] });
  if (question === undefined || message.questions.length !== 1) {
    return encodeDnsResponse({ ...base, rcode: DnsRcode.FORMERR, answers: [] });
  }
  const respond = (rcode: number, answers: readonly DnsAnswerInput[] = []): Buffer => {
    const full = encodeDnsResponse({ ...base, question, rcode, answers });
    return full.length <= maxBytes ? full : encodeDnsResponse({ ...base, question, rcode, answers: [], truncated: true });
  };
  if (forcedRcode !== undefined) return respond(DnsRcode[forcedRcode]);
  if (question.class !== DnsClass.IN && question.class !== DnsClass.ANY) return respond(DnsRcode.REFUSED);
  const entry = zone.get(normalizeDnsName(question.name));
  if (entry === undefined) return respond(DnsRcode.NXDOMAIN);
  const answers: DnsAnswerInput[] = [];
  const wantA = question.type === DnsType.A || question.type === DnsType.ANY;
  const wantAaaa = question.type === DnsType.AAAA || question.type === DnsType.ANY;
  if (wantA) for (const address of entry.a) answers.push({ type: DnsType.A, address, ttlSec: dnsAnswerTtlSec });
  if (wantAaaa) for (const address of entry.aaaa) answers.push({ type: DnsType.AAAA, address, ttlSec: dnsAnswerTtlSec });
  // A known name without records of the asked type is NOERROR with no answers (NODATA).
  return respond(DnsRcode.NOERROR, answers);
}
