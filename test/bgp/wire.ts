/**
 * Hand-written BGP bytes for the codec tests: hex with comments, an UPDATE
 * built from attribute and NLRI hex, and the decode error or decoded UPDATE
 * errors in a form a table can state.
 */
import { expect } from 'vitest';
import { decodeMessage, type CodecOptions } from '../../src/bgp/codec.js';
import { BgpDecodeError, type Notification } from '../../src/bgp/notification.js';

/** Hex with spaces and comments (`#` to end of line) -> bytes. */
export function hex(text: string): Buffer {
  return Buffer.from(
    text
      .split('\n')
      .map((l) => l.replace(/#.*/, ''))
      .join('')
      .replace(/\s+/g, ''),
    'hex',
  );
}

export const MARKER = 'ff'.repeat(16);

/** Well-formed attributes: ORIGIN IGP, AS_PATH 64600 (2-octet), NEXT_HOP 192.0.2.11. */
export const ORIGIN = '40 01 01 00';
export const AS_PATH = '40 02 04 02 01 fc58';
export const NEXT_HOP = '40 03 04 c000020b';

/** An UPDATE with the given attribute bytes and NLRI bytes (classic fields). */
export function update(attrs: string, nlri = '20 c6336401', withdrawn = ''): Buffer {
  const a = hex(attrs);
  const n = hex(nlri);
  const w = hex(withdrawn);
  const body = Buffer.concat([Buffer.from([w.length >> 8, w.length & 0xff]), w, Buffer.from([a.length >> 8, a.length & 0xff]), a, n]);
  const len = 19 + body.length;
  return Buffer.concat([hex(MARKER), Buffer.from([len >> 8, len & 0xff, 2]), body]);
}

/** The NOTIFICATION a message's decoding throws. */
export function decodeError(bytes: Uint8Array, options: CodecOptions = { fourOctetAs: false }): Notification {
  try {
    decodeMessage(bytes, options);
  } catch (err) {
    if (err instanceof BgpDecodeError) return err.notification;
    throw err;
  }
  throw new Error('decoded without error');
}

/** `[code, subcode, data hex]`, data spaces ignored. */
export type ExpectedNotification = readonly [number, number, string?];

export function expectNotification(n: Notification, [code, subcode, data = '']: ExpectedNotification): void {
  expect({ code: n.code, subcode: n.subcode, data: Buffer.from(n.data).toString('hex') }).toEqual({ code, subcode, data: data.replace(/\s+/g, '') });
}

/** `[attribute, action, reason]` of each error the session survives. */
export type ExpectedError = readonly [number, 'treat-as-withdraw' | 'attribute-discard', string];

/** Decodes an UPDATE that must not reset the session and returns its errors as table rows. */
export function updateErrors(bytes: Uint8Array, options: CodecOptions = { fourOctetAs: false }): ExpectedError[] {
  const m = decodeMessage(bytes, options);
  if (m.type !== 'update') throw new Error(`decoded a ${m.type}`);
  return (m.errors ?? []).map((e) => [e.attribute, e.action, e.reason]);
}
