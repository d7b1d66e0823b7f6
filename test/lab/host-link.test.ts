// The host link's pure part: one /29 and one tap name per slot, the UML
// argument, which taps are stale, which slot is free, and the commands.
import { describe, expect, it } from 'vitest';
import {
  HOST_LINK_SLOTS,
  freeSlot,
  guestSetupScript,
  hostLinkFromEnv,
  hostLinkPlan,
  hostPrefixes,
  hostSetupCommands,
  ownerAlias,
  parseOwnerAlias,
  prefixesOverlap,
  slotOfDevice,
  staleDevices,
  startTimeFromStat,
  umlNetArgument,
} from './host-link.js';

describe('hostLinkPlan', () => {
  it('gives slot 0 the first /29 of the range: host .1, guest .2, four addresses for lab nodes', () => {
    expect(hostLinkPlan(0)).toEqual({
      slot: 0,
      device: 'pybal-tap0',
      subnet: '100.95.240.0/29',
      prefixLength: 29,
      host: '100.95.240.1',
      guest: '100.95.240.2',
      nodes: ['100.95.240.3', '100.95.240.4', '100.95.240.5', '100.95.240.6'],
      guestMac: '02:70:62:6c:00:02',
    });
  });

  it('gives every slot its own /29, name and MAC, all inside 100.95.240.0/24', () => {
    const plans = Array.from({ length: HOST_LINK_SLOTS }, (_, i) => hostLinkPlan(i));
    expect(plans[31]).toMatchObject({ device: 'pybal-tap31', subnet: '100.95.240.248/29', host: '100.95.240.249', guest: '100.95.240.250', guestMac: '02:70:62:6c:1f:02' });
    expect(plans[31]?.nodes.at(-1)).toBe('100.95.240.254');
    for (const [i, a] of plans.entries()) {
      expect(prefixesOverlap(a.subnet, '100.95.240.0/24')).toBe(true);
      for (const b of plans.slice(i + 1)) expect(prefixesOverlap(a.subnet, b.subnet)).toBe(false);
      expect(a.device.length).toBeLessThanOrEqual(15); // IFNAMSIZ
    }
    expect(new Set(plans.map((p) => p.guestMac)).size).toBe(HOST_LINK_SLOTS);
  });

  it('refuses a slot outside the range', () => {
    expect(() => hostLinkPlan(HOST_LINK_SLOTS)).toThrow(/slot 32/);
    expect(() => hostLinkPlan(-1)).toThrow();
    expect(() => hostLinkPlan(1.5)).toThrow();
  });
});

describe('command lines', () => {
  it('puts the tap on the UML command line as eth0', () => {
    expect(umlNetArgument(hostLinkPlan(3))).toBe('eth0=tuntap,pybal-tap3,02:70:62:6c:03:02');
  });

  it('sets the host side up with the owner in the alias and only the /29 address', () => {
    expect(hostSetupCommands(hostLinkPlan(1), { pid: 42, start: '9001' })).toEqual([
      ['ip', 'tuntap', 'add', 'dev', 'pybal-tap1', 'mode', 'tap'],
      ['ip', 'link', 'set', 'dev', 'pybal-tap1', 'alias', 'pybal-lab host link pid=42 start=9001'],
      ['ip', 'addr', 'add', '100.95.240.9/29', 'dev', 'pybal-tap1'],
      ['ip', 'link', 'set', 'dev', 'pybal-tap1', 'up'],
    ]);
  });

  it("bridges the guest's eth0 and gives the bridge the guest's address", () => {
    const script = guestSetupScript(hostLinkPlan(1));
    expect(script).toContain('ip link add hostbr type bridge');
    expect(script).toContain('ip link set eth0 master hostbr');
    expect(script).toContain('ip addr add 100.95.240.10/29 dev hostbr');
    expect(script.split(' && ')).toHaveLength(7);
  });
});

describe('prefixesOverlap', () => {
  it.each([
    ['100.95.240.0/29', '100.95.240.7/32', true],
    ['100.95.240.0/29', '100.95.240.8/29', false],
    ['100.64.0.0/10', '100.95.240.8/29', true],
    ['10.0.0.0/8', '100.95.240.0/29', false],
    ['0.0.0.0/0', '100.95.240.0/29', true],
    ['100.95.240.5', '100.95.240.0/29', true],
  ])('%s and %s: %s', (a, b, want) => {
    expect(prefixesOverlap(a, b)).toBe(want);
    expect(prefixesOverlap(b, a)).toBe(want);
  });
});

describe('owners and stale taps', () => {
  it('reads back the alias it writes, and nothing else', () => {
    expect(parseOwnerAlias(ownerAlias({ pid: 7, start: '123' }))).toEqual({ pid: 7, start: '123' });
    expect(parseOwnerAlias('something else')).toBeUndefined();
    expect(parseOwnerAlias(undefined)).toBeUndefined();
  });

  it("reads a process's start time from /proc/PID/stat, and none for a zombie", () => {
    const stat = (state: string): string => `4242 (node (x) y) ${state} 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 11 0 1139288 1000 10 ...`;
    expect(startTimeFromStat(stat('S'))).toBe('1139288');
    expect(startTimeFromStat(stat('R'))).toBe('1139288');
    expect(startTimeFromStat(stat('Z'))).toBeUndefined();
  });

  it('knows its device names', () => {
    expect(slotOfDevice('pybal-tap0')).toBe(0);
    expect(slotOfDevice('pybal-tap31')).toBe(31);
    expect(slotOfDevice('pybal-tap32')).toBeUndefined();
    expect(slotOfDevice('pybal-tapx')).toBeUndefined();
    expect(slotOfDevice('eth0')).toBeUndefined();
  });

  it('calls stale only our taps whose owner is gone', () => {
    const links = [
      { ifname: 'eth0', ifalias: ownerAlias({ pid: 1, start: '1' }) },
      { ifname: 'pybal-tap0', ifalias: ownerAlias({ pid: 100, start: '5' }) }, // alive
      { ifname: 'pybal-tap1', ifalias: ownerAlias({ pid: 200, start: '5' }) }, // gone
      { ifname: 'pybal-tap2', ifalias: ownerAlias({ pid: 100, start: '6' }) }, // pid reused by another process
      { ifname: 'pybal-tap3' }, // no alias yet: being set up, left alone
    ];
    const alive = (o: { pid: number; start: string }): boolean => o.pid === 100 && o.start === '5';
    expect(staleDevices(links, alive)).toEqual(['pybal-tap1', 'pybal-tap2']);
  });
});

describe('freeSlot', () => {
  it('takes the first slot whose name is free and whose /29 the host does not use', () => {
    expect(freeSlot([], [])).toBe(0);
    expect(freeSlot([{ ifname: 'pybal-tap0' }, { ifname: 'pybal-tap2' }], [])).toBe(1);
    expect(freeSlot([{ ifname: 'pybal-tap0' }], ['100.95.240.8/30'])).toBe(2);
    expect(freeSlot([], ['100.95.240.0/23'])).toBeUndefined();
    expect(freeSlot(Array.from({ length: HOST_LINK_SLOTS }, (_, i) => ({ ifname: `pybal-tap${i}` })), [])).toBeUndefined();
  });

  it("lists the host's prefixes from ip -j output, leaving out default and our own taps", () => {
    const routes = [
      { dst: 'default', dev: 'eth0' },
      { dst: '192.0.2.0/24', dev: 'eth0' },
      { dst: '100.95.240.0/29', dev: 'pybal-tap0' },
      { dst: '127.0.0.1', dev: 'lo' },
      { dst: 'fe80::/64', dev: 'eth0' },
    ];
    const addresses = [
      { ifname: 'eth0', addr_info: [{ family: 'inet', local: '192.0.2.2', prefixlen: 24 }] },
      { ifname: 'pybal-tap0', addr_info: [{ family: 'inet', local: '100.95.240.1', prefixlen: 29 }] },
    ];
    expect(hostPrefixes(routes, addresses)).toEqual(['192.0.2.0/24', '127.0.0.1', '192.0.2.2/24']);
  });
});

describe('hostLinkFromEnv', () => {
  it('reads the link uml.ts describes', () => {
    const link = { ...hostLinkPlan(0), agent: 'http://100.95.240.1:4000' };
    expect(hostLinkFromEnv({ PYBAL_LAB_HOST_LINK: JSON.stringify(link) })).toEqual(link);
  });

  it("fails with the host's reason, or says how to get a link", () => {
    expect(() => hostLinkFromEnv({ PYBAL_LAB_HOST_LINK_ERROR: 'host link: /dev/net/tun is missing' })).toThrow('this lab guest has no network link to the host: host link: /dev/net/tun is missing');
    expect(() => hostLinkFromEnv({})).toThrow(/test\/lab\/run\.sh/);
    expect(() => hostLinkFromEnv({ PYBAL_LAB_HOST_LINK: '0' })).toThrow(/no network link/);
  });
});
