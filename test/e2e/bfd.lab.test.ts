// End to end: BFD between pybal and BIRD (protocol bfd, `bfd on` in the bgp
// protocol), so that the router drops a hung director's route in about a
// second instead of at the BGP hold timer. pybal runs in director1 with a
// hold time of 30 s; the VIP's route at the router comes from BGP alone
// (vipRoute 'bgp'). The control is the same hang without BFD: the route
// stays, as it does with PyBal today.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import type { BirdDaemon } from '../lab/routers/bird.js';
import { E2eConfig, E2ePybal, type E2eService } from './pybal-lab.js';

const web: E2eService = { name: 'web', vipIndex: 0, extra: ["monitors = [ 'IdleConnection' ]"] };
const BFD = ['bgp-bfd = yes', 'bgp-bfd-interval = 0.1', 'bgp-bfd-multiplier = 3'];
const HOLD_SEC = 30;

describe('e2e: BFD with BIRD takes a hung director out within a second or two', () => {
  let lab: Lab;
  let conf: E2eConfig;
  let pybal: E2ePybal;
  let prefix: string;
  const bird = (): BirdDaemon => lab.router as BirdDaemon;
  const routerAddress = (): string => lab.addr.router.v4!;

  async function routed(): Promise<boolean> {
    return (await lab.execOk('router', ['ip', 'route', 'show', prefix])).stdout.includes(`via ${lab.addr.director.v4}`);
  }

  /** Until the router's kernel has (or has not) the VIP's route: ms from `since`, polled every 20 ms. */
  async function routeChange(want: boolean, since: number, timeoutMs: number): Promise<number> {
    await waitFor(async () => ((await routed()) === want ? true : undefined), { timeoutMs, intervalMs: 20, what: want ? 'the route back' : 'the route gone' });
    return Date.now() - since;
  }

  async function established(): Promise<void> {
    await lab.router.waitForRoute(prefix, { timeoutMs: 30_000 });
    await waitFor(async () => ((await routed()) ? true : undefined), { timeoutMs: 10_000, what: "the router's kernel route" });
  }

  beforeAll(async () => {
    lab = await startLab({ realServers: 1, router: 'bird', vipRoute: 'bgp', families: [4], routerBfd: { intervalMs: 100, multiplier: 3 } });
    prefix = `${lab.addr.vip.v4}/32`;
    conf = new E2eConfig(lab);
    conf.writePool(web.name, conf.realServerEntries());
    conf.write([web], { holdTimeSec: HOLD_SEC, globalExtra: BFD });
    pybal = E2ePybal.start(lab, conf.file);
    await established();
  }, 120_000);

  afterAll(async () => {
    pybal?.process.signal('SIGCONT');
    await lab?.stop();
  });

  it('the sessions come up on both sides: BIRD shows the director Up, pybal logs it, `pybal status` and /metrics show it', async () => {
    const sessions = await waitFor(
      async () => {
        const s = await bird().bfdSessions();
        return s.some((x) => x.address === lab.addr.director.v4 && x.state === 'Up') ? s : undefined;
      },
      { timeoutMs: 15_000, what: "BIRD's BFD session Up" },
    );
    expect(sessions.filter((s) => s.address === lab.addr.director.v4)).toEqual([{ address: lab.addr.director.v4, state: 'Up' }]);
    await waitFor(async () => pybal.log().includes(`BFD session with ${routerAddress()} is up`) || undefined, { what: "pybal's line" });
    const status = await pybal.status();
    expect(status.bgp.peers.map((p) => [p.peer, p.bfd?.state])).toEqual([[routerAddress(), 'Up']]);
    expect(await pybal.statusCommand()).toContain(`${routerAddress()} BFD: Up since `);
    expect(await pybal.metric('pybal_bgp_bfd_up')).toBe(1);
  });

  it('SIGSTOP: the route leaves the router within ~1 s (hold time 30 s); SIGCONT: it comes back', async () => {
    const since = Date.now();
    pybal.process.signal('SIGSTOP');
    const goneMs = await routeChange(false, since, 10_000);
    console.log(`BFD: route gone ${goneMs} ms after SIGSTOP (BFD 100 ms x 3; BGP hold time ${HOLD_SEC} s)`);
    expect(goneMs).toBeLessThan(HOLD_SEC * 1000 / 3);
    // BIRD says why: its BFD session went down, and the BGP session with it.
    expect((await bird().bfdSessions()).find((s) => s.address === lab.addr.director.v4)?.state).toBe('Down');

    const back = Date.now();
    pybal.process.signal('SIGCONT');
    const backMs = await routeChange(true, back, 30_000);
    console.log(`BFD: route back ${backMs} ms after SIGCONT`);
    await waitFor(async () => ((await bird().bfdSessions()).some((s) => s.address === lab.addr.director.v4 && s.state === 'Up') ? true : undefined), {
      timeoutMs: 15_000,
      what: 'BFD up again',
    });
    expect(pybal.process.running).toBe(true);
  });

  it('control, the same hang without BFD (a SIGHUP turns it off): the route stays until the hold timer', async () => {
    conf.write([web], { holdTimeSec: HOLD_SEC, globalExtra: ['bgp-bfd = no'] });
    const mark = pybal.log().length;
    pybal.process.signal('SIGHUP');
    await waitFor(async () => pybal.logSince(mark).find((l) => l.includes('Configuration reloaded')), { timeoutMs: 20_000, what: 'the reload' });
    // bgp-bfd is a session key: the speaker restarted, and BFD told BIRD AdminDown on the way.
    await established();
    await waitFor(async () => ((await bird().peers()).some((p) => p.state === 'established') ? true : undefined), { timeoutMs: 20_000, what: 'BGP up again' });
    pybal.process.signal('SIGSTOP');
    try {
      await new Promise((r) => setTimeout(r, 4_000));
      expect(await routed()).toBe(true);
    } finally {
      pybal.process.signal('SIGCONT');
    }
  });
});
