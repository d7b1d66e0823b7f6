/**
 * Runs inside the director's namespace (see arp-theft-netns.test.ts), with
 * real arping and real kernels answering: a real server whose arp_ignore is
 * 0 answers ARP for the VIP it holds on lo, one with arp_ignore=1 does not,
 * and the watcher tells them apart by MAC; flipping the setting flips the
 * verdict.
 */
import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { createSystemClock } from '../../../src/runtime/clock.js';
import { createMemoryLogger } from '../../../src/runtime/logger.js';
import { createArpTheftWatch, type ArpAnswer } from '../../../src/monitors/arp-theft.js';
import { waitFor } from '../support/helpers.js';

interface Server {
  readonly ns: string;
  readonly ip: string;
}
interface Setup {
  readonly vip: string;
  readonly rs1: Server;
  readonly rs2: Server;
}

const setup = JSON.parse(process.env.PYBAL_TEST_ARP_SETUP ?? 'null') as Setup | null;

const macOf = (server: Server): string => {
  const links = JSON.parse(execFileSync('ip', ['-n', server.ns, '-j', 'link', 'show', 'eth0'], { encoding: 'utf8' })) as { address: string }[];
  return links[0]!.address.toLowerCase();
};
const arpIgnore = (server: Server, value: 0 | 1): void => {
  execFileSync('ip', ['netns', 'exec', server.ns, 'sysctl', '-qw', `net.ipv4.conf.all.arp_ignore=${value}`, `net.ipv4.conf.eth0.arp_ignore=${value}`]);
};

it('answers() names the real server that answers ARP for the VIP, by its MAC, and only that one', async () => {
  expect(setup).not.toBeNull();
  const { vip, rs1, rs2 } = setup!;
  // pybal's checks put the servers in the neighbour table; a ping does here.
  for (const server of [rs1, rs2]) execFileSync('ping', ['-c', '1', '-W', '2', server.ip]);
  const log = createMemoryLogger('debug');
  const watcher = createArpTheftWatch({ clock: createSystemClock(), logger: log.logger, intervalMs: 200 });
  const verdict = (server: Server): ArpAnswer | undefined => watcher.answers(vip, server.ip);
  const rs1Mac = macOf(rs1);
  const rs2Mac = macOf(rs2);
  try {
    watcher.watch(vip, rs1.ip);
    watcher.watch(vip, rs2.ip);
    await waitFor(() => verdict(rs1) !== undefined && verdict(rs2) !== undefined, 'the first round', 20_000);
    expect(verdict(rs2)).toEqual({ answered: true, mac: rs2Mac, device: 'eth0' });
    expect(verdict(rs1)).toEqual({ answered: false, mac: rs1Mac, device: 'eth0' });

    // rs2 fixed: nobody steals the VIP any more.
    arpIgnore(rs2, 1);
    await waitFor(() => verdict(rs2)?.answered === false, 'rs2 to stop answering', 20_000);
    expect(verdict(rs1)).toMatchObject({ answered: false });

    // Both broken: both are heard in one arping.
    arpIgnore(rs1, 0);
    arpIgnore(rs2, 0);
    await waitFor(() => verdict(rs1)?.answered === true && verdict(rs2)?.answered === true, 'both to answer', 20_000);
    expect(log.lines().filter((l) => / (WARN|ERROR): /.test(l))).toEqual([]);
  } finally {
    await watcher.stop();
  }
});
