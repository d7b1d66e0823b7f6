// The counters and quiet-server verdicts in the snapshot (api/traffic.ts), and
// the alerts they raise (api/alerts.ts), in PyBal's /alerts style.
import { describe, expect, it } from 'vitest';
import { computeAlerts, renderAlerts } from '../../src/api/alerts.js';
import { withTraffic, withTrafficSteps, type TrafficSource } from '../../src/api/traffic.js';
import type { QuietServerValue, TrafficValue } from '../../src/ipvs/types.js';
import { server, service } from './fixtures.js';

function traffic(connections: number): TrafficValue {
  return {
    connections,
    inPackets: connections * 5,
    outPackets: 0,
    inBytes: connections * 300,
    outBytes: 0,
    connectionsPerSec: 1,
    inPacketsPerSec: 5,
    outPacketsPerSec: 0,
    inBytesPerSec: 300,
    outBytesPerSec: 0,
    readAtWallMs: 1_700_000_000_000,
  };
}
const quiet = (reason: QuietServerValue['reason']): QuietServerValue => ({ reason, detail: 'seen', sinceWallMs: 1_700_000_000_000 });

function source(quietByAddress: Record<string, QuietServerValue> = {}): TrafficSource {
  return {
    latest: (name) =>
      name === 'web'
        ? {
            traffic: traffic(30),
            dests: new Map([
              ['2001:db8::a', { traffic: traffic(20) }],
              ['192.0.2.11', { traffic: traffic(10) }],
            ]),
          }
        : undefined,
    quiet: (name) => (name === 'web' ? new Map(Object.entries(quietByAddress)) : undefined),
  };
}

describe('withTraffic', () => {
  it("adds each service's and server's counters, matching addresses in canonical form", () => {
    const services = [
      service('web', [server('a', { address: '2001:DB8:0::A' }), server('b', { address: '192.0.2.11' }), server('c', { address: '192.0.2.12' }), server('d', { address: undefined })]),
      service('dns', [server('x')]),
    ];
    const [web, dns] = withTraffic(services, source());
    expect(web?.traffic?.connections).toBe(30);
    expect(web?.servers.map((s) => s.traffic?.connections)).toEqual([20, 10, undefined, undefined]);
    // Not read yet (or not in the kernel): no field at all.
    expect(dns).toBe(services[1]);
    expect('traffic' in (web?.servers[2] ?? {})).toBe(false);
  });

  it('as a job, gives the same services a few servers per step', () => {
    const many = Array.from({ length: 300 }, (_, i) => server(`s${i}`, { address: i % 2 === 0 ? '192.0.2.11' : `192.0.2.${20 + (i % 100)}` }));
    const services = [service('web', many), service('dns', [server('x')])];
    const job = withTrafficSteps(services, source({ '192.0.2.11': quiet('no-replies') }));
    let steps = 0;
    let next = job.next();
    for (; !next.done; next = job.next()) steps++;
    expect(steps).toBeGreaterThanOrEqual(4);
    expect(next.value).toEqual(withTraffic(services, source({ '192.0.2.11': quiet('no-replies') })));
    expect(next.value[0]?.servers.filter((s) => s.traffic?.connections === 10 && s.quiet?.reason === 'no-replies')).toHaveLength(150);
    expect(next.value[1]).toBe(services[1]);
  });

  it('as a job, gives a chance to end the slice every few servers across services, however small each is', () => {
    // 1,000 services of 10, scaled down: no service reaches a step's worth of servers on its own.
    const services = Array.from({ length: 200 }, (_, i) => service(`s${i}`, Array.from({ length: 10 }, (_, j) => server(`h${j}`, { address: `192.0.2.${j + 1}` }))));
    const everyService: TrafficSource = { latest: () => ({ traffic: traffic(1), dests: new Map([['192.0.2.1', { traffic: traffic(1) }]]) }), quiet: () => undefined };
    const job = withTrafficSteps(services, everyService);
    let steps = 0;
    let next = job.next();
    for (; !next.done; next = job.next()) steps++;
    // 2,000 servers, a step at most every 64 of them.
    expect(steps).toBeGreaterThanOrEqual(Math.floor(2000 / 64));
    expect(next.value.flatMap((s) => s.servers).filter((s) => s.traffic?.connections === 1)).toHaveLength(200);
  });

  it('reports a quiet server only while it is pooled, enabled and up (pooled-down servers have their own alert)', () => {
    const flagged = source({ '192.0.2.11': quiet('no-replies') });
    const at = (over: Parameters<typeof server>[1]) => withTraffic([service('web', [server('b', { address: '192.0.2.11', ...over })])], flagged)[0]?.servers[0]?.quiet;
    expect(at({})).toEqual(quiet('no-replies'));
    expect(at({ up: false, pooledDown: true })).toBeUndefined();
    expect(at({ pooled: false })).toBeUndefined();
    expect(at({ enabled: false })).toBeUndefined();
  });
});

describe('/alerts: quiet servers', () => {
  it.each([
    [[service('web', [server('a'), server('b', { quiet: quiet('no-replies') }), server('c', { quiet: quiet('not-established') })])], 'critical', 'web: Servers b, c are pooled but do not answer their connections'],
    [[service('web', [server('a'), server('b', { quiet: quiet('no-connections') })])], 'warning', 'Pool web has servers that get no connections while their siblings do: b. '],
    // With another service's pooled-down servers: both critical, in service order.
    [
      [service('text', [server('mw1', { up: false, pooledDown: true }), server('mw2')]), service('web', [server('a'), server('b', { quiet: quiet('no-replies') })])],
      'critical',
      'text: Servers mw1 are marked down but pooled; web: Servers b are pooled but do not answer their connections',
    ],
    [[service('web', [server('a'), server('b')])], 'ok', 'All pools are healthy'],
  ] as const)('%#: %s - %s', (services, status, msg) => {
    expect(computeAlerts(services)).toEqual({ status, msg });
    expect(renderAlerts(services, false).body).toBe(`${status.toUpperCase()} - ${msg}`);
  });
});
