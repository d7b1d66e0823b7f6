/**
 * The pooling policy: PyBal's depool-threshold rule (coordinator.py depool,
 * repool, canDepool, refreshPreexistingServer, _ensureDepoolThreshold) as a
 * pure function over plain facts. The coordinator owns the facts; this only
 * decides what is pooled, what is pooled-down and what to log.
 *
 * "All servers" (the threshold's denominator) is every server in the pool
 * config, disabled and unresolved ones included, exactly as PyBal's
 * len(self.servers). Only resolved servers can be up: an unresolved server
 * has no monitors and PyBal never marks it up.
 */

export interface ServerFacts {
  readonly host: string;
  readonly enabled: boolean;
  /** Resolved (PyBal's `ready`): it has an address and monitors. */
  readonly ready: boolean;
  /** Every monitor up (optimistic before first results). */
  readonly up: boolean;
  /** In IPVS now. */
  readonly pooled: boolean;
  /** Pooled although down, because the threshold forbade removing it. */
  readonly pooledDown: boolean;
}

export type PoolTrigger =
  /** The server just went down (its `up` in the facts is already false). */
  | { readonly kind: 'down'; readonly host: string }
  /** The server just went up, or its first checks all completed up (PyBal master's firstChecksCompleted). */
  | { readonly kind: 'up'; readonly host: string }
  /**
   * The pool changed (servers added, removed, enabled, disabled) or a
   * server's resolution changed. `reportShortfall` is false while new
   * servers are still being initialized, as PyBal checks the threshold only
   * once every new server finished initializing.
   */
  | { readonly kind: 'refresh'; readonly reportShortfall: boolean };

export type PolicyLogLevel = 'info' | 'warn' | 'error' | 'critical';

/** What a line says happened to its server, for the event history: it entered IPVS, left it, or was kept in although down. */
export type PolicyChange = 'pooled' | 'depooled' | 'held';

export interface PolicyLog {
  readonly level: PolicyLogLevel;
  readonly message: string;
  /** The server the line is about, when it changed (lines that change nothing have none). */
  readonly host?: string;
  readonly change?: PolicyChange;
}

export interface PoolDecision {
  /** The servers, in input order, with their new pooled / pooledDown. */
  readonly servers: readonly ServerFacts[];
  /** How many failing servers could not be depooled (adds to could_not_depool_total). */
  readonly couldNotDepool: number;
  readonly logs: readonly PolicyLog[];
}

/** PyBal's upServerCount: servers that are up and enabled (and resolved, see above). */
export function upServerCount(servers: readonly Omit<ServerFacts, 'pooled' | 'pooledDown'>[]): number {
  let n = 0;
  for (const s of servers) if (s.up && s.enabled && s.ready) n++;
  return n;
}

/** PyBal's canDepool(): enough healthy enabled servers would stay against threshold × all servers. */
export function canDepool(servers: readonly Omit<ServerFacts, 'pooled' | 'pooledDown'>[], threshold: number): boolean {
  return upServerCount(servers) >= servers.length * threshold;
}

type Mutable = { -readonly [K in keyof ServerFacts]: ServerFacts[K] };

/** A server as a policy pass sees it: its facts, with its IPVS membership writable. */
export type PolicyServer = Readonly<Omit<ServerFacts, 'pooled' | 'pooledDown'>> & PoolMember;

/** Servers a policy pass handles between two pauses (see refreshSteps). */
const REFRESH_SLICE = 512;

/** What the up and down rules change on a server: its IPVS membership. */
export interface PoolMember {
  readonly host: string;
  pooled: boolean;
  pooledDown: boolean;
}

/** Where a rule's consequences go. */
export interface PolicyOutput {
  readonly logs: PolicyLog[];
  couldNotDepool: number;
}

/**
 * The 'down' rule for one server that just went down, in constant time:
 * `canDepoolNow` is canDepool() with the server already counted down.
 */
export function applyDown(server: PoolMember, canDepoolNow: boolean, out: PolicyOutput): void {
  if (!server.pooled || server.pooledDown) return;
  if (canDepoolNow) {
    server.pooled = false;
    server.pooledDown = false;
    out.logs.push({ level: 'info', message: `Depooling server ${server.host}`, host: server.host, change: 'depooled' });
  } else {
    server.pooledDown = true;
    out.couldNotDepool++;
    out.logs.push({ level: 'error', message: `Could not depool server ${server.host} because of too many down!`, host: server.host, change: 'held' });
  }
}

/**
 * The 'up' rule for one server that just went up (or whose first checks
 * all completed up), costing what it drains: `eligible` says it is up,
 * enabled and resolved; `canDepoolNow` is canDepool() with it counted up;
 * `pooledDown` are the servers held in by the threshold. Returns the ones
 * drained.
 */
export function applyUp(
  server: PoolMember,
  eligible: boolean,
  canDepoolNow: boolean,
  pooledDown: Iterable<PoolMember>,
  out: PolicyOutput,
): PoolMember[] {
  if (!eligible) return [];
  if (server.pooled && server.pooledDown) {
    out.logs.push({ level: 'info', message: `Leaving previously pooled but down server ${server.host} pooled` });
  } else if (server.pooled) {
    out.logs.push({ level: 'info', message: `Leaving previously pooled server ${server.host} pooled` });
  } else {
    out.logs.push({ level: 'info', message: `Repooling server ${server.host}`, host: server.host, change: 'pooled' });
  }
  server.pooled = true;
  server.pooledDown = false;
  // Another server is back: drain the pooled-down ones while the rule allows (PyBal's
  // while loop). Draining down servers does not change the up count, so the rule's
  // answer holds for all of them.
  if (!canDepoolNow) return [];
  const drained: PoolMember[] = [];
  for (const other of pooledDown) {
    if (other === server || !other.pooledDown) continue;
    other.pooled = false;
    other.pooledDown = false;
    drained.push(other);
    out.logs.push({ level: 'info', message: `Depooling previously pooled but down server ${other.host}`, host: other.host, change: 'depooled' });
  }
  return drained;
}

export function decidePool(input: readonly ServerFacts[], threshold: number, trigger: PoolTrigger): PoolDecision {
  const servers: Mutable[] = input.map((s) => ({ ...s }));
  const out: PolicyOutput = { logs: [], couldNotDepool: 0 };
  switch (trigger.kind) {
    case 'down': {
      const server = servers.find((s) => s.host === trigger.host);
      if (server && !server.up) applyDown(server, canDepool(servers, threshold), out);
      break;
    }
    case 'up': {
      const server = servers.find((s) => s.host === trigger.host);
      if (!server) break;
      const pooledDown = servers.filter((s) => s.pooledDown);
      applyUp(server, server.up && server.enabled && server.ready, canDepool(servers, threshold), pooledDown, out);
      break;
    }
    case 'refresh':
      for (const _ of refreshSteps(servers, threshold, trigger.reportShortfall, out.logs));
      break;
  }
  return { servers, couldNotDepool: out.couldNotDepool, logs: out.logs };
}

/**
 * Master's refreshPreexistingServer for every server, then
 * _ensureDepoolThreshold, without the assertion that breaks it (§10.1):
 * `up` is whatever the monitors say, so an update before first results keeps
 * the optimistic pooling and a re-enabled healthy server is pooled. It
 * pauses (yields) every few hundred servers so that a large pool can be
 * handled in slices; only its end is a consistent state.
 */
export function* refreshSteps(
  servers: readonly PolicyServer[],
  threshold: number,
  reportShortfall: boolean,
  logs: PolicyLog[],
): Generator<void, void, undefined> {
  let n = 0;
  for (const s of servers) {
    if (++n % REFRESH_SLICE === 0) yield;
    const eligible = s.enabled && s.ready;
    if (!eligible) {
      if (s.pooled) logs.push({ level: 'info', message: `Depooling ${s.enabled ? 'unresolved' : 'disabled'} server ${s.host}`, host: s.host, change: 'depooled' });
      s.pooled = false;
      s.pooledDown = false;
    } else if (s.up) {
      if (!s.pooled) logs.push({ level: 'info', message: `Pooling server ${s.host}`, host: s.host, change: 'pooled' });
      s.pooled = true;
      s.pooledDown = false;
    } else if (!(s.pooled && s.pooledDown)) {
      if (s.pooled) logs.push({ level: 'info', message: `Depooling down server ${s.host}`, host: s.host, change: 'depooled' });
      s.pooled = false;
      s.pooledDown = false;
    }
  }
  // Unlike PyBal, which drains pooled-down servers only when another server
  // comes up: once the rule allows it (a server enabled or added, a new
  // threshold), a down server held by the threshold leaves at once.
  if (canDepool(servers, threshold)) {
    for (const s of servers) {
      if (++n % REFRESH_SLICE === 0) yield;
      if (!s.pooledDown) continue;
      s.pooled = false;
      s.pooledDown = false;
      logs.push({ level: 'info', message: `Depooling previously pooled but down server ${s.host}`, host: s.host, change: 'depooled' });
    }
  }
  const needed = servers.length * threshold;
  let pooled = 0;
  for (const s of servers) if (s.pooled) pooled++;
  yield;
  // Up eligible servers are pooled already, so these are down ones; pool order.
  for (const s of servers) {
    if (pooled >= needed) break;
    if (++n % REFRESH_SLICE === 0) yield;
    if (!s.enabled || !s.ready || s.pooled) continue;
    s.pooled = true;
    s.pooledDown = !s.up;
    pooled++;
    logs.push({ level: 'warn', message: `Forcing ${s.host} to be pooled to meet depool threshold`, host: s.host, change: s.up ? 'pooled' : 'held' });
  }
  if (reportShortfall && pooled < needed) {
    logs.push({ level: 'critical', message: 'Could not ensure depool threshold; insufficient enabled & ready servers.' });
  }
}
