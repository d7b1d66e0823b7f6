// The IPVS layer on the real kernel (run in a lab guest; see test/lab/README.md).
// The manager and client run in the guest's root network namespace; every
// check reads the kernel with ipvsadm, an independent reader.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runIpvsCommand } from '../../src/cli/ipvs.js';
import { createIpvsClient, type IpvsClient } from '../../src/ipvs/client.js';
import { ipvsRequests } from '../../src/ipvs/codec.js';
import type { DesiredService } from '../../src/ipvs/diff.js';
import { IpvsError } from '../../src/ipvs/errors.js';
import { IpvsManager } from '../../src/ipvs/manager.js';
import type { DestSpec, ServiceSpec } from '../../src/ipvs/types.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { createMemoryLogger, type MemoryLog } from '../../src/runtime/logger.js';
import { exec, execOk, waitFor } from '../lab/exec.js';

const clock = createSystemClock();

async function ipvsadm(...args: string[]): Promise<string> {
  return (await execOk(['ipvsadm', ...args])).stdout;
}

/** The table as `ipvsadm -Sn` rules, sorted (the kernel's hash order means nothing). */
async function rules(): Promise<string[]> {
  return (await ipvsadm('-Sn')).split('\n').filter(Boolean).sort();
}

function service(key: ServiceSpec['key'], extra: Partial<ServiceSpec> = {}): ServiceSpec {
  return { key, scheduler: 'rr', flags: 0, timeoutSec: 0, netmask: key.family === 4 ? 32 : 128, peName: '', ...extra };
}

function dest(address: string, port: number, extra: Partial<DestSpec> = {}): DestSpec {
  return {
    family: address.includes(':') ? 6 : 4,
    address,
    port,
    fwdMethod: 'droute',
    weight: 1,
    upperThreshold: 0,
    lowerThreshold: 0,
    tunnelType: 'ipip',
    tunnelPort: 0,
    tunnelFlags: 0,
    ...extra,
  };
}

function want(spec: ServiceSpec, dests: DestSpec[]): DesiredService {
  return { ...spec, destinations: dests };
}

const tcp80 = { family: 4, protocol: 'tcp', address: '203.0.113.1', port: 80 } as const;
const udp53 = { family: 4, protocol: 'udp', address: '203.0.113.1', port: 53 } as const;
const sctp9 = { family: 4, protocol: 'sctp', address: '203.0.113.2', port: 9 } as const;
const tcp6 = { family: 6, protocol: 'tcp', address: '2001:db8::1', port: 443 } as const;
const fwm1 = { family: 4, fwmark: 1 } as const;
const fwm2v6 = { family: 6, fwmark: 2 } as const;
const sip = { family: 4, protocol: 'udp', address: '203.0.113.3', port: 5060 } as const;

interface Harness {
  client: IpvsClient;
  manager: IpvsManager;
  log: MemoryLog;
}

const open: Harness[] = [];

async function startManager(desired: DesiredService[], dryRun = false): Promise<Harness> {
  const log = createMemoryLogger();
  const client = await createIpvsClient({ clock, logger: log.logger, timeoutMs: 10_000 });
  const manager = new IpvsManager({ kernel: client, clock, logger: log.logger, dryRun, resyncIntervalMs: 3_600_000, retryInitialMs: 200, retryMaxMs: 1000 });
  const h = { client, manager, log };
  open.push(h);
  manager.setDesired(desired);
  manager.start();
  await manager.idle();
  return h;
}

async function stopAll(): Promise<void> {
  for (const h of open.splice(0)) {
    await h.manager.stop();
    h.client.close();
  }
}

beforeAll(async () => {
  // The sip persistence engine is not in the lab's default module list.
  const scratch = process.env.PYBAL_LAB_SCRATCH ?? '';
  await execOk(['modprobe', '-d', `${scratch}/modroot`, 'ip_vs_pe_sip']);
});

afterEach(async () => {
  await stopAll();
  // Test cleanup only: the manager itself never flushes.
  await ipvsadm('-C');
});

afterAll(async () => {
  await exec(['ipvsadm', '-C']);
});

describe('IPVS manager on the real kernel', () => {
  it('creates, changes and removes every kind of service and destination', async () => {
    // A service the configuration does not name: it must survive everything below.
    await ipvsadm('-A', '-t', '203.0.113.9:80', '-s', 'lc');
    await ipvsadm('-a', '-t', '203.0.113.9:80', '-r', '198.51.100.99:80', '-m', '-w', '7');

    const stepA = [
      want(service(tcp80, { scheduler: 'wrr' }), [
        dest('198.51.100.6', 80, { weight: 10 }),
        dest('198.51.100.7', 8080, { fwdMethod: 'masq', weight: 70000 }),
        dest('198.51.100.8', 80, { fwdMethod: 'tunnel', weight: 3, upperThreshold: 100, lowerThreshold: 10 }),
      ]),
      want(service(udp53, { scheduler: 'sh', flags: 0x4 | 0x8 | 0x10 }), [dest('198.51.100.6', 53)]),
      want(service(sctp9), [dest('198.51.100.6', 9, { fwdMethod: 'masq' })]),
      want(service(tcp6, { scheduler: 'mh', flags: 0x1 | 0x8 | 0x10, timeoutSec: 300, netmask: 64 }), [
        dest('2001:db8::6', 443),
        dest('2001:db8::7', 443, { fwdMethod: 'tunnel', tunnelType: 'gue', tunnelPort: 6080, tunnelFlags: 0 }),
        dest('198.51.100.9', 443, { fwdMethod: 'tunnel', tunnelType: 'gre', tunnelFlags: 1 }),
      ]),
      want(service(fwm1, { scheduler: 'wlc', flags: 0x1, timeoutSec: 600, netmask: 24 }), [dest('198.51.100.6', 0)]),
      want(service(fwm2v6), [dest('2001:db8::6', 0)]),
      want(service(sip, { flags: 0x1, timeoutSec: 60, peName: 'sip' }), [dest('198.51.100.6', 5060)]),
    ];
    const { manager, log } = await startManager(stepA);
    expect(log.lines().filter((l) => l.includes('ERROR'))).toEqual([]);
    expect(manager.stats().requests).toBe(7 + 11);
    expect(await rules()).toEqual(
      [
        '-A -t 203.0.113.9:80 -s lc',
        '-a -t 203.0.113.9:80 -r 198.51.100.99:80 -m -w 7',
        '-A -t 203.0.113.1:80 -s wrr',
        '-a -t 203.0.113.1:80 -r 198.51.100.6:80 -g -w 10',
        '-a -t 203.0.113.1:80 -r 198.51.100.7:8080 -m -w 70000',
        '-a -t 203.0.113.1:80 -r 198.51.100.8:80 -i -w 3 --tun-type ipip',
        '-A -u 203.0.113.1:53 -s sh -o -b sh-fallback,sh-port',
        '-a -u 203.0.113.1:53 -r 198.51.100.6:53 -g -w 1',
        '-A --sctp-service 203.0.113.2:9 -s rr',
        '-a --sctp-service 203.0.113.2:9 -r 198.51.100.6:9 -m -w 1',
        '-A -t [2001:db8::1]:443 -s mh -p 300 -M 64 -b mh-fallback,mh-port',
        '-a -t [2001:db8::1]:443 -r [2001:db8::6]:443 -g -w 1',
        '-a -t [2001:db8::1]:443 -r [2001:db8::7]:443 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum',
        '-a -t [2001:db8::1]:443 -r 198.51.100.9:443 -i -w 1 --tun-type gre --tun-csum',
        '-A -f 1 -s wlc -p 600 -M 255.255.255.0',
        '-a -f 1 -r 198.51.100.6:0 -g -w 1',
        '-A -f 2 -6 -s rr',
        '-a -f 2 -6 -r [2001:db8::6]:0 -g -w 1',
        '-A -u 203.0.113.3:5060 -s rr -p 60 --pe sip',
        '-a -u 203.0.113.3:5060 -r 198.51.100.6:5060 -g -w 1',
      ].sort(),
    );
    expect(await ipvsadm('-Ln', '--thresholds')).toMatch(/-> 198\.51\.100\.8:80\s+100\s+10\s/);

    // `pybal ipvs` prints what ipvsadm -Ln prints.
    let printed = '';
    expect(await runIpvsCommand({ stdout: (t) => (printed += t), stderr: (t) => (printed += t) })).toBe(0);
    expect(printed).toBe(await ipvsadm('-Ln'));

    // Step B: change settings of services and destinations in place.
    const stepB = [
      want(service(tcp80, { scheduler: 'wlc' }), [
        dest('198.51.100.6', 80, { weight: 0 }),
        dest('198.51.100.7', 8080, { weight: 70000 }),
        dest('198.51.100.10', 80, { fwdMethod: 'masq', weight: 5 }),
      ]),
      want(service(udp53, { scheduler: 'mh', flags: 0x8 }), [dest('198.51.100.6', 53)]),
      want(service(sctp9), [dest('198.51.100.6', 9, { fwdMethod: 'masq' })]),
      want(service(tcp6, { scheduler: 'mh', flags: 0x1 | 0x8 | 0x10, timeoutSec: 900, netmask: 64 }), [
        dest('2001:db8::6', 443),
        dest('2001:db8::7', 443, { fwdMethod: 'tunnel', tunnelType: 'gue', tunnelPort: 6081, tunnelFlags: 1 }),
        dest('198.51.100.9', 443, { fwdMethod: 'tunnel', tunnelType: 'gre', tunnelFlags: 1 }),
      ]),
      want(service(fwm1, { scheduler: 'wlc', flags: 0x1, timeoutSec: 600, netmask: 16 }), [dest('198.51.100.6', 0)]),
      want(service(fwm2v6), [dest('2001:db8::6', 0)]),
      want(service(sip, { flags: 0x1, timeoutSec: 60 }), [dest('198.51.100.6', 5060)]),
    ];
    const beforeB = manager.stats().requests;
    manager.setDesired(stepB);
    await manager.idle();
    expect(log.lines().filter((l) => l.includes('ERROR'))).toEqual([]);
    // tcp80: scheduler, -.8, .6 weight, .7 method, +.10; udp53; tcp6: timeout, gue; fwm1 mask; sip pe.
    expect(manager.stats().requests - beforeB).toBe(5 + 1 + 2 + 1 + 1);
    expect(await rules()).toEqual(
      [
        '-A -t 203.0.113.9:80 -s lc',
        '-a -t 203.0.113.9:80 -r 198.51.100.99:80 -m -w 7',
        '-A -t 203.0.113.1:80 -s wlc',
        '-a -t 203.0.113.1:80 -r 198.51.100.6:80 -g -w 0',
        '-a -t 203.0.113.1:80 -r 198.51.100.7:8080 -g -w 70000',
        '-a -t 203.0.113.1:80 -r 198.51.100.10:80 -m -w 5',
        '-A -u 203.0.113.1:53 -s mh -b mh-fallback',
        '-a -u 203.0.113.1:53 -r 198.51.100.6:53 -g -w 1',
        '-A --sctp-service 203.0.113.2:9 -s rr',
        '-a --sctp-service 203.0.113.2:9 -r 198.51.100.6:9 -m -w 1',
        '-A -t [2001:db8::1]:443 -s mh -p 900 -M 64 -b mh-fallback,mh-port',
        '-a -t [2001:db8::1]:443 -r [2001:db8::6]:443 -g -w 1',
        '-a -t [2001:db8::1]:443 -r [2001:db8::7]:443 -i -w 1 --tun-type gue --tun-port 6081 --tun-csum',
        '-a -t [2001:db8::1]:443 -r 198.51.100.9:443 -i -w 1 --tun-type gre --tun-csum',
        '-A -f 1 -s wlc -p 600 -M 255.255.0.0',
        '-a -f 1 -r 198.51.100.6:0 -g -w 1',
        '-A -f 2 -6 -s rr',
        '-a -f 2 -6 -r [2001:db8::6]:0 -g -w 1',
        '-A -u 203.0.113.3:5060 -s rr -p 60',
        '-a -u 203.0.113.3:5060 -r 198.51.100.6:5060 -g -w 1',
      ].sort(),
    );

    // Step C: services dropped from the configuration go; the one never named stays.
    manager.setDesired(stepB.filter((s) => s.key !== udp53 && s.key !== sctp9 && s.key !== fwm2v6 && s.key !== tcp6 && s.key !== fwm1 && s.key !== sip));
    await manager.idle();
    expect(await rules()).toEqual(
      [
        '-A -t 203.0.113.9:80 -s lc',
        '-a -t 203.0.113.9:80 -r 198.51.100.99:80 -m -w 7',
        '-A -t 203.0.113.1:80 -s wlc',
        '-a -t 203.0.113.1:80 -r 198.51.100.6:80 -g -w 0',
        '-a -t 203.0.113.1:80 -r 198.51.100.7:8080 -g -w 70000',
        '-a -t 203.0.113.1:80 -r 198.51.100.10:80 -m -w 5',
      ].sort(),
    );
  });

  it('adopts a table made beforehand with ipvsadm at no cost, and repairs changes made behind its back', async () => {
    await ipvsadm('-A', '-t', '203.0.113.1:80', '-s', 'wrr');
    await ipvsadm('-a', '-t', '203.0.113.1:80', '-r', '198.51.100.6:80', '-g', '-w', '10');
    await ipvsadm('-a', '-t', '203.0.113.1:80', '-r', '198.51.100.7:80', '-g', '-w', '20');
    await ipvsadm('-A', '-u', '[2001:db8::1]:53', '-s', 'sh', '-b', 'sh-port', '-p', '120');
    await ipvsadm('-a', '-u', '[2001:db8::1]:53', '-r', '[2001:db8::6]:53', '-m', '-w', '1');
    await ipvsadm('-A', '-f', '7', '-s', 'rr');
    await ipvsadm('-a', '-f', '7', '-r', '198.51.100.6:0', '-i', '-w', '2');
    const before = await rules();
    const desired = [
      want(service(tcp80, { scheduler: 'wrr' }), [dest('198.51.100.6', 80, { weight: 10 }), dest('198.51.100.7', 80, { weight: 20 })]),
      want(service({ family: 6, protocol: 'udp', address: '2001:db8::1', port: 53 }, { scheduler: 'sh', flags: 0x1 | 0x10, timeoutSec: 120 }), [
        dest('2001:db8::6', 53, { fwdMethod: 'masq' }),
      ]),
      want(service({ family: 4, fwmark: 7 }), [dest('198.51.100.6', 0, { fwdMethod: 'tunnel', weight: 2 })]),
    ];
    const { manager, log } = await startManager(desired);
    expect(manager.stats()).toMatchObject({ requests: 0, failedRequests: 0, resyncs: 1 });
    expect(await rules()).toEqual(before);

    // Someone deletes a real server and edits another by hand.
    await ipvsadm('-d', '-t', '203.0.113.1:80', '-r', '198.51.100.6:80');
    await ipvsadm('-e', '-t', '203.0.113.1:80', '-r', '198.51.100.7:80', '-g', '-w', '99');
    manager.resync();
    await manager.idle();
    expect(manager.stats()).toMatchObject({ requests: 2, drift: 2 });
    expect(await rules()).toEqual(before);
    expect(log.lines().filter((l) => l.includes('drift'))).toEqual([
      '[pybal] WARN: IPVS drift: server TCP 203.0.113.1:80 -> 198.51.100.7:80 has route weight 99, expected route weight 20; repairing',
      '[pybal] WARN: IPVS drift: server TCP 203.0.113.1:80 -> 198.51.100.6:80 is missing from the kernel; repairing',
    ]);
  });

  it('its periodic resync puts back a destination deleted by hand', async () => {
    const log = createMemoryLogger();
    const client = await createIpvsClient({ clock, logger: log.logger, timeoutMs: 10_000 });
    const manager = new IpvsManager({ kernel: client, clock, logger: log.logger, resyncIntervalMs: 300 });
    open.push({ client, manager, log });
    manager.setDesired([want(service(tcp80), [dest('198.51.100.6', 80), dest('198.51.100.7', 80)])]);
    manager.start();
    await manager.idle();
    await ipvsadm('-d', '-t', '203.0.113.1:80', '-r', '198.51.100.6:80');
    await waitFor(async () => ((await ipvsadm('-Sn')).includes('-r 198.51.100.6:80') ? true : undefined), {
      timeoutMs: 20_000,
      what: 'the deleted destination to come back',
    });
    expect(log.lines()).toContain('[pybal] WARN: IPVS drift: server TCP 203.0.113.1:80 -> 198.51.100.6:80 is missing from the kernel; repairing');
  });

  it('adopts a table that differs in one weight with exactly one request, keeping the service', async () => {
    await ipvsadm('-A', '-t', '203.0.113.1:80', '-s', 'wrr');
    await ipvsadm('-a', '-t', '203.0.113.1:80', '-r', '198.51.100.6:80', '-g', '-w', '10');
    await ipvsadm('-a', '-t', '203.0.113.1:80', '-r', '198.51.100.7:80', '-g', '-w', '20');
    const { manager, log } = await startManager([
      want(service(tcp80, { scheduler: 'wrr' }), [dest('198.51.100.6', 80, { weight: 10 }), dest('198.51.100.7', 80, { weight: 0 })]),
    ]);
    expect(manager.stats().requests).toBe(1);
    expect(log.lines().filter((l) => l.includes('IPVS:'))).toEqual([
      '[pybal] INFO: IPVS: edit server TCP 203.0.113.1:80 -> 198.51.100.7:80: route weight 20 => route weight 0',
    ]);
    expect(await ipvsadm('-Sn')).toContain('-a -t 203.0.113.1:80 -r 198.51.100.7:80 -g -w 0');
  });

  it('surfaces kernel errors as typed errors and keeps going', async () => {
    const good = want(service(tcp80), [dest('198.51.100.6', 80), dest('224.0.0.1', 80)]);
    const bad = want(service({ family: 4, protocol: 'tcp', address: '203.0.113.4', port: 80 }, { scheduler: 'nosuch' }), []);
    const { manager, log } = await startManager([bad, good]);
    expect(manager.stats().failedReconciles).toBeGreaterThanOrEqual(1);
    const errors = log.lines().filter((l) => l.includes('ERROR'));
    expect(errors).toContain('[pybal] ERROR: IPVS: could not add service TCP 203.0.113.4:80 scheduler nosuch: IPVS_CMD_NEW_SERVICE TCP 203.0.113.4:80: ENOENT code=ENOENT');
    expect(errors).toContain(
      '[pybal] ERROR: IPVS: could not add server TCP 203.0.113.1:80 -> 224.0.0.1:80 route weight 1: IPVS_CMD_NEW_DEST TCP 203.0.113.1:80 -> 224.0.0.1:80: EINVAL code=EINVAL',
    );
    // The rest went in.
    expect(await rules()).toEqual(['-A -t 203.0.113.1:80 -s rr', '-a -t 203.0.113.1:80 -r 198.51.100.6:80 -g -w 1']);
    // The operator fixes the configuration; the manager, still running, applies it.
    // A change made within a second of a failure waits for the scheduled retry.
    manager.setDesired([want(bad, []), want(service(tcp80), [dest('198.51.100.6', 80)])].map((s) => (s.scheduler === 'nosuch' ? { ...s, scheduler: 'rr' } : s)));
    await waitFor(async () => (manager.stats().lastError === undefined ? true : undefined), { timeoutMs: 5_000, what: 'the retry to apply the fixed state' });
    await manager.idle();
    expect(manager.stats().lastError).toBeUndefined();
    expect(await rules()).toEqual(['-A -t 203.0.113.1:80 -s rr', '-A -t 203.0.113.4:80 -s rr', '-a -t 203.0.113.1:80 -r 198.51.100.6:80 -g -w 1'].sort());
  });

  it('dry run reads the kernel and changes nothing', async () => {
    await ipvsadm('-A', '-t', '203.0.113.1:80', '-s', 'wrr');
    const before = await rules();
    const { manager, log } = await startManager([want(service(tcp80), [dest('198.51.100.6', 80)])], true);
    expect(manager.stats().requests).toBe(2);
    expect(log.lines().filter((l) => l.includes('dry run'))).toEqual([
      '[pybal] INFO: dry run: would edit service TCP 203.0.113.1:80: scheduler wrr => scheduler rr',
      '[pybal] INFO: dry run: would add server TCP 203.0.113.1:80 -> 198.51.100.6:80 route weight 1',
    ]);
    expect(await rules()).toEqual(before);
  });
});

describe('IPVS client on the real kernel', () => {
  let client: IpvsClient;
  beforeAll(async () => {
    client = await createIpvsClient({ clock, timeoutMs: 10_000 });
  });
  afterAll(() => client?.close());

  it('batches requests: one failing in the middle gets its own typed error, the others apply', async () => {
    const key = tcp80;
    const items = [
      { request: ipvsRequests.newService(service(key)), object: 'svc' },
      ...Array.from({ length: 50 }, (_, i) => ({ request: ipvsRequests.newDest(key, dest(`198.51.100.${i + 1}`, 80)), object: `dest ${i}` })),
      { request: ipvsRequests.newDest(key, dest('198.51.100.5', 80)), object: 'duplicate' },
      { request: ipvsRequests.newDest(key, dest('198.51.100.200', 80, { upperThreshold: 1, lowerThreshold: 5 })), object: 'thresholds' },
      { request: ipvsRequests.newDest(key, dest('198.51.100.201', 80)), object: 'last' },
    ];
    const sendsBefore = client.counters.sends;
    const results = await client.batch(items);
    expect(client.counters.sends - sendsBefore).toBe(1);
    const failures = results.flatMap((r, i) => (r ? [[i, r.code, r.command, r.object]] : []));
    expect(failures).toEqual([
      [51, 'EEXIST', 'IPVS_CMD_NEW_DEST', 'duplicate'],
      [52, 'ERANGE', 'IPVS_CMD_NEW_DEST', 'thresholds'],
    ]);
    expect(results[52]).toBeInstanceOf(IpvsError);
    const lines = (await ipvsadm('-Ln')).split('\n').filter((l) => l.includes('->') && !l.includes('RemoteAddress'));
    expect(lines).toHaveLength(51);
  });

  it('maps errors of do requests, and reads info, timeouts and the sync daemon', async () => {
    const missing = { family: 4, protocol: 'tcp', address: '203.0.113.77', port: 1 } as const;
    await expect(client.request(ipvsRequests.getService(missing), 'TCP 203.0.113.77:1')).rejects.toMatchObject({
      name: 'IpvsError',
      code: 'ESRCH',
      errno: 3,
      command: 'IPVS_CMD_GET_SERVICE',
      object: 'TCP 203.0.113.77:1',
    });
    // The kernel answers a destination dump of a missing service with an empty dump, not an error.
    expect(await client.listDests(missing)).toEqual([]);
    expect(await client.info()).toMatchObject({ version: '1.2.1', connTabSize: 4096 });
    await client.setTimeouts({ tcpSec: 901, tcpFinSec: 121, udpSec: 301 });
    expect(await client.timeouts()).toEqual({ tcpSec: 901, tcpFinSec: 121, udpSec: 301 });
    expect(await ipvsadm('-L', '--timeout')).toContain('Timeout (tcp tcpfin udp): 901 121 301');
    await client.startDaemon({ state: 'backup', mcastIfn: 'lo', syncId: 9, syncMaxLen: 1400, mcastGroup: '239.1.2.3', mcastPort: 8849, mcastTtl: 3 });
    expect(await ipvsadm('-L', '--daemon')).toContain('backup sync daemon (mcast=lo, syncid=9, maxlen=1400, group=239.1.2.3, port=8849, ttl=3)');
    await client.stopDaemon('backup');
    await client.startDaemon({ state: 'master', mcastIfn: 'lo', syncId: 5, syncMaxLen: 0, mcastGroup: '', mcastPort: 0, mcastTtl: 0 });
    // The kernel fills in its defaults; we read the same values ipvsadm prints.
    expect(await client.daemons()).toEqual([
      { state: 'master', mcastIfn: 'lo', syncId: 5, syncMaxLen: 1472, mcastGroup: '224.0.0.81', mcastPort: 8848, mcastTtl: 1 },
    ]);
    expect(await ipvsadm('-L', '--daemon')).toContain('master sync daemon (mcast=lo, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)');
    await client.stopDaemon('master');
    expect(await client.daemons()).toEqual([]);
    await client.zero();
  });
});
