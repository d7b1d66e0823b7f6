// Self-test: the guest's kernel has IPVS, per network namespace.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, execOk } from './exec.js';
import { startLab, type Lab } from './lab.js';

describe('lab: IPVS in the guest kernel', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ directors: 2, realServers: 2, router: 'none', realServer: false });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  it('ipvsadm creates a service and destinations that ipvsadm -Ln shows', async () => {
    const vip = lab.addr.vip.v4!;
    const [rs1, rs2] = lab.addr.realServers;
    await lab.ipvsadm(['-A', '-t', `${vip}:80`, '-s', 'wrr']);
    await lab.ipvsadm(['-a', '-t', `${vip}:80`, '-r', `${rs1!.v4}:80`, '-g', '-w', '10']);
    await lab.ipvsadm(['-a', '-t', `${vip}:80`, '-r', `${rs2!.v4}:80`, '-g', '-w', '20']);
    const table = await lab.ipvsadm(['-Ln']);
    expect(table).toContain(`TCP  ${vip}:80 wrr`);
    expect(table).toMatch(new RegExp(`-> ${rs1!.v4}:80\\s+Route\\s+10\\s`));
    expect(table).toMatch(new RegExp(`-> ${rs2!.v4}:80\\s+Route\\s+20\\s`));
    const [service] = await lab.ipvsTable();
    expect(service).toMatchObject({ protocol: 'tcp', address: vip, port: 80, scheduler: 'wrr' });
    expect(service!.destinations.map((d) => [d.address, d.forward, d.weight])).toEqual([
      [rs1!.v4, 'route', 10],
      [rs2!.v4, 'route', 20],
    ]);
  });

  it('each director namespace has its own IPVS table', async () => {
    const vip6 = lab.addr.vip.v6!;
    await lab.ipvsadm(['-A', '-u', `[${vip6}]:53`, '-s', 'rr'], 'director2');
    const one = await lab.ipvsadm(['-Ln'], 'director1');
    const two = await lab.ipvsadm(['-Ln'], 'director2');
    expect(two).toContain(`UDP  [${vip6}]:53 rr`);
    expect(one).not.toContain(vip6);
    expect(two).not.toContain(`${lab.addr.vip.v4}:80`);
  });

  it('node in a director namespace opens a generic netlink socket and resolves IPVS', async () => {
    const script = [
      "import netlink from 'netlink';",
      'const socket = netlink.createGenericNetlink();',
      "const [family] = await socket.ctrlRequest(netlink.genl.Commands.GET_FAMILY, { familyName: 'IPVS' });",
      'console.log(JSON.stringify({ name: family.familyName, id: family.familyId, ops: family.ops.length }));',
      'socket.socket.close();',
    ].join('\n');
    const result = await lab.execOk('director1', ['node', '--input-type=module', '-e', script], { timeoutMs: 60_000 });
    const family = JSON.parse(result.stdout) as { name: string; id: number; ops: number };
    expect(family.name).toBe('IPVS');
    expect(family.id).toBeGreaterThanOrEqual(16); // dynamically allocated generic netlink ids start at GENL_MIN_ID
    expect(family.ops).toBeGreaterThan(0);
  });

  it('lab.spawn runs a long-lived program inside a node\'s namespace and stops it', async () => {
    const proc = lab.spawn('director2', ['sh', '-c', 'echo ready; exec sleep 600']);
    await proc.waitForLine(/^ready$/);
    const where = await execOk(['ip', 'netns', 'identify', String(proc.pid)]);
    expect(where.stdout.trim()).toBe(lab.ns('director2'));
    await proc.stop();
    expect(proc.running).toBe(false);
    expect((await exec(['kill', '-0', String(proc.pid)])).code).not.toBe(0);
  });
});
