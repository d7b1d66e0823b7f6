import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSystemClock } from '../../src/runtime/clock.js';
import { createUdpMonitor } from '../../src/monitors/udp.js';
import { startRealServer, type RealServer } from '../support/real-server.js';
import { udpConfig } from './support/configs.js';
import { loopbackAddress, recorder, target, waitFor } from './support/helpers.js';

for (const family of [4, 6] as const) {
  describe(`UDP monitor against a real server over IPv${family}`, () => {
    let server: RealServer;
    const ip = family === 4 ? loopbackAddress(41) : '::1';
    beforeAll(async () => {
      server = await startRealServer({ name: 'rs1', host: ip, udp: 0 });
    });
    afterAll(async () => {
      await server.stop();
    });

    it('up while the port is open; down on port unreachable; up again once no ICMP was seen for icmp-timeout', async () => {
      const rec = recorder();
      const clock = createSystemClock();
      const monitor = createUdpMonitor(udpConfig({ intervalMs: 200, icmpTimeoutMs: 800 }), target(ip, server.ports.udp!), rec.deps(clock));
      try {
        monitor.start();
        await waitFor(() => rec.reports.length === 1, 'the first report');
        expect(rec.reports[0]).toMatchObject({ up: true, firstCheck: true, reason: 'no ICMP port unreachable within 0.8 s' });
        expect(server.stats().udpDatagrams).toBeGreaterThan(0);
        await server.setBehaviour({ mode: 'down' });
        await waitFor(() => rec.reports.length === 2, 'the down report');
        expect(rec.reports[1]).toMatchObject({ up: false, reason: expect.stringContaining('ICMP port unreachable received') });
        const downAt = rec.reports[1]!.atMs;
        await server.setBehaviour({ mode: 'ok' });
        await waitFor(() => rec.reports.length === 3, 'the recovery');
        // PyBal's semantics: up only once icmp-timeout has passed without an ICMP error.
        expect(rec.reports[2]!.atMs - downAt).toBeGreaterThanOrEqual(800 - 200);
        expect(rec.states()).toEqual(['up', 'down', 'up']);
      } finally {
        await monitor.stop();
        await server.setBehaviour({ mode: 'ok' });
      }
    });

    it('a closed port is down on the first check', async () => {
      await server.setBehaviour({ mode: 'down' });
      const rec = recorder();
      const monitor = createUdpMonitor(udpConfig({ intervalMs: 10_000 }), target(ip, server.ports.udp!), rec.deps(createSystemClock()));
      try {
        monitor.start();
        await waitFor(() => rec.reports.length === 1, 'the first report');
        expect(rec.reports[0]).toMatchObject({ up: false, firstCheck: true });
      } finally {
        await monitor.stop();
        await server.setBehaviour({ mode: 'ok' });
      }
    });
  });
}
