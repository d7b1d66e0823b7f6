// End to end: `real-port` with NAT. The VIP's port 80 maps to the real
// servers' 8080, where rs1 and rs2 listen (and only there); rs3 listens only
// on 80. The checks follow real-port, so rs3 is found down and depooled, and
// the client, asking the VIP on 80, is served by rs1 and rs2.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import { E2eConfig, E2ePybal, proxyFetchLines } from './pybal-lab.js';

const REAL_PORT = 8080;

describe('e2e: real-port maps the VIP\'s port to the real servers\' own (NAT)', () => {
  let lab: Lab;
  let pybal: E2ePybal;
  const ip = (name: string): string => lab.addr.realServers.find((r) => r.name === name)!.v4!;

  beforeAll(async () => {
    lab = await startLab({ forwarding: 'nat', realServers: 3, router: 'none', families: [4], realServer: false });
    // The lab's real servers all listen on one port: these are started here, each on its own.
    const listenOn: Record<string, number> = { rs1: REAL_PORT, rs2: REAL_PORT, rs3: 80 };
    await Promise.all(
      lab.addr.realServers.map((rs) => {
        const argv = ['node', 'dist/test/support/real-server-main.js', '--name', rs.name, '--host', rs.v4!, '--http', String(listenOn[rs.name])];
        return lab.spawn(rs.name, [...argv, '--control', join(lab.runDir, `${rs.name}.sock`)], { name: rs.name }).waitForLine(/"ready":\s*true/, 30_000);
      }),
    );
    const conf = new E2eConfig(lab);
    conf.writePool('web', conf.realServerEntries());
    conf.write([{ name: 'web', extra: [`real-port = ${REAL_PORT}`, ...proxyFetchLines(REAL_PORT)] }], { bgp: false });
    pybal = E2ePybal.start(lab, conf.file);
  }, 60_000);

  afterAll(async () => {
    await lab?.stop();
  });

  it('checks the real port: the server listening only on 80 is depooled, the others are pooled with their port 8080', async () => {
    const down = await waitFor(
      async () => {
        const state = await pybal.apiJson<{ up: boolean; pooled: boolean }>(`/pools/web/${ip('rs3')}`);
        return state.up === false && state.pooled === false ? state : undefined;
      },
      { timeoutMs: 30_000, what: 'rs3 down and depooled' },
    );
    expect(down).toMatchObject({ up: false, pooled: false });
    for (const name of ['rs1', 'rs2']) expect(await pybal.apiJson(`/pools/web/${ip(name)}`)).toMatchObject({ up: true, pooled: true });
    const vip = lab.addr.vip.v4!;
    const dests = (await lab.ipvsadm(['-Sn'])).split('\n').filter((l) => l.startsWith(`-a -t ${vip}:80 `)).sort();
    expect(dests).toEqual([`-a -t ${vip}:80 -r ${ip('rs1')}:${REAL_PORT} -m -w 10`, `-a -t ${vip}:80 -r ${ip('rs2')}:${REAL_PORT} -m -w 10`]);
  });

  it('the client asks the VIP on port 80 and is answered by the servers that listen only on 8080', async () => {
    expect((await lab.client.servedBy(lab.vipUrl(4), 4)).sort()).toEqual(['rs1', 'rs1', 'rs2', 'rs2']);
  });
});
