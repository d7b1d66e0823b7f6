// End to end (issue 10): routine operations never cause an outage. The built
// daemon in director1 of a lab with three real servers, a client and a BIRD
// router, one daemon for the whole file. Each check states an invariant the
// operator relies on and proves it by what the kernel (ipvsadm), the router
// (birdc) and the client see, not by the daemon's own account:
//
//   1. after every kind of SIGHUP reload the daemon still depools, repools,
//      carries weight edits into the kernel and keeps the VIP announced;
//   2. a reload with no services (empty, comments only, [global] only,
//      CR-only line endings) is refused and says why;
//   3. a pool file with no valid line, or cut mid-line, removes no server;
//   4. a changed service does not re-pool a server known to be down;
//   5. a reload that changes only ipvs-resync-interval or bgp-med keeps the
//      BGP session (bgp-med reaches the router as a new MED);
//   6. a service added by a reload is announced only once it is in the kernel.
//
// Every check leaves the lab as it found it: the base configuration (one
// service, web, on the first VIP) running, every server healthy and pooled
// with weight 10, the VIP at the router. Timing: only DEPOOL_BOUND_MS is
// asserted, from the daemon's own log line (as daemon.lab.test.ts does);
// everything else waits with generous deadlines, and "never" is checked by
// sampling the kernel and the router, plus the daemon's log where a blip
// could fall between two samples.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import type { Lab } from '../lab/lab.js';
import {
  CHECK,
  CONTROL_SLACK_MS,
  DEPOOL_BOUND_MS,
  E2eConfig,
  E2ePybal,
  birdSession,
  expectSameBirdSession,
  ipvsDestinations,
  startWebLab,
  proxyFetchLines,
  waitForIpvsDestinations,
  type E2eService,
  type PoolEntry,
} from './pybal-lab.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The service's ProxyFetch lines with another check interval: a "changed service" that keeps the depool bound. */
function fasterChecks(): string[] {
  return proxyFetchLines().map((l) => (l.startsWith('proxyfetch.interval') ? `proxyfetch.interval = ${CHECK.intervalSec / 2}` : l));
}

describe('e2e: reloads, pool edits and signals never cause an outage (issue 10)', { timeout: 120_000 }, () => {
  let lab: Lab;
  let conf: E2eConfig;
  let pybal: E2ePybal;
  let rs: { name: string; ip: string }[];
  let vip: string;
  let vip2: string;
  const web: E2eService = { name: 'web' };
  const webChanged: E2eService = { name: 'web', extra: fasterChecks() };
  const api: E2eService = { name: 'api', vipIndex: 1 };
  const all = (): string[] => rs.map((r) => r.ip).sort();
  const without = (...names: string[]): string[] => rs.filter((r) => !names.includes(r.name)).map((r) => r.ip).sort();
  const ipOf = (name: string): string => rs.find((r) => r.name === name)!.ip;
  const dests = (vipIndex = 0): Promise<string[] | undefined> => ipvsDestinations(lab, 80, vipIndex);
  const prefix = (v = vip): string => `${v}/32`;
  const fromDirector = (r: { nextHop?: string | undefined }): boolean => r.nextHop === lab.addr.director.v4;
  const announced = async (v = vip): Promise<boolean> => (await lab.router.route(prefix(v))).some(fromDirector);
  /** The daemon's log since `mark`, without the monitors' per-check lines, for failure messages. */
  const logTail = (mark: number): string =>
    pybal.logSince(mark).filter((l) => !/DEBUG: (good|bad) check/.test(l)).slice(-40).join('\n');

  /** Writes pybal.conf, sends SIGHUP and waits for the daemon's verdict (applied or refused); returns the log since. */
  async function reload(services: readonly E2eService[] | undefined, options: { globalExtra?: readonly string[] } = {}): Promise<{ mark: number; lines: string[] }> {
    if (services !== undefined) conf.write(services, options);
    const mark = pybal.log().length;
    pybal.process.signal('SIGHUP');
    await waitFor(async () => pybal.logSince(mark).find((l) => /Configuration reloaded|keeping the running configuration|Reload failed/.test(l)), {
      timeoutMs: 20_000,
      what: 'the reload to be applied or refused',
    });
    return { mark, lines: pybal.logSince(mark) };
  }

  /** Waits until the lab is as every check finds it: base service, all servers pooled with weight 10, VIP announced. */
  async function settled(): Promise<void> {
    await waitForIpvsDestinations(lab, all(), 'every real server in IPVS');
    await waitFor(async () => {
      const service = (await lab.ipvsTable()).find((s) => s.address === vip && s.port === 80);
      if (service?.destinations.every((d) => d.weight === 10)) return true;
      throw new Error(`weights ${JSON.stringify(service?.destinations.map((d) => [d.address, d.weight]))}`);
    }, { timeoutMs: 20_000, what: 'every weight 10' });
    await lab.router.waitForRoute(prefix(), { where: fromDirector, timeoutMs: 20_000 });
  }

  /**
   * Samples the router (the VIP's route from director1) until stopped, as
   * fast as birdc answers; says when the route was missing.
   */
  function watchRoute(v = vip): { stop: () => Promise<{ samples: number; missingAtMs: number[] }> } {
    let running = true;
    const missingAtMs: number[] = [];
    let samples = 0;
    const loop = (async () => {
      while (running) {
        if (!(await announced(v))) missingAtMs.push(Date.now());
        samples++;
        await sleep(100);
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
        return { samples, missingAtMs };
      },
    };
  }

  /**
   * The daemon still does its job: rs1 failing leaves IPVS within the depool
   * bound (from the daemon's own IPVS log line) and returns when healthy; a
   * weight edit in the pool file reaches the kernel; the VIP is at the router
   * throughout.
   */
  async function stillReacts(after: string): Promise<void> {
    const route = watchRoute();
    let seen = { samples: 0, missingAtMs: [] as number[] };
    try {
      const mark = pybal.log().length;
      const failedAt = Date.now();
      await lab.realServer('rs1').setBehaviour({ mode: 'down' });
      await waitFor(async () => ((await dests())?.includes(ipOf('rs1')) ? undefined : true), {
        timeoutMs: DEPOOL_BOUND_MS * 4,
        what: `rs1 out of IPVS after ${after}`,
      }).catch((error: unknown) => {
        throw new Error(`${String(error)}\npybal's log since rs1 failed:\n${logTail(mark)}`);
      });
      const deletedAt = await pybal.waitLoggedAtMs(`IPVS: delete server TCP ${vip}:80 -> ${ipOf('rs1')}:80`, mark).catch((error: unknown) => {
        throw new Error(`no IPVS delete line for rs1 after ${after}: ${String(error)}`);
      });
      const depoolMs = deletedAt - failedAt;
      console.log(`after ${after}: rs1 left IPVS ${depoolMs} ms after failing (bound ${DEPOOL_BOUND_MS} + ${CONTROL_SLACK_MS} ms)`);
      expect(depoolMs).toBeLessThanOrEqual(DEPOOL_BOUND_MS + CONTROL_SLACK_MS);

      await lab.realServer('rs1').setBehaviour({ mode: 'ok' });
      await waitForIpvsDestinations(lab, all(), `rs1 back in IPVS after ${after}`);

      // Weight 5, not 25: a line of another length. The lab's hostfs keeps whole-second
      // mtimes, so an edit of the same size within the same second as the next one
      // would look unchanged to the file source's stat signature.
      conf.writePool('web', conf.realServerEntries({ rs2: { weight: 5 } }));
      await waitFor(async () => {
        const d = (await lab.ipvsTable()).find((s) => s.address === vip && s.port === 80)?.destinations.find((x) => x.address === ipOf('rs2'));
        if (d?.weight === 5) return true;
        throw new Error(`rs2 has weight ${d?.weight}`);
      }, { timeoutMs: 15_000, what: `the weight edit in the kernel after ${after}` });
      conf.writePool('web', conf.realServerEntries());
      await settled();
    } finally {
      await lab.realServer('rs1').setBehaviour({ mode: 'ok' });
      conf.writePool('web', conf.realServerEntries());
      seen = await route.stop();
    }
    expect(seen.missingAtMs, `the VIP left the router during the checks after ${after} (${seen.samples} samples)`).toEqual([]);
  }

  beforeAll(async () => {
    ({ lab, conf, rs, vip, vip2 } = await startWebLab(web));
    // --debug: the BGP speaker logs its UPDATEs only at debug (check 6 orders them against IPVS).
    pybal = E2ePybal.start(lab, conf.file, { extraArgs: ['--debug'] });
    await settled();
  }, 90_000);

  afterAll(async () => {
    await lab?.stop();
  });

  // First, because it needs no SIGHUP: a defect of reloads cannot hide this one.
  describe('3. a bad pool file removes no server', () => {
    const bad: Array<[string, () => string]> = [
      ['every line invalid', () => "this is not a pool\n{ 'hots': 'x', 'weight': ten }\n{ 'host': , }\n"],
      // The last line ends inside `True`, as a reader catches a file being written.
      ['cut mid-line', () => {
        const good = conf.realServerEntries().map((e: PoolEntry) => `{ 'host': '${e.host}', 'weight': 10, 'enabled': True }`).join('\n');
        return good.slice(0, good.lastIndexOf('True') + 2);
      }],
    ];
    for (const [kind, content] of bad) {
      it(`${kind}: IPVS keeps every server, clients are served, /alerts warns until it is fixed`, async () => {
        const load = lab.client.startLoad(lab.vipUrl(4), { requestTimeoutMs: 2_000 });
        const route = watchRoute();
        let seen = { samples: 0, missingAtMs: [] as number[] };
        const mark = pybal.log().length;
        try {
          writeFileSync(conf.poolFile('web'), content());
          // The daemon has read it once it complains about it (file:line).
          await waitFor(async () => pybal.logSince(mark).find((l) => l.includes(conf.poolFile('web'))), { timeoutMs: 15_000, what: 'the daemon to read the bad pool file' });
          // For a few seconds, every sample of the kernel has every server.
          const until = Date.now() + 4_000;
          while (Date.now() < until) {
            const have = await dests();
            expect(have, `IPVS lost a server with the ${kind} pool file:\n${logTail(mark)}`).toEqual(all());
            await sleep(150);
          }
          const failed = load.answers.filter((a) => a.status !== 200);
          expect(failed, `client requests failed while the pool file was bad (of ${load.answers.length})`).toEqual([]);
          const alert = await waitFor(async () => {
            const a = await pybal.apiJson<{ status: string; msg: string }>('/alerts');
            if (a.status === 'warning') return a;
            throw new Error(`/alerts is ${JSON.stringify(a)}`);
          }, { timeoutMs: 10_000, what: '/alerts to warn about the bad pool file' });
          expect(alert.msg).toMatch(/web|pybal-pool-web/);
        } finally {
          conf.writePool('web', conf.realServerEntries());
          await load.stop();
          seen = await route.stop();
        }
        expect(seen.missingAtMs, 'the VIP left the router').toEqual([]);
        await waitFor(async () => {
          const a = await pybal.apiJson<{ status: string; msg: string }>('/alerts');
          if (a.status === 'ok') return true;
          throw new Error(`/alerts is ${JSON.stringify(a)}`);
        }, { timeoutMs: 15_000, what: '/alerts OK once the pool file is fixed' });
        await settled();
      });
    }

    it('a later valid edit that removes a server does remove it', async () => {
      conf.writePool('web', conf.realServerEntries().filter((e) => e.host !== ipOf('rs3')));
      await waitForIpvsDestinations(lab, without('rs3'), 'rs3 removed by a valid pool edit', { timeoutMs: 15_000 });
      expect(await dests()).toEqual(without('rs3'));
      conf.writePool('web', conf.realServerEntries());
      await settled();
    });
  });

  describe('1. after every kind of SIGHUP the daemon still reacts', () => {
    it('an unchanged configuration', async () => {
      const { lines } = await reload([web]);
      expect(lines.join('\n')).toContain('Configuration reloaded: 0 added, 0 removed, 0 changed, 1 unchanged');
      await stillReacts('an unchanged SIGHUP');
    });

    it('a changed service (proxyfetch.interval)', async () => {
      try {
        const { lines } = await reload([webChanged]);
        expect(lines.join('\n')).toMatch(/Configuration reloaded: 0 added, 0 removed, 1 changed/);
        await settled();
        await stillReacts('a SIGHUP changing web');
      } finally {
        await reload([web]);
      }
      await settled();
    });

    it('a service added', async () => {
      try {
        conf.writePool('api', conf.realServerEntries());
        const { lines } = await reload([web, api]);
        expect(lines.join('\n')).toMatch(/Configuration reloaded: 1 added/);
        await waitForIpvsDestinations(lab, all(), 'the api service in IPVS', { vipIndex: 1 });
        await lab.router.waitForRoute(prefix(vip2), { where: fromDirector, timeoutMs: 20_000 });
        await stillReacts('a SIGHUP adding api');
      } finally {
        await reload([web]);
      }
      await waitFor(async () => ((await dests(1)) === undefined ? true : undefined), { timeoutMs: 20_000, what: 'api removed from IPVS' });
      await lab.router.waitForNoRoute(prefix(vip2), { timeoutMs: 20_000 });
      await settled();
    });

    it('a global key changed (ipvs-resync-interval)', async () => {
      try {
        const { lines } = await reload([web], { globalExtra: ['ipvs-resync-interval = 30'] });
        expect(lines.join('\n')).toContain('Configuration reloaded');
        await stillReacts('a SIGHUP changing ipvs-resync-interval');
      } finally {
        await reload([web]);
      }
      await settled();
    });
  });

  describe('2. a reload with no services is refused', () => {
    // [kind, file content, the reason the log must give]
    const variants: Array<[string, () => string, RegExp]> = [
      ['an empty file', () => '', /no service/i],
      ['only comments', () => '# pybal.conf\n; nothing here yet\n', /no service/i],
      ['only [global]', () => readFileSync(conf.file, 'utf8').split(/\n\n/)[0]! + '\n', /no service/i],
      // Read as one line, it has no service; saying so, or naming the line endings, are both reasons.
      ['CR-only line endings', () => readFileSync(conf.file, 'utf8').replace(/\n/g, '\r'), /no service|CR|line ending/i],
    ];
    for (const [kind, content, reason] of variants) {
      it(`${kind}: every service stays in IPVS and at the router, and the log says why`, async () => {
        conf.write([web]);
        const good = readFileSync(conf.file, 'utf8');
        const route = watchRoute();
        let seen = { samples: 0, missingAtMs: [] as number[] };
        let applied = false;
        try {
          writeFileSync(conf.file, content());
          const { lines } = await reload(undefined);
          applied = lines.some((l) => l.includes('Configuration reloaded'));
          const text = lines.join('\n');
          // Whatever happens must be visible for a moment before it is judged.
          await sleep(2_000);
          expect(await dests(), `IPVS after a SIGHUP with ${kind}:\n${text}`).toEqual(all());
          expect(await announced(), `the VIP at the router after a SIGHUP with ${kind}`).toBe(true);
          expect(applied, `the reload was applied:\n${text}`).toBe(false);
          // Why: an error line naming the file and the reason, and the refusal.
          expect(lines.some((l) => /ERROR/.test(l) && l.includes(conf.file) && reason.test(l)), text).toBe(true);
          expect(text).toMatch(/keeping the running configuration/);
        } finally {
          writeFileSync(conf.file, good);
          seen = await route.stop();
          if (applied) await reload(undefined);
        }
        expect(seen.missingAtMs, 'the VIP left the router').toEqual([]);
      });
    }

    it('after the refusals, a failing server still leaves IPVS', async () => {
      await settled();
      await stillReacts('the refused reloads');
    });
  });

  it('4. a changed service does not re-pool a server known to be down', async () => {
    await settled();
    try {
      await lab.realServer('rs1').setBehaviour({ mode: 'down' });
      await waitForIpvsDestinations(lab, without('rs1'), 'rs1 out of IPVS before the reload', { timeoutMs: DEPOOL_BOUND_MS * 4 });
      conf.write([webChanged]);
      const mark = pybal.log().length;
      pybal.process.signal('SIGHUP');
      // Sample the kernel for a few seconds: long enough for the new monitors to report.
      const seen: Array<{ atMs: number; dests: string[] | undefined }> = [];
      const until = Date.now() + 5_000;
      while (Date.now() < until) {
        seen.push({ atMs: Date.now(), dests: await dests() });
        await sleep(50);
      }
      const lines = pybal.logSince(mark);
      expect(lines.join('\n')).toMatch(/Configuration reloaded: 0 added, 0 removed, 1 changed/);
      const repooled = seen.filter((s) => s.dests?.includes(ipOf('rs1')));
      console.log(`check 4: ${seen.length} IPVS samples in 5 s after the SIGHUP; ${repooled.length} had rs1`);
      expect(repooled, `the down rs1 came back into IPVS after the reload:\n${lines.join('\n')}`).toEqual([]);
      // A blip shorter than a sample still shows in the daemon's IPVS lines.
      expect(lines.filter((l) => l.includes(`IPVS: add server TCP ${vip}:80 -> ${ipOf('rs1')}:80`))).toEqual([]);
      expect(seen.every((s) => JSON.stringify(s.dests) === JSON.stringify(without('rs1'))), JSON.stringify(seen.map((s) => s.dests))).toBe(true);

      await lab.realServer('rs1').setBehaviour({ mode: 'ok' });
      await waitForIpvsDestinations(lab, all(), 'rs1 back once healthy');
    } finally {
      await lab.realServer('rs1').setBehaviour({ mode: 'ok' });
      await reload([web]);
    }
    await settled();
  });

  describe('5. a reload of announcement-only keys keeps the BGP session', () => {
    const cases: Array<[string, string, ((r: { med: number | undefined }) => boolean) | undefined]> = [
      ['ipvs-resync-interval', 'ipvs-resync-interval = 30', undefined],
      ['bgp-med', 'bgp-med = 42', (r) => r.med === 42],
    ];
    for (const [key, line, where] of cases) {
      it(`${key}: BIRD's session stays Established since the same moment; the route stays${where ? ' and carries the new MED' : ''}`, async () => {
        await settled();
        const director = lab.addr.director.v4!;
        const before = await birdSession(lab, director);
        expect(before?.info, JSON.stringify(before)).toMatch(/Established/);
        const route = watchRoute();
        let seen = { samples: 0, missingAtMs: [] as number[] };
        try {
          const { lines } = await reload([web], { globalExtra: [line] });
          expect(lines.join('\n')).toContain('Configuration reloaded');
          if (where) {
            const r = await lab.router.waitForRoute(prefix(), { where: (x) => fromDirector(x) && where(x), timeoutMs: 15_000 });
            expect(r.med).toBe(42);
          }
          // A reset shows within a hold time; BIRD's connect retry brings a new one back within seconds.
          await sleep(4_000);
          // birdc can fail to answer in a loaded guest: read until it does (a reset shows in `since` all the same).
          await expectSameBirdSession(lab, director, before, `\npybal's log:\n${lines.join('\n')}`);
        } finally {
          seen = await route.stop();
          await reload([web]);
        }
        expect(seen.missingAtMs, `the VIP left the router during the ${key} reload (${seen.samples} samples)`).toEqual([]);
        await lab.router.waitForRoute(prefix(), { where: (x) => fromDirector(x) && x.med !== 42, timeoutMs: 20_000 });
      });
    }
  });

  it('6. a service added by a reload is announced only once it is in the kernel', async () => {
    await settled();
    conf.writePool('api', conf.realServerEntries());
    conf.write([web, api]);
    const mark = pybal.log().length;
    // Router first, then the kernel: a route seen before the service was in
    // the kernel is a proven violation (the kernel is read after the router).
    const samples: Array<{ atMs: number; routed: boolean; inKernel: boolean }> = [];
    pybal.process.signal('SIGHUP');
    try {
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        const routed = await announced(vip2);
        const d = await dests(1);
        samples.push({ atMs: Date.now(), routed, inKernel: d !== undefined && d.length > 0 });
        if (routed) break;
      }
      const first = samples.find((s) => s.routed);
      expect(first, `vip2 never reached the router:\n${logTail(mark)}`).toBeDefined();
      console.log(`check 6: ${samples.length} samples until vip2 was at the router; the kernel had api then: ${first?.inKernel}`);
      expect(first!.inKernel, `vip2 was at the router while api was not in IPVS:\n${logTail(mark)}`).toBe(true);

      // The daemon's own order: the IPVS line is logged once the kernel has
      // accepted the service; the UPDATE line once it was written to the peer.
      const lines = pybal.logSince(mark);
      const added = lines.findIndex((l) => l.includes(`IPVS: add service TCP ${vip2}:80`));
      const update = lines.findIndex((l) => /sent UPDATEs/.test(l) && /announced=[1-9]/.test(l));
      expect(added, `no IPVS add service line for ${vip2}:\n${lines.join('\n')}`).toBeGreaterThanOrEqual(0);
      expect(update, `no UPDATE line:\n${lines.join('\n')}`).toBeGreaterThanOrEqual(0);
      expect(added, `the UPDATE was sent before the kernel had the service:\n${lines.join('\n')}`).toBeLessThan(update);
    } finally {
      await reload([web]);
    }
    await waitFor(async () => ((await dests(1)) === undefined ? true : undefined), { timeoutMs: 20_000, what: 'api removed from IPVS' });
    await lab.router.waitForNoRoute(prefix(vip2), { timeoutMs: 20_000 });
    await settled();
  });
});
