// Self-test: a BGP speaker in the director's namespace (a second GoBGP, until
// our own speaker exists) reaches Established with the lab's router, BIRD or
// GoBGP, and a route it announces shows in the router with its attributes;
// withdrawn, the route goes away.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouterKind } from './topology.js';
import { waitFor } from './exec.js';
import type { GobgpDaemon } from './routers/gobgp.js';
import { startLab, type Lab } from './lab.js';

/** The BGP self-test against one router kind (bgp-bird.lab.test.ts, bgp-gobgp.lab.test.ts). */
export function describeBgpSelfTest(router: Exclude<RouterKind, 'none'>): void {
  describe(`lab: BGP with ${router} as the router`, () => {
    let lab: Lab;
    let speaker: GobgpDaemon;
    beforeAll(async () => {
      // With BIRD, the router installs what it learns (vipRoute 'bgp'): client traffic follows BGP.
      lab = router === 'bird' ? await startLab({ router, realServers: 1, vipRoute: 'bgp' }) : await startLab({ router, realServers: 1, realServer: false });
      speaker = await lab.startGobgpSpeaker('director1');
    });
    afterAll(async () => {
      await lab?.stop();
    });

    it('the session with the director reaches Established', async () => {
      const peer = await lab.router.waitForPeer(lab.addr.director.v4!, 'established');
      expect(peer.state).toBe('established');
      expect(peer.asn).toBe(64600);
      expect((await speaker.waitForPeer(lab.addr.router.v4!, 'established')).state).toBe('established');
    });

    if (router === 'bird') {
      it('client traffic to the VIP follows the announced route through IPVS', async () => {
        await lab.addIpvsService({ family: 4 });
        const before = await lab.client.get(lab.vipUrl(4), { timeoutMs: 2_000 });
        expect(before.servedBy).toBeUndefined(); // the router has no route to the VIP yet
        await speaker.announce(`${lab.addr.vip.v4}/32`, { nextHop: lab.addr.director.v4! });
        await lab.router.waitForRoute(`${lab.addr.vip.v4}/32`);
        const kernel = await waitFor(async () => {
          const out = (await lab.execOk('router', ['ip', 'route', 'show', `${lab.addr.vip.v4}/32`])).stdout;
          return out.includes('proto bird') ? out : undefined;
        });
        expect(kernel).toContain(`via ${lab.addr.director.v4}`);
        expect((await lab.client.waitForAnswer(lab.vipUrl(4), (a) => a.status === 200)).servedBy).toBe('rs1');
      });
    }

    it('an announced /32 shows in the router with next hop, AS path, MED and communities', async () => {
      const vip = `${lab.addr.vip.v4}/32`;
      await speaker.announce(vip, { med: 100, communities: ['64600:1', '64600:200'], nextHop: lab.addr.director.v4! });
      const route = await lab.router.waitForRoute(vip, { where: (r) => r.from === lab.addr.director.v4 && r.med === 100 });
      expect(route).toMatchObject({ prefix: vip, family: 4, nextHop: lab.addr.director.v4, asPath: [64600], med: 100, origin: 'igp' });
      expect(route.communities.sort()).toEqual(['64600:1', '64600:200']);
    });

    it('an announced IPv6 /128 shows in the router, and a withdrawal removes it', async () => {
      const vip6 = `${lab.addr.vip.v6}/128`;
      await speaker.announce(vip6, { nextHop: lab.addr.director.v6!, asPath: [64600] });
      const route = await lab.router.waitForRoute(vip6);
      expect(route.family).toBe(6);
      expect(route.nextHop).toBe(lab.addr.director.v6);
      expect(route.asPath).toEqual([64600, 64600]);
      await speaker.withdraw(vip6);
      await lab.router.waitForNoRoute(vip6);
      expect(await lab.router.route(vip6)).toEqual([]);
    });
  });
}
