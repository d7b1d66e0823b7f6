/**
 * `pybal status`: asks the running daemon for its snapshot and alerts (GET
 * /status and /alerts on its Unix socket, or an http URL), prints them for an
 * operator, and says in its exit status and last line whether pybal is
 * healthy (health.ts decides). Light on purpose: no daemon module is loaded.
 */
import type { ServerSnapshot, ServiceSnapshot } from '../coordinator/types.js';
import type { BgpStatusValue, DaemonSnapshot, IpvsStatsValue } from '../api/types.js';
import type { SloppyStatus } from '../ipvs/sloppy.js';
import type { TrafficValue } from '../ipvs/types.js';
import { formatHostPort } from '../runtime/ip.js';
import { describeTarget, getStatusAndAlerts } from './control-client.js';
import { assessHealth, type Health } from './health.js';

export interface StatusOptions {
  /** The daemon's Unix socket; the default when neither is given. */
  readonly socket?: string | undefined;
  /** An http URL of the instrumentation API instead (e.g. http://127.0.0.1:9090). */
  readonly url?: string | undefined;
  /** How long to wait for the daemon; default 5 s. */
  readonly timeoutMs?: number;
  /** ANSI colours; default: when the output is a TTY. */
  readonly color?: boolean;
}

export interface StatusOutput {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

const DEFAULT_TIMEOUT_MS = 5000;

/** `pybal status`'s exit statuses. */
export const StatusExit = {
  /** Printed, and healthy. */
  Healthy: 0,
  /** Printed, and something is degraded (a warning or a critical problem of health.ts). */
  Degraded: 1,
  /** The daemon could not be asked (not running, socket refused, no answer in time, not a pybal answer). */
  Unreachable: 2,
} as const;

/** Prints the daemon's status; resolves with a StatusExit value. */
export async function runStatus(options: StatusOptions, out: StatusOutput, err: StatusOutput = out): Promise<number> {
  const target = { socket: options.socket, url: options.url, timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS };
  let answer;
  try {
    answer = await getStatusAndAlerts(target);
  } catch (error) {
    err.write(`pybal status: cannot get the status from the daemon at ${describeTarget(target)}: ${error instanceof Error ? error.message : String(error)}\n`);
    err.write('Health: UNREACHABLE: is pybal running? (Use --socket or --url to point at it.)\n');
    return StatusExit.Unreachable;
  }
  const color = options.color ?? out.isTTY === true;
  const health = assessHealth(answer.snapshot, answer.alerts);
  out.write(formatStatus(answer.snapshot, color));
  out.write(`\n${formatHealthLine(health, color)}\n`);
  return health.level === 'ok' ? StatusExit.Healthy : StatusExit.Degraded;
}

/** `Health: OK`, or `Health: DEGRADED: ...` naming every problem, critical ones first. */
export function formatHealthLine(health: Health, color = false): string {
  if (health.level === 'ok') return 'Health: OK';
  const line = `Health: DEGRADED: ${health.problems.map((p) => `${p.level === 'critical' ? 'CRITICAL' : 'WARNING'} ${p.text}`).join('; ')}`;
  return color ? `${RED}${line}${RESET}` : line;
}

const RED = '\u001b[31m';
const BOLD = '\u001b[1m';
const RESET = '\u001b[0m';

interface Cell {
  readonly text: string;
  /** Shown in red when colours are on. */
  readonly alert?: boolean;
}

/** Left-aligned columns, two spaces apart; colour codes are added after padding so they do not skew widths. */
function formatTable(header: readonly string[], rows: readonly (readonly Cell[])[], indent: string, color: boolean): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]?.text.length ?? 0)));
  const line = (cells: readonly Cell[]): string =>
    indent +
    cells
      .map((cell, i) => {
        const padded = i === cells.length - 1 ? cell.text : cell.text.padEnd(widths[i] ?? 0);
        return color && cell.alert ? `${RED}${padded}${RESET}` : padded;
      })
      .join('  ')
      .trimEnd() +
    '\n';
  return line(header.map((text) => ({ text }))) + rows.map(line).join('');
}

function yesNo(value: boolean): string {
  return value ? 'yes' : 'no';
}

/** The reason an operator wants: a down monitor's latest, else the latest report, else a resolution error. */
function lastReason(server: ServerSnapshot): string {
  if (server.resolveError !== undefined) return `unresolved: ${server.resolveError}`;
  const reported = server.monitors.filter((m) => m.sinceWallMs !== undefined);
  const down = reported.filter((m) => m.up === false);
  const pick = (down.length > 0 ? down : reported).reduce<(typeof reported)[number] | undefined>(
    (best, m) => (best === undefined || (m.sinceWallMs ?? 0) > (best.sinceWallMs ?? 0) ? m : best),
    undefined,
  );
  if (pick) return `${pick.kind}: ${pick.reason}`;
  return server.monitors.length === 0 ? 'no monitors' : 'no result yet';
}

/** A count for people: as it is below 10,000, else 12.3k, 4.5M, 6.7G, 8.9T. */
export function formatCount(n: number): string {
  if (n < 10_000) return String(Math.round(n));
  for (const [limit, unit] of [
    [1e6, 'k'],
    [1e9, 'M'],
    [1e12, 'G'],
  ] as const) {
    if (n < limit) return `${(n / (limit / 1000)).toFixed(1)}${unit}`;
  }
  return `${(n / 1e12).toFixed(1)}T`;
}

/** `traffic: 120 conns (3/s), in 1.2k pkts 96.0k bytes (10 pkt/s), out ...`: a service's counters in one line. */
export function formatTraffic(t: TrafficValue): string {
  const side = (pkts: number, bytes: number, pps: number, bps: number): string =>
    `${formatCount(pkts)} pkts ${formatCount(bytes)} bytes (${formatCount(pps)} pkt/s, ${formatCount(bps)} B/s)`;
  return (
    `traffic: ${formatCount(t.connections)} conns (${formatCount(t.connectionsPerSec)}/s), ` +
    `in ${side(t.inPackets, t.inBytes, t.inPacketsPerSec, t.inBytesPerSec)}, ` +
    `out ${side(t.outPackets, t.outBytes, t.outPacketsPerSec, t.outBytesPerSec)}, ` +
    `read ${new Date(t.readAtWallMs).toISOString()}`
  );
}

function formatService(service: ServiceSnapshot, color: boolean): string {
  const pooled = service.servers.filter((s) => s.pooled).length;
  // The kernel service first when it is a firewall mark; the forwarding when it is not PyBal's direct routing.
  const mark = service.fwmark !== undefined ? `fwmark ${service.fwmark}, checks ` : '';
  const forwarding = service.forwardMethod !== 'dr' ? `  ${service.forwardMethod}` : '';
  const title = `${service.name}  ${mark}${formatHostPort(service.ip, service.port)}/${service.protocol}  scheduler ${service.scheduler}${forwarding}`;
  const summary =
    `  pooled ${pooled}/${service.servers.length}, depool threshold ${service.depoolThreshold}, ` +
    `can depool: ${yesNo(service.canDepool)}, could not depool: ${service.couldNotDepoolTotal} time(s)\n`;
  let text = (color ? `${BOLD}${title}${RESET}` : title) + '\n' + summary;
  if (service.traffic !== undefined) text += `  ${formatTraffic(service.traffic)}\n`;
  if (service.awaitingPool) text += '  waiting for the first pool\n';
  if (service.poolError !== undefined) text += `  pool source error (last good pool in force): ${service.poolError}\n`;
  if (service.servers.length === 0) return `${text}  no servers\n`;
  // The kernel's counters, when read: connections in all, per second now, established and other now.
  const traffic = service.traffic !== undefined;
  const counters = (s: ServerSnapshot): Cell[] =>
    traffic
      ? [
          { text: s.traffic === undefined ? '-' : formatCount(s.traffic.connections) },
          { text: s.traffic === undefined ? '-' : formatCount(s.traffic.connectionsPerSec) },
          { text: s.traffic === undefined ? '-' : `${s.traffic.activeConnections ?? 0}/${s.traffic.inactiveConnections ?? 0}`, alert: s.quiet !== undefined },
        ]
      : [];
  const rows = service.servers.map((s): Cell[] => [
    { text: s.host },
    { text: s.address ?? '-', alert: s.address === undefined },
    { text: String(s.weight) },
    { text: yesNo(s.enabled) },
    { text: yesNo(s.up), alert: !s.up && s.enabled },
    { text: s.pooledDown ? 'yes (DOWN)' : s.quiet !== undefined ? 'yes (QUIET)' : yesNo(s.pooled), alert: s.pooledDown || s.quiet !== undefined },
    ...counters(s),
    { text: lastReason(s) },
  ]);
  const header = ['HOST', 'ADDRESS', 'WEIGHT', 'ENABLED', 'UP', 'POOLED', ...(traffic ? ['CONNS', 'CONN/S', 'ACT/INACT'] : []), 'LAST MONITOR REASON'];
  text += formatTable(header, rows, '  ', color);
  for (const s of service.servers) {
    if (s.quiet === undefined) continue;
    const line = `  ${s.host} gets no traffic while its siblings do (${s.quiet.reason}, since ${new Date(s.quiet.sinceWallMs).toISOString()}): ${s.quiet.detail}`;
    text += (color ? `${RED}${line}${RESET}` : line) + '\n';
  }
  return text;
}

/** `drained: no`, or `drained: yes, since ...` with what the routes carry. */
export function formatDrain(bgp: Pick<BgpStatusValue, 'drained' | 'drainedSinceWallMs' | 'drainMed'>): string {
  if (!bgp.drained) return 'drained: no';
  const since = bgp.drainedSinceWallMs === undefined ? '' : ` since ${new Date(bgp.drainedSinceWallMs).toISOString()}`;
  return `drained: yes${since} (every VIP announced with GRACEFUL_SHUTDOWN 65535:0 and MED ${bgp.drainMed})`;
}

function formatBgp(bgp: BgpStatusValue, color: boolean): string {
  // An older daemon's snapshot has no drain fields: say nothing rather than "no".
  const drainText = bgp.drained === undefined ? '' : `, ${formatDrain(bgp)}`;
  const drain = color && bgp.drained ? `${RED}${drainText}${RESET}` : drainText;
  if (bgp.starting === true) return `BGP: starting once every service is programmed${drain}\n`;
  if (!bgp.enabled) return `BGP: disabled${drain}\n`;
  let text = `BGP: enabled, local AS ${bgp.localAsn ?? '?'}${drain}\n`;
  if (bgp.peers.length === 0) return `${text}  no peers\n`;
  const rows = bgp.peers.map((p): Cell[] => [
    { text: p.peer },
    { text: p.state, alert: p.state !== 'Established' },
    { text: p.establishedAtWallMs === undefined ? '-' : new Date(p.establishedAtWallMs).toISOString() },
    { text: String(p.prefixesSent) },
    { text: p.lastError ?? '' },
  ]);
  text += formatTable(['PEER', 'STATE', 'ESTABLISHED SINCE', 'PREFIXES SENT', 'LAST ERROR'], rows, '  ', color);
  for (const p of bgp.peers) {
    if (p.bfd === undefined) continue;
    const why = p.bfd.state === 'Up' || p.bfd.diagnostic === 'No Diagnostic' ? '' : ` (${p.bfd.diagnostic})`;
    text += `  ${p.peer} BFD: ${p.bfd.state}${why} since ${new Date(p.bfd.sinceWallMs).toISOString()}\n`;
  }
  for (const p of bgp.peers) {
    const survived = [
      [p.updatesTreatedAsWithdraw, 'UPDATE(s) treated as withdraw'],
      [p.attributesDiscarded, 'attribute(s) discarded'],
      [p.routeRefreshesIgnored, 'ROUTE-REFRESH(es) ignored'],
    ] as const;
    if (survived.every(([n]) => n === 0)) continue;
    const counts = survived.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`);
    const last = p.lastUpdateError === undefined ? '' : `; last: ${p.lastUpdateError}`;
    text += `  ${p.peer} sent errors the session survived: ${counts.join(', ')}${last}\n`;
  }
  return text;
}

function formatIpvs(ipvs: IpvsStatsValue | undefined): string {
  if (!ipvs) return 'IPVS: no statistics\n';
  const last = ipvs.lastReconcileMs === undefined ? 'none yet' : `${ipvs.lastReconcileMs.toFixed(1)} ms`;
  let text =
    `IPVS: ${ipvs.reconciles} reconcile(s) (${ipvs.failedReconciles} failed), ` +
    `${ipvs.requests} request(s) (${ipvs.failedRequests} failed), ${ipvs.resyncs} resync(s), ` +
    `${ipvs.drift} drift(s), last reconcile ${last}\n`;
  if (ipvs.lastError !== undefined) text += `  last error: ${ipvs.lastError}\n`;
  return text;
}

/** `IPVS net.ipv4.vs.sloppy_tcp = 1 (ipvs-sloppy-tcp = yes)`, and what a 0 costs. */
function formatSysctls(sysctls: readonly SloppyStatus[] | undefined): string {
  let text = '';
  for (const s of sysctls ?? []) {
    const setting = s.setting === 'unset' ? `${s.key} not set: the kernel's value` : `${s.key} = ${s.setting}`;
    text += `IPVS ${s.sysctl} = ${s.value ?? 'unknown'} (${setting})`;
    if (s.movedConnectionsReset) text += `: connections moved here from another director are reset (${s.services.join(', ')})`;
    text += '\n';
    if (s.warning !== undefined && !s.movedConnectionsReset) text += `  ${s.warning}\n`;
  }
  return text;
}

/** The whole report, as `pybal status` prints it. */
export function formatStatus(snapshot: DaemonSnapshot, color = false): string {
  const mode = snapshot.dryRun ? ' (dry run: the kernel is not changed)' : '';
  const parts = [`pybal ${snapshot.version}, started ${new Date(snapshot.startedAtWallMs).toISOString()}${mode}\n`];
  if (snapshot.services.length === 0) parts.push('no services\n');
  for (const service of snapshot.services) parts.push(formatService(service, color));
  parts.push(formatBgp(snapshot.bgp, color));
  parts.push(formatIpvs(snapshot.ipvs) + formatSysctls(snapshot.ipvsSysctls));
  return parts.join('\n');
}
