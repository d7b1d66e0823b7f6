// Host-side tests of the topology planner (pure): addresses, NAT vs DR
// set-up, and the errors a bad description gets. The plan itself is
// exercised for real by the *.lab.test.ts self-tests in the guest.
import { describe, expect, it } from 'vitest';
import { formatPlan, planTopology } from './topology.js';

describe('planTopology', () => {
  it('gives every node a namespace and documentation-range addresses', () => {
    const t = planTopology('t1', { realServers: 3, directors: 2 });
    expect(Object.keys(t.namespaces)).toEqual(['switch', 'router', 'client', 'director1', 'director2', 'rs1', 'rs2', 'rs3']);
    expect(t.namespaces['rs2']).toBe('labt1-rs2');
    expect(t.addr.router).toEqual({ v4: '198.51.100.1', v6: '2001:db8:1::1' });
    expect(t.addr.directors.map((d) => d.v4)).toEqual(['198.51.100.2', '198.51.100.3']);
    expect(t.addr.realServers.map((r) => [r.name, r.v4, r.v6])).toEqual([
      ['rs1', '198.51.100.11', '2001:db8:1::11'],
      ['rs2', '198.51.100.12', '2001:db8:1::12'],
      ['rs3', '198.51.100.13', '2001:db8:1::13'],
    ]);
    expect(t.addr.vip).toEqual({ v4: '203.0.113.1', v6: '2001:db8:3::1' });
    expect(t.addr.client).toEqual({ v4: '192.0.2.10', v6: '2001:db8:2::10' });
    const everything = JSON.stringify(t.addr);
    for (const ip of everything.match(/\d+\.\d+\.\d+\.\d+/g) ?? []) expect(ip).toMatch(/^(192\.0\.2|198\.51\.100|203\.0\.113)\./);
    for (const ip of everything.match(/[0-9a-f]+:[0-9a-f:]+/g) ?? []) expect(ip).toMatch(/^2001:db8:/);
  });

  it('DR: VIPs on the real servers\' lo, ARP sysctls, replies via the router', () => {
    const script = formatPlan(planTopology('t2', { forwarding: 'dr', realServers: 1 }).up);
    expect(script).toContain('ip netns exec labt2-rs1 sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2');
    const rsBatch = script.slice(script.indexOf('ip -n labt2-rs1 -batch'));
    expect(rsBatch).toContain('addr add 203.0.113.1/32 dev lo\n');
    expect(rsBatch).toContain('addr add 2001:db8:3::1/128 dev lo nodad\n');
    expect(rsBatch).toContain('route add default via 198.51.100.1\n');
    expect(script).not.toContain('redirects');
  });

  it('NAT: no VIPs on the real servers, replies via the director', () => {
    const script = formatPlan(planTopology('t3', { forwarding: 'nat', realServers: 1 }).up);
    const rsBatch = script.slice(script.indexOf('ip -n labt3-rs1 -batch'));
    expect(rsBatch).not.toContain('dev lo');
    expect(rsBatch).toContain('route add default via 198.51.100.2\n');
    expect(rsBatch).toContain('route add ::/0 via 2001:db8:1::2\n');
    expect(script).not.toContain('arp_ignore');
    // One-arm NAT: no ICMP redirects, or the real servers' replies would bypass the director's un-NAT.
    expect(script).toContain('ip netns exec labt3-director1 sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0\n');
    expect(script).toContain('ip netns exec labt3-rs1 sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.default.accept_redirects=0 net.ipv6.conf.all.accept_redirects=0 net.ipv6.conf.default.accept_redirects=0\n');
  });

  it('routes the VIPs to director1 statically unless BGP does it', () => {
    const up = formatPlan(planTopology('t4').up);
    expect(up).toContain('route add 203.0.113.1/32 via 198.51.100.2\n');
    expect(formatPlan(planTopology('t5', { vipRoute: 'bgp' }).up)).not.toContain('203.0.113.1/32 via');
  });

  it("vipRoute 'bgp-ecmp': BGP routes, and the router hashes multipath flows on their ports; the others keep the kernel's L3 hash", () => {
    const ecmp = formatPlan(planTopology('t7', { vipRoute: 'bgp-ecmp', directors: 3 }).up);
    expect(ecmp).not.toContain('203.0.113.1/32 via');
    expect(ecmp).toMatch(/ip netns exec labt7-router sysctl -q -w .*net\.ipv4\.fib_multipath_hash_policy=1 net\.ipv6\.fib_multipath_hash_policy=1\n/);
    expect(formatPlan(planTopology('t8', { vipRoute: 'bgp' }).up)).not.toContain('fib_multipath_hash_policy');
    expect(() => planTopology('t9', { vipRoute: 'ecmp' as 'bgp' })).toThrow(/vipRoute must be one of static, bgp, bgp-ecmp/);
  });

  it('leaves out a family not asked for', () => {
    const t = planTopology('t6', { families: [4], vips: 2 });
    expect(t.addr.vips).toEqual([{ v4: '203.0.113.1' }, { v4: '203.0.113.2' }]);
    expect(formatPlan(t.up)).not.toContain('2001:db8');
  });

  it('tears down by deleting every namespace', () => {
    const t = planTopology('t7', { realServers: 1 });
    expect(t.down).toEqual([{ argv: ['ip', '-batch', '-'], input: 'netns delete labt7-rs1\nnetns delete labt7-director1\nnetns delete labt7-client\nnetns delete labt7-router\nnetns delete labt7-switch\n' }]);
  });

  it('rejects a bad description with a message naming the field', () => {
    expect(() => planTopology('t8', { realServers: 0 })).toThrow('realServers must be an integer from 1 to 200, got 0');
    expect(() => planTopology('t8', { directors: 1.5 })).toThrow('directors must be an integer');
    expect(() => planTopology('t8', { families: [] })).toThrow('families must be a non-empty subset of [4, 6]');
    expect(() => planTopology('t8', { forwarding: 'tun' as 'dr' })).toThrow('forwarding must be one of nat, dr, got tun');
    expect(() => planTopology('Bad-Id')).toThrow('id must be 1-10 lower-case letters or digits');
  });
});
