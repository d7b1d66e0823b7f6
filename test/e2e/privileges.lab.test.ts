// End to end: pybal runs with the least privilege the packaged unit gives it
// (User=pybal with CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE as
// ambient capabilities, nothing else in the bounding set, no new privileges),
// and still does every job: IPVS programmed and reconciled, the BGP session
// up and its listener on port 179, BFD on port 3784, the sync daemon started,
// Ping checks through fping. Here the user is nobody (65534), set by setpriv
// exactly as systemd would. The control: without CAP_NET_ADMIN, IPVS is
// refused and pybal says so, naming the capability.
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import type { BirdDaemon } from '../lab/routers/bird.js';
import { E2eConfig, E2ePybal, proxyFetchLines, type E2eService } from './pybal-lab.js';

const CAPS = ['net_admin', 'net_raw', 'net_bind_service'];
const asNobody = (caps: readonly string[]): string[] => {
  const set = ['-all', ...caps.map((c) => `+${c}`)].join(',');
  return ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', `--inh-caps=${set}`, `--ambient-caps=${set}`, `--bounding-set=${set}`, '--no-new-privs'];
};

describe('e2e: pybal as an unprivileged user with three capabilities', () => {
  let lab: Lab;
  let conf: E2eConfig;
  let pybal: E2ePybal;
  let socketDir: string;
  const web: E2eService = { name: 'web', vipIndex: 0, extra: proxyFetchLines() };
  const pinged: E2eService = { name: 'pinged', vipIndex: 1, extra: ["monitors = [ 'Ping' ]", 'ping.interval = 1'] };

  beforeAll(async () => {
    lab = await startLab({ realServers: 2, router: 'bird', vipRoute: 'bgp', families: [4], vips: 2, routerBfd: { intervalMs: 100, multiplier: 3 } });
    conf = new E2eConfig(lab);
    for (const s of [web, pinged]) conf.writePool(s.name, conf.realServerEntries());
    conf.write([web, pinged], { globalExtra: ['bgp-bfd = yes', 'ipvs-sync-daemon = master', 'ipvs-sync-interface = eth0'] });
    // What the packaged unit gives the pybal user: its config readable, a runtime directory of its own.
    await lab.execOk('director', ['chmod', '-R', 'a+rX', lab.dir]);
    socketDir = join(lab.runDir, 'pybal-run');
    mkdirSync(socketDir, { recursive: true });
    chmodSync(socketDir, 0o1777);
    pybal = E2ePybal.start(lab, conf.file, { runAs: asNobody(CAPS), socketDir });
  }, 120_000);

  afterAll(async () => {
    await lab?.stop();
  });

  it('runs as uid 65534 with exactly those capabilities', async () => {
    const pid = await waitFor(async () => (await lab.execOk('director', ['pgrep', '-f', `control-socket ${socketDir}`])).stdout.trim().split('\n')[0] || undefined, {
      what: "pybal's pid",
    });
    const status = (await lab.execOk('director', ['cat', `/proc/${pid}/status`])).stdout;
    expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe('65534');
    // CAP_NET_BIND_SERVICE 10, CAP_NET_ADMIN 12, CAP_NET_RAW 13: 0x3400.
    expect(/^CapEff:\s+([0-9a-f]+)/m.exec(status)?.[1]).toBe('0000000000003400');
    expect(/^CapBnd:\s+([0-9a-f]+)/m.exec(status)?.[1]).toBe('0000000000003400');
    expect(/^NoNewPrivs:\s+(\d)/m.exec(status)?.[1]).toBe('1');
  });

  it('programs IPVS and keeps both services with their servers, the Ping-checked one included', async () => {
    await waitFor(
      async () => {
        const table = await lab.ipvsTable();
        return table.length === 2 && table.every((s) => s.destinations.length === 2) ? true : undefined;
      },
      { timeoutMs: 40_000, what: 'both services with both servers' },
    );
    const status = await pybal.status();
    for (const s of status.services) expect(s.servers.every((x) => x.up && x.pooled), s.name).toBe(true);
    // The client reaches the VIP through the router, over the route pybal announces.
    await lab.router.waitForRoute(`${lab.addr.vips[0]!.v4}/32`, { timeoutMs: 30_000 });
    expect((await lab.client.servedBy(lab.vipUrl(4, '/', 0), 2)).sort()).toEqual(['rs1', 'rs2']);
  });

  it('announces over BGP with its listener on port 179, and BFD on 3784 is up at the router', async () => {
    await lab.router.waitForRoute(`${lab.addr.vips[0]!.v4}/32`, { timeoutMs: 30_000 });
    const listening = (await lab.execOk('director', ['ss', '-ltnuH'])).stdout;
    expect(listening).toMatch(/:179\s/);
    expect(listening).toMatch(/:3784\s/);
    await waitFor(async () => ((await (lab.router as BirdDaemon).bfdSessions()).some((s) => s.state === 'Up') ? true : undefined), {
      timeoutMs: 15_000,
      what: 'BFD up at BIRD',
    });
  });

  it('starts the IPVS sync daemon', async () => {
    await waitFor(async () => ((await lab.ipvsadm(['-L', '--daemon'])).includes('master sync daemon (mcast=eth0') ? true : undefined), { what: 'the master daemon' });
    expect(pybal.log()).not.toMatch(/EPERM|EACCES/);
  });

  it('control: without CAP_NET_ADMIN it cannot touch IPVS and says which capability is missing', async () => {
    pybal.process.signal('SIGTERM');
    await pybal.process.exited;
    await lab.ipvsadm(['-C']);
    const weak = E2ePybal.start(lab, conf.file, { runAs: asNobody(['net_raw', 'net_bind_service']), socketDir, name: 'weak' });
    const line = await waitFor(async () => weak.log().split('\n').find((l) => l.includes('IPVS reconcile failed')), { timeoutMs: 20_000, what: 'the error' });
    expect(line).toMatch(/EPERM.*CAP_NET_ADMIN/);
    expect(await lab.ipvsTable()).toEqual([]);
    weak.process.signal('SIGTERM');
    await weak.process.exited;
  });
});
