/**
 * PyBal's /pools resources (§8.1), as pure renderers of service snapshots.
 */
import type { MonitorSnapshot, ServerSnapshot, ServiceSnapshot } from '../coordinator/types.js';
import { negotiated, notFound, type ApiResponse } from './response.js';

/** PyBal's JSON value for one server, in its key order. */
export interface ServerValue {
  readonly pooled: boolean;
  readonly weight: number;
  readonly up: boolean;
  readonly enabled: boolean;
}

export function serverValue(server: ServerSnapshot): ServerValue {
  return { pooled: server.pooled, weight: server.weight, up: server.up, enabled: server.enabled };
}

/** PyBal's calcPartialStatus(): some monitor is up (true with no monitors). */
export function partiallyUp(monitors: readonly MonitorSnapshot[]): boolean {
  return monitors.length === 0 || monitors.some((m) => m.up === true);
}

/** PyBal's textStatus(): `enabled/up/pooled`, `disabled/partially up/not pooled`, ... */
export function serverTextStatus(server: ServerSnapshot): string {
  const health = server.up ? 'up' : partiallyUp(server.monitors) ? 'partially up' : 'down';
  return `${server.enabled ? 'enabled' : 'disabled'}/${health}/${server.pooled ? 'pooled' : 'not pooled'}`;
}

/** `/pools`: the service names. */
export function renderPoolList(services: readonly ServiceSnapshot[], json: boolean): ApiResponse {
  return renderPoolNames(services.map((s) => s.name), json);
}

/** `/pools` from the services' names (in configuration order). */
export function renderPoolNames(names: readonly string[], json: boolean): ApiResponse {
  return negotiated(json, 200, names, names.map((n) => `${n}\n`).join(''));
}

/** `/pools/<service>`: every server of one service. */
export function renderPool(service: ServiceSnapshot, json: boolean): ApiResponse {
  const value = Object.fromEntries(service.servers.map((s) => [s.host, serverValue(s)]));
  const text = service.servers.map((s) => `${s.host}:\t${serverTextStatus(s)}\n`).join('');
  return negotiated(json, 200, value, text);
}

/** `/pools/<service>/<host>`. */
export function renderServer(server: ServerSnapshot, json: boolean): ApiResponse {
  return negotiated(json, 200, serverValue(server), `${serverTextStatus(server)}\n`);
}

/** Routes the path segments after `/pools`. */
export function renderPoolsPath(services: readonly ServiceSnapshot[], segments: readonly string[], json: boolean): ApiResponse {
  const [serviceName, host, ...rest] = segments;
  if (serviceName === undefined) return renderPoolList(services, json);
  const service = services.find((s) => s.name === serviceName);
  if (!service || rest.length > 0) return notFound(json);
  if (host === undefined) return renderPool(service, json);
  const server = service.servers.find((s) => s.host === host);
  return server ? renderServer(server, json) : notFound(json);
}
