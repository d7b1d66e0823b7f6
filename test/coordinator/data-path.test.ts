// The coordinator's side of data-path checks: which monitors get the VIP
// route, the firewall mark each checked server holds (and gives back), and
// what the daemon is told to program for them.
import { describe, expect, it } from 'vitest';
import type { MonitorConfig, ServiceConfig } from '../../src/config/types.js';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { DataPathMarks } from '../../src/coordinator/data-path-marks.js';
import { flushAsync, ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { proxyFetchConfig, tcpConnectConfig } from '../monitors/support/configs.js';
import { fakeMonitors, fakeResolver, poolEvent, serviceConfig } from './support/fakes.js';

function setup(service: Partial<ServiceConfig>, monitors: readonly MonitorConfig[] = [proxyFetchConfig(), tcpConnectConfig()]) {
  const clock = new ManualClock();
  const log = createMemoryLogger();
  const fakes = fakeMonitors();
  const resolver = fakeResolver();
  for (let i = 1; i <= 9; i++) resolver.answers.set(`mw${i}`, [`192.0.2.${i}`]);
  const marks = new DataPathMarks(0x70b00000);
  const programmed = new Set<number>();
  const rates: number[] = [];
  const coordinator = new Coordinator(serviceConfig({ monitors, ...service }), {
    clock,
    logger: log.logger,
    createMonitor: fakes.create,
    resolve: resolver.resolve,
    onChange: () => undefined,
    dataPath: {
      acquire: () => marks.acquire(),
      release: (m) => marks.release(m),
      programmed: (m) => programmed.has(m),
      source: undefined,
      connectionRate: (perSec) => rates.push(perSec),
    },
  });
  const probes = (): string[] => {
    const out: string[] = [];
    coordinator.forEachDataPathProbe((host, address, mark) => out.push(`${host} ${address} ${mark - 0x70b00000}`));
    return out;
  };
  return { clock, log, fakes, resolver, coordinator, marks, programmed, probes, rates };
}

describe('Coordinator: data-path checks', () => {
  it('gives the data-path monitors the VIP route with a mark per server, the others the server address', async () => {
    const t = setup({ dataPathMonitors: ['TCPConnect'], port: 443 });
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2:0:disabled'));
    await flushAsync();
    const targets = t.fakes.all.map((m) => ({ kind: m.config.kind, host: m.target.host, ip: m.target.ip, port: m.target.port, mark: m.target.dataPath?.mark, vip: m.target.dataPath?.vip }));
    expect(targets).toEqual([
      { kind: 'ProxyFetch', host: 'mw1', ip: '192.0.2.1', port: 443, mark: undefined, vip: undefined },
      { kind: 'TCPConnect', host: 'mw1', ip: '192.0.2.1', port: 443, mark: 0x70b00000, vip: '198.51.100.80' },
      // A disabled server is checked too, so it has its probe as well.
      { kind: 'ProxyFetch', host: 'mw2', ip: '192.0.2.2', port: 443, mark: undefined, vip: undefined },
      { kind: 'TCPConnect', host: 'mw2', ip: '192.0.2.2', port: 443, mark: 0x70b00001, vip: '198.51.100.80' },
    ]);
    expect(t.probes()).toEqual(['mw1 192.0.2.1 0', 'mw2 192.0.2.2 1']);
    const route = t.fakes.all[1]!.target.dataPath!;
    expect(route.method).toBe('dr');
    expect(route.ready()).toBe(false);
    t.programmed.add(route.mark);
    expect(route.ready()).toBe(true);
    expect(t.coordinator.snapshot().servers[0]!.monitors.map((m) => m.dataPath)).toEqual([undefined, true]);
  });

  it('gives the mark back when the server leaves the pool, and takes a new one when its monitors restart', async () => {
    const t = setup({ dataPathMonitors: ['ProxyFetch', 'TCPConnect'] });
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2'));
    await flushAsync();
    expect(t.marks.count()).toBe(2);
    t.coordinator.onPoolEvent(poolEvent('mw1'));
    await flushAsync();
    expect(t.probes()).toEqual(['mw1 192.0.2.1 0']);
    expect(t.marks.count()).toBe(1);
    // The address changes: the monitors restart with a fresh mark, and the old one is given back.
    t.resolver.answers.set('mw1', ['192.0.2.99']);
    t.clock.advance(60_000);
    await flushAsync();
    expect(t.probes()).toEqual(['mw1 192.0.2.99 2']);
    expect(t.marks.count()).toBe(1);
    await t.coordinator.stop();
    expect(t.marks.count()).toBe(0);
  });

  it('gives no mark to NAT services nor to services without data-path monitors', async () => {
    for (const service of [{ dataPathMonitors: ['TCPConnect' as const], forwardMethod: 'nat' as const }, { dataPathMonitors: [] }]) {
      const t = setup(service);
      t.coordinator.onPoolEvent(poolEvent('mw1'));
      await flushAsync();
      expect(t.fakes.all.every((m) => m.target.dataPath === undefined)).toBe(true);
      expect(t.probes()).toEqual([]);
      expect(t.marks.count()).toBe(0);
    }
  });

  it('tells the daemon, after each pool, how many connections a second its data-path checks open to the VIP', async () => {
    // ProxyFetch every 10 s over two URLs (check_all), TCPConnect every 5 s: 0.4 a second per server.
    const t = setup({ dataPathMonitors: ['ProxyFetch', 'TCPConnect'] }, [
      proxyFetchConfig({ intervalMs: 10_000, checkAll: true, urls: ['http://a/', 'http://b/'] }),
      tcpConnectConfig({ intervalMs: 5_000 }),
    ]);
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3', 'mw4', 'mw5'));
    await flushAsync();
    expect(t.rates.at(-1)).toBeCloseTo(2);
    t.coordinator.onPoolEvent(poolEvent('mw1'));
    await flushAsync();
    expect(t.rates.at(-1)).toBeCloseTo(0.4);
  });
});
