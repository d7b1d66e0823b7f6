/**
 * NOTIFICATION values and the decode error that carries one: whoever decodes
 * a bad message learns exactly what to send back (RFC 4271 §6).
 */
import { CeaseSubcode, ErrorCode } from './constants.js';

export interface Notification {
  readonly code: number;
  readonly subcode: number;
  readonly data: Uint8Array;
}

const EMPTY = new Uint8Array(0);

export function notification(code: number, subcode: number, data: Uint8Array = EMPTY): Notification {
  return { code, subcode, data };
}

export class BgpDecodeError extends Error {
  readonly notification: Notification;

  constructor(n: Notification) {
    super(`malformed BGP message: NOTIFICATION ${describeNotification(n)}`);
    this.name = 'BgpDecodeError';
    this.notification = n;
  }
}

const CODE_NAMES: Record<number, string> = {
  1: 'Message Header Error',
  2: 'OPEN Message Error',
  3: 'UPDATE Message Error',
  4: 'Hold Timer Expired',
  5: 'Finite State Machine Error',
  6: 'Cease',
  7: 'ROUTE-REFRESH Message Error',
};

/** `6/2 (Cease) "maintenance"` for logs and the status API. */
export function describeNotification(n: Notification): string {
  const name = CODE_NAMES[n.code] ?? 'unknown';
  const text = shutdownMessage(n);
  const tail = text !== undefined ? ` "${text}"` : n.data.length > 0 ? ` data=${Buffer.from(n.data).toString('hex')}` : '';
  return `${n.code}/${n.subcode} (${name})${tail}`;
}

/** RFC 8203 / RFC 9003: Cease 6/2 and 6/4 may carry a length-prefixed UTF-8 message of up to 255 bytes. */
export function shutdownNotification(message: string, subcode: number = CeaseSubcode.AdministrativeShutdown): Notification {
  let bytes = Buffer.from(message, 'utf8');
  if (bytes.length > 255) {
    // Cut at a character boundary so that the message stays valid UTF-8.
    let cut = 255;
    while (cut > 0 && ((bytes[cut] ?? 0) & 0xc0) === 0x80) cut--;
    bytes = bytes.subarray(0, cut);
  }
  const data = new Uint8Array(1 + bytes.length);
  data[0] = bytes.length;
  data.set(bytes, 1);
  return notification(ErrorCode.Cease, subcode, data);
}

/** The shutdown communication of a Cease 6/2 or 6/4, when it has a well-formed one. */
export function shutdownMessage(n: Notification): string | undefined {
  if (n.code !== ErrorCode.Cease) return undefined;
  if (n.subcode !== CeaseSubcode.AdministrativeShutdown && n.subcode !== CeaseSubcode.AdministrativeReset) return undefined;
  const len = n.data[0];
  if (len === undefined || len === 0 || n.data.length !== len + 1) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(n.data.subarray(1));
  } catch {
    return undefined;
  }
}
