/**
 * An incremental HTTP/1.1 response parser for health checks: a pure push
 * parser (no socket, no timer), fed whatever bytes a read returned.
 *
 * It reads the status line and headers (names case-insensitive), skips 1xx
 * interim responses (except 101), and frames the body by Content-Length,
 * `Transfer-Encoding: chunked` (extensions and trailers allowed) or the close
 * of the connection. Bytes may be split anywhere, even inside a CRLF. The
 * header section is capped; the body is kept (or only counted) up to a cap,
 * and reaching the cap ends the message: a check decides on that much.
 *
 * The bytes passed in are not kept: whatever must outlive a call (a partial
 * line, body bytes) is copied, so the caller may reuse its read buffer.
 */

/** The status line and headers of one response may not exceed this (1xx responses count separately). */
export const HEADER_CAP_BYTES = 64 * 1024;

/** What execute() and finish() report. */
export const ParseEvent = {
  /** Every byte was consumed; more are needed. */
  More: 0,
  /** The head of the final response is complete (status known); resume at `offset`. */
  Head: 1,
  /** The message is complete, or the body cap was reached. */
  Done: 2,
  /** The response is malformed or cut short; see `error`. */
  Error: 3,
} as const;
export type ParseEvent = (typeof ParseEvent)[keyof typeof ParseEvent];

const State = {
  StatusLine: 0,
  Header: 1,
  BodyLength: 2,
  BodyClose: 3,
  ChunkSize: 4,
  ChunkData: 5,
  ChunkEnd: 6,
  Trailer: 7,
  Done: 8,
  Error: 9,
} as const;
type State = (typeof State)[keyof typeof State];

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;
const SEMICOLON = 59;

/** Bytes allowed in a header name (RFC 9110 tchar). */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

const CONTENT_LENGTH = Buffer.from('content-length');
const TRANSFER_ENCODING = Buffer.from('transfer-encoding');
const CHUNKED = Buffer.from('chunked');

const CUT_SHORT_HEAD = 'connection closed before the response headers arrived';
/** PyBal's PartialDownloadError, in words. */
export const CUT_SHORT_BODY = 'connection closed before the whole body arrived';

/** `bytes[start, end)` equals `lower` ignoring ASCII case (`lower` is lower case, letters and `-`). */
function equalsIgnoreCase(bytes: Buffer, start: number, end: number, lower: Buffer): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) if ((bytes[start + i]! | 0x20) !== lower[i]) return false;
  return true;
}

/** Some bytes quoted for an error message (at most 40, as latin1). */
function quote(bytes: Buffer, start: number, end: number): string {
  const text = bytes.toString('latin1', start, Math.min(end, start + 40));
  return JSON.stringify(end - start > 40 ? `${text}...` : text);
}

function isDigit(b: number | undefined): boolean {
  return b !== undefined && b >= 48 && b <= 57;
}

function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  const lower = b | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

export class HttpResponseParser {
  /** Status code of the final response (0 until its head is complete). */
  status = 0;
  /** Its reason phrase, as sent. */
  statusText = '';
  /** Why the response was rejected (with ParseEvent.Error). */
  error = '';
  /** After Head: where to resume in the bytes passed to that execute(). */
  offset = 0;

  private state: State = State.StatusLine;
  /** Bytes of the current line kept from earlier reads. */
  private carry: Buffer | undefined;
  private carryLength = 0;
  /** Bytes of the current header section (or chunk-size line, or trailers) so far. */
  private sectionBytes = 0;
  private lineStatus = 0;
  private lineStatusText = '';
  private contentLength = -1;
  private transferEncoding = false;
  private chunked = false;
  /** Body bytes still expected in the current Content-Length body or chunk. */
  private remaining = 0;
  private bodyBytes = 0;
  private readonly parts: Buffer[] = [];

  /**
   * keepBody: keep the body's bytes (else only count them);
   * bodyCapBytes: the message is done once this many body bytes arrived.
   */
  constructor(
    private readonly keepBody: boolean,
    private readonly bodyCapBytes: number,
  ) {}

  /** The body kept so far (at most bodyCapBytes), decoded as UTF-8; empty unless keepBody. */
  body(): string {
    const { parts } = this;
    if (parts.length === 0) return '';
    return (parts.length === 1 ? parts[0]! : Buffer.concat(parts)).toString('utf8');
  }

  /** Feeds `bytes[start, end)`. After Head, call again from `offset` (even when nothing is left). */
  execute(bytes: Buffer, start: number, end: number): ParseEvent {
    let pos = start;
    for (;;) {
      switch (this.state) {
        case State.Done:
          return ParseEvent.Done;
        case State.Error:
          return ParseEvent.Error;
        case State.BodyLength:
        case State.ChunkData: {
          if (pos >= end) return ParseEvent.More;
          const n = Math.min(this.remaining, end - pos);
          this.remaining -= n;
          if (this.takeBody(bytes, pos, n)) return ParseEvent.Done;
          pos += n;
          if (this.remaining === 0) {
            if (this.state === State.BodyLength) {
              this.state = State.Done;
            } else {
              this.state = State.ChunkEnd;
              this.sectionBytes = 0;
            }
          }
          break;
        }
        case State.BodyClose:
          if (pos >= end) return ParseEvent.More;
          if (this.takeBody(bytes, pos, end - pos)) return ParseEvent.Done;
          return ParseEvent.More;
        default: {
          // A line: the status line, a header, a chunk-size line, the CRLF after chunk data, a trailer.
          if (pos >= end) return ParseEvent.More;
          let lf = pos;
          while (lf < end && bytes[lf] !== LF) lf++;
          const stop = lf === end ? end : lf + 1;
          this.sectionBytes += stop - pos;
          if (this.sectionBytes > HEADER_CAP_BYTES) return this.fail(this.tooLong());
          if (lf === end) {
            this.keep(bytes, pos, end);
            return ParseEvent.More;
          }
          let line = bytes;
          let lineStart = pos;
          let lineEnd = lf; // at the LF
          if (this.carryLength > 0) {
            this.keep(bytes, pos, stop);
            line = this.carry!;
            lineStart = 0;
            lineEnd = this.carryLength - 1;
            this.carryLength = 0;
          }
          pos = stop;
          if (lineEnd === lineStart || line[lineEnd - 1] !== CR) return this.fail('invalid HTTP response: a line not ended by CRLF');
          const event = this.onLine(line, lineStart, lineEnd - 1);
          if (event !== ParseEvent.More) {
            this.offset = pos;
            return event;
          }
        }
      }
    }
  }

  /** The connection was closed: Done for a close-delimited body, else Error (see `error`). */
  finish(): ParseEvent {
    switch (this.state) {
      case State.Done:
        return ParseEvent.Done;
      case State.Error:
        return ParseEvent.Error;
      case State.BodyClose:
        this.state = State.Done;
        return ParseEvent.Done;
      case State.StatusLine:
      case State.Header:
        return this.fail(CUT_SHORT_HEAD);
      default:
        return this.fail(CUT_SHORT_BODY);
    }
  }

  private fail(reason: string): ParseEvent {
    this.state = State.Error;
    this.error = reason;
    this.carry = undefined;
    return ParseEvent.Error;
  }

  private tooLong(): string {
    if (this.state === State.StatusLine || this.state === State.Header) return `invalid HTTP response: header section larger than ${HEADER_CAP_BYTES / 1024} KiB`;
    if (this.state === State.Trailer) return `invalid HTTP response: trailer section larger than ${HEADER_CAP_BYTES / 1024} KiB`;
    return `invalid HTTP response: chunk-size line longer than ${HEADER_CAP_BYTES / 1024} KiB`;
  }

  /** Appends bytes to the line carried over to the next read. */
  private keep(bytes: Buffer, start: number, end: number): void {
    const needed = this.carryLength + (end - start);
    if (this.carry === undefined || this.carry.length < needed) {
      const grown = Buffer.allocUnsafe(Math.max(256, needed, (this.carry?.length ?? 0) * 2));
      if (this.carry !== undefined) this.carry.copy(grown, 0, 0, this.carryLength);
      this.carry = grown;
    }
    bytes.copy(this.carry, this.carryLength, start, end);
    this.carryLength = needed;
  }

  /** Keeps or counts body bytes; true when the cap is reached (the message is then done). */
  private takeBody(bytes: Buffer, start: number, n: number): boolean {
    const take = Math.min(n, this.bodyCapBytes - this.bodyBytes);
    if (this.keepBody && take > 0) {
      const part = Buffer.allocUnsafe(take);
      bytes.copy(part, 0, start, start + take);
      this.parts.push(part);
    }
    this.bodyBytes += take;
    if (this.bodyBytes < this.bodyCapBytes) return false;
    this.state = State.Done;
    return true;
  }

  /** One line without its CRLF: `line[start, end)`. */
  private onLine(line: Buffer, start: number, end: number): ParseEvent {
    switch (this.state) {
      case State.StatusLine:
        return this.onStatusLine(line, start, end);
      case State.Header:
        return start === end ? this.onHeadEnd() : this.onHeader(line, start, end);
      case State.ChunkSize:
        return this.onChunkSize(line, start, end);
      case State.ChunkEnd:
        if (start !== end) return this.fail('invalid HTTP response: chunk data not followed by CRLF');
        this.state = State.ChunkSize;
        this.sectionBytes = 0;
        return ParseEvent.More;
      case State.Trailer:
        // Trailers are read past, not interpreted.
        if (start !== end) return ParseEvent.More;
        this.state = State.Done;
        return ParseEvent.Done;
      default:
        return ParseEvent.More;
    }
  }

  /** `HTTP/d.d SP 3DIGIT [SP reason-phrase]` */
  private onStatusLine(line: Buffer, start: number, end: number): ParseEvent {
    const ok =
      end - start >= 12 &&
      line[start] === 72 && // H
      line[start + 1] === 84 && // T
      line[start + 2] === 84 && // T
      line[start + 3] === 80 && // P
      line[start + 4] === 47 && // /
      isDigit(line[start + 5]) &&
      line[start + 6] === 46 && // .
      isDigit(line[start + 7]) &&
      line[start + 8] === SP;
    if (!ok) return this.fail(`invalid HTTP response: expected a status line, got ${quote(line, start, end)}`);
    const d1 = line[start + 9];
    const d2 = line[start + 10];
    const d3 = line[start + 11];
    const after = start + 12 < end ? line[start + 12] : SP;
    if (!isDigit(d1) || !isDigit(d2) || !isDigit(d3) || after !== SP) return this.fail(`invalid HTTP response: invalid status code in ${quote(line, start, end)}`);
    this.lineStatus = (d1! - 48) * 100 + (d2! - 48) * 10 + (d3! - 48);
    this.lineStatusText = start + 13 < end ? line.toString('latin1', start + 13, end) : '';
    this.state = State.Header;
    return ParseEvent.More;
  }

  private onHeader(line: Buffer, start: number, end: number): ParseEvent {
    const first = line[start]!;
    if (first === SP || first === HTAB) return this.fail('invalid HTTP response: obsolete line folding in a header');
    let colon = start;
    while (colon < end && line[colon] !== COLON) {
      if (TCHAR[line[colon]!] !== 1) return this.fail(`invalid HTTP response: invalid character in header name ${quote(line, start, end)}`);
      colon++;
    }
    if (colon === end) return this.fail(`invalid HTTP response: header line without a colon ${quote(line, start, end)}`);
    if (colon === start) return this.fail('invalid HTTP response: empty header name');
    let valueStart = colon + 1;
    let valueEnd = end;
    for (let i = valueStart; i < valueEnd; i++) {
      const b = line[i]!;
      if ((b < SP && b !== HTAB) || b === 127) return this.fail(`invalid HTTP response: invalid character in header value ${quote(line, start, end)}`);
    }
    while (valueStart < valueEnd && (line[valueStart] === SP || line[valueStart] === HTAB)) valueStart++;
    while (valueEnd > valueStart && (line[valueEnd - 1] === SP || line[valueEnd - 1] === HTAB)) valueEnd--;
    if (equalsIgnoreCase(line, start, colon, CONTENT_LENGTH)) return this.onContentLength(line, valueStart, valueEnd);
    if (equalsIgnoreCase(line, start, colon, TRANSFER_ENCODING)) {
      this.transferEncoding = true;
      // Chunked when it is the last coding (of the last field line).
      let last = valueEnd;
      while (last > valueStart && line[last - 1] !== 44) last--; // after the last ','
      while (last < valueEnd && (line[last] === SP || line[last] === HTAB)) last++;
      this.chunked = equalsIgnoreCase(line, last, valueEnd, CHUNKED);
    }
    return ParseEvent.More;
  }

  private onContentLength(line: Buffer, start: number, end: number): ParseEvent {
    let value = 0;
    if (start === end || end - start > 15) return this.fail(`invalid HTTP response: invalid Content-Length ${quote(line, start, end)}`);
    for (let i = start; i < end; i++) {
      const b = line[i]!;
      if (!isDigit(b)) return this.fail(`invalid HTTP response: invalid Content-Length ${quote(line, start, end)}`);
      value = value * 10 + (b - 48);
    }
    if (this.contentLength !== -1 && this.contentLength !== value) return this.fail('invalid HTTP response: conflicting Content-Length values');
    this.contentLength = value;
    return ParseEvent.More;
  }

  private onHeadEnd(): ParseEvent {
    const status = this.lineStatus;
    if (status >= 100 && status < 200 && status !== 101) {
      // An interim response (100 Continue, 103 Early Hints): the final one follows.
      this.state = State.StatusLine;
      this.sectionBytes = 0;
      this.contentLength = -1;
      this.transferEncoding = false;
      this.chunked = false;
      return ParseEvent.More;
    }
    this.status = status;
    this.statusText = this.lineStatusText;
    if (status === 204 || status === 304 || status === 101) this.state = State.Done;
    else if (this.transferEncoding && this.contentLength !== -1) return this.fail('invalid HTTP response: both Transfer-Encoding and Content-Length');
    else if (this.chunked) {
      this.state = State.ChunkSize;
      this.sectionBytes = 0;
    } else if (this.transferEncoding) this.state = State.BodyClose;
    else if (this.contentLength === 0) this.state = State.Done;
    else if (this.contentLength > 0) {
      this.state = State.BodyLength;
      this.remaining = this.contentLength;
    } else this.state = State.BodyClose;
    this.carry = undefined;
    return ParseEvent.Head;
  }

  /** `1*HEXDIG [ BWS ";" chunk-ext ]` */
  private onChunkSize(line: Buffer, start: number, end: number): ParseEvent {
    let size = 0;
    let i = start;
    for (; i < end; i++) {
      const v = hexValue(line[i]!);
      if (v < 0) break;
      if (i - start >= 13) return this.fail('invalid HTTP response: chunk size too large');
      size = size * 16 + v;
    }
    const digitsEnd = i;
    while (i < end && (line[i] === SP || line[i] === HTAB)) i++;
    if (digitsEnd === start || (i < end && line[i] !== SEMICOLON)) return this.fail(`invalid HTTP response: invalid chunk-size line ${quote(line, start, end)}`);
    this.sectionBytes = 0;
    if (size === 0) {
      this.state = State.Trailer;
      return ParseEvent.More;
    }
    this.state = State.ChunkData;
    this.remaining = size;
    return ParseEvent.More;
  }
}
