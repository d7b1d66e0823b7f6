// `pybal ipvs --stats` and `--rate`: expected text written by hand from
// ipvsadm 1.31's layout (print_title, print_service_entry, print_largenum):
// a 33-column name, then nine columns per number; from 100 million on a
// number is divided and suffixed K, M, G or T in eight columns plus the letter.
import { describe, expect, it } from 'vitest';
import { formatLargeNumber, formatTable, statsOf, ZERO_STATS } from '../../src/ipvs/format.js';
import type { DestSpec, KernelDest, KernelService, ServiceSpec, Stats } from '../../src/ipvs/types.js';
import { dest } from './fixtures.js';

function st(values: Partial<Record<keyof Stats, number | bigint>>): Stats {
  const out: Record<string, bigint> = { ...ZERO_STATS };
  for (const [k, v] of Object.entries(values)) out[k] = BigInt(v);
  return out as unknown as Stats;
}
function k(s: ServiceSpec, stats64: Stats | undefined, stats?: Stats): KernelService {
  return { ...s, rawFlags: s.flags | 2, stats, stats64 };
}
function kd(d: DestSpec, stats64: Stats | undefined, stats?: Stats): KernelDest {
  return { ...d, activeConns: 0, inactConns: 0, persistConns: 0, stats, stats64 };
}
const base = { flags: 0, timeoutSec: 0, peName: '', netmask: 32 };
const info = { version: '1.2.1', versionCode: 0x010201, connTabSize: 4096 };

describe('formatLargeNumber', () => {
  it.each([
    [0n, '        0'],
    [7n, '        7'],
    [99_999_999n, ' 99999999'],
    [100_000_000n, '  100000K'],
    [999_999_999n, '  999999K'],
    [1_000_000_000n, '    1000M'],
    [99_999_999_999n, '   99999M'],
    [100_000_000_000n, '     100G'],
    [99_999_999_999_999n, '   99999G'],
    [100_000_000_000_000n, '     100T'],
    [18_446_744_073_709_551_615n, '18446744T'],
  ])('%s -> %j', (n, text) => {
    expect(formatLargeNumber(n)).toBe(text);
  });

  it.each([
    [0n, '        0'],
    [12_345_678n, ' 12345678'],
    [123_456_789n, ' 123456789'],
    [18_446_744_073_709_551_615n, ' 18446744073709551615'],
  ])('exact: %s -> %j', (n, text) => {
    expect(formatLargeNumber(n, true)).toBe(text);
  });
});

describe('statsOf', () => {
  it('prefers the 64-bit counters, falls back on the 32-bit ones, else zeros', () => {
    expect(statsOf({ stats: st({ conns: 1 }), stats64: st({ conns: 5_000_000_000n }) }).conns).toBe(5_000_000_000n);
    expect(statsOf({ stats: st({ conns: 1 }), stats64: undefined }).conns).toBe(1n);
    expect(statsOf({ stats: undefined, stats64: undefined })).toEqual(ZERO_STATS);
  });
});

const table = {
  info,
  services: [
    {
      service: k({ ...base, key: { family: 6, protocol: 'tcp', address: '2001:db8::1', port: 443 }, scheduler: 'mh' }, st({ conns: 3, inPkts: 30, inBytes: 2000, cps: 1 })),
      dests: [kd(dest(0, { family: 6, address: '2001:db8::6', port: 443 }), st({ conns: 3, inPkts: 30, inBytes: 2000, cps: 1 }))],
    },
    { service: k({ ...base, key: { family: 4, fwmark: 7 }, scheduler: 'wlc' }, undefined), dests: [] },
    { service: k({ ...base, key: { family: 6, fwmark: 8 }, scheduler: 'wlc' }, undefined), dests: [] },
    {
      service: k(
        { ...base, key: { family: 4, protocol: 'tcp', address: '203.0.113.1', port: 80 }, scheduler: 'wrr' },
        st({ conns: 123_456_789, inPkts: 5_000_000_000n, outPkts: 0, inBytes: 250_000_000_000n, outBytes: 1, cps: 12, inPps: 340, outPps: 0, inBps: 150_000_000, outBps: 0 }),
        st({ conns: 1 }),
      ),
      dests: [
        kd(dest(6, { port: 8080 }), st({ conns: 99_999_999, inPkts: 100_000_000, inBytes: 7, cps: 5, inPps: 120_000_000, inBps: 100_000_000 })),
        kd(dest(5), undefined, st({ conns: 4, inPkts: 9, outPkts: 8, inBytes: 600, outBytes: 900, cps: 2, inPps: 3, outPps: 4, inBps: 5, outBps: 6 })),
      ],
    },
    { service: k({ ...base, key: { family: 4, protocol: 'sctp', address: '203.0.113.2', port: 9 }, scheduler: 'rr' }, st({})), dests: [] },
  ],
};

describe('formatTable --stats and --rate', () => {
  it('lays counters out as ipvsadm -Ln --stats does', () => {
    expect(formatTable(table, { view: 'stats' })).toBe(
      [
        'IP Virtual Server version 1.2.1 (size=4096)',
        'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
        '  -> RemoteAddress:Port',
        'TCP  203.0.113.1:80                123456K    5000M        0     250G        1',
        '  -> 198.51.100.6:80                     4        9        8      600      900',
        '  -> 198.51.100.7:8080            99999999  100000K        0        7        0',
        'SCTP 203.0.113.2:9                       0        0        0        0        0',
        'TCP  [2001:db8::1]:443                   3       30        0     2000        0',
        '  -> [2001:db8::6]:443                   3       30        0     2000        0',
        'FWM  7                                   0        0        0        0        0',
        'FWM  8 IPv6                              0        0        0        0        0',
        '',
      ].join('\n'),
    );
  });

  it('lays rates out as ipvsadm -Ln --rate does: a destination\'s CPS and PPS are never shortened', () => {
    expect(formatTable(table, { view: 'rate' })).toBe(
      [
        'IP Virtual Server version 1.2.1 (size=4096)',
        'Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS',
        '  -> RemoteAddress:Port',
        'TCP  203.0.113.1:80                     12      340        0  150000K        0',
        '  -> 198.51.100.6:80                     2        3        4        5        6',
        '  -> 198.51.100.7:8080                   5 120000000        0  100000K        0',
        'SCTP 203.0.113.2:9                       0        0        0        0        0',
        'TCP  [2001:db8::1]:443                   1        0        0        0        0',
        '  -> [2001:db8::6]:443                   1        0        0        0        0',
        'FWM  7                                   0        0        0        0        0',
        'FWM  8 IPv6                              0        0        0        0        0',
        '',
      ].join('\n'),
    );
  });

  it('--exact writes every number in full', () => {
    const text = formatTable({ info, services: [table.services[3] as (typeof table.services)[number]] }, { view: 'stats', exact: true });
    expect(text.split('\n')[3]).toBe('TCP  203.0.113.1:80               123456789 5000000000        0 250000000000        1');
  });
});
