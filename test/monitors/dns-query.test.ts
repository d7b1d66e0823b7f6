import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { createDnsQueryMonitor, judgeDnsError, serverAddress } from '../../src/monitors/dns-query.js';
import { startRealServer, type RealServer } from '../support/real-server.js';
import { dnsQueryConfig } from './support/configs.js';
import { loopbackAddress, recorder, target, waitFor } from './support/helpers.js';

describe('DNSQuery verdicts (pure)', () => {
  it.each([
    ['ENOTFOUND', false, true, 'DNS query answered NXDOMAIN, query: x A'],
    ['ENOTFOUND', true, false, 'DNS query NXDOMAIN, query: x A'],
    ['ESERVFAIL', false, false, 'DNS query SERVFAIL, query: x A'],
    ['EREFUSED', false, false, 'DNS query REFUSED, query: x A'],
    ['ENODATA', true, true, 'DNS query answered (no records), query: x A'],
  ])('%s with fail-on-nxdomain %s', (code, failOnNxdomain, ok, reason) => {
    expect(judgeDnsError(code, failOnNxdomain, 'x A')).toEqual({ ok, reason });
  });
  it('formats server addresses for c-ares', () => {
    expect(serverAddress('10.0.0.1', 53)).toBe('10.0.0.1:53');
    expect(serverAddress('2001:db8::1', 5353)).toBe('[2001:db8::1]:5353');
  });
});

/** A random source that plays back values (then repeats the last). */
function playback(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)] ?? 0;
}

for (const family of [4, 6] as const) {
  describe(`DNSQuery against a real DNS server over IPv${family}`, () => {
    let server: RealServer;
    const ip = family === 4 ? loopbackAddress(31) : '::1';
    beforeAll(async () => {
      server = await startRealServer({
        name: 'ns1',
        host: ip,
        dns: 0,
        dnsRecords: { 'www.example.com': { a: ['192.0.2.1'], aaaa: ['2001:db8::1'] }, 'v4only.example.com': { a: ['192.0.2.2'] } },
      });
    });
    afterAll(async () => {
      await server.stop();
    });

    async function run(
      config: Parameters<typeof dnsQueryConfig>[0],
      random: () => number,
      drive?: (ctx: { clock: ManualClock; rec: ReturnType<typeof recorder> }) => Promise<void>,
    ) {
      const clock = new ManualClock();
      const rec = recorder();
      const monitor = createDnsQueryMonitor(dnsQueryConfig(config), target(ip, server.ports.dns!), rec.deps(clock, { random }));
      try {
        monitor.start();
        if (drive) await drive({ clock, rec });
        else await waitFor(() => rec.reports.length > 0, 'a report');
      } finally {
        await monitor.stop();
        await server.setBehaviour({ mode: 'ok' });
      }
      return rec;
    }

    it('an answer is up (A and AAAA), queried only at the server', async () => {
      const before = server.stats().dnsQueries;
      const a = await run({}, playback(0, 0.1)); // hostname 0, type A
      expect(a.reports[0]).toMatchObject({ up: true, reason: 'DNS query answered (192.0.2.1), query: www.example.com A' });
      const aaaa = await run({}, playback(0, 0.9));
      expect(aaaa.reports[0]).toMatchObject({ up: true, reason: 'DNS query answered (2001:db8::1), query: www.example.com AAAA' });
      expect(server.stats().dnsQueries).toBe(before + 2);
    });

    it('a name without that record type is still an answer', async () => {
      const rec = await run({ hostnames: ['v4only.example.com'] }, playback(0, 0.9));
      expect(rec.reports[0]).toMatchObject({ up: true, reason: 'DNS query answered (no records), query: v4only.example.com AAAA' });
    });

    it('NXDOMAIN is up unless fail-on-nxdomain', async () => {
      await server.setBehaviour({ mode: 'dns-rcode', rcode: 'NXDOMAIN' });
      expect((await run({}, playback(0, 0.1))).reports[0]).toMatchObject({ up: true });
      await server.setBehaviour({ mode: 'dns-rcode', rcode: 'NXDOMAIN' });
      expect((await run({ failOnNxdomain: true }, playback(0, 0.1))).reports[0]).toMatchObject({
        up: false,
        reason: 'DNS query NXDOMAIN, query: www.example.com A',
      });
    });

    it('SERVFAIL and REFUSED are down', async () => {
      await server.setBehaviour({ mode: 'dns-rcode', rcode: 'SERVFAIL' });
      expect((await run({}, playback(0, 0.1))).reports[0]).toMatchObject({ up: false, reason: 'DNS query SERVFAIL, query: www.example.com A' });
      await server.setBehaviour({ mode: 'dns-rcode', rcode: 'REFUSED' });
      expect((await run({}, playback(0, 0.1))).reports[0]).toMatchObject({ up: false, reason: 'DNS query REFUSED, query: www.example.com A' });
    });

    it('silence is down at the deadline, even for a name in /etc/hosts (no fallback to hosts or the system resolver)', async () => {
      await server.setBehaviour({ mode: 'hang' });
      const before = server.stats().dnsQueries;
      const rec = await run({ hostnames: ['localhost'], timeoutMs: 2_000 }, playback(0, 0.1), async ({ clock, rec }) => {
        await waitFor(() => server.stats().dnsQueries > before, 'the query to reach the server');
        await clock.advanceAsync(1_999);
        expect(rec.reports).toEqual([]);
        await clock.advanceAsync(1);
        await waitFor(() => rec.reports.length > 0, 'a report');
      });
      expect(rec.reports[0]).toMatchObject({ up: false, reason: 'DNS query timed out after 2 s, query: localhost A' });
    });

    it('down, then recovery', async () => {
      await server.setBehaviour({ mode: 'dns-rcode', rcode: 'SERVFAIL' });
      const rec = await run({}, playback(0, 0.1, 0.5, 0, 0.1), async ({ clock, rec }) => {
        await waitFor(() => rec.reports.length === 1, 'the first report');
        await server.setBehaviour({ mode: 'ok' });
        await clock.advanceAsync(10_000);
        await waitFor(() => rec.reports.length === 2, 'the recovery');
      });
      expect(rec.states()).toEqual(['down', 'up']);
    });
  });
}
