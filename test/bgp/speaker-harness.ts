/**
 * A speaker with one scripted peer (raw-peer.ts) over real loopback sockets,
 * the BGP timers on a manual clock, and the peer's view of what it was sent.
 */
import { afterEach } from 'vitest';
import { hostPrefix } from '../../src/bgp/address.js';
import type { BgpMessage } from '../../src/bgp/codec.js';
import { BgpSpeaker, type Route, type SpeakerOptions } from '../../src/bgp/speaker.js';
import { ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { PEER_OPEN, startRawPeer, until, type RawConnection, type RawPeer } from './raw-peer.js';

export function route(ip: string, med = 0, communities: Route['communities'] = []): Route {
  const prefix = hostPrefix(ip);
  return { prefix, nextHop: prefix.family === 4 ? '192.0.2.11' : '2001:db8:ffff::11', asPath: [64600], med, communities };
}

/** What the peer saw, one line per message or prefix. */
export function summary(messages: readonly BgpMessage[]): string[] {
  const out: string[] = [];
  for (const m of messages) {
    if (m.type !== 'update') {
      out.push(m.type === 'notification' ? `notification ${m.code}/${m.subcode}` : m.type);
      continue;
    }
    const a = m.attributes;
    const empty = m.withdrawn.length === 0 && m.nlri.length === 0 && !a.mpReach && (!a.mpUnreach || a.mpUnreach.withdrawn.length === 0);
    if (empty) out.push(`eor ${a.mpUnreach ? 6 : 4}`);
    for (const p of [...m.withdrawn, ...(a.mpUnreach?.withdrawn ?? [])]) out.push(`withdraw ${p.address}/${p.length}`);
    for (const p of [...m.nlri, ...(a.mpReach?.nlri ?? [])]) out.push(`announce ${p.address}/${p.length} med ${a.med}`);
  }
  return out;
}

export interface Setup {
  readonly peer: RawPeer;
  readonly clock: ManualClock;
  readonly speaker: BgpSpeaker;
  readonly conn: RawConnection;
  readonly log: ReturnType<typeof createMemoryLogger>;
}

export const state = (s: BgpSpeaker): string => s.status()[0]?.state ?? 'none';

/** The tests' speaker: AS 64600, hold time 90, retry after 5 s, IPv4 and IPv6, unless told otherwise. */
export function speakerOptions(options: Partial<SpeakerOptions> & Pick<SpeakerOptions, 'peers' | 'clock' | 'logger'>): SpeakerOptions {
  return { localAsn: 64600, routerId: '192.0.2.11', holdTimeSec: 90, connectRetryMs: 5000, families: [4, 6], ...options };
}

/**
 * Registers the clean-up of every test of the calling file and returns
 * `setup`: a speaker dialling a fresh scripted peer, which answers with
 * `peerOpen` and a KEEPALIVE.
 */
export function speakerHarness(): {
  cleanups: (() => Promise<void> | void)[];
  setup: (routes: Route[], overrides?: Partial<SpeakerOptions>, peerOpen?: typeof PEER_OPEN) => Promise<Setup>;
} {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const setup = async (routes: Route[], overrides: Partial<SpeakerOptions> = {}, peerOpen = PEER_OPEN): Promise<Setup> => {
    const peer = await startRawPeer();
    cleanups.push(() => peer.close());
    const clock = new ManualClock();
    const log = createMemoryLogger();
    const speaker = new BgpSpeaker(speakerOptions({ peers: [{ address: '127.0.0.1', port: peer.port }], clock, logger: log.logger, ...overrides }));
    cleanups.push(() => speaker.stop());
    speaker.setAnnouncements(routes);
    await speaker.start();
    await until('a connection', () => peer.connections.length === 1);
    const conn = peer.last() as RawConnection;
    await until('our OPEN', () => conn.received.length === 1);
    conn.fourOctetAs = peerOpen.capabilities.some((c) => c.kind === 'fourOctetAs');
    conn.send(peerOpen);
    conn.send({ type: 'keepalive' });
    return { peer, clock, speaker, conn, log };
  };
  return { cleanups, setup };
}
