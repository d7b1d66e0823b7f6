// End to end: BFD over IPv6 as well. pybal peers with BIRD over both
// families (one session each) and runs BFD with both; BIRD shows both BFD
// sessions up, and a hung pybal loses both VIPs (IPv4 /32 and IPv6 /128) at
// the router within a second or two, with a BGP hold time of 30 s.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import type { BirdDaemon } from '../lab/routers/bird.js';
import { E2eConfig, E2ePybal, type E2eService } from './pybal-lab.js';

const HOLD_SEC = 30;

describe('e2e: BFD with BIRD over IPv4 and IPv6', () => {
  let lab: Lab;
  let pybal: E2ePybal;
  const bird = (): BirdDaemon => lab.router as BirdDaemon;
  const web4: E2eService = { name: 'web4', vipIndex: 0, family: 4, extra: ["monitors = [ 'IdleConnection' ]"] };
  const web6: E2eService = { name: 'web6', vipIndex: 0, family: 6, extra: ["monitors = [ 'IdleConnection' ]"] };

  async function routes(): Promise<{ v4: boolean; v6: boolean }> {
    const v4 = (await lab.execOk('router', ['ip', '-4', 'route', 'show', `${lab.addr.vip.v4}/32`])).stdout.includes('via');
    const v6 = (await lab.execOk('router', ['ip', '-6', 'route', 'show', `${lab.addr.vip.v6}/128`])).stdout.includes('via');
    return { v4, v6 };
  }

  beforeAll(async () => {
    lab = await startLab({ realServers: 1, router: 'bird', vipRoute: 'bgp', families: [4, 6], routerBfd: { intervalMs: 100, multiplier: 3 } });
    const conf = new E2eConfig(lab);
    conf.writePool(web4.name, conf.realServerEntries({}, 4));
    conf.writePool(web6.name, conf.realServerEntries({}, 6));
    conf.write([web4, web6], { holdTimeSec: HOLD_SEC, globalExtra: ['bgp-bfd = yes', 'bgp-bfd-interval = 0.1', 'bgp-bfd-multiplier = 3'] });
    pybal = E2ePybal.start(lab, conf.file);
    await waitFor(async () => {
      const r = await routes();
      return r.v4 && r.v6 ? true : undefined;
    }, { timeoutMs: 40_000, what: 'both VIPs routed at the router' });
  }, 120_000);

  afterAll(async () => {
    pybal?.process.signal('SIGCONT');
    await lab?.stop();
  });

  it('a BFD session per family comes up, at BIRD and in pybal', async () => {
    const director = lab.addr.director;
    await waitFor(
      async () => {
        const s = await bird().bfdSessions();
        const up = (a: string | undefined): boolean => s.some((x) => x.address === a && x.state === 'Up');
        return up(director.v4) && up(director.v6) ? true : undefined;
      },
      { timeoutMs: 15_000, what: "BIRD's two BFD sessions Up" },
    );
    await waitFor(async () => ((await pybal.status()).bgp.peers.every((p) => p.bfd?.state === 'Up') ? true : undefined), { what: "pybal's sessions Up" });
    const peers = (await pybal.status()).bgp.peers.map((p) => p.peer).sort();
    expect(peers).toEqual([lab.addr.router.v4, lab.addr.router.v6].sort());
  });

  it('SIGSTOP: both VIPs leave the router within seconds though the hold time is 30 s', async () => {
    const since = Date.now();
    pybal.process.signal('SIGSTOP');
    try {
      await waitFor(async () => {
        const r = await routes();
        return !r.v4 && !r.v6 ? true : undefined;
      }, { timeoutMs: 10_000, intervalMs: 20, what: 'both routes gone' });
      const ms = Date.now() - since;
      console.log(`BFD over IPv4 and IPv6: both routes gone ${ms} ms after SIGSTOP`);
      expect(ms).toBeLessThan((HOLD_SEC * 1000) / 3);
    } finally {
      pybal.process.signal('SIGCONT');
    }
    await waitFor(async () => {
      const r = await routes();
      return r.v4 && r.v6 ? true : undefined;
    }, { timeoutMs: 30_000, what: 'both routes back' });
  });
});
