/**
 * runtime/ip.ts reads IPv6 text without node:net's isIPv6 (whose expression
 * costs the command line milliseconds to compile): it must accept exactly
 * what isIPv6 accepts, zones aside, and read the groups right.
 */
import { isIPv6 } from 'node:net';
import { describe, expect, it } from 'vitest';
import { formatIpv6Groups, parseIpv6Groups } from '../../src/runtime/ip.js';

/** A small deterministic generator (mulberry32), so that a failure is the same on every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Near-misses and valid forms alike: groups, colons, dotted quads good and bad, stray characters. */
function candidates(): string[] {
  const out = new Set<string>([
    '', '::', ':', ':::', '::1', '1::', '1::2', '1::2::3', '::ffff:192.0.2.1', '::192.0.2.1', '1.2.3.4', ':1.2.3.4', '::1.2.3.4:5',
    '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8::', '::1:2:3:4:5:6:7:8', '1:2:3:4:5:6:1.2.3.4',
    '1:2:3:4:5:6:7:1.2.3.4', '1:2:3:4:5::1.2.3.4', '1::1.2.3.4', '1:::1.2.3.4', '2001:DB8::A', '2001:db8::12345', '2001:db8::g',
    ' ::1', '::1 ', '::01.2.3.4', '::1.2.3.256', '1.2.3.4::', 'fe80::1:', ':fe80::1', '0:0:0:0:0:0:0:0', '00000::1',
  ]);
  const tokens = ['0', '1', 'a', 'F', 'ffff', 'FFFF', '0db8', '12345', 'g', ':', ':', ':', '::', '.', '1.2.3.4', '255.255.255.255', '01.2.3.4', '1.2.3.256', '-', ' '];
  const next = random(14);
  for (let i = 0; i < 20_000; i++) {
    const n = 1 + Math.floor(next() * 14);
    let s = '';
    for (let j = 0; j < n; j++) s += tokens[Math.floor(next() * tokens.length)];
    out.add(s);
  }
  // Valid shapes by construction: k groups, optionally compressed somewhere, optionally a dotted quad at the end.
  for (let i = 0; i < 5_000; i++) {
    const v4 = next() < 0.3;
    const total = (v4 ? 6 : 8) - (next() < 0.2 ? 1 : 0) + (next() < 0.1 ? 1 : 0);
    const groups = Array.from({ length: total }, () => Math.floor(next() * 0x10000).toString(16));
    let s = groups.join(':');
    if (next() < 0.6) {
      const from = Math.floor(next() * (total + 1));
      const to = from + Math.floor(next() * (total - from + 1));
      s = `${groups.slice(0, from).join(':')}::${groups.slice(to).join(':')}`;
    }
    if (v4) s += `${s.endsWith(':') || s === '' ? '' : ':'}192.0.2.${Math.floor(next() * 300)}`;
    out.add(s);
  }
  return [...out];
}

describe('parseIpv6Groups', () => {
  it('accepts exactly what isIPv6 accepts (no zone)', () => {
    const all = candidates();
    const disagree = all.filter((s) => (parseIpv6Groups(s) !== undefined) !== isIPv6(s));
    expect(disagree).toEqual([]);
    // The corpus is not vacuous: both answers occur, many times.
    expect(all.filter((s) => isIPv6(s)).length).toBeGreaterThan(1000);
    expect(all.filter((s) => !isIPv6(s)).length).toBeGreaterThan(1000);
  });

  it('reads the groups', () => {
    expect(parseIpv6Groups('2001:DB8::A')).toEqual([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xa]);
    expect(parseIpv6Groups('::ffff:192.0.2.1')).toEqual([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201]);
    expect(parseIpv6Groups('1:2:3:4:5:6:7::')).toEqual([1, 2, 3, 4, 5, 6, 7, 0]);
    expect(parseIpv6Groups('::')).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(parseIpv6Groups('fe80::1%eth0')).toBeUndefined();
    expect(formatIpv6Groups(parseIpv6Groups('2001:0db8:0:0:1:0:0:1')!)).toBe('2001:db8::1:0:0:1');
  });
});
