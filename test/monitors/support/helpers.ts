/** Shared test plumbing for monitors: recording deps, targets, polling. */
import { execFileSync } from 'node:child_process';
import type { AddressFamily } from '../../../src/config/types.js';
import type { Clock } from '../../../src/runtime/clock.js';
import { createMemoryLogger, type MemoryLog } from '../../../src/runtime/logger.js';
import type { CheckResult, MonitorDeps, MonitorReport, MonitorTarget } from '../../../src/monitors/types.js';

export interface Recorder {
  readonly reports: MonitorReport[];
  readonly results: CheckResult[];
  readonly log: MemoryLog;
  deps(clock: Clock, extra?: Partial<MonitorDeps>): MonitorDeps;
  /** up/down of each report, in order: 'up', 'down', ... */
  states(): string[];
}

export function recorder(): Recorder {
  const reports: MonitorReport[] = [];
  const results: CheckResult[] = [];
  const log = createMemoryLogger('debug');
  return {
    reports,
    results,
    log,
    deps: (clock, extra = {}) => ({
      clock,
      logger: log.logger,
      onReport: (r) => reports.push(r),
      onResult: (r) => results.push(r),
      ...extra,
    }),
    states: () => reports.map((r) => (r.up ? 'up' : 'down')),
  };
}

export function target(ip: string, port: number, host = 'rs1.example.org', family: AddressFamily = ip.includes(':') ? 6 : 4): MonitorTarget {
  return { host, ip, port, family };
}

/** Polls (real time) until cond holds; fails naming what was awaited. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A fresh 127.x.y.z address per call, so that parallel test files do not collide. */
export function loopbackAddress(seed: number): string {
  return `127.${20 + (process.pid % 200)}.${Math.floor(seed / 250) % 250}.${(seed % 250) + 1}`;
}

/** TCP connections in ESTABLISHED state towards ip:port, as the kernel sees them (ss). */
export function establishedTo(ip: string, port: number): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', 'dst', `${ip.includes(':') ? `[${ip}]` : ip}:${port}`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim() !== '').length;
}
