// The IPVS counters in /metrics: names, labels (service, host, direction, as
// the per-server monitor series have them), types, and series that come and
// go with the snapshot.
import { describe, expect, it } from 'vitest';
import { PybalMetrics } from '../../src/api/metrics.js';
import { TrafficRows } from '../../src/api/traffic-series.js';
import type { TrafficValue } from '../../src/ipvs/types.js';
import { daemon, server, service } from './fixtures.js';

function t(connections: number, over: Partial<TrafficValue> = {}): TrafficValue {
  return {
    connections,
    inPackets: connections * 6,
    outPackets: connections * 4,
    inBytes: connections * 400,
    outBytes: connections * 9000,
    connectionsPerSec: 1,
    inPacketsPerSec: 6,
    outPacketsPerSec: 4,
    inBytesPerSec: 400,
    outBytesPerSec: 9000,
    readAtWallMs: 1_700_000_000_000,
    ...over,
  };
}

describe('/metrics: IPVS counters', () => {
  it('exports per service and per server counters, ActiveConn/InActConn gauges and the quiet flag', async () => {
    const metrics = new PybalMetrics({ processMetrics: false });
    const quiet = { reason: 'no-replies', detail: 'x', sinceWallMs: 1 } as const;
    metrics.update(
      daemon([
        service('web', [server('rs1', { traffic: t(10, { activeConnections: 2, inactiveConnections: 5 }) }), server('rs2', { traffic: t(3, { activeConnections: 0, inactiveConnections: 3 }), quiet }), server('rs3')], {
          traffic: t(13),
        }),
        service('dns', [server('d1')]),
      ]),
    );
    const text = await metrics.render();
    const block = (name: string): string[] => text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`# TYPE ${name} `));
    expect(block('pybal_ipvs_service_connections_total')).toEqual(['# TYPE pybal_ipvs_service_connections_total counter', 'pybal_ipvs_service_connections_total{service="web"} 13']);
    expect(block('pybal_ipvs_service_packets_total')).toEqual([
      '# TYPE pybal_ipvs_service_packets_total counter',
      'pybal_ipvs_service_packets_total{service="web",direction="in"} 78',
      'pybal_ipvs_service_packets_total{service="web",direction="out"} 52',
    ]);
    expect(block('pybal_ipvs_service_bytes_total')).toContain('pybal_ipvs_service_bytes_total{service="web",direction="out"} 117000');
    expect(block('pybal_ipvs_server_connections_total')).toEqual([
      '# TYPE pybal_ipvs_server_connections_total counter',
      'pybal_ipvs_server_connections_total{service="web",host="rs1"} 10',
      'pybal_ipvs_server_connections_total{service="web",host="rs2"} 3',
    ]);
    expect(block('pybal_ipvs_server_bytes_total')).toContain('pybal_ipvs_server_bytes_total{service="web",host="rs1",direction="in"} 4000');
    expect(block('pybal_ipvs_server_packets_total')).toContain('pybal_ipvs_server_packets_total{service="web",host="rs2",direction="out"} 12');
    expect(block('pybal_ipvs_server_active_connections')).toEqual([
      '# TYPE pybal_ipvs_server_active_connections gauge',
      'pybal_ipvs_server_active_connections{service="web",host="rs1"} 2',
      'pybal_ipvs_server_active_connections{service="web",host="rs2"} 0',
    ]);
    expect(block('pybal_ipvs_server_inactive_connections')).toContain('pybal_ipvs_server_inactive_connections{service="web",host="rs2"} 3');
    expect(block('pybal_ipvs_server_quiet')).toEqual([
      '# TYPE pybal_ipvs_server_quiet gauge',
      'pybal_ipvs_server_quiet{service="web",host="rs1"} 0',
      'pybal_ipvs_server_quiet{service="web",host="rs2"} 1',
    ]);

    // The counters move with the snapshot; a server gone from it loses its series.
    metrics.update(daemon([service('web', [server('rs1', { traffic: t(12) })], { traffic: t(12) })]));
    const again = await metrics.render();
    expect(again).toContain('pybal_ipvs_server_connections_total{service="web",host="rs1"} 12');
    expect(again).not.toContain('host="rs2"');

    // Counters off (or not read yet): no such metric at all, not a misleading 0.
    metrics.update(daemon([service('web', [server('rs1')])]));
    expect(await metrics.render()).not.toContain('pybal_ipvs_server_');
  });
  it('each update\'s values, with rows kept between updates: a quiet flag that ends reads 0, a server back after it was forgotten has its series again', async () => {
    const metrics = new PybalMetrics({ processMetrics: false });
    const quiet = { reason: 'no-replies', detail: 'x', sinceWallMs: 1 } as const;
    const lines = async (): Promise<string[]> =>
      (await metrics.render()).split('\n').filter((l) => l.startsWith('pybal_ipvs_server_connections_total{') || l.startsWith('pybal_ipvs_server_quiet{'));
    metrics.update(daemon([service('web', [server('rs1', { traffic: t(1), quiet }), server('rs2', { traffic: t(2) })])]));
    expect(await lines()).toEqual([
      'pybal_ipvs_server_connections_total{service="web",host="rs1"} 1',
      'pybal_ipvs_server_connections_total{service="web",host="rs2"} 2',
      'pybal_ipvs_server_quiet{service="web",host="rs1"} 1',
      'pybal_ipvs_server_quiet{service="web",host="rs2"} 0',
    ]);
    metrics.update(daemon([service('web', [server('rs1', { traffic: t(5) })])]));
    expect(await lines()).toEqual(['pybal_ipvs_server_connections_total{service="web",host="rs1"} 5', 'pybal_ipvs_server_quiet{service="web",host="rs1"} 0']);
    metrics.update(daemon([service('web', [server('rs1', { traffic: t(6) }), server('rs2', { traffic: t(7), quiet })])]));
    expect(await lines()).toEqual([
      'pybal_ipvs_server_connections_total{service="web",host="rs1"} 6',
      'pybal_ipvs_server_connections_total{service="web",host="rs2"} 7',
      'pybal_ipvs_server_quiet{service="web",host="rs1"} 0',
      'pybal_ipvs_server_quiet{service="web",host="rs2"} 1',
    ]);
  });

  it('TrafficRows gives the same row for a key from update to update (its labels made once) until an update does not ask for it', () => {
    const rows = new TrafficRows();
    let made = 0;
    const labels = (): Record<string, string> => {
      made++;
      return { service: 'web', host: 'rs1' };
    };
    const first = rows.row('k', labels, t(1));
    rows.settle();
    const second = rows.row('k', labels, t(2));
    expect(second).toBe(first);
    expect(made).toBe(1);
    expect(second.traffic.connections).toBe(2);
    expect(second.outLabels).toEqual({ service: 'web', host: 'rs1', direction: 'out' });
    rows.settle();
    // An update that does not ask for it forgets it: the next one makes it again.
    rows.settle();
    const third = rows.row('k', labels, t(3));
    expect(third).not.toBe(first);
    expect(made).toBe(2);
    expect(third.traffic.connections).toBe(3);
  });
});
