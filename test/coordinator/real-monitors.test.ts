/**
 * The coordinator with the real monitors registry, the real resolver and a
 * real clock, against real servers on loopback: a server told `down` leaves
 * the pool and comes back when `ok`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { createMonitorFactory } from '../../src/coordinator/monitor-factory.js';
import { resolveHost } from '../../src/coordinator/resolver.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { startRealServer, type RealServer } from '../support/real-server.js';
import { idleConnectionConfig, proxyFetchConfig } from '../monitors/support/configs.js';
import { loopbackAddress, waitFor } from '../monitors/support/helpers.js';
import { poolEvent, serviceConfig } from './support/fakes.js';

describe('Coordinator with real monitors against real servers', () => {
  const servers: RealServer[] = [];
  let port = 0;

  beforeAll(async () => {
    // Every real server listens on the same port (the service port), each on its own address.
    const first = await startRealServer({ name: 'rs1', host: loopbackAddress(601), http: 0 });
    servers.push(first);
    port = first.ports.http!;
    for (const [i, seed] of [602, 603].entries()) {
      servers.push(await startRealServer({ name: `rs${i + 2}`, host: loopbackAddress(seed), http: port }));
    }
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('ProxyFetch + IdleConnection: a server told down is depooled and repooled when ok; all down keeps the threshold', async () => {
    const clock = createSystemClock();
    const log = createMemoryLogger('info');
    const logger = log.logger.child({ service: 'text_80' });
    const hosts = servers.map((s) => s.host);
    const coordinator = new Coordinator(
      serviceConfig({
        port,
        monitors: [
          proxyFetchConfig({ urls: ['http://text.example.org/'], intervalMs: 200, timeoutMs: 2_000 }),
          idleConnectionConfig({ timeoutCleanReconnectMs: 200, maxDelayMs: 400 }),
        ],
      }),
      { clock, logger, createMonitor: createMonitorFactory({ clock, logger }), resolve: resolveHost, onChange: () => undefined },
    );
    const pooled = (): string[] => coordinator.pooledServers().map((s) => s.address);
    const allChecked = (): boolean => coordinator.snapshot().servers.every((s) => s.monitors.length === 2 && s.monitors.every((m) => m.up === true));
    try {
      coordinator.onPoolEvent(poolEvent(...hosts));
      await waitFor(allChecked, 'every first check up');
      expect(pooled()).toEqual(hosts);
      expect(coordinator.healthy()).toBe(true);

      const victim = servers[1]!;
      await victim.setBehaviour({ mode: 'down' });
      await waitFor(() => !pooled().includes(victim.host), 'the down server to leave the pool');
      expect(pooled()).toEqual([hosts[0], hosts[2]]);
      expect(log.lines().some((l) => l.startsWith(`[text_80] ERROR: Monitoring instance ProxyFetch reports server ${victim.host} (enabled/up/pooled) down:`) || l.startsWith(`[text_80] ERROR: Monitoring instance IdleConnection reports server ${victim.host} (enabled/up/pooled) down:`))).toBe(true);

      await victim.setBehaviour({ mode: 'ok' });
      await waitFor(() => pooled().includes(victim.host), 'the server to come back');
      expect(pooled()).toEqual(hosts);
      expect(log.lines().some((l) => l.startsWith(`[text_80] INFO: Server ${victim.host} (`) && l.endsWith(') is up'))).toBe(true);

      // All down: the threshold (.5 of 3) keeps two of them pooled, marked pooled-down.
      await Promise.all(servers.map((s) => s.setBehaviour({ mode: 'down' })));
      await waitFor(() => coordinator.snapshot().servers.every((s) => !s.up), 'every server down');
      const snap = coordinator.snapshot();
      expect(snap.servers.filter((s) => s.pooled && s.pooledDown)).toHaveLength(2);
      expect(snap.couldNotDepoolTotal).toBe(2);
      expect(pooled()).toHaveLength(2);
      expect(coordinator.healthy()).toBe(false);
      await Promise.all(servers.map((s) => s.setBehaviour({ mode: 'ok' })));
      await waitFor(() => pooled().length === 3 && coordinator.snapshot().servers.every((s) => s.up && !s.pooledDown), 'every server back');
    } finally {
      await coordinator.stop();
    }
  });
});
