/**
 * What both readers do once they know each real server: reduce per-server
 * settings (checks, ports, forwarding, connection thresholds) to the one
 * value a pybal service holds, with a note wherever a server had something
 * else. Pure.
 */

import { parseIpAddress } from '../config/ip-address.js';
import { SCHEDULERS, type Scheduler } from '../config/types.js';
import type { Forwarding, ImportNote, LvsCheck, LvsServer, SourceRef } from './model.js';

/** A real server as a reader saw it, before the service is reduced to one set of settings. */
export interface ServerDraft {
  readonly server: LvsServer;
  /** Its checks, with its own address replaced by server.ip, so that equal checks compare equal. */
  readonly checks: readonly LvsCheck[];
  /** The port each check connects to (same order as checks; undefined: the server's port). */
  readonly checkPorts: readonly (number | undefined)[];
  readonly forwarding: Forwarding;
  readonly forwardingAt?: SourceRef;
  readonly upperThreshold?: number;
  readonly lowerThreshold?: number;
}

/** A check without where it was written, for comparing. */
export function checkKey(check: LvsCheck): string {
  const { at: _at, ...rest } = check;
  return JSON.stringify(rest);
}

export function describeCheck(check: LvsCheck): string {
  switch (check.kind) {
    case 'http':
      return `HTTP ${check.urls.join(' ')}`;
    case 'tcp':
      return 'TCP connect';
    case 'command':
      return `command ${check.command}`;
    case 'ping':
      return 'ping';
    case 'udp':
      return 'UDP';
    case 'dns':
      return `DNS ${check.hostnames.join(' ')}`;
  }
}

export interface Reduced<T> {
  readonly value: T;
  readonly notes: readonly ImportNote[];
}

/** The first server's checks; a note at each server whose checks differ. */
export function reduceChecks(drafts: readonly ServerDraft[]): Reduced<readonly LvsCheck[]> {
  const first = drafts[0];
  if (first === undefined) return { value: [], notes: [] };
  const want = first.checks.map(checkKey).join('\n');
  const describe = (checks: readonly LvsCheck[]): string => (checks.length === 0 ? 'none' : checks.map(describeCheck).join(', '));
  const notes = drafts.slice(1).flatMap((d): ImportNote[] =>
    d.checks.map(checkKey).join('\n') === want
      ? []
      : [
          {
            at: d.server.at,
            message: `the checks of ${d.server.host} (${describe(d.checks)}) differ from those of ${first.server.host}; pybal runs the same monitors on every server of a service, so ${d.server.host} gets ${first.server.host}'s (${describe(first.checks)})`,
          },
        ],
  );
  return { value: first.checks, notes };
}

/**
 * The one value of a per-server connection threshold: the same for all, or
 * the lowest one given (the safe choice: no server gets more connections
 * than the most fragile of them accepted), with a note.
 */
export function reduceThreshold(drafts: readonly ServerDraft[], pick: (d: ServerDraft) => number | undefined, keyword: string): Reduced<number | undefined> {
  const values = drafts.map(pick);
  const given = values.filter((v): v is number => v !== undefined && v > 0);
  if (given.length === 0) return { value: undefined, notes: [] };
  if (values.every((v) => v === values[0])) return { value: values[0], notes: [] };
  const lowest = Math.min(...given);
  const first = drafts.find((d) => pick(d) !== undefined) ?? drafts[0];
  const listed = drafts.map((d) => `${d.server.host}: ${pick(d) ?? 'none'}`).join(', ');
  return {
    value: lowest,
    notes: first === undefined ? [] : [{ at: first.server.at, message: `${keyword} differs between the real servers (${listed}); pybal has one per service, the lowest: ${lowest}` }],
  };
}

/** The service's forwarding method; a note at each server that had another. */
export function reduceForwarding(drafts: readonly ServerDraft[], service: Forwarding): Reduced<Forwarding> {
  const notes = drafts.flatMap((d): ImportNote[] =>
    d.forwarding === service
      ? []
      : [
          {
            at: d.forwardingAt ?? d.server.at,
            message: `${d.server.host} is forwarded by ${d.forwarding} but the service by ${service}; pybal has one forwarding method per service: ${service}`,
          },
        ],
  );
  return { value: service, notes };
}

/**
 * The real servers' port (all the same, or the first one's, with a note at
 * each other): `realPort` when it differs from the VIP's, which only NAT can
 * do.
 */
export function reduceRealPort(drafts: readonly ServerDraft[], vipPort: number | undefined, forwarding: Forwarding): Reduced<number | undefined> {
  const ports = drafts.map((d) => d.server.port ?? vipPort);
  const first = ports.find((p) => p !== undefined);
  const notes: ImportNote[] = [];
  drafts.forEach((d, i) => {
    const port = ports[i];
    if (port !== undefined && port !== first) {
      notes.push({ at: d.server.at, message: `${d.server.host} listens on port ${port}, the other real servers on ${first}; pybal has one real-server port per service: ${first}` });
    }
  });
  if (first === undefined || vipPort === undefined || first === vipPort) return { value: undefined, notes };
  if (forwarding !== 'nat') {
    const at = drafts[0]?.server.at;
    if (at !== undefined) {
      notes.push({
        at,
        message: `the real servers' port ${first} differs from the virtual port ${vipPort}, which only NAT can translate (${forwarding} delivers packets to the virtual port): not carried over`,
      });
    }
    return { value: undefined, notes };
  }
  return { value: first, notes };
}

/** The port a service's checks connect to: a note at each check that connected elsewhere. */
export function reduceCheckPort(drafts: readonly ServerDraft[], servicePort: number | undefined): Reduced<number | undefined> {
  const first = drafts[0];
  if (first === undefined) return { value: servicePort, notes: [] };
  const port = servicePort ?? first.checkPorts.find((p) => p !== undefined) ?? first.server.port;
  const notes: ImportNote[] = [];
  first.checks.forEach((check, i) => {
    const own = first.checkPorts[i];
    if (own !== undefined && own !== port) {
      notes.push({
        at: check.at,
        message: `this check connects to port ${own}; pybal's monitors connect to the service's port (${port ?? 'unknown'}), so it is carried over on that port`,
      });
    }
  });
  return { value: port, notes };
}

export interface ReducedServers {
  readonly realPort: number | undefined;
  readonly checks: readonly LvsCheck[];
  /** The port the service's checks connect to. */
  readonly checkPort: number | undefined;
  readonly upperThreshold: number | undefined;
  readonly lowerThreshold: number | undefined;
  readonly notes: readonly ImportNote[];
}

/**
 * Every per-server setting reduced to the service's one value. A
 * firewall-mark service has no virtual port: its checks' port comes from
 * the first server's checks or port.
 */
export function reduceServers(drafts: readonly ServerDraft[], service: { forwarding: Forwarding; vipPort: number | undefined; fwmark: number | undefined }): ReducedServers {
  const forwarding = reduceForwarding(drafts, service.forwarding);
  const realPort = service.fwmark === undefined ? reduceRealPort(drafts, service.vipPort, service.forwarding) : { value: undefined, notes: [] };
  const checks = reduceChecks(drafts);
  const checkPort = reduceCheckPort(drafts, service.fwmark === undefined ? (realPort.value ?? service.vipPort ?? drafts[0]?.server.port) : undefined);
  const upper = reduceThreshold(drafts, (d) => d.upperThreshold, 'uthreshold');
  const lower = reduceThreshold(drafts, (d) => d.lowerThreshold, 'lthreshold');
  return {
    realPort: realPort.value,
    checks: checks.value,
    checkPort: checkPort.value,
    upperThreshold: upper.value,
    lowerThreshold: lower.value,
    notes: [...forwarding.notes, ...realPort.notes, ...checks.notes, ...checkPort.notes, ...upper.notes, ...lower.notes],
  };
}

export const OPS_NOT_UDP = 'ops is not carried over: one-packet scheduling is for UDP services only';

export function isScheduler(name: string): name is Scheduler {
  return (SCHEDULERS as readonly string[]).includes(name);
}

/** A port number 1..65535 from text, or undefined. */
export function parsePort(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** IP literal in normal form with its family, or undefined. */
export { parseIpAddress };

/** The host part of a URL for an address: IPv6 in brackets. */
export function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** http(s)://host[:port]path, the port left out when it is the scheme's own. */
export function checkUrl(tls: boolean, host: string, port: number | undefined, path: string): string {
  const scheme = tls ? 'https' : 'http';
  const showPort = port !== undefined && port !== (tls ? 443 : 80);
  const rest = path.startsWith('/') ? path : `/${path}`;
  return `${scheme}://${urlHost(host)}${showPort ? `:${port}` : ''}${rest}`;
}

/** A regular expression pybal can use (JavaScript syntax), or why not. */
export function checkRegex(source: string): string | undefined {
  try {
    new RegExp(source);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** Whether text has characters a regular expression treats specially. */
export function hasRegexSpecials(text: string): boolean {
  return /[.*+?^${}()|[\]\\]/.test(text);
}
