/**
 * ARP theft with real arping and real kernels answering: in namespaces on the
 * host (documentation addresses only), a director and two real servers on
 * one bridge (in a namespace of its own, so that it answers nothing). Each
 * server holds the VIP on lo as in LVS direct routing; rs1 has
 * arp_ignore=1/arp_announce=2, rs2 keeps arp_ignore=0 and steals the VIP. The
 * director holds the VIP on its interface too, so arping needs a source
 * address other than the VIP. The watcher runs in the director's namespace
 * through a nested vitest (test/monitors/netns/arp-theft.in-netns.ts).
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runVitestInNetns } from './support/nested-vitest.js';

const tag = `pybal-arp-${process.pid}`;
const sw = `${tag}-sw`;
const director = `${tag}-dir`;
const rs1 = `${tag}-rs1`;
const rs2 = `${tag}-rs2`;
const VIP = '203.0.113.7';
const ip = (...args: string[]): void => {
  execFileSync('ip', args, { stdio: 'pipe' });
};
const sysctl = (ns: string, ...settings: string[]): void => {
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...settings], { stdio: 'pipe' });
};

/** A veth from the switch's bridge into ns, named eth0 there, with address/24. */
const plug = (ns: string, port: string, address: string): void => {
  ip('-n', sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  ip('-n', sw, 'link', 'set', port, 'master', 'br0');
  ip('-n', sw, 'link', 'set', port, 'up');
  ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
  ip('-n', ns, 'link', 'set', 'eth0', 'up');
};

beforeAll(() => {
  for (const ns of [sw, director, rs1, rs2]) {
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', sw, 'link', 'set', 'br0', 'up');
  plug(director, 'p-dir', '198.51.100.1');
  plug(rs1, 'p-rs1', '198.51.100.10');
  plug(rs2, 'p-rs2', '198.51.100.15');
  ip('-n', director, 'addr', 'add', `${VIP}/32`, 'dev', 'eth0');
  for (const ns of [rs1, rs2]) ip('-n', ns, 'addr', 'add', `${VIP}/32`, 'dev', 'lo');
  sysctl(rs1, 'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2', 'net.ipv4.conf.eth0.arp_ignore=1', 'net.ipv4.conf.eth0.arp_announce=2');
  sysctl(rs2, 'net.ipv4.conf.all.arp_ignore=0', 'net.ipv4.conf.eth0.arp_ignore=0');
});

afterAll(() => {
  for (const ns of [director, rs1, rs2, sw]) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
  }
});

it('the watcher sees the real server that answers ARP for the VIP (nested run in the director namespace)', async () => {
  const setup = { vip: VIP, rs1: { ns: rs1, ip: '198.51.100.10' }, rs2: { ns: rs2, ip: '198.51.100.15' } };
  const { code, output } = await runVitestInNetns(director, 'test/monitors/netns/vitest.arp-theft.config.ts', { PYBAL_TEST_ARP_SETUP: JSON.stringify(setup) });
  expect(output).toMatch(/✓ .*answers\(\) names the real server that answers ARP for the VIP/);
  expect(output).toMatch(/Tests\s+1 passed \(1\)/);
  expect(code, output).toBe(0);
}, 120_000);
