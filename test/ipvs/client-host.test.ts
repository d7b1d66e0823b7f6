// The client against this machine's real kernel. Hosts without IPVS (CI, the
// development machines) answer the family lookup with ENOENT, which must come
// back as a typed error; the lab tests cover a kernel that has IPVS.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runIpvsCommand } from '../../src/cli/ipvs.js';
import { createIpvsClient } from '../../src/ipvs/client.js';
import { IpvsError } from '../../src/ipvs/errors.js';
import { createSystemClock } from '../../src/runtime/clock.js';

describe.runIf(!existsSync('/proc/net/ip_vs'))('IPVS client on a kernel without IPVS', () => {
  it('reports the missing family as a typed ENOENT from CTRL_CMD_GETFAMILY', async () => {
    const error = await createIpvsClient({ clock: createSystemClock(), timeoutMs: 2000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(IpvsError);
    expect(error).toMatchObject({ code: 'ENOENT', errno: 2, command: 'CTRL_CMD_GETFAMILY', object: 'IPVS' });
  });
});

describe.runIf(!existsSync('/proc/net/ip_vs'))('pybal ipvs on a kernel without IPVS', () => {
  it('says why it cannot read the table and exits 1', async () => {
    let out = '';
    let err = '';
    const code = await runIpvsCommand({ stdout: (t) => (out += t), stderr: (t) => (err += t) }, { timeoutMs: 2000 });
    expect(code).toBe(1);
    expect(out).toBe('');
    expect(err).toBe('pybal ipvs: cannot open IPVS over generic netlink: CTRL_CMD_GETFAMILY IPVS: ENOENT (this kernel has no IPVS: is the ip_vs module loaded?)\n');
  });
});
