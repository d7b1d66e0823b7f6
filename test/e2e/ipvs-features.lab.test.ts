// End to end: IPVS features set in pybal.conf, each proven with client
// traffic through the VIP, not only by reading the table back. The daemon
// runs in director1 of a DR lab (two real servers answering HTTP on 80, HTTPS
// on 443 and a UDP echo on 5060), one VIP per feature:
//   vips[0]  [fwm4] [fwm6]    fwmark = 1 in each family; iptables marks ports 80 and 443
//   vips[1]  [sticky]         persistence-timeout, persistence-netmask = /25
//            [sip]            udp, persistence-engine = sip, persistence-netmask = /24
//   vips[2]  [thresholds]     upper-threshold = 2, lower-threshold = 1
//   vips[3]  [sh]             scheduler = sh, sh-port = yes
//   vips[4]  [sh-plain]       scheduler = sh alone: the control of [sh]
//   vips[5]  [sh-fallback]    sh-port = yes, sh-fallback = yes; rs1 has weight 1, rs2 0
//   vips[6]  [sh-nofallback]  sh-port = yes; rs1 has weight 1, rs2 0: the control of [sh-fallback]
//   vips[7]  [mh]             scheduler = mh, scheduler-flags = [ 'mh-port' ]
//   vips[8]  [mh-plain]       scheduler = mh alone: the control of [mh]
//   vips[9]  [mh-fallback]    mh-port = yes, mh-fallback = yes; rs2's weight is edited to 0 in its pool file
//   vips[10] [mh-nofallback]  mh-port = yes; the same edit: the control of [mh-fallback]
// Every assertion about traffic is one that the kernel's defaults would fail
// (rr alternates, sh and mh hash the client's address only, persistence
// without a netmask or engine keys on the client's address).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import { IPTABLES_MODULES, appendMangleRules, mangleCounters } from '../lab/iptables.js';
import { hostForPort, loadGuestModules, startLab, type Lab } from '../lab/lab.js';
import type { Family } from '../lab/topology.js';
import { E2eConfig, E2ePybal, proxyFetchLines, type E2eService } from './pybal-lab.js';
import type { SipAnswer } from './sip-client.js';

const MARK = 1;
const SIP_PORT = 5060;
/** Connections per check of a hashing scheduler: with the port hashed, two servers all but surely both appear. */
const HASHED = 12;
/** The first source port fromManyPorts binds: above Linux's default ip_local_port_range (32768-60999). */
const FIRST_LOCAL_PORT = 61_000;
/** curl's exits for a connection the director refused or dropped (no destination): 7 (refused), 28 (timed out). */
const UNANSWERED_EXITS = new Set([7, 28]);

describe('e2e: IPVS features from pybal.conf carry client traffic as configured', () => {
  let lab: Lab;
  let conf: E2eConfig;
  let pybal: E2ePybal;
  const vip = (i: number, family: Family = 4): string => (family === 4 ? lab.addr.vips[i]!.v4! : lab.addr.vips[i]!.v6!);
  /** http://VIP/ on port 80, https://VIP/ on 443. */
  const url = (i: number, family: Family = 4, port: 80 | 443 = 80): string => `${port === 443 ? 'https' : 'http'}://${hostForPort(vip(i, family))}/`;
  // The client's own address and two more: .11 in the same /25, .200 outside it (same /24).
  const client = { main: '192.0.2.10', sameNet: '192.0.2.11', otherNet: '192.0.2.200' };
  // Source ports for curl --local-port, never reused (the client keeps closed
  // ones in TIME_WAIT, and curl cannot bind a port held so). Above the
  // namespace's ephemeral range (checked in beforeAll), so that no connection
  // of another test, given a port by the kernel, holds one of them.
  let nextLocalPort = FIRST_LOCAL_PORT;

  const fwmark = (family: Family): E2eService => ({ name: `fwm${family}`, family, vipIndex: 0, extra: [`fwmark = ${MARK}`, ...proxyFetchLines()] });
  const fwm4AsPort: E2eService = { name: 'fwm4', vipIndex: 0 };
  const sticky: E2eService = { name: 'sticky', vipIndex: 1, extra: ['persistence-timeout = 60', 'persistence-netmask = 255.255.255.128', ...proxyFetchLines()] };
  const sip: E2eService = {
    name: 'sip',
    vipIndex: 1,
    protocol: 'udp',
    port: SIP_PORT,
    extra: [
      'persistence-timeout = 60',
      'persistence-netmask = 255.255.255.0',
      'persistence-engine = sip',
      "monitors = [ 'UDP' ]",
      'udp.interval = 1',
    ],
  };
  const thresholds: E2eService = { name: 'thresholds', vipIndex: 2, extra: ['upper-threshold = 2', 'lower-threshold = 1', ...proxyFetchLines()] };
  const sh: E2eService = { name: 'sh', vipIndex: 3, scheduler: 'sh', extra: ['sh-port = yes', ...proxyFetchLines()] };
  const shPlain: E2eService = { name: 'sh-plain', vipIndex: 4, scheduler: 'sh' };
  const shFallback: E2eService = { name: 'sh-fallback', vipIndex: 5, scheduler: 'sh', extra: ['sh-port = yes', 'sh-fallback = yes', ...proxyFetchLines()] };
  const shNoFallback: E2eService = { name: 'sh-nofallback', vipIndex: 6, scheduler: 'sh', extra: ['sh-port = yes', ...proxyFetchLines()] };
  const mh: E2eService = { name: 'mh', vipIndex: 7, scheduler: 'mh', extra: ["scheduler-flags = [ 'mh-port' ]", ...proxyFetchLines()] };
  const mhPlain: E2eService = { name: 'mh-plain', vipIndex: 8, scheduler: 'mh' };
  const mhFallback: E2eService = { name: 'mh-fallback', vipIndex: 9, scheduler: 'mh', extra: ['mh-port = yes', 'mh-fallback = yes', ...proxyFetchLines()] };
  const mhNoFallback: E2eService = { name: 'mh-nofallback', vipIndex: 10, scheduler: 'mh', extra: ['mh-port = yes', ...proxyFetchLines()] };
  const services = (first: E2eService = fwmark(4)): E2eService[] => [
    first,
    fwmark(6),
    sticky,
    sip,
    thresholds,
    sh,
    shPlain,
    shFallback,
    shNoFallback,
    mh,
    mhPlain,
    mhFallback,
    mhNoFallback,
  ];
  /**
   * Pools where rs2 has weight 0 (drained) and rs1 weight 1: sh fills its
   * table a server at a time, `weight` buckets each but at least one, so
   * rs2 still has every other bucket.
   */
  const drainedRs2 = new Set([shFallback.name, shNoFallback.name]);

  beforeAll(async () => {
    // A kernel of its own loads ip_vs_pe_sip when a service names it; the guest's cannot.
    await loadGuestModules([...IPTABLES_MODULES, 'ip_vs_pe_sip']);
    lab = await startLab({ realServers: 2, forwarding: 'dr', router: 'none', families: [4, 6], vips: 11, realServer: { http: 80, https: 443, udp: SIP_PORT } });
    // The director marks the first VIP's web ports for the firewall-mark services.
    for (const family of [4, 6] as const) {
      await appendMangleRules(lab, 'director', family, [
        ['PREROUTING', '-d', vip(0, family), '-p', 'tcp', '-m', 'multiport', '--dports', '80,443', '-j', 'MARK', '--set-mark', String(MARK)],
      ]);
    }
    // Each real server counts the SYNs it receives for the thresholds' VIP.
    for (const rs of lab.addr.realServers) {
      await appendMangleRules(lab, rs.name, 4, [['PREROUTING', '-d', vip(2), '-p', 'tcp', '--syn', '-m', 'comment', '--comment', 'syn']]);
    }
    for (const address of [client.sameNet, client.otherNet]) await lab.execOk('client', ['ip', 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
    const ephemeral = await lab.execOk('client', ['cat', '/proc/sys/net/ipv4/ip_local_port_range']);
    const ephemeralTop = Number(ephemeral.stdout.trim().split(/\s+/)[1]);
    expect(ephemeralTop, `the client's ip_local_port_range (${ephemeral.stdout.trim()}) must end below fromManyPorts' ports`).toBeLessThan(FIRST_LOCAL_PORT);
    conf = new E2eConfig(lab);
    for (const s of services()) conf.writePool(s.name, conf.realServerEntries(drainedRs2.has(s.name) ? { rs1: { weight: 1 }, rs2: { weight: 0 } } : {}, s.family ?? 4));
    conf.write(services(), { bgp: false });
    pybal = E2ePybal.start(lab, conf.file);
    await waitFor(
      async () => {
        const table = await lab.ipvsTable();
        return table.length === services().length && table.every((s) => s.destinations.length === 2) ? true : undefined;
      },
      { timeoutMs: 40_000, what: 'every service with both real servers' },
    );
  }, 120_000);

  afterAll(async () => {
    await lab?.stop();
  });

  /** `ipvsadm -Sn`, one rule a line. */
  async function rules(): Promise<string[]> {
    return (await lab.ipvsadm(['-Sn'])).split('\n').filter((l) => l !== '');
  }

  /** Connections IPVS scheduled for a service (its name as `ipvsadm --stats` prints it). */
  async function conns(service: string): Promise<number | undefined> {
    return (await lab.ipvsStats()).find((s) => s.service === service)?.conns;
  }

  /** Waits until IPVS counted `want` connections for a service (the kernel sums its per-CPU counters every 2 s). */
  function waitForConns(service: string, want: number): Promise<boolean> {
    return waitFor(
      async () => {
        const have = await conns(service);
        if (have === want) return true;
        throw new Error(`${service} has ${have} connections`);
      },
      { timeoutMs: 15_000, what: `${want} connections counted for ${service}` },
    );
  }

  async function reload(services: E2eService[], what: string, done: (rules: string[]) => boolean): Promise<void> {
    conf.write(services, { bgp: false });
    const mark = pybal.log().length;
    pybal.process.signal('SIGHUP');
    await waitFor(async () => pybal.logSince(mark).find((l) => l.includes('Configuration reloaded')), { timeoutMs: 20_000, what: 'the reload' });
    await waitFor(async () => (done(await rules()) ? true : undefined), { timeoutMs: 20_000, what });
  }

  for (const family of [4, 6] as const) {
    it(`IPv${family}: one firewall-mark service takes the client's requests on both marked ports and balances them`, async () => {
      const v6 = family === 6 ? ' -6' : '';
      const dests = lab.addr.realServers.map((r) => `-a -f ${MARK}${v6} -r ${hostForPort(family === 4 ? r.v4! : r.v6!)}:0 -g -w 10`);
      expect(await rules()).toEqual(expect.arrayContaining([`-A -f ${MARK}${v6} -s rr`, ...dests]));
      const service = (await lab.ipvsTable()).find((s) => s.fwmark === MARK && s.fwmarkFamily === family);
      expect(service?.protocol).toBe('fwm');
      // No service of the VIP's own: only the mark brings these requests to IPVS.
      expect((await lab.ipvsTable()).filter((s) => s.address === vip(0, family))).toEqual([]);

      const name = `FWM  ${MARK}${family === 6 ? ' IPv6' : ''}`;
      expect(await conns(name)).toBe(0);
      const ports = [80, 443, 443, 80] as const;
      const served: Array<string | undefined> = [];
      for (const port of ports) served.push((await lab.client.get(url(0, family, port), { insecure: true })).servedBy);
      // rr over one service alternates whatever the port (two services, one
      // per port, would each start at the same server): each port saw both.
      expect(served.slice(0, 2).sort()).toEqual(['rs1', 'rs2']);
      expect(served.slice(2)).toEqual(served.slice(0, 2));
      // Every one of them was the firewall-mark service's.
      await waitForConns(name, ports.length);
    });
  }

  it('a SIGHUP turning the IPv4 firewall-mark service into ip:port and back: the kernel follows, the client is served on each', async () => {
    await reload(services(fwm4AsPort), 'vips[0] as tcp:80', (r) => r.includes(`-A -t ${vip(0)}:80 -s rr`) && !r.includes(`-A -f ${MARK} -s rr`));
    expect(await rules()).toEqual(expect.arrayContaining(lab.addr.realServers.map((r) => `-a -t ${vip(0)}:80 -r ${r.v4}:80 -g -w 10`)));
    expect((await lab.client.servedBy(url(0), 2)).sort()).toEqual(['rs1', 'rs2']);
    // Port 443 is not the service's any more: the director itself refuses it.
    expect((await lab.client.get(url(0, 4, 443), { insecure: true })).curlExit).toBe(7);
    // The IPv6 firewall-mark service was not touched.
    expect((await lab.client.get(url(0, 6, 443), { insecure: true })).status).toBe(200);

    await reload(services(), 'vips[0] as fwmark again', (r) => r.includes(`-A -f ${MARK} -s rr`) && !r.includes(`-A -t ${vip(0)}:80 -s rr`));
    for (const port of [80, 443] as const) expect((await lab.client.servedBy(url(0, 4, port), 2, { insecure: true })).sort()).toEqual(['rs1', 'rs2']);
  });

  it('persistence-netmask: two client addresses in one /25 stick to one server; an address outside it gets the other', async () => {
    expect(await rules()).toContain(`-A -t ${vip(1)}:80 -s rr -p 60 -M 255.255.255.128`);
    // In this order, rr would give .11 the second server if the mask were /32.
    const order = [client.main, client.sameNet, client.otherNet, client.sameNet, client.main, client.otherNet];
    const answers: Array<[string, string | undefined]> = [];
    for (const from of order) answers.push([from, (await lab.client.get(url(1), { from })).servedBy]);
    const servers = (net: string[]): Array<string | undefined> => [...new Set(answers.filter(([from]) => net.includes(from)).map(([, s]) => s))];
    const inNet = servers([client.main, client.sameNet]);
    const outside = servers([client.otherNet]);
    expect(inNet, JSON.stringify(answers)).toHaveLength(1);
    expect(outside, JSON.stringify(answers)).toHaveLength(1);
    expect(new Set([...inNet, ...outside])).toEqual(new Set(['rs1', 'rs2']));
  });

  it('persistence-engine = sip: one Call-ID sticks to one server from any source port and address in the netmask; another Call-ID goes elsewhere', async () => {
    expect(await rules()).toContain(`-A -u ${vip(1)}:${SIP_PORT} -s rr -p 60 -M 255.255.255.0 --pe sip`);
    const requests = ['alpha', 'bravo', 'alpha', 'bravo', 'alpha', 'bravo'].map((callId, i) => `${i < 3 ? client.main : client.sameNet}/${callId}`);
    const out = await lab.execOk('client', ['node', 'dist/test/e2e/sip-client.js', vip(1), String(SIP_PORT), ...requests]);
    const answers = JSON.parse(out.stdout) as SipAnswer[];
    const byCall = (callId: string): Array<string | null> => [...new Set(answers.filter((a) => a.callId === callId).map((a) => a.servedBy))];
    // Plain persistence would send all six to one server (one client net);
    // none would alternate between servers within a Call-ID.
    expect(byCall('alpha'), out.stdout).toHaveLength(1);
    expect(byCall('bravo'), out.stdout).toHaveLength(1);
    expect(new Set([...byCall('alpha'), ...byCall('bravo')])).toEqual(new Set(['rs1', 'rs2']));
  });

  it('upper-threshold = 2 and lower-threshold = 1: a server holding two connections gets no new one, nor after one closes; it does once both have', async () => {
    const thresholdLines = (await lab.ipvsadm(['-Ln', '--thresholds'])).split('\n');
    const at = thresholdLines.findIndex((l) => l.startsWith(`TCP  ${vip(2)}:80 `));
    for (const r of lab.addr.realServers) expect(thresholdLines.slice(at + 1, at + 3).join('\n')).toMatch(new RegExp(`-> ${r.v4!.replaceAll('.', '\\.')}:80\\s+2\\s+1\\s`));
    // A connection the client closes stays in IPVS's FIN_WAIT for the tcpfin
    // timeout (2 minutes by default) and counts towards the thresholds until
    // then: one second here, so that the probes below do not overload the other server.
    await lab.ipvsadm(['--set', '0', '1', '0']);
    const hold = (tag: string): Promise<{ proc: ReturnType<Lab['spawn']>; server: string }> => {
      const proc = lab.spawn('client', ['node', 'dist/test/ipvs/hold-connection.js', vip(2), '80'], { name: `hold-${tag}` });
      return proc.waitForLine(/^first /, 10_000).then((line) => ({ proc, server: /^first 200 (rs\d) /.exec(line)?.[1] ?? line }));
    };
    const address = (name: string): string => lab.addr.realServers.find((r) => r.name === name)!.v4!;
    /** Active plus inactive connections IPVS counts for a server (what the thresholds compare). */
    const load = async (name: string): Promise<number> => {
      const d = (await lab.ipvsTable()).find((s) => s.address === vip(2))?.destinations.find((x) => x.address === address(name));
      return (d?.activeConns ?? 0) + (d?.inactiveConns ?? 0);
    };
    const waitForLoad = (name: string, want: number): Promise<boolean> =>
      waitFor(async () => ((await load(name)) === want ? true : undefined), { timeoutMs: 20_000, what: `${name} with ${want} connection(s)` });
    /** SYNs for this VIP the real server received (counted in its namespace, see beforeAll). */
    const syns = async (name: string): Promise<number> => (await mangleCounters(lab, name)).syn ?? 0;
    /** Three new connections, each once the last one left IPVS: all must go to `to`; `not` must receive no SYN. */
    const newConnectionsGoTo = async (to: string, not: string): Promise<void> => {
      const before = await syns(not);
      for (let i = 0; i < 3; i++) {
        await waitForLoad(to, 0);
        expect((await lab.client.get(url(2))).servedBy).toBe(to);
      }
      expect(await syns(not)).toBe(before);
    };

    const first = await hold('1');
    const busy = first.server;
    const other = busy === 'rs1' ? 'rs2' : 'rs1';
    expect((await lab.client.get(url(2))).servedBy).toBe(other);
    // rr's turn is the busy server's again, and it is below the upper threshold.
    const second = await hold('2');
    expect(second.server).toBe(busy);
    await waitForLoad(busy, 2);
    // At the upper threshold: rr would give it every other connection.
    await newConnectionsGoTo(other, busy);

    await second.proc.stop();
    await waitForLoad(busy, 1);
    // Still overloaded: below 2 but not below the lower threshold (without
    // one, the kernel takes it back below 3/4 of the upper one, here at 1).
    await newConnectionsGoTo(other, busy);

    await first.proc.stop();
    await waitForLoad(busy, 0);
    await lab.client.waitForAnswer(url(2), (a) => a.servedBy === busy, { timeoutMs: 20_000 });
  });

  /** HASHED requests to a VIP, each from a new source port; who answered each ('' when nobody did). */
  async function fromManyPorts(vipIndex: number): Promise<Array<string>> {
    const served: string[] = [];
    for (let i = 0; i < HASHED; i++) {
      const localPort = nextLocalPort++;
      const answer = await lab.client.get(url(vipIndex), { localPort, timeoutMs: 2_000 });
      // Anything else (a port curl could not bind, exit 45) is the test's own failure, not the director's answer.
      if (answer.servedBy === undefined && !UNANSWERED_EXITS.has(answer.curlExit)) {
        throw new Error(`curl from port ${localPort} to ${url(vipIndex)}: exit ${answer.curlExit}, status ${answer.status ?? 'none'}: ${answer.error}`);
      }
      served.push(answer.servedBy ?? '');
    }
    return served;
  }
  const distinct = (served: readonly string[]): string[] => [...new Set(served)].sort();

  it('sh-port = yes: one client\'s connections from different source ports spread over both servers; without the flag they all go to one', async () => {
    expect(await rules()).toContain(`-A -t ${vip(3)}:80 -s sh -b sh-port`);
    expect(distinct(await fromManyPorts(3))).toEqual(['rs1', 'rs2']);
    expect(await rules()).toContain(`-A -t ${vip(4)}:80 -s sh`);
    expect(distinct(await fromManyPorts(4))).toEqual([expect.stringMatching(/^rs[12]$/)]);
  });

  it('sh-fallback = yes: connections that hash to a server of weight 0 go to another; without it they find no server', async () => {
    // Half of sh's buckets are rs2's (see drainedRs2).
    expect(await rules()).toContain(`-A -t ${vip(5)}:80 -s sh -b sh-fallback,sh-port`);
    expect((await lab.ipvsTable()).find((s) => s.address === vip(5))?.flags).toEqual(['sh-fallback', 'sh-port']);
    expect(distinct(await fromManyPorts(5))).toEqual(['rs1']);
    // The same service without the flag: the ports whose hash lands on rs2's
    // bucket are refused by the director (no destination available).
    expect(distinct(await fromManyPorts(6))).toEqual(['', 'rs1']);
  });

  it("scheduler-flags = [ 'mh-port' ]: the same with mh", async () => {
    expect(await rules()).toContain(`-A -t ${vip(7)}:80 -s mh -b mh-port`);
    expect(distinct(await fromManyPorts(7))).toEqual(['rs1', 'rs2']);
    expect(await rules()).toContain(`-A -t ${vip(8)}:80 -s mh`);
    expect(distinct(await fromManyPorts(8))).toEqual([expect.stringMatching(/^rs[12]$/)]);
  });

  it('mh-fallback = yes: once rs2\'s weight is edited to 0, connections that hash to it go to rs1; without the flag they find no server', async () => {
    expect(await rules()).toContain(`-A -t ${vip(9)}:80 -s mh -b mh-fallback,mh-port`);
    expect(await rules()).toContain(`-A -t ${vip(10)}:80 -s mh -b mh-port`);
    // Both servers serve both services first.
    expect(distinct(await fromManyPorts(9))).toEqual(['rs1', 'rs2']);
    expect(distinct(await fromManyPorts(10))).toEqual(['rs1', 'rs2']);
    // The operator drains rs2 in the pool files. mh keeps a drained server's
    // place in its table (the kernel remembers its last weight above 0), so
    // the connections that hash to it need the fallback to find another.
    for (const s of [mhFallback, mhNoFallback]) conf.writePool(s.name, conf.realServerEntries({ rs2: { weight: 0 } }));
    const rs2 = lab.addr.realServers.find((r) => r.name === 'rs2')!.v4!;
    await waitFor(
      async () => {
        const now = await rules();
        return [9, 10].every((i) => now.includes(`-a -t ${vip(i)}:80 -r ${rs2}:80 -g -w 0`)) ? true : undefined;
      },
      { timeoutMs: 20_000, what: 'rs2 at weight 0 in both mh services' },
    );
    expect(distinct(await fromManyPorts(9))).toEqual(['rs1']);
    expect(distinct(await fromManyPorts(10))).toEqual(['', 'rs1']);
  });
});
