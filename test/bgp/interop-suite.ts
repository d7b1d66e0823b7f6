/**
 * Interoperation with a real router (BIRD 2 or GoBGP) on loopback, over IPv4
 * or IPv6 transport. One router and one speaker are shared by the tests of a
 * suite, which run in order: the disruptive ones (restart, freeze, shutdown) last.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decideRoutes } from '../../src/bgp/announcements.js';
import { BgpSpeaker } from '../../src/bgp/speaker.js';
import type { ServiceConfig } from '../../src/config/types.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { globalConfig, serviceConfig } from '../support/config-fixtures.js';
import { startRouter, waitFor, type Router, type RouterKind } from './routers.js';

export interface SuitePorts {
  /** Router listen ports: the shared router and the 4-byte-ASN one. */
  readonly router: number;
  readonly router4: number;
  /** GoBGP API ports. */
  readonly api: number;
  readonly api4: number;
  /** Speaker source addresses on IPv4 loopback. */
  readonly source: string;
  readonly source4: string;
}

const ROUTER_ASN = 64512;
const FOUR_BYTE_ASN = 4200000000;

export function defineInteropSuite(kind: RouterKind, transport: 4 | 6, ports: SuitePorts): void {
  const routerAddress = transport === 4 ? '127.0.0.1' : '::1';
  const source = transport === 4 ? ports.source : '::1';
  const source4 = transport === 4 ? ports.source4 : '::1';

  describe(`${kind} over IPv${transport} transport`, () => {
    let router: Router | undefined;
    let speaker: BgpSpeaker | undefined;
    const log = createMemoryLogger();
    const g = globalConfig({ bgpCommunities: [{ asn: 64600, value: 1 }], bgpAsPath: [64600, 64600], bgpMed: 10 });
    const web = serviceConfig('web', '198.51.100.1', { bgpWithdrawWhenDown: true, bgpMed: 100, bgpCommunities: [{ asn: 64600, value: 80 }] });
    const web6 = serviceConfig('web6', '2001:db8:2::1', { bgpWithdrawWhenDown: true, bgpMed: 50 });
    const dns = serviceConfig('dns', '198.51.100.2', { protocol: 'udp', port: 53 });
    const services = [web, web6, dns];
    const health = new Map<string, boolean>(services.map((s) => [s.name, true]));
    const announce = (): void => speaker?.setAnnouncements(decideRoutes(g, services, (s: ServiceConfig) => health.get(s.name) ?? false));

    const r = (): Router => router as Router;
    const s = (): BgpSpeaker => speaker as BgpSpeaker;
    const prefixes = async (): Promise<string[]> => [...(await r().routes(4)).keys(), ...(await r().routes(6)).keys()].sort();
    const ALL = ['198.51.100.1/32', '198.51.100.2/32', '2001:db8:2::1/128'];
    const sameList = (a: string[], b: string[]): boolean => a.join() === b.join();

    beforeAll(async () => {
      router = await startRouter({
        kind,
        asn: ROUTER_ASN,
        routerId: '192.0.2.1',
        address: routerAddress,
        port: ports.router,
        apiPort: ports.api,
        neighbors: [{ name: 'speaker', address: source, asn: 64600 }],
      });
      speaker = new BgpSpeaker({
        localAsn: 64600,
        routerId: '192.0.2.11',
        holdTimeSec: 3,
        peerAsn: ROUTER_ASN,
        connectRetryMs: 500,
        families: [4, 6],
        peers: [{ address: routerAddress, port: ports.router, localAddress: source }],
        clock: createSystemClock(),
        logger: log.logger,
      });
      announce();
      await speaker.start();
    });

    afterAll(async () => {
      speaker?.stop();
      router?.thaw();
      await router?.stop();
    });

    test('the session establishes and the router shows each VIP with AS path, MED, next hop and communities', async () => {
      await waitFor('the router to see every VIP', async () => sameList(await prefixes(), ALL));
      expect(await r().established('speaker')).toBe(true);
      const v4 = await r().routes(4);
      const v6 = await r().routes(6);
      expect(v4.get('198.51.100.1/32')).toEqual({
        prefix: '198.51.100.1/32',
        asPath: [64600, 64600],
        med: 100,
        nextHop: '192.0.2.11',
        communities: ['64600:1', '64600:80'],
      });
      expect(v4.get('198.51.100.2/32')).toMatchObject({ med: 10, communities: ['64600:1'] });
      expect(v6.get('2001:db8:2::1/128')).toEqual({
        prefix: '2001:db8:2::1/128',
        asPath: [64600, 64600],
        med: 50,
        nextHop: '2001:db8:ffff::11',
        communities: ['64600:1'],
      });
      expect(s().status()[0]).toMatchObject({ state: 'Established', holdTimeSec: 3, fourOctetAs: true, prefixesSent: 3 });
    });

    test('a health change withdraws the VIP and a recovery announces it again', async () => {
      health.set('web', false);
      health.set('web6', false);
      announce();
      await waitFor('the withdrawal', async () => sameList(await prefixes(), ['198.51.100.2/32']));
      health.set('web', true);
      announce();
      await waitFor('the IPv4 VIP back', async () => sameList(await prefixes(), ['198.51.100.1/32', '198.51.100.2/32']));
      health.set('web6', true);
      announce();
      await waitFor('every VIP back', async () => sameList(await prefixes(), ALL));
      expect((await r().routes(4)).get('198.51.100.1/32')?.med).toBe(100);
    });

    // GoBGP keeps an Adj-RIB-In and its CLI has no way to make it send ROUTE-REFRESH; BIRD's `reload in` does.
    if (kind === 'bird') test('a ROUTE-REFRESH from the router is answered and the session stays up', async () => {
      const before = s().status()[0]?.establishedAtWallMs;
      const refreshes = (): number => log.lines().filter((l) => l.includes('ROUTE-REFRESH received')).length;
      const n = refreshes();
      await r().refresh('speaker');
      await waitFor('the refresh', () => refreshes() > n);
      expect(s().status()[0]?.establishedAtWallMs).toBe(before);
      expect(await prefixes()).toEqual(ALL);
    });

    test('the router restarting is survived', async () => {
      await r().restart();
      await waitFor('the routes back after the restart', async () => sameList(await prefixes(), ALL), 20_000);
      expect(s().status()[0]?.lastNotificationIn).toMatch(/^6\//);
    }, 30_000);

    test('a router that stops answering is detected by the hold timer', async () => {
      r().freeze();
      try {
        await waitFor('the hold timer', () => s().status()[0]?.lastError === 'hold timer expired', 6_000);
        expect(s().status()[0]?.lastNotificationOut).toBe('4/0 (Hold Timer Expired)');
      } finally {
        r().thaw();
      }
      await waitFor('the session back', async () => sameList(await prefixes(), ALL) && s().status()[0]?.state === 'Established', 25_000);
    }, 40_000);

    test('shutdown withdraws at once and closes with Cease', async () => {
      await s().shutdown('maintenance');
      await waitFor('every route gone', async () => (await prefixes()).length === 0, 5_000);
      expect(s().status()[0]?.state).toBe('Idle');
      expect(s().status()[0]?.lastNotificationOut).toBe('6/2 (Cease) "maintenance"');
    });

    test('a 4-byte local ASN', async () => {
      const router4 = await startRouter({
        kind,
        asn: ROUTER_ASN,
        routerId: '192.0.2.1',
        address: routerAddress,
        port: ports.router4,
        apiPort: ports.api4,
        neighbors: [{ name: 'speaker4', address: source4, asn: FOUR_BYTE_ASN }],
      });
      const speaker4 = new BgpSpeaker({
        localAsn: FOUR_BYTE_ASN,
        routerId: '192.0.2.12',
        holdTimeSec: 90,
        connectRetryMs: 500,
        families: [4, 6],
        peers: [{ address: routerAddress, port: ports.router4, localAddress: source4 }],
        clock: createSystemClock(),
        logger: createMemoryLogger().logger,
      });
      try {
        speaker4.setAnnouncements(
          decideRoutes(globalConfig({ bgpLocalAsn: FOUR_BYTE_ASN, bgpAsPath: [FOUR_BYTE_ASN, 64600] }), [web, web6], () => true),
        );
        await speaker4.start();
        await waitFor('the routes', async () => (await router4.routes(4)).size === 1 && (await router4.routes(6)).size === 1);
        expect((await router4.routes(4)).get('198.51.100.1/32')?.asPath).toEqual([FOUR_BYTE_ASN, 64600]);
        expect((await router4.routes(6)).get('2001:db8:2::1/128')?.asPath).toEqual([FOUR_BYTE_ASN, 64600]);
        expect(speaker4.status()[0]?.fourOctetAs).toBe(true);
        await speaker4.shutdown('done');
      } finally {
        speaker4.stop();
        await router4.stop();
      }
    }, 30_000);
  });
}
