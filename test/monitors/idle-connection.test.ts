import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { BACKOFF_JITTER, createIdleConnectionMonitor, nextBackoffMs } from '../../src/monitors/idle-connection.js';
import { startRealServer, type RealServer } from '../support/real-server.js';
import { startBlackhole } from './support/blackhole.js';
import { idleConnectionConfig } from './support/configs.js';
import { establishedTo, loopbackAddress, recorder, target, waitFor } from './support/helpers.js';

describe('IdleConnection backoff (pure)', () => {
  it('starts at 1 s, grows by e, is capped at max-delay, and jitters', () => {
    expect(nextBackoffMs(0, 300_000, 0)).toBe(1000);
    expect(nextBackoffMs(1000, 300_000, 0)).toBeCloseTo(1000 * Math.E, 6);
    expect(nextBackoffMs(200_000, 300_000, 0)).toBe(300_000);
    expect(nextBackoffMs(200_000, 300_000, 2)).toBe(300_000);
    expect(nextBackoffMs(0, 300_000, 1)).toBeCloseTo(1000 * (1 + BACKOFF_JITTER), 6);
    let delay = 0;
    const seen: number[] = [];
    for (let i = 0; i < 8; i++) seen.push(Math.round((delay = nextBackoffMs(delay, 300_000, 0))));
    expect(seen).toEqual([1000, 2718, 7389, 20086, 54598, 148413, 300000, 300000]);
  });
});

describe('IdleConnection against a real server', () => {
  let server: RealServer;
  const ip = loopbackAddress(21);
  beforeAll(async () => {
    server = await startRealServer({ name: 'rs1', host: ip, tcp: 0 });
  });
  afterAll(async () => {
    await server.stop();
  });

  function start(overrides: Parameters<typeof idleConnectionConfig>[0] = {}) {
    const clock = new ManualClock();
    const rec = recorder();
    // random 0.75: cos(1.5π) = 0, so the jitter is zero and delays are exact.
    const monitor = createIdleConnectionMonitor(idleConnectionConfig(overrides), target(ip, server.ports.tcp!), rec.deps(clock, { random: () => 0.75 }));
    monitor.start();
    return { clock, rec, monitor };
  }

  it('is up while connected; a clean close reconnects at once without a report; a reset is down, then backoff reconnects', async () => {
    const before = server.stats().tcpConnections;
    const { clock, rec, monitor } = start();
    await waitFor(() => rec.reports.length === 1, 'the first report');
    expect(rec.reports[0]).toMatchObject({ up: true, firstCheck: true });
    expect(establishedTo(ip, server.ports.tcp!)).toBe(1);

    await clock.advanceAsync(1000); // a connection that lasted: a clean close reconnects at once
    server.dropConnections('fin');
    await waitFor(() => server.stats().tcpConnections === before + 2, 'the reconnect');
    await waitFor(() => rec.results.length === 2, 'the reconnect result');
    expect(rec.results[1]).toMatchObject({ ok: true, event: 'connected' });
    expect(rec.states()).toEqual(['up']);

    await clock.advanceAsync(1000);
    server.dropConnections('rst');
    await waitFor(() => rec.reports.length === 2, 'the down report');
    expect(rec.reports[1]).toMatchObject({ up: false, reason: expect.stringContaining('ECONNRESET') });
    expect(rec.results[2]).toMatchObject({ ok: false, event: 'connection-lost', errorCode: 'ECONNRESET' });
    expect(establishedTo(ip, server.ports.tcp!)).toBe(0);
    // A connection that lasted resets the backoff: the retry comes after 1 s.
    expect(clock.nextDeadline()).toBe(clock.now() + 1000);
    await clock.advanceAsync(999);
    expect(server.stats().tcpConnections).toBe(before + 2);
    await clock.advanceAsync(1);
    await waitFor(() => rec.reports.length === 3, 'the recovery');
    expect(rec.states()).toEqual(['up', 'down', 'up']);

    await monitor.stop();
    expect(establishedTo(ip, server.ports.tcp!)).toBe(0);
    expect(clock.pendingCount()).toBe(0);
  });

  it('a refused connection is down; retries back off by e until the server is back', async () => {
    await server.setBehaviour({ mode: 'down' });
    const { clock, rec, monitor } = start();
    try {
      await waitFor(() => rec.reports.length === 1, 'the first report');
      expect(rec.reports[0]).toMatchObject({ up: false, firstCheck: true, reason: expect.stringContaining('ECONNREFUSED') });
      expect(rec.results[0]).toMatchObject({ event: 'connect-failed', errorCode: 'ECONNREFUSED' });
      expect(clock.nextDeadline()).toBe(1000);
      await clock.advanceAsync(1000);
      await waitFor(() => rec.results.length === 2, 'the second attempt');
      expect(clock.nextDeadline()).toBeCloseTo(1000 + 1000 * Math.E, 3);
      await server.setBehaviour({ mode: 'ok' });
      await clock.advanceAsync(2719);
      await waitFor(() => rec.reports.length === 2, 'the recovery');
      expect(rec.states()).toEqual(['down', 'up']);
    } finally {
      await monitor.stop();
      await server.setBehaviour({ mode: 'ok' });
    }
  });

  it('waits the start delay before connecting; presumed up, a refused server is down only after `fall` failures', async () => {
    const before = server.stats().tcpConnections;
    const clock = new ManualClock();
    const rec = recorder();
    const monitor = createIdleConnectionMonitor(idleConnectionConfig(), target(ip, server.ports.tcp!), rec.deps(clock, { random: () => 0.75 }));
    monitor.start({ delayMs: 2_000 });
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(server.stats().tcpConnections).toBe(before);
      await clock.advanceAsync(2_000);
      await waitFor(() => rec.reports.length === 1, 'the first report');
      expect(rec.reports[0]).toMatchObject({ up: true, firstCheck: true });
      expect(server.stats().tcpConnections).toBe(before + 1);
    } finally {
      await monitor.stop();
    }

    await server.setBehaviour({ mode: 'down' });
    const rec2 = recorder();
    const presumed = createIdleConnectionMonitor(idleConnectionConfig({ fall: 2 }), target(ip, server.ports.tcp!), rec2.deps(clock, { random: () => 0.75 }));
    presumed.start({ assumeUp: true });
    try {
      await waitFor(() => rec2.results.length === 1, 'the first attempt');
      expect(rec2.results[0]).toMatchObject({ ok: false, event: 'connect-failed' });
      expect(rec2.reports).toEqual([]);
      expect(presumed.state()).toBe('up');
      await clock.advanceAsync(1_000);
      await waitFor(() => rec2.reports.length === 1, 'the down report');
      expect(rec2.reports[0]).toMatchObject({ up: false, reason: expect.stringContaining('ECONNREFUSED') });
    } finally {
      await presumed.stop();
      await server.setBehaviour({ mode: 'ok' });
    }
  });

  it('connects only once admitted (a batch per turn, as checks), and not at all when stopped while waiting', async () => {
    const before = server.stats().tcpConnections;
    const clock = new ManualClock();
    const gates: (() => void)[] = [];
    const admit = (): Promise<void> => new Promise<void>((resolve) => gates.push(resolve));
    const rec = recorder();
    const admitted = createIdleConnectionMonitor(idleConnectionConfig(), target(ip, server.ports.tcp!), rec.deps(clock, { random: () => 0.75, admit }));
    const stopped = createIdleConnectionMonitor(idleConnectionConfig(), target(ip, server.ports.tcp!), recorder().deps(clock, { random: () => 0.75, admit }));
    admitted.start();
    stopped.start();
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(gates).toHaveLength(2);
      expect(server.stats().tcpConnections).toBe(before);
      await stopped.stop();
      for (const open of gates) open();
      await waitFor(() => rec.reports.length === 1, 'the first report');
      expect(rec.reports[0]).toMatchObject({ up: true, firstCheck: true });
      await new Promise((resolve) => setTimeout(resolve, 100));
      // Only the one still running connected.
      expect(server.stats().tcpConnections).toBe(before + 1);
    } finally {
      await admitted.stop();
    }
  });

  it('a failed reconnect after a clean close is down', async () => {
    const { clock, rec, monitor } = start();
    try {
      await waitFor(() => rec.reports.length === 1, 'the first report');
      await clock.advanceAsync(1000);
      await server.setBehaviour({ mode: 'down' });
      await waitFor(() => rec.reports.length === 2, 'the down report');
      expect(rec.reports[1]).toMatchObject({ up: false });
      expect(rec.log.lines().join('\n')).toMatch(/reconnect after clean close failed|Connection lost/);
    } finally {
      await monitor.stop();
      await server.setBehaviour({ mode: 'ok' });
    }
  });

  it('fall 2: one lost connection is not enough to go down', async () => {
    const { clock, rec, monitor } = start({ fall: 2 });
    await waitFor(() => rec.reports.length === 1, 'the first report');
    server.dropConnections('rst');
    await waitFor(() => rec.results.length === 2, 'the lost connection');
    expect(rec.states()).toEqual(['up']);
    await clock.advanceAsync(1000);
    await waitFor(() => rec.results.length === 3, 'the reconnect');
    expect(rec.states()).toEqual(['up']);
    await monitor.stop();
  });
});

describe('IdleConnection against a server that closes every connection at once', () => {
  it('does not reconnect in a tight loop: short-lived connections back off, state stays up', async () => {
    const ip = loopbackAddress(23);
    let accepted = 0;
    const server = net.createServer((socket) => {
      accepted += 1;
      socket.on('error', () => undefined);
      socket.end();
    });
    await new Promise<void>((resolve) => server.listen(0, ip, resolve));
    const clock = new ManualClock();
    const rec = recorder();
    const monitor = createIdleConnectionMonitor(idleConnectionConfig(), target(ip, (server.address() as net.AddressInfo).port), rec.deps(clock, { random: () => 0.75 }));
    try {
      monitor.start();
      await waitFor(() => accepted === 1 && clock.pendingCount() > 0 && rec.results.length === 1, 'the first connection and its close');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(accepted).toBe(1);
      expect(clock.nextDeadline()).toBe(1000);
      await clock.advanceAsync(1000);
      await waitFor(() => accepted === 2, 'the second connection');
      await waitFor(() => clock.pendingCount() > 0 && clock.nextDeadline()! > 1000, 'the next backoff');
      expect(clock.nextDeadline()).toBeCloseTo(1000 + 1000 * Math.E, 3);
      expect(rec.states()).toEqual(['up']);
    } finally {
      await monitor.stop();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('IdleConnection against a server that never answers the SYN', () => {
  it('is down when the connect timeout passes, then retries with backoff', async () => {
    const hole = await startBlackhole(loopbackAddress(22));
    const clock = new ManualClock();
    const rec = recorder();
    const monitor = createIdleConnectionMonitor(idleConnectionConfig({ connectTimeoutMs: 5_000 }), target(hole.ip, hole.port), rec.deps(clock, { random: () => 0.75 }));
    try {
      monitor.start();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await clock.advanceAsync(4_999);
      expect(rec.reports).toEqual([]);
      await clock.advanceAsync(1);
      await waitFor(() => rec.reports.length === 1, 'the down report');
      expect(rec.reports[0]).toMatchObject({ up: false, reason: 'IdleConnection connection failed: connect timed out after 5 s' });
      expect(rec.results[0]).toMatchObject({ event: 'connect-failed', errorCode: 'ETIMEDOUT' });
      expect(clock.nextDeadline()).toBe(6_000);
    } finally {
      await monitor.stop();
      await hole.stop();
    }
    expect(clock.pendingCount()).toBe(0);
  });
});
