/**
 * Benchmark: announce 1,000 VIPs to BIRD and withdraw them, against GoBGP
 * announcing the same 1,000 routes to the same BIRD in the same run.
 *
 * Both speakers peer with one BIRD on loopback. Each is run the way an
 * operator runs it: GoBGP's gobgpd at `--log-level=info` with its log in a
 * file; our speaker logging at info (pino, text) to a file, as the daemon does.
 * BIRD, the common receiver, logs `all` classes to a file (Debian's default)
 * with no protocol `debug`. The header lines name the versions and the command
 * lines actually run.
 *
 * Each round, for each speaker:
 *   announce: the session is started with the 1,000 routes already loaded
 *     (ours: `start()` after `setAnnouncements`; GoBGP: routes added to its RIB
 *     while the neighbor is disabled, then `gobgp neighbor ... enable`). The
 *     time is read from BIRD's own millisecond timestamps: from the session
 *     reaching Established to the last of the 1,000 routes imported, so that
 *     neither speaker's reconnect timers count (GoBGP waits seconds before it
 *     dials after `enable`);
 *   withdraw: one command (ours: `setAnnouncements([])`; GoBGP:
 *     `gobgp global rib -a ipv4|ipv6 del all`, both at once), timed from the
 *     command until birdc shows none. GoBGP's includes its CLI round trip
 *     (about 10 ms), the way a daemon would have to drive it.
 * The VIPs are 500 IPv4 /32s from the documentation ranges and 500 IPv6 /128s
 * from 2001:db8::/32.
 *
 * Run: npm run bench:bgp. The last line is `bgp-announce-speedup X`, X being
 * GoBGP's time divided by ours (medians of announce + withdraw), both measured
 * in this run.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { hostPrefix, type Prefix } from '../src/bgp/address.js';
import { BgpSpeaker, type Route } from '../src/bgp/speaker.js';
import { createSystemClock } from '../src/runtime/clock.js';
import { createLogger, type LogHandle } from '../src/runtime/logger.js';
import { startRouter, waitFor, type Router } from '../test/bgp/routers.js';

const run = promisify(execFile);
const ROUNDS = Number(process.env.BGP_BENCH_ROUNDS ?? 5);
const BIRD_PORT = 17960;
const GOBGP_API = 27160;
const OURS = { name: 'speaker', address: '127.0.0.31', asn: 64600 };
const THEIRS = { name: 'gobgp', address: '127.0.0.32', asn: 64601 };
/** GoBGP's log level: what an operator runs it at. */
const GOBGP_LOG_LEVEL = 'info';

/** A program's version line (`bird --version` writes it to stderr). */
async function versionOf(file: string): Promise<string> {
  try {
    const { stdout, stderr } = await run(file, ['--version']);
    return (stdout + stderr).trim().split('\n')[0] ?? '?';
  } catch (err) {
    return `unknown (${file} --version failed: ${(err as Error).message.split('\n')[0]})`;
  }
}

/** A command line for the header: scratch paths shortened to their file names. */
const shown = (argv: readonly string[]): string => argv.map((a) => (a.startsWith(tmpdir()) ? basename(a) : a)).join(' ');

function vips(): Prefix[] {
  const v4 = ['192.0.2', '198.51.100'].flatMap((net) => Array.from({ length: 250 }, (_, i) => hostPrefix(`${net}.${i + 1}`)));
  const v6 = Array.from({ length: 500 }, (_, i) => hostPrefix(`2001:db8:2::${(i + 1).toString(16)}`));
  return [...v4, ...v6];
}

async function imported(bird: Router, protocol: string): Promise<number> {
  const { stdout } = await run('birdc', ['-s', join(bird.dir, 'bird.ctl'), 'show', 'protocols', 'all', protocol]);
  return [...stdout.matchAll(/Routes:\s+(\d+) imported/g)].reduce((n, m) => n + Number(m[1]), 0);
}

/** Runs `action` and polls BIRD until `protocol` has `count` routes; milliseconds from the start. */
async function timeUntil(bird: Router, protocol: string, count: number, action: () => Promise<unknown> | void): Promise<number> {
  const start = performance.now();
  const done = Promise.resolve(action());
  for (;;) {
    if ((await imported(bird, protocol)) === count) break;
    if (performance.now() - start > 60_000) throw new Error(`${protocol}: BIRD never reached ${count} routes`);
  }
  const elapsed = performance.now() - start;
  await done;
  return elapsed;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

/** BIRD's `HH:MM:SS.mmm` as milliseconds of the day. */
function birdTimeMs(text: string): number {
  const m = /^(\d+):(\d+):(\d+)\.(\d+)$/.exec(text);
  if (!m) throw new Error(`unexpected BIRD time ${text}`);
  return ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]);
}

/**
 * Waits until BIRD has `count` routes from `protocol`, then gives the time from
 * the session's Established (the protocol's "since") to the last route's import,
 * both by BIRD's clock.
 */
async function birdAnnounceMs(bird: Router, protocol: string, count: number): Promise<number> {
  await waitFor(`${protocol}: ${count} routes at BIRD`, async () => (await imported(bird, protocol)) === count, 120_000, 5);
  const ctl = join(bird.dir, 'bird.ctl');
  const proto = (await run('birdc', ['-s', ctl, 'show', 'protocols', protocol])).stdout;
  const since = new RegExp(`^${protocol}\\s+BGP\\s+\\S+\\s+up\\s+(\\S+)`, 'm').exec(proto)?.[1];
  if (!since) throw new Error(`no Established time for ${protocol} in:\n${proto}`);
  const table = (await run('birdc', ['-s', ctl, 'show', 'route', 'protocol', protocol], { maxBuffer: 16 * 1024 * 1024 })).stdout;
  const times = [...table.matchAll(new RegExp(`\\[${protocol} (\\d+:\\d+:\\d+\\.\\d+)`, 'g'))].map((m) => birdTimeMs(m[1] as string));
  if (times.length !== count) throw new Error(`${protocol}: ${times.length} route times for ${count} routes`);
  return Math.max(...times) - birdTimeMs(since);
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

async function main(): Promise<void> {
  let bird: Router | undefined;
  let gobgp: Router | undefined;
  let speaker: BgpSpeaker | undefined;
  let logDir: string | undefined;
  let speakerLog: LogHandle | undefined;
  try {
    const prefixes = vips();
    const routes: Route[] = prefixes.map((prefix) => ({
      prefix,
      nextHop: prefix.family === 4 ? '192.0.2.31' : '2001:db8:ffff::31',
      asPath: [OURS.asn],
      med: 0,
      communities: [],
    }));

    bird = await startRouter({ kind: 'bird', asn: 64512, routerId: '192.0.2.1', address: '127.0.0.1', port: BIRD_PORT, neighbors: [OURS, THEIRS] });
    gobgp = await startRouter({
      kind: 'gobgp',
      asn: THEIRS.asn,
      routerId: '192.0.2.32',
      address: THEIRS.address,
      port: -1,
      apiPort: GOBGP_API,
      neighbors: [{ name: 'bird', address: '127.0.0.1', asn: 64512, active: { port: BIRD_PORT } }],
      gobgpLogLevel: GOBGP_LOG_LEVEL,
    });
    logDir = await mkdtemp(join(tmpdir(), 'pybal-bgp-bench-'));
    speakerLog = await createLogger({ file: join(logDir, 'speaker.log'), format: 'text', level: 'info' });
    const logger = speakerLog.logger;
    const b = bird;
    const gobgpCli = (...args: string[]): Promise<unknown> => run('gobgp', ['-u', '127.0.0.1', '-p', String(GOBGP_API), ...args]);
    const established = (name: string): Promise<boolean> => b.established(name);
    const makeSpeaker = (): BgpSpeaker =>
      new BgpSpeaker({
        localAsn: OURS.asn,
        routerId: '192.0.2.31',
        holdTimeSec: 90,
        connectRetryMs: 500,
        families: [4, 6],
        peers: [{ address: '127.0.0.1', port: BIRD_PORT, localAddress: OURS.address }],
        clock: createSystemClock(),
        logger,
      });

    const [gobgpVersion, birdVersion] = await Promise.all([versionOf('gobgpd'), versionOf('bird')]);
    console.log(`bgp-bench: ${routes.length} VIPs (500 IPv4 /32, 500 IPv6 /128) announced to and withdrawn from one BIRD on loopback, ${ROUNDS} rounds, both speakers in this run`);
    console.log(`  compares with: GoBGP (${gobgpVersion}), as the speaker, run as: ${shown(gobgp.command)}`);
    console.log(
      `    eBGP AS ${THEIRS.asn} from ${THEIRS.address}, dials BIRD, ipv4-unicast + ipv6-unicast, hold 90 s, connect-retry 1 s, log at ${GOBGP_LOG_LEVEL} to a file; ` +
        'routes loaded with `gobgp global rib add` (gRPC, 16 at a time) while the neighbor is disabled, then `gobgp neighbor enable`; withdraw: `gobgp global rib -a ipv4|ipv6 del all`',
    );
    console.log(`  ours: BgpSpeaker in this process (node ${process.version}), eBGP AS ${OURS.asn} from ${OURS.address}, hold 90 s, logging at info (text) to a file`);
    console.log(`  receiver: BIRD (${birdVersion}), run as: ${shown(b.command)}; import all, export none, log all classes to a file, no protocol debug`);

    const results = { ours: { announce: [] as number[], withdraw: [] as number[] }, gobgp: { announce: [] as number[], withdraw: [] as number[] } };
    for (let round = 1; round <= ROUNDS; round++) {
      // Ours: a fresh speaker with the routes loaded, then start.
      const s = makeSpeaker();
      speaker = s;
      s.setAnnouncements(routes);
      await s.start();
      const oa = await birdAnnounceMs(b, OURS.name, routes.length);
      const ow = await timeUntil(b, OURS.name, 0, () => s.setAnnouncements([]));
      await s.shutdown('round done');
      await waitFor('our session down at BIRD', async () => !(await established(OURS.name)), 10_000);

      // GoBGP: neighbor disabled, routes loaded into its RIB, then enable.
      await gobgpCli('neighbor', '127.0.0.1', 'disable');
      await waitFor('the GoBGP session down at BIRD', async () => !(await established(THEIRS.name)), 10_000);
      await pool(routes, 16, (r) =>
        r.prefix.family === 4
          ? gobgpCli('global', 'rib', '-a', 'ipv4', 'add', `${r.prefix.address}/32`, 'nexthop', '192.0.2.32', 'origin', 'igp', 'med', '0')
          : gobgpCli('global', 'rib', '-a', 'ipv6', 'add', `${r.prefix.address}/128`, 'nexthop', '2001:db8:ffff::32', 'origin', 'igp', 'med', '0'),
      );
      await gobgpCli('neighbor', '127.0.0.1', 'enable');
      const ga = await birdAnnounceMs(b, THEIRS.name, routes.length);
      const gw = await timeUntil(b, THEIRS.name, 0, () =>
        Promise.all([gobgpCli('global', 'rib', '-a', 'ipv4', 'del', 'all'), gobgpCli('global', 'rib', '-a', 'ipv6', 'del', 'all')]),
      );

      results.ours.announce.push(oa);
      results.ours.withdraw.push(ow);
      results.gobgp.announce.push(ga);
      results.gobgp.withdraw.push(gw);
      console.log(`round ${round}: ours announce ${oa.toFixed(1)} ms, withdraw ${ow.toFixed(1)} ms; gobgp announce ${ga.toFixed(1)} ms, withdraw ${gw.toFixed(1)} ms`);
    }
    const ours = median(results.ours.announce) + median(results.ours.withdraw);
    const theirs = median(results.gobgp.announce) + median(results.gobgp.withdraw);
    console.log(`${routes.length} VIPs (500 IPv4 /32, 500 IPv6 /128) to ${birdVersion}, median of ${ROUNDS} rounds:`);
    console.log(`  ours:  announce ${median(results.ours.announce).toFixed(1)} ms + withdraw ${median(results.ours.withdraw).toFixed(1)} ms = ${ours.toFixed(1)} ms`);
    console.log(`  gobgp (${gobgpVersion}, --log-level=${GOBGP_LOG_LEVEL}): announce ${median(results.gobgp.announce).toFixed(1)} ms + withdraw ${median(results.gobgp.withdraw).toFixed(1)} ms = ${theirs.toFixed(1)} ms`);
    console.log(`bgp-announce-speedup ${(theirs / ours).toFixed(2)}`);
  } finally {
    speaker?.stop();
    await gobgp?.stop();
    await bird?.stop();
    await speakerLog?.close();
    if (logDir) await rm(logDir, { recursive: true, force: true });
  }
}

await main();
