import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flushAsync, ManualClock } from '../../src/runtime/clock.js';
import { createTcpConnectMonitor, judgeConnectError } from '../../src/monitors/tcp-connect.js';
import { startRealServer, type RealServer } from '../support/real-server.js';
import { startBlackhole, type Blackhole } from './support/blackhole.js';
import { tcpConnectConfig } from './support/configs.js';
import { establishedTo, loopbackAddress, recorder, target, waitFor } from './support/helpers.js';

describe('TCPConnect verdicts (pure)', () => {
  it.each([
    ['ECONNREFUSED', false, 'TCP connect to 10.0.0.1:80 failed: connection refused (ECONNREFUSED)'],
    ['EHOSTUNREACH', false, 'TCP connect to 10.0.0.1:80 failed: host unreachable (EHOSTUNREACH)'],
    ['ENETUNREACH', false, 'TCP connect to 10.0.0.1:80 failed: network unreachable (ENETUNREACH)'],
    ['ETIMEDOUT', false, 'TCP connect to 10.0.0.1:80 failed: no answer (the kernel gave up) (ETIMEDOUT)'],
    ['EWHATEVER', false, 'TCP connect to 10.0.0.1:80 failed: connect EWHATEVER'],
    // A reset reported by the connect itself came after the handshake: up.
    ['ECONNRESET', true, 'TCP connect to 10.0.0.1:80 succeeded (then reset by the server: ECONNRESET)'],
    ['EPIPE', true, 'TCP connect to 10.0.0.1:80 succeeded (then reset by the server: EPIPE)'],
  ])('%s', (code, ok, reason) => {
    expect(judgeConnectError('10.0.0.1:80', { code, message: `connect ${code}` })).toEqual({ ok, reason });
  });

  it('an error without a code gives its message', () => {
    expect(judgeConnectError('[::1]:80', { message: 'odd' })).toEqual({ ok: false, reason: 'TCP connect to [::1]:80 failed: odd' });
  });
});

/** Our sockets in SYN-SENT towards ip:port, as the kernel sees them (ss). */
function synSentTo(ip: string, port: number): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'syn-sent', 'dst', `${ip}:${port}`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

/** A listener's accept queue: connections waiting (Recv-Q) and its backlog (Send-Q), as ss shows a listening socket. */
function acceptQueue(ip: string, port: number): { queued: number; backlog: number } {
  const out = execFileSync('ss', ['-Hltn', 'src', `${ip}:${port}`], { encoding: 'utf8' });
  const fields = out.trim().split(/\s+/);
  // State Recv-Q Send-Q Local Peer
  return { queued: Number(fields[1]), backlog: Number(fields[2]) };
}

function tcpSocketHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}

for (const family of [4, 6] as const) {
  describe(`TCPConnect against a real server over IPv${family}`, () => {
    let server: RealServer;
    const ip = family === 4 ? loopbackAddress(41) : '::1';
    const shown = family === 4 ? ip : `[${ip}]`;
    beforeAll(async () => {
      server = await startRealServer({ name: 'rs1', host: ip, tcp: 0 });
    });
    afterAll(async () => {
      await server.stop();
    });

    function start(overrides: Parameters<typeof tcpConnectConfig>[0] = {}) {
      const clock = new ManualClock();
      const rec = recorder();
      // random 0.5: the second check is one interval after the first, later ones without jitter.
      const monitor = createTcpConnectMonitor(tcpConnectConfig(overrides), target(ip, server.ports.tcp!), rec.deps(clock, { random: () => 0.5 }));
      monitor.start();
      return { clock, rec, monitor };
    }

    it('a listening server is up; the connection is closed at once', async () => {
      const before = server.stats().tcpConnections;
      const { clock, rec, monitor } = start();
      try {
        await waitFor(() => rec.reports.length === 1, 'the first report');
        expect(rec.reports[0]).toMatchObject({ kind: 'TCPConnect', up: true, firstCheck: true, reason: `TCP connect to ${shown}:${server.ports.tcp} succeeded` });
        expect(rec.results).toEqual([expect.objectContaining({ kind: 'TCPConnect', ok: true })]);
        expect(server.stats().tcpConnections).toBe(before + 1);
        // Closed by us, not held: the server's side goes too.
        await waitFor(() => server.stats().openTcpConnections === 0, 'the server to see the close');
        expect(establishedTo(ip, server.ports.tcp!)).toBe(0);
        // Nothing but the next check is scheduled.
        expect(clock.pendingCount()).toBe(1);
      } finally {
        await monitor.stop();
      }
      expect(clock.pendingCount()).toBe(0);
    });

    it('a closed port (RST to the SYN) is down with the refusal as reason', async () => {
      await server.setBehaviour({ mode: 'down' });
      const { rec, monitor } = start();
      try {
        await waitFor(() => rec.reports.length === 1, 'the first report');
        expect(rec.reports[0]).toMatchObject({ up: false, reason: `TCP connect to ${shown}:${server.ports.tcp} failed: connection refused (ECONNREFUSED)` });
      } finally {
        await monitor.stop();
        await server.setBehaviour({ mode: 'ok' });
      }
    });

    it('a server that accepts and resets at once is up (the handshake completed)', async () => {
      await server.setBehaviour({ mode: 'reset' });
      const before = server.stats().tcpConnections;
      const { rec, monitor } = start();
      try {
        await waitFor(() => rec.reports.length === 1, 'the first report');
        expect(server.stats().tcpConnections).toBe(before + 1);
        // Whether the loop saw the connect or the reset first (see the next test for the latter).
        expect(rec.reports[0]).toMatchObject({ up: true, reason: expect.stringMatching(/^TCP connect to \S+ succeeded/) });
      } finally {
        await monitor.stop();
        await server.setBehaviour({ mode: 'ok' });
      }
    });

    it('rise and fall: two bad checks to go down, two good ones to come back', async () => {
      const { clock, rec, monitor } = start({ rise: 2, fall: 2 });
      try {
        await waitFor(() => rec.results.length === 1, 'the first check');
        expect(rec.states()).toEqual(['up']);
        await server.setBehaviour({ mode: 'down' });
        await clock.advanceAsync(10_000);
        await waitFor(() => rec.results.length === 2, 'the second check');
        expect(rec.results[1]).toMatchObject({ ok: false });
        expect(rec.states()).toEqual(['up']);
        await clock.advanceAsync(10_000);
        await waitFor(() => rec.reports.length === 2, 'the down report');
        expect(rec.reports[1]).toMatchObject({ up: false, reason: expect.stringContaining('connection refused') });
        await server.setBehaviour({ mode: 'ok' });
        await clock.advanceAsync(10_000);
        await waitFor(() => rec.results.length === 4, 'the fourth check');
        expect(rec.results[3]).toMatchObject({ ok: true });
        expect(rec.states()).toEqual(['up', 'down']);
        await clock.advanceAsync(10_000);
        await waitFor(() => rec.reports.length === 3, 'the recovery');
        expect(rec.states()).toEqual(['up', 'down', 'up']);
        expect(rec.results.map((r) => r.ok)).toEqual([true, false, false, true, true]);
      } finally {
        await monitor.stop();
        await server.setBehaviour({ mode: 'ok' });
      }
    });
  });
}

describe('TCPConnect against a server that drops SYNs (accept queue full)', () => {
  let hole: Blackhole;
  beforeAll(async () => {
    hole = await startBlackhole(loopbackAddress(43));
    // The premise: the listener's accept queue is over its backlog, so the kernel drops further SYNs.
    const queue = acceptQueue(hole.ip, hole.port);
    expect(queue.queued).toBeGreaterThan(queue.backlog);
  });
  afterAll(async () => {
    await hole?.stop();
  });

  function start() {
    const clock = new ManualClock();
    const rec = recorder();
    const monitor = createTcpConnectMonitor(tcpConnectConfig({ timeoutMs: 5_000 }), target(hole.ip, hole.port), rec.deps(clock, { random: () => 0.5 }));
    monitor.start();
    return { clock, rec, monitor };
  }

  it('is down at the timeout, and its socket is gone with it', async () => {
    const queued = acceptQueue(hole.ip, hole.port).queued;
    const { clock, rec, monitor } = start();
    try {
      await waitFor(() => synSentTo(hole.ip, hole.port) === 1, 'the SYN to go unanswered');
      await clock.advanceAsync(4_999);
      expect(rec.reports).toEqual([]);
      await clock.advanceAsync(1);
      await waitFor(() => rec.reports.length === 1, 'a report');
      expect(rec.reports[0]).toMatchObject({ up: false, reason: `TCP connect to ${hole.ip}:${hole.port} timed out after 5 s` });
      expect(rec.results).toEqual([expect.objectContaining({ ok: false, durationMs: 5_000 })]);
      // Abandoned at the deadline, not left to the kernel's SYN retries.
      expect(synSentTo(hole.ip, hole.port)).toBe(0);
      expect(acceptQueue(hole.ip, hole.port).queued).toBe(queued);
    } finally {
      await monitor.stop();
    }
  });

  it('stop() during a hanging connect closes its socket, reports nothing and leaves no timer', async () => {
    const handles = tcpSocketHandles();
    const { clock, rec, monitor } = start();
    await waitFor(() => synSentTo(hole.ip, hole.port) === 1, 'the SYN to go unanswered');
    expect(tcpSocketHandles()).toBe(handles + 1);
    await monitor.stop();
    expect(synSentTo(hole.ip, hole.port)).toBe(0);
    expect(clock.pendingCount()).toBe(0);
    // The file descriptor is closed at once (above); Node drops the handle in the loop's close phase.
    await flushAsync();
    expect(tcpSocketHandles()).toBe(handles);
    await clock.advanceAsync(60_000);
    expect(rec.reports).toEqual([]);
    expect(rec.results).toEqual([]);
  });
});

describe('TCPConnect when the reset arrives before the loop sees the connect', () => {
  it('is up: the connect fails with ECONNRESET, which only a completed handshake can give', async () => {
    const ip = loopbackAddress(45);
    // The server runs in a thread of its own, so that it accepts and resets while our loop is held.
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const net = require('node:net');
       const server = net.createServer((socket) => {
         socket.resetAndDestroy();
         Atomics.store(workerData.flag, 0, 1);
         Atomics.notify(workerData.flag, 0);
       });
       server.listen(0, workerData.ip, () => parentPort.postMessage(server.address().port));`,
      { eval: true, workerData: { flag, ip } },
    );
    try {
      const port = await new Promise<number>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      const clock = new ManualClock();
      const rec = recorder();
      const monitor = createTcpConnectMonitor(tcpConnectConfig(), target(ip, port), rec.deps(clock));
      monitor.start();
      try {
        // The check's connect(2) runs in a next-tick callback; ours runs after it.
        await new Promise((resolve) => process.nextTick(resolve));
        // Hold the loop until the server has accepted and reset (at once if it has already)...
        Atomics.wait(flag, 0, 0, 10_000);
        expect(Atomics.load(flag, 0)).toBe(1);
        // ...and the reset has reached our socket (no longer established), still without a turn of the loop.
        for (let i = 0; i < 100 && establishedTo(ip, port) > 0; i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        expect(establishedTo(ip, port)).toBe(0);
        await waitFor(() => rec.reports.length === 1, 'a report');
        expect(rec.reports[0]).toMatchObject({ up: true, reason: `TCP connect to ${ip}:${port} succeeded (then reset by the server: ECONNRESET)` });
      } finally {
        await monitor.stop();
      }
    } finally {
      await worker.terminate();
    }
  });
});

describe('TCPConnect closes normally', () => {
  /** One check against a server that records what it sees of the connection (after greeting it with `banner`, if any). */
  async function checkSeenByServer(seed: number, banner?: string): Promise<{ seen: string[]; up: boolean | undefined }> {
    const ip = loopbackAddress(seed);
    const seen: string[] = [];
    const server = net.createServer((socket) => {
      if (banner !== undefined) socket.write(banner);
      socket.on('data', () => seen.push('data'));
      socket.on('end', () => seen.push('FIN'));
      socket.on('error', (error: NodeJS.ErrnoException) => seen.push(error.code ?? error.message));
      socket.on('close', () => seen.push('closed'));
    });
    await new Promise<void>((resolve) => server.listen(0, ip, resolve));
    const rec = recorder();
    const monitor = createTcpConnectMonitor(tcpConnectConfig(), target(ip, (server.address() as net.AddressInfo).port), rec.deps(new ManualClock()));
    try {
      monitor.start();
      await waitFor(() => seen.includes('closed'), 'the server to see the connection close');
      return { seen, up: rec.reports[0]?.up };
    } finally {
      await monitor.stop();
      await new Promise((resolve) => server.close(resolve));
    }
  }

  it('the server reads an orderly end of stream (FIN), not a reset', async () => {
    // Nothing sent, then a FIN: what a server logs as a client that went away, not as a reset.
    expect(await checkSeenByServer(47)).toEqual({ seen: ['FIN', 'closed'], up: true });
  });

  it('a server that speaks first still sees a reset: its banner reaches a closed socket (as keepalived; documented)', async () => {
    expect(await checkSeenByServer(49, 'SSH-2.0-test\r\n')).toEqual({ seen: ['ECONNRESET', 'closed'], up: true });
  });
});
