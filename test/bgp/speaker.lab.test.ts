/**
 * In the lab (a real kernel in a UML guest): our speaker runs in the director's
 * namespace, as on a real director, and peers with BIRD in the router's
 * namespace on port 179 over IPv4 and IPv6. BIRD installs what it learns into
 * the router's kernel, so client traffic to the VIP follows our announcements
 * through IPVS to a real server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, type Lab } from '../lab/lab.js';
import type { LabProcess } from '../lab/exec.js';
import { globalConfig, serviceConfig } from '../support/config-fixtures.js';

describe('lab: our BGP speaker in the director, BIRD as the router', () => {
  let lab: Lab;
  let speaker: LabProcess;

  beforeAll(async () => {
    lab = await startLab({ router: 'bird', realServers: 1, vipRoute: 'bgp' });
    await lab.addIpvsService({ family: 4 });
    const director = lab.addr.director;
    const input = {
      global: globalConfig({
        bgpPeerAddresses: [lab.addr.router.v4!, lab.addr.router.v6!],
        bgpPeerAsn: 64512,
        bgpNexthopIpv4: director.v4,
        bgpNexthopIpv6: director.v6,
        bgpCommunities: [{ asn: 64600, value: 1 }],
        bgpMed: 100,
        bgpHoldTimeSec: 9,
        bgpConnectRetryMs: 1000,
      }),
      services: [
        serviceConfig('web', lab.addr.vip.v4!, { bgpWithdrawWhenDown: true }),
        serviceConfig('web6', lab.addr.vip.v6!, { bgpWithdrawWhenDown: true }),
      ],
    };
    speaker = lab.spawn('director', ['node', 'dist/test/bgp/netns-speaker.js', JSON.stringify(input)], { name: 'speaker' });
    await speaker.waitForLine(/"started":true/, 30_000);
  });

  afterAll(async () => {
    await lab?.stop();
  });

  it('both sessions establish and the router learns the VIPs with their attributes', async () => {
    const vip = `${lab.addr.vip.v4}/32`;
    const vip6 = `${lab.addr.vip.v6}/128`;
    const route = await lab.router.waitForRoute(vip, { timeoutMs: 30_000 });
    expect(route).toMatchObject({ prefix: vip, nextHop: lab.addr.director.v4, asPath: [64600], med: 100, origin: 'igp', communities: ['64600:1'] });
    const route6 = await lab.router.waitForRoute(vip6, { timeoutMs: 30_000 });
    expect(route6).toMatchObject({ prefix: vip6, nextHop: lab.addr.director.v6, asPath: [64600] });
    expect((await lab.router.waitForPeer(lab.addr.director.v4!, 'established')).asn).toBe(64600);
    expect((await lab.router.waitForPeer(lab.addr.director.v6!, 'established')).asn).toBe(64600);
  });

  it('client traffic follows the announcement through IPVS to the real server', async () => {
    expect((await lab.client.waitForAnswer(lab.vipUrl(4), (a) => a.status === 200)).servedBy).toBe('rs1');
  });

  it('no healthy server: the VIP is withdrawn; healthy again: announced again', async () => {
    const vip = `${lab.addr.vip.v4}/32`;
    speaker.signal('SIGUSR1');
    await lab.router.waitForNoRoute(vip, { timeoutMs: 10_000 });
    await lab.router.waitForNoRoute(`${lab.addr.vip.v6}/128`, { timeoutMs: 10_000 });
    speaker.signal('SIGUSR2');
    expect((await lab.router.waitForRoute(vip, { timeoutMs: 10_000 })).nextHop).toBe(lab.addr.director.v4);
  });

  it('SIGTERM: the speaker withdraws everything, says why, and exits cleanly', async () => {
    speaker.signal('SIGTERM');
    expect(await speaker.exited).toEqual({ code: 0, signal: null });
    await lab.router.waitForNoRoute(`${lab.addr.vip.v4}/32`, { timeoutMs: 10_000 });
    await lab.router.waitForNoRoute(`${lab.addr.vip.v6}/128`, { timeoutMs: 10_000 });
    expect(await lab.router.log()).toMatch(/SIGTERM: director shutting down/);
  });
});
