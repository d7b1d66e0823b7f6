/**
 * Failover benchmark, in one lab guest: two real pybal directors announce the
 * same VIP to BIRD, director1 with MED 10 (the primary), director2 with MED 20
 * (the backup), and BIRD installs its best path in the router's kernel
 * (vipRoute 'bgp'), so the client's traffic follows BGP. BIRD runs BFD
 * (100 ms x 3) and graceful restart with both; each pybal's configuration
 * decides whether a mechanism is in use. BGP hold time 30 s everywhere, as in
 * Wikimedia's router configurations.
 *
 * For each scenario, a client in the client namespace starts a GET every
 * 100 ms, each on a new connection from a source port of its own and with a
 * 1 s timeout (bench/lib/failover-client.ts); a request not answered with 200
 * in time is lost. `ip -4 -tshort monitor route` in the router timestamps the
 * VIP's route changes; the directors' IPVS connection tables tell which
 * director carried each answered request.
 *
 *   1. primary pybal SIGTERM (planned stop)
 *   2. primary pybal kill -9
 *   3. primary pybal hung (SIGSTOP): BFD vs the hold timer alone
 *   4. primary's link lost (its switch port down): BFD vs the hold timer alone
 *   5. a single director's pybal killed (-9) and started again 2 s later (as
 *      etc/pybal.service's RestartSec=2): graceful restart vs without
 *   6. a long-lived connection across a SIGTERM failover: IPVS connection
 *      sync on vs off
 *
 * Figures only, nothing asserted. The last line is
 * `failover-dead-director-detection-ms X` (scenario 3 with BFD).
 *
 *   npm run bench:failover    (boots a lab guest; about 3 minutes)
 */
import { release } from 'node:os';
import { exec, waitFor, type LabProcess } from '../test/lab/exec.js';
import { startLab, type Lab } from '../test/lab/lab.js';
import type { BirdDaemon } from '../test/lab/routers/bird.js';
import { repoRoot } from '../test/lab/uml.js';
import { E2eConfig, E2ePybal, type E2eService } from '../test/e2e/pybal-lab.js';
import { runGuestBench } from './lib/guest.js';

type Director = 'director1' | 'director2';
const DIRECTORS: readonly Director[] = ['director1', 'director2'];
const MED: Record<Director, number> = { director1: 10, director2: 20 };
/** The switch's port towards director1 (test/lab/topology.ts names them dir1, dir2...). */
const DIRECTOR1_PORT = 'dir1';

const HOLD_SEC = 30;
const BFD_INTERVAL_MS = 100;
const BFD_MULTIPLIER = 3;
const GR_SEC = 60;
const REQUEST_EVERY_MS = 100;
const REQUEST_TIMEOUT_MS = 1_000;
/** Answers the client must have before the event. */
const BASELINE_ANSWERS = 10;
/** How long the client goes on once the route has settled. */
const AFTER_MS = 2_000;
/** Scenario 5: the new process starts this long after the old one died, as etc/pybal.service's RestartSec=2 has systemd do. */
const RESTART_DELAY_MS = 2_000;
/** How long a scenario waits for the route to move (the anchors: the hold timer, 20 to 30 s). */
const MOVE_WAIT_MS = 45_000;

const BFD_KEYS = ['bgp-bfd = yes', `bgp-bfd-interval = ${BFD_INTERVAL_MS / 1000}`, `bgp-bfd-multiplier = ${BFD_MULTIPLIER}`];
const GR_KEYS = [`bgp-graceful-restart = ${GR_SEC}`];
const SYNC_ON = ['ipvs-sync-daemon = both', 'ipvs-sync-interface = eth0'];
const SYNC_OFF = ['ipvs-sync-daemon = none'];

const web: E2eService = { name: 'web', extra: ["monitors = [ 'IdleConnection' ]"] };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const say = (line: string): void => void process.stdout.write(`${line}\n`);
const note = (line: string): void => void process.stderr.write(`  ${line}\n`);

/** One request of the client loop. */
interface Request {
  readonly port: number;
  readonly startMs: number;
  readonly endMs: number;
  readonly status: number;
  readonly error: string;
}

/** The figures of one run of a scenario. */
interface Run {
  readonly mechanism: string;
  /** ms from the event to the route's move (or, for a restart, the time the route was missing); undefined: not within the wait. */
  readonly routeMs: number | undefined;
  /** How long the run waited for the route (for "> N s"). */
  readonly waitedMs: number;
  readonly lost: number;
  readonly total: number;
  /** Scenario 6: the long-lived connection. */
  readonly held?: 'kept' | 'broken';
}

/** `[2025-01-02T03:04:05.123456] ...` as printed by `ip -tshort monitor`: ms since the epoch (local time, as the guest's clock). */
function monitorTime(line: string): number | undefined {
  const m = /^\[(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})\]/.exec(line);
  if (m === null) return undefined;
  const [y, mo, d, h, mi, s, us] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
  return new Date(y, mo - 1, d, h, mi, s, Math.floor(us / 1000)).getTime();
}

/** The route events of one address in `ip -4 -tshort monitor route` output. */
function routeEvents(text: string, address: string): { atMs: number; deleted: boolean; via: string | undefined }[] {
  const out: { atMs: number; deleted: boolean; via: string | undefined }[] = [];
  for (const line of text.split('\n')) {
    const m = /^\[\S+\] (Deleted )?(\S+)(?: via (\S+))?/.exec(line);
    const atMs = monitorTime(line);
    if (m === null || atMs === undefined || m[2] !== address) continue;
    out.push({ atMs, deleted: m[1] !== undefined, via: m[3] });
  }
  return out;
}

/** Total ms the route was missing (delete to next add); Infinity if it never came back. */
function routeGapMs(events: readonly { atMs: number; deleted: boolean }[]): { totalMs: number; gaps: number } {
  let total = 0;
  let gaps = 0;
  let deletedAt: number | undefined;
  for (const e of events) {
    if (e.deleted) deletedAt ??= e.atMs;
    else if (deletedAt !== undefined) {
      total += e.atMs - deletedAt;
      gaps++;
      deletedAt = undefined;
    }
  }
  return deletedAt === undefined ? { totalMs: total, gaps } : { totalMs: Infinity, gaps: gaps + 1 };
}

class FailoverBench {
  readonly #lab: Lab;
  readonly #vip: string;
  readonly #routeMonitor: LabProcess;
  readonly #linkMonitor: LabProcess;
  readonly #confs: Record<Director, E2eConfig>;
  readonly #pybals: Partial<Record<Director, E2ePybal>> = {};
  #starts = 0;
  #clients = 0;
  /** Source ports of the client's requests: never reused in a run, below the ephemeral range. */
  #nextPort = 20_000;

  constructor(lab: Lab) {
    this.#lab = lab;
    this.#vip = lab.addr.vip.v4!;
    this.#routeMonitor = lab.spawn('router', ['ip', '-4', '-tshort', 'monitor', 'route'], { name: 'router-route-monitor' });
    this.#linkMonitor = lab.spawn('switch', ['ip', '-tshort', 'monitor', 'link'], { name: 'switch-link-monitor' });
    this.#confs = { director1: new E2eConfig(lab, 'pybal-director1'), director2: new E2eConfig(lab, 'pybal-director2') };
    for (const d of DIRECTORS) this.#confs[d].writePool(web.name, this.#confs[d].realServerEntries());
  }

  ip(d: Director): string {
    return this.#lab.addr.directors.find((x) => x.name === d)!.v4!;
  }

  // ------------------------------------------------------------ pybal

  async start(d: Director, extra: readonly string[]): Promise<E2ePybal> {
    await this.stop(d, 'SIGKILL');
    this.#confs[d].write([web], { director: d, holdTimeSec: HOLD_SEC, globalExtra: [`bgp-med = ${MED[d]}`, ...extra] });
    const pybal = E2ePybal.start(this.#lab, this.#confs[d].file, { director: d, name: `pybal-${d}-${++this.#starts}` });
    this.#pybals[d] = pybal;
    await this.waitForPool(d);
    return pybal;
  }

  /** Ends a director's pybal if it runs (SIGTERM withdraws its routes; SIGKILL leaves them to BIRD). */
  async stop(d: Director, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const pybal = this.#pybals[d];
    if (pybal === undefined || !pybal.process.running) return;
    pybal.process.signal('SIGCONT');
    pybal.process.signal(signal);
    const timer = setTimeout(() => pybal.process.signal('SIGKILL'), 15_000);
    await pybal.process.exited;
    clearTimeout(timer);
  }

  pybal(d: Director): E2ePybal {
    const p = this.#pybals[d];
    if (p === undefined) throw new Error(`no pybal in ${d}`);
    return p;
  }

  /** Both real servers in the director's IPVS table with pybal's weight. */
  waitForPool(d: Director): Promise<boolean> {
    const want = this.#lab.addr.realServers.map((r) => r.v4!).sort().join(',');
    return waitFor(
      async () => {
        const service = (await this.#lab.ipvsTable(d)).find((s) => s.address === this.#vip && s.port === 80);
        const have = service?.destinations.filter((x) => x.weight === 10).map((x) => x.address).sort().join(',');
        return have === want ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: `both real servers in ${d}'s IPVS` },
    );
  }

  /** Polls until the router's kernel sends the VIP to `d` alone. */
  waitForRouteVia(d: Director, timeoutMs = 60_000): Promise<boolean> {
    const other = this.ip(d === 'director1' ? 'director2' : 'director1');
    return waitFor(
      async () => {
        const route = (await this.#lab.execOk('router', ['ip', 'route', 'show', `${this.#vip}/32`])).stdout;
        return route.includes(`via ${this.ip(d)} `) && !route.includes(`via ${other} `) ? true : undefined;
      },
      { timeoutMs, intervalMs: 100, what: `the router's kernel route to the VIP via ${d}` },
    );
  }

  waitForBfdUp(d: Director): Promise<boolean> {
    const bird = this.#lab.router as BirdDaemon;
    return waitFor(async () => ((await bird.bfdSessions()).some((s) => s.address === this.ip(d) && s.state === 'Up') ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: `BIRD's BFD session with ${d} Up`,
    });
  }

  /** director1's pybal (again) with `extra`, until the router sends the VIP to it (and BFD is up, when on). */
  async makePrimary(extra: readonly string[]): Promise<void> {
    await this.start('director1', extra);
    await this.waitForRouteVia('director1');
    if (extra.some((k) => k.startsWith('bgp-bfd = yes'))) await this.waitForBfdUp('director1');
    await sleep(1_000);
  }

  // ------------------------------------------------------------ client and observations

  startClient(): LabProcess {
    return this.#lab.spawn(
      'client',
      ['node', 'dist/bench/lib/failover-client.js', this.#vip, '80', String(this.#nextPort), String(REQUEST_EVERY_MS), String(REQUEST_TIMEOUT_MS)],
      { name: `client-${++this.#clients}` },
    );
  }

  async waitForBaseline(client: LabProcess): Promise<void> {
    await waitFor(async () => (requests(client).filter((r) => r.status === 200).length >= BASELINE_ANSWERS ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: `${BASELINE_ANSWERS} answers before the event`,
    });
  }

  async stopClient(client: LabProcess): Promise<Request[]> {
    client.signal('SIGTERM');
    await client.waitForLine(/^done$/, 15_000);
    const all = requests(client);
    this.#nextPort = Math.max(this.#nextPort, ...all.map((r) => r.port + 1));
    return all;
  }

  routeMark(): number {
    return this.#routeMonitor.output().length;
  }

  /** When the router's kernel got the VIP's route via `d`, after `mark`. */
  routeMovedAt(d: Director, mark: number): number | undefined {
    return routeEvents(this.#routeMonitor.output().slice(mark), this.#vip).find((e) => !e.deleted && e.via === this.ip(d))?.atMs;
  }

  routeGap(mark: number): { totalMs: number; gaps: number } {
    return routeGapMs(routeEvents(this.#routeMonitor.output().slice(mark), this.#vip));
  }

  /** For each source port of the client, the directors whose IPVS connection table has it. */
  async directorsByPort(): Promise<Map<number, Director[]>> {
    const byPort = new Map<number, Director[]>();
    for (const d of DIRECTORS) {
      for (const line of (await this.#lab.ipvsadm(['-Lnc'], d)).split('\n')) {
        const m = /^TCP\s+\S+\s+\S+\s+(\S+):(\d+)\s+(\S+)\s+\S+\s*$/.exec(line);
        if (m === null || m[1] !== this.#lab.addr.client.v4 || m[3] !== `${this.#vip}:80`) continue;
        const port = Number(m[2]);
        byPort.set(port, [...(byPort.get(port) ?? []), d]);
      }
    }
    return byPort;
  }

  /** A detail line for one run: who carried the answers, when the lost requests started. */
  async describe(tag: string, t0: number, answers: readonly Request[], extra: string): Promise<void> {
    const byPort = await this.directorsByPort();
    const ok = answers.filter((a) => a.status === 200);
    const via = (ds: string): number => ok.filter((a) => (byPort.get(a.port) ?? []).join() === ds).length;
    const both = via(DIRECTORS.join());
    const lost = answers.filter((a) => a.status !== 200);
    const lostAt = lost.slice(0, 8).map((a) => `${a.startMs - t0 >= 0 ? '+' : ''}${a.startMs - t0} ms ${a.error}`);
    note(
      `${tag}: ${extra}; ${answers.length} requests, ${ok.length} answered (${via('director1')} through director1, ${via('director2')} through director2` +
        `${both ? `, ${both} in both tables: synced` : ''}), ` +
        `${lost.length} lost${lost.length ? ` [started at ${lostAt.join(', ')}${lost.length > 8 ? ', ...' : ''}]` : ''}`,
    );
  }

  // ------------------------------------------------------------ scenarios 1 to 4

  /**
   * director1 primary with `extra`; the client runs; `fire` makes the event
   * (returns its time); the route's move to director2 is timed; `undo` puts
   * things back.
   */
  async failover(tag: string, mechanism: string, extra: readonly string[], fire: () => Promise<number>, undo: () => Promise<void>): Promise<Run> {
    await this.makePrimary(extra);
    const client = this.startClient();
    await this.waitForBaseline(client);
    const mark = this.routeMark();
    const t0 = await fire();
    let movedAt: number | undefined;
    try {
      movedAt = await waitFor(async () => this.routeMovedAt('director2', mark), { timeoutMs: MOVE_WAIT_MS, intervalMs: 20, what: 'the route via director2' });
    } catch {
      movedAt = undefined;
    }
    const waitedMs = Date.now() - t0;
    await sleep(AFTER_MS);
    const answers = await this.stopClient(client);
    await undo();
    const lost = answers.filter((a) => a.status !== 200).length;
    await this.describe(tag, t0, answers, movedAt === undefined ? `route not moved within ${waitedMs} ms` : `route via director2 ${movedAt - t0} ms after the event`);
    return { mechanism, routeMs: movedAt === undefined ? undefined : movedAt - t0, waitedMs, lost, total: answers.length };
  }

  signalPrimary(signal: NodeJS.Signals): () => Promise<number> {
    return async () => {
      const t0 = Date.now();
      this.pybal('director1').process.signal(signal);
      return t0;
    };
  }

  /** Sets director1's switch port down; the time the switch's kernel logged it (the command's start if not seen). */
  async cutLink(): Promise<number> {
    const mark = this.#linkMonitor.output().length;
    const before = Date.now();
    await this.#lab.execOk('switch', ['ip', 'link', 'set', DIRECTOR1_PORT, 'down']);
    const seen = await waitFor(
      async () => {
        for (const line of this.#linkMonitor.output().slice(mark).split('\n')) {
          const m = new RegExp(`^\\[\\S+\\] \\d+: ${DIRECTOR1_PORT}@\\S+ <([^>]*)>`).exec(line);
          if (m !== null && !m[1]!.split(',').includes('UP')) return monitorTime(line);
        }
        return undefined;
      },
      { timeoutMs: 2_000, intervalMs: 10, what: 'the link change in the switch' },
    ).catch(() => undefined);
    return seen ?? before;
  }

  async restoreLink(): Promise<void> {
    await this.stop('director1', 'SIGKILL');
    await this.#lab.execOk('switch', ['ip', 'link', 'set', DIRECTOR1_PORT, 'up']);
    // Carrier loss keeps the director's routes; put its default route back all the same if it went.
    const router = this.#lab.addr.router.v4!;
    await this.#lab.execOk('director1', ['ip', 'route', 'replace', 'default', 'via', router]);
    await waitFor(async () => ((await this.#lab.exec('director1', ['ping', '-c', '1', '-W', '1', router])).code === 0 ? true : undefined), {
      timeoutMs: 20_000,
      what: 'director1 reaching the router again',
    });
  }

  // ------------------------------------------------------------ scenario 5

  /** director1 alone: kill -9 of its pybal and a new process RESTART_DELAY_MS later. */
  async restart(tag: string, mechanism: string, extra: readonly string[]): Promise<Run> {
    await this.makePrimary(extra);
    const client = this.startClient();
    await this.waitForBaseline(client);
    const mark = this.routeMark();
    const old = this.pybal('director1');
    const t0 = Date.now();
    old.process.signal('SIGKILL');
    await old.process.exited;
    await sleep(RESTART_DELAY_MS);
    const fresh = E2ePybal.start(this.#lab, this.#confs.director1.file, { director: 'director1', name: `pybal-director1-${++this.#starts}` });
    this.#pybals.director1 = fresh;
    await waitFor(
      async () => {
        const peer = (await fresh.status().catch(() => undefined))?.bgp.peers[0];
        return peer?.state === 'Established' && (peer.prefixesSent ?? 0) >= 1 ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100, what: 'the new process established, its route sent' },
    );
    const establishedMs = Date.now() - t0;
    await this.waitForRouteVia('director1');
    await sleep(AFTER_MS);
    const answers = await this.stopClient(client);
    const gap = this.routeGap(mark);
    const lost = answers.filter((a) => a.status !== 200).length;
    await this.describe(
      tag,
      t0,
      answers,
      `new process started ${RESTART_DELAY_MS} ms after the kill, established with its route sent ${establishedMs} ms after the kill; the router's route missing ${gap.gaps} time(s), ${gap.totalMs} ms in all`,
    );
    return { mechanism, routeMs: gap.totalMs, waitedMs: Date.now() - t0, lost, total: answers.length };
  }

  // ------------------------------------------------------------ scenario 6

  async syncDaemons(d: Director): Promise<string[]> {
    return [...(await this.#lab.ipvsadm(['-L', '--daemon'], d)).matchAll(/^(master|backup) sync daemon/gm)].map((m) => m[1]!).sort();
  }

  async ipvsEntry(d: Director, port: number): Promise<boolean> {
    return (await this.directorsByPort()).get(port)?.includes(d) ?? false;
  }

  /** A keep-alive connection through director1, then SIGTERM of director1's pybal, then another request on it. */
  async heldConnection(tag: string, mechanism: string, extra: readonly string[], sync: boolean): Promise<Run> {
    await this.start('director2', extra);
    await this.makePrimary(extra);
    await waitFor(
      async () => {
        const want = sync ? 'backup,master' : '';
        for (const d of DIRECTORS) if ((await this.syncDaemons(d)).join() !== want) return undefined;
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: `sync daemons ${sync ? 'running' : 'stopped'} in both directors` },
    );
    const client = this.startClient();
    await this.waitForBaseline(client);
    const hold = this.#lab.spawn('client', ['node', 'dist/test/ipvs/hold-connection.js', this.#vip, '80'], { name: `hold-${tag.replace(/\W/g, '')}` });
    const first = /^first 200 (\S+) (\d+)$/.exec(await hold.waitForLine(/^(first|closed|error)/, 15_000));
    if (first === null) throw new Error(`${tag}: the long-lived connection did not open: ${hold.output()}`);
    const [, server, portText] = first;
    const port = Number(portText);
    const openedAt = Date.now();
    let syncNote: string;
    if (sync) {
      await waitFor(async () => ((await this.ipvsEntry('director2', port)) ? true : undefined), { timeoutMs: 15_000, intervalMs: 100, what: "the connection in director2's table" });
      syncNote = `in director2's table ${Date.now() - openedAt} ms after it opened`;
    } else {
      await sleep(4_000);
      syncNote = `${(await this.ipvsEntry('director2', port)) ? 'in' : 'not in'} director2's table 4 s after it opened`;
    }
    const mark = this.routeMark();
    const t0 = Date.now();
    this.pybal('director1').process.signal('SIGTERM');
    const movedAt = await waitFor(async () => this.routeMovedAt('director2', mark), { timeoutMs: MOVE_WAIT_MS, intervalMs: 20, what: 'the route via director2' });
    await sleep(AFTER_MS);
    hold.signal('SIGUSR2');
    const outcome = await hold.waitForLine(/^(again|closed|error)/, 15_000).catch(() => 'no answer within 15 s');
    const kept = outcome === `again 200 ${server} ${port}`;
    const answers = await this.stopClient(client);
    await hold.stop();
    await this.stop('director1', 'SIGTERM');
    const lost = answers.filter((a) => a.status !== 200).length;
    await this.describe(tag, t0, answers, `long-lived connection (port ${port}, ${server}) ${syncNote}; route via director2 ${movedAt - t0} ms after SIGTERM; its next request: ${outcome}`);
    return { mechanism, routeMs: movedAt - t0, waitedMs: Date.now() - t0, lost, total: answers.length, held: kept ? 'kept' : 'broken' };
  }
}

/** The client's requests so far. */
function requests(client: LabProcess): Request[] {
  const out: Request[] = [];
  for (const line of client.output().split('\n')) {
    const m = /^r (\d+) (\d+) (\d+) (\d+) \S+ (\S+)$/.exec(line);
    if (m) out.push({ port: Number(m[1]), startMs: Number(m[2]), endMs: Number(m[3]), status: Number(m[4]), error: m[5]! });
  }
  return out;
}

// ---------------------------------------------------------------- table

const ms = (run: Run | undefined, prefix = ''): string => {
  if (run === undefined) return '';
  if (run.routeMs === undefined) return `> ${(run.waitedMs / 1000).toFixed(0)} s`;
  if (run.routeMs === Infinity) return 'never back';
  return `${prefix}${run.routeMs.toLocaleString('en-US')} ms`;
};
const lostOf = (run: Run | undefined): string => (run === undefined ? '' : `${run.lost} / ${run.total}${run.held ? `, long-lived connection ${run.held}` : ''}`);

function table(rows: readonly { scenario: string; main: Run; anchor?: Run }[]): string[] {
  const lines = [
    '| scenario | mechanism | route moved after | lost / total | anchor | anchor: route moved after | anchor: lost / total |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const gap = r.scenario.startsWith('5.') ? 'gap ' : '';
    lines.push(`| ${r.scenario} | ${r.main.mechanism} | ${ms(r.main, gap)} | ${lostOf(r.main)} | ${r.anchor?.mechanism ?? 'none (PyBal does the same)'} | ${ms(r.anchor, gap) || '-'} | ${lostOf(r.anchor) || '-'} |`);
  }
  return lines;
}

// ---------------------------------------------------------------- main

async function versionLine(argv: readonly string[]): Promise<string> {
  const r = await exec(argv).catch(() => undefined);
  return ((r?.stdout ?? '') + (r?.stderr ?? '')).trim().split('\n')[0] || 'unknown';
}

async function measure(): Promise<void> {
  const bird = await versionLine(['bird', '--version']);
  const head = (await exec(['git', '-C', repoRoot(), 'describe', '--always', '--dirty'])).stdout.trim() || '?';
  say(`failover benchmark: UML guest kernel ${release()} (one CPU), node ${process.version}, ${bird}, pybal at ${head}; figures only`);
  say(
    `two directors (pybal MED 10 primary, MED 20 backup), DR, two real servers; BIRD installs its best path in the router's kernel, with BFD ${BFD_INTERVAL_MS} ms x ${BFD_MULTIPLIER} and graceful restart on (used only when pybal offers them); ` +
      `BGP hold time ${HOLD_SEC} s; client: a GET every ${REQUEST_EVERY_MS} ms, each a new connection from its own source port, ${REQUEST_TIMEOUT_MS} ms timeout; route times from the router's ip monitor`,
  );
  const lab = await startLab({
    directors: 2,
    realServers: 2,
    forwarding: 'dr',
    router: 'bird',
    vipRoute: 'bgp',
    families: [4],
    routerBfd: { intervalMs: BFD_INTERVAL_MS, multiplier: BFD_MULTIPLIER },
    routerGracefulRestart: true,
  });
  try {
    const b = new FailoverBench(lab);
    await b.start('director2', []);
    await b.waitForRouteVia('director2');

    const term = await b.failover('1. SIGTERM', 'BGP withdraw and Cease', [], b.signalPrimary('SIGTERM'), () => b.stop('director1', 'SIGKILL'));
    const kill = await b.failover('2. kill -9', 'the kernel closes the BGP connection', [], b.signalPrimary('SIGKILL'), () => b.stop('director1', 'SIGKILL'));
    const hungBfd = await b.failover('3. SIGSTOP, BFD', `BFD ${BFD_INTERVAL_MS} ms x ${BFD_MULTIPLIER}`, BFD_KEYS, b.signalPrimary('SIGSTOP'), () => b.stop('director1', 'SIGKILL'));
    const hungHold = await b.failover('3. SIGSTOP, hold timer', `hold timer ${HOLD_SEC} s`, [], b.signalPrimary('SIGSTOP'), () => b.stop('director1', 'SIGKILL'));
    const linkBfd = await b.failover('4. link lost, BFD', `BFD ${BFD_INTERVAL_MS} ms x ${BFD_MULTIPLIER}`, BFD_KEYS, () => b.cutLink(), () => b.restoreLink());
    const linkHold = await b.failover('4. link lost, hold timer', `hold timer ${HOLD_SEC} s`, [], () => b.cutLink(), () => b.restoreLink());
    const syncOn = await b.heldConnection('6. sync on', 'IPVS connection sync (both)', SYNC_ON, true);
    const syncOff = await b.heldConnection('6. sync off', 'no sync', SYNC_OFF, false);
    // Scenario 5: director1 alone.
    await b.stop('director2', 'SIGTERM');
    const grOn = await b.restart('5. restart, graceful restart', `graceful restart ${GR_SEC} s`, GR_KEYS);
    const grOff = await b.restart('5. restart, without', 'no graceful restart', []);
    await b.stop('director1', 'SIGTERM');

    say('');
    for (const line of table([
      { scenario: '1. primary pybal SIGTERM (planned stop)', main: term },
      { scenario: '2. primary pybal kill -9', main: kill },
      { scenario: '3. primary pybal hung (SIGSTOP)', main: hungBfd, anchor: hungHold },
      { scenario: "4. primary's link lost (switch port down)", main: linkBfd, anchor: linkHold },
      { scenario: `5. single director: pybal kill -9, new process ${RESTART_DELAY_MS / 1000} s later`, main: grOn, anchor: grOff },
      { scenario: '6. long-lived connection across a SIGTERM failover', main: syncOn, anchor: syncOff },
    ])) {
      say(line);
    }
    say('');
    say(`failover-dead-director-detection-ms ${hungBfd.routeMs ?? `>${hungBfd.waitedMs}`}`);
  } finally {
    await lab.stop();
  }
}

runGuestBench({ name: 'failover bench', scriptUrl: import.meta.url, measure, timeoutMs: 1_500_000 });
