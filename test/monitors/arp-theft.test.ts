import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger, type MemoryLog } from '../../src/runtime/logger.js';
import {
  ARPING_MISSING,
  createArpTheftWatch,
  parseArpingReplies,
  parseProcNetArp,
  pickArpSource,
  type ArpTheftWatch,
} from '../../src/monitors/arp-theft.js';
import { waitFor } from './support/helpers.js';

// Captured from iputils arping 20221126 in a director namespace on a bridge with two
// real servers holding 203.0.113.7 on lo, both with arp_ignore=0 (arping -b -w 2 -s ...).
const TWO_THIEVES = `ARPING 203.0.113.7 from 198.51.100.1 eth0
Unicast reply from 203.0.113.7 [26:4B:92:94:CF:40]  0.544ms
Unicast reply from 203.0.113.7 [CE:14:ED:35:7F:A9]  0.560ms
Unicast reply from 203.0.113.7 [26:4B:92:94:CF:40]  0.585ms
Unicast reply from 203.0.113.7 [CE:14:ED:35:7F:A9]  0.623ms
Sent 3 probes (3 broadcast(s))
Received 4 response(s)
`;
const NOBODY = `ARPING 203.0.113.99 from 198.51.100.1 eth0
Sent 2 probes (2 broadcast(s))
Received 0 response(s)
`;
// The director itself and an incomplete entry (a ping nobody answered), a static one (0x6).
const PROC_NET_ARP = `IP address       HW type     Flags       HW address            Mask     Device
198.51.100.50    0x1         0x6         02:00:00:00:00:50     *        eth0
198.51.100.15    0x1         0x2         26:4b:92:94:cf:40     *        eth0
198.51.100.99    0x1         0x0         00:00:00:00:00:00     *        eth0
198.51.100.10    0x1         0x2         ce:14:ed:35:7f:a9     *        eth0
`;

describe('parseArpingReplies', () => {
  it('lists each answering MAC once, lower-case, in order of first reply', () => {
    expect(parseArpingReplies(TWO_THIEVES)).toEqual(['26:4b:92:94:cf:40', 'ce:14:ed:35:7f:a9']);
  });
  it('is empty when nobody answered, and for error output', () => {
    expect(parseArpingReplies(NOBODY)).toEqual([]);
    expect(parseArpingReplies('arping: Device nosuch not available.\n')).toEqual([]);
    expect(parseArpingReplies('Interface "lo" is not ARPable\n')).toEqual([]);
  });
  it('takes broadcast replies and requests from the target too, and a reply without a time', () => {
    const text = 'Broadcast reply from 203.0.113.7 [02:00:00:00:00:0A]  UNSOLICITED?\nUnicast request from 203.0.113.7 [02:00:00:00:00:0b] for 198.51.100.1  1.000ms\n';
    expect(parseArpingReplies(text)).toEqual(['02:00:00:00:00:0a', '02:00:00:00:00:0b']);
  });
});

describe('parseProcNetArp', () => {
  it('keeps complete entries (flags 0x2, 0x6) with their device, skips incomplete ones', () => {
    const table = parseProcNetArp(PROC_NET_ARP);
    expect([...table.entries()]).toEqual([
      ['198.51.100.50', { mac: '02:00:00:00:00:50', device: 'eth0' }],
      ['198.51.100.15', { mac: '26:4b:92:94:cf:40', device: 'eth0' }],
      ['198.51.100.10', { mac: 'ce:14:ed:35:7f:a9', device: 'eth0' }],
    ]);
  });
  it('reads only the header of an empty table, and 10,000 entries in one pass', () => {
    expect(parseProcNetArp(PROC_NET_ARP.split('\n')[0]! + '\n').size).toBe(0);
    const lines = [PROC_NET_ARP.split('\n')[0]!];
    for (let i = 0; i < 10_000; i++) {
      const ip = `10.${i >> 8}.${i & 255}.1`;
      lines.push(`${ip.padEnd(17)}0x1         0x2         02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}     *        eth${i % 2}`);
    }
    const table = parseProcNetArp(lines.join('\n') + '\n');
    expect(table.size).toBe(10_000);
    expect(table.get('10.39.15.1')).toEqual({ mac: '02:00:00:00:27:0f', device: 'eth1' });
  });
});

describe('pickArpSource', () => {
  const addr = (address: string, netmask: string) => ({ address, netmask, family: 'IPv4' as const, mac: '02:00:00:00:00:01', internal: false, cidr: null });
  it("takes the director's address whose subnet holds the server, never a VIP or a /32", () => {
    const eth0 = [addr('203.0.113.7', '255.255.255.255'), addr('192.0.2.1', '255.255.255.0'), addr('198.51.100.1', '255.255.255.0')];
    expect(pickArpSource(eth0, '198.51.100.10', new Set(['203.0.113.7']))).toBe('198.51.100.1');
    // No subnet holds the server: any own address but a VIP.
    expect(pickArpSource(eth0, '10.0.0.1', new Set(['203.0.113.7']))).toBe('192.0.2.1');
    // A VIP with a real prefix on the device is still not a source.
    expect(pickArpSource([addr('198.51.100.200', '255.255.255.0')], '198.51.100.10', new Set(['198.51.100.200']))).toBeUndefined();
    expect(pickArpSource(undefined, '198.51.100.10', new Set())).toBeUndefined();
  });
});

/** A fake arping: logs "pid args" to calls, then answers from replies-<device>-<vip>, or hangs, or fails. */
const FAKE_ARPING = `#!/bin/bash
dir=$(dirname "$0")
dev=""; prev=""
for a in "$@"; do [ "$prev" = "-I" ] && dev="$a"; prev="$a"; done
vip="\${@: -1}"
echo "$$ $*" >> "$dir/calls"
if [ -e "$dir/hang" ]; then exec sleep 1000; fi
if [ -e "$dir/fail" ]; then echo "arping: Device $dev not available." >&2; exit 2; fi
echo "ARPING $vip from 198.51.100.1 $dev"
if [ -e "$dir/replies-$dev-$vip" ]; then cat "$dir/replies-$dev-$vip"; exit 0; fi
exit 1
`;

const reply = (vip: string, mac: string): string => `Unicast reply from ${vip} [${mac.toUpperCase()}]  0.544ms\n`;

describe('createArpTheftWatch (fake arping, fake /proc/net/arp)', () => {
  let dir: string;
  let clock: ManualClock;
  let log: MemoryLog;
  let watcher: ArpTheftWatch;
  const VIP_A = '203.0.113.7';
  const VIP_B = '203.0.113.8';

  const calls = (): string[][] => (existsSync(join(dir, 'calls')) ? readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n').map((l) => l.split(' ')) : []);
  const pidAlive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const create = (extra: { arpingPath?: string } = {}): ArpTheftWatch =>
    createArpTheftWatch({
      clock,
      logger: log.logger,
      intervalMs: 10_000,
      arpingPath: join(dir, 'arping'),
      procNetArpPath: join(dir, 'arp'),
      interfaceAddresses: () => ({
        eth0: [{ address: '198.51.100.1', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '198.51.100.1/24' }],
      }),
      ...extra,
    });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pybal-arp-'));
    writeFileSync(join(dir, 'arping'), FAKE_ARPING);
    chmodSync(join(dir, 'arping'), 0o755);
    writeFileSync(
      join(dir, 'arp'),
      `IP address       HW type     Flags       HW address            Mask     Device
198.51.100.10    0x1         0x2         02:00:00:00:00:0a     *        eth0
198.51.100.15    0x1         0x2         02:00:00:00:00:0f     *        eth0
192.0.2.20       0x1         0x2         02:00:00:00:00:14     *        eth1
198.51.100.99    0x1         0x0         00:00:00:00:00:00     *        eth0
`,
    );
    clock = new ManualClock();
    log = createMemoryLogger('debug');
    watcher = create();
  });

  afterEach(async () => {
    await watcher.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs one arping per (device, VIP) and says which servers answered', async () => {
    writeFileSync(join(dir, `replies-eth0-${VIP_A}`), reply(VIP_A, '02:00:00:00:00:0f'));
    writeFileSync(join(dir, `replies-eth1-${VIP_A}`), reply(VIP_A, '02:00:00:00:00:14') + reply(VIP_A, '02:00:00:00:00:14'));
    watcher.watch(VIP_A, '198.51.100.10');
    watcher.watch(VIP_A, '198.51.100.15');
    watcher.watch(VIP_A, '192.0.2.20');
    watcher.watch(VIP_B, '198.51.100.10');
    watcher.watch(VIP_A, '198.51.100.99'); // incomplete neighbour entry
    watcher.watch(VIP_A, '198.51.100.77'); // no neighbour entry
    expect(watcher.answers(VIP_A, '198.51.100.10')).toBeUndefined();
    await clock.advanceAsync(0);
    // Each (device, VIP) pair's arping ends on its own: wait for all three.
    await waitFor(
      () =>
        watcher.answers(VIP_B, '198.51.100.10') !== undefined &&
        watcher.answers(VIP_A, '192.0.2.20') !== undefined &&
        watcher.answers(VIP_A, '198.51.100.10') !== undefined,
      'the first round',
    );
    expect(calls().map((c) => c.slice(1).join(' ')).sort()).toEqual([
      `-b -w 2 -I eth0 -s 198.51.100.1 ${VIP_A}`,
      `-b -w 2 -I eth0 -s 198.51.100.1 ${VIP_B}`,
      `-b -w 2 -I eth1 ${VIP_A}`,
    ]);
    expect(watcher.answers(VIP_A, '198.51.100.10')).toEqual({ answered: false, mac: '02:00:00:00:00:0a', device: 'eth0' });
    expect(watcher.answers(VIP_A, '198.51.100.15')).toEqual({ answered: true, mac: '02:00:00:00:00:0f', device: 'eth0' });
    expect(watcher.answers(VIP_A, '192.0.2.20')).toEqual({ answered: true, mac: '02:00:00:00:00:14', device: 'eth1' });
    expect(watcher.answers(VIP_B, '198.51.100.10')).toEqual({ answered: false, mac: '02:00:00:00:00:0a', device: 'eth0' });
    expect(watcher.answers(VIP_A, '198.51.100.99')).toBeUndefined();
    expect(watcher.answers(VIP_A, '198.51.100.77')).toBeUndefined();

    // The next round comes an interval after the first started, and sees a change.
    rmSync(join(dir, `replies-eth0-${VIP_A}`));
    await clock.advanceAsync(10_000);
    await waitFor(() => calls().length === 6 && watcher.answers(VIP_A, '198.51.100.15')?.answered === false, 'the second round');
  });

  it('10,000 servers over 100 VIPs cost 100 arpings a round, at most 16 at a time', async () => {
    const lines = ['IP address       HW type     Flags       HW address            Mask     Device'];
    const servers: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const ip = `10.${i >> 8}.${i & 255}.1`;
      servers.push(ip);
      lines.push(`${ip.padEnd(17)}0x1         0x2         02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}     *        eth0`);
    }
    writeFileSync(join(dir, 'arp'), lines.join('\n') + '\n');
    // The fake arping records how many of its kind run at once.
    writeFileSync(join(dir, 'arping'), FAKE_ARPING.replace('echo "$$ $*" >> "$dir/calls"', 'echo "$$ $*" >> "$dir/calls"; echo "+$(ls "$dir"/running.* 2>/dev/null | wc -l)" >> "$dir/peaks"; touch "$dir/running.$$"; sleep 0.05; rm "$dir/running.$$"'));
    const vips = Array.from({ length: 100 }, (_, v) => `198.51.100.${v + 1}`);
    servers.forEach((ip, i) => watcher.watch(vips[i % 100]!, ip));
    writeFileSync(join(dir, `replies-eth0-${vips[7]}`), reply(vips[7]!, '02:00:00:00:00:07'));
    await clock.advanceAsync(0);
    await waitFor(() => servers.every((ip, i) => watcher.answers(vips[i % 100]!, ip) !== undefined), 'the round', 30_000);
    expect(calls()).toHaveLength(100);
    expect(new Set(calls().map((c) => c[c.length - 1])).size).toBe(100);
    const peaks = readFileSync(join(dir, 'peaks'), 'utf8').trim().split('\n').map((l) => Number(l.slice(1)));
    expect(Math.max(...peaks)).toBeLessThan(16);
    expect(watcher.answers(vips[7]!, '10.0.7.1')).toEqual({ answered: true, mac: '02:00:00:00:00:07', device: 'eth0' });
    expect(watcher.answers(vips[7]!, '10.0.107.1')).toMatchObject({ answered: false });
  });

  it('keeps probing while any interest remains, and stops with the last one', async () => {
    const first = watcher.watch(VIP_A, '198.51.100.10');
    const second = watcher.watch(VIP_A, '198.51.100.10');
    await clock.advanceAsync(0);
    await waitFor(() => watcher.answers(VIP_A, '198.51.100.10') !== undefined, 'the first round');
    first();
    first(); // a second call of the same unwatch changes nothing
    await clock.advanceAsync(10_000);
    await waitFor(() => calls().length === 2, 'the second round');
    expect(watcher.answers(VIP_A, '198.51.100.10')).toMatchObject({ answered: false });
    second();
    expect(watcher.answers(VIP_A, '198.51.100.10')).toBeUndefined();
    await waitFor(() => clock.pendingCount() === 0, 'the timer to be cancelled');
    await clock.advanceAsync(30_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(calls()).toHaveLength(2);
  });

  it('leaves IPv6 pairs unknown and unprobed', async () => {
    const end = watcher.watch('2001:db8::7', '2001:db8::10');
    expect(clock.pendingCount()).toBe(0);
    await clock.advanceAsync(10_000);
    expect(watcher.answers('2001:db8::7', '2001:db8::10')).toBeUndefined();
    expect(calls()).toHaveLength(0);
    end();
  });

  it('stop() kills a hanging arping and leaves nothing behind', async () => {
    writeFileSync(join(dir, 'hang'), '');
    watcher.watch(VIP_A, '198.51.100.10');
    await clock.advanceAsync(0);
    await waitFor(() => calls().length === 1, 'arping to start');
    const pid = Number(calls()[0]![0]);
    expect(pidAlive(pid)).toBe(true);
    await watcher.stop();
    expect(pidAlive(pid)).toBe(false);
    expect(clock.pendingCount()).toBe(0);
    expect(watcher.answers(VIP_A, '198.51.100.10')).toBeUndefined();
  });

  it('kills an arping that outlives its deadline, and the verdict is unknown', async () => {
    writeFileSync(join(dir, `replies-eth0-${VIP_A}`), reply(VIP_A, '02:00:00:00:00:0a'));
    watcher.watch(VIP_A, '198.51.100.10');
    await clock.advanceAsync(0);
    await waitFor(() => watcher.answers(VIP_A, '198.51.100.10')?.answered === true, 'the first round');
    writeFileSync(join(dir, 'hang'), '');
    await clock.advanceAsync(10_000);
    await waitFor(() => calls().length === 2, 'the hanging arping');
    const pid = Number(calls()[1]![0]);
    await clock.advanceAsync(5_000); // -w 2 plus 3 s of grace
    await waitFor(() => !pidAlive(pid), 'the kill');
    await waitFor(() => watcher.answers(VIP_A, '198.51.100.10') === undefined, 'the unknown verdict');
    expect(log.lines().join('\n')).toMatch(/arping for 203\.0\.113\.7 on eth0 failed \(still running after 5000 ms\)/);
  });

  it('an arping error (exit 2) makes the verdict unknown, with a warning', async () => {
    writeFileSync(join(dir, 'fail'), '');
    watcher.watch(VIP_A, '198.51.100.10');
    await clock.advanceAsync(0);
    await waitFor(() => log.lines().some((l) => l.includes('failed')), 'the warning');
    expect(log.lines().join('\n')).toMatch(/arping for 203\.0\.113\.7 on eth0 failed \(exit 2\): arping: Device eth0 not available\./);
    expect(watcher.answers(VIP_A, '198.51.100.10')).toBeUndefined();
  });

  it('without arping: one clear error, however many rounds and groups, and no verdicts', async () => {
    await watcher.stop();
    watcher = create({ arpingPath: join(dir, 'no-such-arping') });
    watcher.watch(VIP_A, '198.51.100.10');
    watcher.watch(VIP_B, '198.51.100.10');
    watcher.watch(VIP_A, '192.0.2.20');
    await clock.advanceAsync(0);
    await waitFor(() => log.lines().some((l) => l.includes('arping not found')), 'the error');
    await clock.advanceAsync(10_000);
    await clock.advanceAsync(10_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const errors = log.records().filter((r) => r.level === 50);
    expect(errors.map((r) => r.msg)).toEqual([ARPING_MISSING]);
    expect(watcher.answers(VIP_A, '198.51.100.10')).toBeUndefined();
    expect(watcher.answers(VIP_A, '192.0.2.20')).toBeUndefined();
  });
});
