// The per-server series' samples, made one item at a time for the exposition (api/server-series.ts).
import { describe, expect, it } from 'vitest';
import { MonitorSeries, MonitorSeriesMetric, counterOf, picked, type Sample } from '../../src/api/server-series.js';

describe('picked', () => {
  it("gives each item's samples in order, items with none, one or several", () => {
    const items = [0, 2, 1, 0, 3];
    const pick = (n: number, out: Sample[]): void => {
      for (let i = 0; i < n; i++) out.push({ labels: { item: String(n), i: String(i) }, value: n * 10 + i });
    };
    expect([...picked(items, pick)].map((s) => s.value)).toEqual([20, 21, 10, 30, 31, 32]);
    expect([...picked([], pick)]).toEqual([]);
  });
});

describe('MonitorSeriesMetric.stream', () => {
  it('gives the samples get() gives, made as they are read, for the monitors there are when read', async () => {
    const monitors = ['a', 'b', 'c'].map((host) => new MonitorSeries('web', host, 'ProxyFetch'));
    monitors[0]!.upResults = 3;
    monitors[2]!.upResults = 1;
    const metric = new MonitorSeriesMetric('pybal_monitor_up_results_total', 'help', 'counter', () => monitors, counterOf((m) => m.upResults));
    const streamed = metric.stream().values!;
    expect(Array.isArray(streamed)).toBe(false);
    expect([...streamed]).toEqual((await metric.get()).values);
    expect([...metric.stream().values!].map((s) => [s.labels?.host, s.value])).toEqual([
      ['a', 3],
      ['c', 1],
    ]);
  });
});
