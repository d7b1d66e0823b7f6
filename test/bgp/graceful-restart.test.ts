/**
 * BGP graceful restart (RFC 4724) as pybal offers it: the capability in the
 * OPEN with the Forwarding State of each family, End-of-RIB held until the
 * table is ready (or half the restart time), and a restart that closes the
 * session without a NOTIFICATION or a withdrawal. Against a scripted peer
 * over loopback, the timers on a manual clock.
 */
import { describe, expect, test } from 'vitest';
import { decodeMessage, encodeMessage, type OpenMessage } from '../../src/bgp/codec.js';
import { localOpen, negotiate, type FsmConfig } from '../../src/bgp/fsm.js';
import { announcingThenReady } from '../../src/bgp/speaker.js';
import { PEER_OPEN, until } from './raw-peer.js';
import { route, speakerHarness, summary } from './speaker-harness.js';

const { setup } = speakerHarness();
const GR_PEER_OPEN: OpenMessage = {
  ...PEER_OPEN,
  capabilities: [...PEER_OPEN.capabilities, { kind: 'gracefulRestart', restartState: false, notification: false, restartTimeSec: 120, families: [] }],
};

describe('the graceful restart capability', () => {
  test('encodes as RFC 4724 §3 lays it out, and decodes back', () => {
    const open: OpenMessage = {
      type: 'open',
      version: 4,
      myAs: 64600,
      holdTimeSec: 90,
      bgpId: '192.0.2.11',
      capabilities: [
        {
          kind: 'gracefulRestart',
          restartState: true,
          notification: false,
          restartTimeSec: 120,
          families: [
            { afi: 1, safi: 1, forwarding: true },
            { afi: 2, safi: 1, forwarding: false },
          ],
        },
      ],
    };
    const bytes = encodeMessage(open);
    // Optional Parameters Length 14; parameter 2 (capabilities), length 12; capability 64, length 10:
    // R bit and 120 s (0x8078), then AFI 1 SAFI 1 with F (0x80), AFI 2 SAFI 1 without.
    expect(bytes.subarray(28).toString('hex')).toBe('0e020c400a80780001018000020100');
    expect(decodeMessage(bytes)).toEqual(open);
  });

  test('a capability of a length RFC 4724 does not allow is kept as unknown, not an error', () => {
    const open = encodeMessage({ ...PEER_OPEN, capabilities: [{ kind: 'unknown', code: 64, value: Uint8Array.of(0x00, 0x78, 0x00) }] });
    expect(decodeMessage(open)).toMatchObject({ capabilities: [{ kind: 'unknown', code: 64 }] });
  });

  const config = (forwarding: readonly (4 | 6)[]): FsmConfig => ({
    localAsn: 64600,
    routerId: '192.0.2.11',
    holdTimeSec: 90,
    peerAsn: undefined,
    families: [4, 6],
    connectRetryMs: 5000,
    gracefulRestart: { restartTimeSec: 60, forwarding: () => forwarding },
  });

  test('the OPEN offers it with Forwarding State only for the families the kernel forwards; negotiated when the peer offers it too', () => {
    expect(localOpen(config([4])).capabilities.at(-1)).toEqual({
      kind: 'gracefulRestart',
      // No `restarting` hook: R is never set.
      restartState: false,
      notification: false,
      restartTimeSec: 60,
      families: [
        { afi: 1, safi: 1, forwarding: true },
        { afi: 2, safi: 1, forwarding: false },
      ],
    });
    // A director that starts with an empty table: no F bit, the peer drops our stale routes at once.
    expect(localOpen(config([])).capabilities.at(-1)).toMatchObject({ families: [{ forwarding: false }, { forwarding: false }] });
    // Restart State (R) while the hook says this process is restarting (RFC 4724 §4.1), clear after.
    let restarting = true;
    const restartingConfig = { ...config([4]), gracefulRestart: { restartTimeSec: 60, forwarding: () => [4 as const], restarting: () => restarting } };
    expect(localOpen(restartingConfig).capabilities.at(-1)).toMatchObject({ restartState: true });
    restarting = false;
    expect(localOpen(restartingConfig).capabilities.at(-1)).toMatchObject({ restartState: false });
    const { gracefulRestart: _unused, ...without } = config([4]);
    expect(localOpen(without).capabilities.some((c) => c.kind === 'gracefulRestart')).toBe(false);
    expect(negotiate(config([4]), GR_PEER_OPEN)).toMatchObject({ ok: true, negotiated: { gracefulRestart: true } });
    expect(negotiate(config([4]), PEER_OPEN)).toMatchObject({ ok: true, negotiated: { gracefulRestart: false } });
    expect(negotiate(without, GR_PEER_OPEN)).toMatchObject({ ok: true, negotiated: { gracefulRestart: false } });
  });
});

describe('a speaker with graceful restart', () => {
  const gr = (forwarding: readonly (4 | 6)[] = [4, 6]) => ({ gracefulRestart: { restartTimeSec: 60, forwarding: () => forwarding } });

  test('routes go at once; End-of-RIB waits for markReady, after the routes set by then', async () => {
    const { conn, speaker } = await setup([route('198.51.100.1')], gr(), GR_PEER_OPEN);
    await until('the first route', () => summary(conn.received).includes('announce 198.51.100.1/32 med 0'));
    speaker.setAnnouncements([route('198.51.100.1'), route('2001:db8:2::1')]);
    await until('the second route', () => summary(conn.received).includes('announce 2001:db8:2::1/128 med 0'));
    await new Promise((r) => setTimeout(r, 50));
    expect(summary(conn.received).filter((l) => l.startsWith('eor'))).toEqual([]);
    speaker.setAnnouncements([route('198.51.100.1'), route('2001:db8:2::1'), route('198.51.100.3')]);
    speaker.markReady();
    await until('End-of-RIB', () => summary(conn.received).includes('eor 6'));
    const lines = summary(conn.received.slice(1));
    expect(lines.indexOf('announce 198.51.100.3/32 med 0')).toBeLessThan(lines.indexOf('eor 4'));
    expect(lines.filter((l) => l.startsWith('eor'))).toEqual(['eor 4', 'eor 6']);
    expect(speaker.status()[0]?.gracefulRestart).toBe(true);
    // The kernel forwarded (a restart) and End-of-RIB had not gone yet: the OPEN set Restart State.
    const open = conn.received[0];
    expect(open?.type === 'open' && open.capabilities.find((c) => c.kind === 'gracefulRestart')).toMatchObject({ restartState: true });
  });

  test('the daemon\'s publishes (announcingThenReady): the publish that makes the table ready sends its routes before End-of-RIB', async () => {
    // The daemon announces a VIP only once its service is programmed, and the
    // table is ready when every service is: both turn true together, before the
    // publish that carries the VIP. Said at that instant (as pybal did, from the
    // IPVS manager's callback), End-of-RIB went first, and the routers dropped
    // the stale route until the publish (seen with GoBGP in the lab).
    const { conn, speaker } = await setup([], gr(), GR_PEER_OPEN);
    let programmed = false;
    const target = announcingThenReady(speaker, () => programmed);
    target.setAnnouncements([]);
    await new Promise((r) => setTimeout(r, 50));
    expect(summary(conn.received).filter((l) => l.startsWith('eor'))).toEqual([]);
    programmed = true;
    target.setAnnouncements([route('198.51.100.1'), route('2001:db8:2::1')]);
    await until('End-of-RIB', () => summary(conn.received).includes('eor 6'));
    const lines = summary(conn.received.slice(1));
    expect(lines.indexOf('announce 198.51.100.1/32 med 0')).toBeGreaterThanOrEqual(0);
    expect(lines.indexOf('announce 198.51.100.1/32 med 0')).toBeLessThan(lines.indexOf('eor 4'));
    expect(lines.indexOf('announce 2001:db8:2::1/128 med 0')).toBeLessThan(lines.indexOf('eor 6'));
    // Later publishes change routes as usual; End-of-RIB is said once.
    target.setAnnouncements([route('198.51.100.1')]);
    await until('the withdrawal', () => summary(conn.received).includes('withdraw 2001:db8:2::1/128'));
    expect(summary(conn.received).filter((l) => l.startsWith('eor'))).toEqual(['eor 4', 'eor 6']);
  });

  test('a table never ready: End-of-RIB at half the restart time, said in the log', async () => {
    const { conn, clock, log } = await setup([route('198.51.100.1')], gr(), GR_PEER_OPEN);
    await until('the route', () => summary(conn.received).includes('announce 198.51.100.1/32 med 0'));
    clock.advance(29_000);
    await new Promise((r) => setTimeout(r, 30));
    expect(summary(conn.received).some((l) => l.startsWith('eor'))).toBe(false);
    clock.advance(1_000);
    await until('End-of-RIB', () => summary(conn.received).includes('eor 6'));
    expect(log.lines().some((l) => l.includes('The table is not ready 30 s after start: End-of-RIB goes now'))).toBe(true);
  });

  test('abandon(): the connection closes with no NOTIFICATION and no withdrawal', async () => {
    const { conn, speaker } = await setup([route('198.51.100.1'), route('2001:db8:2::1')], gr(), GR_PEER_OPEN);
    speaker.markReady();
    await until('End-of-RIB', () => summary(conn.received).includes('eor 6'));
    const before = conn.received.length;
    speaker.abandon();
    await until('the close', () => conn.closed);
    expect(conn.received.slice(before)).toEqual([]);
  });

  test('shutdown() still withdraws and sends Cease: a stop is not a restart', async () => {
    const { conn, speaker } = await setup([route('198.51.100.1')], gr(), GR_PEER_OPEN);
    speaker.markReady();
    await until('End-of-RIB', () => summary(conn.received).includes('eor 6'));
    const before = conn.received.length;
    await speaker.shutdown('maintenance', 2_000);
    expect(summary(conn.received.slice(before))).toEqual(['withdraw 198.51.100.1/32', 'notification 6/2']);
  });

  test('without graceful restart, End-of-RIB follows the routes at once, as before', async () => {
    const { conn } = await setup([route('198.51.100.1')]);
    await until('End-of-RIB', () => summary(conn.received).includes('eor 6'));
    expect(conn.received[0]).toMatchObject({ type: 'open' });
    expect((conn.received[0] as OpenMessage).capabilities.some((c) => c.kind === 'gracefulRestart')).toBe(false);
  });
});
