// The per-server series' samples, put into the exposition as they are picked (api/server-series.ts).
import { describe, expect, it } from 'vitest';
import { MonitorSeries, MonitorSeriesMetric, counterOf, eachPicked, samplesOf, type Emit } from '../../src/api/server-series.js';

describe('eachPicked', () => {
  const pick = (n: number, emit: Emit): void => {
    for (let i = 0; i < n; i++) emit({ item: String(n), i: String(i) }, n * 10 + i);
  };

  it("puts each item's samples in order, items with none, one or several", () => {
    expect(samplesOf(eachPicked(() => [0, 2, 1, 0, 3], pick)).map((s) => s.value)).toEqual([20, 21, 10, 30, 31, 32]);
    expect(samplesOf(eachPicked(() => [], pick))).toEqual([]);
  });

  it('yields between items, never in the middle of one, and reads the items when it starts', () => {
    let items = [1, 2, 3];
    const each = eachPicked(() => items, pick);
    items = Array.from({ length: 40 }, () => 2);
    const seen: number[] = [];
    const job = each((_labels, value) => void seen.push(value));
    const atYields: number[] = [];
    while (!job.next().done) atYields.push(seen.length);
    expect(seen).toHaveLength(80);
    // Every 16 items (32 samples here): a runner can end its slice there.
    expect(atYields).toEqual([32, 64]);
  });
});

describe('MonitorSeriesMetric.stream', () => {
  it('puts the samples get() gives, for the monitors there are when read, server after server', async () => {
    const web = new Map(['a', 'b', 'c'].map((host) => [host, { monitors: [new MonitorSeries('web', host, 'ProxyFetch')] }]));
    const mail = new Map([['m', { monitors: [new MonitorSeries('mail', 'm', 'IdleConnection'), new MonitorSeries('mail', 'm', 'RunCommand')] }]]);
    const services = [web, mail, new Map([['idle', { monitors: undefined }]])];
    web.get('a')!.monitors[0]!.upResults = 3;
    web.get('c')!.monitors[0]!.upResults = 1;
    mail.get('m')!.monitors[1]!.upResults = 2;
    const metric = new MonitorSeriesMetric('pybal_monitor_up_results_total', 'help', 'counter', () => services, counterOf((m) => m.upResults));
    const streamed = metric.stream();
    expect(streamed.values).toBeUndefined();
    const samples = samplesOf(streamed.each!);
    expect(samples).toEqual((await metric.get()).values);
    expect(samples.map((s) => [s.labels.service, s.labels.host, s.labels.monitor, s.value])).toEqual([
      ['web', 'a', 'ProxyFetch', 3],
      ['web', 'c', 'ProxyFetch', 1],
      ['mail', 'm', 'RunCommand', 2],
    ]);
    // A server that appears before a scrape is in it.
    web.set('d', { monitors: [Object.assign(new MonitorSeries('web', 'd', 'ProxyFetch'), { upResults: 7 })] });
    expect(samplesOf(metric.stream().each!).map((s) => s.labels.host)).toEqual(['a', 'c', 'd', 'm']);
  });
});
