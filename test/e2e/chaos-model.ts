// The chaos test's ground truth and its checks (issue 10, "Proof"). Pure:
// what the test did (real-server modes, pybal.conf versions, pool files, BIRD
// restarts) is recorded here with times on the test's clock, and each sample
// of the lab (IPVS table, the daemon's /status, the router's routes) is
// checked against it. The daemon's log is checked at the end (every pool
// decision reaches the kernel within a second). Nothing here touches the lab.
import type { DaemonSnapshot } from '../../src/api/types.js';
import type { IpvsServiceEntry } from '../lab/ipvsadm.js';
import { samePrefix, type BgpRoute } from '../lab/routers/bgp-daemon.js';
import { LAB_SLACK_MS, type PoolEntry } from './pybal-lab.js';

// ---------------------------------------------------------------------------
// Seeded randomness

export { createRandom } from '../support/random.js';

/** One stream per actor (each real server, the event loop), so that one actor's timing does not shift another's choices. */
export function streamSeed(seed: number, name: string): number {
  let h = seed >>> 0;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

export class Chooser {
  constructor(readonly next: () => number) {}
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('pick: empty list');
    return item;
  }
  weighted<T extends string>(weights: Readonly<Record<T, number>>): T {
    const entries = Object.entries(weights) as [T, number][];
    let r = this.next() * entries.reduce((s, [, w]) => s + w, 0);
    for (const [k, w] of entries) if ((r -= w) < 0) return k;
    return entries[entries.length - 1]![0];
  }
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}

// ---------------------------------------------------------------------------
// Real-server modes

/** What a real server does; "slow-ok" answers under every timeout used, "slow-fail" over every one. */
export const MODES = ['ok', 'slow-ok', 'down', 'hang', 'reset', 'slow-fail'] as const;
export type Mode = (typeof MODES)[number];
export const SLOW_OK_MS = 200;
export const SLOW_FAIL_MS = 3_500;
export const isUpMode = (m: Mode): boolean => m === 'ok' || m === 'slow-ok';

/** One run of a server being up (or down), from when the change was in force to when the next began. */
export type Run = { up: boolean; startMs: number; endMs: number; mode: Mode };

// ---------------------------------------------------------------------------
// Configuration and bounds

/** What the chaos varies in pybal.conf. */
export type ChaosConf = {
  intervalSec: number;
  timeoutSec: number;
  scheduler: 'rr' | 'wrr' | 'wlc';
  med: number;
  resyncSec: number;
  withApi: boolean;
};

export const FALL = 2;
export const RISE = 1;
export const THRESHOLD = 0.5;
/** The file source polls every second and waits 100 ms (up to ten times) for a file to hold still; then the daemon applies it. */
export const POOL_BOUND_MS = 1_000 + 1_000 + 1_000 + LAB_SLACK_MS;
/** A reload is applied, IPVS written and BGP told within this of the "Configuration reloaded" line. */
export const RELOAD_BOUND_MS = 2_000 + LAB_SLACK_MS;
/** A service added by a reload is programmed and its VIP announced within this of the reload. */
export const ADD_BOUND_MS = 5_000 + LAB_SLACK_MS;
/** After BIRD restarts (a session reset or the whole process), the session is back and the routes re-sent within hold + connect-retry + slack. */
export const BIRD_BOUND_MS = (9 + 1) * 1_000 + 2_000;
/** Every decision reaches the kernel within a second (issue 10). */
export const DECISION_BOUND_MS = 1_000;

/** interval × fall + timeout + 1 s (the issue's bound), plus the lab's slack to observe it. */
export function depoolBoundMs(c: { intervalSec: number; timeoutSec: number }): number {
  return (c.intervalSec * FALL + c.timeoutSec + 1) * 1_000 + LAB_SLACK_MS;
}
/** interval × rise + timeout + 1 s, plus the lab's slack. */
export function riseBoundMs(c: { intervalSec: number; timeoutSec: number }): number {
  return (c.intervalSec * RISE + c.timeoutSec + 1) * 1_000 + LAB_SLACK_MS;
}

/** The number of servers that must stay pooled: PyBal's rule in decide-pool.ts (pooled ≥ all × threshold), capped by what is enabled. */
export function poolFloor(pool: readonly PoolEntry[], threshold = THRESHOLD): number {
  const enabled = pool.filter((e) => e.enabled !== false).length;
  return Math.min(Math.ceil(pool.length * threshold), enabled);
}

// ---------------------------------------------------------------------------
// The record of what happened

export type ConfVersion = { sentMs: number; appliedMs: number; conf: ChaosConf; monitorsChanged: boolean };
export type PoolVersion = { atMs: number; entries: PoolEntry[]; disables: boolean };
export type Window = { fromMs: number; toMs: number };

export type Sample = {
  startMs: number;
  endMs: number;
  ipvs: IpvsServiceEntry[];
  /** /status just before and just after the IPVS table was read. */
  before: DaemonSnapshot | undefined;
  after: DaemonSnapshot | undefined;
  routes: BgpRoute[] | undefined;
  /** Set when a first read showed a service under its floor: the same table read again at once. */
  reread?: IpvsServiceEntry[];
};

export type Violation = { check: 'a' | 'b' | 'c' | 'd' | 'e' | 'f'; atMs: number; text: string };

export type ServiceDef = { name: string; vip: string };

export class ChaosRecord {
  readonly runs = new Map<string, Run[]>();
  /** Per server, the times a mode change was being sent (from the call to its answer). */
  readonly flipping = new Map<string, Window[]>();
  readonly confs: ConfVersion[] = [];
  readonly webPool: PoolVersion[] = [];
  /** When the api service was added/removed by a reload (appliedMs). */
  readonly apiWindows: Window[] = [];
  readonly birdWindows: Window[] = [];
  readonly violations: Violation[] = [];
  readonly counts = new Map<string, number>();
  transientDips = 0;

  constructor(
    readonly servers: readonly { name: string; ip: string }[],
    readonly web: ServiceDef,
    readonly api: ServiceDef,
    readonly directorIp: string,
  ) {}

  count(kind: string): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
  }

  violate(check: Violation['check'], atMs: number, text: string): void {
    this.violations.push({ check, atMs, text });
  }

  /** A real server is being told to change mode (recorded before the call, so that a sample meanwhile is not judged on the old mode). */
  modeChanging(name: string, callMs: number): Window {
    const flips = this.flipping.get(name) ?? [];
    this.flipping.set(name, flips);
    const w = { fromMs: callMs, toMs: Infinity };
    flips.push(w);
    return w;
  }

  /** The change took effect: `callMs` when we started telling it, `doneMs` when it answered. */
  modeChanged(name: string, mode: Mode, w: Window, doneMs: number): void {
    const callMs = w.fromMs;
    w.toMs = doneMs;
    const runs = this.runs.get(name) ?? [];
    this.runs.set(name, runs);
    const last = runs[runs.length - 1];
    const up = isUpMode(mode);
    if (last !== undefined && last.up === up) {
      last.mode = mode;
      return;
    }
    if (last !== undefined) last.endMs = callMs;
    runs.push({ up, startMs: doneMs, endMs: Infinity, mode });
  }

  /** The configuration the daemon runs at t (a reload counts once applied). */
  confAt(t: number): ChaosConf {
    let c = this.confs[0]!.conf;
    for (const v of this.confs) if (v.appliedMs <= t) c = v.conf;
    return c;
  }

  /** Whether a reload changing `what` was sent before t1 and applied less than `boundMs` before t0 (or not yet). */
  recentChange(what: (a: ChaosConf, b: ChaosConf) => boolean, t0: number, t1: number, boundMs: number): boolean {
    return this.confs.some((v, i) => i > 0 && what(this.confs[i - 1]!.conf, v.conf) && v.sentMs <= t1 && v.appliedMs + boundMs >= t0);
  }

  /** The largest interval and timeout of any configuration in force at some moment of [from, to]. */
  worstConf(fromMs: number, toMs: number): { intervalSec: number; timeoutSec: number } {
    const inForce = this.confs.filter((v, i) => v.sentMs <= toMs && (this.confs[i + 1]?.appliedMs ?? Infinity) >= fromMs);
    return {
      intervalSec: Math.max(...inForce.map((v) => v.conf.intervalSec)),
      timeoutSec: Math.max(...inForce.map((v) => v.conf.timeoutSec)),
    };
  }

  poolAt(t: number): PoolVersion {
    let p = this.webPool[0]!;
    for (const v of this.webPool) if (v.atMs <= t) p = v;
    return p;
  }

  /** Pool versions in force at some moment of [from, to]. */
  poolsDuring(fromMs: number, toMs: number): PoolVersion[] {
    return this.webPool.filter((v, i) => v.atMs <= toMs && (this.webPool[i + 1]?.atMs ?? Infinity) >= fromMs);
  }

  /**
   * Whether the api service is configured throughout [fromMs, toMs] (a
   * sample reads IPVS and the router after it starts); undefined while a
   * reload adding or removing it may still be settling at some moment of it.
   */
  apiPresent(fromMs: number, toMs = fromMs): boolean | undefined {
    const toggles = this.confs.filter((v, i) => i > 0 && v.conf.withApi !== this.confs[i - 1]!.conf.withApi);
    if (toggles.some((v) => v.sentMs <= toMs && fromMs < v.appliedMs + ADD_BOUND_MS)) return undefined;
    return this.confAt(toMs).withApi;
  }

  /** When the api service was last added (appliedMs) before t. */
  apiAddedAt(t: number): number {
    let at = 0;
    for (let i = 0; i < this.confs.length; i++) {
      const v = this.confs[i]!;
      const prev = this.confs[i - 1];
      if (v.appliedMs <= t && v.conf.withApi && (prev === undefined || !prev.conf.withApi)) at = v.appliedMs;
    }
    return at;
  }

  inBirdWindow(t0: number, t1: number): boolean {
    return this.birdWindows.some((w) => w.fromMs <= t1 && w.toMs + BIRD_BOUND_MS >= t0);
  }

  /**
   * The run of `name` in force through the whole of [t0, t1] with no mode
   * change being sent meanwhile, or undefined.
   */
  steadyRun(name: string, t0: number, t1: number): Run | undefined {
    const flips = this.flipping.get(name) ?? [];
    if (flips.some((w) => w.fromMs <= t1 && w.toMs >= t0)) return undefined;
    return (this.runs.get(name) ?? []).find((r) => r.startMs <= t0 && r.endMs > t1);
  }

  /**
   * When the daemon must have known about the run by: its start, moved to a
   * later reload that restarted the service's monitors (or added the service)
   * unless the daemon should already have known at that reload (then a new
   * monitor must keep the known state: issue 10, "health survives").
   */
  knowFrom(run: Run, service: 'web' | 'api', t: number): number {
    let from = run.startMs;
    if (service === 'api') from = Math.max(from, this.apiAddedAt(t));
    for (const v of this.confs) {
      if (!v.monitorsChanged || service !== 'web' || v.appliedMs <= from || v.appliedMs > t) continue;
      const worst = this.worstConf(from, v.sentMs);
      const known = from + (run.up ? riseBoundMs(worst) : depoolBoundMs(worst)) <= v.sentMs;
      if (!known) from = v.appliedMs;
    }
    return from;
  }

  // -------------------------------------------------------------------------
  // Checks a, b, c, e, f on one sample

  checkSample(s: Sample, started: { wallMs: number }): void {
    const t0 = s.startMs;
    const t1 = s.endMs;
    // f: the same process answers throughout.
    for (const snap of [s.before, s.after]) {
      if (snap === undefined) this.violate('f', t0, 'the control socket did not answer /status');
      else if (snap.startedAtWallMs !== started.wallMs) this.violate('f', t0, `pybal restarted: started at ${snap.startedAtWallMs}, first seen ${started.wallMs}`);
    }
    const apiNow = this.apiPresent(t0, s.endMs);
    const services: Array<{ def: ServiceDef; key: 'web' | 'api' }> = [{ def: this.web, key: 'web' }];
    if (apiNow === true && t0 - this.apiAddedAt(t0) >= ADD_BOUND_MS) services.push({ def: this.api, key: 'api' });
    for (const { def, key } of services) this.checkService(s, def, key);
    this.checkRoutes(s, apiNow);
  }

  private checkService(s: Sample, def: ServiceDef, key: 'web' | 'api'): void {
    const t0 = s.startMs;
    const t1 = s.endMs;
    const table = s.ipvs.find((e) => e.address === def.vip && e.port === 80);
    const dests = new Map((table?.destinations ?? []).map((d) => [d.address, d]));
    const allEnabled: PoolEntry[] = this.servers.map((r) => ({ host: r.ip, weight: 10, enabled: true }));
    const poolNow = key === 'web' ? this.poolAt(t0).entries : allEnabled;
    const recentPools = key === 'web' ? this.poolsDuring(t0 - POOL_BOUND_MS, t1) : [{ atMs: 0, entries: allEnabled, disables: false }];
    const snapOf = (snap: DaemonSnapshot | undefined) => snap?.services.find((x) => x.name === def.name);

    // a. The pooled count never falls below the depool-threshold floor.
    const floor = poolFloor(poolNow);
    const disablingEdit = key === 'web' && this.webPool.some((v) => v.disables && v.atMs <= t1 && v.atMs + POOL_BOUND_MS >= t0);
    if (!disablingEdit && dests.size < floor) {
      const again = s.reread?.find((e) => e.address === def.vip && e.port === 80)?.destinations.length;
      if (s.reread !== undefined && again !== undefined && again >= floor) this.transientDips++;
      else this.violate('a', t0, `${def.name}: ${dests.size} server(s) in IPVS (${[...dests.keys()].join(', ') || 'none'}${table === undefined ? '; no service' : ''}), floor ${floor}; read again: ${again ?? 'no service'}`);
    }

    // The scheduler of the configuration, once a change had time to apply.
    const conf = this.confAt(t0);
    const schedulerChanging = this.recentChange((a, b) => a.scheduler !== b.scheduler, t0, t1, RELOAD_BOUND_MS);
    if (key === 'web' && table !== undefined && !schedulerChanging && table.scheduler !== conf.scheduler) {
      this.violate('c', t0, `${def.name}: IPVS scheduler ${table.scheduler}, configured ${conf.scheduler}`);
    }

    for (const rs of this.servers) {
      const run = this.steadyRun(rs.name, t0, t1);
      if (run === undefined) continue;
      const from = this.knowFrom(run, key, t0);
      const worst = this.worstConf(from, t1);
      const inIpvs = dests.get(rs.ip);
      const enabledThroughout = recentPools.every((p) => p.entries.some((e) => e.host === rs.ip && e.enabled !== false));
      const disabledThroughout = recentPools.every((p) => p.entries.some((e) => e.host === rs.ip && e.enabled === false));
      if (disabledThroughout && inIpvs !== undefined) {
        this.violate('b', t0, `${def.name}: ${rs.name} (${rs.ip}) is disabled in the pool but in IPVS`);
        continue;
      }
      if (!run.up && t0 - from > depoolBoundMs(worst) && inIpvs !== undefined) {
        // b. Down longer than its bound: out of IPVS unless the threshold forces it.
        const forced = [s.before, s.after].some((snap) => {
          const svc = snapOf(snap);
          const me = svc?.servers.find((x) => x.host === rs.ip);
          const upEnabled = svc?.servers.filter((x) => x.up && x.enabled).length ?? 0;
          return me !== undefined && svc !== undefined && me.pooledDown && !me.up && upEnabled < svc.servers.length * svc.depoolThreshold;
        });
        if (!forced) {
          const views = [s.before, s.after].map((snap) => JSON.stringify(snapOf(snap)?.servers.map((x) => `${x.host}:${x.up ? 'up' : 'down'}/${x.pooled ? (x.pooledDown ? 'pooled-down' : 'pooled') : 'out'}${x.enabled ? '' : '/disabled'}`)));
          this.violate('b', t0, `${def.name}: ${rs.name} (${rs.ip}) ${run.mode} for ${t0 - from} ms (bound ${depoolBoundMs(worst)}) but in IPVS, not forced by the threshold; daemon: ${views.join(' then ')}`);
        }
      }
      if (run.up && t0 - from > riseBoundMs(worst) && enabledThroughout) {
        // c. Up longer than its rise bound and enabled: in IPVS, with the pool's weight.
        const want = recentPools.length === 1 ? recentPools[0]!.entries.find((e) => e.host === rs.ip)?.weight ?? 10 : undefined;
        if (inIpvs === undefined) this.violate('c', t0, `${def.name}: ${rs.name} (${rs.ip}) up (${run.mode}) for ${t0 - from} ms (bound ${riseBoundMs(worst)}) and enabled, but not in IPVS`);
        else if (want !== undefined && inIpvs.weight !== want) this.violate('c', t0, `${def.name}: ${rs.name} (${rs.ip}) has weight ${inIpvs.weight} in IPVS, the pool says ${want}`);
      }
    }
  }

  private checkRoutes(s: Sample, apiNow: boolean | undefined): void {
    const t0 = s.startMs;
    if (this.inBirdWindow(t0, s.endMs)) return;
    if (s.routes === undefined) {
      this.violate('e', t0, 'the router did not answer (outside a BIRD restart)');
      return;
    }
    const ours = (vip: string): BgpRoute | undefined => s.routes!.find((r) => samePrefix(r.prefix, `${vip}/32`) && r.nextHop === this.directorIp);
    const web = ours(this.web.vip);
    const conf = this.confAt(t0);
    const medChanging = this.recentChange((a, b) => a.med !== b.med, t0, s.endMs, RELOAD_BOUND_MS);
    if (web === undefined) this.violate('e', t0, `${this.web.vip}/32 is not at the router from director1`);
    else if (!medChanging && (web.med ?? 0) !== conf.med) this.violate('e', t0, `${this.web.vip}/32 has MED ${web.med}, configured ${conf.med}`);
    if (apiNow === true && t0 - this.apiAddedAt(t0) >= ADD_BOUND_MS && ours(this.api.vip) === undefined) this.violate('e', t0, `${this.api.vip}/32 (api) is not at the router from director1`);
    if (apiNow === false && ours(this.api.vip) !== undefined) this.violate('e', t0, `${this.api.vip}/32 (api) is still announced although the service was removed`);
  }
}

// ---------------------------------------------------------------------------
// Check d: every decision pybal logs reaches the kernel within a second

const TIME = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{3}) \[([^\]]*)\] \w+: (.*)$/;

export type LogLine = { atMs: number; system: string; text: string };

export function parseLog(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    const m = TIME.exec(line);
    if (m === null) continue;
    const [y, mo, d, h, mi, sec, ms] = m.slice(1, 8).map(Number) as [number, number, number, number, number, number, number];
    out.push({ atMs: new Date(y, mo - 1, d, h, mi, sec, ms).getTime(), system: m[8]!, text: m[9]! });
  }
  return out;
}

type Decision = { atMs: number; index: number; service: string; host: string; pool: boolean; text: string };
type KernelOp = { atMs: number; index: number; vip: string; host: string | undefined; pool: boolean };

const DEPOOL = /^Depooling (?:down |disabled |unresolved |previously pooled but down )?server (\S+)$/;
const REPOOL = /^(?:Repooling|Pooling) server (\S+)$/;
const FORCED = /^Forcing (\S+) to be pooled to meet depool threshold$/;
const IPVS_OP = /^IPVS: (add|delete) (server|service) TCP ([\d.]+):80(?: -> ([\d.]+):80)?/;

export type DecisionReport = { decisions: number; superseded: number; worstMs: number; violations: Violation[] };

/**
 * For each decision logged at or after `fromMs` (and a second before the end
 * of the log), the kernel as the IPVS manager's own lines leave it a second
 * later must match it, unless a later decision about the same server (or the
 * removal of its service) came within that second.
 */
export function checkDecisions(lines: readonly LogLine[], services: readonly ServiceDef[], fromMs: number): DecisionReport {
  const vipOf = new Map(services.map((s) => [s.name, s.vip]));
  const decisions: Decision[] = [];
  const ops: KernelOp[] = [];
  lines.forEach((l, index) => {
    const service = l.system.split(' ')[0] ?? '';
    const dep = DEPOOL.exec(l.text);
    const rep = REPOOL.exec(l.text) ?? FORCED.exec(l.text);
    if (vipOf.has(service) && (dep || rep)) decisions.push({ atMs: l.atMs, index, service, host: (dep ?? rep)![1]!, pool: rep !== null, text: l.text });
    const op = IPVS_OP.exec(l.text);
    if (op) ops.push({ atMs: l.atMs, index, vip: op[3]!, host: op[4], pool: op[1] === 'add' });
  });
  const endMs = lines[lines.length - 1]?.atMs ?? 0;
  const report: DecisionReport = { decisions: 0, superseded: 0, worstMs: 0, violations: [] };
  for (const d of decisions) {
    if (d.atMs < fromMs || d.atMs + DECISION_BOUND_MS > endMs) continue;
    report.decisions++;
    const vip = vipOf.get(d.service)!;
    const deadline = d.atMs + DECISION_BOUND_MS;
    const later = decisions.find((x) => x.index > d.index && x.service === d.service && x.host === d.host && x.pool !== d.pool && x.atMs <= deadline);
    const removed = ops.find((o) => o.index > d.index && o.vip === vip && o.host === undefined && !o.pool && o.atMs <= deadline);
    // The kernel's state for this server a second later, by the manager's lines.
    let inKernel: boolean | undefined;
    let reachedAt: number | undefined;
    for (const o of ops) {
      if (o.atMs > deadline) break;
      if (o.vip !== vip) continue;
      if (o.host === undefined) {
        if (!o.pool) inKernel = false; // service deleted
        continue;
      }
      if (o.host !== d.host) continue;
      inKernel = o.pool;
      if (o.index > d.index && o.pool === d.pool && reachedAt === undefined) reachedAt = o.atMs;
    }
    if (later !== undefined || removed !== undefined) {
      report.superseded++;
      continue;
    }
    if (inKernel === d.pool) {
      if (reachedAt !== undefined) report.worstMs = Math.max(report.worstMs, reachedAt - d.atMs);
      continue;
    }
    const next = ops.find((o) => o.index > d.index && o.vip === vip && o.host === d.host && o.pool === d.pool);
    report.violations.push({
      check: 'd',
      atMs: d.atMs,
      text: `${d.service}: "${d.text}" not in the kernel within ${DECISION_BOUND_MS} ms (${next ? `applied ${next.atMs - d.atMs} ms later` : 'never applied'})`,
    });
  }
  return report;
}

/**
 * e, from the daemon's side: a BGP session that goes down withdraws every VIP
 * at the router, even when it comes back within milliseconds (too fast for a
 * sample to see). Outside a BIRD restart, nothing the chaos does may take it
 * down: a reload sends new attributes, it does not reset the session.
 */
export function checkBgpSessions(record: ChaosRecord, lines: readonly LogLine[], fromMs: number): Violation[] {
  return lines
    .filter((l) => l.atMs >= fromMs && l.system.startsWith('bgp') && /BGP session down|BGP speaker shut down/.test(l.text))
    .filter((l) => !record.birdWindows.some((w) => w.fromMs <= l.atMs && l.atMs <= w.toMs + LAB_SLACK_MS))
    .map((l) => ({ check: 'e' as const, atMs: l.atMs, text: `BGP outside a BIRD restart: "${l.text}" (the router withdrew every VIP)` }));
}

/**
 * The worst time from a server's mode change to the IPVS line that took it
 * out (depool) or put it back (repool), over the runs where the monitors did
 * it (a depool the threshold refused, a server disabled or enabled, is left out): the
 * figures the test prints (asserted through b and c).
 */
export function worstDelays(record: ChaosRecord, lines: readonly LogLine[], service: ServiceDef): { depoolMs: number; repoolMs: number } {
  let depoolMs = 0;
  let repoolMs = 0;
  for (const rs of record.servers) {
    const mine = lines.filter((l) => (l.system.split(' ')[0] === service.name && l.text.endsWith(` server ${rs.ip}`)) || (l.system.startsWith('ipvs') && l.text.includes(`${service.vip}:80 -> ${rs.ip}:80`)));
    for (const run of record.runs.get(rs.name) ?? []) {
      const inRun = mine.filter((l) => l.atMs >= run.startMs && l.atMs < run.endMs);
      const decision = inRun.find((l) => /^(Depooling|Could not depool|Repooling|Pooling) server /.test(l.text));
      // `Pooling` follows a pool edit (a server enabled), not its health: left out of the figure.
      if (decision === undefined || !(run.up ? /^Repooling / : /^Depooling /).test(decision.text)) continue;
      const op = inRun.find((l) => l.atMs >= decision.atMs && l.text.startsWith(`IPVS: ${run.up ? 'add' : 'delete'} server`));
      if (op === undefined) continue;
      if (run.up) repoolMs = Math.max(repoolMs, op.atMs - run.startMs);
      else depoolMs = Math.max(depoolMs, op.atMs - run.startMs);
    }
  }
  return { depoolMs, repoolMs };
}
