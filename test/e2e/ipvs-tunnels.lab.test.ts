// End to end: the tunnels pybal.conf can ask for, proven with client traffic.
// The daemon runs in director1 of a DR lab (two real servers holding the VIPs
// on lo, as LVS-TUN real servers do) with three services:
//   [ipip] tunneling = yes (newer PyBal's key), which must mean IPIP: pybal
//          used to ignore it and program direct routing, and real servers
//          that expect IPIP then dropped every request;
//   [gue]  tunnel-type = gue, tunnel-port = 6080, tunnel-checksum = csum;
//   [gre]  tunnel-type = gre, tunnel-checksum = csum.
// Every real server is a tunnel endpoint that takes a VIP only through a
// tunnel: tunl0 (the ipip module's catch-all device) is up, a fou port feeds
// GUE to it, a GRE device takes checksummed GRE only (`icsum`: the kernel
// drops GRE without a checksum there), and an iptables rule drops any packet
// for a VIP that arrives on eth0 untunnelled. Other rules count the outer
// packets by encapsulation and checksum, so each test sees both that the
// client was served and how its packets reached the real server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import { loadGuestModules, startLab, type Lab } from '../lab/lab.js';
import { IPTABLES_MODULES, appendMangleRules, mangleCounters } from '../lab/iptables.js';
import { E2eConfig, E2ePybal, proxyFetchLines, type E2eService } from './pybal-lab.js';

const GUE_PORT = 6080;
/** Requests per check: rr gives each of the two real servers two. */
const REQUESTS = 4;

/** The real server's end of the tunnels, and the mangle rules that count how VIP traffic arrives (by comment). */
function realServerSetup(lab: Lab, rsAddress: string): { commands: string[][]; rules: string[][] } {
  const count = (name: string, ...match: string[]): string[] => ['PREROUTING', ...match, '-m', 'comment', '--comment', name];
  // u32 (offsets from the transport header, `0>>22&0x3C@`): UDP bytes 6-7 are
  // its checksum; GUE starts at UDP byte 8, and the first bit of the word
  // after its 4-byte header is the REMCSUM private flag when the header
  // carries private flags (without them that word is the inner IPv4 header,
  // whose first bit is 0); GRE's first bit is C, checksum present.
  const th = '0>>22&0x3C@';
  return {
    commands: [
      ['ip', 'link', 'set', 'tunl0', 'up'],
      ['ip', 'fou', 'add', 'port', String(GUE_PORT), 'gue'],
      ['ip', 'link', 'add', 'grecsum', 'type', 'gre', 'local', rsAddress, 'icsum'],
      ['ip', 'link', 'set', 'grecsum', 'up'],
      // Decapsulated requests come in on tunl0 or grecsum from the client's
      // address, which is routed out of eth0: no reverse-path filter.
      ['sysctl', '-q', '-w', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.tunl0.rp_filter=0', 'net.ipv4.conf.grecsum.rp_filter=0'],
    ],
    rules: [
      count('ipip', '-p', '4'),
      count('gue', '-p', 'udp', '--dport', String(GUE_PORT)),
      count('gue_csum', '-p', 'udp', '--dport', String(GUE_PORT), '-m', 'u32', '--u32', `${th}4&0xFFFF=1:0xFFFF`),
      count('gue_remcsum', '-p', 'udp', '--dport', String(GUE_PORT), '-m', 'u32', '--u32', `${th}12>>31=1`),
      count('gre', '-p', 'gre'),
      count('gre_csum', '-p', 'gre', '-m', 'u32', '--u32', `${th}0>>31=1`),
      ...lab.addr.vips.map((v) => [...count('untunnelled', '-i', 'eth0', '-d', v.v4!), '-j', 'DROP']),
      ...lab.addr.vips.map((v) => count('decapsulated', '-d', v.v4!)),
    ],
  };
}

type Counts = Record<string, number>;

describe('e2e: IPVS tunnels from pybal.conf carry client traffic', () => {
  let lab: Lab;
  let conf: E2eConfig;
  let pybal: E2ePybal;
  const vip = (i: number): string => lab.addr.vips[i]!.v4!;
  const rsNames = (): string[] => lab.addr.realServers.map((r) => r.name);

  const ipip: E2eService = { name: 'ipip', vipIndex: 0, forwardMethod: null, extra: ['tunneling = yes', ...proxyFetchLines()] };
  const gue = (checksum: string): E2eService => ({
    name: 'gue',
    vipIndex: 1,
    forwardMethod: 'tunnel',
    extra: ['tunnel-type = gue', `tunnel-port = ${GUE_PORT}`, `tunnel-checksum = ${checksum}`, ...proxyFetchLines()],
  });
  const gre: E2eService = { name: 'gre', vipIndex: 2, forwardMethod: 'tunnel', extra: ['tunnel-type = gre', 'tunnel-checksum = csum', ...proxyFetchLines()] };

  beforeAll(async () => {
    await loadGuestModules([...IPTABLES_MODULES, 'ipip', 'fou', 'ip_gre']);
    // A fourth VIP, which pybal does not serve, for the control below.
    lab = await startLab({ realServers: 2, forwarding: 'dr', router: 'none', families: [4], vips: 4 });
    for (const rs of lab.addr.realServers) {
      const setup = realServerSetup(lab, rs.v4!);
      for (const command of setup.commands) await lab.execOk(rs.name, command);
      await appendMangleRules(lab, rs.name, 4, setup.rules);
    }
    conf = new E2eConfig(lab);
    for (const s of [ipip, gue('csum'), gre]) conf.writePool(s.name, conf.realServerEntries());
    conf.write([ipip, gue('csum'), gre], { bgp: false });
    pybal = E2ePybal.start(lab, conf.file);
    await waitFor(
      async () => {
        const table = await lab.ipvsTable();
        return table.length === 3 && table.every((s) => s.destinations.length === 2) ? true : undefined;
      },
      { timeoutMs: 30_000, what: 'three tunnel services with both real servers' },
    );
  }, 90_000);

  afterAll(async () => {
    await lab?.stop();
  });

  /** Every real server's counters. */
  async function counts(): Promise<Record<string, Counts>> {
    return Object.fromEntries(await Promise.all(rsNames().map(async (name) => [name, await mangleCounters(lab, name)] as const)));
  }

  /** What each real server counted while `action` ran, by counter name. */
  async function countDuring(action: () => Promise<void>): Promise<Record<string, Counts>> {
    const before = await counts();
    await action();
    const after = await counts();
    return Object.fromEntries(
      rsNames().map((name) => [name, Object.fromEntries(Object.entries(after[name]!).map(([k, v]) => [k, v - (before[name]![k] ?? 0)]))]),
    );
  }

  /** REQUESTS GETs to a VIP: both real servers answer (each only through its tunnels). */
  async function servedByBoth(vipIndex: number): Promise<void> {
    const served = await lab.client.servedBy(lab.vipUrl(4, '/', vipIndex), REQUESTS);
    expect(served.sort()).toEqual(['rs1', 'rs1', 'rs2', 'rs2']);
  }

  /** The kernel's rules for a VIP's destinations (`ipvsadm -Sn`, e.g. `-i -w 10 --tun-type ipip`), by real server. */
  async function destRules(vipIndex: number): Promise<string[]> {
    const prefix = `-a -t ${vip(vipIndex)}:80 -r `;
    return (await lab.ipvsadm(['-Sn']))
      .split('\n')
      .filter((l) => l.startsWith(prefix))
      .map((l) => l.slice(prefix.length))
      .sort();
  }

  const rules = (suffix: string): string[] => lab.addr.realServers.map((r) => `${r.v4}:80 -i -w 10 ${suffix}`).sort();

  let controlDrops = 0;
  it('control: a real server set up so drops a VIP\'s packets delivered as direct routing delivers them', async () => {
    // The router hands the fourth VIP's packets straight to rs1 on the LAN,
    // as a DR director would: same frame, no tunnel.
    const rs1 = lab.addr.realServers[0]!;
    await lab.execOk('router', ['ip', 'route', 'replace', `${vip(3)}/32`, 'via', rs1.v4!]);
    const seen = await countDuring(async () => {
      const answer = await lab.client.get(lab.vipUrl(4, '/', 3), { timeoutMs: 2_000 });
      expect(answer.servedBy).toBeUndefined();
    });
    controlDrops = seen[rs1.name]!.untunnelled!;
    expect(controlDrops).toBeGreaterThan(0);
  });

  /**
   * REQUESTS through a VIP: both real servers answer, and each counted at
   * least its two requests' SYN and request packets as `outer` packets, each
   * of them also counted by the `all` counters (decapsulated, with a
   * checksum...), and no packet of the `none` kinds. Returns the counts.
   */
  async function servedThrough(vipIndex: number, outer: string, all: readonly string[], none: readonly string[]): Promise<Record<string, Counts>> {
    const seen = await countDuring(() => servedByBoth(vipIndex));
    for (const name of rsNames()) {
      const c = seen[name]!;
      expect(c[outer], `${name}: ${outer} packets`).toBeGreaterThanOrEqual(4);
      for (const k of ['decapsulated', ...all]) expect(c[k], `${name}: ${k} packets`).toBe(c[outer]);
      for (const k of none) expect(c[k], `${name}: ${k} packets`).toBe(0);
    }
    return seen;
  }

  it('tunneling = yes programs IPIP: the real servers, which take a VIP only through a tunnel, answer; every request came through tunl0', async () => {
    expect(await destRules(0)).toEqual(rules('--tun-type ipip'));
    const service = (await lab.ipvsTable()).find((s) => s.address === vip(0));
    expect(service?.destinations.map((d) => d.forward)).toEqual(['tunnel', 'tunnel']);
    await servedThrough(0, 'ipip', [], ['gue', 'gre']);
  });

  it('tunnel-type = gue with tunnel-port and tunnel-checksum = csum: GUE to the fou port, every datagram with a UDP checksum', async () => {
    expect(await destRules(1)).toEqual(rules(`--tun-type gue --tun-port ${GUE_PORT} --tun-csum`));
    await servedThrough(1, 'gue', ['gue_csum'], ['ipip', 'gre', 'gue_remcsum']);
  });

  it('tunnel-type = gre with tunnel-checksum = csum: checksummed GRE, the only GRE the real servers accept', async () => {
    expect(await destRules(2)).toEqual(rules('--tun-type gre --tun-csum'));
    await servedThrough(2, 'gre', ['gre_csum'], ['ipip', 'gue']);
  });

  it('a SIGHUP that changes the tunnels: the kernel follows and the client is still served, through the new encapsulation', async () => {
    // [ipip] becomes checksummed GRE (tunneling = yes stays), [gue] asks for remote checksum offload.
    const ipipAsGre: E2eService = { ...ipip, extra: ['tunneling = yes', 'tunnel-type = gre', 'tunnel-checksum = csum', ...proxyFetchLines()] };
    conf.write([ipipAsGre, gue('remcsum'), gre], { bgp: false });
    const mark = pybal.log().length;
    pybal.process.signal('SIGHUP');
    await waitFor(async () => pybal.logSince(mark).find((l) => l.includes('Configuration reloaded')), { timeoutMs: 20_000, what: 'the reload' });
    await waitFor(async () => (JSON.stringify(await destRules(0)) === JSON.stringify(rules('--tun-type gre --tun-csum')) ? true : undefined), {
      timeoutMs: 20_000,
      what: '[ipip] as GRE in the kernel',
    });
    expect(await destRules(1)).toEqual(rules(`--tun-type gue --tun-port ${GUE_PORT} --tun-remcsum`));

    await servedThrough(0, 'gre', ['gre_csum'], ['ipip', 'gue']);
    const viaGue = await servedThrough(1, 'gue', [], ['ipip', 'gre']);
    // The director adds the REMCSUM option only to packets whose checksum is
    // still to be computed (CHECKSUM_PARTIAL): the client's, forwarded over
    // veth, are, so some carry it (and none did with tunnel-checksum = csum).
    for (const name of rsNames()) expect(viaGue[name]!.gue_remcsum, `${name}: GUE datagrams with the REMCSUM option`).toBeGreaterThan(0);
    // The daemon carried on: one process, no restart.
    expect(pybal.process.running).toBe(true);
  });

  it('no packet for a VIP pybal serves ever reached a real server untunnelled', async () => {
    const untunnelled = Object.fromEntries(Object.entries(await counts()).map(([name, c]) => [name, c.untunnelled]));
    expect(untunnelled).toEqual({ rs1: controlDrops, rs2: 0 });
  });
});
