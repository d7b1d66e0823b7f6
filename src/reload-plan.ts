/**
 * The reload planner: from the running configuration and the new one, what
 * each component must do (pure). The composition root only executes the plan.
 *
 * Keys are compared on their effective values as the file spells them (the
 * same rendering as `check-config --print`), so a default written out, a
 * reordered list of equal values or a moved section changes nothing, and the
 * plan can say which keys changed in the operator's own words.
 *
 * What each kind of change costs:
 * - a service's IPVS keys: its kernel service is edited in place (or, for a
 *   new protocol/ip/port, the old one removed and the new one added); its
 *   servers, their health and their monitors stay;
 * - its monitor keys (or its port, which the checks target): its monitors
 *   restart, and every server keeps its last known state until the new
 *   monitors report (a known-down server is never pooled again by a reload);
 * - its `config` (pool URL): the new source is read, the pool it gives is
 *   applied like any pool change;
 * - its depool-threshold: the policy is applied again at once;
 * - its BGP keys: only the announcements change;
 * - its address family (an IPv4 VIP replaced by an IPv6 one): the service is
 *   replaced, carrying the health it knew by server name.
 * Global keys:
 * - BGP session keys (ASN, router id, peers, hold time, listen addresses and
 *   port, the families announced, bgp on or off): the speaker restarts
 *   (sessions are reset, routes withdrawn and announced again);
 * - bgp-connect-retry matters only once a session fails: it applies when the
 *   speaker next starts, never resetting sessions that are up (said in the log);
 * - BGP attribute keys (MED, communities, AS path, next hops, bgp-drain and
 *   bgp-drain-med): the new attributes are sent as UPDATEs on the sessions
 *   that stay up; a changed bgp-drain drains or undrains the director (a
 *   drain asked at run time stays through reloads that leave the key alone);
 * - instrumentation keys: the HTTP API listens again;
 * - ipvs-resync-interval: the manager's period changes;
 * - ipvs-stats-interval: the counters reader's period changes (0 stops it);
 * - ipvs-sync-*: the kernel's sync daemons are set as the new keys say (left
 *   alone when ipvs-sync-daemon is gone from the file);
 * - runcommand-max-concurrent: the shared command limiter takes the new cap;
 * - event-history-size: the history keeps its latest events that fit.
 */
import { announcedFamilies } from './bgp/announcements.js';
import { formatGlobal, formatService, type Values } from './config/format-config.js';
import type { GLOBAL_KEYS, SERVICE_KEYS } from './config/keys.js';
import type { AddressFamily, Config, GlobalConfig, ServiceConfig } from './config/types.js';
import { finish } from './runtime/sliced.js';

/** Keys as keys.ts lists them: a misspelt key in the sets below does not compile. */
type ServiceKey = (typeof SERVICE_KEYS)[number];
type GlobalKey = (typeof GLOBAL_KEYS)[number];

/** Keys of a service that define its kernel service. */
const IPVS_KEYS: ReadonlySet<string> = new Set<ServiceKey>([
  'protocol',
  'ip',
  'port',
  'scheduler',
  'scheduler-flags',
  'ops',
  'forward-method',
  'tunnel-type',
  'tunnel-port',
  'tunnel-checksum',
  'fwmark',
  'real-port',
  'persistence-timeout',
  'persistence-netmask',
  'persistence-engine',
  'upper-threshold',
  'lower-threshold',
]);
/** Keys of a service that change only what is announced. */
const SERVICE_BGP_KEYS: ReadonlySet<string> = new Set<ServiceKey>(['ip', 'bgp', 'bgp-med', 'bgp-communities', 'bgp-withdraw-when-down']);

/** Global keys a running BGP session depends on: a change restarts the speaker. */
export const BGP_SESSION_KEYS: ReadonlySet<string> = new Set<GlobalKey>([
  'bgp',
  'bgp-local-asn',
  'bgp-peer-address',
  'bgp-local-ips',
  'bgp-local-port',
  'bgp-peer-asn',
  'bgp-hold-time',
  'bgp-router-id',
  'bgp-graceful-restart',
  'bgp-bfd',
  'bgp-bfd-interval',
  'bgp-bfd-multiplier',
]);
/** Global keys that change only the attributes of what is announced. */
export const BGP_ATTRIBUTE_KEYS: ReadonlySet<string> = new Set<GlobalKey>([
  'bgp-as-path',
  'bgp-med',
  'bgp-nexthop-ipv4',
  'bgp-nexthop-ipv6',
  'bgp-communities',
  'bgp-drain',
  'bgp-drain-med',
]);
const API_KEYS: ReadonlySet<string> = new Set<GlobalKey>(['instrumentation', 'instrumentation_port', 'instrumentation_ips']);
/** Global keys that take effect only when the BGP speaker next starts (never worth a session reset). */
const DEFERRED_KEYS: ReadonlySet<string> = new Set<GlobalKey>(['bgp-connect-retry']);
/** Global keys read only when pybal starts. */
// The data-path marks and sources are taken by every server's checks as they start.
const RESTART_KEYS: ReadonlySet<string> = new Set<GlobalKey>(['dry-run', 'datapath-fwmark-base', 'datapath-source-ipv4', 'datapath-source-ipv6', 'memory-saving']);

export type ServiceAction =
  /** New in the file: a coordinator, a pool source, monitors. */
  | 'add'
  /** Gone from the file: stopped, and its kernel service deleted. */
  | 'remove'
  /** Changed in place: see the flags. */
  | 'update'
  /** Its address family changed: a new coordinator, seeded with the health the old one knew. */
  | 'replace'
  | 'keep';

export interface ServicePlan {
  readonly name: string;
  readonly action: ServiceAction;
  /** The keys whose effective value changed, as the file spells them. */
  readonly keys: readonly string[];
  /** The kernel service's attributes or key changed. */
  readonly ipvs: boolean;
  /** The monitors must be restarted (their options, their list, or the port they check). */
  readonly monitors: boolean;
  /** The pool source URL changed. */
  readonly pool: boolean;
  /** The depool threshold changed. */
  readonly policy: boolean;
  /** What is announced for it may have changed. */
  readonly announce: boolean;
}

export type BgpAction =
  /** Nothing BGP-related changed. */
  | 'keep'
  /** Sessions stay; the announcements are recomputed and the differences sent. */
  | 'announce'
  | 'start'
  | 'stop'
  | 'restart';

export interface ReloadPlan {
  /** The new file's services in its order, then the removed ones. */
  readonly services: readonly ServicePlan[];
  /** Global keys whose effective value changed. */
  readonly globalKeys: readonly string[];
  readonly bgp: BgpAction;
  /** Why the speaker restarts (keys, or `families`), when it does. */
  readonly bgpRestartReasons: readonly string[];
  /** The instrumentation API must listen again. */
  readonly api: boolean;
  /** The new resync period, when it changed. */
  readonly ipvsResyncIntervalMs: number | undefined;
  /** The new period of the IPVS counters reader, when it changed (0: off). */
  readonly ipvsStatsIntervalMs: number | undefined;
  /** An ipvs-sync-* key changed: the sync daemons are set again. */
  readonly ipvsSync: boolean;
  /** The new cap on concurrent RunCommand checks, when it changed. */
  readonly runcommandMaxConcurrent: number | undefined;
  /** The new event-history-size, when it changed. */
  readonly eventHistorySize: number | undefined;
  /** The new bgp-drain, when it changed: the director is drained (true) or undrained (false). */
  readonly drain: boolean | undefined;
  /** Changed keys that take effect only when the BGP speaker next starts. */
  readonly deferred: readonly string[];
  /** Changed keys that take effect only when pybal restarts. */
  readonly atRestart: readonly string[];
}

/** Keys present in either map whose values differ, in a stable order (a's keys, then b's new ones). */
function changedKeys(a: Values, b: Values): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.filter((k) => a[k] !== b[k]);
}

/** A monitor's own key (`proxyfetch.url`) or the list of monitors. */
function isMonitorKey(key: string): boolean {
  return key === 'monitors' || key.includes('.');
}

export function planService(before: ServiceConfig, after: ServiceConfig): ServicePlan {
  const keys = changedKeys(formatService(before), formatService(after));
  const has = (set: ReadonlySet<string>): boolean => keys.some((k) => set.has(k));
  const base = {
    name: after.name,
    keys,
    ipvs: has(IPVS_KEYS),
    // The checks target the port, or the real servers' own port; data-path checks the VIP, by the forwarding method.
    monitors:
      keys.some(isMonitorKey) ||
      keys.includes('port') ||
      keys.includes('real-port') ||
      (after.dataPathMonitors.length > 0 && (keys.includes('ip') || keys.includes('forward-method'))),
    pool: keys.includes('config'),
    policy: keys.includes('depool-threshold'),
    announce: has(SERVICE_BGP_KEYS),
  };
  if (keys.length === 0) return { ...base, action: 'keep' };
  return { ...base, action: before.family !== after.family ? 'replace' : 'update' };
}

/** What a running speaker depends on, as one comparable value; '' when no speaker should run. */
export function bgpSessionSettings(global: GlobalConfig, services: readonly ServiceConfig[]): string {
  const families = announcedFamilies(global, services);
  if (!wantsBgp(global, families)) return '';
  const values = formatGlobal(global);
  return JSON.stringify({ session: [...BGP_SESSION_KEYS].map((k) => values[k] ?? null), families });
}

function wantsBgp(global: GlobalConfig, families: readonly AddressFamily[]): boolean {
  return global.bgp && families.length > 0;
}

/** Whether BGP runs with this configuration: bgpSessionSettings is not empty, without formatting the settings. */
export function bgpWanted(global: GlobalConfig, services: readonly ServiceConfig[]): boolean {
  return wantsBgp(global, announcedFamilies(global, services));
}

function planBgp(running: Config, next: Config, globalKeys: readonly string[], services: readonly ServicePlan[]): Pick<ReloadPlan, 'bgp' | 'bgpRestartReasons'> {
  const before = bgpSessionSettings(running.global, running.services);
  const after = bgpSessionSettings(next.global, next.services);
  if (before === '' && after === '') return { bgp: 'keep', bgpRestartReasons: [] };
  if (before === '') return { bgp: 'start', bgpRestartReasons: [] };
  if (after === '') return { bgp: 'stop', bgpRestartReasons: [] };
  if (before !== after) {
    const reasons = globalKeys.filter((k) => BGP_SESSION_KEYS.has(k));
    const familiesBefore = announcedFamilies(running.global, running.services).join();
    const familiesAfter = announcedFamilies(next.global, next.services).join();
    if (familiesBefore !== familiesAfter) reasons.push('announced address families');
    return { bgp: 'restart', bgpRestartReasons: reasons };
  }
  const announce =
    globalKeys.some((k) => BGP_ATTRIBUTE_KEYS.has(k)) || services.some((s) => s.action !== 'keep' && (s.announce || s.action !== 'update'));
  return { bgp: announce ? 'announce' : 'keep', bgpRestartReasons: [] };
}

const EMPTY_FLAGS = { keys: [], ipvs: true, monitors: true, pool: true, policy: true, announce: true } as const;

export function planReload(running: Config, next: Config): ReloadPlan {
  return finish(planReloadSteps(running, next));
}

/**
 * planReload as a job for a sliced runner (src/runtime/sliced.ts): it yields
 * at each service, whose two configurations it formats to compare them (at
 * 1,000 services, 0.3 to 0.5 s of the lab guest's CPU).
 */
export function* planReloadSteps(running: Config, next: Config): Generator<unknown, ReloadPlan, undefined> {
  const before = new Map(running.services.map((s) => [s.name, s]));
  const names = new Set(next.services.map((s) => s.name));
  const services: ServicePlan[] = [];
  for (const s of next.services) {
    const old = before.get(s.name);
    services.push(old ? planService(old, s) : { name: s.name, action: 'add', ...EMPTY_FLAGS });
    yield;
  }
  for (const s of running.services) if (!names.has(s.name)) services.push({ name: s.name, action: 'remove', ...EMPTY_FLAGS });
  const globalKeys = changedKeys(formatGlobal(running.global), formatGlobal(next.global));
  return {
    services,
    globalKeys,
    ...planBgp(running, next, globalKeys, services),
    api: globalKeys.some((k) => API_KEYS.has(k)),
    ipvsResyncIntervalMs: globalKeys.includes('ipvs-resync-interval') ? next.global.ipvsResyncIntervalMs : undefined,
    ipvsStatsIntervalMs: globalKeys.includes('ipvs-stats-interval') ? next.global.ipvsStatsIntervalMs : undefined,
    ipvsSync: globalKeys.some((k) => k.startsWith('ipvs-sync-')),
    runcommandMaxConcurrent: globalKeys.includes('runcommand-max-concurrent') ? next.global.runcommandMaxConcurrent : undefined,
    eventHistorySize: globalKeys.includes('event-history-size') ? next.global.eventHistorySize : undefined,
    drain: globalKeys.includes('bgp-drain') ? next.global.bgpDrain : undefined,
    deferred: globalKeys.filter((k) => DEFERRED_KEYS.has(k)),
    atRestart: globalKeys.filter((k) => RESTART_KEYS.has(k)),
  };
}

/** The log lines a reload says: one summary, then one per changed service naming its keys. */
export function describePlan(plan: ReloadPlan): string[] {
  const named = (action: ServiceAction): string[] => plan.services.filter((s) => s.action === action).map((s) => s.name);
  const added = named('add');
  const removed = named('remove');
  const changed = plan.services.filter((s) => s.action === 'update' || s.action === 'replace');
  const unchanged = named('keep');
  const lists = [
    ['added', added],
    ['removed', removed],
    ['changed', changed.map((s) => s.name)],
  ] as const;
  const names = lists
    .filter(([, list]) => list.length > 0)
    .map(([kind, list]) => `; ${kind}: ${list.join(', ')}`)
    .join('');
  const lines = [
    `Configuration reloaded: ${added.length} added, ${removed.length} removed, ${changed.length} changed, ${unchanged.length} unchanged${names}`,
  ];
  for (const s of changed) {
    const how = s.action === 'replace' ? ' (address family changed: service replaced)' : '';
    lines.push(`Service ${s.name} changed: ${s.keys.join(', ')}${how}`);
  }
  if (plan.globalKeys.length > 0) lines.push(`[global] changed: ${plan.globalKeys.join(', ')}`);
  return lines;
}
