/** From configuration and health to routes, and to speaker options (pure). */
import { describe, expect, test } from 'vitest';
import {
  announcedFamilies,
  decideRoutes,
  deriveRouterId,
  GRACEFUL_SHUTDOWN,
  peersFromConfig,
  speakerOptionsFromConfig,
} from '../../src/bgp/announcements.js';
import type { ServiceConfig } from '../../src/config/types.js';
import { ManualClock } from '../../src/runtime/clock.js';
import { createSilentLogger } from '../../src/runtime/logger.js';
import { globalConfig, serviceConfig } from '../support/config-fixtures.js';

const lines = (routes: ReturnType<typeof decideRoutes>): string[] =>
  routes.map((r) => `${r.prefix.address}/${r.prefix.length} via ${r.nextHop} path ${r.asPath.join(' ')} med ${r.med} comm ${r.communities.map((c) => `${c.asn}:${c.value}`).join(',')}`);

describe('decideRoutes', () => {
  const always = (): boolean => true;

  test('PyBal: every VIP with bgp on, /32 or /128, the global MED unless the service has one', () => {
    const g = globalConfig({ bgpMed: 10, bgpAsPath: [64600, 64600] });
    const services = [
      serviceConfig('a', '198.51.100.1'),
      serviceConfig('b', '198.51.100.2', { bgpMed: 20 }),
      serviceConfig('c', '198.51.100.3', { bgp: false }),
      serviceConfig('d', '2001:DB8:0::1'),
    ];
    expect(lines(decideRoutes(g, services, always))).toEqual([
      '198.51.100.1/32 via 192.0.2.11 path 64600 64600 med 10 comm ',
      '198.51.100.2/32 via 192.0.2.11 path 64600 64600 med 20 comm ',
      '2001:db8::1/128 via 2001:db8:ffff::11 path 64600 64600 med 10 comm ',
    ]);
  });

  test('global bgp off announces nothing', () => {
    expect(decideRoutes(globalConfig({ bgp: false }), [serviceConfig('a', '198.51.100.1')], always)).toEqual([]);
  });

  test('communities: global plus every service on the IP, deduplicated and sorted', () => {
    const g = globalConfig({ bgpCommunities: [{ asn: 64600, value: 1 }] });
    const services = [
      serviceConfig('http', '198.51.100.1', { bgpCommunities: [{ asn: 64600, value: 80 }] }),
      serviceConfig('https', '198.51.100.1', { port: 443, bgpCommunities: [{ asn: 64600, value: 1 }, { asn: 64600, value: 443 }] }),
    ];
    expect(lines(decideRoutes(g, services, always))).toEqual(['198.51.100.1/32 via 192.0.2.11 path 64600 med 0 comm 64600:1,64600:80,64600:443']);
  });

  test('withdraw-when-down: off by default, so unhealthy services stay announced', () => {
    const services = [serviceConfig('a', '198.51.100.1')];
    expect(decideRoutes(globalConfig(), services, () => false)).toHaveLength(1);
  });

  test('withdraw-when-down: a VIP goes when none of its services is healthy, and several services count together', () => {
    const on = { bgpWithdrawWhenDown: true };
    const http = serviceConfig('http', '198.51.100.1', on);
    const https = serviceConfig('https', '198.51.100.1', { ...on, port: 443 });
    const other = serviceConfig('other', '198.51.100.2', on);
    const services = [http, https, other];
    const decide = (healthy: ServiceConfig[]): string[] =>
      decideRoutes(globalConfig(), services, (s) => healthy.includes(s)).map((r) => r.prefix.address);
    expect(decide([http, https, other])).toEqual(['198.51.100.1', '198.51.100.2']);
    expect(decide([https])).toEqual(['198.51.100.1']);
    expect(decide([other])).toEqual(['198.51.100.2']);
    expect(decide([])).toEqual([]);
  });

  test('withdraw-when-down: a service on the same IP without the option keeps the VIP', () => {
    const services = [serviceConfig('http', '198.51.100.1', { bgpWithdrawWhenDown: true }), serviceConfig('dns', '198.51.100.1', { protocol: 'udp', port: 53 })];
    expect(decideRoutes(globalConfig(), services, () => false)).toHaveLength(1);
  });
});

describe('decideRoutes, drained (planned maintenance, RFC 8326)', () => {
  const always = (): boolean => true;
  const g = globalConfig({ bgpMed: 10, bgpCommunities: [{ asn: 64600, value: 1 }, { asn: 0xffff, value: 0xff01 }], bgpDrainMed: 4294967295 });
  const services = [
    serviceConfig('http', '198.51.100.1', { bgpCommunities: [{ asn: 64600, value: 80 }] }),
    serviceConfig('https', '198.51.100.1', { port: 443 }),
    serviceConfig('mail', '198.51.100.2', { bgpMed: 20 }),
    serviceConfig('v6', '2001:db8::1'),
  ];

  test('GRACEFUL_SHUTDOWN is the well-known community 65535:0', () => {
    expect(GRACEFUL_SHUTDOWN).toEqual({ asn: 65535, value: 0 });
  });

  test('off (the default, or drained: false): the configured MED and communities', () => {
    const normal = [
      '198.51.100.1/32 via 192.0.2.11 path 64600 med 10 comm 64600:1,64600:80,65535:65281',
      '198.51.100.2/32 via 192.0.2.11 path 64600 med 20 comm 64600:1,65535:65281',
      '2001:db8::1/128 via 2001:db8:ffff::11 path 64600 med 10 comm 64600:1,65535:65281',
    ];
    expect(lines(decideRoutes(g, services, always))).toEqual(normal);
    expect(lines(decideRoutes(g, services, always, always, { drained: false }))).toEqual(normal);
  });

  test('on: every VIP still announced, each with bgp-drain-med (whatever its own MED) and 65535:0 added to its communities', () => {
    expect(lines(decideRoutes(g, services, always, always, { drained: true }))).toEqual([
      '198.51.100.1/32 via 192.0.2.11 path 64600 med 4294967295 comm 64600:1,64600:80,65535:0,65535:65281',
      '198.51.100.2/32 via 192.0.2.11 path 64600 med 4294967295 comm 64600:1,65535:0,65535:65281',
      '2001:db8::1/128 via 2001:db8:ffff::11 path 64600 med 4294967295 comm 64600:1,65535:0,65535:65281',
    ]);
    expect(lines(decideRoutes(globalConfig({ bgpDrainMed: 500 }), [serviceConfig('a', '198.51.100.9')], always, always, { drained: true }))).toEqual([
      '198.51.100.9/32 via 192.0.2.11 path 64600 med 500 comm 65535:0',
    ]);
  });

  test('65535:0 configured already is not sent twice', () => {
    const withIt = globalConfig({ bgpCommunities: [{ asn: 65535, value: 0 }] });
    expect(decideRoutes(withIt, [serviceConfig('a', '198.51.100.9')], always, always, { drained: true })[0]?.communities).toEqual([{ asn: 65535, value: 0 }]);
  });

  test('drain never adds or withdraws a VIP: health, programming and bgp off still decide which are announced', () => {
    const on = { bgpWithdrawWhenDown: true };
    const down = serviceConfig('down', '198.51.100.3', on);
    const waiting = serviceConfig('waiting', '198.51.100.4');
    const set = [...services, down, waiting];
    const healthy = (s: ServiceConfig): boolean => s !== down;
    const programmed = (s: ServiceConfig): boolean => s !== waiting;
    const prefixes = (drained: boolean): string[] => decideRoutes(g, set, healthy, programmed, { drained }).map((r) => r.prefix.address);
    expect(prefixes(true)).toEqual(prefixes(false));
    expect(prefixes(true)).toEqual(['198.51.100.1', '198.51.100.2', '2001:db8::1']);
    expect(decideRoutes(globalConfig({ bgp: false }), services, always, always, { drained: true })).toEqual([]);
  });
});

describe('speaker options from the configuration', () => {
  test('router ID: configured, else an IPv4 bgp-local-ips entry, else the lowest non-loopback host IPv4', () => {
    expect(deriveRouterId(globalConfig({ bgpRouterId: '192.0.2.99' }), ['198.51.100.7'])).toBe('192.0.2.99');
    expect(deriveRouterId(globalConfig({ bgpLocalIps: ['2001:db8::1', '192.0.2.5'] }), ['198.51.100.7'])).toBe('192.0.2.5');
    expect(deriveRouterId(globalConfig(), ['127.0.0.1', '203.0.113.9', '198.51.100.7'])).toBe('198.51.100.7');
    expect(deriveRouterId(globalConfig(), ['127.0.0.1', '::1'])).toBeUndefined();
  });

  test('peers dial port 179 from the bgp-local-ips address of their family', () => {
    const g = globalConfig({ bgpPeerAddresses: ['192.0.2.254', '2001:db8::fe'], bgpLocalIps: ['192.0.2.5', '2001:db8::5'] });
    expect(peersFromConfig(g)).toEqual([
      { address: '192.0.2.254', localAddress: '192.0.2.5' },
      { address: '2001:db8::fe', localAddress: '2001:db8::5' },
    ]);
    expect(peersFromConfig(globalConfig({ bgpPeerAddresses: ['192.0.2.254'] }))).toEqual([{ address: '192.0.2.254' }]);
  });

  test('families with something to announce, and every key carried over', () => {
    const g = globalConfig({ bgpPeerAddresses: ['192.0.2.254'], bgpPeerAsn: 64512, bgpHoldTimeSec: 9, bgpConnectRetryMs: 2000, bgpLocalPort: 1179 });
    const services = [serviceConfig('a', '2001:db8::1'), serviceConfig('b', '198.51.100.1', { bgp: false })];
    expect(announcedFamilies(g, services)).toEqual([6]);
    const options = speakerOptionsFromConfig(g, services, { clock: new ManualClock(), logger: createSilentLogger(), hostIpv4Addresses: ['192.0.2.5'] });
    expect(options).toMatchObject({
      localAsn: 64600,
      routerId: '192.0.2.5',
      holdTimeSec: 9,
      peerAsn: 64512,
      connectRetryMs: 2000,
      families: [6],
      peers: [{ address: '192.0.2.254' }],
      listen: { addresses: [''], port: 1179 },
    });
  });

  test('no router ID to be found is a clear error', () => {
    expect(() =>
      speakerOptionsFromConfig(globalConfig(), [], { clock: new ManualClock(), logger: createSilentLogger(), hostIpv4Addresses: [] }),
    ).toThrow(/set bgp-router-id/);
  });
});
