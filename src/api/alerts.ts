/**
 * PyBal's /alerts (§8.1): critical when some pool keeps down servers pooled,
 * warning when a pool is too small to depool even one server, OK otherwise.
 * New: a warning too while a service's pool source is in error (unreadable,
 * refused as empty, or with skipped lines), since its last good pool is then
 * in force instead of what the source says.
 * New: quiet servers (ipvs/quiet-servers.ts), pooled and up while the
 * kernel's counters say they take no part in the traffic their siblings
 * serve: critical when they get connections and do not answer them (clients
 * fail: no replies through a NAT director, none established behind a DR
 * one), a warning when they get no connections at all (the others serve).
 * New: a warning for servers failing a data-path check (datapath-check),
 * with the check's reason: reached at the VIP the way clients reach them,
 * they fail, whatever they answer at their own address.
 */
import type { ServiceSnapshot } from '../coordinator/types.js';
import { negotiated, type ApiResponse } from './response.js';

export type AlertStatus = 'ok' | 'warning' | 'critical';

export interface AlertsValue {
  readonly status: AlertStatus;
  readonly msg: string;
}

/** PyBal's rule: with more than one server, not even one can be depooled (T177815: one server is fine). */
export function tooSmallToDepool(service: ServiceSnapshot): boolean {
  const total = service.servers.length;
  return total > 1 && total < total * service.depoolThreshold + 1;
}

export function computeAlerts(services: readonly ServiceSnapshot[]): AlertsValue {
  const critical: string[] = [];
  const warning: string[] = [];
  for (const service of services) {
    const pooledDown = service.servers.filter((s) => s.pooledDown).map((s) => s.host);
    if (pooledDown.length > 0) {
      critical.push(`${service.name}: Servers ${pooledDown.join(', ')} are marked down but pooled`);
    } else if (tooSmallToDepool(service)) {
      warning.push(`Pool ${service.name} is too small to allow depooling. `);
    }
    const unanswered = service.servers.filter((s) => s.quiet !== undefined && s.quiet.reason !== 'no-connections').map((s) => s.host);
    if (unanswered.length > 0) critical.push(`${service.name}: Servers ${unanswered.join(', ')} are pooled but do not answer their connections`);
    const idle = service.servers.filter((s) => s.quiet?.reason === 'no-connections').map((s) => s.host);
    if (idle.length > 0) warning.push(`Pool ${service.name} has servers that get no connections while their siblings do: ${idle.join(', ')}. `);
    const dataPath = service.servers.flatMap((s) => s.monitors.filter((m) => m.dataPath && m.up === false).map((m) => `${s.host} (${m.kind}: ${m.reason})`));
    if (dataPath.length > 0) warning.push(`Pool ${service.name} has servers failing their data-path checks: ${dataPath.join('; ')}. `);
    if (service.poolError !== undefined) {
      warning.push(`Pool ${service.name} keeps its last good pool: ${service.poolError}. `);
    }
  }
  if (critical.length > 0) return { status: 'critical', msg: critical.join('; ') };
  if (warning.length > 0) return { status: 'warning', msg: warning.join('') };
  return { status: 'ok', msg: 'All pools are healthy' };
}

export function renderAlerts(services: readonly ServiceSnapshot[], json: boolean): ApiResponse {
  const alerts = computeAlerts(services);
  return negotiated(json, 200, alerts, `${alerts.status.toUpperCase()} - ${alerts.msg}`);
}
