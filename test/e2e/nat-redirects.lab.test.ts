// The daemon with a NAT service warns when the director sends ICMP redirects
// (see src/ipvs/redirects.ts): read from the real /proc of a lab director,
// whose NAT topology starts with redirects off.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import { E2eConfig, E2ePybal, ipvsDestinations } from './pybal-lab.js';

describe('e2e: a NAT service and ICMP redirects', () => {
  let lab: Lab;
  let pybal: E2ePybal;
  beforeAll(async () => {
    lab = await startLab({ forwarding: 'nat', realServers: 1, router: 'none', families: [4] });
    const conf = new E2eConfig(lab);
    conf.writePool('web', conf.realServerEntries());
    conf.write([{ name: 'web' }], { bgp: false });
    pybal = E2ePybal.start(lab, conf.file);
  }, 60_000);

  afterAll(async () => {
    await lab?.stop();
  });

  it('says nothing while the director sends no redirects; names the interface and the sysctl once it does', async () => {
    await waitFor(async () => ((await ipvsDestinations(lab))?.length === 1 ? true : undefined), { timeoutMs: 20_000, what: 'rs1 in IPVS' });
    expect(await lab.client.servedBy(lab.vipUrl(4), 2)).toEqual(['rs1', 'rs1']);
    expect(pybal.log()).not.toMatch(/ICMP redirects/);

    await lab.execOk('director1', ['sysctl', '-q', '-w', 'net.ipv4.conf.eth0.send_redirects=1']);
    const mark = pybal.log().length;
    pybal.process.signal('SIGHUP');
    const line = await waitFor(async () => pybal.logSince(mark).find((l) => l.includes('ICMP redirects')), { timeoutMs: 10_000, what: 'the redirect warning' });
    expect(line).toMatch(/ WARN: forward-method = nat \(web\) on a host that sends ICMP redirects \(eth0\): .* set net\.ipv4\.conf\.all\.send_redirects=0 and net\.ipv4\.conf\.eth0\.send_redirects=0$/);
    expect(await pybal.terminate()).toBe(0);
  });
});
