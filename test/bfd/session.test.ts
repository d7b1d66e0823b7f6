/**
 * The BFD state machine of RFC 5880 §6.8.6 and its timers (§6.8.2-§6.8.4,
 * §6.8.7), two sessions talking over a link on a manual clock that can
 * lose packets one way or both.
 */
import { describe, expect, it } from 'vitest';
import { Diag, decodeControl, type BfdControlPacket, type BfdState } from '../../src/bfd/packet.js';
import { BfdSession, SLOW_TX_US, type BfdStateChange } from '../../src/bfd/session.js';
import { ManualClock } from '../../src/runtime/clock.js';

interface Side {
  session: BfdSession;
  changes: BfdStateChange[];
  /** Packets this side sent, with when. */
  sent: { at: number; packet: BfdControlPacket }[];
  /** Whether what this side sends reaches the other. */
  link: boolean;
}

function pair(options: { intervalMs?: number; mult?: number; random?: () => number } = {}): { clock: ManualClock; a: Side; b: Side } {
  const clock = new ManualClock(1_000);
  const make = (discr: number, deliver: (p: BfdControlPacket) => void): Side => {
    const side: Side = { session: undefined as unknown as BfdSession, changes: [], sent: [], link: true };
    side.session = new BfdSession({
      clock,
      myDiscriminator: discr,
      intervalUs: (options.intervalMs ?? 100) * 1000,
      detectMult: options.mult ?? 3,
      random: options.random ?? (() => 0.5),
      onStateChange: (c) => side.changes.push(c),
      send: (bytes) => {
        const p = decodeControl(bytes);
        if ('discard' in p) throw new Error(`sent a packet its peer discards: ${p.discard}`);
        side.sent.push({ at: clock.now(), packet: p });
        // One millisecond on the wire.
        if (side.link) clock.setTimeout(() => deliver(p), 1);
      },
    });
    return side;
  };
  const sides: { a?: Side; b?: Side } = {};
  sides.a = make(0x1111, (p) => sides.b!.session.receive(p));
  sides.b = make(0x2222, (p) => sides.a!.session.receive(p));
  return { clock, a: sides.a, b: sides.b };
}

const states = (s: Side): BfdState[] => s.changes.map((c) => c.state);

describe('BFD session', () => {
  it('two sessions come up through Init, then send at the configured pace after a Poll Sequence', () => {
    const { clock, a, b } = pair();
    a.session.start();
    b.session.start();
    clock.advance(3_000);
    expect(states(a)).toEqual(['Init', 'Up']);
    expect(states(b)).toEqual(['Init', 'Up']);
    expect(a.session.status()).toMatchObject({ state: 'Up', remoteState: 'Up', remoteDiscriminator: 0x2222, txIntervalMs: 100, detectionTimeMs: 300 });
    // Before Up, never faster than once a second (§6.8.3).
    const beforeUp = a.sent.filter((s) => s.packet.state !== 'Up');
    for (const s of beforeUp) expect(s.packet.desiredMinTxUs).toBe(SLOW_TX_US);
    // A Poll went out once Up, and was answered with a Final.
    expect(a.sent.some((s) => s.packet.poll && s.packet.state === 'Up')).toBe(true);
    expect(b.sent.some((s) => s.packet.final)).toBe(true);
    // Poll and Final never together; the Poll stops once answered.
    for (const s of [...a.sent, ...b.sent]) expect(s.packet.poll && s.packet.final).toBe(false);
    const n = a.sent.length;
    clock.advance(1_000);
    expect(a.sent.slice(n).some((s) => s.packet.poll)).toBe(false);
    // About ten a second at 100 ms less jitter (0.5 → 87.5 ms).
    expect(a.sent.length - n).toBeGreaterThanOrEqual(10);
    expect(a.sent.length - n).toBeLessThanOrEqual(12);
  });

  it('silence from the remote: down after Detect Mult x the interval, with Control Detection Time Expired; back up once it speaks', () => {
    const { clock, a, b } = pair();
    a.session.start();
    b.session.start();
    clock.advance(3_000);
    b.link = false;
    // b's last packet reached a 1 ms after it left; a gives up 300 ms (3 x 100) after that.
    const lastHeard = b.sent.at(-1)!.at + 1;
    clock.advance(lastHeard + 299 - clock.now());
    expect(a.session.status().state).toBe('Up');
    clock.advance(2);
    expect(a.changes.at(-1)).toMatchObject({ previous: 'Up', state: 'Down', diag: Diag.DetectionTimeExpired, remoteDiag: undefined });
    expect(a.session.status()).toMatchObject({ remoteDiscriminator: 0, txIntervalMs: 1000 });
    // b hears a say Down and goes down too, saying why.
    clock.advance(1_500);
    expect(b.changes).toContainEqual({ previous: 'Up', state: 'Down', diag: Diag.NeighborSignaledDown, remoteDiag: Diag.DetectionTimeExpired });
    b.link = true;
    clock.advance(5_000);
    expect(a.session.status().state).toBe('Up');
    expect(b.session.status().state).toBe('Up');
    expect(a.session.status().diag).toBe(Diag.None);
  });

  it('stop(true) tells the remote AdminDown: it goes Down with Neighbor Signaled Session Down, not a time-out', () => {
    const { clock, a, b } = pair();
    a.session.start();
    b.session.start();
    clock.advance(3_000);
    a.session.stop(true);
    clock.advance(5);
    expect(a.sent.slice(-3).map((s) => [s.packet.state, s.packet.diag])).toEqual([
      ['AdminDown', Diag.AdminDown],
      ['AdminDown', Diag.AdminDown],
      ['AdminDown', Diag.AdminDown],
    ]);
    expect(b.changes.at(-1)).toMatchObject({ state: 'Down', diag: Diag.NeighborSignaledDown, remoteDiag: Diag.AdminDown });
    // Nothing more from a, and no timer left on its side.
    const n = a.sent.length;
    clock.advance(5_000);
    expect(a.sent.length).toBe(n);
  });

  it('silence(true) stops the packets without a word; the remote times the session out; silence(false) brings it back', () => {
    const { clock, a, b } = pair();
    a.session.start();
    b.session.start();
    clock.advance(3_000);
    a.session.silence(true);
    const n = a.sent.length;
    clock.advance(400);
    expect(a.sent.length).toBe(n);
    expect(b.changes.at(-1)).toMatchObject({ state: 'Down', diag: Diag.DetectionTimeExpired });
    a.session.silence(false);
    clock.advance(5_000);
    expect(b.session.status().state).toBe('Up');
  });

  it('the remote\'s Required Min RX slows what we send; 0 stops it, though a Poll is still answered', () => {
    const { clock, a } = pair();
    const remote = (p: Partial<BfdControlPacket>): BfdControlPacket => ({
      diag: 0, state: 'Init', poll: false, final: false, cpi: false, auth: false, demand: false, multipoint: false, detectMult: 3,
      myDiscriminator: 0x9999, yourDiscriminator: 0x1111, desiredMinTxUs: 100_000, requiredMinRxUs: 500_000, requiredMinEchoRxUs: 0, ...p,
    });
    a.link = false;
    a.session.start();
    clock.advance(1_500);
    a.session.receive(remote({ state: 'Init' }));
    expect(a.session.status().state).toBe('Up');
    a.session.receive(remote({ state: 'Up', final: true }));
    expect(a.session.status().txIntervalMs).toBe(500);
    let n = a.sent.length;
    for (let t = 0; t < 2_000; t += 50) {
      clock.advance(50);
      a.session.receive(remote({ state: 'Up' }));
    }
    // 2 s at 500 ms less jitter: 4 or 5 packets.
    expect(a.sent.length - n).toBeGreaterThanOrEqual(4);
    expect(a.sent.length - n).toBeLessThanOrEqual(5);
    n = a.sent.length;
    a.session.receive(remote({ state: 'Up', requiredMinRxUs: 0 }));
    for (let t = 0; t < 1_000; t += 50) {
      clock.advance(50);
      a.session.receive(remote({ state: 'Up', requiredMinRxUs: 0 }));
    }
    expect(a.sent.length).toBe(n);
    a.session.receive(remote({ state: 'Up', requiredMinRxUs: 0, poll: true }));
    expect(a.sent.at(-1)?.packet.final).toBe(true);
  });

  it('jitter keeps each interval within 75-100 % (75-90 % with a multiplier of 1)', () => {
    for (const [mult, top] of [
      [3, 1],
      [1, 0.9],
    ] as const) {
      const values = [0, 0.999];
      let i = 0;
      const { clock, a, b } = pair({ mult, random: () => values[i++ % 2]! });
      a.session.start();
      b.session.start();
      clock.advance(3_000);
      const from = a.sent.length;
      clock.advance(2_000);
      const gaps = a.sent.slice(from).map((s, k, all) => (k === 0 ? undefined : s.at - all[k - 1]!.at)).filter((g): g is number => g !== undefined);
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(75);
      expect(Math.max(...gaps)).toBeLessThanOrEqual(100 * top + 1);
    }
  });

  it('a Down packet while Up takes the session down (the remote restarted)', () => {
    const { clock, a, b } = pair();
    a.session.start();
    b.session.start();
    clock.advance(3_000);
    a.session.receive({ ...b.sent.at(-1)!.packet, state: 'Down', diag: 0, yourDiscriminator: 0 });
    expect(a.changes.at(-1)).toMatchObject({ previous: 'Up', state: 'Down', diag: Diag.NeighborSignaledDown });
    clock.advance(5_000);
    expect(a.session.status().state).toBe('Up');
  });
});
