// End to end: two directors running mh (Maglev) choose the same real server
// for a flow, whatever each saw fail and when, so that a flow moved between
// them (ECMP at the router: a director added or removed) keeps its server.
// Two pybal directors share one configuration with two mh services:
//   vips[0] [mh-plain]      mh, mh-port: PyBal's way, a depooled server leaves IPVS
//   vips[1] [mh-consistent] mh, mh-port, mh-fallback: every server stays, at weight 0 when depooled
// rs3's checks fail from director1 only for a while (its packets dropped at
// rs3), so director1 depools and repools it and director2 never does. The
// kernel's mh table follows the order of the destination list and each
// destination's last weight above 0 (ip_vs_mh.c): the plain service deletes
// and re-adds rs3 on director1 only, the consistent one keeps it in place at
// weight 0; connections held open through director1 and moved to director2
// (net.ipv4.vs.sloppy_tcp = 1, so director2 schedules its next packet)
// are answered by the same server. In this lab the plain service's history did
// not make its directors diverge either (its figures are printed, not
// asserted): what is asserted is the consistent mode's own behaviour. The router's route to the VIP is switched
// by hand between the directors, as ECMP would move a flow.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import { IPTABLES_MODULES, appendMangleRules } from '../lab/iptables.js';
import { loadGuestModules, startLab, type Lab } from '../lab/lab.js';
import { E2eConfig, E2ePybal, proxyFetchLines, type E2eService } from './pybal-lab.js';

const plain: E2eService = { name: 'mh-plain', vipIndex: 0, scheduler: 'mh', extra: ['mh-port = yes', ...proxyFetchLines()] };
const consistent: E2eService = { name: 'mh-consistent', vipIndex: 1, scheduler: 'mh', extra: ['mh-port = yes', 'mh-fallback = yes', ...proxyFetchLines()] };
/** Connections moved between the directors. */
const FLOWS = 12;

describe('e2e: mh with fallback gives two directors the same table, whatever their history', () => {
  let lab: Lab;
  const pybals: E2ePybal[] = [];
  const vip = (i: number): string => lab.addr.vips[i]!.v4!;
  const director = (n: 1 | 2): string => lab.addr.directors[n - 1]!.v4!;

  /** `-a -t VIP:80 -r RS:80 -g -w W` lines of a service, in the kernel's list order. */
  async function destOrder(node: string, vipIndex: number): Promise<string[]> {
    const lines = (await lab.ipvsadm(['-Sn'], node)).split('\n');
    return lines.filter((l) => l.startsWith(`-a -t ${vip(vipIndex)}:80 `)).map((l) => l.replace(/^-a -t \S+ -r (\S+) -g -w (\d+).*$/, '$1 w$2'));
  }

  async function routeVia(n: 1 | 2): Promise<void> {
    for (const i of [0, 1]) await lab.execOk('router', ['ip', 'route', 'replace', `${vip(i)}/32`, 'via', director(n)]);
  }

  beforeAll(async () => {
    await loadGuestModules([...IPTABLES_MODULES]);
    lab = await startLab({ directors: 2, realServers: 3, forwarding: 'dr', router: 'none', families: [4], vips: 2 });
    const conf = new E2eConfig(lab);
    for (const s of [plain, consistent]) conf.writePool(s.name, conf.realServerEntries());
    conf.write([plain, consistent], { bgp: false });
    for (const n of [1, 2] as const) pybals.push(E2ePybal.start(lab, conf.file, { director: `director${n}`, name: `pybal${n}` }));
    for (const n of [1, 2] as const) {
      await waitFor(
        async () => {
          const orders = await Promise.all([destOrder(`director${n}`, 0), destOrder(`director${n}`, 1)]);
          return orders.every((o) => o.length === 3) ? true : undefined;
        },
        { timeoutMs: 40_000, what: `both services with three servers in director${n}` },
      );
      await lab.execOk(`director${n}`, ['sysctl', '-q', '-w', 'net.ipv4.vs.sloppy_tcp=1']);
    }
    // The client reuses source ports across the comparison (TIME_WAIT allows it after a second).
    await lab.execOk('client', ['sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1']);
  }, 150_000);

  afterAll(async () => {
    await lab?.stop();
  });

  it("rs3 fails director1's checks for a while: the plain service drops and re-adds it there, the consistent one keeps it at weight 0; both directors show the same destinations and weights", async () => {
    const rs3 = lab.addr.realServers[2]!.v4!;
    const rule = ['PREROUTING', '-s', director(1), '-p', 'tcp', '--dport', '80', '-j', 'DROP'];
    await appendMangleRules(lab, 'rs3', 4, [rule]);
    // director1 depools rs3: it leaves the plain service, and stays at weight 0 in the consistent one.
    await waitFor(async () => ((await destOrder('director1', 0)).some((d) => d.startsWith(`${rs3}:80`)) ? undefined : true), {
      timeoutMs: 30_000,
      what: 'rs3 depooled by director1',
    });
    await waitFor(async () => ((await destOrder('director1', 1)).includes(`${rs3}:80 w0`) ? true : undefined), { timeoutMs: 30_000, what: 'rs3 at weight 0 in the consistent service' });
    await lab.execOk('rs3', ['iptables-legacy', '-t', 'mangle', '-D', ...rule]);
    await waitFor(async () => ((await destOrder('director1', 0)).some((d) => d.startsWith(`${rs3}:80`)) ? true : undefined), {
      timeoutMs: 30_000,
      what: 'rs3 repooled by director1',
    });
    await waitFor(async () => ((await destOrder('director1', 1)).includes(`${rs3}:80 w10`) ? true : undefined), { timeoutMs: 30_000, what: 'rs3 back at weight 10' });

    // The consistent service never dropped rs3: the same destinations and weights on both directors.
    expect(await destOrder('director1', 1)).toEqual(await destOrder('director2', 1));
  });

  /** FLOWS connections to a VIP held open through director1, then moved to director2: who answered each, before and after. */
  async function moveConnections(vipIndex: number): Promise<{ before: string[]; after: string[] }> {
    await routeVia(1);
    const holds = Array.from({ length: FLOWS }, (_, i) => lab.spawn('client', ['node', 'dist/test/ipvs/hold-connection.js', vip(vipIndex), '80'], { name: `hold-${vipIndex}-${i}` }));
    try {
      const first = await Promise.all(holds.map((h) => h.waitForLine(/^first /, 15_000)));
      const before = first.map((line) => /^first 200 (rs\d) (\d+)/.exec(line)?.slice(1, 3).join(' ') ?? line);
      await routeVia(2);
      const marks = holds.map((h) => h.output().length);
      for (const h of holds) h.signal('SIGUSR2');
      const after = await Promise.all(
        holds.map((h, i) =>
          waitFor(async () => h.output().slice(marks[i]).split('\n').find((l) => /^(again|closed|error)/.test(l)), { timeoutMs: 15_000, what: 'an answer' }),
        ),
      );
      return { before, after };
    } finally {
      await Promise.all(holds.map((h) => h.stop()));
      await routeVia(1);
    }
  }

  it('connections held open through director1 and moved to director2 are each answered by the same server', async () => {
    const { before, after } = await moveConnections(1);
    expect(before.every((s) => /^rs[123] \d+$/.test(s)), JSON.stringify(before)).toBe(true);
    // mh with the port hashed spreads them over the servers.
    expect(new Set(before.map((s) => s.split(' ')[0])).size).toBeGreaterThan(1);
    expect(after).toEqual(before.map((s) => `again 200 ${s}`));
  });

  it('for comparison, the plain service after the same history (figures only: how many moved connections lost their server)', async () => {
    const { before, after } = await moveConnections(0);
    const kept = after.filter((line, i) => line === `again 200 ${before[i]}`).length;
    console.log(`plain mh after rs3 was depooled and repooled on director1 only: ${kept} of ${FLOWS} moved connections kept their server; ${after.filter((l, i) => l !== `again 200 ${before[i]}`).join('; ') || 'none lost'}`);
    expect(after).toHaveLength(FLOWS);
  });
});
