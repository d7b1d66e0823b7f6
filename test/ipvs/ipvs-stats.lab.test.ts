// `pybal ipvs --stats` and `--rate` print, byte for byte, what `ipvsadm -Ln
// --stats` and `--rate` print, after real client traffic through the
// director (NAT, so that both directions are counted), in both families.
// The kernel folds its per-CPU counters and updates its rate estimates every
// 2 s: each comparison is of a reading pybal took between two identical
// ipvsadm readings (test/ipvs/stats-sandwich-main.ts), never of two readings
// some time apart.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import { repoRoot } from '../lab/uml.js';

let lab: Lab;
let services: string[] = [];

beforeAll(async () => {
  lab = await startLab({ forwarding: 'nat', realServers: 2, router: 'none' });
  services = [await lab.addIpvsService({ family: 4, scheduler: 'rr' }), await lab.addIpvsService({ family: 6, scheduler: 'wrr' })];
});
afterAll(async () => {
  await lab?.stop();
});

interface Sandwich {
  readonly attempts: number;
  readonly ipvsadm: string;
  readonly pybal: string;
  readonly stable: boolean;
}

async function sandwich(view: 'stats' | 'rate'): Promise<Sandwich> {
  const main = join(repoRoot(), 'dist', 'test', 'ipvs', 'stats-sandwich-main.js');
  const out = await lab.execOk('director1', ['node', main, view, '30'], { timeoutMs: 120_000 });
  return JSON.parse(out.stdout) as Sandwich;
}

/** The numbers of a `--stats` or `--rate` line (exact or not, the first is never shortened for small values). */
function numbersOf(text: string, prefix: string): string[] {
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  if (line === undefined) throw new Error(`no line starting ${JSON.stringify(prefix)} in:\n${text}`);
  return line.slice(33).trim().split(/\s+/);
}

describe('pybal ipvs --stats and --rate', () => {
  it('prints the counters exactly as ipvsadm -Ln --stats does, after real traffic', async () => {
    for (const family of [4, 6] as const) {
      const answers = await lab.client.servedBy(lab.vipUrl(family), 6);
      expect(new Set(answers)).toEqual(new Set(['rs1', 'rs2']));
    }
    // Wait until the kernel has folded the six connections of each service into its totals.
    await waitFor(
      async () => {
        const text = await lab.ipvsadm(['-Ln', '--stats', '--exact']);
        return services.every((s) => numbersOf(text, `TCP  ${s}`)[0] === '6') ? true : undefined;
      },
      { timeoutMs: 15_000, what: 'six connections counted per service' },
    );
    const read = await sandwich('stats');
    expect(read.stable).toBe(true);
    expect(read.pybal).toBe(read.ipvsadm);
    // Not vacuous: every counter of both services is above zero (NAT: replies pass the director).
    for (const s of services) {
      const [conns, inPkts, outPkts, inBytes, outBytes] = numbersOf(read.pybal, `TCP  ${s}`).map(Number);
      expect(conns).toBe(6);
      for (const n of [inPkts, outPkts, inBytes, outBytes]) expect(n).toBeGreaterThan(0);
    }
    expect(read.pybal.split('\n').filter((l) => /^  -> [[\d]/.test(l)).length).toBe(4);

    // The command line itself (argument parsing, --exact), once the counters are still.
    const cli = await lab.execOk('director1', ['node', join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'ipvs', '--stats', '--exact']);
    expect(cli.stdout).toBe(await lab.ipvsadm(['-Ln', '--stats', '--exact']));
  });

  it('prints the rate estimates exactly as ipvsadm -Ln --rate does, under steady traffic', async () => {
    const load = lab.client.startLoad(lab.vipUrl(4));
    try {
      // The estimator has seen the load once a reading shows a packet rate on the IPv4 service.
      await waitFor(
        async () => (Number(numbersOf(await lab.ipvsadm(['-Ln', '--rate']), `TCP  ${services[0]}`)[1]) > 0 ? true : undefined),
        { timeoutMs: 20_000, what: 'a nonzero InPPS estimate' },
      );
      const read = await sandwich('rate');
      expect(read.stable).toBe(true);
      expect(read.pybal).toBe(read.ipvsadm);
      const [cps, inPps, outPps, inBps, outBps] = numbersOf(read.pybal, `TCP  ${services[0]}`).map(Number);
      expect(cps).toBeGreaterThanOrEqual(0);
      for (const n of [inPps, outPps, inBps, outBps]) expect(n).toBeGreaterThan(0);
    } finally {
      await load.stop();
    }
  });
});
