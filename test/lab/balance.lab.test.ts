// Self-test: a client's requests to the VIP are balanced across real servers
// by the guest's IPVS, in NAT and in DR, over IPv4 and IPv6; which real
// server answered is read from its X-Served-By header.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './exec.js';
import { FAMILIES } from './topology.js';
import { startLab, type Lab } from './lab.js';

type ServiceStats = { conns: number; inPkts: number; outPkts: number };

/** Polls `ipvsadm -Ln --stats` for a service: the kernel folds its per-CPU counters into these totals every 2 s. */
function waitForStats(lab: Lab, proto: '-t' | '-u', service: string, enough: (stats: ServiceStats) => boolean): Promise<ServiceStats> {
  return waitFor(
    async () => {
      const out = await lab.ipvsadm(['-Ln', '--stats', '--exact', proto, service]);
      // "TCP  203.0.113.1:80   4   24   0   1543   0": conns, in packets, out packets, in bytes, out bytes
      const line = out.split('\n').find((l) => l.includes(service)) ?? '';
      const [conns = NaN, inPkts = NaN, outPkts = NaN] = line.trim().split(/\s+/).slice(2, 5).map(Number);
      const stats = { conns, inPkts, outPkts };
      return enough(stats) ? stats : undefined;
    },
    { timeoutMs: 10_000, what: `IPVS counters of ${service}` },
  );
}

describe.each(['nat', 'dr'] as const)('lab: %s forwarding', (forwarding) => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ forwarding, realServers: 2, router: 'none', realServer: { http: 80, dns: 53, dnsRecords: ['www.example.org=192.0.2.80'] } });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  it.each(FAMILIES)('balances IPv%i requests to the VIP across the real servers', async (family) => {
    const service = await lab.addIpvsService({ family, scheduler: 'rr' });
    const answers = await lab.client.servedBy(lab.vipUrl(family), 4);
    // Round robin over two servers: every request answered, strictly alternating.
    expect(answers.every((a) => a === 'rs1' || a === 'rs2')).toBe(true);
    expect(new Set(answers).size).toBe(2);
    expect(answers[0]).not.toBe(answers[1]);
    expect(answers[2]).toBe(answers[0]);

    const { conns, inPkts, outPkts } = await waitForStats(lab, '-t', service, (st) => st.conns === 4);
    expect(conns).toBe(4);
    expect(inPkts).toBeGreaterThan(0);
    // DR: replies go straight from the real servers to the client, never through the director.
    if (forwarding === 'dr') expect(outPkts).toBe(0);
    else expect(outPkts).toBeGreaterThan(0);
    if (forwarding === 'nat') {
      // One-arm NAT: a redirect would send the real servers' replies around the director's un-NAT.
      const counters = await lab.exec('director1', ['nstat', '-az', 'IcmpOutRedirects', 'Icmp6OutRedirects']);
      expect(counters.stdout).toMatch(/^IcmpOutRedirects\s+0\s/m);
      expect(counters.stdout).toMatch(/^Icmp6OutRedirects\s+0\s/m);
    }
  });

  it.each(FAMILIES)('answers DNS over UDP through the IPv%i VIP, from the VIP', async (family) => {
    const service = await lab.addIpvsService({ family, protocol: 'udp', port: 53 });
    const vip = family === 4 ? lab.addr.vip.v4! : lab.addr.vip.v6!;
    // dig rejects an answer from any address but the one it asked.
    const dig = await lab.client.exec(['dig', '+short', '+time=2', '+tries=1', `@${vip}`, 'www.example.org', 'A']);
    expect(dig.stdout.trim()).toBe('192.0.2.80');
    expect((await waitForStats(lab, '-u', service, (st) => st.inPkts > 0)).inPkts).toBeGreaterThan(0);
  });

  if (forwarding === 'dr') {
    it('real servers hold the VIP on lo with arp_ignore=1 and arp_announce=2', async () => {
      const lo = await lab.execOk('rs1', ['ip', 'addr', 'show', 'dev', 'lo']);
      expect(lo.stdout).toContain(`${lab.addr.vip.v4}/32`);
      expect(lo.stdout).toContain(`${lab.addr.vip.v6}/128`);
      const sysctl = await lab.execOk('rs1', ['sysctl', '-n', 'net.ipv4.conf.all.arp_ignore', 'net.ipv4.conf.all.arp_announce', 'net.ipv4.conf.eth0.arp_ignore', 'net.ipv4.conf.eth0.arp_announce']);
      expect(sysctl.stdout.split('\n').filter(Boolean)).toEqual(['1', '2', '1', '2']);
    });
  }
});
