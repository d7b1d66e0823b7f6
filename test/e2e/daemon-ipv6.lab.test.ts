// End to end over IPv6: the built daemon in director1 with one IPv6 service
// (an IPv6 VIP, real servers by IPv6 address, direct routing), BGP sessions
// to BIRD over IPv4 and IPv6, and a client that reaches the VIP over IPv6.
// The IPv4 file (daemon.lab.test.ts) covers the daemon's behaviour in depth;
// this one proves that the same path holds for the other family: pool file,
// monitors, coordinator, IPVS, the /128 announcement and its withdrawal. It
// also runs with a short ipvs-resync-interval, to see drift repaired in time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import { CONTROL_SLACK_MS, DEPOOL_BOUND_MS, E2eConfig, E2ePybal, LAB_SLACK_MS, ipvsDestinations, proxyFetchLines, waitForIpvsDestinations, type E2eService } from './pybal-lab.js';

/** ipvs-resync-interval, in seconds. */
const RESYNC_SEC = 5;

describe('e2e: pybal with an IPv6 service', () => {
  let lab: Lab;
  let pybal: E2ePybal;
  let vip: string;
  let rs: { name: string; ip: string }[];
  let conf: E2eConfig;
  const web6: E2eService = { name: 'web6', family: 6, extra: [...proxyFetchLines(), 'bgp-withdraw-when-down = yes'] };
  const all = (): string[] => rs.map((r) => r.ip).sort();
  const ipOf = (name: string): string => rs.find((r) => r.name === name)!.ip;
  const dests = (): Promise<string[] | undefined> => ipvsDestinations(lab, 80, 0, 6);
  const prefix = (): string => `${vip}/128`;
  const fromDirector = (): ((r: { nextHop?: string | undefined }) => boolean) => (r) => r.nextHop === lab.addr.director.v6;

  beforeAll(async () => {
    lab = await startLab({ realServers: 2, forwarding: 'dr', router: 'bird', families: [4, 6] });
    vip = lab.addr.vip.v6!;
    rs = lab.addr.realServers.map((r) => ({ name: r.name, ip: r.v6! }));
    conf = new E2eConfig(lab);
    conf.writePool('web6', conf.realServerEntries({}, 6));
    conf.write([web6], { globalExtra: [`ipvs-resync-interval = ${RESYNC_SEC}`] });
    pybal = E2ePybal.start(lab, conf.file);
  }, 60_000);

  afterAll(async () => {
    await lab?.stop();
  });

  it('pools the IPv6 real servers, announces the /128 with the IPv6 next hop, and the client reaches both', async () => {
    await waitForIpvsDestinations(lab, all(), 'both IPv6 real servers in IPVS', { family: 6 });
    const service = (await lab.ipvsTable()).find((s) => s.address === vip);
    expect(service?.scheduler).toBe('rr');
    expect(service?.destinations.map((d) => [d.address, d.forward, d.weight]).sort()).toEqual(all().map((ip) => [ip, 'route', 10]));

    const route = await lab.router.waitForRoute(prefix(), { where: fromDirector(), timeoutMs: 20_000 });
    expect(route.asPath).toEqual([64600]);
    const served = await lab.client.servedBy(lab.vipUrl(6), 4);
    expect(new Set(served)).toEqual(new Set(['rs1', 'rs2']));

    expect(await pybal.apiJson('/pools/web6')).toEqual(Object.fromEntries(rs.map((r) => [r.ip, { pooled: true, weight: 10, up: true, enabled: true }])));
    expect(await pybal.statusCommand()).toContain(`web6  [${vip}]:80/tcp  scheduler rr`);
  });

  it('a real server that stops answering leaves IPVS within interval × fall + timeout + 1 s, and returns', async () => {
    const mark = pybal.log().length;
    const failedAt = Date.now();
    await lab.realServer('rs1').setBehaviour({ mode: 'down' });
    await waitFor(async () => ((await dests())?.includes(ipOf('rs1')) ? undefined : true), { timeoutMs: 20_000, what: 'rs1 out of IPVS' });
    const deletedAt = await pybal.waitLoggedAtMs(`IPVS: delete server TCP [${vip}]:80 -> [${ipOf('rs1')}]:80`, mark);
    const depoolMs = deletedAt - failedAt;
    console.log(`rs1 (down, IPv6) left IPVS ${depoolMs} ms after failing (bound ${DEPOOL_BOUND_MS} ms + ${CONTROL_SLACK_MS} ms to tell the server)`);
    expect(depoolMs).toBeLessThanOrEqual(DEPOOL_BOUND_MS + CONTROL_SLACK_MS);
    expect(await lab.client.servedBy(lab.vipUrl(6), 3)).toEqual(['rs2', 'rs2', 'rs2']);
    expect(await pybal.apiJson(`/pools/web6/${ipOf('rs1')}`)).toEqual({ pooled: false, weight: 10, up: false, enabled: true });

    await lab.realServer('rs1').setBehaviour({ mode: 'ok' });
    await waitFor(async () => ((await dests())?.includes(ipOf('rs1')) ? true : undefined), { timeoutMs: 20_000, what: 'rs1 back in IPVS' });
    await lab.client.waitForAnswer(lab.vipUrl(6), (a) => a.servedBy === 'rs1');
  });

  it('a server deleted by hand is logged as drift and put back within ipvs-resync-interval; a SIGHUP changes the interval', async () => {
    const mark = pybal.log().length;
    const deletedAt = Date.now(); // before ipvsadm runs: the measured delay can only be longer than the real one
    await lab.ipvsadm(['-d', '-t', `[${vip}]:80`, '-r', `[${ipOf('rs2')}]:80`]);
    await waitFor(async () => ((await dests())?.includes(ipOf('rs2')) ? true : undefined), { timeoutMs: 20_000, what: 'rs2 put back' });
    // Measured to the daemon's own log line of the repair (same clock), so that probing adds nothing.
    const repairedAt = await pybal.waitLoggedAtMs(`IPVS: add server TCP [${vip}]:80 -> [${ipOf('rs2')}]:80`, mark);
    const repairMs = repairedAt - deletedAt;
    console.log(`a server deleted by hand was back ${repairMs} ms later (bound ${RESYNC_SEC * 1000} ms + ${LAB_SLACK_MS} ms for ipvsadm and the resync itself)`);
    expect(repairMs).toBeLessThanOrEqual(RESYNC_SEC * 1000 + LAB_SLACK_MS);
    expect(pybal.logSince(mark).join('\n')).toContain(`IPVS drift: server TCP [${vip}]:80 -> [${ipOf('rs2')}]:80 is missing from the kernel; repairing`);

    const reloadMark = pybal.log().length;
    conf.write([web6], { globalExtra: ['ipvs-resync-interval = 3'] });
    pybal.process.signal('SIGHUP');
    await waitFor(async () => pybal.logSince(reloadMark).find((l) => l.includes('IPVS resync interval is now 3 s')), { what: 'the new interval taking effect' });
    expect(pybal.logSince(reloadMark).join('\n')).toContain('Configuration reloaded: 0 added, 0 removed, 0 changed, 1 unchanged');
  });

  it('SIGTERM withdraws the /128 within a second and leaves IPVS as it is', async () => {
    await lab.router.waitForRoute(prefix(), { where: fromDirector() });
    const termAt = Date.now();
    pybal.process.signal('SIGTERM');
    await lab.router.waitForNoRoute(prefix(), { where: fromDirector(), timeoutMs: 10_000 });
    const withdrawMs = Date.now() - termAt;
    console.log(`the IPv6 VIP left the router ${withdrawMs} ms after SIGTERM (bound 1000 ms + ${LAB_SLACK_MS} ms lab slack)`);
    expect(withdrawMs).toBeLessThanOrEqual(1_000 + LAB_SLACK_MS);
    expect((await pybal.process.exited).code).toBe(0);
    expect(await dests()).toEqual(all());
  });
});
