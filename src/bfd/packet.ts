/**
 * BFD Control packets (RFC 5880 §4.1), the mandatory section only: pybal
 * uses no authentication, so a packet with the A bit is refused (§6.8.6).
 *
 *   0: Vers(3) Diag(5)   1: Sta(2) P F C A D M   2: Detect Mult   3: Length
 *   4: My Discriminator  8: Your Discriminator
 *  12: Desired Min TX Interval  16: Required Min RX Interval
 *  20: Required Min Echo RX Interval (all intervals in microseconds)
 */

export const BFD_VERSION = 1;
export const BFD_PACKET_LENGTH = 24;
/** RFC 5881 §4: single-hop Control packets go to this UDP port. */
export const BFD_CONTROL_PORT = 3784;

export const BFD_STATES = ['AdminDown', 'Down', 'Init', 'Up'] as const;
export type BfdState = (typeof BFD_STATES)[number];

/** RFC 5880 §4.1 diagnostic codes, by number. */
export const BFD_DIAGNOSTICS = [
  'No Diagnostic',
  'Control Detection Time Expired',
  'Echo Function Failed',
  'Neighbor Signaled Session Down',
  'Forwarding Plane Reset',
  'Path Down',
  'Concatenated Path Down',
  'Administratively Down',
  'Reverse Concatenated Path Down',
] as const;

export const Diag = {
  None: 0,
  DetectionTimeExpired: 1,
  NeighborSignaledDown: 3,
  AdminDown: 7,
} as const;

export interface BfdControlPacket {
  readonly diag: number;
  readonly state: BfdState;
  readonly poll: boolean;
  readonly final: boolean;
  /** Control Plane Independent. */
  readonly cpi: boolean;
  readonly auth: boolean;
  readonly demand: boolean;
  readonly multipoint: boolean;
  readonly detectMult: number;
  readonly myDiscriminator: number;
  readonly yourDiscriminator: number;
  readonly desiredMinTxUs: number;
  readonly requiredMinRxUs: number;
  readonly requiredMinEchoRxUs: number;
}

export function encodeControl(p: BfdControlPacket): Buffer {
  const b = Buffer.alloc(BFD_PACKET_LENGTH);
  b[0] = (BFD_VERSION << 5) | (p.diag & 0x1f);
  b[1] =
    (BFD_STATES.indexOf(p.state) << 6) |
    (p.poll ? 0x20 : 0) |
    (p.final ? 0x10 : 0) |
    (p.cpi ? 0x08 : 0) |
    (p.auth ? 0x04 : 0) |
    (p.demand ? 0x02 : 0) |
    (p.multipoint ? 0x01 : 0);
  b[2] = p.detectMult;
  b[3] = BFD_PACKET_LENGTH;
  b.writeUInt32BE(p.myDiscriminator >>> 0, 4);
  b.writeUInt32BE(p.yourDiscriminator >>> 0, 8);
  b.writeUInt32BE(p.desiredMinTxUs >>> 0, 12);
  b.writeUInt32BE(p.requiredMinRxUs >>> 0, 16);
  b.writeUInt32BE(p.requiredMinEchoRxUs >>> 0, 20);
  return b;
}

/**
 * The packet, or why it must be discarded (RFC 5880 §6.8.6, the checks that
 * need no session: version, length, detect multiplier, multipoint, my
 * discriminator, authentication).
 */
export function decodeControl(b: Uint8Array): BfdControlPacket | { readonly discard: string } {
  if (b.length < BFD_PACKET_LENGTH) return { discard: `${b.length} bytes, shorter than a Control packet` };
  const version = b[0]! >> 5;
  if (version !== BFD_VERSION) return { discard: `version ${version}` };
  const flags = b[1]!;
  const auth = (flags & 0x04) !== 0;
  const length = b[3]!;
  if (length < BFD_PACKET_LENGTH || (auth && length < BFD_PACKET_LENGTH + 2)) return { discard: `Length field ${length}` };
  if (length > b.length) return { discard: `Length field ${length} beyond the ${b.length} bytes received` };
  if (auth) return { discard: 'authenticated, and no authentication is configured' };
  const view = Buffer.from(b.buffer, b.byteOffset, b.length);
  const packet: BfdControlPacket = {
    diag: b[0]! & 0x1f,
    state: BFD_STATES[flags >> 6]!,
    poll: (flags & 0x20) !== 0,
    final: (flags & 0x10) !== 0,
    cpi: (flags & 0x08) !== 0,
    auth,
    demand: (flags & 0x02) !== 0,
    multipoint: (flags & 0x01) !== 0,
    detectMult: b[2]!,
    myDiscriminator: view.readUInt32BE(4),
    yourDiscriminator: view.readUInt32BE(8),
    desiredMinTxUs: view.readUInt32BE(12),
    requiredMinRxUs: view.readUInt32BE(16),
    requiredMinEchoRxUs: view.readUInt32BE(20),
  };
  if (packet.detectMult === 0) return { discard: 'Detect Mult 0' };
  if (packet.multipoint) return { discard: 'the Multipoint bit' };
  if (packet.myDiscriminator === 0) return { discard: 'My Discriminator 0' };
  if (packet.yourDiscriminator === 0 && packet.state !== 'Down' && packet.state !== 'AdminDown') {
    return { discard: `Your Discriminator 0 in state ${packet.state}` };
  }
  return packet;
}

export function diagnosticName(diag: number): string {
  return BFD_DIAGNOSTICS[diag] ?? `diagnostic ${diag}`;
}
