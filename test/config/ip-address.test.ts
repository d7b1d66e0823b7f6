import { describe, expect, it } from 'vitest';

import { parseIpAddress } from '../../src/config/ip-address.js';

describe('parseIpAddress', () => {
  it('reads dotted quads', () => {
    expect(parseIpAddress('192.0.2.1')).toEqual({ address: '192.0.2.1', family: 4 });
    expect(parseIpAddress('0.0.0.0')).toEqual({ address: '0.0.0.0', family: 4 });
    expect(parseIpAddress('255.255.255.255')).toEqual({ address: '255.255.255.255', family: 4 });
  });

  it('refuses malformed IPv4, including leading zeros that inet_aton would read as octal', () => {
    for (const bad of ['192.0.2.256', '192.0.2', '192.0.2.1.5', '192.000.2.1', '010.0.0.1', ' 192.0.2.1', '192.0.2.1/32', '', 'host']) {
      expect(parseIpAddress(bad), bad).toBeUndefined();
    }
  });

  it('normalises IPv6 as RFC 5952 says: lower case, no leading zeros, longest zero run compressed', () => {
    const cases: [string, string][] = [
      ['2001:DB8:1:1::100', '2001:db8:1:1::100'],
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
      ['::', '::'],
      ['::1', '::1'],
      ['1::', '1::'],
      ['::ffff:192.0.2.1', '::ffff:c000:201'],
      ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
      ['1:2:3:4:5:6:192.0.2.1', '1:2:3:4:5:6:c000:201'],
    ];
    for (const [input, normal] of cases) expect(parseIpAddress(input), input).toEqual({ address: normal, family: 6 });
  });

  it('refuses malformed IPv6 and zone ids', () => {
    for (const bad of ['2001:db8::1::1', '2001:db8:::1', '1:2:3:4:5:6:7:8:9', 'fe80::1%eth0', '2001:db8::g', '[2001:db8::1]', '::ffff:192.0.2.300']) {
      expect(parseIpAddress(bad), bad).toBeUndefined();
    }
  });
});
