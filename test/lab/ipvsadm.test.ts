// Host-side test of the ipvsadm -Ln parser against real output from the lab
// guest (services with flags, persistence, one-packet scheduling, a
// firewall mark, IPv6, every forwarding method but local).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseIpvsadmList, parseIpvsadmStats } from './ipvsadm.js';

describe('parseIpvsadmList', () => {
  it('reads services and destinations from real ipvsadm -Ln output', () => {
    const services = parseIpvsadmList(readFileSync(join(import.meta.dirname, 'fixtures', 'ipvsadm-Ln.txt'), 'utf8'));
    expect(services).toEqual([
      {
        protocol: 'tcp', address: '203.0.113.1', port: 80, scheduler: 'wrr', flags: [], ops: false,
        destinations: [
          { address: '198.51.100.11', port: 80, forward: 'route', weight: 10, activeConns: 0, inactiveConns: 0 },
          { address: '198.51.100.12', port: 8080, forward: 'masq', weight: 0, activeConns: 0, inactiveConns: 0 },
        ],
      },
      {
        protocol: 'tcp', address: '203.0.113.1', port: 443, scheduler: 'sh', flags: ['sh-fallback', 'sh-port'], ops: false, persistentSec: 300,
        destinations: [{ address: '198.51.100.13', port: 443, forward: 'tunnel', weight: 1, activeConns: 0, inactiveConns: 0 }],
      },
      { protocol: 'tcp', address: '203.0.113.2', port: 80, scheduler: 'mh', flags: ['mh-port'], ops: false, destinations: [] },
      {
        protocol: 'udp', address: '2001:db8:3::1', port: 53, scheduler: 'rr', flags: [], ops: true,
        destinations: [{ address: '2001:db8:1::11', port: 53, forward: 'route', weight: 5, activeConns: 0, inactiveConns: 0 }],
      },
      {
        protocol: 'fwm', fwmark: 7, fwmarkFamily: 4, scheduler: 'lc', flags: [], ops: false,
        destinations: [{ address: '198.51.100.11', port: 0, forward: 'route', weight: 1, activeConns: 0, inactiveConns: 0 }],
      },
    ]);
  });

  it('reads an empty table, a netmask, and rejects a stray destination', () => {
    expect(parseIpvsadmList('IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n')).toEqual([]);
    expect(parseIpvsadmList('TCP  203.0.113.1:80 rr persistent 60 mask 255.255.255.0\n')[0]).toMatchObject({ persistentSec: 60, netmask: '255.255.255.0' });
    expect(() => parseIpvsadmList('  -> 198.51.100.11:80   Route   1   0   0\n')).toThrow('destination before any service');
  });

  // Lines as the lab guest's ipvsadm 1.31 printed them.
  it('reads an IPv6 firewall-mark service, whose family ipvsadm writes before the scheduler', () => {
    const text = 'FWM  1 IPv6 rr\n  -> [2001:db8::6]:0              Route   1      0          0         \nFWM  2 sh (sh-fallback,sh-port)\n';
    expect(parseIpvsadmList(text)).toEqual([
      {
        protocol: 'fwm', fwmark: 1, fwmarkFamily: 6, scheduler: 'rr', flags: [], ops: false,
        destinations: [{ address: '2001:db8::6', port: 0, forward: 'route', weight: 1, activeConns: 0, inactiveConns: 0 }],
      },
      { protocol: 'fwm', fwmark: 2, fwmarkFamily: 4, scheduler: 'sh', flags: ['sh-fallback', 'sh-port'], ops: false, destinations: [] },
    ]);
  });
});

describe('parseIpvsadmStats', () => {
  it('reads ipvsadm -Ln --stats --exact', () => {
    const text = [
      'IP Virtual Server version 1.2.1 (size=4096)',
      'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
      '  -> RemoteAddress:Port',
      'UDP  203.0.113.3:5060                    3        7        0      420        0',
      '  -> 198.51.100.9:5060                   3        7        0      420        0',
      'FWM  1 IPv6                             12       80       64     6000     9000',
      '  -> [2001:db8::6]:0                     5       30       24     2000     3000',
      '  -> [2001:db8::7]:0                     7       50       40     4000     6000',
      'FWM  2                                   0        0        0        0        0',
      '',
    ].join('\n');
    expect(parseIpvsadmStats(text)).toEqual([
      { service: 'UDP  203.0.113.3:5060', conns: 3, inPackets: 7, outPackets: 0, destinations: [{ address: '198.51.100.9', port: 5060, conns: 3, inPackets: 7, outPackets: 0 }] },
      {
        service: 'FWM  1 IPv6', conns: 12, inPackets: 80, outPackets: 64,
        destinations: [
          { address: '2001:db8::6', port: 0, conns: 5, inPackets: 30, outPackets: 24 },
          { address: '2001:db8::7', port: 0, conns: 7, inPackets: 50, outPackets: 40 },
        ],
      },
      { service: 'FWM  2', conns: 0, inPackets: 0, outPackets: 0, destinations: [] },
    ]);
    expect(() => parseIpvsadmStats('  -> 198.51.100.9:5060   3   7   0   420   0\n')).toThrow('destination before any service');
  });
});
