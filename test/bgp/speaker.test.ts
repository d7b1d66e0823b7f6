/**
 * Session and speaker against a scripted peer over real loopback sockets,
 * with the BGP timers on the manual clock.
 */
import { describe, expect, test } from 'vitest';
import net from 'node:net';
import { shutdownMessage } from '../../src/bgp/notification.js';
import { BgpSpeaker } from '../../src/bgp/speaker.js';
import { ManualClock, createSystemClock } from '../../src/runtime/clock.js';
import { createMemoryLogger, createSilentLogger } from '../../src/runtime/logger.js';
import { PEER_OPEN, startRawPeer, until, wrapSocket, type RawConnection } from './raw-peer.js';
import { route, speakerHarness, speakerOptions, state, summary } from './speaker-harness.js';
import { freePort } from '../pool/helpers.js';

const { cleanups, setup } = speakerHarness();

describe('establishing and announcing', () => {
  test('OPEN, then every route, then End-of-RIB per family', async () => {
    const { conn, speaker } = await setup([route('198.51.100.1', 100), route('198.51.100.2', 100), route('2001:db8:2::1', 50)]);
    const open = conn.received[0];
    expect(open).toMatchObject({
      type: 'open',
      myAs: 64600,
      holdTimeSec: 90,
      bgpId: '192.0.2.11',
      capabilities: [
        { kind: 'multiprotocol', afi: 1, safi: 1 },
        { kind: 'multiprotocol', afi: 2, safi: 1 },
        { kind: 'routeRefresh' },
        { kind: 'fourOctetAs', asn: 64600 },
      ],
    });
    await until('End-of-RIB', () => summary(conn.received).includes('eor 6'));
    expect(summary(conn.received.slice(1))).toEqual([
      'keepalive',
      'announce 198.51.100.1/32 med 100',
      'announce 198.51.100.2/32 med 100',
      'announce 2001:db8:2::1/128 med 50',
      'eor 4',
      'eor 6',
    ]);
    // Both IPv4 routes share their attributes, so they share one UPDATE.
    expect(conn.received.filter((m) => m.type === 'update')).toHaveLength(4);
    expect(speaker.status()[0]).toMatchObject({ state: 'Established', prefixesSent: 3, holdTimeSec: 90, fourOctetAs: true, side: 'active' });
  });

  test('only differences are sent', async () => {
    const { conn, speaker } = await setup([route('198.51.100.1'), route('198.51.100.2'), route('2001:db8:2::1')]);
    await until('End-of-RIB', () => summary(conn.received).includes('eor 6'));
    const before = conn.received.length;
    speaker.setAnnouncements([route('198.51.100.1'), route('198.51.100.2', 7), route('2001:db8:2::1')]);
    await until('the MED change', () => conn.received.length > before);
    speaker.setAnnouncements([route('198.51.100.1'), route('198.51.100.2', 7)]);
    await until('the withdrawal', () => conn.received.length > before + 1);
    speaker.setAnnouncements([route('198.51.100.1'), route('198.51.100.2', 7)]);
    speaker.setAnnouncements([route('198.51.100.3'), route('198.51.100.1'), route('198.51.100.2', 7)]);
    await until('the addition', () => conn.received.length > before + 2);
    await new Promise((r) => setTimeout(r, 50));
    expect(summary(conn.received.slice(before))).toEqual([
      'announce 198.51.100.2/32 med 7',
      'withdraw 2001:db8:2::1/128',
      'announce 198.51.100.3/32 med 0',
    ]);
    expect(speaker.status()[0]?.prefixesSent).toBe(3);
  });

  test('UPDATEs are packed up to 4096 bytes and cover every route', async () => {
    const routes = Array.from({ length: 2000 }, (_, i) => route(`203.0.${113 + Math.floor(i / 256)}.${i % 256}`));
    const { conn } = await setup(routes, { families: [4] });
    await until('End-of-RIB', () => summary(conn.received).includes('eor 4'));
    const updates = conn.received.filter((m) => m.type === 'update' && m.nlri.length > 0);
    expect(new Set(summary(updates)).size).toBe(2000);
    // 5 bytes per /32 after 23 bytes of header and lengths and 25 of attributes: 809 per message.
    expect(updates.map((u) => (u.type === 'update' ? u.nlri.length : 0))).toEqual([809, 809, 382]);
  });

  test('a 4-octet local ASN: AS_TRANS in OPEN, and AS4_PATH to a peer without the capability', async () => {
    const r = { ...route('198.51.100.1'), asPath: [4200000000] };
    const { conn } = await setup([r], { localAsn: 4200000000, families: [4] }, { ...PEER_OPEN, capabilities: [] });
    expect(conn.received[0]).toMatchObject({ myAs: 23456, capabilities: expect.arrayContaining([{ kind: 'fourOctetAs', asn: 4200000000 }]) });
    await until('the route', () => summary(conn.received).includes('eor 4'));
    const u = conn.received.find((m) => m.type === 'update' && m.nlri.length > 0);
    expect(u?.type === 'update' && u.attributes.asPath).toEqual([{ type: 2, asns: [23456] }]);
    expect(u?.type === 'update' && Buffer.from(u.attributes.other?.[0]?.value ?? []).toString('hex')).toBe('0201fa56ea00');
  });
});

describe('protocol events', () => {
  test('ROUTE-REFRESH: every route of that family again, session kept', async () => {
    const { conn, speaker } = await setup([route('198.51.100.1'), route('2001:db8:2::1')]);
    await until('End-of-RIB', () => summary(conn.received).includes('eor 6'));
    const before = conn.received.length;
    conn.send({ type: 'routeRefresh', afi: 2, subtype: 0, safi: 1 });
    await until('the refresh', () => conn.received.length > before);
    await new Promise((r) => setTimeout(r, 30));
    expect(summary(conn.received.slice(before))).toEqual(['announce 2001:db8:2::1/128 med 0']);
    expect(state(speaker)).toBe('Established');
  });

  test('an UPDATE RFC 7606 still resets on gets its exact NOTIFICATION, then the session restarts after the retry delay', async () => {
    const { conn, speaker, clock, peer } = await setup([]);
    await until('established', () => state(speaker) === 'Established');
    // 4 + 7 + 7 = 18 bytes of attributes with an undefined ORIGIN, and no NLRI:
    // RFC 7606 §5.2 makes it a session reset (with NLRI it is a treat-as-withdraw).
    const body = Buffer.from('0000' + '0012' + '40010103' + '4002040201fc00' + '400304c000020b', 'hex');
    const header = Buffer.alloc(19, 0xff);
    header.writeUInt16BE(19 + body.length, 16);
    header[18] = 2;
    conn.send(Buffer.concat([header, body]));
    await until('the NOTIFICATION', () => conn.received.some((m) => m.type === 'notification'));
    const n = conn.received.find((m) => m.type === 'notification');
    expect(n?.type === 'notification' && { code: n.code, subcode: n.subcode, data: Buffer.from(n.data).toString('hex') }).toEqual({
      code: 3,
      subcode: 6,
      data: '40010103',
    });
    await until('closed', () => conn.closed);
    expect(speaker.status()[0]?.lastError).toBe('malformed message: sent 3/6 (UPDATE Message Error) data=40010103');
    expect(state(speaker)).toBe('Idle');
    await clock.advanceAsync(4999);
    expect(peer.connections).toHaveLength(1);
    await clock.advanceAsync(1);
    await until('a new connection', () => peer.connections.length === 2);
  });

  test('an OPEN with the wrong peer ASN gets 2/2', async () => {
    const { conn, speaker } = await setup([], { peerAsn: 64999 });
    await until('the NOTIFICATION', () => conn.received.some((m) => m.type === 'notification'));
    expect(summary(conn.received)).toEqual(['open', 'notification 2/2']);
    expect(state(speaker)).toBe('Idle');
  });

  test('two NOTIFICATIONs back to back: the first ends the session, nothing breaks', async () => {
    const { conn, speaker, log } = await setup([route('198.51.100.1')]);
    await until('established', () => state(speaker) === 'Established');
    conn.send(Buffer.concat([
      Buffer.from('ffffffffffffffffffffffffffffffff00150306' + '03', 'hex'),
      Buffer.from('ffffffffffffffffffffffffffffffff001a0306' + '02' + '03627965', 'hex'),
    ]));
    await until('Idle', () => state(speaker) === 'Idle');
    expect(speaker.status()[0]?.lastNotificationIn).toBe('6/3 (Cease)');
    expect(speaker.status()[0]?.prefixesSent).toBe(0);
    expect(log.lines().filter((l) => l.includes('received NOTIFICATION'))).toHaveLength(1);
  });

  test('keepalives at a third of the hold time; the hold timer ends a silent session with 4/0', async () => {
    const { conn, speaker, clock } = await setup([], {}, { ...PEER_OPEN, holdTimeSec: 3 });
    await until('established', () => state(speaker) === 'Established');
    const keepalives = (): number => conn.received.filter((m) => m.type === 'keepalive').length;
    // The one that confirms the OPEN: sent before Established, read by the peer's socket a moment later.
    await until('the first keepalive', () => keepalives() === 1);
    await clock.advanceAsync(1000);
    await until('a keepalive', () => keepalives() === 2);
    await clock.advanceAsync(1000);
    await until('a keepalive', () => keepalives() === 3);
    await clock.advanceAsync(999);
    expect(state(speaker)).toBe('Established');
    await clock.advanceAsync(1);
    await until('the NOTIFICATION', () => conn.received.some((m) => m.type === 'notification'));
    expect(summary(conn.received).slice(-1)).toEqual(['notification 4/0']);
    expect(speaker.status()[0]?.lastError).toBe('hold timer expired');
  });

  test('a message from the peer restarts the hold timer', async () => {
    const { conn, speaker, clock } = await setup([], {}, { ...PEER_OPEN, holdTimeSec: 3 });
    await until('established', () => state(speaker) === 'Established');
    for (let i = 0; i < 5; i++) {
      await clock.advanceAsync(2000);
      const n = conn.received.length;
      conn.send({ type: 'keepalive' });
      await new Promise((r) => setTimeout(r, 20));
      expect(n).toBeGreaterThan(0);
    }
    expect(state(speaker)).toBe('Established');
  });

  test('a KEEPALIVE that arrived while the event loop was held keeps the session, though the hold timer expired meanwhile', async () => {
    const { conn, speaker, clock } = await setup([], {}, { ...PEER_OPEN, holdTimeSec: 3 });
    await until('established', () => state(speaker) === 'Established');
    await clock.advanceAsync(2_000);
    // The peer's KEEPALIVE reaches our socket while the loop is busy...
    conn.send({ type: 'keepalive' });
    const busyUntil = Date.now() + 50;
    while (Date.now() < busyUntil) {
      // held: nothing is read
    }
    // ...and when it comes back, the hold time has passed.
    clock.advance(1_500);
    await new Promise((r) => setTimeout(r, 50));
    expect(state(speaker)).toBe('Established');
    expect(conn.received.some((m) => m.type === 'notification')).toBe(false);
    // Silence from then on still ends the session.
    await clock.advanceAsync(3_000);
    await until('the NOTIFICATION', () => conn.received.some((m) => m.type === 'notification'));
    expect(speaker.status()[0]?.lastError).toBe('hold timer expired');
  });

  test('hold time 0: no keepalives and no hold timer', async () => {
    const { conn, speaker, clock } = await setup([], {}, { ...PEER_OPEN, holdTimeSec: 0 });
    await until('established', () => state(speaker) === 'Established');
    await clock.advanceAsync(600_000);
    await new Promise((r) => setTimeout(r, 20));
    expect(summary(conn.received)).toEqual(['open', 'keepalive', 'eor 4', 'eor 6']);
    expect(state(speaker)).toBe('Established');
  });

  test('a burst of UPDATEs never delays a KEEPALIVE', async () => {
    // Distinct MEDs and 200 communities each: one ~850-byte UPDATE per route, 10 MB in all,
    // more than the kernel buffers while the peer does not read.
    const communities = Array.from({ length: 200 }, (_, i) => ({ asn: 64600, value: i }));
    const routes = Array.from({ length: 12_000 }, (_, i) => route(`10.0.${i >> 8}.${i & 255}`, i, communities));
    const { conn, speaker, clock } = await setup([], { families: [4] }, { ...PEER_OPEN, holdTimeSec: 3 });
    await until('established', () => state(speaker) === 'Established');
    conn.socket.pause();
    speaker.setAnnouncements(routes);
    await until('UPDATEs queued behind a full socket', () => (speaker.status()[0]?.queuedUpdateBytes ?? 0) > 0, 10_000);
    await clock.advanceAsync(1000);
    conn.socket.resume();
    await until('every route', () => conn.received.filter((m) => m.type === 'update').length >= 12_001, 30_000);
    const kinds = conn.received.map((m) => m.type);
    const secondKeepalive = kinds.indexOf('keepalive', kinds.indexOf('keepalive') + 1);
    expect(secondKeepalive).toBeGreaterThan(0);
    expect(secondKeepalive).toBeLessThan(kinds.lastIndexOf('update'));
    expect(state(speaker)).toBe('Established');
  }, 60_000);

  test('shutdown: withdraw everything, then Cease 6/2 with the message', async () => {
    const { conn, speaker } = await setup([route('198.51.100.1'), route('2001:db8:2::1')]);
    await until('End-of-RIB', () => summary(conn.received).includes('eor 6'));
    const before = conn.received.length;
    await speaker.shutdown('maintenance: pybal stopping');
    await until('closed', () => conn.closed);
    expect(summary(conn.received.slice(before))).toEqual(['withdraw 198.51.100.1/32', 'withdraw 2001:db8:2::1/128', 'notification 6/2']);
    const n = conn.received[conn.received.length - 1];
    expect(n?.type === 'notification' && shutdownMessage(n)).toBe('maintenance: pybal stopping');
    expect(state(speaker)).toBe('Idle');
  });

  test('shutdown resolves by its deadline when the peer never closes', async () => {
    const { conn, speaker, clock } = await setup([route('198.51.100.1')]);
    await until('established', () => state(speaker) === 'Established');
    conn.socket.pause();
    conn.socket.on('end', () => undefined);
    conn.socket.allowHalfOpen = true;
    const done = speaker.shutdown('bye', 1000);
    let finished = false;
    void done.then(() => (finished = true));
    await clock.advanceAsync(2100);
    await until('shutdown resolved', () => finished);
    expect(finished).toBe(true);
  });
});

describe('passive side', () => {
  test('accepts only configured peers', async () => {
    const clock = new ManualClock();
    const speaker = new BgpSpeaker({
      localAsn: 64600,
      routerId: '192.0.2.11',
      holdTimeSec: 90,
      connectRetryMs: 60_000,
      families: [4],
      // Port 1 on loopback refuses at once: our own dialling fails and waits for the manual clock.
      peers: [{ address: '127.0.0.12', port: 1 }],
      listen: { addresses: ['127.0.0.1'], port: 0 },
      clock,
      logger: createSilentLogger(),
    });
    cleanups.push(() => speaker.stop());
    await speaker.start();
    const port = speaker.listeningPort() as number;
    const dial = (localAddress: string): RawConnection => wrapSocket(net.connect({ host: '127.0.0.1', port, localAddress }));
    const stranger = dial('127.0.0.99');
    cleanups.push(() => void stranger.socket.destroy());
    await until('the stranger refused', () => stranger.closed);
    expect(stranger.received).toEqual([]);
    await until('Active', () => state(speaker) === 'Active');
    const friend = dial('127.0.0.12');
    cleanups.push(() => void friend.socket.destroy());
    await until('our OPEN', () => friend.received.length === 1);
    friend.fourOctetAs = true;
    friend.send(PEER_OPEN);
    friend.send({ type: 'keepalive' });
    await until('established', () => state(speaker) === 'Established');
    expect(speaker.status()[0]?.side).toBe('passive');
  });

  test('a listen address already in use is logged and the peers are dialled anyway', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => busy.close(() => resolve())));
    const port = (busy.address() as net.AddressInfo).port;
    const peer = await startRawPeer();
    cleanups.push(() => peer.close());
    const log = createMemoryLogger();
    const speaker = new BgpSpeaker(
      speakerOptions({
        families: [4],
        peers: [{ address: '127.0.0.1', port: peer.port }],
        listen: { addresses: ['127.0.0.1'], port },
        clock: new ManualClock(),
        logger: log.logger,
      }),
    );
    cleanups.push(() => speaker.stop());
    await speaker.start();
    expect(speaker.listeningPort()).toBeUndefined();
    expect(log.lines().some((l) => l.includes('ERROR: cannot listen for BGP connections') && l.includes(`port=${port}`))).toBe(true);
    await until('the outgoing connection', () => peer.connections.length === 1);
  });

  test('connection collision: both speakers dial each other, the higher identifier\'s connection survives', async () => {
    const clock = createSystemClock();
    const make = (routerId: string, own: string, other: string, asn: number, peerPort: number, listenPort: number): BgpSpeaker =>
      new BgpSpeaker({
        localAsn: asn,
        routerId,
        holdTimeSec: 30,
        connectRetryMs: 300,
        families: [4],
        peers: [{ address: other, port: peerPort, localAddress: own }],
        listen: { addresses: [own], port: listenPort },
        clock,
        logger: createSilentLogger(),
      });
    const ports = await Promise.all([freePort(), freePort()]);
    const [pa, pb] = ports as [number, number];
    const low = make('192.0.2.1', '127.0.0.21', '127.0.0.22', 64601, pb, pa);
    const high = make('192.0.2.2', '127.0.0.22', '127.0.0.21', 64602, pa, pb);
    cleanups.push(() => low.stop(), () => high.stop());
    await Promise.all([low.start(), high.start()]);
    await until('both Established', () => state(low) === 'Established' && state(high) === 'Established', 15_000);
    await new Promise((r) => setTimeout(r, 300));
    expect([state(low), state(high)]).toEqual(['Established', 'Established']);
    expect(high.status()[0]?.side).toBe('active');
    expect(low.status()[0]?.side).toBe('passive');
  });
});

describe('peer changes (the event history)', () => {
  test('tells onPeerChange when a session is Established and when it goes down, with the reason', async () => {
    const changes: { peer: string; up: boolean; reason?: string }[] = [];
    const { conn } = await setup([route('198.51.100.1')], { onPeerChange: (change) => changes.push(change) });
    await until('Established', () => changes.length === 1);
    expect(changes[0]).toEqual({ peer: '127.0.0.1', up: true });
    conn.socket.destroy();
    await until('down', () => changes.length === 2);
    expect(changes[1]).toMatchObject({ peer: '127.0.0.1', up: false });
    expect(changes[1]?.reason).toEqual(expect.any(String));
    expect(changes[1]?.reason).not.toBe('');
  });
});
