import { describe, expect, it } from 'vitest';
import { speakerOptionsFromConfig } from '../../src/bgp/announcements.js';
import { parseConfig } from '../../src/config/parse-config.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { createSilentLogger } from '../../src/runtime/logger.js';
import { checkServerAddresses, formatKeepalivedConf, formatLegacyPool, formatPybalConf, type CheckedService } from '../../bench/lib/checks-config.js';

const service: CheckedService = {
  vip: '203.0.113.1',
  port: 18080,
  realServers: ['127.10.0.1', '127.10.0.2'],
  intervalSec: 5,
  timeoutSec: 2,
  weight: 10,
  scheduler: 'wrr',
};

describe('checkServerAddresses', () => {
  it('gives distinct loopback addresses, 250 per third octet', () => {
    const a = checkServerAddresses(5000);
    expect(a).toHaveLength(5000);
    expect(new Set(a).size).toBe(5000);
    expect(a[0]).toBe('127.10.0.1');
    expect(a[249]).toBe('127.10.0.250');
    expect(a[250]).toBe('127.10.1.1');
    expect(a[4999]).toBe('127.10.19.250');
    expect(() => checkServerAddresses(62_501)).toThrow(/at most/);
  });
});

describe('formatKeepalivedConf', () => {
  it('writes one NAT virtual_server with an HTTP_GET checker per real server', () => {
    expect(formatKeepalivedConf(service)).toBe(`global_defs {
    router_id pybal-bench
}

virtual_server 203.0.113.1 18080 {
    delay_loop 5
    lvs_sched wrr
    lvs_method NAT
    protocol TCP
    real_server 127.10.0.1 18080 {
        weight 10
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 2
        }
    }
    real_server 127.10.0.2 18080 {
        weight 10
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 2
        }
    }
}
`);
  });
});

/** The service section both formatPybalConf tests expect. */
const PROXYFETCH_SECTION = `[checks_18080]
protocol = tcp
ip = 203.0.113.1
port = 18080
scheduler = wrr
config = file:///tmp/x/pool
monitors = [ 'ProxyFetch' ]
proxyfetch.url = [ 'http://www.example.org/' ]
proxyfetch.interval = 5
proxyfetch.timeout = 2
`;

describe('formatPybalConf', () => {
  it('writes IdleConnection with its defaults when asked', () => {
    const text = formatPybalConf({ ...service, monitor: 'IdleConnection' }, '/tmp/x/pool');
    expect(text).toContain("monitors = [ 'IdleConnection' ]\n");
    expect(text).not.toContain('proxyfetch');
  });

  it('writes TCPConnect at the interval and timeout, then the extra service lines, and pybal accepts it', () => {
    const text = formatPybalConf({ ...service, monitor: 'TCPConnect', pybalServiceLines: ['forward-method = dr', 'datapath-check = yes'] }, '/tmp/x/pool');
    expect(text).toContain("monitors = [ 'TCPConnect' ]\ntcpconnect.interval = 5\ntcpconnect.timeout = 2\nforward-method = dr\ndatapath-check = yes\n");
    expect(text).not.toContain('proxyfetch');
    const r = parseConfig(text, 'pybal.conf');
    expect(r.errors).toEqual([]);
    expect(r.config?.services[0]).toMatchObject({ forwardMethod: 'dr' });
  });

  it('writes one ProxyFetch service on the same VIP, port, interval and timeout', () => {
    expect(formatPybalConf(service, '/tmp/x/pool')).toBe(`[global]
bgp = no
instrumentation = no

${PROXYFETCH_SECTION}`);
  });
});

describe('formatPybalConf with BGP', () => {
  const bgp = { localAsn: 64512, routerId: '127.0.0.1', peerAddress: '127.0.0.2', localIp: '127.0.0.1', holdTimeSec: 3 };

  it('writes one session to the peer, announcing the VIP', () => {
    const text = formatPybalConf(service, '/tmp/x/pool', bgp);
    expect(text).toBe(`[global]
bgp = yes
bgp-local-asn = 64512
bgp-router-id = 127.0.0.1
bgp-peer-address = [ '127.0.0.2' ]
bgp-local-ips = [ '127.0.0.1' ]
bgp-nexthop-ipv4 = 127.0.0.1
bgp-hold-time = 3
instrumentation = no

${PROXYFETCH_SECTION}`);
  });

  it('is a configuration pybal accepts, dialling the peer on port 179 from its local address', () => {
    const r = parseConfig(formatPybalConf(service, '/tmp/x/pool', bgp), 'pybal.conf');
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    const config = r.config;
    if (!config) throw new Error('no config');
    const options = speakerOptionsFromConfig(config.global, config.services, { clock: createSystemClock(), logger: createSilentLogger(), hostIpv4Addresses: [] });
    expect(options).toMatchObject({
      localAsn: 64512,
      routerId: '127.0.0.1',
      holdTimeSec: 3,
      families: [4],
      peers: [{ address: '127.0.0.2', localAddress: '127.0.0.1' }],
      listen: { addresses: ['127.0.0.1'], port: 179 },
    });
    expect(options.peers[0]?.port).toBeUndefined();
  });
});

describe('formatLegacyPool', () => {
  it('writes one legacy dict a line', () => {
    expect(formatLegacyPool(['127.10.0.1', '127.10.0.2'], 10)).toBe(
      "{ 'host': '127.10.0.1', 'weight': 10, 'enabled': True }\n{ 'host': '127.10.0.2', 'weight': 10, 'enabled': True }\n",
    );
  });
});
