/**
 * `pybal check`: a monitoring plugin (Icinga, Nagios, Sensu, ...) following
 * the Monitoring Plugins development guidelines: one line of output,
 * `PYBAL <STATE> - <text> | <perfdata>`, and the exit status of that state.
 * The state is health.ts's decision over the daemon's GET /status and
 * GET /alerts (the latter exactly PyBal's /alerts).
 *
 * When the daemon cannot be asked:
 * - CRITICAL when nothing answers (no socket, connection refused, no answer
 *   within --timeout): the guidelines keep UNKNOWN for failures of the plugin
 *   itself and report a service that does not answer (check_tcp's refused
 *   connection, a timeout) as CRITICAL; a director whose pybal is down or
 *   hung manages nothing, so it must page;
 * - UNKNOWN when the plugin cannot do its job although the daemon may be
 *   fine: the socket is the pybal user's and the check runs as neither root nor pybal, or what
 *   answered is not pybal (a wrong --url), or a usage error.
 */
import type { HealthCounts } from './health.js';
import { ControlError, describeTarget, getStatusAndAlerts } from './control-client.js';
import { assessHealth } from './health.js';

export interface CheckOptions {
  readonly socket?: string | undefined;
  readonly url?: string | undefined;
  /** Default 10 s, as the Monitoring Plugins' own. */
  readonly timeoutMs?: number;
}

/** The Monitoring Plugins' exit statuses. */
export const PluginExit = { Ok: 0, Warning: 1, Critical: 2, Unknown: 3 } as const;
export type PluginState = keyof typeof PluginExit;

export const DEFAULT_CHECK_TIMEOUT_MS = 10_000;

/** Plugin output may hold neither a `|` (it starts the perfdata) nor a line break. */
function clean(text: string): string {
  return text.replace(/\|/g, '/').replace(/\s*\n\s*/g, ' ');
}

/** `'label'=value[UOM];warn;crit;min;max`, without the fields we do not set. */
export function formatPerfdata(counts: HealthCounts): string {
  const fields: [string, number | undefined, string][] = [
    ['services', counts.services, ''],
    ['servers', counts.servers, ''],
    ['enabled', counts.enabled, ''],
    ['up', counts.up, ''],
    ['pooled', counts.pooled, ''],
    ['pooled_down', counts.pooledDown, ''],
    ['bgp_peers', counts.bgpPeers, ''],
    ['bgp_established', counts.bgpEstablished, ''],
    ['ipvs_failed_reconciles', counts.ipvsFailedReconciles, 'c'],
    ['event_loop_stalls', counts.eventLoopStalls, 'c'],
  ];
  return fields
    .filter((f): f is [string, number, string] => f[1] !== undefined)
    .map(([label, value, unit]) => `${label}=${value}${unit}`)
    .join(' ');
}

export function formatPluginLine(state: PluginState, text: string, perfdata?: string): string {
  return `PYBAL ${state.toUpperCase()} - ${clean(text)}${perfdata ? ` | ${perfdata}` : ''}`;
}

/** Runs the check, writes its one line, resolves with its exit status. */
export async function runCheck(options: CheckOptions, out: (line: string) => void): Promise<number> {
  const target = { socket: options.socket, url: options.url, timeoutMs: options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS };
  const where = describeTarget(target);
  let answer;
  try {
    answer = await getStatusAndAlerts(target);
  } catch (error) {
    const kind = error instanceof ControlError ? error.kind : 'answer';
    const message = error instanceof Error ? error.message : String(error);
    if (kind === 'unreachable') {
      out(formatPluginLine('Critical', `pybal does not answer at ${where}: ${message}`));
      return PluginExit.Critical;
    }
    const hint = kind === 'denied' ? " (the control socket is the pybal user's, mode 0600: run the check as root or as pybal, e.g. through sudo -u pybal)" : '';
    out(formatPluginLine('Unknown', `cannot ask pybal at ${where}: ${message}${hint}`));
    return PluginExit.Unknown;
  }
  const health = assessHealth(answer.snapshot, answer.alerts);
  const perfdata = formatPerfdata(health.counts);
  if (health.level === 'ok') {
    const c = health.counts;
    const bgp = c.bgpPeers > 0 ? `, BGP ${c.bgpEstablished}/${c.bgpPeers} Established` : '';
    const dry = answer.snapshot.dryRun ? ' (dry run)' : '';
    out(formatPluginLine('Ok', `pybal ${answer.snapshot.version}${dry}: ${c.services} service(s), ${c.pooled}/${c.servers} server(s) pooled${bgp}`, perfdata));
    return PluginExit.Ok;
  }
  const state: PluginState = health.level === 'critical' ? 'Critical' : 'Warning';
  out(formatPluginLine(state, health.problems.map((p) => (p.level === health.level ? p.text : `${p.level.toUpperCase()}: ${p.text}`)).join('; '), perfdata));
  return PluginExit[state];
}
