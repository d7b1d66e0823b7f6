/**
 * Draining on the wire: the routes decideRoutes gives drained and undrained,
 * handed to a real speaker with an established session to a scripted peer.
 * The peer must receive the new attributes (MED, GRACEFUL_SHUTDOWN) as
 * UPDATEs on the same session: no withdrawal, no NOTIFICATION, no new
 * connection, and nothing at all for a second drain.
 */
import { describe, expect, test } from 'vitest';
import { decideRoutes } from '../../src/bgp/announcements.js';
import type { BgpMessage } from '../../src/bgp/codec.js';
import { encodeMessage } from '../../src/bgp/codec.js';
import { globalConfig, serviceConfig } from '../support/config-fixtures.js';
import { until } from './raw-peer.js';
import { speakerHarness, summary } from './speaker-harness.js';

const { setup } = speakerHarness();

const global = globalConfig({ bgpMed: 10, bgpCommunities: [{ asn: 64600, value: 1 }] });
const services = [serviceConfig('web', '198.51.100.1'), serviceConfig('web6', '2001:db8:2::1')];
const routes = (drained: boolean) => decideRoutes(global, services, () => true, () => true, { drained });

/** Each announced prefix with the MED and communities its UPDATE carried. */
function announced(messages: readonly BgpMessage[]): string[] {
  const out: string[] = [];
  for (const m of messages) {
    if (m.type !== 'update') continue;
    const a = m.attributes;
    const communities = (a.communities ?? []).map((c) => `${c.asn}:${c.value}`).join(',');
    for (const p of [...m.nlri, ...(a.mpReach?.nlri ?? [])]) out.push(`${p.address}/${p.length} med ${a.med} comm ${communities}`);
  }
  return out;
}

describe('drain on an established session', () => {
  test('drain and undrain go out as UPDATEs on the same session; a second drain sends nothing', async () => {
    const { conn, speaker, peer } = await setup(routes(false));
    await until('End-of-RIB', () => summary(conn.received).includes('eor 6'));
    expect(announced(conn.received)).toEqual(['198.51.100.1/32 med 10 comm 64600:1', '2001:db8:2::1/128 med 10 comm 64600:1']);

    const beforeDrain = conn.received.length;
    speaker.setAnnouncements(routes(true));
    await until('the drained UPDATEs', () => announced(conn.received.slice(beforeDrain)).length === 2);
    const drained = conn.received.slice(beforeDrain);
    expect(announced(drained)).toEqual(['198.51.100.1/32 med 4294967295 comm 64600:1,65535:0', '2001:db8:2::1/128 med 4294967295 comm 64600:1,65535:0']);
    // The same routes, implicitly replaced (RFC 4271 §3.1): nothing withdrawn on the way.
    expect(summary(drained).filter((l) => !l.startsWith('announce'))).toEqual([]);
    // As bytes (the decoded UPDATE encoded again): MULTI_EXIT_DISC 80 04 04 ffffffff, then
    // COMMUNITIES c0 08 08 (optional transitive, type 8, 8 bytes): 64600:1 = fc58 0001, 65535:0 = ffff 0000.
    const ipv4Update = drained.find((m) => m.type === 'update' && m.nlri.length > 0) as BgpMessage;
    expect(encodeMessage(ipv4Update).toString('hex')).toMatch(/800404ffffffffc00808fc580001ffff0000/);

    // Drained again (say, a reload with bgp-drain = yes after `pybal drain`): nothing new to tell.
    speaker.setAnnouncements(routes(true));
    const beforeUndrain = conn.received.length;
    speaker.setAnnouncements(routes(false));
    await until('the undrained UPDATEs', () => announced(conn.received.slice(beforeUndrain)).length === 2);
    await new Promise((r) => setTimeout(r, 50));
    expect(announced(conn.received.slice(beforeUndrain))).toEqual(['198.51.100.1/32 med 10 comm 64600:1', '2001:db8:2::1/128 med 10 comm 64600:1']);
    expect(conn.received.length).toBe(beforeUndrain + 2);

    // One connection all along, never a NOTIFICATION; the speaker still Established with both prefixes.
    expect(peer.connections).toHaveLength(1);
    expect(conn.received.some((m) => m.type === 'notification')).toBe(false);
    expect(speaker.status()[0]).toMatchObject({ state: 'Established', prefixesSent: 2 });
  });
});
