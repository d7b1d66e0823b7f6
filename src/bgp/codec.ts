/**
 * BGP-4 messages <-> bytes (RFC 4271 §4), pure. `encodeMessage` gives a whole
 * message with its header; `decodeMessage` takes one whole message (as the
 * framer cuts them) and either returns it or throws a BgpDecodeError that
 * carries the NOTIFICATION to send back.
 */
import { formatIpv4, parseIpv4, type Prefix } from './address.js';
import { ByteReader, ByteWriter } from './bytes.js';
import {
  BGP_VERSION,
  CapabilityCode,
  ErrorCode,
  HEADER_LENGTH,
  HeaderSubcode,
  MARKER_LENGTH,
  MAX_MESSAGE_LENGTH,
  MessageType,
  MIN_LENGTH,
  OpenSubcode,
  OptionalParameterType,
  RouteRefreshSubcode,
  RouteRefreshSubtype,
} from './constants.js';
import { encodeUpdateBody, writePrefix, type CodecOptions, type UpdateMessage } from './codec-update.js';
import { decodeUpdateBody } from './decode-update.js';
import { BgpDecodeError, notification, type Notification } from './notification.js';

export type { CodecOptions, UpdateMessage } from './codec-update.js';

export type Capability =
  | { readonly kind: 'multiprotocol'; readonly afi: number; readonly safi: number }
  | { readonly kind: 'routeRefresh' }
  | { readonly kind: 'fourOctetAs'; readonly asn: number }
  /** RFC 4724 §3: Restart State (R), Notification (N, RFC 8538), Restart Time, and per family the Forwarding State (F). */
  | {
      readonly kind: 'gracefulRestart';
      readonly restartState: boolean;
      readonly notification: boolean;
      readonly restartTimeSec: number;
      readonly families: readonly { readonly afi: number; readonly safi: number; readonly forwarding: boolean }[];
    }
  | { readonly kind: 'unknown'; readonly code: number; readonly value: Uint8Array };

export interface OpenMessage {
  readonly type: 'open';
  readonly version: number;
  /** The 2-octet My Autonomous System field (AS_TRANS when the real ASN needs 4 octets). */
  readonly myAs: number;
  readonly holdTimeSec: number;
  readonly bgpId: string;
  readonly capabilities: readonly Capability[];
}

export interface NotificationMessage extends Notification {
  readonly type: 'notification';
}

export interface KeepaliveMessage {
  readonly type: 'keepalive';
}

export interface RouteRefreshMessage {
  readonly type: 'routeRefresh';
  readonly afi: number;
  /** RFC 7313 §3: 0 a refresh request, 1 BoRR, 2 EoRR; any other is ignored. */
  readonly subtype: number;
  readonly safi: number;
}

export type BgpMessage = OpenMessage | UpdateMessage | NotificationMessage | KeepaliveMessage | RouteRefreshMessage;

const DEFAULT_OPTIONS: CodecOptions = { fourOctetAs: false };

// ---------------------------------------------------------------- encoding

function frame(type: number, body: Uint8Array): Buffer {
  const length = HEADER_LENGTH + body.length;
  if (length > MAX_MESSAGE_LENGTH) throw new Error(`BGP message of ${length} bytes exceeds ${MAX_MESSAGE_LENGTH}`);
  const out = Buffer.alloc(length);
  out.fill(0xff, 0, MARKER_LENGTH);
  out.writeUInt16BE(length, 16);
  out.writeUInt8(type, 18);
  out.set(body, HEADER_LENGTH);
  return out;
}

function encodeCapability(w: ByteWriter, cap: Capability): void {
  switch (cap.kind) {
    case 'multiprotocol':
      w.u8(CapabilityCode.Multiprotocol).u8(4).u16(cap.afi).u8(0).u8(cap.safi);
      break;
    case 'routeRefresh':
      w.u8(CapabilityCode.RouteRefresh).u8(0);
      break;
    case 'fourOctetAs':
      w.u8(CapabilityCode.FourOctetAs).u8(4).u32(cap.asn);
      break;
    case 'gracefulRestart':
      w.u8(CapabilityCode.GracefulRestart).u8(2 + 4 * cap.families.length);
      w.u16((cap.restartState ? 0x8000 : 0) | (cap.notification ? 0x4000 : 0) | (cap.restartTimeSec & 0x0fff));
      for (const f of cap.families) w.u16(f.afi).u8(f.safi).u8(f.forwarding ? 0x80 : 0);
      break;
    case 'unknown':
      w.u8(cap.code).u8(cap.value.length).bytes(cap.value);
  }
}

function encodeOpenBody(msg: OpenMessage): Buffer {
  const id = parseIpv4(msg.bgpId);
  if (!id) throw new Error(`BGP identifier must be an IPv4 address: ${msg.bgpId}`);
  const w = new ByteWriter(64);
  w.u8(msg.version).u16(msg.myAs).u16(msg.holdTimeSec).bytes(id);
  if (msg.capabilities.length === 0) return w.u8(0).result();
  const caps = new ByteWriter(64);
  for (const c of msg.capabilities) encodeCapability(caps, c);
  const capBytes = caps.result();
  // One Capabilities parameter holding every capability (RFC 5492 allows either form).
  w.u8(capBytes.length + 2).u8(OptionalParameterType.Capabilities).u8(capBytes.length).bytes(capBytes);
  return w.result();
}

export function encodeMessage(msg: BgpMessage, options: CodecOptions = DEFAULT_OPTIONS): Buffer {
  switch (msg.type) {
    case 'open':
      return frame(MessageType.Open, encodeOpenBody(msg));
    case 'update':
      return frame(MessageType.Update, encodeUpdateBody(msg, options));
    case 'notification':
      return frame(MessageType.Notification, new ByteWriter(2 + msg.data.length).u8(msg.code).u8(msg.subcode).bytes(msg.data).result());
    case 'keepalive':
      return frame(MessageType.Keepalive, new Uint8Array(0));
    case 'routeRefresh':
      return frame(MessageType.RouteRefresh, new ByteWriter(4).u16(msg.afi).u8(msg.subtype).u8(msg.safi).result());
  }
}

/**
 * An UPDATE from attribute bytes encoded once (see encodeAttributes) and the
 * classic withdrawn and NLRI fields: the fast path for many messages sharing
 * their attributes.
 */
export function encodeUpdateWithAttributes(withdrawn: readonly Prefix[], attributes: Uint8Array, nlri: readonly Prefix[]): Buffer {
  const w = new ByteWriter(HEADER_LENGTH + 4 + attributes.length + 5 * (withdrawn.length + nlri.length));
  for (let i = 0; i < MARKER_LENGTH; i++) w.u8(0xff);
  w.u16(0).u8(MessageType.Update).u16(0);
  for (const p of withdrawn) writePrefix(w, p);
  w.patch16(HEADER_LENGTH, w.length - HEADER_LENGTH - 2);
  w.u16(attributes.length).bytes(attributes);
  for (const p of nlri) writePrefix(w, p);
  if (w.length > MAX_MESSAGE_LENGTH) throw new Error(`BGP message of ${w.length} bytes exceeds ${MAX_MESSAGE_LENGTH}`);
  w.patch16(MARKER_LENGTH, w.length);
  return w.result();
}

export function notificationMessage(n: Notification): NotificationMessage {
  return { type: 'notification', code: n.code, subcode: n.subcode, data: n.data };
}

// ---------------------------------------------------------------- decoding

function lengthError(length: number): BgpDecodeError {
  const data = Buffer.alloc(2);
  data.writeUInt16BE(length & 0xffff, 0);
  return new BgpDecodeError(notification(ErrorCode.MessageHeader, HeaderSubcode.BadMessageLength, data));
}

/**
 * Checks a message header (the first 19 bytes) and returns the message length.
 * Used by the framer before the whole message has arrived.
 */
export function checkHeader(header: Uint8Array): number {
  for (let i = 0; i < MARKER_LENGTH; i++) {
    if (header[i] !== 0xff) throw new BgpDecodeError(notification(ErrorCode.MessageHeader, HeaderSubcode.ConnectionNotSynchronized));
  }
  const length = ((header[16] ?? 0) << 8) | (header[17] ?? 0);
  if (length < HEADER_LENGTH || length > MAX_MESSAGE_LENGTH) throw lengthError(length);
  return length;
}

const openUnspecific = notification(ErrorCode.OpenMessage, OpenSubcode.Unspecific);

function decodeCapabilities(r: ByteReader, into: Capability[]): void {
  while (r.remaining > 0) {
    const code = r.u8(openUnspecific);
    const len = r.u8(openUnspecific);
    const value = r.bytes(len, openUnspecific);
    const b = Buffer.from(value);
    if (code === CapabilityCode.Multiprotocol && len === 4) {
      into.push({ kind: 'multiprotocol', afi: b.readUInt16BE(0), safi: b.readUInt8(3) });
    } else if (code === CapabilityCode.RouteRefresh && len === 0) {
      into.push({ kind: 'routeRefresh' });
    } else if (code === CapabilityCode.FourOctetAs && len === 4) {
      into.push({ kind: 'fourOctetAs', asn: b.readUInt32BE(0) });
    } else if (code === CapabilityCode.GracefulRestart && len >= 2 && (len - 2) % 4 === 0) {
      const word = b.readUInt16BE(0);
      const families = [];
      for (let at = 2; at < len; at += 4) families.push({ afi: b.readUInt16BE(at), safi: b.readUInt8(at + 2), forwarding: (b.readUInt8(at + 3) & 0x80) !== 0 });
      into.push({ kind: 'gracefulRestart', restartState: (word & 0x8000) !== 0, notification: (word & 0x4000) !== 0, restartTimeSec: word & 0x0fff, families });
    } else if (code === CapabilityCode.Multiprotocol || code === CapabilityCode.FourOctetAs || code === CapabilityCode.RouteRefresh) {
      throw new BgpDecodeError(openUnspecific);
    } else {
      into.push({ kind: 'unknown', code, value: Uint8Array.from(value) });
    }
  }
}

function decodeOpenBody(body: Uint8Array): OpenMessage {
  const r = new ByteReader(body);
  const version = r.u8(openUnspecific);
  if (version !== BGP_VERSION) {
    throw new BgpDecodeError(notification(ErrorCode.OpenMessage, OpenSubcode.UnsupportedVersionNumber, Uint8Array.of(0, BGP_VERSION)));
  }
  const myAs = r.u16(openUnspecific);
  const holdTimeSec = r.u16(openUnspecific);
  const bgpId = formatIpv4(r.bytes(4, openUnspecific));
  const optLength = r.u8(openUnspecific);
  if (optLength !== r.remaining) throw new BgpDecodeError(openUnspecific);
  const capabilities: Capability[] = [];
  while (r.remaining > 0) {
    const type = r.u8(openUnspecific);
    const len = r.u8(openUnspecific);
    r.need(len, openUnspecific);
    if (type !== OptionalParameterType.Capabilities) {
      throw new BgpDecodeError(notification(ErrorCode.OpenMessage, OpenSubcode.UnsupportedOptionalParameter));
    }
    decodeCapabilities(new ByteReader(body, r.off, r.off + len), capabilities);
    r.off += len;
  }
  return { type: 'open', version, myAs, holdTimeSec, bgpId, capabilities };
}

/** Decodes one whole message, header included. */
export function decodeMessage(bytes: Uint8Array, options: CodecOptions = DEFAULT_OPTIONS): BgpMessage {
  if (bytes.length < HEADER_LENGTH) throw lengthError(bytes.length);
  const length = checkHeader(bytes);
  if (length !== bytes.length) throw lengthError(length);
  const type = bytes[18] ?? 0;
  if (!(type in MIN_LENGTH)) {
    throw new BgpDecodeError(notification(ErrorCode.MessageHeader, HeaderSubcode.BadMessageType, Uint8Array.of(type)));
  }
  if (type === MessageType.RouteRefresh) return decodeRouteRefresh(bytes);
  const min = MIN_LENGTH[type as MessageType];
  if (length < min || (type === MessageType.Keepalive && length !== min)) throw lengthError(length);
  const body = bytes.subarray(HEADER_LENGTH);
  switch (type) {
    case MessageType.Open:
      return decodeOpenBody(body);
    case MessageType.Update:
      return decodeUpdateBody(body, options);
    case MessageType.Notification:
      return { type: 'notification', code: body[0] ?? 0, subcode: body[1] ?? 0, data: Uint8Array.from(body.subarray(2)) };
    default:
      return { type: 'keepalive' };
  }
}

/**
 * ROUTE-REFRESH (RFC 2918 §3, RFC 7313 §3, §5): a 4-octet body. Its length
 * is judged by its subtype: a BoRR or EoRR of another length is a
 * ROUTE-REFRESH Message Error; a subtype other than 0, 1 or 2 is ignored
 * whatever its length, so it is decoded for the FSM to ignore; a longer
 * request (subtype 0) would carry ORF entries (RFC 5291), which we never
 * negotiate, so it stays a Bad Message Length, as is a body too short to
 * hold a subtype.
 */
function decodeRouteRefresh(bytes: Uint8Array): RouteRefreshMessage {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const subtype = b[HEADER_LENGTH + 2];
  if (subtype === undefined) throw lengthError(b.length);
  if (b.length !== MIN_LENGTH[MessageType.RouteRefresh]) {
    if (subtype === RouteRefreshSubtype.BeginningOfRouteRefresh || subtype === RouteRefreshSubtype.EndOfRouteRefresh) {
      // RFC 7313 §5: the data is the complete ROUTE-REFRESH message.
      throw new BgpDecodeError(notification(ErrorCode.RouteRefreshMessage, RouteRefreshSubcode.InvalidMessageLength, Uint8Array.from(b)));
    }
    if (subtype === RouteRefreshSubtype.Normal) throw lengthError(b.length);
  }
  return { type: 'routeRefresh', afi: b.readUInt16BE(HEADER_LENGTH), subtype, safi: b[HEADER_LENGTH + 3] ?? 0 };
}
