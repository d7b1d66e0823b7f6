import { describe, expect, it } from 'vitest';
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

describe('formatPybalConf', () => {
  it('writes IdleConnection with its defaults when asked', () => {
    const text = formatPybalConf({ ...service, monitor: 'IdleConnection' }, '/tmp/x/pool');
    expect(text).toContain("monitors = [ 'IdleConnection' ]\n");
    expect(text).not.toContain('proxyfetch');
  });

  it('writes one ProxyFetch service on the same VIP, port, interval and timeout', () => {
    expect(formatPybalConf(service, '/tmp/x/pool')).toBe(`[global]
bgp = no
instrumentation = no

[checks_18080]
protocol = tcp
ip = 203.0.113.1
port = 18080
scheduler = wrr
config = file:///tmp/x/pool
monitors = [ 'ProxyFetch' ]
proxyfetch.url = [ 'http://www.example.org/' ]
proxyfetch.interval = 5
proxyfetch.timeout = 2
`);
  });
});

describe('formatLegacyPool', () => {
  it('writes one legacy dict a line', () => {
    expect(formatLegacyPool(['127.10.0.1', '127.10.0.2'], 10)).toBe(
      "{ 'host': '127.10.0.1', 'weight': 10, 'enabled': True }\n{ 'host': '127.10.0.2', 'weight': 10, 'enabled': True }\n",
    );
  });
});
