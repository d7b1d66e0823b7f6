/**
 * Netlink and generic netlink framing (pure): message headers, attributes
 * (TLV, 4-byte aligned) and the scalar encodings IPVS uses. No socket here.
 *
 * Layouts (linux/netlink.h, linux/genetlink.h):
 *   nlmsghdr  u32 len | u16 type | u16 flags | u32 seq | u32 pid   (host order)
 *   genlmsghdr u8 cmd | u8 version | u16 reserved
 *   nlattr    u16 len | u16 type, value, padding to 4
 */

export const NLMSG_HDRLEN = 16;
export const GENL_HDRLEN = 4;
export const NLA_HDRLEN = 4;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  ROOT: 0x100,
  MATCH: 0x200,
  DUMP: 0x300,
} as const;

/** nlattr type bits that are not part of the type number. */
const NLA_TYPE_MASK = 0x3fff;

export class NetlinkDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetlinkDecodeError';
  }
}

export function align4(n: number): number {
  return (n + 3) & ~3;
}

/** True on little-endian hosts: netlink integers are in host order. */
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface NetlinkMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  /** Everything after the 16-byte header, without trailing padding. */
  readonly payload: Buffer;
}

/** A whole generic netlink message (nlmsghdr + genlmsghdr + attributes) in one allocation. */
export function encodeGenlMessage(type: number, flags: number, seq: number, pid: number, genl: GenlHeader, attrs: Buffer): Buffer {
  const len = NLMSG_HDRLEN + GENL_HDRLEN + attrs.length;
  const out = allocPadded(len);
  writeU32(out, 0, len);
  writeU16(out, 4, type);
  writeU16(out, 6, flags);
  writeU32(out, 8, seq >>> 0);
  writeU32(out, 12, pid >>> 0);
  out[16] = genl.cmd;
  out[17] = genl.version;
  out[18] = 0;
  out[19] = 0;
  attrs.copy(out, NLMSG_HDRLEN + GENL_HDRLEN);
  return out;
}

/** Starts a generic netlink message in a writer; close it with endMessage(w, returned offset). */
export function beginMessage(w: AttrWriter, type: number, flags: number, seq: number, pid: number, genl: GenlHeader): number {
  reserve(w, NLMSG_HDRLEN + GENL_HDRLEN);
  const start = w.len;
  const b = w.buf;
  writeU32(b, start, 0);
  writeU16(b, start + 4, type);
  writeU16(b, start + 6, flags);
  writeU32(b, start + 8, seq >>> 0);
  writeU32(b, start + 12, pid >>> 0);
  b[start + 16] = genl.cmd;
  b[start + 17] = genl.version;
  b[start + 18] = 0;
  b[start + 19] = 0;
  w.len += NLMSG_HDRLEN + GENL_HDRLEN;
  return start;
}
export function endMessage(w: AttrWriter, start: number): void {
  writeU32(w.buf, start, w.len - start);
}

/** Sets NLM_F_ACK on the message that starts at `offset`, in place. */
export function setAckFlag(buf: Buffer, offset: number): void {
  writeU16(buf, offset + 6, readU16(buf, offset + 6) | NLM_F.ACK);
}

/** Splits one datagram into its messages. */
export function decodeMessages(buf: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = readU32(buf, off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new NetlinkDecodeError(`netlink message at offset ${off} has bad length ${len} (datagram ${buf.length} bytes)`);
    }
    out.push({
      type: readU16(buf, off + 4),
      flags: readU16(buf, off + 6),
      seq: readU32(buf, off + 8),
      pid: readU32(buf, off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  if (off < buf.length && buf.length - off >= 4) {
    throw new NetlinkDecodeError(`${buf.length - off} trailing bytes after the last netlink message`);
  }
  return out;
}

export interface NetlinkErrorPayload {
  /** Positive errno; 0 is an acknowledgement. */
  readonly errno: number;
  /** Sequence number of the request it answers (from the echoed header). */
  readonly requestSeq: number;
  readonly requestType: number;
}

/** struct nlmsgerr: int error, then the request's header (and maybe payload). */
export function decodeErrorPayload(payload: Buffer): NetlinkErrorPayload {
  if (payload.length < 4 + NLMSG_HDRLEN) throw new NetlinkDecodeError(`NLMSG_ERROR payload too short (${payload.length} bytes)`);
  const error = HOST_LE ? payload.readInt32LE(0) : payload.readInt32BE(0);
  return { errno: error === 0 ? 0 : -error, requestType: readU16(payload, 8), requestSeq: readU32(payload, 12) };
}

/** The int in an NLMSG_DONE payload: a dump that failed midway carries its errno here. */
export function decodeDonePayload(payload: Buffer): number {
  if (payload.length < 4) return 0;
  const error = HOST_LE ? payload.readInt32LE(0) : payload.readInt32BE(0);
  return error === 0 ? 0 : -error;
}

export interface GenlHeader {
  readonly cmd: number;
  readonly version: number;
}

export function decodeGenl(payload: Buffer): GenlHeader & { readonly attrs: Buffer } {
  if (payload.length < GENL_HDRLEN) throw new NetlinkDecodeError(`generic netlink payload too short (${payload.length} bytes)`);
  return { cmd: payload[0] ?? 0, version: payload[1] ?? 0, attrs: payload.subarray(GENL_HDRLEN) };
}

/**
 * A dump's replies as they were read: the datagrams' memory, and where each
 * reply's attributes lie in it, rather than a Buffer (a view object) per
 * reply. The replies wait for their decode, which takes several turns of the
 * event loop (runtime/sliced.ts): 10,000 views alive that long reached V8's
 * old generation at every resync and every counters reading (some 120 bytes
 * each), to be collected there.
 */
export class DumpReplies {
  /** The datagrams' memory, each once (a datagram holds several replies). */
  private readonly memory: (ArrayBufferLike | undefined)[] = [];
  /** Per reply: its memory's index, its attributes' offset and length there. */
  private readonly spans: number[] = [];
  private next = 0;

  /** Replies added and not yet taken. */
  get length(): number {
    return this.spans.length / 3 - this.next;
  }

  /** A reply's generic netlink payload (header, then attributes), checked as decodeGenl checks it. */
  add(payload: Buffer): void {
    if (payload.length < GENL_HDRLEN) throw new NetlinkDecodeError(`generic netlink payload too short (${payload.length} bytes)`);
    const memory = payload.buffer;
    let index = this.memory.length - 1;
    if (index < 0 || this.memory[index] !== memory) {
      this.memory.push(memory);
      index++;
    }
    this.spans.push(index, payload.byteOffset + GENL_HDRLEN, payload.length - GENL_HDRLEN);
  }

  /**
   * The next reply's attributes, in the order added (undefined when none is
   * left); a datagram's memory is let go once its last reply is taken.
   */
  take(): Buffer | undefined {
    const at = this.next * 3;
    if (at >= this.spans.length) return undefined;
    this.next++;
    const index = this.spans[at] as number;
    const memory = this.memory[index] as ArrayBufferLike;
    if (this.spans[at + 3] !== index) this.memory[index] = undefined;
    return Buffer.from(memory, this.spans[at + 1], this.spans[at + 2]);
  }
}

/**
 * Builds attributes into one growing buffer: encoding ten thousand requests
 * must not allocate a buffer per field (that costs more than the syscalls).
 */
export interface AttrWriter {
  buf: Buffer;
  len: number;
}

export function createAttrWriter(capacity = 256): AttrWriter {
  return { buf: Buffer.allocUnsafe(capacity), len: 0 };
}

function reserve(w: AttrWriter, n: number): void {
  if (w.len + n <= w.buf.length) return;
  const next = Buffer.allocUnsafe(Math.max(w.buf.length * 2, w.len + n));
  w.buf.copy(next, 0, 0, w.len);
  w.buf = next;
}

/** Appends an attribute header and zeroed room for `valueLen` bytes; returns where the value goes. */
export function putRaw(w: AttrWriter, type: number, valueLen: number): number {
  const total = align4(NLA_HDRLEN + valueLen);
  reserve(w, total);
  const start = w.len;
  writeU16(w.buf, start, NLA_HDRLEN + valueLen);
  writeU16(w.buf, start + 2, type);
  w.buf.fill(0, start + NLA_HDRLEN, start + total);
  w.len += total;
  return start + NLA_HDRLEN;
}

// putRaw may replace w.buf: take the offset before touching the buffer.
export function putU8(w: AttrWriter, type: number, v: number): void {
  const off = putRaw(w, type, 1);
  w.buf[off] = v & 0xff;
}
export function putU16(w: AttrWriter, type: number, v: number): void {
  const off = putRaw(w, type, 2);
  writeU16(w.buf, off, v);
}
export function putU32(w: AttrWriter, type: number, v: number): void {
  const off = putRaw(w, type, 4);
  writeU32(w.buf, off, v >>> 0);
}
export function putBe16(w: AttrWriter, type: number, v: number): void {
  const off = putRaw(w, type, 2);
  w.buf.writeUInt16BE(v, off);
}
export function putBe32(w: AttrWriter, type: number, v: number): void {
  const off = putRaw(w, type, 4);
  w.buf.writeUInt32BE(v >>> 0, off);
}
/** Two host-order u32 (struct ip_vs_flags). */
export function putU32Pair(w: AttrWriter, type: number, a: number, b: number): void {
  const off = putRaw(w, type, 8);
  writeU32(w.buf, off, a >>> 0);
  writeU32(w.buf, off + 4, b >>> 0);
}
export function putBytes(w: AttrWriter, type: number, value: Uint8Array): void {
  const off = putRaw(w, type, value.length);
  w.buf.set(value, off);
}
/** A NUL-terminated string. */
export function putCString(w: AttrWriter, type: number, value: string): void {
  const off = putRaw(w, type, Buffer.byteLength(value) + 1);
  w.buf.write(value, off, 'utf8');
}

/** Starts a nested attribute; close it with endNested(w, returned offset). */
export function beginNested(w: AttrWriter, type: number): number {
  const start = w.len;
  putRaw(w, type, 0);
  return start;
}
export function endNested(w: AttrWriter, start: number): void {
  writeU16(w.buf, start, w.len - start);
}

/** The bytes written so far (a view, not a copy). */
export function writtenBytes(w: AttrWriter): Buffer {
  return w.buf.subarray(0, w.len);
}

/** Attributes by type (the last occurrence wins); unknown types are kept. */
export type AttrMap = ReadonlyMap<number, Buffer>;

export function decodeAttrs(buf: Buffer): AttrMap {
  const out = new Map<number, Buffer>();
  forEachAttr(buf, (type, offset, length) => out.set(type, buf.subarray(offset, offset + length)));
  return out;
}

/**
 * Calls `each(type, offset, length)` for every attribute of `buf`, in order,
 * with its payload's offset and length in `buf`: nothing is copied or
 * sliced. decodeAttrs is built on it; decoders that read a few scalars from
 * many messages (the counters of 10,000 destinations) call it directly.
 */
export function forEachAttr(buf: Buffer, each: (type: number, offset: number, length: number) => void): void {
  forEachAttrIn(buf, 0, buf.length, each);
}

/**
 * forEachAttr over the attributes in `buf` from `start` to `end` (a nested
 * attribute's payload, read in place); offsets given to `each` are in `buf`,
 * and an error names them from `start`, as forEachAttr of a slice would.
 */
export function forEachAttrIn(buf: Buffer, start: number, end: number, each: (type: number, offset: number, length: number) => void): void {
  let off = start;
  while (off + NLA_HDRLEN <= end) {
    const len = readU16(buf, off);
    if (len < NLA_HDRLEN || off + len > end) {
      throw new NetlinkDecodeError(`attribute at offset ${off - start} has bad length ${len} (${end - start} bytes available)`);
    }
    each(readU16(buf, off + 2) & NLA_TYPE_MASK, off + NLA_HDRLEN, len - NLA_HDRLEN);
    off += align4(len);
  }
}

/** A u32 or u64 (host order) at `offset` of `buf`, `length` bytes (4 or 8), as a bigint; `what` names it in the error. */
export function getUintAt(what: string, buf: Buffer, offset: number, length: number): bigint {
  if (length === 8) return HOST_LE ? buf.readBigUInt64LE(offset) : buf.readBigUInt64BE(offset);
  if (length === 4) return BigInt(readU32(buf, offset));
  throw new NetlinkDecodeError(`${what}: expected 4 bytes, got ${length}`);
}

// Scalars. Host order unless the name says be (network order).

function writeU16(buf: Buffer, off: number, v: number): void {
  if (HOST_LE) buf.writeUInt16LE(v, off);
  else buf.writeUInt16BE(v, off);
}
function writeU32(buf: Buffer, off: number, v: number): void {
  if (HOST_LE) buf.writeUInt32LE(v, off);
  else buf.writeUInt32BE(v, off);
}
function readU16(buf: Buffer, off: number): number {
  return HOST_LE ? buf.readUInt16LE(off) : buf.readUInt16BE(off);
}
function readU32(buf: Buffer, off: number): number {
  return HOST_LE ? buf.readUInt32LE(off) : buf.readUInt32BE(off);
}

/** A buffer of align4(len) bytes whose padding after len is zero (the rest is written by the caller). */
function allocPadded(len: number): Buffer {
  const out = Buffer.allocUnsafe(align4(len));
  out.fill(0, len);
  return out;
}

function expectLength(what: string, length: number, n: number): void {
  if (length !== n) throw new NetlinkDecodeError(`${what}: expected ${n} bytes, got ${length}`);
}

// A scalar of `length` bytes at `offset` of `buf`, read in place (see forEachAttr); getU8 and the
// others below read a whole buffer through them.
export function getU8At(what: string, buf: Buffer, offset: number, length: number): number {
  expectLength(what, length, 1);
  return buf[offset] ?? 0;
}
export function getU16At(what: string, buf: Buffer, offset: number, length: number): number {
  expectLength(what, length, 2);
  return readU16(buf, offset);
}
export function getU32At(what: string, buf: Buffer, offset: number, length: number): number {
  expectLength(what, length, 4);
  return readU32(buf, offset);
}
export function getBe16At(what: string, buf: Buffer, offset: number, length: number): number {
  expectLength(what, length, 2);
  return buf.readUInt16BE(offset);
}
export function getU8(what: string, buf: Buffer): number {
  return getU8At(what, buf, 0, buf.length);
}
export function getU16(what: string, buf: Buffer): number {
  return getU16At(what, buf, 0, buf.length);
}
export function getU32(what: string, buf: Buffer): number {
  return getU32At(what, buf, 0, buf.length);
}
export function getBe16(what: string, buf: Buffer): number {
  return getBe16At(what, buf, 0, buf.length);
}
export function getBe32(what: string, buf: Buffer): number {
  expectLength(what, buf.length, 4);
  return buf.readUInt32BE(0);
}
/** A string up to its first NUL (the kernel pads some names). */
export function getCString(what: string, buf: Buffer): string {
  const nul = buf.indexOf(0);
  if (nul < 0) throw new NetlinkDecodeError(`${what}: string is not NUL-terminated`);
  return buf.subarray(0, nul).toString('utf8');
}
