// Chaos (issue 10, "Proof"): routine operations never cause an outage.
//
// One lab (four real servers, DR, a BIRD router) and one pybal in director1
// running for minutes while, at random (seeded: the seed is printed, and
// PYBAL_CHAOS_SEED replays its choices; PYBAL_CHAOS_SEC sets the duration,
// 200 s by default):
//   - each real server flips between ok, slow under the timeout, refusing,
//     hanging, resetting and slow over the timeout;
//   - pybal gets SIGHUPs with an unchanged configuration and with changes
//     (ProxyFetch interval/timeout, scheduler, bgp-med, ipvs-resync-interval,
//     a second service added and removed);
//   - the pool file is edited (weights, a server disabled and enabled), and
//     for a few seconds replaced by a file where every line is invalid or by
//     one cut in the middle of a line;
//   - BIRD resets its session with director1, or is stopped and started again.
// Every second it samples the IPVS table, pybal's /status and BIRD's routes,
// and checks them against what it did (chaos-model.ts): (a) the pooled count
// never falls below the depool-threshold floor, (b) a server down longer than
// its bound is out of IPVS unless the threshold forces it, (c) a server up
// longer than its rise bound and enabled is in IPVS with the pool's weight,
// (d) every pool decision in pybal's log reaches the kernel within a second,
// (e) the VIPs are at the router (with the configured MED) except right after
// a BIRD restart, (f) pybal never restarts. Violations are collected, all
// printed, then expected to be none; the figures seen are printed too.
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Behaviour } from '../support/real-server.js';
import { waitFor } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import type { BirdDaemon } from '../lab/routers/bird.js';
import {
  ADD_BOUND_MS,
  ChaosRecord,
  Chooser,
  FALL,
  RISE,
  SLOW_FAIL_MS,
  SLOW_OK_MS,
  THRESHOLD,
  checkBgpSessions,
  checkDecisions,
  createRandom,
  parseLog,
  poolFloor,
  streamSeed,
  worstDelays,
  type ChaosConf,
  type Mode,
  type Sample,
} from './chaos-model.js';
import { API_PORT, E2ePybal, poolLine, type PoolEntry } from './pybal-lab.js';

const SEED = process.env.PYBAL_CHAOS_SEED !== undefined ? Number(process.env.PYBAL_CHAOS_SEED) : randomInt(2 ** 31);
const DURATION_MS = Number(process.env.PYBAL_CHAOS_SEC ?? 200) * 1_000;
const SAMPLE_EVERY_MS = 1_000;
/** After the chaos: everything healthy, still sampled, for this long. */
const SETTLE_MS = 12_000;

const EVENT_KINDS = [
  'hup-same',
  'hup-monitor',
  'hup-scheduler',
  'hup-med',
  'hup-resync',
  'hup-service',
  'pool-weights',
  'pool-toggle',
  'pool-invalid',
  'pool-cut',
  'bird-session',
  'bird-process',
] as const;
type EventKind = (typeof EVENT_KINDS)[number];

function behaviourOf(mode: Mode): Behaviour {
  switch (mode) {
    case 'slow-ok':
      return { mode: 'slow', delayMs: SLOW_OK_MS };
    case 'slow-fail':
      return { mode: 'slow', delayMs: SLOW_FAIL_MS };
    default:
      return { mode };
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

describe('e2e chaos: reloads, pool edits, failing servers and BIRD restarts never cause an outage', () => {
  let lab: Lab;
  let pybal: E2ePybal;
  let record: ChaosRecord;
  let confFile: string;
  let webPoolFile: string;
  let apiPoolFile: string;
  let birdRestarts = 0;
  const servers: { name: string; ip: string }[] = [];

  const confText = (c: ChaosConf): string => {
    const { director, router } = lab.addr;
    const section = (name: string, vip: string, pool: string, scheduler: string, intervalSec: number, timeoutSec: number): string =>
      [
        `[${name}]`,
        'protocol = tcp',
        `ip = ${vip}`,
        'port = 80',
        `scheduler = ${scheduler}`,
        `config = file://${pool}`,
        'forward-method = dr',
        `depool-threshold = ${THRESHOLD}`,
        "monitors = [ 'ProxyFetch' ]",
        "proxyfetch.url = [ 'http://localhost:80/' ]",
        `proxyfetch.interval = ${intervalSec}`,
        `proxyfetch.timeout = ${timeoutSec}`,
        `proxyfetch.fall = ${FALL}`,
        `proxyfetch.rise = ${RISE}`,
      ].join('\n');
    const global = [
      '[global]',
      'instrumentation = yes',
      `instrumentation_port = ${API_PORT}`,
      "instrumentation_ips = [ '127.0.0.1' ]",
      'bgp = yes',
      `bgp-local-asn = ${lab.options.directorAsn ?? 64600}`,
      `bgp-peer-address = ${router.v4}`,
      `bgp-nexthop-ipv4 = ${director.v4}`,
      'bgp-hold-time = 9',
      'bgp-connect-retry = 1',
      `bgp-med = ${c.med}`,
      `ipvs-resync-interval = ${c.resyncSec}`,
    ].join('\n');
    const sections = [global, section('web', record.web.vip, webPoolFile, c.scheduler, c.intervalSec, c.timeoutSec)];
    if (c.withApi) sections.push(section('api', record.api.vip, apiPoolFile, 'rr', 1, 1));
    return sections.join('\n\n') + '\n';
  };
  const poolText = (entries: readonly PoolEntry[]): string => entries.map(poolLine).join('\n') + '\n';
  const allServers = (): PoolEntry[] => servers.map((s) => ({ host: s.ip, weight: 10, enabled: true }));

  beforeAll(async () => {
    lab = await startLab({ realServers: 4, forwarding: 'dr', router: 'bird', families: [4], vips: 2 });
    servers.push(...lab.addr.realServers.map((r) => ({ name: r.name, ip: r.v4! })));
    record = new ChaosRecord(servers, { name: 'web', vip: lab.addr.vips[0]!.v4! }, { name: 'api', vip: lab.addr.vips[1]!.v4! }, lab.addr.director.v4!);
    confFile = join(lab.dir, 'pybal.conf');
    webPoolFile = join(lab.dir, 'pool-web');
    apiPoolFile = join(lab.dir, 'pool-api');
    writeFileSync(webPoolFile, poolText(allServers()));
    writeFileSync(apiPoolFile, poolText(allServers()));
    const conf: ChaosConf = { intervalSec: 1, timeoutSec: 1, scheduler: 'rr', med: 0, resyncSec: 60, withApi: false };
    writeFileSync(confFile, confText(conf));
    record.confs.push({ sentMs: 0, appliedMs: 0, conf, monitorsChanged: false });
    record.webPool.push({ atMs: 0, entries: allServers(), disables: false });
    pybal = E2ePybal.start(lab, confFile);
  }, 120_000);

  afterAll(async () => {
    await lab?.stop();
  });

  it(`keeps every invariant for ${DURATION_MS / 1000} s of chaos`, async () => {
    console.log(`chaos seed ${SEED} (PYBAL_CHAOS_SEED=${SEED} replays its choices), ${DURATION_MS / 1000} s`);
    // Healthy start: every server in IPVS and the VIP at the router.
    await waitFor(async () => ((await lab.ipvsTable()).find((s) => s.address === record.web.vip)?.destinations.length === servers.length ? true : undefined), {
      timeoutMs: 30_000,
      what: 'the four real servers in IPVS',
    });
    await lab.router.waitForRoute(`${record.web.vip}/32`, { where: (r) => r.nextHop === record.directorIp, timeoutMs: 30_000 });
    const started = { wallMs: (await pybal.status()).startedAtWallMs };
    const t0 = Date.now();
    for (const s of servers) record.modeChanged(s.name, 'ok', record.modeChanging(s.name, t0), t0);
    const chaosStart = Date.now();
    const chaosEnd = chaosStart + DURATION_MS;
    let stopChaos = false;
    let stopSampling = false;

    // --- sampling, every second
    let samples = 0;
    let sampleErrors = 0;
    const sampling = (async () => {
      while (!stopSampling) {
        const startMs = Date.now();
        try {
          const before = await pybal.status().catch(() => undefined);
          const ipvs = await lab.ipvsTable();
          const after = await pybal.status().catch(() => undefined);
          const routes = await lab.router.routes().catch(() => undefined);
          const sample: Sample = { startMs, endMs: Date.now(), ipvs, before, after, routes };
          const count = (vip: string): number => ipvs.find((e) => e.address === vip)?.destinations.length ?? 0;
          if (count(record.web.vip) < poolFloor(record.poolAt(startMs).entries) || (record.apiPresent(startMs) === true && count(record.api.vip) < poolFloor(allServers()))) {
            sample.reread = await lab.ipvsTable();
          }
          record.checkSample(sample, started);
          samples++;
        } catch (error) {
          sampleErrors++;
          console.log(`sample failed: ${String(error)}`);
        }
        await sleep(startMs + SAMPLE_EVERY_MS - Date.now());
      }
    })();

    // --- the real servers, each on its own random walk
    const flips = servers.map(async (s) => {
      const choose = new Chooser(createRandom(streamSeed(SEED, s.name)));
      while (!stopChaos) {
        const dwellMs = choose.next() < 0.35 ? choose.int(500, 3_000) : choose.int(4_000, 12_000);
        const until = Date.now() + dwellMs;
        while (!stopChaos && Date.now() < until) await sleep(Math.min(200, until - Date.now()));
        if (stopChaos) break;
        const mode = choose.weighted<Mode>({ ok: 3, 'slow-ok': 1, down: 1, hang: 1, reset: 1, 'slow-fail': 1 });
        const w = record.modeChanging(s.name, Date.now());
        await lab.realServer(s.name).setBehaviour(behaviourOf(mode));
        record.modeChanged(s.name, mode, w, Date.now());
        record.count(`server -> ${mode}`);
      }
    });

    // --- operations: SIGHUPs, pool edits, BIRD restarts
    const choose = new Chooser(createRandom(streamSeed(SEED, 'events')));
    let conf = record.confs[0]!.conf;
    let pool = allServers();
    const sighup = async (next: ChaosConf, monitorsChanged: boolean): Promise<void> => {
      writeFileSync(confFile, confText(next));
      const mark = pybal.log().length;
      const version = { sentMs: Date.now(), appliedMs: Infinity, conf: next, monitorsChanged };
      record.confs.push(version);
      pybal.process.signal('SIGHUP');
      record.count('SIGHUP');
      const line = await waitFor(async () => pybal.logSince(mark).find((l) => /Configuration reloaded|keeping the running configuration/.test(l)), {
        timeoutMs: 20_000,
        what: 'the reload',
      }).catch(() => undefined);
      version.appliedMs = (line === undefined ? undefined : parseLog(line)[0]?.atMs) ?? Date.now();
      if (line === undefined || !line.includes('Configuration reloaded')) record.violate('f', version.sentMs, `the SIGHUP was not applied: ${line ?? 'no reload line within 20 s'}`);
      conf = next;
    };
    const writePool = (entries: PoolEntry[]): void => {
      const disables = entries.some((e) => e.enabled === false && pool.find((p) => p.host === e.host)?.enabled !== false);
      record.webPool.push({ atMs: Date.now(), entries, disables });
      writeFileSync(webPoolFile, poolText(entries));
      pool = entries;
    };
    const holdBroken = async (text: string): Promise<void> => {
      writeFileSync(webPoolFile, text);
      await sleep(choose.int(3_000, 6_000));
      writeFileSync(webPoolFile, poolText(pool)); // the last good pool: nothing may have changed meanwhile
    };
    const restartBird = async (whole: boolean): Promise<void> => {
      const window = { fromMs: Date.now(), toMs: Infinity };
      record.birdWindows.push(window);
      birdRestarts++;
      const bird = lab.router as BirdDaemon;
      if (!whole) {
        await bird.restart('director1_v4');
      } else {
        await bird.stop();
        lab.spawn('router', ['bird', '-f', '-c', join(lab.dir, 'bird', 'bird.conf'), '-s', bird.socketPath, '-P', join(lab.runDir, 'bird.pid')], { name: `bird-again-${birdRestarts}` });
        await waitFor(async () => ((await bird.cli(['show', 'status'])).code === 0 ? true : undefined), { timeoutMs: 20_000, what: 'BIRD back' });
      }
      window.toMs = Date.now();
    };
    const run = async (kind: EventKind): Promise<void> => {
      record.count(kind);
      switch (kind) {
        case 'hup-same':
          return sighup(conf, false);
        case 'hup-monitor':
          return sighup(choose.next() < 0.5 ? { ...conf, intervalSec: conf.intervalSec === 1 ? 2 : 1 } : { ...conf, timeoutSec: conf.timeoutSec === 1 ? 2 : 1 }, true);
        case 'hup-scheduler':
          return sighup({ ...conf, scheduler: choose.pick((['rr', 'wrr', 'wlc'] as const).filter((s) => s !== conf.scheduler)) }, false);
        case 'hup-med':
          return sighup({ ...conf, med: choose.pick([0, 10, 20, 50].filter((m) => m !== conf.med)) }, false);
        case 'hup-resync':
          return sighup({ ...conf, resyncSec: choose.pick([30, 45, 60].filter((r) => r !== conf.resyncSec)) }, false);
        case 'hup-service':
          return sighup({ ...conf, withApi: !conf.withApi }, false);
        case 'pool-weights': {
          const next = pool.map((e) => (choose.next() < 0.5 ? { ...e, weight: choose.int(1, 20) } : e));
          return writePool(next);
        }
        case 'pool-toggle': {
          const disabled = pool.filter((e) => e.enabled === false);
          const disable = disabled.length === 0 || (disabled.length < 2 && choose.next() < 0.5);
          const target = choose.pick(disable ? pool.filter((e) => e.enabled !== false) : disabled);
          return writePool(pool.map((e) => (e.host === target.host ? { ...e, enabled: !disable } : e)));
        }
        case 'pool-invalid': {
          const junk = pool.map((e, i) => (i % 2 === 0 ? `{ 'host': '${e.host}', 'weight': ${e.weight ?? 10}, 'enabled': Maybe }` : `${e.host} weight=${e.weight ?? 10} enabled`));
          return holdBroken(junk.join('\n') + '\n');
        }
        case 'pool-cut': {
          const lines = poolText(pool).split('\n').filter((l) => l.length > 0);
          const i = choose.int(0, lines.length - 1);
          const cut = choose.int(1, lines[i]!.length - 1);
          return holdBroken([...lines.slice(0, i), lines[i]!.slice(0, cut)].join('\n'));
        }
        case 'bird-session':
          return restartBird(false);
        case 'bird-process':
          return restartBird(true);
      }
    };
    // Every kind at least once, in a random order, then random kinds until the end (at most three BIRD process restarts).
    const queue: EventKind[] = choose.shuffle(EVENT_KINDS);
    const eventErrors: string[] = [];
    const events = (async () => {
      while (Date.now() < chaosEnd) {
        await sleep(choose.int(2_000, 7_000));
        if (Date.now() >= chaosEnd) break;
        let kind = queue.shift() ?? choose.pick(EVENT_KINDS);
        if (kind === 'bird-process' && (record.counts.get('bird-process') ?? 0) >= 3) kind = 'bird-session';
        try {
          await run(kind);
        } catch (error) {
          // The lab failed to do it (not the daemon): said, counted and failed on at the end.
          eventErrors.push(`${kind}: ${String(error)}`);
          console.log(`event ${kind} failed: ${String(error)}`);
        }
      }
    })();

    try {
      await events;
      stopChaos = true;
      await Promise.all(flips);
      // Healthy again, and still sampled for a while: everything must come back.
      for (const s of servers) {
        const w = record.modeChanging(s.name, Date.now());
        await lab.realServer(s.name).setBehaviour({ mode: 'ok' });
        record.modeChanged(s.name, 'ok', w, Date.now());
      }
      if (JSON.stringify(pool) !== JSON.stringify(allServers())) writePool(allServers());
      await sleep(SETTLE_MS);
    } finally {
      // Whatever happened, nothing keeps running after the test.
      stopChaos = true;
      stopSampling = true;
      await Promise.allSettled([...flips, sampling]);
    }
    const endMs = Date.now();

    // f: the same process from start to end, alive, started once.
    if (!pybal.process.running) record.violate('f', endMs, `pybal exited: ${JSON.stringify(await pybal.process.exited)}`);
    const startingLines = pybal.log().split('\n').filter((l) => / starting with /.test(l));
    if (startingLines.length !== 1) record.violate('f', endMs, `${startingLines.length} "starting" lines in the log`);
    // d: from the daemon's own log.
    const log = parseLog(pybal.log());
    const decisions = checkDecisions(log, [record.web, record.api], chaosStart);
    record.violations.push(...decisions.violations, ...checkBgpSessions(record, log, chaosStart));
    const delays = worstDelays(record, log, record.web);
    const final = (await lab.ipvsTable()).find((s) => s.address === record.web.vip);

    const byCheck = (c: string): number => record.violations.filter((v) => v.check === c).length;
    const figures = [
      `seed ${SEED}; chaos ${((chaosEnd - chaosStart) / 1000).toFixed(0)} s + ${SETTLE_MS / 1000} s settled; ${samples} samples (${sampleErrors} failed)`,
      `events: ${[...record.counts.entries()].sort().map(([k, v]) => `${k} ×${v}`).join(', ')}`,
      `SIGHUPs ${record.counts.get('SIGHUP') ?? 0}, BIRD restarts ${birdRestarts} (process ${record.counts.get('bird-process') ?? 0})`,
      `worst depool ${delays.depoolMs} ms, worst repool ${delays.repoolMs} ms (mode change to the IPVS line, web)`,
      `decisions checked ${decisions.decisions} (${decisions.superseded} superseded within a second), worst decision-to-kernel ${decisions.worstMs} ms`,
      `transient dips under the floor that a re-read at once did not see: ${record.transientDips}`,
      `web at the end: ${final?.destinations.map((d) => `${d.address} w${d.weight}`).join(', ') ?? 'no service'}`,
      `violations: ${record.violations.length} (a ${byCheck('a')}, b ${byCheck('b')}, c ${byCheck('c')}, d ${byCheck('d')}, e ${byCheck('e')}, f ${byCheck('f')})`,
    ];
    console.log(`chaos figures:\n  ${figures.join('\n  ')}`);
    const shown = record.violations.map((v) => `${v.check} +${((v.atMs - chaosStart) / 1000).toFixed(1)}s ${v.text}`);
    if (shown.length > 0) console.log(`chaos violations:\n  ${shown.join('\n  ')}`);
    expect(samples).toBeGreaterThan(DURATION_MS / SAMPLE_EVERY_MS / 3);
    expect(shown).toEqual([]);
    expect(eventErrors).toEqual([]);
    expect(final?.destinations.map((d) => d.address).sort()).toEqual(servers.map((s) => s.ip).sort());
  }, DURATION_MS + SETTLE_MS + ADD_BOUND_MS + 180_000);
});
