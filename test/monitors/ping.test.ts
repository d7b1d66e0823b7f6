import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSystemClock } from '../../src/runtime/clock.js';
import { createSilentLogger } from '../../src/runtime/logger.js';
import { createPingMonitor, pingSettings } from '../../src/monitors/ping.js';
import { createFpingPinger, packetIntervalMs, parseFpingLine, shardTargets, type Pinger } from '../../src/monitors/pinger.js';
import { pingConfig } from './support/configs.js';
import { loopbackAddress, recorder, target, waitFor } from './support/helpers.js';
import { createSilentNetns, type SilentNetns } from './support/netns.js';

/** fping processes that are children of this process (ip netns exec replaces itself with fping). */
function fpingChildren(): number {
  const out = execFileSync('ps', ['--ppid', String(process.pid), '-o', 'comm='], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim() === 'fping').length;
}

describe('fping output and settings (pure)', () => {
  it('parses replies and timeouts, ignores the rest', () => {
    expect(parseFpingLine('127.0.0.1   : [12], 64 bytes, 0.042 ms (0.339 avg, 0% loss)')).toEqual({ ip: '127.0.0.1', seq: 12, rttMs: 0.042 });
    expect(parseFpingLine('2001:db8::2 : [0], timed out (NaN avg, 100% loss)')).toEqual({ ip: '2001:db8::2', seq: 0, rttMs: undefined });
    expect(parseFpingLine('ICMP Host Unreachable from 192.0.2.1 for ICMP Echo sent to 192.0.2.2')).toBeUndefined();
  });
  it('spreads one round of echoes over the period', () => {
    expect(packetIntervalMs(1000, 5_000)).toBe(0.1);
    expect(packetIntervalMs(1000, 2)).toBe(10);
    expect(packetIntervalMs(1000, 1_000_000)).toBe(0.01);
  });
  it('splits large groups over several fping processes (each keeps under 65,535 echoes per 10 s)', () => {
    const ips = Array.from({ length: 10_000 }, (_, i) => `10.0.${Math.floor(i / 250)}.${i % 250}`);
    const shards = shardTargets(ips, 1000);
    expect(shards.map((s) => s.length)).toEqual([5000, 5000]);
    expect(shards.flat()).toEqual(ips);
    expect(shardTargets(ips, 10_000)).toHaveLength(1);
    expect(shardTargets([], 1000)).toEqual([]);
  });
  it('count echoes per interval, each within the timeout', () => {
    expect(pingSettings({ intervalMs: 1000, timeoutMs: 1000, count: 1 })).toEqual({ periodMs: 1000, timeoutMs: 1000 });
    expect(pingSettings({ intervalMs: 3000, timeoutMs: 2000, count: 3 })).toEqual({ periodMs: 1000, timeoutMs: 1000 });
    expect(pingSettings({ intervalMs: 2000, timeoutMs: 300, count: 2 })).toEqual({ periodMs: 1000, timeoutMs: 300 });
  });
});

describe('Ping on loopback (shared pinger)', () => {
  it('many servers, IPv4 and IPv6, one fping process; stop leaves none', async () => {
    const clock = createSystemClock();
    const pinger = createFpingPinger({ clock, logger: createSilentLogger() });
    const ips = [loopbackAddress(51), loopbackAddress(52), loopbackAddress(53), '::1'];
    const recs = ips.map(() => recorder());
    const monitors = ips.map((ip, i) => createPingMonitor(pingConfig({ intervalMs: 200, timeoutMs: 150 }), target(ip, 80), recs[i]!.deps(clock, { pinger })));
    try {
      for (const m of monitors) m.start();
      await waitFor(() => recs.every((r) => r.reports.length === 1), 'every first report');
      expect(recs.map((r) => r.reports[0]?.up)).toEqual([true, true, true, true]);
      expect(recs[3]!.reports[0]?.reason).toMatch(/^::1: echo reply in [\d.]+ ms$/);
      expect(fpingChildren()).toBe(1);
    } finally {
      await Promise.all(monitors.map((m) => m.stop()));
      await pinger.stop();
    }
    expect(fpingChildren()).toBe(0);
  });

  it('a monitor without a shared pinger owns one and stops it', async () => {
    const rec = recorder();
    const monitor = createPingMonitor(pingConfig({ intervalMs: 200, timeoutMs: 150 }), target(loopbackAddress(54), 80), rec.deps(createSystemClock()));
    monitor.start();
    await waitFor(() => rec.reports.length === 1, 'a report');
    expect(rec.reports[0]?.up).toBe(true);
    await monitor.stop();
    expect(fpingChildren()).toBe(0);
  });

  it('a pinger that cannot run: silence counts as failure (watchdog)', async () => {
    const clock = createSystemClock();
    const pinger = createFpingPinger({ clock, logger: createSilentLogger(), command: ['/nonexistent/fping'], restartDelayMs: 100 });
    const rec = recorder();
    const monitor = createPingMonitor(pingConfig({ intervalMs: 100, timeoutMs: 100 }), target(loopbackAddress(55), 80), rec.deps(clock, { pinger }));
    try {
      monitor.start();
      await waitFor(() => rec.reports.length === 1, 'a report');
      expect(rec.reports[0]).toMatchObject({ up: false, reason: expect.stringContaining('fping could not send or is not running') });
    } finally {
      await monitor.stop();
      await pinger.stop();
    }
  });
});

describe('Ping down and recovery in a private network namespace', () => {
  let ns: SilentNetns;
  let pinger: Pinger;
  beforeAll(() => {
    ns = createSilentNetns('ping');
    pinger = createFpingPinger({ clock: createSystemClock(), logger: createSilentLogger(), command: [...ns.prefix, 'fping'] });
  });
  afterAll(async () => {
    await pinger.stop();
    ns.remove();
  });

  for (const [up, silent] of [
    ['192.0.2.1', '192.0.2.2'],
    ['2001:db8::1', '2001:db8::2'],
  ] as const) {
    it(`${silent} unanswered is down and recovers when it answers; ${up} stays up`, async () => {
      const clock = createSystemClock();
      const good = recorder();
      const bad = recorder();
      const config = pingConfig({ intervalMs: 300, timeoutMs: 200, count: 2 });
      const monitors = [
        createPingMonitor(config, target(up, 80), good.deps(clock, { pinger })),
        createPingMonitor(config, target(silent, 80), bad.deps(clock, { pinger })),
      ];
      try {
        for (const m of monitors) m.start();
        await waitFor(() => good.reports.length === 1 && bad.reports.length === 1, 'first reports');
        expect(good.reports[0]?.up).toBe(true);
        expect(bad.reports[0]).toMatchObject({ up: false, reason: `${silent}: 2 echo request(s) unanswered: no echo reply within 0.15 s` });
        ns.answer(silent);
        await waitFor(() => bad.reports.length === 2, 'the recovery');
        expect(bad.states()).toEqual(['down', 'up']);
        ns.silence(silent);
        await waitFor(() => bad.reports.length === 3, 'down again');
        expect(good.states()).toEqual(['up']);
      } finally {
        await Promise.all(monitors.map((m) => m.stop()));
      }
    });
  }
});
