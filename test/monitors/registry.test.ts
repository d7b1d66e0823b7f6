import { describe, expect, it } from 'vitest';
import { MONITOR_KINDS } from '../../src/config/types.js';
import { createMonitor, MONITOR_FACTORIES } from '../../src/monitors/registry.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { dnsQueryConfig, idleConnectionConfig, pingConfig, proxyFetchConfig, runCommandConfig, tcpConnectConfig, udpConfig } from './support/configs.js';
import { recorder, target, waitFor } from './support/helpers.js';
import { sshConfig } from './support/configs.js';

describe('monitor registry', () => {
  it('has a factory for every kind a config can name', () => {
    expect(Object.keys(MONITOR_FACTORIES).sort()).toEqual([...MONITOR_KINDS].sort());
  });

  it('creates each monitor by kind, not started until start()', async () => {
    const configs = [proxyFetchConfig(), idleConnectionConfig(), runCommandConfig(), dnsQueryConfig(), udpConfig(), pingConfig(), tcpConnectConfig()];
    for (const config of configs) {
      const rec = recorder();
      const monitor = createMonitor(config, target('127.0.0.1', 9), rec.deps(createSystemClock()));
      expect(monitor.kind).toBe(config.kind);
      expect(monitor.state()).toBeUndefined();
      await monitor.stop();
      expect(rec.reports).toEqual([]);
    }
  });

  it('bad values make checks fail with the reason instead of throwing into the daemon', async () => {
    const cases = [
      { config: proxyFetchConfig({ urls: ['not a url'] }), reason: /^invalid ProxyFetch configuration: Invalid URL/ },
      { config: proxyFetchConfig({ urls: ['ftp://x/'] }), reason: /^invalid ProxyFetch configuration: unsupported URL scheme/ },
      { config: proxyFetchConfig({ expectBodyRegex: '(' }), reason: /^invalid ProxyFetch configuration: Invalid regular expression/ },
      { config: proxyFetchConfig({ caFile: '/nonexistent/ca.pem' }), reason: /^cannot read ca-file: ENOENT/ },
      { config: sshConfig({ privateKeyFile: '/nonexistent/key' }), reason: /^SSH: ENOENT/ },
    ];
    for (const { config, reason } of cases) {
      const rec = recorder();
      const monitor = createMonitor(config, target('127.0.0.1', 9), rec.deps(createSystemClock()));
      monitor.start();
      await waitFor(() => rec.reports.length === 1, 'a report');
      await monitor.stop();
      expect(rec.reports[0]?.up).toBe(false);
      expect(rec.reports[0]?.reason).toMatch(reason);
    }
    const rec = recorder();
    const dns = createMonitor(dnsQueryConfig(), target('not-an-address', 53), rec.deps(createSystemClock()));
    dns.start();
    await waitFor(() => rec.reports.length === 1, 'a report');
    await dns.stop();
    expect(rec.reports[0]).toMatchObject({ up: false, reason: expect.stringMatching(/^DNS query cannot be sent to not-an-address: /) });
  });
});
