// Traffic through a table the manager programmed: a client's requests to the
// VIP reach the real servers (NAT and DR, IPv4 and IPv6), and a weight of 0
// drains a server without removing it. The manager runs in director1's
// namespace (test/ipvs/apply-main.ts), as the daemon will.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DesiredService } from '../../src/ipvs/diff.js';
import type { DestSpec } from '../../src/ipvs/types.js';
import { startLab, type Lab } from '../lab/lab.js';
import { FAMILIES, type Family } from '../lab/topology.js';

describe.each(['nat', 'dr'] as const)('manager-programmed IPVS carries traffic (%s)', (forwarding) => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ forwarding, realServers: 2, router: 'none', vips: 2 });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  function desired(family: Family, weights: Record<string, number>, vipIndex = 0): DesiredService {
    const pick = (a: { v4?: string; v6?: string }): string => {
      const ip = family === 4 ? a.v4 : a.v6;
      if (!ip) throw new Error(`no IPv${family} address`);
      return ip;
    };
    const destinations: DestSpec[] = lab.addr.realServers.map((rs) => ({
      family,
      address: pick(rs),
      port: 80,
      fwdMethod: forwarding === 'nat' ? 'masq' : 'droute',
      weight: weights[rs.name] ?? 1,
      upperThreshold: 0,
      lowerThreshold: 0,
      tunnelType: 'ipip',
      tunnelPort: 0,
      tunnelFlags: 0,
    }));
    return { key: { family, protocol: 'tcp', address: pick(lab.addr.vips[vipIndex] ?? {}), port: 80 }, scheduler: 'wrr', flags: 0, timeoutSec: 0, netmask: family === 4 ? 32 : 128, peName: '', destinations };
  }

  async function apply(services: DesiredService[]): Promise<{ requests: number; failedRequests: number }> {
    const file = join(lab.dir, `desired-${Date.now()}.json`);
    writeFileSync(file, JSON.stringify(services));
    const result = await lab.execOk('director1', ['node', 'dist/test/ipvs/apply-main.js', file]);
    return JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as { requests: number; failedRequests: number };
  }

  it.each(FAMILIES)('IPv%i: balanced, then drained by weight 0', async (family) => {
    expect(await apply([desired(family, { rs1: 1, rs2: 1 })])).toEqual({ requests: 3, failedRequests: 0 });
    const answers = await lab.client.servedBy(lab.vipUrl(family), 4);
    expect(answers.filter((a) => a === 'rs1')).toHaveLength(2);
    expect(answers.filter((a) => a === 'rs2')).toHaveLength(2);

    // A new manager run adopts the table and edits one weight: one request.
    expect(await apply([desired(family, { rs1: 0, rs2: 1 })])).toEqual({ requests: 1, failedRequests: 0 });
    expect(await lab.client.servedBy(lab.vipUrl(family), 4)).toEqual(['rs2', 'rs2', 'rs2', 'rs2']);
    const table = await lab.ipvsadm(['-Ln']);
    expect(table).toMatch(new RegExp(`-> \\[?${(family === 4 ? lab.addr.realServers[0]?.v4 : lab.addr.realServers[0]?.v6)?.replaceAll('.', '\\.')}\\]?:80\\s+${forwarding === 'nat' ? 'Masq' : 'Route'}\\s+0\\s`));
  });
  it('keeps an established connection through weight changes and a manager restart', async () => {
    // A service of its own, on the second VIP.
    const vip = lab.addr.vips[1]?.v4 ?? '';
    expect(await apply([desired(4, { rs1: 1, rs2: 1 }, 1)])).toEqual({ requests: 3, failedRequests: 0 });
    const holder = lab.spawn('client', ['node', 'dist/test/ipvs/hold-connection.js', vip, '80'], { name: `hold-${forwarding}` });
    const first = /^first 200 (rs\d) (\d+)$/.exec(await holder.waitForLine(/^first /));
    expect(first).not.toBeNull();
    const [, server, localPort] = first ?? [];
    // Drain the server that holds the connection, weigh up the other: two SET_DEST, no delete.
    const weights = server === 'rs1' ? { rs1: 0, rs2: 5 } : { rs1: 5, rs2: 0 };
    expect(await apply([desired(4, weights, 1)])).toEqual({ requests: 2, failedRequests: 0 });
    // A new manager process adopts the table: nothing to do, nothing reset.
    expect(await apply([desired(4, weights, 1)])).toEqual({ requests: 0, failedRequests: 0 });
    // The same connection still works, and still reaches the drained server.
    holder.signal('SIGUSR2');
    expect(await holder.waitForLine(/^again /)).toBe(`again 200 ${server} ${localPort}`);
    expect(holder.output()).not.toContain('closed');
    // New connections go to the other server only.
    const other = server === 'rs1' ? 'rs2' : 'rs1';
    expect(await lab.client.servedBy(lab.vipUrl(4, '/', 1), 2)).toEqual([other, other]);
    await holder.stop();
  });
});
