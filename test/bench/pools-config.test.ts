import { describe, expect, it } from 'vitest';
import { speakerOptionsFromConfig } from '../../src/bgp/announcements.js';
import { parseConfig } from '../../src/config/parse-config.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { createSilentLogger } from '../../src/runtime/logger.js';
import {
  formatIpvsadmDelete,
  formatIpvsadmRestore,
  formatLegacyPool,
  formatMonitorList,
  formatPoolsConf,
  BGP_TOWARDS_NO_ROUTER,
  poolServerAddresses,
  spreadServices,
  weighted,
} from '../../bench/lib/pools-config.js';

describe('poolServerAddresses', () => {
  it('numbers 127.B.C.D with 250 per third octet and 62,500 per second octet', () => {
    const a = poolServerAddresses(100_000);
    expect(a).toHaveLength(100_000);
    expect(new Set(a).size).toBe(100_000);
    expect(a[0]).toBe('127.20.0.1');
    expect(a[249]).toBe('127.20.0.250');
    expect(a[250]).toBe('127.20.1.1');
    expect(a[62_499]).toBe('127.20.249.250');
    expect(a[62_500]).toBe('127.21.0.1');
    expect(a[99_999]).toBe('127.21.149.250');
  });

  it('starts where asked and refuses what does not fit in 127/8', () => {
    expect(poolServerAddresses(2, 1)).toEqual(['127.1.0.1', '127.1.0.2']);
    expect(poolServerAddresses(0)).toEqual([]);
    expect(() => poolServerAddresses(62_501, 254)).toThrow(/do not fit in 127\/8/);
    expect(() => poolServerAddresses(-1)).toThrow(/non-negative integer/);
  });
});

describe('pool files', () => {
  it('writes the legacy format, one enabled server a line, with per-server weights', () => {
    const servers = weighted(['127.20.0.1', '127.20.0.2', '127.20.0.3'], 10, new Map([['127.20.0.2', 7]]));
    expect(servers).toEqual([
      { host: '127.20.0.1', weight: 10 },
      { host: '127.20.0.2', weight: 7 },
      { host: '127.20.0.3', weight: 10 },
    ]);
    expect(formatLegacyPool(servers)).toBe(
      "{ 'host': '127.20.0.1', 'weight': 10, 'enabled': True }\n" +
        "{ 'host': '127.20.0.2', 'weight': 7, 'enabled': True }\n" +
        "{ 'host': '127.20.0.3', 'weight': 10, 'enabled': True }\n",
    );
    expect(formatLegacyPool([])).toBe('');
  });
});

describe('formatPoolsConf', () => {
  it('writes [global] without BGP, the API on loopback, and one section per service', () => {
    expect(formatMonitorList([])).toBe('[]');
    expect(formatMonitorList(['IdleConnection', 'ProxyFetch'])).toBe("[ 'IdleConnection', 'ProxyFetch' ]");
    const conf = formatPoolsConf(
      [
        { name: 'pool_a', vip: '203.0.113.250', port: 18100, scheduler: 'wrr', poolPath: '/tmp/x/pool-a', monitors: [] },
        { name: 'pool_b', vip: '203.0.113.11', port: 18000, scheduler: 'rr', poolPath: '/tmp/x/pool-b', monitors: ['IdleConnection'] },
      ],
      9090,
    );
    expect(conf).toBe(`[global]
bgp = no
instrumentation = yes
instrumentation_port = 9090
instrumentation_ips = [ '127.0.0.1' ]

[pool_a]
protocol = tcp
ip = 203.0.113.250
port = 18100
scheduler = wrr
config = file:///tmp/x/pool-a
monitors = []

[pool_b]
protocol = tcp
ip = 203.0.113.11
port = 18000
scheduler = rr
config = file:///tmp/x/pool-b
monitors = [ 'IdleConnection' ]
`);
  });
});

describe('BGP_TOWARDS_NO_ROUTER', () => {
  it('is BGP pybal accepts, listening on 127.0.0.1 only and dialling 127.0.0.2 from it, where nothing listens', () => {
    const service = { name: 'svc', vip: '203.0.113.11', port: 18000, scheduler: 'wrr', poolPath: '/tmp/x/pool', monitors: ['IdleConnection'] };
    const r = parseConfig(formatPoolsConf([service], 9090, [], BGP_TOWARDS_NO_ROUTER), 'pybal.conf');
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    const config = r.config;
    if (!config) throw new Error('no config');
    expect(config.global.bgp).toBe(true);
    const options = speakerOptionsFromConfig(config.global, config.services, { clock: createSystemClock(), logger: createSilentLogger(), hostIpv4Addresses: [] });
    expect(options).toMatchObject({ localAsn: 64600, routerId: '192.0.2.100', peers: [{ address: '127.0.0.2', localAddress: '127.0.0.1' }], listen: { addresses: ['127.0.0.1'], port: 179 } });
  });
});

describe('spreadServices', () => {
  it('puts consecutive ports on each VIP, then moves to the next VIP', () => {
    const slots = spreadServices(1000, 5, 18000);
    expect(slots).toHaveLength(1000);
    expect(slots[0]).toEqual({ vip: '203.0.113.11', port: 18000 });
    expect(slots[4]).toEqual({ vip: '203.0.113.11', port: 18004 });
    expect(slots[5]).toEqual({ vip: '203.0.113.12', port: 18000 });
    expect(slots[999]).toEqual({ vip: '203.0.113.210', port: 18004 });
    expect(new Set(slots.map((s) => `${s.vip}:${s.port}`)).size).toBe(1000);
    expect(() => spreadServices(1300, 5, 18000)).toThrow(/203\.0\.113\.270/);
  });
});

describe('ipvsadm -R text', () => {
  it('spells services and servers as PyBal does, and deletes only the services named', () => {
    const text = formatIpvsadmRestore([
      { vip: '203.0.113.11', port: 18000, scheduler: 'wrr', servers: weighted(['127.20.0.1', '127.20.0.2'], 10) },
      { vip: '203.0.113.11', port: 18001, scheduler: 'wrr', servers: [] },
    ]);
    expect(text).toBe(
      '-A -t 203.0.113.11:18000 -s wrr\n' +
        '-a -t 203.0.113.11:18000 -r 127.20.0.1 -w 10\n' +
        '-a -t 203.0.113.11:18000 -r 127.20.0.2 -w 10\n' +
        '-A -t 203.0.113.11:18001 -s wrr\n',
    );
    expect(formatIpvsadmRestore([])).toBe('');
    expect(formatIpvsadmDelete([{ vip: '203.0.113.250', port: 18100 }, { vip: '203.0.113.11', port: 18000 }])).toBe(
      '-D -t 203.0.113.250:18100\n-D -t 203.0.113.11:18000\n',
    );
  });
});
