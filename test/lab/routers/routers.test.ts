// Host-side tests of the lab's router helpers: configs are accepted by the
// real daemons' own checkers, and the parsers read real daemon output
// (fixtures captured from BIRD 2.0.12 and GoBGP 3.10 in the lab).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exec } from '../exec.js';
import { formatCommunity } from './bgp-daemon.js';
import { formatBirdConfig, parseBirdBfdSessions, parseBirdProtocols, parseBirdRoutes } from './bird.js';
import { formatGobgpConfig, parseGobgpNeighbors, parseGobgpRib } from './gobgp.js';

const fixture = (name: string): string => readFileSync(join(import.meta.dirname, '..', 'fixtures', name), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'pybal-lab-routers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('BIRD helpers', () => {
  const config = formatBirdConfig({
    asn: 64512,
    routerId: '198.51.100.1',
    logPath: join(dir, 'bird.log'),
    neighbors: [
      { name: 'director1_v4', address: '198.51.100.2', asn: 64600, localAddress: '198.51.100.1' },
      { name: 'director1_v6', address: '2001:db8:1::2', asn: 64600, localAddress: '2001:db8:1::1' },
    ],
    exportToKernel: true,
  });

  it('with BFD: a config bird -p accepts, BFD on in every bgp protocol; and `show bfd sessions` parsed', async () => {
    const withBfd = formatBirdConfig({
      asn: 64512,
      routerId: '198.51.100.1',
      logPath: join(dir, 'bird.log'),
      neighbors: [{ name: 'director1_v4', address: '198.51.100.2', asn: 64600, localAddress: '198.51.100.1' }],
      bfd: { intervalMs: 100, multiplier: 3 },
    });
    const path = join(dir, 'bird-bfd.conf');
    writeFileSync(path, withBfd);
    const check = await exec(['bird', '-p', '-c', path]);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    expect(withBfd).toContain('interface "*" { interval 100 ms; idle tx interval 1000 ms; multiplier 3; };');
    expect(withBfd).toContain('  bfd on;');
    const text = ['0001 BIRD 2.0.12 ready.', 'bfd1:', 'IP address                Interface  State      Since         Interval  Timeout',
      '198.51.100.2              eth0       Up         10:50:01.234    0.100    0.300', '2001:db8:1::2             eth0       Down       10:50:01.234    1.000    0.000'].join('\n');
    expect(parseBirdBfdSessions(text)).toEqual([
      { address: '198.51.100.2', state: 'Up' },
      { address: '2001:db8:1::2', state: 'Down' },
    ]);
  });

  it('with an import filter: a config bird -p accepts, the filter on both channels of every neighbor', async () => {
    const filtered = formatBirdConfig({
      asn: 64512,
      routerId: '198.51.100.1',
      logPath: join(dir, 'bird.log'),
      neighbors: [{ name: 'director1_v4', address: '198.51.100.2', asn: 64600, localAddress: '198.51.100.1' }],
      importFilter: 'if (65535, 0) ~ bgp_community then bgp_local_pref = 0;\naccept;',
    });
    const path = join(dir, 'bird-filter.conf');
    writeFileSync(path, filtered);
    const check = await exec(['bird', '-p', '-c', path]);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    expect(filtered).toContain('filter lab_import {\n  if (65535, 0) ~ bgp_community then bgp_local_pref = 0;\n  accept;\n}\n');
    expect(filtered.match(/import filter lab_import;/g)).toHaveLength(2);
    expect(filtered).not.toContain('import all;');
    expect(config.match(/import all;/g)).toHaveLength(4);
  });

  it('writes a config that bird -p accepts, with the lab pitfalls handled', async () => {
    const path = join(dir, 'bird.conf');
    writeFileSync(path, config);
    const check = await exec(['bird', '-p', '-c', path]);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    expect(config).toContain('error wait time 0, 0;');
    expect(config).toContain('strict bind on;');
    expect(config.match(/passive on;/g)).toHaveLength(2);
    expect(config).toContain('export where source = RTS_BGP;');
  });

  it('parses show route all, including further paths and the peer of each', () => {
    const routes = parseBirdRoutes(fixture('bird-show-route-all.txt'), { director1_v4: '198.51.100.2', director1_v6: '2001:db8:1::2' });
    expect(routes).toHaveLength(4);
    expect(routes[0]).toEqual({
      prefix: '203.0.113.1/32',
      family: 4,
      nextHop: '198.51.100.2',
      asPath: [64600],
      med: 100,
      localPref: 100,
      communities: ['64600:1', '64600:200'],
      origin: 'incomplete',
      from: '198.51.100.2',
      best: true,
    });
    // The second path of the same prefix: printed without the prefix, with "from".
    expect(routes[1]).toMatchObject({ prefix: '203.0.113.1/32', from: '2001:db8:1::2', best: false });
    expect(routes[2]).toMatchObject({ prefix: '2001:db8:3::1/128', family: 6, nextHop: '2001:db8:1::2', med: undefined, from: '198.51.100.2', best: true });
    expect(routes[3]).toMatchObject({ prefix: '2001:db8:3::1/128', from: '2001:db8:1::2', communities: [] });
  });

  it('parses show protocols all into BGP peers', () => {
    expect(parseBirdProtocols(fixture('bird-show-protocols-all.txt'))).toEqual([
      { name: 'director1_v4', address: '198.51.100.2', asn: 64600, state: 'established' },
      { name: 'director1_v6', address: '2001:db8:1::2', asn: 64600, state: 'established' },
    ]);
  });

  it('reads an empty table and a peer that is not up', () => {
    expect(parseBirdRoutes('BIRD 2.0.12 ready.\n')).toEqual([]);
    const text = 'BIRD 2.0.12 ready.\nName       Proto      Table      State  Since         Info\nd1         BGP        ---        start  05:00:00.000  Passive\n  BGP state:          Passive\n    Neighbor address: 198.51.100.2\n    Neighbor AS:      64600\n';
    expect(parseBirdProtocols(text)).toEqual([{ name: 'd1', address: '198.51.100.2', asn: 64600, state: 'active' }]);
  });
});

describe('GoBGP helpers', () => {
  it('writes configs that gobgpd -d accepts, router and speaker', async () => {
    const router = formatGobgpConfig({
      asn: 64512,
      routerId: '198.51.100.1',
      listenAddresses: ['198.51.100.1', '2001:db8:1::1'],
      neighbors: [{ address: '198.51.100.2', asn: 64600, passive: true }],
    });
    const speaker = formatGobgpConfig({
      asn: 64600,
      routerId: '198.51.100.2',
      listenAddresses: [],
      neighbors: [{ address: '198.51.100.1', asn: 64512, localAddress: '198.51.100.2' }],
    });
    for (const [name, text] of [['router.toml', router], ['speaker.toml', speaker]] as const) {
      const path = join(dir, name);
      writeFileSync(path, text);
      const check = await exec(['gobgpd', '-f', path, '-d']);
      expect(check.code, check.stdout + check.stderr).toBe(0);
    }
    expect(router).toContain('passive-mode = true');
    expect(speaker).toContain('port = -1');
  });

  it('parses global rib JSON', () => {
    expect(parseGobgpRib(fixture('gobgp-rib-ipv4.json'))).toEqual([
      {
        prefix: '203.0.113.1/32',
        family: 4,
        nextHop: '192.0.2.11',
        asPath: [64600, 64600, 64600],
        med: 100,
        localPref: undefined,
        communities: ['64600:1'],
        origin: 'incomplete',
        from: '127.0.0.11',
        best: true,
      },
    ]);
    expect(parseGobgpRib('{}\n')).toEqual([]);
  });

  it('parses neighbor JSON with the API session states', () => {
    expect(parseGobgpNeighbors(fixture('gobgp-neighbor.json'))).toEqual([
      { address: '127.0.0.11', asn: 64600, state: 'active' },
      { address: '2001:db8:1::2', asn: 64600, state: 'established' },
    ]);
  });

  it('formats communities from their 32-bit value', () => {
    expect(formatCommunity(4233625601)).toBe('64600:1');
    expect(formatCommunity(0xffff_ff01)).toBe('65535:65281');
  });
});
