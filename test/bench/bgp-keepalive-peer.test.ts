/**
 * The checks bench's measuring BGP peer: its gap figures by table, and the
 * peer itself against the real BgpSpeaker over loopback.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { hostPrefix } from '../../src/bgp/address.js';
import { BgpSpeaker, type SpeakerOptions } from '../../src/bgp/speaker.js';
import { createSystemClock, ManualClock } from '../../src/runtime/clock.js';
import { createSilentLogger } from '../../src/runtime/logger.js';
import { keepaliveGaps, startKeepalivePeer, type KeepalivePeer } from '../../bench/lib/bgp-keepalive-peer.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until(what: string, probe: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function peer(holdTimeSec = 3): Promise<KeepalivePeer> {
  const p = await startKeepalivePeer({ host: '127.0.0.1', port: 0, asn: 64513, routerId: '192.0.2.2', holdTimeSec });
  cleanups.push(() => p.close());
  return p;
}

async function speaker(port: number, overrides: Partial<SpeakerOptions> = {}): Promise<BgpSpeaker> {
  const s = new BgpSpeaker({
    localAsn: 64512,
    routerId: '192.0.2.1',
    holdTimeSec: 90,
    connectRetryMs: 5000,
    families: [4],
    peers: [{ address: '127.0.0.1', port }],
    clock: createSystemClock(),
    logger: createSilentLogger(),
    ...overrides,
  });
  cleanups.push(() => s.stop());
  s.setAnnouncements([{ prefix: hostPrefix('203.0.113.1'), nextHop: '127.0.0.1', asPath: [64512], med: 0, communities: [] }]);
  await s.start();
  return s;
}

const keepalives = (p: KeepalivePeer): number => p.arrivals().filter((a) => a.type === 'keepalive').length;

describe('keepaliveGaps', () => {
  it('measures the gaps ending in the window, the one across its start included', () => {
    expect(keepaliveGaps([0, 1000, 2001, 3500, 4500], 500, 5000, 1000)).toEqual({
      keepalives: 4,
      gaps: 4,
      gapMedianMs: 1000,
      gapP99Ms: 1499,
      gapMaxMs: 1499,
      lateThresholdMs: 1100,
      late: 1,
    });
  });

  it('counts a wait still going on at the end of the window once it is late', () => {
    expect(keepaliveGaps([0, 1000], 500, 3000, 1000)).toMatchObject({ keepalives: 1, gaps: 2, gapMaxMs: 2000, late: 1 });
    expect(keepaliveGaps([0, 1000], 500, 2000, 1000)).toMatchObject({ keepalives: 1, gaps: 1, gapMaxMs: 1000, late: 0 });
    // Nothing in the window at all: the wait since the last one is the gap.
    expect(keepaliveGaps([0, 1000], 5000, 6000, 1000)).toMatchObject({ keepalives: 0, gaps: 1, gapMaxMs: 5000, late: 1 });
    // Arrivals after the window are not counted.
    expect(keepaliveGaps([0, 1000, 9000], 0, 1500, 1000)).toMatchObject({ keepalives: 2, gaps: 1, gapMaxMs: 1000, late: 0 });
  });

  it('gives NaN figures without a KEEPALIVE', () => {
    const g = keepaliveGaps([], 0, 5000, 1000);
    expect(g).toMatchObject({ keepalives: 0, gaps: 0, late: 0 });
    expect(g.gapMaxMs).toBeNaN();
    expect(g.gapMedianMs).toBeNaN();
  });
});

describe('the keepalive peer against the speaker', () => {
  it('establishes, keeps the session up, and records the KEEPALIVEs every negotiated interval', async () => {
    const p = await peer(3);
    const s = await speaker(p.port);
    await p.untilEstablished(5000);
    const from = performance.now();
    // The speaker's KEEPALIVE that confirmed our OPEN, then one every second: over 3 s, past the hold time.
    await until('four KEEPALIVEs', () => keepalives(p) >= 4);
    const to = performance.now();
    // Our KEEPALIVEs kept the speaker's 3 s hold timer from expiring.
    expect(s.status()[0]).toMatchObject({ state: 'Established', holdTimeSec: 3 });
    expect(p.established()).toBe(true);
    expect(p.events().map((e) => e.kind)).toEqual(['connected', 'established']);
    expect(p.arrivals()[0]?.type).toBe('open');
    // The VIP and End-of-RIB.
    expect(p.arrivals().filter((a) => a.type === 'update').length).toBeGreaterThanOrEqual(2);
    const sum = p.summary(from, to);
    expect(sum).toMatchObject({
      expectedIntervalMs: 1000,
      holdTimeSec: 3,
      lateThresholdMs: 1100,
      establishedAtStart: true,
      establishedAtEnd: true,
      drops: 0,
      notifications: [],
      errors: [],
      establishments: 0,
    });
    expect(sum.keepalives).toBeGreaterThanOrEqual(3);
    expect(sum.gaps).toBeGreaterThanOrEqual(2);
    expect(sum.gapMaxMs).toBeGreaterThan(0);
    // The whole run as a window: the establishment is in it.
    expect(p.summary(0, performance.now())).toMatchObject({ establishments: 1, establishedAtStart: false, establishedAtEnd: true });
  });

  it('reports a shutdown NOTIFICATION and the drop in the window', async () => {
    const p = await peer(3);
    const s = await speaker(p.port, { clock: new ManualClock() });
    await p.untilEstablished(5000);
    const from = performance.now();
    await s.shutdown('maintenance');
    await until('the close', () => p.events().some((e) => e.kind === 'closed'));
    const sum = p.summary(from, performance.now());
    expect(sum).toMatchObject({ establishedAtStart: true, establishedAtEnd: false, drops: 1, notifications: ['6/2 (Cease) "maintenance"'] });
    expect(p.established()).toBe(false);
    // The window before the shutdown saw neither.
    expect(p.summary(0, from)).toMatchObject({ drops: 0, notifications: [], establishedAtEnd: true });
  });

  it('reports a session the speaker refuses before it is established', async () => {
    const p = await peer(3);
    // The speaker expects another AS: it answers our OPEN with Bad Peer AS.
    await speaker(p.port, { clock: new ManualClock(), peerAsn: 65000 });
    await until('the close', () => p.events().some((e) => e.kind === 'closed'));
    const sum = p.summary(0, performance.now());
    expect(sum).toMatchObject({ establishedAtEnd: false, establishments: 0, drops: 1, keepalives: 0 });
    expect(sum.notifications).toEqual([expect.stringMatching(/^2\/2 \(OPEN Message Error\)/)]);
    expect(sum.expectedIntervalMs).toBeNaN();
    await expect(p.untilEstablished(50)).rejects.toThrow(/no BGP session established within 50 ms: the speaker sent NOTIFICATION 2\/2|the last connection closed/);
  });

  it('does not count its own close as a drop', async () => {
    const p = await peer(3);
    const s = await speaker(p.port, { clock: new ManualClock() });
    await p.untilEstablished(5000);
    await p.close();
    await until('the speaker to see it', () => s.status()[0]?.state !== 'Established');
    expect(p.summary(0, performance.now())).toMatchObject({ drops: 0, notifications: [] });
  });

  it('says when no connection came', async () => {
    const p = await peer(3);
    await expect(p.untilEstablished(20)).rejects.toThrow('no BGP session established within 20 ms: no connection came');
  });
});
