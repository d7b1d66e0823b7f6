// Host-side tests of GoBGP as the lab's router with graceful restart and the
// kernel mirror (gobgp-fib.ts): the config gobgpd accepts, the best paths
// read from its RIB with their stale mark, and the `ip` lines the mirror
// plans. The mirror itself runs in test/e2e/gobgp-failover.lab.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exec } from '../exec.js';
import { planKernelRoutes } from './gobgp-fib.js';
import { formatGobgpConfig, parseGobgpBest, type GobgpBestPath } from './gobgp.js';

const dir = mkdtempSync(join(tmpdir(), 'pybal-lab-gobgp-fib-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('GoBGP with graceful restart', () => {
  it('writes the neighbors\' graceful-restart section, and gobgpd -d accepts it', async () => {
    const text = formatGobgpConfig({
      asn: 64512,
      routerId: '198.51.100.1',
      listenAddresses: ['198.51.100.1'],
      neighbors: [
        { address: '198.51.100.2', asn: 64600, passive: true },
        { address: '198.51.100.3', asn: 64600, passive: true },
      ],
      gracefulRestart: { restartTimeSec: 120 },
    });
    expect(text.match(/\[neighbors\.graceful-restart\.config\]\n {4}enabled = true\n {4}restart-time = 120\n/g)).toHaveLength(2);
    const path = join(dir, 'gr.toml');
    writeFileSync(path, text);
    const check = await exec(['gobgpd', '-f', path, '-d']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(formatGobgpConfig({ asn: 64512, routerId: '198.51.100.1', listenAddresses: [], neighbors: [{ address: '198.51.100.2', asn: 64600 }] })).not.toContain('graceful-restart');
  });

  it('reads the best path of each prefix with its stale mark', () => {
    // Two directors' paths for one VIP, director1's best and stale (kept across its restart); an IPv6 one.
    const v4 = JSON.stringify({
      '203.0.113.1/32': [
        { nlri: { prefix: '203.0.113.1/32' }, best: false, attrs: [{ type: 3, nexthop: '198.51.100.3' }], stale: false, 'neighbor-ip': '198.51.100.3' },
        { nlri: { prefix: '203.0.113.1/32' }, best: true, attrs: [{ type: 4, metric: 10 }, { type: 3, nexthop: '198.51.100.2' }], stale: true, 'neighbor-ip': '198.51.100.2' },
      ],
    });
    expect(parseGobgpBest(v4)).toEqual([{ prefix: '203.0.113.1/32', family: 4, nextHop: '198.51.100.2', from: '198.51.100.2', stale: true }]);
    const v6 = JSON.stringify({
      '2001:db8:3::1/128': [{ nlri: { prefix: '2001:db8:3::1/128' }, best: true, attrs: [{ type: 14, nexthop: '2001:db8:1::2', afi: 2 }], stale: false, 'neighbor-ip': '198.51.100.2' }],
    });
    expect(parseGobgpBest(v6)).toEqual([{ prefix: '2001:db8:3::1/128', family: 6, nextHop: '2001:db8:1::2', from: '198.51.100.2', stale: false }]);
    expect(parseGobgpBest('{}\n')).toEqual([]);
  });
});

describe('the kernel mirror plan', () => {
  const best = (prefix: string, nextHop: string, stale = false): GobgpBestPath => ({ prefix, family: prefix.includes(':') ? 6 : 4, nextHop, from: nextHop, stale });

  it('installs new prefixes, replaces a changed next hop in place, removes what GoBGP no longer has', () => {
    const first = planKernelRoutes([best('203.0.113.1/32', '198.51.100.2'), best('2001:db8:3::1/128', '2001:db8:1::2')], new Map());
    expect(first.lines).toEqual(['route replace 203.0.113.1/32 via 198.51.100.2 proto bgp', 'route replace 2001:db8:3::1/128 via 2001:db8:1::2 proto bgp']);
    // director1's path gone, director2's best: one replace, never a delete and an add.
    const moved = planKernelRoutes([best('203.0.113.1/32', '198.51.100.3'), best('2001:db8:3::1/128', '2001:db8:1::2')], first.next);
    expect(moved.lines).toEqual(['route replace 203.0.113.1/32 via 198.51.100.3 proto bgp']);
    const gone = planKernelRoutes([best('203.0.113.1/32', '198.51.100.3')], moved.next);
    expect(gone.lines).toEqual(['route del 2001:db8:3::1/128 proto bgp']);
    expect([...gone.next]).toEqual([['203.0.113.1/32', '198.51.100.3']]);
  });

  it('leaves a route alone when only its stale mark changes (a graceful restart sends the same path again)', () => {
    const installed = new Map([['203.0.113.1/32', '198.51.100.2']]);
    expect(planKernelRoutes([best('203.0.113.1/32', '198.51.100.2', true)], installed).lines).toEqual([]);
    expect(planKernelRoutes([best('203.0.113.1/32', '198.51.100.2', false)], installed).lines).toEqual([]);
  });
});
