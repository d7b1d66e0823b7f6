// End to end (pybal import): each guide setup of test/import/fixtures/guides,
// as keepalived and as ldirectord write it, is converted by the built
// `pybal import` in director1, run by the built daemon, and balances a
// client's traffic through the VIP; then one real server fails, leaves the
// pool, and comes back.
//
// The guides use the lab's own addresses (VIP 203.0.113.1, real servers
// 198.51.100.11-13), so their text is converted as it is, except the UDP
// guide's check script, replaced by one that exists here (see udpCheck).
//
// Two labs: one whose real servers answer HTTP on 80 and UDP on 5001 (the
// web, firewall-mark and UDP guides), one answering HTTP on 22136 (the
// weights guide). No BGP: a converted pybal.conf has bgp = no, and the
// router reaches the VIP by a static route, as VRRP or heartbeat left it.
//
// No timing bound is asserted: failures are waited for with deadlines that
// cover each guide's interval × fall (keepalived's TCP_CHECK: 10 s × 2).
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { convertGuide, GUIDE_REAL_SERVERS, GUIDE_VIP, GUIDES, guideText, type Guide, type Setup } from '../import/guides.js';
import { waitFor } from '../lab/exec.js';
import type { IpvsServiceEntry } from '../lab/ipvsadm.js';
import { IPTABLES_MODULES, appendMangleRules } from '../lab/iptables.js';
import { loadGuestModules, parseCurlAnswer, startLab, type HttpAnswer, type Lab } from '../lab/lab.js';
import { GUEST_NO_AVX_ENV, repoRoot } from '../lab/uml.js';
import { E2ePybal } from './pybal-lab.js';

const UDP_PORT = 5001;
const TCP_PORT = 22136;
/** Extra client addresses, so that persistence has more than one client to keep apart. */
const CLIENT_SOURCES = ['192.0.2.10', '192.0.2.11', '192.0.2.12'] as const;

const guidesOf = (setup: Setup): Guide[] => GUIDES.filter((g) => g.setup === setup);
const nameOf = (lab: Lab, ip: string): string => lab.addr.realServers.find((r) => r.v4 === ip)?.name ?? ip;
const sorted = (list: readonly string[]): string[] => [...list].sort();

/** The service of director1's IPVS table that `pick` chooses. */
async function ipvsService(lab: Lab, pick: (s: IpvsServiceEntry) => boolean): Promise<IpvsServiceEntry | undefined> {
  return (await lab.ipvsTable()).find(pick);
}

const byAddress =
  (protocol: 'tcp' | 'udp', port: number) =>
  (s: IpvsServiceEntry): boolean =>
    s.protocol === protocol && s.address === GUIDE_VIP && s.port === port;
const byMark =
  (mark: number) =>
  (s: IpvsServiceEntry): boolean =>
    s.protocol === 'fwm' && s.fwmark === mark;

/** What the latest monitor report in pybal's log says of the server at `ip`: 'up', 'down', or undefined before its first. */
function latestReport(log: string, ip: string): 'up' | 'down' | undefined {
  let latest: 'up' | 'down' | undefined;
  const report = new RegExp(`\\[\\S+ ${ip.replaceAll('.', '\\.')} \\S+\\] [A-Z]+: (up|down): `);
  for (const line of log.split('\n')) {
    const m = report.exec(line);
    if (m) latest = m[1] as 'up' | 'down';
  }
  return latest;
}

/** Waits until the service holds exactly `want` (addresses); a timeout says what it held. */
function waitForDestinations(lab: Lab, pick: (s: IpvsServiceEntry) => boolean, want: readonly string[], what: string, timeoutMs = 30_000): Promise<IpvsServiceEntry> {
  return waitFor(
    async () => {
      const service = await ipvsService(lab, pick);
      const have = sorted(service?.destinations.map((d) => d.address) ?? []);
      if (service !== undefined && JSON.stringify(have) === JSON.stringify(sorted(want))) return service;
      throw new Error(`IPVS has ${service === undefined ? 'no such service' : JSON.stringify(have)}`);
    },
    { timeoutMs, what },
  );
}

/**
 * Converts the guide's text with the built `pybal import`, in director1 as
 * an operator would, into a directory of the lab; the pool files go where
 * the converted pybal.conf says they are. Checks what the command said.
 */
async function importGuide(lab: Lab, guide: Guide, text: string): Promise<string> {
  const dir = resolve(lab.dir, `import-${guide.file}`);
  mkdirSync(dir, { recursive: true });
  const source = join(dir, guide.file);
  writeFileSync(source, text);
  const out = join(dir, 'out');
  const argv = ['node', 'dist/cli/pybal.js', 'import', source, '--out', out, '--pool-dir', join(out, 'pools')];
  if (guide.format === 'ldirectord' && guide.setup === 'fwmark') argv.push('--fwmark-ip', `1=${GUIDE_VIP}`);
  const r = await lab.execOk('director', argv, { cwd: repoRoot() });
  expect(r.stdout).toMatch(new RegExp(`^${source.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(${guide.format}\\): 1 service, 3 servers, `));
  // What pybal's own check says of the result, printed by the command.
  expect(r.stdout).toContain(`pybal check-config: ${join(out, 'pybal.conf')}: OK`);
  return join(out, 'pybal.conf');
}

async function stopAndClear(lab: Lab | undefined, pybal: E2ePybal | undefined): Promise<void> {
  if (lab === undefined) return;
  if (pybal !== undefined && pybal.process.running) expect(await pybal.terminate()).toBe(0);
  // pybal leaves its services in IPVS when it stops; the next guide starts from an empty table.
  await lab.ipvsadm(['-C']);
  for (const rs of lab.realServers) await rs.setBehaviour({ mode: 'ok' });
}

/** One GET from a given client source address (curl --interface). */
async function getFrom(lab: Lab, source: string, url: string): Promise<HttpAnswer> {
  return parseCurlAnswer(await lab.client.exec(['curl', '-sS', '-i', '--globoff', '-m', '3', '--interface', source, url], { timeoutMs: 10_000 }));
}

/**
 * The UDP guide's check, for real: sends one datagram to the address and
 * port it gets last (keepalived passes ADDRESS PORT, ldirectord VIP VPORT
 * ADDRESS PORT) and exits 0 when an answer comes within 3 s. It doubles
 * as the client, printing the answer (the real server's name first). Not 1 s:
 * in a CI guest sharing the host's two CPUs with another, an answer took over
 * 1 s once, and the test read it as a datagram sent to the depooled server.
 */
const UDP_CHECK_SCRIPT = `import dgram from 'node:dgram';
const [host, port] = process.argv.slice(-2);
const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
const timer = setTimeout(() => { process.stderr.write('no answer from ' + host + ':' + port + '\\n'); process.exit(1); }, 3000);
socket.on('message', (message) => { clearTimeout(timer); process.stdout.write(message.toString() + '\\n'); process.exit(0); });
socket.on('error', (error) => { process.stderr.write(error.message + '\\n'); process.exit(1); });
socket.send('check', Number(port), host);
`;

/**
 * The command line the guides' /usr/local/bin/udp-check becomes here. RunCommand
 * runs commands with an empty environment, and in the lab guest a program
 * without GUEST_NO_AVX_ENV may crash (test/lab/README.md): env sets it first.
 */
function udpCheck(lab: Lab): { command: string; script: string } {
  const script = join(resolve(lab.dir), 'udp-check.mjs');
  writeFileSync(script, UDP_CHECK_SCRIPT);
  chmodSync(script, 0o755);
  const env = Object.entries(GUEST_NO_AVX_ENV).map(([k, v]) => `${k}=${v}`);
  return { command: ['/usr/bin/env', ...env, process.execPath, script].join(' '), script };
}


describe('e2e: pybal import, the web, firewall-mark and UDP guides', () => {
  let lab: Lab;
  let pybal: E2ePybal | undefined;
  const all = [...GUIDE_REAL_SERVERS];

  beforeAll(async () => {
    lab = await startLab({ realServers: 3, forwarding: 'dr', router: 'none', families: [4], realServer: { http: 80, udp: UDP_PORT } });
    expect(lab.addr.vips[0]?.v4).toBe(GUIDE_VIP);
    expect(lab.addr.realServers.map((r) => r.v4)).toEqual(all);
    // The firewall-mark guide: marks HTTP and HTTPS to the VIP with 1, as its iptables rules do.
    // Legacy iptables: the guest's nf_tables has no ip family (test/lab/iptables.ts).
    await loadGuestModules([...IPTABLES_MODULES]);
    await appendMangleRules(lab, 'director', 4, [
      ['PREROUTING', '-d', GUIDE_VIP, '-p', 'tcp', '-m', 'multiport', '--dports', '80,443', '-j', 'MARK', '--set-mark', '1'],
    ]);
    // More client addresses, for persistence to keep apart.
    for (const source of CLIENT_SOURCES.slice(1)) await lab.execOk('client', ['ip', 'addr', 'add', `${source}/24`, 'dev', 'eth0']);
  }, 120_000);

  // Also after a failed test, so that the next guide starts from a clean director.
  afterEach(async () => {
    await stopAndClear(lab, pybal);
    pybal = undefined;
  });

  afterAll(async () => {
    await lab?.stop();
  });

  for (const guide of guidesOf('web-dr')) {
    it(`${guide.file}: the three servers answer through the VIP; one whose page lacks "I'm alive!" is depooled`, async () => {
      const alive = { mode: 'body' as const, body: "<html><body>I'm alive!</body></html>\n" };
      for (const rs of lab.realServers) await rs.setBehaviour(alive);
      const conf = await importGuide(lab, guide, guideText(guide));
      pybal = E2ePybal.start(lab, conf, { name: `pybal-${guide.file}` });
      const service = await waitForDestinations(lab, byAddress('tcp', 80), all, 'the three real servers in IPVS');
      expect(service).toMatchObject({ scheduler: 'rr', ops: false });
      expect(service.destinations.every((d) => d.forward === 'route' && d.weight === 1 && d.port === 80)).toBe(true);
      expect(new Set(await lab.client.servedBy(lab.vipUrl(4, '/alive.html'), 6))).toEqual(new Set(['rs1', 'rs2', 'rs3']));

      // rs2 still answers 200, but its page no longer says "I'm alive!".
      const [rs1, rs2, rs3] = all as [string, string, string];
      await lab.realServer('rs2').setBehaviour({ mode: 'ok' });
      await waitForDestinations(lab, byAddress('tcp', 80), [rs1, rs3], 'rs2 depooled for its page', 60_000);
      expect(new Set(await lab.client.servedBy(lab.vipUrl(4, '/alive.html'), 4))).toEqual(new Set(['rs1', 'rs3']));
      await lab.realServer('rs2').setBehaviour(alive);
      await waitForDestinations(lab, byAddress('tcp', 80), [rs1, rs2, rs3], 'rs2 back', 60_000);
    }, 180_000);
  }

  for (const guide of guidesOf('fwmark')) {
    it(`${guide.file}: firewall mark 1 is balanced per client and persistent; a failed server's clients move`, async () => {
      const conf = await importGuide(lab, guide, guideText(guide));
      pybal = E2ePybal.start(lab, conf, { name: `pybal-${guide.file}` });
      const service = await waitForDestinations(lab, byMark(1), all, 'the three real servers under mark 1');
      expect(service).toMatchObject({ scheduler: 'wlc', persistentSec: 600 });
      expect(service.destinations.every((d) => d.forward === 'route')).toBe(true);

      // Each client address keeps its real server; different clients are spread.
      const url = lab.vipUrl(4, '/');
      const serverOf = new Map<string, string>();
      for (const source of CLIENT_SOURCES) {
        const answers: (string | undefined)[] = [];
        for (let i = 0; i < 3; i++) answers.push((await getFrom(lab, source, url)).servedBy);
        expect(answers.every((a) => a !== undefined && a === answers[0]), `${source} answered by ${answers.join(', ')}`).toBe(true);
        serverOf.set(source, answers[0] as string);
      }
      expect(new Set(serverOf.values()).size).toBeGreaterThanOrEqual(2);

      // The first client's server fails: pybal depools it and that client gets another.
      const victim = serverOf.get(CLIENT_SOURCES[0]) as string;
      const victimIp = lab.addr.realServers.find((r) => r.name === victim)?.v4 as string;
      await lab.realServer(victim).setBehaviour({ mode: 'down' });
      await waitForDestinations(lab, byMark(1), all.filter((a) => a !== victimIp), `${victim} depooled`, 60_000);
      const moved = await waitFor(
        async () => {
          const answer = await getFrom(lab, CLIENT_SOURCES[0], url);
          if (answer.status === 200 && answer.servedBy !== undefined && answer.servedBy !== victim) return answer.servedBy;
          throw new Error(`answered ${answer.status ?? `curl exit ${answer.curlExit}`} by ${answer.servedBy ?? 'nobody'}`);
        },
        { timeoutMs: 15_000, what: `${CLIENT_SOURCES[0]} served by another server than ${victim}` },
      );
      expect(moved).not.toBe(victim);
      await lab.realServer(victim).setBehaviour({ mode: 'ok' });
      await waitForDestinations(lab, byMark(1), all, `${victim} back`, 60_000);
    }, 180_000);
  }

  for (const guide of guidesOf('udp-command')) {
    it(`${guide.file}: UDP datagrams are balanced; a server that stops answering the check is depooled`, async () => {
      const check = udpCheck(lab);
      const text = guideText(guide).replaceAll('/usr/local/bin/udp-check', check.command);
      // The check command is carried over with the server's address as server.ip.
      expect(convertGuide(guide, { text }).conf).toContain(`runcommand.command = /usr/bin/env\n`);
      const conf = await importGuide(lab, guide, text);
      const started = E2ePybal.start(lab, conf, { name: `pybal-${guide.file}` });
      pybal = started;
      // Pooled from the start, then as their first checks say: a check is a process (node)
      // that can take longer than the guide's 3 s to start in a busy guest, once, and its
      // server is depooled until the next. Balancing is asked of once every server's latest
      // check said up (a CI run asked as rs2's first check timed out: rs1 and rs3 answered).
      await waitFor(
        async () => {
          const latest = all.map((ip) => latestReport(started.log(), ip));
          if (latest.every((r) => r === 'up')) return true;
          throw new Error(`the servers' latest checks: ${latest.join(', ')}`);
        },
        { timeoutMs: 60_000, what: 'every server checked up' },
      );
      const service = await waitForDestinations(lab, byAddress('udp', UDP_PORT), all, 'the three real servers in IPVS');
      expect(service).toMatchObject({ scheduler: 'rr' });

      const ask = async (): Promise<string | undefined> => {
        const r = await lab.client.exec([process.execPath, check.script, GUIDE_VIP, String(UDP_PORT)], { timeoutMs: 10_000 });
        return r.code === 0 ? r.stdout.split(' ')[0] : undefined;
      };
      const answers: (string | undefined)[] = [];
      for (let i = 0; i < 6; i++) answers.push(await ask());
      expect(new Set(answers)).toEqual(new Set(['rs1', 'rs2', 'rs3']));

      const [rs1, rs2, rs3] = all as [string, string, string];
      await lab.realServer('rs3').setBehaviour({ mode: 'down' });
      await waitForDestinations(lab, byAddress('udp', UDP_PORT), [rs1, rs2], 'rs3 depooled', 60_000);
      const after: (string | undefined)[] = [];
      for (let i = 0; i < 4; i++) after.push(await ask());
      expect(new Set(after)).toEqual(new Set(['rs1', 'rs2']));
      await lab.realServer('rs3').setBehaviour({ mode: 'ok' });
      await waitForDestinations(lab, byAddress('udp', UDP_PORT), [rs1, rs2, rs3], 'rs3 back', 60_000);
    }, 180_000);
  }
});

describe('e2e: pybal import, the TCP 22136 guide with weights 1000/500/800', () => {
  let lab: Lab;
  let pybal: E2ePybal | undefined;
  const all = [...GUIDE_REAL_SERVERS];

  beforeAll(async () => {
    lab = await startLab({ realServers: 3, forwarding: 'dr', router: 'none', families: [4], realServer: { http: TCP_PORT } });
  }, 120_000);

  // Also after a failed test, so that the next guide starts from a clean director.
  afterEach(async () => {
    await stopAndClear(lab, pybal);
    pybal = undefined;
  });

  afterAll(async () => {
    await lab?.stop();
  });

  for (const guide of guidesOf('tcp-weights')) {
    it(`${guide.file}: wrr gives the servers 10, 5 and 8 of every 23 connections; a closed port is depooled`, async () => {
      const conf = await importGuide(lab, guide, guideText(guide));
      pybal = E2ePybal.start(lab, conf, { name: `pybal-${guide.file}` });
      const service = await waitForDestinations(lab, byAddress('tcp', TCP_PORT), all, 'the three real servers in IPVS');
      expect(service.scheduler).toBe('wrr');
      expect(Object.fromEntries(service.destinations.map((d) => [nameOf(lab, d.address), d.weight]))).toEqual({ rs1: 1000, rs2: 500, rs3: 800 });

      // wrr cycles through 23 picks (weights over their gcd, 100): any 23 new connections in a row split 10/5/8.
      const url = `http://${GUIDE_VIP}:${TCP_PORT}/`;
      const served = await lab.client.servedBy(url, 23);
      const counts: Record<string, number> = {};
      for (const s of served) counts[s ?? 'failed'] = (counts[s ?? 'failed'] ?? 0) + 1;
      expect(counts).toEqual({ rs1: 10, rs2: 5, rs3: 8 });

      const [rs1, , rs3] = all as [string, string, string];
      await lab.realServer('rs2').setBehaviour({ mode: 'down' });
      await waitForDestinations(lab, byAddress('tcp', TCP_PORT), [rs1, rs3], 'rs2 depooled', 60_000);
      const after = await lab.client.servedBy(url, 6);
      expect(after.every((s) => s === 'rs1' || s === 'rs3')).toBe(true);
      await lab.realServer('rs2').setBehaviour({ mode: 'ok' });
      await waitForDestinations(lab, byAddress('tcp', TCP_PORT), all, 'rs2 back', 60_000);
    }, 180_000);
  }
});
