/**
 * Cuts a TCP byte stream into whole BGP messages. Pure push parser: feed it
 * chunks as they arrive, get back the complete messages they finish. A bad
 * header throws a BgpDecodeError (the stream cannot be resynchronised).
 */
import { checkHeader } from './codec.js';
import { HEADER_LENGTH } from './constants.js';

export class Framer {
  private pending: Buffer = Buffer.alloc(0);

  /** Returns the whole messages completed by this chunk, in order. */
  push(chunk: Uint8Array): Buffer[] {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    let off = 0;
    while (this.pending.length - off >= HEADER_LENGTH) {
      const length = checkHeader(this.pending.subarray(off, off + HEADER_LENGTH));
      if (this.pending.length - off < length) break;
      out.push(this.pending.subarray(off, off + length));
      off += length;
    }
    this.pending = off === 0 ? this.pending : Buffer.from(this.pending.subarray(off));
    return out;
  }

  /** Bytes received but not yet part of a whole message. */
  get buffered(): number {
    return this.pending.length;
  }
}
