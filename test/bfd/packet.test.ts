/** BFD Control packets: golden bytes written from RFC 5880 §4.1, and every discard rule of §6.8.6 that needs no session. */
import { describe, expect, it } from 'vitest';
import { decodeControl, diagnosticName, encodeControl, type BfdControlPacket } from '../../src/bfd/packet.js';

const up: BfdControlPacket = {
  diag: 0,
  state: 'Up',
  poll: true,
  final: false,
  cpi: false,
  auth: false,
  demand: false,
  multipoint: false,
  detectMult: 3,
  myDiscriminator: 0x01020304,
  yourDiscriminator: 0xa0b0c0d0,
  desiredMinTxUs: 300_000,
  requiredMinRxUs: 300_000,
  requiredMinEchoRxUs: 0,
};
// Vers 1, Diag 0 | Sta 3 (Up), P | mult 3 | length 24 | discriminators | 300000 = 0x000493e0 twice | echo 0
const UP_BYTES = '20e00318' + '01020304' + 'a0b0c0d0' + '000493e0' + '000493e0' + '00000000';

describe('BFD Control packets', () => {
  it('encodes the mandatory section byte for byte', () => {
    expect(encodeControl(up).toString('hex')).toBe(UP_BYTES);
    const down = encodeControl({ ...up, diag: 1, state: 'Down', poll: false, final: true, yourDiscriminator: 0, desiredMinTxUs: 1_000_000 });
    // Diag 1 in the low five bits; Sta 1 (Down) with F; 1,000,000 = 0x000f4240.
    expect(down.toString('hex')).toBe('215003180102030400000000000f4240000493e000000000');
  });

  it('decodes what it encodes, every flag in its place', () => {
    expect(decodeControl(Buffer.from(UP_BYTES, 'hex'))).toEqual(up);
    const flags = { ...up, poll: false, final: true, cpi: true, demand: true };
    expect(decodeControl(encodeControl(flags))).toEqual(flags);
    expect(decodeControl(encodeControl({ ...up, state: 'AdminDown', diag: 7, yourDiscriminator: 0 }))).toMatchObject({ state: 'AdminDown', diag: 7 });
  });

  it('takes a packet longer than its Length field says (trailing bytes are the datagram\'s, not ours)', () => {
    const b = Buffer.concat([Buffer.from(UP_BYTES, 'hex'), Buffer.alloc(4)]);
    expect(decodeControl(b)).toEqual(up);
  });

  const bytes = (patch: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(UP_BYTES, 'hex');
    patch(b);
    return b;
  };
  const discards: [string, Buffer, string][] = [
    ['a short datagram', Buffer.from(UP_BYTES, 'hex').subarray(0, 20), '20 bytes, shorter than a Control packet'],
    ['version 0', bytes((b) => (b[0] = 0x00)), 'version 0'],
    ['version 2', bytes((b) => (b[0] = 0x40)), 'version 2'],
    ['a Length under 24', bytes((b) => (b[3] = 20)), 'Length field 20'],
    ['a Length beyond the datagram', bytes((b) => (b[3] = 28)), 'Length field 28 beyond the 24 bytes received'],
    ['the A bit (no authentication here)', bytes((b) => ((b[1] = b[1]! | 0x04), (b[3] = 24))), 'Length field 24'],
    ['Detect Mult 0', bytes((b) => (b[2] = 0)), 'Detect Mult 0'],
    ['the Multipoint bit', bytes((b) => (b[1] = b[1]! | 0x01)), 'the Multipoint bit'],
    ['My Discriminator 0', bytes((b) => b.writeUInt32BE(0, 4)), 'My Discriminator 0'],
    ['Your Discriminator 0 while Up', bytes((b) => b.writeUInt32BE(0, 8)), 'Your Discriminator 0 in state Up'],
  ];
  for (const [name, b, reason] of discards) {
    it(`discards ${name}`, () => {
      expect(decodeControl(b)).toEqual({ discard: reason });
    });
  }

  it('an authenticated packet long enough for its section is still refused: no authentication is configured', () => {
    const b = Buffer.concat([bytes((b) => ((b[1] = b[1]! | 0x04), (b[3] = 27))), Buffer.from([1, 3, 0])]);
    expect(decodeControl(b)).toEqual({ discard: 'authenticated, and no authentication is configured' });
  });

  it('names the diagnostics as RFC 5880 does', () => {
    expect(diagnosticName(1)).toBe('Control Detection Time Expired');
    expect(diagnosticName(3)).toBe('Neighbor Signaled Session Down');
    expect(diagnosticName(7)).toBe('Administratively Down');
    expect(diagnosticName(31)).toBe('diagnostic 31');
  });
});
