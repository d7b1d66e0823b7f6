import { describe, expect, it } from 'vitest';
import { MONITOR_KINDS } from '../../src/config/types.js';
import { createMonitor, MONITOR_FACTORIES } from '../../src/monitors/registry.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { dnsQueryConfig, idleConnectionConfig, pingConfig, proxyFetchConfig, runCommandConfig, udpConfig } from './support/configs.js';
import { recorder, target } from './support/helpers.js';

describe('monitor registry', () => {
  it('has a factory for every kind a config can name', () => {
    expect(Object.keys(MONITOR_FACTORIES).sort()).toEqual([...MONITOR_KINDS].sort());
  });

  it('creates each monitor by kind, not started until start()', async () => {
    const configs = [proxyFetchConfig(), idleConnectionConfig(), runCommandConfig(), dnsQueryConfig(), udpConfig(), pingConfig()];
    for (const config of configs) {
      const rec = recorder();
      const monitor = createMonitor(config, target('127.0.0.1', 9), rec.deps(createSystemClock()));
      expect(monitor.kind).toBe(config.kind);
      expect(monitor.state()).toBeUndefined();
      await monitor.stop();
      expect(rec.reports).toEqual([]);
    }
  });
});
