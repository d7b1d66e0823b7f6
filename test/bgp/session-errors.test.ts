/**
 * Nothing a router sends takes down pybal's announcements unless the session
 * really fails: over real loopback sockets, a scripted router sends a
 * malformed UPDATE or an odd ROUTE-REFRESH, and the session stays
 * Established, sends no NOTIFICATION, keeps exchanging KEEPALIVEs, withdraws
 * nothing, and still answers a valid ROUTE-REFRESH with the routes.
 */
import { describe, expect, test } from 'vitest';
import type { PeerStatus } from '../../src/bgp/speaker.js';
import { PEER_OPEN, until } from './raw-peer.js';
import { route, speakerHarness, state, summary, type Setup } from './speaker-harness.js';
import { hex, MARKER, NEXT_HOP, ORIGIN, update } from './wire.js';

const { setup } = speakerHarness();

/** The router's AS_PATH (64512) on the session, which negotiates 4-octet ASNs. */
const ROUTER_PATH = '40 02 06 02 01 0000fc00';
/** The router announcing 203.0.113.0/24. */
const NLRI = '18 cb0071';

type Counters = Pick<PeerStatus, 'updatesTreatedAsWithdraw' | 'attributesDiscarded' | 'routeRefreshesIgnored'>;
const counted = (over: Partial<Counters>): Counters => ({ updatesTreatedAsWithdraw: 0, attributesDiscarded: 0, routeRefreshesIgnored: 0, ...over });

interface Case {
  readonly name: string;
  readonly bytes: Buffer;
  readonly counters: Counters;
  /** What the status says last went wrong, when something is recorded. */
  readonly lastUpdateError?: string;
}

const CASES: Case[] = [
  {
    name: 'an UPDATE with an undefined ORIGIN (RFC 7606 §7.1: treat-as-withdraw)',
    bytes: update(`40 01 01 03 ${ROUTER_PATH} ${NEXT_HOP}`, NLRI),
    counters: counted({ updatesTreatedAsWithdraw: 1 }),
    lastUpdateError: 'treat-as-withdraw: ORIGIN: undefined value 3 (RFC 7606 §7.1)',
  },
  {
    name: 'an UPDATE whose last attribute runs past the attributes (RFC 7606 §4: treat-as-withdraw)',
    bytes: update(`${ORIGIN} ${ROUTER_PATH} 40 03 09 c000020b`, NLRI),
    counters: counted({ updatesTreatedAsWithdraw: 1 }),
    lastUpdateError: 'treat-as-withdraw: NEXT_HOP: length 9 runs past the path attributes (RFC 7606 §4)',
  },
  {
    name: 'an UPDATE with AS4_PATH from a 4-octet AS speaker (RFC 6793 §4.1: attribute-discard)',
    bytes: update(`${ORIGIN} ${ROUTER_PATH} ${NEXT_HOP} c0 11 06 02 01 fa56ea00`, NLRI),
    counters: counted({ attributesDiscarded: 1 }),
    lastUpdateError: 'attribute-discard: AS4_PATH: received from a 4-octet AS speaker (RFC 6793 §4.1)',
  },
  {
    name: 'an UPDATE with an AS4_AGGREGATOR, malformed too, from a 4-octet AS speaker (RFC 6793 §4.1, §6: attribute-discard)',
    bytes: update(`${ORIGIN} ${ROUTER_PATH} ${NEXT_HOP} c0 12 03 000000`, NLRI),
    counters: counted({ attributesDiscarded: 1 }),
    lastUpdateError: 'attribute-discard: AS4_AGGREGATOR: received from a 4-octet AS speaker (RFC 6793 §4.1)',
  },
  {
    name: 'an UPDATE with LOCAL_PREF from the external router (RFC 7606 §7.5: attribute-discard)',
    bytes: update(`${ORIGIN} ${ROUTER_PATH} ${NEXT_HOP} 40 05 04 00000064`, NLRI),
    counters: counted({ attributesDiscarded: 1 }),
    lastUpdateError: 'attribute-discard: LOCAL_PREF: from an external peer (RFC 7606 §7.5)',
  },
  {
    name: 'an UPDATE with MP_REACH_NLRI for VPNv4, never negotiated (RFC 4760 §6)',
    bytes: update(`${ORIGIN} ${ROUTER_PATH} 80 0e 20 0001 80 0c 0000000000000000 c000020b 00 70 000641 0000fc580000000a 0a0000`, ''),
    counters: counted({ attributesDiscarded: 1 }),
    lastUpdateError: 'attribute-discard: MP_REACH_NLRI: AFI/SAFI 1/128 was not negotiated (RFC 4760 §6)',
  },
  {
    name: 'a ROUTE-REFRESH with subtype 7 (RFC 7313 §5: ignored)',
    bytes: hex(`${MARKER} 0017 05 0001 07 01`),
    counters: counted({ routeRefreshesIgnored: 1 }),
  },
  {
    name: 'a ROUTE-REFRESH for IPv4 multicast, never negotiated (RFC 2918 §4: ignored)',
    bytes: hex(`${MARKER} 0017 05 0001 00 02`),
    counters: counted({ routeRefreshesIgnored: 1 }),
  },
  { name: 'a BoRR (RFC 7313 §4: nothing to do)', bytes: hex(`${MARKER} 0017 05 0001 01 01`), counters: counted({}) },
  { name: 'an EoRR (RFC 7313 §4: nothing to do)', bytes: hex(`${MARKER} 0017 05 0002 02 01`), counters: counted({}) },
];

const ROUTES = [route('198.51.100.1'), route('2001:db8:2::1')];
/** Hold time 3: a KEEPALIVE from us every second. */
const QUICK = { ...PEER_OPEN, holdTimeSec: 3 };

async function established(s: Setup): Promise<void> {
  await until('End-of-RIB', () => summary(s.conn.received).includes('eor 6'));
}

function status(s: Setup): PeerStatus {
  return s.speaker.status()[0] as PeerStatus;
}

describe('the session survives what the router sends', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const s = await setup(ROUTES, {}, QUICK);
      const { conn, clock, speaker } = s;
      await established(s);
      const before = conn.received.length;
      const messagesIn = status(s).messagesIn;
      conn.send(c.bytes);
      await until('the message read', () => status(s).messagesIn === messagesIn + 1);
      // The KEEPALIVE exchange goes on: ours at a third of the hold time, the router's restarts our hold timer.
      await clock.advanceAsync(1000);
      await until('our KEEPALIVE', () => conn.received.length > before);
      conn.send({ type: 'keepalive' });
      await until('the router KEEPALIVE read', () => status(s).messagesIn === messagesIn + 2);
      await clock.advanceAsync(1000);
      await until('our next KEEPALIVE', () => conn.received.length > before + 1);
      // And a valid ROUTE-REFRESH still gets the routes.
      conn.send({ type: 'routeRefresh', afi: 1, subtype: 0, safi: 1 });
      await until('the routes again', () => conn.received.length > before + 2);
      expect(summary(conn.received.slice(before))).toEqual(['keepalive', 'keepalive', 'announce 198.51.100.1/32 med 0']);
      expect(conn.closed).toBe(false);
      expect(state(speaker)).toBe('Established');
      expect(status(s)).toMatchObject({ ...c.counters, prefixesSent: 2, lastError: undefined, lastNotificationOut: undefined, lastUpdateError: c.lastUpdateError });
    });
  }

  test('the log names the error, the NLRI and the whole UPDATE (RFC 7606 §6)', async () => {
    const s = await setup(ROUTES);
    await established(s);
    const bytes = update(`40 01 01 03 ${ROUTER_PATH} ${NEXT_HOP}`, `${NLRI} 20 cb007101`);
    s.conn.send(bytes);
    await until('counted', () => status(s).updatesTreatedAsWithdraw === 1);
    const lines = s.log.records().filter((r) => String(r.msg).startsWith('malformed UPDATE'));
    expect(lines).toEqual([
      expect.objectContaining({
        msg: 'malformed UPDATE, session kept (routes treated as withdrawn; pybal uses no received route): ORIGIN: undefined value 3 (RFC 7606 §7.1)',
        nlri: '203.0.113.0/24 203.0.113.1/32',
        update: bytes.toString('hex'),
      }),
    ]);
  });

  test('a router repeating its mistake is counted every time and logged once a minute', async () => {
    const s = await setup(ROUTES);
    await established(s);
    const bad = update(`40 01 01 03 ${ROUTER_PATH} ${NEXT_HOP}`, NLRI);
    const refresh = hex(`${MARKER} 0017 05 0001 07 01`);
    for (let i = 0; i < 5; i++) s.conn.send(Buffer.concat([bad, refresh]));
    await until('all counted', () => status(s).updatesTreatedAsWithdraw === 5 && status(s).routeRefreshesIgnored === 5);
    const logged = (): Record<string, unknown>[] =>
      s.log.records().filter((r) => String(r.msg).startsWith('malformed UPDATE') || String(r.msg).startsWith('ignored a ROUTE-REFRESH'));
    expect(logged().map((r) => r.msg)).toEqual([
      'malformed UPDATE, session kept (routes treated as withdrawn; pybal uses no received route): ORIGIN: undefined value 3 (RFC 7606 §7.1)',
      'ignored a ROUTE-REFRESH: unknown subtype 7 (RFC 7313 §5)',
    ]);
    await s.clock.advanceAsync(60_000);
    s.conn.send(Buffer.concat([bad, refresh]));
    await until('counted again', () => status(s).updatesTreatedAsWithdraw === 6 && status(s).routeRefreshesIgnored === 6);
    expect(logged().slice(2).map((r) => [r.msg, r.notLoggedSinceLast])).toEqual([
      ['malformed UPDATE, session kept (routes treated as withdrawn; pybal uses no received route): ORIGIN: undefined value 3 (RFC 7606 §7.1)', 4],
      ['ignored a ROUTE-REFRESH: unknown subtype 7 (RFC 7313 §5)', 4],
    ]);
    expect(state(s.speaker)).toBe('Established');
    expect(summary(s.conn.received).filter((m) => m.startsWith('notification') || m.startsWith('withdraw'))).toEqual([]);
  });
});
