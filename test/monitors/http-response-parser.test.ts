import { describe, expect, it } from 'vitest';
import { CUT_SHORT_BODY, HEADER_CAP_BYTES, HttpResponseParser, ParseEvent } from '../../src/monitors/http-response-parser.js';

interface Parsed {
  /** 'done' or 'error'; 'more' when the bytes ran out and close was not signalled. */
  readonly outcome: 'done' | 'error' | 'more';
  readonly status: number;
  readonly statusText: string;
  readonly body: string;
  readonly error: string;
}

/**
 * Feeds `text` in the given pieces (split points), as a client would: on Head
 * it resumes at `offset`; after the last piece, `close` signals end of stream.
 * Each piece is copied into a reused buffer that is then scribbled over, so a
 * parser that kept a reference to the caller's bytes would fail.
 */
function parse(text: string | Buffer, splits: readonly number[], { keepBody = true, capBytes = 1024, close = true } = {}): Parsed {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  const parser = new HttpResponseParser(keepBody, capBytes);
  const scratch = Buffer.alloc(bytes.length + 16);
  const points = [0, ...splits.filter((s) => s > 0 && s < bytes.length), bytes.length];
  let event: ParseEvent = ParseEvent.More;
  for (let i = 0; i + 1 < points.length && event !== ParseEvent.Done && event !== ParseEvent.Error; i++) {
    // Stale lines after the piece: the parser must stop at `end`.
    scratch.fill('zz\r\n');
    const n = bytes.copy(scratch, 0, points[i], points[i + 1]);
    event = parser.execute(scratch, 0, n);
    if (event === ParseEvent.Head) event = parser.execute(scratch, parser.offset, n);
    scratch.fill(0x41);
  }
  if (close && event === ParseEvent.More) event = parser.finish();
  const outcome = event === ParseEvent.Done ? 'done' : event === ParseEvent.Error ? 'error' : 'more';
  return { outcome, status: parser.status, statusText: parser.statusText, body: parser.body(), error: parser.error };
}

/** Every way of cutting `text` in two, plus byte by byte: all must agree. */
function parseEverySplit(text: string, options: Parameters<typeof parse>[2] = {}): Parsed {
  const whole = parse(text, [], options);
  for (let at = 1; at < text.length; at++) expect(parse(text, [at], options), `split at ${at}`).toEqual(whole);
  expect(parse(text, Array.from({ length: text.length }, (_, i) => i), options), 'byte by byte').toEqual(whole);
  return whole;
}

const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

describe('HttpResponseParser: well-formed responses, split anywhere', () => {
  it('Content-Length body', () => {
    expect(parseEverySplit(ok("I'm alive!\n"))).toEqual({ outcome: 'done', status: 200, statusText: 'OK', body: "I'm alive!\n", error: '' });
  });

  it('header names in any case; whitespace around values', () => {
    const r = parseEverySplit('HTTP/1.1 200 OK\r\ncOnTeNt-LeNgTh: \t 4 \t\r\nX-Empty:\r\n\r\nbody');
    expect(r).toMatchObject({ outcome: 'done', body: 'body' });
  });

  it('chunked body with extensions and trailers', () => {
    const text = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n5;name=value\r\nhello\r\n7 ; x\r\n, world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n';
    expect(parseEverySplit(text)).toMatchObject({ outcome: 'done', status: 200, body: 'hello, world0123456789' });
  });

  it('close-delimited body (no framing, or a Transfer-Encoding that is not chunked)', () => {
    expect(parseEverySplit("HTTP/1.0 200 OK\r\n\r\nI'm alive!")).toMatchObject({ outcome: 'done', body: "I'm alive!" });
    expect(parseEverySplit('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw')).toMatchObject({ outcome: 'done', body: 'raw' });
    // Without the close it is not over.
    expect(parse("HTTP/1.0 200 OK\r\n\r\nI'm alive!", [], { close: false }).outcome).toBe('more');
  });

  it('skips 1xx interim responses, not 101', () => {
    const text = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n' + ok('ok');
    expect(parseEverySplit(text)).toMatchObject({ outcome: 'done', status: 200, body: 'ok' });
    expect(parseEverySplit('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n')).toMatchObject({ outcome: 'done', status: 101 });
  });

  it('no body for 204 and 304, whatever the headers say; Content-Length 0 is done at once', () => {
    expect(parse('HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n', [], { close: false })).toMatchObject({ outcome: 'done', status: 204 });
    expect(parse('HTTP/1.1 304 Not Modified\r\n\r\n', [], { close: false })).toMatchObject({ outcome: 'done', status: 304 });
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', [], { close: false })).toMatchObject({ outcome: 'done', body: '' });
  });

  it('a status line without a reason phrase; any HTTP/d.d version', () => {
    expect(parseEverySplit('HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n')).toMatchObject({ status: 503, statusText: '' });
    expect(parseEverySplit('HTTP/1.0 301 Moved Permanently\r\nLocation: /x\r\n\r\n')).toMatchObject({ status: 301, statusText: 'Moved Permanently' });
  });

  it('bytes after a complete message are ignored', () => {
    expect(parse(ok('ok') + 'HTTP/1.1 500 Oops\r\n', [], { close: false })).toMatchObject({ outcome: 'done', body: 'ok' });
  });

  it('a multi-byte UTF-8 character split across reads is decoded whole', () => {
    const body = Buffer.from('déjà vu', 'utf8');
    const bytes = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
    for (let at = 1; at < bytes.length; at++) expect(parse(bytes, [at]).body).toBe('déjà vu');
  });
});

describe('HttpResponseParser: body cap', () => {
  it('stops at the cap: the message is done with the first capBytes of the body', () => {
    const r = parseEverySplit(ok('0123456789abcdef'), { capBytes: 10 });
    expect(r).toMatchObject({ outcome: 'done', body: '0123456789' });
    // Also for a body that would never end.
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n0123456789abc', [], { capBytes: 10, close: false })).toMatchObject({ outcome: 'done', body: '0123456789' });
    expect(parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n0123456789abc', [3, 50], { capBytes: 10, close: false })).toMatchObject({ outcome: 'done', body: '0123456789' });
  });

  it('without keepBody the body is only counted, but still read to its end', () => {
    expect(parseEverySplit(ok('0123456789'), { keepBody: false })).toMatchObject({ outcome: 'done', body: '' });
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234', [], { keepBody: false })).toMatchObject({ outcome: 'error', error: CUT_SHORT_BODY });
  });
});

describe('HttpResponseParser: cut short', () => {
  it.each([
    ['nothing at all', '', 'connection closed before the response headers arrived'],
    ['inside the status line', 'HTTP/1.1 20', 'connection closed before the response headers arrived'],
    ['inside the headers', 'HTTP/1.1 200 OK\r\nContent-Le', 'connection closed before the response headers arrived'],
    ['after a 100 Continue', 'HTTP/1.1 100 Continue\r\n\r\n', 'connection closed before the response headers arrived'],
    ['a short Content-Length body', 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort', CUT_SHORT_BODY],
    ['inside a chunk', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel', CUT_SHORT_BODY],
    ['before the last chunk', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n', CUT_SHORT_BODY],
    ['inside a chunk-size line', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1', CUT_SHORT_BODY],
    ['inside the trailers', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n', CUT_SHORT_BODY],
  ])('%s', (_name, text, error) => {
    expect(parseEverySplit(text)).toMatchObject({ outcome: 'error', error });
  });
});

describe('HttpResponseParser: malformed responses, each with its reason', () => {
  it.each([
    ['not HTTP', 'SSH-2.0-OpenSSH_9.2\r\n', 'invalid HTTP response: expected a status line, got "SSH-2.0-OpenSSH_9.2"'],
    ['lower-case protocol', 'http/1.1 200 OK\r\n\r\n', 'invalid HTTP response: expected a status line, got "http/1.1 200 OK"'],
    ['a long garbage line is quoted in part', `${'x'.repeat(100)}\r\n`, `invalid HTTP response: expected a status line, got "${'x'.repeat(40)}..."`],
    ['a status that is not a number', 'HTTP/1.1 2x0 OK\r\n\r\n', 'invalid HTTP response: invalid status code in "HTTP/1.1 2x0 OK"'],
    ['a four-digit status', 'HTTP/1.1 2000 OK\r\n\r\n', 'invalid HTTP response: invalid status code in "HTTP/1.1 2000 OK"'],
    ['bare LF line ends', 'HTTP/1.1 200 OK\nContent-Length: 0\n\n', 'invalid HTTP response: a line not ended by CRLF'],
    ['a header without a colon', 'HTTP/1.1 200 OK\r\nBadHeader\r\n\r\n', 'invalid HTTP response: header line without a colon "BadHeader"'],
    ['space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok', 'invalid HTTP response: invalid character in header name "Content-Length : 2"'],
    ['an empty header name', 'HTTP/1.1 200 OK\r\n: x\r\n\r\n', 'invalid HTTP response: empty header name'],
    ['a control character in a value', 'HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n', 'invalid HTTP response: invalid character in header value "X: a\\u0000b"'],
    ['obsolete line folding', 'HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\n\r\n', 'invalid HTTP response: obsolete line folding in a header'],
    ['a Content-Length that is not a number', 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n', 'invalid HTTP response: invalid Content-Length "abc"'],
    ['a negative Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', 'invalid HTTP response: invalid Content-Length "-1"'],
    ['an empty Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n', 'invalid HTTP response: invalid Content-Length ""'],
    ['a huge Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n', 'invalid HTTP response: invalid Content-Length "1234567890123456"'],
    ['conflicting Content-Length values', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok', 'invalid HTTP response: conflicting Content-Length values'],
    ['Transfer-Encoding and Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n', 'invalid HTTP response: both Transfer-Encoding and Content-Length'],
    ['a chunk size that is not hex', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n', 'invalid HTTP response: invalid chunk-size line "zz"'],
    ['an empty chunk-size line', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n', 'invalid HTTP response: invalid chunk-size line ""'],
    ['junk after a chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n', 'invalid HTTP response: invalid chunk-size line "5 x"'],
    ['a chunk size too large', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n', 'invalid HTTP response: chunk size too large'],
    ['chunk data longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n', 'invalid HTTP response: chunk data not followed by CRLF'],
  ])('%s', (_name, text, error) => {
    expect(parseEverySplit(text)).toMatchObject({ outcome: 'error', error });
  });

  it('caps the header section; status line and headers count, each 1xx response separately', () => {
    const filler = (bytes: number): string => `X-Filler: ${'a'.repeat(bytes - 'X-Filler: \r\n'.length)}\r\n`;
    const head = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n';
    const fits = `${head}${filler(HEADER_CAP_BYTES - head.length - 2)}\r\nok`;
    expect(parse(fits, [1000, 40_000])).toMatchObject({ outcome: 'done', body: 'ok' });
    const over = `${head}${filler(HEADER_CAP_BYTES - head.length - 1)}\r\nok`;
    expect(parse(over, [1000, 40_000])).toMatchObject({ outcome: 'error', error: 'invalid HTTP response: header section larger than 64 KiB' });
    // A header that never ends is refused once past the cap, not kept growing.
    expect(parse(`${head}X: ${'a'.repeat(HEADER_CAP_BYTES)}`, [], { close: false })).toMatchObject({ outcome: 'error', error: 'invalid HTTP response: header section larger than 64 KiB' });
    const interim = `HTTP/1.1 103 Early Hints\r\n${filler(HEADER_CAP_BYTES - 40)}\r\n`;
    expect(parse(interim + fits, [])).toMatchObject({ outcome: 'done', body: 'ok' });
  });

  it('caps a chunk-size line and the trailers', () => {
    const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
    expect(parse(`${chunked}5;${'e'.repeat(HEADER_CAP_BYTES)}\r\nhello\r\n0\r\n\r\n`, [])).toMatchObject({ outcome: 'error', error: 'invalid HTTP response: chunk-size line longer than 64 KiB' });
    expect(parse(`${chunked}0\r\nX: ${'t'.repeat(HEADER_CAP_BYTES)}\r\n\r\n`, [])).toMatchObject({ outcome: 'error', error: 'invalid HTTP response: trailer section larger than 64 KiB' });
  });
});
