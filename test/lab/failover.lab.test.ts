// Self-test: two directors, each with its own IPVS table and BGP speaker
// (GoBGP stand-ins), announce the VIP to BIRD with different MEDs; BIRD
// installs the best path, so the client's traffic goes through director1
// until its speaker stops, then through director2. The stage for failover
// tests of our own daemon.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './exec.js';
import type { GobgpDaemon } from './routers/gobgp.js';
import { startLab, type Lab } from './lab.js';

describe('lab: failover between two directors over BGP', () => {
  let lab: Lab;
  let speakers: GobgpDaemon[];
  beforeAll(async () => {
    lab = await startLab({ directors: 2, realServers: 2, router: 'bird', vipRoute: 'bgp', families: [4] });
    speakers = await Promise.all([lab.startGobgpSpeaker('director1'), lab.startGobgpSpeaker('director2')]);
    for (const director of ['director1', 'director2']) await lab.addIpvsService({ family: 4, director });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  /** Connections from the client in a director's IPVS connection table. */
  const clientConnections = async (director: string): Promise<number> =>
    (await lab.ipvsadm(['-Lnc'], director)).split('\n').filter((l) => l.includes(`${lab.addr.client.v4}:`)).length;

  const kernelRoute = (): Promise<string> =>
    lab.execOk('router', ['ip', 'route', 'show', `${lab.addr.vip.v4}/32`]).then((r) => r.stdout);

  it('the best path (lower MED) carries the traffic through director1', async () => {
    const [d1, d2] = lab.addr.directors;
    const prefix = `${lab.addr.vip.v4}/32`;
    await Promise.all(speakers.map((s) => s.waitForPeer(lab.addr.router.v4!)));
    await speakers[0]!.announce(prefix, { nextHop: d1!.v4!, med: 10 });
    await speakers[1]!.announce(prefix, { nextHop: d2!.v4!, med: 20 });
    await lab.router.waitForRoute(prefix, { where: (r) => r.from === d2!.v4 });
    const best = await lab.router.waitForRoute(prefix, { where: (r) => r.best });
    expect(best.from).toBe(d1!.v4);
    await waitFor(async () => ((await kernelRoute()).includes(`via ${d1!.v4}`) ? true : undefined), { what: 'kernel route via director1' });
    expect((await lab.client.waitForAnswer(lab.vipUrl(4), (a) => a.status === 200)).status).toBe(200);
    expect(await clientConnections('director1')).toBeGreaterThan(0);
    expect(await clientConnections('director2')).toBe(0);
  });

  it('when director1 stops announcing, traffic moves to director2', async () => {
    const [, d2] = lab.addr.directors;
    await speakers[0]!.stop();
    await waitFor(async () => ((await kernelRoute()).includes(`via ${d2!.v4}`) ? true : undefined), { what: 'kernel route via director2' });
    expect((await lab.client.waitForAnswer(lab.vipUrl(4), (a) => a.status === 200)).status).toBe(200);
    expect(await clientConnections('director2')).toBeGreaterThan(0);
  });
});
