/**
 * Is the running pybal healthy? One pure decision from what its API serves
 * (GET /status and GET /alerts), shared by `pybal status` (its exit status)
 * and `pybal check` (the monitoring plugin), so that both always agree.
 *
 * CRITICAL: traffic is, or may be, lost:
 * - /alerts is critical: a service keeps servers pooled although down,
 *   because its depool threshold forbids removing them (PyBal's alert);
 * - a service with servers has none that can take traffic (pooled, up and
 *   with a weight above 0);
 * - the last IPVS reconcile failed (the kernel does not hold what pybal wants;
 *   it is retried with backoff, and this clears at the first success);
 * - BGP is on and no peer is Established (no router sends us the VIPs);
 * - BGP is configured but its speaker could not start.
 * WARNING: redundancy or freshness is lost, traffic still flows:
 * - /alerts is a warning: a pool too small to depool even one server, or a
 *   pool source in error (the last good pool stays in force);
 * - a service still waits for its first pool (normal for a moment at start);
 * - a BGP peer is not Established while another is;
 * - an mh or sh service runs with net.ipv4.vs.sloppy_tcp (or sloppy_sctp) at
 *   0 and pybal.conf does not say it is meant (`ipvs-sloppy-tcp`): connections
 *   the routers move here from another director are reset; or pybal could not
 *   set or read the sysctl it was told to set.
 * A server that is down and depooled is no problem: that is load balancing
 * at work. It shows in the counts (perfdata) only.
 */
import type { AlertsValue } from '../api/alerts.js';
import type { DaemonSnapshot } from '../api/types.js';

export type HealthLevel = 'ok' | 'warning' | 'critical';

export interface HealthProblem {
  readonly level: Exclude<HealthLevel, 'ok'>;
  readonly text: string;
}

export interface HealthCounts {
  readonly services: number;
  readonly servers: number;
  readonly enabled: number;
  readonly up: number;
  readonly pooled: number;
  /** Pooled although down (the depool threshold). */
  readonly pooledDown: number;
  readonly bgpPeers: number;
  readonly bgpEstablished: number;
  /** undefined when no IPVS manager runs. */
  readonly ipvsFailedReconciles: number | undefined;
  readonly eventLoopStalls: number | undefined;
}

export interface Health {
  readonly level: HealthLevel;
  /** Critical ones first, then warnings, each in the order found. */
  readonly problems: readonly HealthProblem[];
  readonly counts: HealthCounts;
}

/** The decision; see the module comment for the rules. */
export function assessHealth(snapshot: DaemonSnapshot, alerts: AlertsValue): Health {
  const problems: HealthProblem[] = [];
  const critical = (text: string): number => problems.push({ level: 'critical', text });
  const warning = (text: string): number => problems.push({ level: 'warning', text });

  // PyBal's messages: critical ones joined by '; ', warnings each ending in '. '.
  if (alerts.status === 'critical') critical(alerts.msg.trim());
  else if (alerts.status === 'warning') warning(alerts.msg.trim().replace(/\.$/, ''));

  let servers = 0;
  let enabled = 0;
  let up = 0;
  let pooled = 0;
  let pooledDown = 0;
  for (const service of snapshot.services) {
    servers += service.servers.length;
    let serving = 0;
    for (const s of service.servers) {
      if (s.enabled) enabled++;
      if (s.up) up++;
      if (s.pooled) pooled++;
      if (s.pooledDown) pooledDown++;
      if (s.pooled && s.up && s.weight > 0) serving++;
    }
    if (service.awaitingPool) warning(`service ${service.name} waits for its first pool`);
    else if (service.servers.length > 0 && serving === 0) {
      critical(`service ${service.name} has no server that takes traffic (pooled, up and weight > 0) of ${service.servers.length}`);
    }
  }

  const ipvs = snapshot.ipvs;
  if (ipvs?.lastError !== undefined) {
    critical(`IPVS reconcile failing (${ipvs.failedReconciles} of ${ipvs.reconciles} failed): ${ipvs.lastError}`);
  }

  if (snapshot.bgp.starting === true) warning('BGP has not started yet: it starts once every service is programmed (at most 10 s)');
  else if (snapshot.bgp.wanted === true && !snapshot.bgp.enabled) critical('BGP is configured but not running: the speaker could not start (see the log)');
  const peers = snapshot.bgp.enabled ? snapshot.bgp.peers : [];
  const established = peers.filter((p) => p.state === 'Established').length;
  const down = peers.filter((p) => p.state !== 'Established');
  const downText = down.map((p) => `${p.peer} ${p.state}${p.lastError === undefined ? '' : ` (${p.lastError})`}`).join(', ');
  if (down.length > 0 && established === 0) critical(`no BGP session Established: ${downText}`);
  else if (down.length > 0) warning(`BGP ${established} of ${peers.length} Established: ${downText}`);

  for (const sysctl of snapshot.ipvsSysctls ?? []) if (sysctl.warning !== undefined) warning(sysctl.warning);

  problems.sort((a, b) => (a.level === b.level ? 0 : a.level === 'critical' ? -1 : 1));
  const level: HealthLevel = problems[0]?.level ?? 'ok';
  return {
    level,
    problems,
    counts: {
      services: snapshot.services.length,
      servers,
      enabled,
      up,
      pooled,
      pooledDown,
      bgpPeers: peers.length,
      bgpEstablished: established,
      ipvsFailedReconciles: ipvs?.failedReconciles,
      eventLoopStalls: snapshot.eventLoop?.stalls,
    },
  };
}

/** Refuses what is not a daemon snapshot (a wrong --url), so the caller never formats garbage. */
export function isDaemonSnapshot(value: unknown): value is DaemonSnapshot {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<Record<keyof DaemonSnapshot, unknown>>;
  return Array.isArray(v.services) && typeof v.bgp === 'object' && v.bgp !== null && Array.isArray((v.bgp as { peers?: unknown }).peers);
}

/** Refuses what is not a /alerts JSON answer. */
export function isAlertsValue(value: unknown): value is AlertsValue {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<Record<keyof AlertsValue, unknown>>;
  return (v.status === 'ok' || v.status === 'warning' || v.status === 'critical') && typeof v.msg === 'string';
}
