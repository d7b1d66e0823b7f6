// The monitors through the data path, with real sockets on loopback: a
// data-path target connects to the VIP from a socket carrying the server's
// mark. The host has no IPVS, so "the VIP" here is a loopback address with a
// real server of its own, and the server's own address another one: each
// check must reach the VIP's listener, not the server's (the lab proves the
// kernel then forwards by the mark: test/e2e/data-path.lab.test.ts).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createIdleConnectionMonitor } from '../../src/monitors/idle-connection.js';
import { createProxyFetchMonitor } from '../../src/monitors/proxyfetch.js';
import { createTcpConnectMonitor } from '../../src/monitors/tcp-connect.js';
import type { Monitor, MonitorTarget } from '../../src/monitors/types.js';
import { createUdpMonitor } from '../../src/monitors/udp.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { startRealServer, type RealServer } from '../support/real-server.js';
import { buildNative } from '../../packaging/build-native.js';
import { idleConnectionConfig, proxyFetchConfig, tcpConnectConfig, udpConfig } from './support/configs.js';
import { loopbackAddress, recorder, waitFor } from './support/helpers.js';

const VIP = loopbackAddress(171);
const SERVER = loopbackAddress(172);
const PORT = 20_000 + (process.pid % 20_000);
const FAST = { intervalMs: 200, timeoutMs: 500, rise: 1, fall: 1 };

describe('monitors through the data path (loopback)', () => {
  let behindVip: RealServer;
  const monitors: Monitor[] = [];
  const clock = createSystemClock();
  let ready = true;
  const target = (): MonitorTarget => ({
    host: 'rs1',
    ip: SERVER,
    port: PORT,
    family: 4,
    dataPath: { vip: VIP, mark: 0x70b00042, method: 'dr', source: undefined, ready: () => ready },
  });
  const start = (make: (t: MonitorTarget, deps: ReturnType<ReturnType<typeof recorder>['deps']>) => Monitor) => {
    const rec = recorder();
    const monitor = make(target(), rec.deps(clock));
    monitors.push(monitor);
    monitor.start();
    return rec;
  };

  beforeAll(async () => {
    buildNative();
    behindVip = await startRealServer({ name: 'behind-vip', host: VIP, http: PORT, https: PORT + 1, tcp: PORT + 2, udp: PORT + 3 });
  });
  afterEach(async () => {
    for (const m of monitors.splice(0)) await m.stop();
    ready = true;
  });
  afterAll(async () => {
    await behindVip?.stop();
  });

  it('TCPConnect connects to the VIP, says so, and nothing listens at the server’s own address', async () => {
    const rec = start((t, deps) => createTcpConnectMonitor(tcpConnectConfig(FAST), { ...t, port: PORT + 2 }, deps));
    await waitFor(() => rec.reports.length > 0, 'a first report');
    expect(rec.reports[0]).toMatchObject({ up: true });
    expect(rec.reports[0]!.reason).toBe(`to the VIP ${VIP}:${PORT + 2} by direct routing (firewall mark 0x70b00042): TCP connect to ${VIP}:${PORT + 2} succeeded`);
  });

  it('ProxyFetch fetches from the VIP over HTTP and HTTPS', async () => {
    const before = behindVip.stats().httpRequests;
    const http = start((t, deps) => createProxyFetchMonitor(proxyFetchConfig({ ...FAST, urls: ['http://en.example.org/'] }), t, deps));
    const https = start((t, deps) => createProxyFetchMonitor(proxyFetchConfig({ ...FAST, urls: ['https://en.example.org/'] }), { ...t, port: PORT + 1 }, deps));
    await waitFor(() => http.reports.length > 0 && https.reports.length > 0, 'first reports');
    expect(http.reports[0]).toMatchObject({ up: true, reason: expect.stringContaining(`to the VIP ${VIP}:${PORT} by direct routing`) });
    expect(https.reports[0]).toMatchObject({ up: true, reason: expect.stringContaining(`to the VIP ${VIP}:${PORT + 1} by direct routing`) });
    expect(behindVip.stats().httpRequests).toBeGreaterThanOrEqual(before + 2);
  });

  it('IdleConnection holds its connection to the VIP', async () => {
    const rec = start((t, deps) => createIdleConnectionMonitor(idleConnectionConfig(), { ...t, port: PORT + 2 }, deps));
    await waitFor(() => rec.reports.length > 0, 'a first report');
    expect(rec.reports[0]).toMatchObject({ up: true, reason: `Connection established to the VIP ${VIP}:${PORT + 2} by direct routing (firewall mark 0x70b00042)` });
  });

  it('IdleConnection that finds no local address for the VIP (the director’s shortage) connects at the server’s own address instead, and is up', async () => {
    const own = await startRealServer({ name: 'own', host: SERVER, tcp: PORT + 6 });
    try {
      const rec = start((t, deps) => createIdleConnectionMonitor(idleConnectionConfig(), { ...t, port: PORT + 6, dataPath: { ...t.dataPath!, source: '192.0.2.123' } }, deps));
      await waitFor(() => rec.reports.length > 0, 'a first report');
      expect(rec.reports).toHaveLength(1);
      expect(rec.reports[0]).toMatchObject({ up: true });
      expect(rec.reports[0]!.reason).toMatch(new RegExp(`^Connection established to ${SERVER.replaceAll('.', '\\.')}:${PORT + 6} \\(at its own address: .*EADDRNOTAVAIL.*this director has no local address or port for the VIP\\)$`));
      expect(own.stats().openTcpConnections).toBe(1);
    } finally {
      for (const m of monitors.splice(0)) await m.stop();
      await own.stop();
    }
  });

  it('UDP probes the VIP: up while it listens, down on the VIP’s port unreachable', async () => {
    const up = start((t, deps) => createUdpMonitor(udpConfig({ intervalMs: 200 }), { ...t, port: PORT + 3 }, deps));
    const down = start((t, deps) => createUdpMonitor(udpConfig({ intervalMs: 200 }), { ...t, port: PORT + 4 }, deps));
    await waitFor(() => up.reports.length > 0 && down.reports.length > 0, 'first reports');
    expect(up.reports[0]).toMatchObject({ up: true, reason: expect.stringContaining(`to the VIP ${VIP}:${PORT + 3}`) });
    expect(down.reports[0]).toMatchObject({ up: false, reason: expect.stringContaining('ICMP port unreachable') });
  });

  it('a server that answers at its own address but not on the VIP is down, and the reason says where it answers', async () => {
    const own = await startRealServer({ name: 'own', host: SERVER, http: PORT + 5 });
    try {
      const rec = start((t, deps) => createTcpConnectMonitor(tcpConnectConfig(FAST), { ...t, port: PORT + 5 }, deps));
      await waitFor(() => rec.reports.length > 0, 'a first report');
      expect(rec.reports[0]).toMatchObject({ up: false });
      expect(rec.reports[0]!.reason).toBe(
        `to the VIP ${VIP}:${PORT + 5} by direct routing (firewall mark 0x70b00042): TCP connect to ${VIP}:${PORT + 5} failed: connection refused (ECONNREFUSED); ` +
          `it answers at its own address ${SERVER}:${PORT + 5} but not on the VIP (does it hold ${VIP} on lo?)`,
      );
      // Until its probe service is programmed, it is checked at its own address, and up there.
      ready = false;
      const plain = start((t, deps) => createTcpConnectMonitor(tcpConnectConfig(FAST), { ...t, port: PORT + 5 }, deps));
      await waitFor(() => plain.reports.length > 0, 'a first report');
      expect(plain.reports[0]).toMatchObject({ up: true, reason: `TCP connect to ${SERVER}:${PORT + 5} succeeded (at its own address: its data-path probe service is not in IPVS yet)` });
    } finally {
      for (const m of monitors.splice(0)) await m.stop();
      await own.stop();
    }
  });
});
