// End to end: BGP graceful restart (RFC 4724) between pybal and BIRD
// (`graceful restart on`). pybal runs in director1 with
// bgp-graceful-restart = 60 and a short hold time; the VIP's route at the
// router comes from BGP alone (vipRoute 'bgp'), and a client keeps asking
// the VIP through every step. A crash (kill -9) and a new process: the route
// never leaves the router, no request is lost, and the new process says
// End-of-RIB once its table is ready. The control: SIGTERM outside a
// `systemctl restart` still withdraws at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import { E2eConfig, E2ePybal, type E2eService } from './pybal-lab.js';

const web: E2eService = { name: 'web', vipIndex: 0, extra: ["monitors = [ 'IdleConnection' ]"] };
const RESTART_SEC = 60;

/** From `ip -tshort monitor route`: how long the address's route was gone each time it was deleted (Infinity: never back). */
function routeGapsMs(text: string, address: string): number[] {
  const gaps: number[] = [];
  let deletedAt: number | undefined;
  for (const line of text.split('\n')) {
    const m = /^\[(\S+)\] (Deleted )?(\S+) /.exec(line);
    if (!m || m[3] !== address) continue;
    const at = Date.parse(`${m[1]}Z`);
    if (m[2] !== undefined) deletedAt = at;
    else if (deletedAt !== undefined) {
      gaps.push(at - deletedAt);
      deletedAt = undefined;
    }
  }
  if (deletedAt !== undefined) gaps.push(Infinity);
  return gaps;
}

describe('e2e: BGP graceful restart keeps the VIP at the router while pybal restarts', () => {
  let lab: Lab;
  let conf: E2eConfig;
  let pybal: E2ePybal;
  let prefix: string;

  async function routed(): Promise<boolean> {
    return (await lab.execOk('router', ['ip', 'route', 'show', prefix])).stdout.includes(`via ${lab.addr.director.v4}`);
  }

  /** A client asking the VIP every 100 ms, and the router's kernel route sampled with each answer. */
  function clientLoop(): {
    /** Requests answered from now on count as answered while pybal is down (until `restarted`). */
    down: () => void;
    restarted: () => void;
    peek: () => Promise<{ readonly okAfter: number }>;
    stop: () => Promise<{ ok: number; okWhileDown: number; okAfter: number; failed: number; routeMissing: number }>;
  } {
    let running = true;
    let phase = 'before' as 'before' | 'down' | 'after';
    const counts = { ok: 0, okWhileDown: 0, okAfter: 0, failed: 0, routeMissing: 0 };
    const loop = (async () => {
      while (running) {
        // The phase when the request was sent: an answer counts for the phase it was asked in.
        const asked = phase;
        const [answer, route] = await Promise.all([lab.client.get(lab.vipUrl(4), { timeoutMs: 1_000 }), routed()]);
        if (answer.status === 200) {
          counts.ok++;
          if (asked === 'down') counts.okWhileDown++;
          if (asked === 'after') counts.okAfter++;
        }
        else counts.failed++;
        if (!route) counts.routeMissing++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    return {
      down: () => {
        phase = 'down';
      },
      restarted: () => {
        phase = 'after';
      },
      peek: async () => counts,
      stop: async () => {
        running = false;
        await loop;
        return counts;
      },
    };
  }

  async function start(): Promise<E2ePybal> {
    const p = E2ePybal.start(lab, conf.file);
    await waitFor(async () => ((await p.status().catch(() => undefined))?.bgp.peers[0]?.state === 'Established' ? true : undefined), {
      timeoutMs: 30_000,
      what: 'BGP established',
    });
    return p;
  }

  beforeAll(async () => {
    lab = await startLab({ realServers: 1, router: 'bird', vipRoute: 'bgp', families: [4], routerGracefulRestart: true });
    prefix = `${lab.addr.vip.v4}/32`;
    conf = new E2eConfig(lab);
    conf.writePool(web.name, conf.realServerEntries());
    conf.write([web], { holdTimeSec: 9, globalExtra: [`bgp-graceful-restart = ${RESTART_SEC}`] });
    pybal = await start();
    await lab.router.waitForRoute(prefix, { timeoutMs: 30_000 });
    await waitFor(async () => ((await routed()) ? true : undefined), { timeoutMs: 10_000, what: "the router's kernel route" });
  }, 120_000);

  afterAll(async () => {
    await lab?.stop();
  });

  it('negotiated with BIRD: pybal offers it, BIRD offers it back', async () => {
    expect((await pybal.status()).bgp.peers[0]?.gracefulRestart).toBe(true);
  });

  it('kill -9 and a new process 3 s later: the route stays at the router and no request is lost (but to BIRD\'s own delete-and-add of the route)', async () => {
    const monitor = lab.spawn('router', ['ip', '-4', '-tshort', 'monitor', 'route'], { name: 'route-monitor' });
    const client = clientLoop();
    await new Promise((r) => setTimeout(r, 1_000));
    client.down();
    pybal.process.signal('SIGKILL');
    await pybal.process.exited;
    // The kernel still forwards (the IPVS table is left as it was), the router still routes.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await routed()).toBe(true);
    const started = Date.now();
    pybal = await start();
    await waitFor(async () => ((await pybal.status()).bgp.peers[0]?.prefixesSent === 1 ? true : undefined), { timeoutMs: 20_000, what: 'the route sent again' });
    client.restarted();
    // Traffic after the new process took over: a few answers, however slow the guest.
    await waitFor(async () => ((await client.peek()).okAfter >= 3 ? true : undefined), { timeoutMs: 20_000, what: 'answers after the restart' });
    const counts = await client.stop();
    await monitor.stop();
    console.log(`the router's route changes:\n${monitor.output()}`);
    console.log(`graceful restart: ${counts.ok} answered (${counts.okWhileDown} while no pybal ran, ${counts.okAfter} after), ${counts.failed} failed, route missing in ${counts.routeMissing} samples; new process established in ${Date.now() - started} ms`);
    // The client asked throughout: while no pybal ran (the kernel and the
    // router kept forwarding) and after the new one had sent its route.
    expect(counts.okWhileDown).toBeGreaterThanOrEqual(3);
    expect(counts.okAfter).toBeGreaterThanOrEqual(3);
    // The route stayed in the router's kernel throughout, but for one thing
    // that is BIRD's: when the fresh route replaces the stale one, its kernel
    // protocol deletes the route and adds it again, 4-40 ms apart in this
    // lab (a router that replaces in place has no such gap). A request whose
    // first packet falls in that gap is the only one that may fail (its SYN
    // is dropped, and curl gives up at 1 s, before the retransmission).
    const gaps = routeGapsMs(monitor.output(), prefix.replace('/32', ''));
    expect(gaps.length).toBeLessThanOrEqual(1);
    expect(gaps.every((g) => g < 100), JSON.stringify(gaps)).toBe(true);
    expect(counts.failed).toBeLessThanOrEqual(gaps.length);
    expect(counts.routeMissing).toBeLessThanOrEqual(gaps.length);
    // BIRD has the route from the new session (not a stale one): its protocol is up again.
    const route = await lab.router.waitForRoute(prefix, { timeoutMs: 10_000 });
    expect(route.from ?? lab.addr.director.v4).toBe(lab.addr.director.v4);
  });

  it('control: SIGTERM outside `systemctl restart` withdraws the route at once, graceful restart or not', async () => {
    const mark = pybal.log().length;
    const since = Date.now();
    pybal.process.signal('SIGTERM');
    await waitFor(async () => ((await routed()) ? undefined : true), { timeoutMs: 5_000, intervalMs: 20, what: 'the route gone' });
    console.log(`graceful restart control: route gone ${Date.now() - since} ms after SIGTERM`);
    expect((await pybal.process.exited).code).toBe(0);
    expect(pybal.logSince(mark).some((l) => l.includes('Not a restart (not running as a systemd service): the routes are withdrawn'))).toBe(true);
  });

  it('control: the same crash without graceful restart loses the route and the requests until the new process is back', async () => {
    conf.write([web], { holdTimeSec: 9, globalExtra: ['bgp-graceful-restart = 0'] });
    pybal = await start();
    await waitFor(async () => ((await routed()) ? true : undefined), { timeoutMs: 20_000, what: 'the route' });
    expect((await pybal.status()).bgp.peers[0]?.gracefulRestart).toBe(false);
    const client = clientLoop();
    await new Promise((r) => setTimeout(r, 1_000));
    pybal.process.signal('SIGKILL');
    await pybal.process.exited;
    await new Promise((r) => setTimeout(r, 3_000));
    pybal = await start();
    await waitFor(async () => ((await routed()) ? true : undefined), { timeoutMs: 20_000, what: 'the route back' });
    const counts = await client.stop();
    console.log(`without graceful restart: ${counts.ok} answered, ${counts.failed} failed, route missing in ${counts.routeMissing} samples`);
    expect(counts.routeMissing).toBeGreaterThan(0);
    expect(counts.failed).toBeGreaterThan(0);
  });
});
