import { describe, expect, it } from 'vitest';
import type { ServiceConfig } from '../../src/config/types.js';
import { DesiredServiceBuilder, desiredServiceFromConfig, persistencePrefix } from '../../src/ipvs/desired.js';
import { serviceConfig } from '../support/config-fixtures.js';

function config(extra: Partial<ServiceConfig> = {}): ServiceConfig {
  return serviceConfig('text', '192.0.2.11', { scheduler: 'wlc', poolUrl: 'file:///etc/pybal/text', ...extra });
}

describe('desiredServiceFromConfig', () => {
  it("maps PyBal's defaults: direct routing, real-server port = VIP port, no persistence", () => {
    expect(desiredServiceFromConfig(config(), [{ address: '198.51.100.6', weight: 10 }, { address: '198.51.100.10', weight: 0 }])).toEqual({
      key: { family: 4, protocol: 'tcp', address: '192.0.2.11', port: 80 },
      scheduler: 'wlc',
      flags: 0,
      timeoutSec: 0,
      netmask: 32,
      peName: '',
      destinations: [
        { family: 4, address: '198.51.100.6', port: 80, fwdMethod: 'droute', weight: 10, upperThreshold: 0, lowerThreshold: 0, tunnelType: 'ipip', tunnelPort: 0, tunnelFlags: 0 },
        { family: 4, address: '198.51.100.10', port: 80, fwdMethod: 'droute', weight: 0, upperThreshold: 0, lowerThreshold: 0, tunnelType: 'ipip', tunnelPort: 0, tunnelFlags: 0 },
      ],
    });
  });

  it('maps ops, scheduler flags, persistence, NAT and IPv6 (with canonical addresses)', () => {
    const d = desiredServiceFromConfig(
      config({
        protocol: 'udp',
        ip: '2001:DB8:0::53',
        family: 6,
        port: 53,
        scheduler: 'mh',
        schedulerFlags: ['fallback', 'port'],
        ops: true,
        forwardMethod: 'nat',
        persistenceTimeoutSec: 600,
        persistenceNetmask: '/64',
      }),
      [
        { address: '2001:db8:0:0::6', weight: 1 },
        { address: '2001:db8::6', weight: 2 }, // the same server twice: kept once
        { address: 'not-resolved.example', weight: 1 },
      ],
    );
    expect(d.key).toEqual({ family: 6, protocol: 'udp', address: '2001:db8::53', port: 53 });
    expect(d.flags).toBe(0x1 | 0x4 | 0x8 | 0x10);
    expect(d.timeoutSec).toBe(600);
    expect(d.netmask).toBe(64);
    expect(d.destinations).toEqual([expect.objectContaining({ family: 6, address: '2001:db8::6', fwdMethod: 'masq', weight: 1 })]);
  });

  it('maps a firewall-mark service: the mark is the key, each packet keeps its port unless NAT maps it', () => {
    const d = desiredServiceFromConfig(config({ fwmark: 3, persistenceTimeoutSec: 600, persistenceNetmask: '255.255.255.0' }), [{ address: '198.51.100.6', weight: 5 }]);
    expect(d.key).toEqual({ family: 4, fwmark: 3 });
    expect(d).toMatchObject({ flags: 0x1, timeoutSec: 600, netmask: 24 });
    expect(d.destinations).toEqual([expect.objectContaining({ address: '198.51.100.6', port: 0, fwdMethod: 'droute', weight: 5 })]);
    const nat = desiredServiceFromConfig(config({ ip: '2001:db8::11', family: 6, fwmark: 0x10, forwardMethod: 'nat', realPort: 8080 }), [{ address: '2001:db8::6', weight: 1 }]);
    expect(nat.key).toEqual({ family: 6, fwmark: 16 });
    expect(nat.destinations).toEqual([expect.objectContaining({ port: 8080, fwdMethod: 'masq' })]);
  });

  it('maps the real servers\' port, tunnels, thresholds and the persistence engine', () => {
    const server = [{ address: '198.51.100.6', weight: 1 }];
    expect(desiredServiceFromConfig(config({ forwardMethod: 'nat', realPort: 8080 }), server).destinations[0]).toMatchObject({ port: 8080, fwdMethod: 'masq' });
    expect(desiredServiceFromConfig(config({ forwardMethod: 'tunnel' }), server).destinations[0]).toMatchObject({
      port: 80,
      fwdMethod: 'tunnel',
      tunnelType: 'ipip',
      tunnelPort: 0,
      tunnelFlags: 0,
    });
    const gue = config({ forwardMethod: 'tunnel', tunnel: { type: 'gue', port: 6080, checksum: 'remcsum' } });
    expect(desiredServiceFromConfig(gue, server).destinations[0]).toMatchObject({ tunnelType: 'gue', tunnelPort: 6080, tunnelFlags: 2 });
    const gre = config({ forwardMethod: 'tunnel', tunnel: { type: 'gre', port: 0, checksum: 'csum' } });
    expect(desiredServiceFromConfig(gre, server).destinations[0]).toMatchObject({ tunnelType: 'gre', tunnelPort: 0, tunnelFlags: 1 });
    // Tunnel settings mean nothing to other methods, and are not sent for them.
    expect(desiredServiceFromConfig({ ...gue, forwardMethod: 'dr' }, server).destinations[0]).toMatchObject({ tunnelType: 'ipip', tunnelPort: 0, tunnelFlags: 0 });
    expect(desiredServiceFromConfig(config({ upperThreshold: 100, lowerThreshold: 80 }), server).destinations[0]).toMatchObject({ upperThreshold: 100, lowerThreshold: 80 });
    const sip = config({ protocol: 'udp', persistenceTimeoutSec: 60, persistenceEngine: 'sip' });
    expect(desiredServiceFromConfig(sip, server)).toMatchObject({ flags: 0x1, timeoutSec: 60, peName: 'sip' });
    expect(desiredServiceFromConfig({ ...sip, persistenceTimeoutSec: 0 }, server)).toMatchObject({ flags: 0, peName: '' });
  });

  it('reads persistence netmasks in both spellings and rejects the rest', () => {
    expect(persistencePrefix({ family: 4, persistenceNetmask: '255.255.255.0' })).toBe(24);
    expect(persistencePrefix({ family: 4, persistenceNetmask: '16' })).toBe(16);
    expect(persistencePrefix({ family: 6, persistenceNetmask: undefined })).toBe(128);
    expect(() => persistencePrefix({ family: 4, persistenceNetmask: '255.0.255.0' })).toThrow(/not a contiguous IPv4 mask/);
    expect(() => persistencePrefix({ family: 6, persistenceNetmask: '0' })).toThrow(/prefix length 1..128/);
  });
});

describe('DesiredServiceBuilder across reloads', () => {
  it('reuses the destinations that did not change, and builds anew every one whose settings a reload changed', () => {
    const service = serviceConfig('web', '203.0.113.1', { forwardMethod: 'dr' });
    const builder = new DesiredServiceBuilder();
    const servers = Array.from({ length: 100 }, (_, i) => ({ host: `mw${i}`, address: `10.0.0.${i}`, weight: 10 }));
    const visit = (list: typeof servers) => (v: (host: string, address: string, weight: number) => void) => list.forEach((s) => v(s.host, s.address, s.weight));
    const first = builder.build(service, visit(servers));
    const edited = servers.map((s) => (s.address === '10.0.0.7' ? { ...s, weight: 3 } : s));
    const second = builder.build(service, visit(edited));
    expect(second.destinations.filter((d, i) => d !== first.destinations[i])).toEqual([expect.objectContaining({ address: '10.0.0.7', weight: 3 })]);
    // The same values as a build from scratch.
    expect(second.destinations).toEqual(desiredServiceFromConfig(service, edited).destinations);
    // A reload: a new port is a new destination, whatever was published before; so is every other setting a destination carries.
    const moved = builder.build({ ...service, port: 8080 }, visit(edited));
    expect(moved.destinations.every((d) => d.port === 8080)).toBe(true);
    const capped = builder.build({ ...service, upperThreshold: 9 }, visit(edited));
    expect(capped.destinations.every((d) => d.upperThreshold === 9)).toBe(true);
    const tunnelled = builder.build({ ...service, forwardMethod: 'tunnel', tunnel: { type: 'gre', port: 0, checksum: 'csum' } }, visit(edited));
    expect(tunnelled.destinations.every((d) => d.fwdMethod === 'tunnel' && d.tunnelType === 'gre' && d.tunnelFlags === 1)).toBe(true);
    // A reload that changes nothing a destination carries (a new object, same settings) keeps them.
    const same = builder.build({ ...service, forwardMethod: 'tunnel', tunnel: { type: 'gre', port: 0, checksum: 'csum' } }, visit(edited));
    expect(same.destinations.every((d, i) => d === tunnelled.destinations[i])).toBe(true);
  });
});
