// Expected text is real `ipvsadm -Ln` output (ipvsadm 1.31, kernel 6.1) for the
// same table, captured in the lab.
import { describe, expect, it } from 'vitest';
import { formatTable } from '../../src/ipvs/format.js';
import type { DestSpec, KernelDest, KernelService, ServiceSpec } from '../../src/ipvs/types.js';
import { dest } from './fixtures.js';

function k(s: ServiceSpec): KernelService {
  return { ...s, rawFlags: s.flags | 2, stats: undefined, stats64: undefined };
}
function kd(d: DestSpec): KernelDest {
  return { ...d, activeConns: 0, inactConns: 0, persistConns: 0, stats: undefined, stats64: undefined };
}
const base = { flags: 0, timeoutSec: 0, peName: '' };

describe('formatTable', () => {
  it('lays the table out exactly as ipvsadm -Ln does', () => {
    const text = formatTable({
      info: { version: '1.2.1', versionCode: 0x010201, connTabSize: 4096 },
      services: [
        { service: k({ ...base, key: { family: 4, fwmark: 1 }, scheduler: 'wlc', flags: 1, timeoutSec: 600, netmask: 24 }), dests: [kd(dest(5, { port: 0, weight: 1 }))] },
        {
          service: k({ ...base, key: { family: 6, protocol: 'tcp', address: '2001:db8::1', port: 443 }, scheduler: 'mh', flags: 0x19, timeoutSec: 300, netmask: 64 }),
          dests: [
            kd(dest(0, { family: 6, address: '2001:db8::7', port: 443, fwdMethod: 'tunnel', weight: 1 })),
            kd(dest(0, { family: 6, address: '2001:db8::6', port: 443, weight: 1 })),
            kd(dest(0, { address: '198.51.100.9', port: 443, fwdMethod: 'tunnel', weight: 1 })),
          ],
        },
        { service: k({ ...base, key: { family: 4, protocol: 'sctp', address: '203.0.113.2', port: 9 }, scheduler: 'rr', netmask: 32 }), dests: [kd(dest(5, { port: 9, fwdMethod: 'masq', weight: 1 }))] },
        { service: k({ ...base, key: { family: 4, protocol: 'udp', address: '203.0.113.3', port: 5060 }, scheduler: 'rr', flags: 1, timeoutSec: 60, netmask: 32, peName: 'sip' }), dests: [kd(dest(5, { port: 5060, weight: 1 }))] },
        { service: k({ ...base, key: { family: 4, protocol: 'udp', address: '203.0.113.1', port: 53 }, scheduler: 'sh', flags: 0x1c, netmask: 32 }), dests: [kd(dest(5, { port: 53, weight: 1 }))] },
        {
          service: k({ ...base, key: { family: 4, protocol: 'tcp', address: '203.0.113.1', port: 80 }, scheduler: 'wrr', netmask: 32 }),
          dests: [kd(dest(7, { port: 80, fwdMethod: 'tunnel', weight: 3 })), kd(dest(5, { weight: 10 })), kd(dest(6, { port: 8080, fwdMethod: 'masq', weight: 70000 }))],
        },
      ],
    });
    expect(text).toBe(
      [
        'IP Virtual Server version 1.2.1 (size=4096)',
        'Prot LocalAddress:Port Scheduler Flags',
        '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
        'TCP  203.0.113.1:80 wrr',
        '  -> 198.51.100.6:80              Route   10     0          0         ',
        '  -> 198.51.100.7:8080            Masq    70000  0          0         ',
        '  -> 198.51.100.8:80              Tunnel  3      0          0         ',
        'UDP  203.0.113.1:53 sh (sh-fallback,sh-port) ops',
        '  -> 198.51.100.6:53              Route   1      0          0         ',
        'UDP  203.0.113.3:5060 rr persistent 60 pe sip',
        '  -> 198.51.100.6:5060            Route   1      0          0         ',
        'SCTP 203.0.113.2:9 rr',
        '  -> 198.51.100.6:9               Masq    1      0          0         ',
        'TCP  [2001:db8::1]:443 mh (mh-fallback,mh-port) persistent 300 mask 64',
        '  -> 198.51.100.9:443             Tunnel  1      0          0         ',
        '  -> [2001:db8::6]:443            Route   1      0          0         ',
        '  -> [2001:db8::7]:443            Tunnel  1      0          0         ',
        'FWM  1 wlc persistent 600 mask 255.255.255.0',
        '  -> 198.51.100.6:0               Route   1      0          0         ',
        '',
      ].join('\n'),
    );
  });
});
