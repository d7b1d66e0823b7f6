/** Controllable fakes for coordinator tests: monitors, a resolver, a service config, a pool. */
import type { AddressFamily, MonitorConfig, ServiceConfig } from '../../../src/config/types.js';
import type { CreateMonitorFn, MonitorStartOptions, Resolve } from '../../../src/coordinator/types.js';
import type { DataPathRoute } from '../../../src/monitors/types.js';
import type { Pool, PoolEvent, PoolServer } from '../../../src/pool/types.js';
import { serviceConfig as sharedServiceConfig } from '../../support/config-fixtures.js';

export interface FakeMonitor {
  readonly config: MonitorConfig;
  readonly target: { readonly host: string; readonly ip: string; readonly port: number; readonly family: AddressFamily; readonly dataPath?: DataPathRoute };
  started: boolean;
  /** What start() was given. */
  startOptions: MonitorStartOptions | undefined;
  stopped: boolean;
  reports: number;
  report(up: boolean, reason?: string): void;
}

export interface FakeMonitors {
  readonly create: CreateMonitorFn;
  readonly all: FakeMonitor[];
  /** The live (started, not stopped) monitors of a host. */
  live(host: string): FakeMonitor[];
  /** Reports from the host's live monitor of that kind (the first one when kind is omitted). */
  report(host: string, up: boolean, reason?: string, kind?: string): void;
  /** Every live monitor of every listed host reports. */
  reportAll(hosts: readonly string[], up: boolean, reason?: string): void;
}

export function fakeMonitors(): FakeMonitors {
  const all: FakeMonitor[] = [];
  const live = (host: string): FakeMonitor[] => all.filter((m) => m.target.host === host && m.started && !m.stopped);
  return {
    all,
    live,
    create: (config, target, onReport) => {
      const monitor: FakeMonitor = {
        config,
        target,
        started: false,
        startOptions: undefined,
        stopped: false,
        reports: 0,
        report(up, reason = up ? 'ok' : 'failed') {
          onReport({ up, reason, firstCheck: monitor.reports++ === 0 });
        },
      };
      all.push(monitor);
      return {
        start: (options) => {
          monitor.started = true;
          monitor.startOptions = options;
        },
        stop: async () => {
          monitor.stopped = true;
        },
      };
    },
    report(host, up, reason, kind) {
      const monitor = live(host).find((m) => kind === undefined || m.config.kind === kind);
      if (!monitor) throw new Error(`no live ${kind ?? ''} monitor for ${host}`);
      monitor.report(up, reason);
    },
    reportAll(hosts, up, reason) {
      for (const host of hosts) for (const m of live(host)) m.report(up, reason);
    },
  };
}

export interface FakeResolver {
  readonly resolve: Resolve;
  /** What a host resolves to: addresses, an error message, or 'hang' (until aborted). */
  readonly answers: Map<string, readonly string[] | string>;
  readonly calls: { host: string; family: AddressFamily }[];
  aborted: number;
}

export function fakeResolver(): FakeResolver {
  const fake: FakeResolver = {
    answers: new Map(),
    calls: [],
    aborted: 0,
    resolve: (host, family, signal) => {
      fake.calls.push({ host, family });
      const answer = fake.answers.get(host);
      if (answer === 'hang') {
        return new Promise((_, reject) => {
          signal.addEventListener('abort', () => {
            fake.aborted++;
            reject(signal.reason as Error);
          });
        });
      }
      if (answer === undefined) return Promise.reject(new Error(`no such host ${host}`));
      if (typeof answer === 'string') return Promise.reject(new Error(answer));
      return Promise.resolve(answer);
    },
  };
  return fake;
}

export function serviceConfig(o: Partial<ServiceConfig> = {}): ServiceConfig {
  return sharedServiceConfig('text_80', '198.51.100.80', { poolUrl: 'file:///etc/pybal/pools/text', ...o });
}

/** A pool event from `host[:weight][:disabled]` specs, e.g. 'mw1', 'mw2:0', 'mw3:10:disabled'. */
export function poolEvent(...specs: string[]): PoolEvent {
  const pool = new Map<string, PoolServer>();
  for (const spec of specs) {
    const [host = '', weight = '10', state = 'enabled'] = spec.split(':');
    pool.set(host, { host, weight: Number(weight), enabled: state !== 'disabled' });
  }
  return { type: 'pool', pool: pool as Pool, problems: [] };
}
