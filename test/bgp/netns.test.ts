/**
 * As on a real director: the speaker runs in the director's network namespace
 * and peers on port 179 with routers in the router's namespace over a veth
 * link: BIRD over IPv4 (BIRD dials too, so connections collide) and GoBGP
 * over IPv6. It runs from the build (`npx tsc -p .`, which `npm test` does first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PeerStatus } from '../../src/bgp/speaker.js';
import { globalConfig, serviceConfig } from '../support/config-fixtures.js';
import { createNetnsPair, startRouter, waitFor, type NetnsPair, type Router } from './routers.js';

const SCRIPT = new URL('../../dist/test/bgp/netns-speaker.js', import.meta.url).pathname;

interface SpeakerProcess {
  request(cmd: object): Promise<Record<string, unknown>>;
  status(): Promise<PeerStatus[]>;
  kill(): Promise<void>;
}

async function spawnSpeaker(netns: string, input: object): Promise<SpeakerProcess> {
  const child: ChildProcess = spawn('ip', ['netns', 'exec', netns, process.execPath, SCRIPT, JSON.stringify(input)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    const w = waiters.shift();
    if (w) w(line);
    else lines.push(line);
  });
  const next = (): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const line = lines.shift();
      if (line !== undefined) return resolve(JSON.parse(line) as Record<string, unknown>);
      const timer = setTimeout(() => reject(new Error('the speaker process did not answer')), 10_000);
      waiters.push((l) => {
        clearTimeout(timer);
        resolve(JSON.parse(l) as Record<string, unknown>);
      });
    });
  expect(await next()).toEqual({ started: true });
  const request = async (cmd: object): Promise<Record<string, unknown>> => {
    child.stdin?.write(JSON.stringify(cmd) + '\n');
    return next();
  };
  return {
    request,
    status: async () => (await request({ cmd: 'status' })).status as PeerStatus[],
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

describe('speaker in the director namespace, routers across a veth link on port 179', () => {
  let pair: NetnsPair | undefined;
  let bird: Router | undefined;
  let gobgp: Router | undefined;
  let speaker: SpeakerProcess | undefined;

  const services = [
    serviceConfig('web', '198.51.100.1', { bgpWithdrawWhenDown: true, bgpMed: 100 }),
    serviceConfig('web6', '2001:db8:2::1', { bgpWithdrawWhenDown: true }),
  ];

  beforeAll(async () => {
    if (!existsSync(SCRIPT)) throw new Error(`${SCRIPT} is missing: build first with npx tsc -p .`);
    pair = await createNetnsPair('bgp');
    const p = pair;
    bird = await startRouter({
      kind: 'bird',
      asn: 64512,
      routerId: '192.0.2.1',
      address: p.routerV4,
      port: 179,
      netns: p.router,
      neighbors: [{ name: 'speaker', address: p.speakerV4, asn: 64600, active: { port: 179 } }],
    });
    gobgp = await startRouter({
      kind: 'gobgp',
      asn: 64512,
      routerId: '192.0.2.1',
      address: p.routerV6,
      port: 179,
      netns: p.router,
      apiPort: 27140,
      neighbors: [{ name: 'speaker', address: p.speakerV6, asn: 64600 }],
    });
    speaker = await spawnSpeaker(p.speaker, {
      global: globalConfig({
        bgpPeerAddresses: [p.routerV4, p.routerV6],
        bgpPeerAsn: 64512,
        bgpNexthopIpv4: p.speakerV4,
        bgpNexthopIpv6: p.speakerV6,
        bgpHoldTimeSec: 9,
        bgpConnectRetryMs: 500,
      }),
      services,
    });
  }, 60_000);

  afterAll(async () => {
    await speaker?.kill();
    await bird?.stop();
    await gobgp?.stop();
    await pair?.destroy();
  });

  const seen = async (r: Router): Promise<string[]> => [...(await r.routes(4)).keys(), ...(await r.routes(6)).keys()].sort();
  const ALL = ['198.51.100.1/32', '2001:db8:2::1/128'];

  test('both sessions establish and both routers learn both VIPs with the speaker as next hop', async () => {
    const b = bird as Router;
    const g = gobgp as Router;
    await waitFor('BIRD to learn both VIPs', async () => (await seen(b)).join() === ALL.join(), 20_000);
    await waitFor('GoBGP to learn both VIPs', async () => (await seen(g)).join() === ALL.join(), 20_000);
    expect((await b.routes(4)).get('198.51.100.1/32')).toMatchObject({ nextHop: '192.0.2.2', med: 100, asPath: [64600] });
    expect((await g.routes(6)).get('2001:db8:2::1/128')).toMatchObject({ nextHop: '2001:db8::2', med: 0, asPath: [64600] });
    const status = await (speaker as SpeakerProcess).status();
    expect(status.map((s) => [s.peer, s.state, s.prefixesSent])).toEqual([
      ['192.0.2.1', 'Established', 2],
      ['2001:db8::1', 'Established', 2],
    ]);
    // BIRD sees the router ID the speaker derived from its only IPv4 address.
    const { execFileSync } = await import('node:child_process');
    const proto = execFileSync('birdc', ['-s', `${b.dir}/bird.ctl`, 'show', 'protocols', 'all', 'speaker'], { encoding: 'utf8' });
    expect(proto).toMatch(/Neighbor ID:\s+192\.0\.2\.2/);
  }, 30_000);

  test('a health change withdraws from both routers and a recovery announces again', async () => {
    const s = speaker as SpeakerProcess;
    await s.request({ cmd: 'health', service: 'web', healthy: false });
    await waitFor('the withdrawal', async () => (await seen(bird as Router)).join() === '2001:db8:2::1/128' && (await seen(gobgp as Router)).join() === '2001:db8:2::1/128');
    await s.request({ cmd: 'health', service: 'web', healthy: true });
    await waitFor('the VIP back', async () => (await seen(bird as Router)).join() === ALL.join() && (await seen(gobgp as Router)).join() === ALL.join());
    expect((await s.status()).map((p) => p.prefixesSent)).toEqual([2, 2]);
  }, 30_000);

  test('shutdown withdraws everything from both routers', async () => {
    expect(await (speaker as SpeakerProcess).request({ cmd: 'shutdown', reason: 'director maintenance' })).toEqual({ shutdown: true });
    await waitFor('every route gone', async () => (await seen(bird as Router)).length === 0 && (await seen(gobgp as Router)).length === 0);
    const log = await (bird as Router).log();
    expect(log).toMatch(/director maintenance/);
  }, 30_000);
});
