import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSystemClock, ManualClock } from '../../src/runtime/clock.js';
import { bodyProblem, createProxyFetchMonitor, prepareProxyFetchMonitor, statusPasses, summarise } from '../../src/monitors/proxyfetch.js';
import { createSelfSignedCertificate, startRealServer, type RealServer } from '../support/real-server.js';
import { startBlackhole } from './support/blackhole.js';
import { proxyFetchConfig } from './support/configs.js';
import { establishedTo, loopbackAddress, recorder, target, waitFor } from './support/helpers.js';

describe('ProxyFetch rules (pure)', () => {
  it.each([
    [200, 200, true],
    [204, 200, true],
    [299, 200, true],
    [301, 200, false],
    [404, 200, false],
    [500, 200, false],
    [301, 301, true],
    [302, 302, true],
    [303, 301, true],
    [200, 302, false],
    [304, 302, false],
    [200, 404, true], // PyBal: http_status other than 301-303 has no effect
  ])('status %i with http_status %i passes: %s', (status, httpStatus, ok) => {
    expect(statusPasses(status, httpStatus)).toBe(ok);
  });

  it('body checks: substring and regular expression', () => {
    expect(bodyProblem("I'm alive!", { expectBody: "I'm alive!", expectBodyRegex: undefined })).toBeUndefined();
    expect(bodyProblem('dead', { expectBody: "I'm alive!", expectBodyRegex: undefined })).toBe('body does not contain "I\'m alive!"');
    expect(bodyProblem('version 1.2', { expectBody: undefined, expectBodyRegex: /version \d+\.\d+/ })).toBeUndefined();
    expect(bodyProblem('version x', { expectBody: undefined, expectBodyRegex: /version \d+/ })).toBe('body does not match /version \\d+/');
  });

  it('check_all and max_failures', () => {
    const r = (ok: boolean, url: string) => ({ url, ok, reason: ok ? 'HTTP status 200' : 'HTTP status 500', durationMs: 12 });
    expect(summarise([r(true, 'http://a/'), r(false, 'http://b/')], 1).ok).toBe(true);
    const down = summarise([r(true, 'http://a/'), r(false, 'http://b/'), r(false, 'http://c/')], 1);
    expect(down).toMatchObject({ ok: false, reason: 'Fetch failed (http://b/): HTTP status 500; Fetch failed (http://c/): HTTP status 500' });
    expect(summarise([r(true, 'http://a/')], 0).reason).toBe('Fetch successful (http://a/), 0.012 s');
    // The round lasts as long as its slowest URL (all are timed from the check's start).
    expect(summarise([r(true, 'http://a/'), { ...r(false, 'http://b/'), durationMs: 30 }], 0).durationMs).toBe(30);
  });
});

describe('ProxyFetch against a real server on loopback', () => {
  let server: RealServer;
  const ip = loopbackAddress(11);

  beforeAll(async () => {
    server = await startRealServer({ name: 'rs1', host: ip, http: 0, https: 0, tlsNames: ['en.wikipedia.org'] });
  });
  afterAll(async () => {
    await server.stop();
  });

  /** Runs one monitor with a manual clock; `step` drives it and the monitor is stopped after. */
  async function withMonitor(
    config: Parameters<typeof proxyFetchConfig>[0],
    step: (ctx: { clock: ManualClock; rec: ReturnType<typeof recorder>; next(): Promise<void> }) => Promise<void>,
    port = server.ports.http!,
  ): Promise<void> {
    const clock = new ManualClock();
    const rec = recorder();
    const monitor = createProxyFetchMonitor(proxyFetchConfig(config), target(ip, port), rec.deps(clock, { random: () => 0.5 }));
    const next = async (): Promise<void> => {
      const before = rec.results.length;
      await clock.advanceAsync(10_000);
      await waitFor(() => rec.results.length > before, 'the next check result');
    };
    try {
      monitor.start();
      await waitFor(() => rec.results.length > 0, 'the first check result');
      await step({ clock, rec, next });
    } finally {
      await monitor.stop();
      await server.setBehaviour({ mode: 'ok' });
    }
    expect(clock.pendingCount()).toBe(0);
  }

  it('is up on 200, sends Host from the URL to the server address and port, then down and up again', async () => {
    await withMonitor({ urls: ['http://en.wikipedia.org/wiki/Main_Page?x=1'] }, async ({ rec, next }) => {
      expect(rec.reports[0]).toMatchObject({ up: true, firstCheck: true });
      expect(rec.reports[0]?.reason).toMatch(/^Fetch successful \(http:\/\/en\.wikipedia\.org\/wiki\/Main_Page\?x=1\), /);
      expect(server.stats().lastHttpRequest).toMatchObject({ method: 'GET', path: '/wiki/Main_Page?x=1', host: 'en.wikipedia.org' });
      expect(rec.results[0]?.urls?.[0]).toMatchObject({ url: 'http://en.wikipedia.org/wiki/Main_Page?x=1', ok: true });
      await server.setBehaviour({ mode: 'status', status: 503 });
      await next();
      expect(rec.states()).toEqual(['up', 'down']);
      expect(rec.reports[1]?.reason).toContain('HTTP status 503');
      await server.setBehaviour({ mode: 'ok' });
      await next();
      expect(rec.states()).toEqual(['up', 'down', 'up']);
    });
  });

  it('monitors of one prepared config each check their own server with the URL they pick', async () => {
    const make = prepareProxyFetchMonitor(proxyFetchConfig({ urls: ['http://a.example/', 'http://b.example/'] }));
    const clock = new ManualClock();
    const up = recorder();
    const refused = recorder();
    const monitors = [
      make(target(ip, server.ports.http!), up.deps(clock, { random: () => 0.1 })),
      // Nothing listens on this address: the connection is refused.
      make(target(loopbackAddress(14), server.ports.http!), refused.deps(clock, { random: () => 0.9 })),
    ];
    try {
      for (const m of monitors) m.start();
      await waitFor(() => up.reports.length > 0 && refused.reports.length > 0, 'both reports');
      expect(up.reports[0]).toMatchObject({ up: true, reason: expect.stringMatching(/^Fetch successful \(http:\/\/a\.example\/\), /) });
      expect(refused.reports[0]).toMatchObject({ up: false, reason: expect.stringMatching(/^Fetch failed \(http:\/\/b\.example\/\): .*ECONNREFUSED/) });
    } finally {
      await Promise.all(monitors.map((m) => m.stop()));
    }
  });

  it('keeps a non-default URL port in Host but still connects to the service port', async () => {
    await withMonitor({ urls: ['http://cp1001.example.org:8080/health'] }, async ({ rec }) => {
      expect(rec.states()).toEqual(['up']);
      expect(server.stats().lastHttpRequest?.host).toBe('cp1001.example.org:8080');
    });
  });

  it('is down when the server refuses the connection', async () => {
    await server.setBehaviour({ mode: 'down' });
    await withMonitor({}, async ({ rec }) => {
      expect(rec.reports).toEqual([expect.objectContaining({ up: false, firstCheck: true })]);
      expect(rec.reports[0]?.reason).toContain('ECONNREFUSED');
    });
  });

  it('is down when the server resets the connection', async () => {
    await server.setBehaviour({ mode: 'reset' });
    await withMonitor({}, async ({ rec }) => {
      expect(rec.states()).toEqual(['down']);
      expect(rec.reports[0]?.reason).toMatch(/ECONNRESET|socket hang up/);
    });
  });

  it('is down at the deadline when the server accepts and never answers', async () => {
    await server.setBehaviour({ mode: 'hang' });
    const clock = new ManualClock();
    const rec = recorder();
    const monitor = createProxyFetchMonitor(proxyFetchConfig({ timeoutMs: 5_000 }), target(ip, server.ports.http!), rec.deps(clock));
    const before = server.stats().tcpConnections;
    monitor.start();
    await waitFor(() => server.stats().tcpConnections > before, 'the connection');
    await clock.advanceAsync(4_999);
    expect(rec.reports).toEqual([]);
    await clock.advanceAsync(1);
    await waitFor(() => rec.reports.length > 0, 'a report');
    expect(rec.reports[0]).toMatchObject({ up: false, reason: 'Fetch failed (http://www.example.com/): timed out after 5 s' });
    // Our side of the connection is gone (the hanging server may keep its own half open).
    expect(establishedTo(ip, server.ports.http!)).toBe(0);
    await monitor.stop();
    await server.setBehaviour({ mode: 'ok' });
  });

  it('the deadline covers the connect: a server that never answers the SYN is down at the deadline', async () => {
    const hole = await startBlackhole(loopbackAddress(13));
    const clock = new ManualClock();
    const rec = recorder();
    const monitor = createProxyFetchMonitor(proxyFetchConfig({ timeoutMs: 5_000 }), target(hole.ip, hole.port), rec.deps(clock));
    try {
      monitor.start();
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(rec.reports).toEqual([]);
      await clock.advanceAsync(5_000);
      await waitFor(() => rec.reports.length > 0, 'a report');
      expect(rec.reports[0]).toMatchObject({ up: false, reason: 'Fetch failed (http://www.example.com/): timed out after 5 s' });
    } finally {
      await monitor.stop();
      await hole.stop();
    }
  });

  it('is down at the deadline when the server trickles its response', async () => {
    await server.setBehaviour({ mode: 'trickle', byteIntervalMs: 50 });
    const clock = new ManualClock();
    const rec = recorder();
    const monitor = createProxyFetchMonitor(proxyFetchConfig({ timeoutMs: 2_000 }), target(ip, server.ports.http!), rec.deps(clock));
    monitor.start();
    await waitFor(() => server.stats().httpRequests > 0, 'the request');
    // Real bytes keep arriving; only the deadline ends the check.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(rec.reports).toEqual([]);
    await clock.advanceAsync(2_000);
    await waitFor(() => rec.reports.length > 0, 'a report');
    expect(rec.reports[0]).toMatchObject({ up: false, reason: expect.stringContaining('timed out after 2 s') });
    await monitor.stop();
    await server.setBehaviour({ mode: 'ok' });
  });

  it('does not follow redirects: a 302 is down normally and up when http_status asks for it; a 200 is then down', async () => {
    await server.setBehaviour({ mode: 'status', status: 302, location: 'http://elsewhere.example.org/' });
    await withMonitor({}, async ({ rec }) => {
      expect(rec.states()).toEqual(['down']);
      expect(rec.reports[0]?.reason).toContain('HTTP status 302');
    });
    await server.setBehaviour({ mode: 'status', status: 302, location: 'http://elsewhere.example.org/' });
    await withMonitor({ httpStatus: 302 }, async ({ rec, next }) => {
      expect(rec.states()).toEqual(['up']);
      await server.setBehaviour({ mode: 'ok' });
      await next();
      expect(rec.states()).toEqual(['up', 'down']);
    });
  });

  it('checks the body: substring and regular expression', async () => {
    await server.setBehaviour({ mode: 'body', body: "I'm alive!\nversion 42\n" });
    await withMonitor({ expectBody: "I'm alive!", expectBodyRegex: '^version \\d+$' }, async ({ rec, next }) => {
      expect(rec.states()).toEqual(['up']);
      await server.setBehaviour({ mode: 'body', body: "I'm alive!\nversion unknown\n" });
      await next();
      expect(rec.states()).toEqual(['up', 'down']);
      expect(rec.reports[1]?.reason).toContain('body does not match');
    });
    await withMonitor({ expectBodyRegex: '^version \\d+$' }, async ({ rec }) => {
      // The default body is "served-by rs1\n": no version line.
      expect(rec.states()).toEqual(['down']);
    });
    await server.setBehaviour({ mode: 'body', body: 'maintenance' });
    await withMonitor({ expectBody: "I'm alive!" }, async ({ rec }) => {
      expect(rec.reports[0]?.reason).toContain('body does not contain "I\'m alive!"');
    });
  });

  it('one URL: its result in urls, the round timed; with check_all and max_failures 1 its failure is tolerated, with 0 it is not', async () => {
    await server.setBehaviour({ mode: 'status', status: 503 });
    await withMonitor({ urls: ['http://a.example/'], checkAll: true, maxFailures: 1 }, async ({ rec }) => {
      expect(rec.results[0]).toMatchObject({ ok: true, reason: expect.stringMatching(/^Fetch successful \(http:\/\/a\.example\/\), \d+(\.\d+)? s$/) });
      expect(rec.results[0]?.urls).toEqual([{ url: 'http://a.example/', ok: false, reason: 'HTTP status 503 Service Unavailable, expected a 2xx status', durationMs: rec.results[0]?.durationMs }]);
      expect(rec.results[0]?.durationMs).toBeGreaterThanOrEqual(0);
      expect(rec.states()).toEqual(['up']);
    });
    await server.setBehaviour({ mode: 'status', status: 503 });
    await withMonitor({ urls: ['http://a.example/'], checkAll: true, maxFailures: 0 }, async ({ rec }) => {
      expect(rec.results[0]).toMatchObject({ ok: false, reason: 'Fetch failed (http://a.example/): HTTP status 503 Service Unavailable, expected a 2xx status' });
      expect(rec.states()).toEqual(['down']);
    });
  });

  it('check_all fetches every URL; max_failures tolerates that many', async () => {
    await withMonitor({ urls: ['http://a.example/', 'http://b.example/'], checkAll: true }, async ({ rec }) => {
      expect(rec.results[0]?.urls?.map((u) => u.url)).toEqual(['http://a.example/', 'http://b.example/']);
      expect(rec.states()).toEqual(['up']);
    });
  });

  it('HTTPS: sends SNI and Host from the URL; no certificate check by default', async () => {
    await withMonitor({ urls: ['https://en.wikipedia.org/'] }, async ({ rec }) => {
      expect(rec.states()).toEqual(['up']);
      expect(server.stats().lastHttpRequest).toMatchObject({ host: 'en.wikipedia.org', sni: 'en.wikipedia.org' });
    }, server.ports.https!);
  });
});

describe('ProxyFetch over IPv6', () => {
  it('fetches from a server on ::1 with the URL host as Host and SNI', async () => {
    const server = await startRealServer({ name: 'rs6', host: '::1', http: 0, https: 0, tlsNames: ['en.wikipedia.org'] });
    try {
      for (const [url, port] of [
        ['http://en.wikipedia.org/wiki/', server.ports.http!],
        ['https://en.wikipedia.org/wiki/', server.ports.https!],
      ] as const) {
        const rec = recorder();
        const monitor = createProxyFetchMonitor(proxyFetchConfig({ urls: [url] }), target('::1', port), rec.deps(createSystemClock()));
        monitor.start();
        await waitFor(() => rec.reports.length > 0, 'a report');
        await monitor.stop();
        expect(rec.reports[0]).toMatchObject({ up: true });
        expect(server.stats().lastHttpRequest).toMatchObject({ host: 'en.wikipedia.org', path: '/wiki/' });
      }
      expect(server.stats().lastHttpRequest?.sni).toBe('en.wikipedia.org');
    } finally {
      await server.stop();
    }
  });
});

describe('ProxyFetch verify-tls against a real HTTPS server', () => {
  let dir: string;
  let caFile: string;
  let httpsServer: https.Server;
  let port: number;
  const ip = loopbackAddress(12);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pybal-tls-'));
    const { key, cert } = await createSelfSignedCertificate(['en.wikipedia.org']);
    caFile = path.join(dir, 'ca.pem');
    await writeFile(caFile, cert);
    httpsServer = https.createServer({ key, cert }, (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => httpsServer.listen(0, ip, resolve));
    port = (httpsServer.address() as { port: number }).port;
  });
  afterAll(async () => {
    httpsServer.closeAllConnections();
    await new Promise((resolve) => httpsServer.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  async function firstReport(config: Parameters<typeof proxyFetchConfig>[0]) {
    const rec = recorder();
    const monitor = createProxyFetchMonitor(proxyFetchConfig(config), target(ip, port), rec.deps(createSystemClock()));
    monitor.start();
    await waitFor(() => rec.reports.length > 0, 'a report');
    await monitor.stop();
    return rec.reports[0]!;
  }

  it('passes with the right CA and name', async () => {
    expect(await firstReport({ urls: ['https://en.wikipedia.org/'], verifyTls: true, caFile })).toMatchObject({ up: true });
  });
  it('fails an untrusted certificate', async () => {
    const report = await firstReport({ urls: ['https://en.wikipedia.org/'], verifyTls: true });
    expect(report.up).toBe(false);
    expect(report.reason).toMatch(/self[- ]signed/i);
  });
  it('fails a certificate for another name', async () => {
    const report = await firstReport({ urls: ['https://de.wikipedia.org/'], verifyTls: true, caFile });
    expect(report.up).toBe(false);
    expect(report.reason).toMatch(/does not match|altnames/i);
  });
});

describe('ProxyFetch against servers that answer badly', () => {
  /** A raw TCP server that answers every connection with `reply` and closes. */
  async function rawServer(ip: string, reply: string): Promise<{ port: number; close(): Promise<void> }> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end(reply));
    });
    await new Promise<void>((resolve) => server.listen(0, ip, resolve));
    return {
      port: (server.address() as net.AddressInfo).port,
      close: async () => {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  }

  async function firstReport(reply: string) {
    const ip = loopbackAddress(14);
    const server = await rawServer(ip, reply);
    const rec = recorder();
    const monitor = createProxyFetchMonitor(proxyFetchConfig(), target(ip, server.port), rec.deps(createSystemClock()));
    try {
      monitor.start();
      await waitFor(() => rec.reports.length > 0, 'a report');
    } finally {
      await monitor.stop();
      await server.close();
    }
    return rec.reports[0]!;
  }

  it('a body shorter than its Content-Length is down', async () => {
    const report = await firstReport('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort');
    expect(report).toMatchObject({ up: false });
    expect(report.reason).toBe('Fetch failed (http://www.example.com/): connection closed before the whole body arrived');
  });

  it('an answer that is not HTTP is down', async () => {
    const report = await firstReport('SSH-2.0-OpenSSH_9.2\r\n');
    expect(report).toMatchObject({ up: false });
    expect(report.reason).toBe('Fetch failed (http://www.example.com/): invalid HTTP response: expected a status line, got "SSH-2.0-OpenSSH_9.2"');
  });

  it('a close-delimited body is read to its end', async () => {
    const report = await firstReport("HTTP/1.0 200 OK\r\n\r\nI'm alive!");
    expect(report).toMatchObject({ up: true });
  });
});
