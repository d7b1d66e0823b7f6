/**
 * Byte writer and reader for the BGP codec. The reader takes the
 * NOTIFICATION to raise when a field runs past its end, so each caller says
 * which error a truncation means where it happens.
 */
import type { Notification } from './notification.js';
import { BgpDecodeError } from './notification.js';

export class ByteWriter {
  private buf: Buffer;
  private off = 0;

  constructor(initialSize = 256) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  get length(): number {
    return this.off;
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf.writeUInt8(v, this.off);
    this.off += 1;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.off);
    this.off += 2;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.off);
    this.off += 4;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
    return this;
  }

  /**
   * Starts a path attribute whose length is known only once its value is
   * written: room for the extended (2-byte) length is kept, and endAttribute
   * shrinks it to 1 byte when the value fits (RFC 4271 §4.3).
   */
  beginAttribute(flags: number, type: number): number {
    const start = this.off;
    this.u8(flags | 0x10).u8(type).u16(0);
    return start;
  }

  endAttribute(start: number): void {
    const valueLength = this.off - start - 4;
    if (valueLength > 255) {
      this.buf.writeUInt16BE(valueLength, start + 2);
      return;
    }
    this.buf.writeUInt8(this.buf.readUInt8(start) & ~0x10, start);
    this.buf.writeUInt8(valueLength, start + 2);
    this.buf.copyWithin(start + 3, start + 4, this.off);
    this.off -= 1;
  }

  /** Overwrites a 16-bit value written earlier (a length known only afterwards). */
  patch16(at: number, v: number): void {
    this.buf.writeUInt16BE(v, at);
  }

  patch8(at: number, v: number): void {
    this.buf.writeUInt8(v, at);
  }

  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.off));
  }
}

export class ByteReader {
  readonly buf: Buffer;
  off: number;
  readonly end: number;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.off = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.off;
  }

  need(n: number, error: Notification): void {
    if (this.off + n > this.end) throw new BgpDecodeError(error);
  }

  u8(error: Notification): number {
    this.need(1, error);
    return this.buf.readUInt8(this.off++);
  }

  u16(error: Notification): number {
    this.need(2, error);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }

  u32(error: Notification): number {
    this.need(4, error);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }

  bytes(n: number, error: Notification): Uint8Array {
    this.need(n, error);
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
}
