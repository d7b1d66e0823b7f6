/**
 * PyBal's /alerts (§8.1): critical when some pool keeps down servers pooled,
 * warning when a pool is too small to depool even one server, OK otherwise.
 * New: a warning too while a service's pool source is in error (unreadable,
 * refused as empty, or with skipped lines), since its last good pool is then
 * in force instead of what the source says.
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
