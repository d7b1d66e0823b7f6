import { describe, expect, it } from 'vitest';
import { createMonitorFactory } from '../../src/coordinator/monitor-factory.js';
import type { CheckResult, MonitorTarget } from '../../src/monitors/index.js';
import { flushAsync, ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { proxyFetchConfig } from '../monitors/support/configs.js';

type Report = { readonly up: boolean; readonly reason: string };

const server = (host: string): MonitorTarget => ({ host, ip: '127.0.0.1', port: 9, family: 4 });

describe('monitor factory', () => {
  it("logs each monitor's lines under its service, server and kind, and passes each result on with its target", async () => {
    const clock = new ManualClock();
    const log = createMemoryLogger('debug');
    const results: [string, CheckResult][] = [];
    const reports: [string, Report][] = [];
    const factory = createMonitorFactory({
      clock,
      logger: log.logger.child({ service: 'text_80' }),
      onResult: (target, result) => results.push([target.host, result]),
    });
    // A config that fails every check at once, without the network; one config for both servers.
    const config = proxyFetchConfig({ urls: ['ftp://x/'] });
    const monitors = ['mw1001', 'mw1002'].map((host) => factory(config, server(host), (report) => reports.push([host, report])));
    for (const m of monitors) m.start();
    await flushAsync();
    const reason = 'invalid ProxyFetch configuration: unsupported URL scheme in ftp://x/';
    expect(results).toEqual([
      ['mw1001', { kind: 'ProxyFetch', ok: false, reason, durationMs: 0 }],
      ['mw1002', { kind: 'ProxyFetch', ok: false, reason, durationMs: 0 }],
    ]);
    expect(reports.map(([host, r]) => [host, r.up, r.reason])).toEqual([
      ['mw1001', false, reason],
      ['mw1002', false, reason],
    ]);
    expect(log.lines()).toEqual([
      `[text_80 mw1001 ProxyFetch] DEBUG: bad check: ${reason}`,
      `[text_80 mw1001 ProxyFetch] WARN: down: ${reason}`,
      `[text_80 mw1002 ProxyFetch] DEBUG: bad check: ${reason}`,
      `[text_80 mw1002 ProxyFetch] WARN: down: ${reason}`,
    ]);
    await Promise.all(monitors.map((m) => m.stop()));
  });

  it('works without a result sink', async () => {
    const clock = new ManualClock();
    const log = createMemoryLogger('info');
    const factory = createMonitorFactory({ clock, logger: log.logger });
    const reports: Report[] = [];
    const monitor = factory(proxyFetchConfig({ urls: ['ftp://x/'] }), server('mw1001'), (report) => reports.push(report));
    monitor.start();
    await flushAsync();
    expect(reports.map((r) => r.up)).toEqual([false]);
    await monitor.stop();
  });
});
