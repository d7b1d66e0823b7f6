import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, Summary, type Metric } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { BLOCK_BYTES, BlockPool, escapeLabelValue, escapeText, formatValue, renderRegistry, renderRegistryBlocks, TextBlocks, type MetricData } from '../../src/api/exposition.js';
import { MonitorSeries, MonitorSeriesMetric, counterOf, extraOf } from '../../src/api/server-series.js';
import { pickPackets, RowsMetric, type TrafficRow } from '../../src/api/traffic-series.js';

/** A registry with every kind of metric, awkward help texts, label values and numbers. */
function richRegistry(): Registry {
  const registry = new Registry();
  const counter = new Counter({ name: 'rich_requests_total', help: 'Requests with a \\ backslash\nand a newline', labelNames: ['code', 'path'], registers: [registry] });
  counter.inc({ code: '200', path: '/a' });
  counter.inc({ code: '500', path: 'quote " back \\ newline \n end' }, 3);
  counter.inc({ path: 'only-path' }, 0.5);
  new Counter({ name: 'rich_untouched_total', help: 'A counter without labels, never increased', registers: [registry] });
  const plain = new Counter({ name: 'rich_plain_total', help: 'A counter without labels', registers: [registry] });
  plain.inc(12345678901234);
  const gauge = new Gauge({ name: 'rich_gauge', help: 'Gauge "quoted" help', labelNames: ['kind'], registers: [registry] });
  gauge.set({ kind: 'inf' }, Infinity);
  gauge.set({ kind: 'neg-inf' }, -Infinity);
  gauge.set({ kind: 'nan' }, NaN);
  gauge.set({ kind: 'tiny' }, 1e-7);
  gauge.set({ kind: 'huge' }, 1.5e300);
  gauge.set({ kind: 'negative' }, -0.25);
  gauge.set({ kind: 'integer' }, 42);
  gauge.set({ kind: 'float' }, 0.1 + 0.2);
  gauge.set({ kind: 'unicode ünïcødé ✓' }, 1);
  const bare = new Gauge({ name: 'rich_bare_gauge', help: 'A gauge without labels', registers: [registry] });
  bare.set(3.5);
  new Gauge({ name: 'rich_empty_gauge', help: 'A gauge with labels and no series', labelNames: ['x'], registers: [registry] });
  const histogram = new Histogram({
    name: 'rich_duration_seconds',
    help: 'A histogram',
    labelNames: ['service', 'note'],
    buckets: [0.005, 0.1, 1, 10],
    registers: [registry],
  });
  histogram.observe({ service: 'text', note: 'a "b" \\c\nd' }, 0.05);
  histogram.observe({ service: 'text', note: 'a "b" \\c\nd' }, 20);
  histogram.observe({ service: 'dns', note: '' }, 0.001);
  const bareHistogram = new Histogram({ name: 'rich_bare_seconds', help: 'A histogram without labels', buckets: [1, 2], registers: [registry] });
  bareHistogram.observe(1.5);
  const summary = new Summary({ name: 'rich_summary', help: 'A summary', labelNames: ['service'], percentiles: [0.5, 0.99], registers: [registry] });
  for (const v of [1, 2, 3, 4, 100]) summary.observe({ service: 'text' }, v);
  // More series than one chunk of lines holds.
  const many = new Gauge({ name: 'rich_many', help: 'Many series', labelNames: ['i'], registers: [registry] });
  for (let i = 0; i < 1300; i++) many.set({ i: String(i) }, i / 7);
  return registry;
}

/**
 * A registry whose metrics hand out data captured once, so that prom-client
 * and renderRegistry see the same values (process metrics change between reads).
 */
async function frozen(registry: Registry): Promise<Registry> {
  const copy = new Registry();
  for (const metric of registry.getMetricsAsArray() as unknown as Metric[]) {
    // What the exposition reads of it: getForPromString when it has one (a histogram), else get.
    const read = metric as unknown as { get(): Promise<MetricData>; getForPromString?(): Promise<MetricData> };
    const values = await (read.getForPromString?.() ?? read.get());
    const stand = { name: (metric as unknown as { name: string }).name, get: async () => values } as Record<string, unknown>;
    if (typeof (metric as unknown as { getForPromString?: unknown }).getForPromString === 'function') stand.getForPromString = async () => values;
    copy.registerMetric(stand as unknown as Metric);
  }
  return copy;
}

describe('renderRegistry', () => {
  it('writes what registry.metrics() writes, byte for byte', async () => {
    const registry = richRegistry();
    const expected = await registry.metrics();
    expect(await renderRegistry(registry)).toBe(expected);
    // Any slicing gives the same text: a budget of 0 ends a slice at every step.
    expect(await renderRegistry(registry, { budgetMs: 0 })).toBe(expected);
    // The awkward cases are in there, as prom-client writes them.
    expect(expected).toContain('# HELP rich_requests_total Requests with a \\\\ backslash\\nand a newline\n');
    expect(expected).toContain('rich_requests_total{code="500",path="quote \\" back \\\\ newline \\n end"} 3\n');
    expect(expected).toContain('rich_gauge{kind="nan"} Nan\n');
    expect(expected).toContain('rich_gauge{kind="neg-inf"} -Inf\n');
    expect(expected).toContain('rich_duration_seconds_bucket{le="+Inf",service="text",note="a \\"b\\" \\\\c\\nd"} 2\n');
  });

  it('writes the default process metrics and default labels as prom-client does', async () => {
    const registry = richRegistry();
    collectDefaultMetrics({ register: registry, prefix: 'pybal_' });
    registry.setDefaultLabels({ instance: 'lvs1 "east"' });
    const still = await frozen(registry);
    const expected = await still.metrics();
    expect(expected).toContain('pybal_process_cpu_user_seconds_total');
    expect(expected).toContain('pybal_nodejs_eventloop_lag_seconds');
    expect(await renderRegistry(still)).toBe(expected);
  });

  it('gives the text as blocks of bytes, in order, that together are exactly the text', async () => {
    const registry = richRegistry();
    const many = new Gauge({ name: 'rich_more', help: 'Enough series for several blocks', labelNames: ['host'], registers: [registry] });
    for (let i = 0; i < 5000; i++) many.set({ host: `ünïcødé-${i}.example.org` }, i);
    const expected = await registry.metrics();
    const blocks = await renderRegistryBlocks(registry, { budgetMs: 0 });
    expect(blocks.length).toBeGreaterThan(3);
    expect(blocks.every((b) => Buffer.isBuffer(b))).toBe(true);
    // Each block is whole characters: each decodes alone, and they join to the text.
    expect(blocks.map((b) => b.toString('utf8')).join('')).toBe(expected);
    expect(Buffer.concat(blocks).equals(Buffer.from(expected, 'utf8'))).toBe(true);
  });

  it('writes a scrape over the blocks of the one before once they are given back, each text exact', async () => {
    const registry = richRegistry();
    const many = new Gauge({ name: 'rich_more', help: 'Enough series for several blocks', labelNames: ['host'], registers: [registry] });
    for (let i = 0; i < 5000; i++) many.set({ host: `ünïcødé-${i}.example.org` }, i);
    const pool = new BlockPool();
    const first = await renderRegistryBlocks(registry, { budgetMs: 0 }, pool);
    expect(Buffer.concat(first).toString('utf8')).toBe(await registry.metrics());
    expect(first.length).toBeGreaterThan(3);
    const firstStores = new Set(first.map((b) => b.buffer));
    // Not given back: the next scrape has blocks of its own.
    const second = await renderRegistryBlocks(registry, { budgetMs: 0 }, pool);
    expect(second.some((b) => firstStores.has(b.buffer))).toBe(false);
    pool.give(first);
    expect(pool.size).toBe(first.length);
    // Values change: the third scrape writes over the first's blocks, and says the new values.
    for (let i = 0; i < 5000; i++) many.set({ host: `ünïcødé-${i}.example.org` }, i * 7 + 0.5);
    const third = await renderRegistryBlocks(registry, { budgetMs: 0 }, pool);
    expect(third.filter((b) => firstStores.has(b.buffer))).toHaveLength(first.length);
    const expected = await registry.metrics();
    expect(expected).toContain('rich_more{host="ünïcødé-4999.example.org"} 34993.5');
    expect(Buffer.concat(third).toString('utf8')).toBe(expected);
    expect(third.map((b) => b.toString('utf8')).join('')).toBe(expected);
    // The second's blocks, still held, were not touched.
    expect(Buffer.concat(second).toString('utf8')).toContain('rich_more{host="ünïcødé-4999.example.org"} 4999\n');
  });

  it('makes a block to measure for a text longer than a kept block, and never keeps it', async () => {
    const registry = new Registry();
    const long = 'x'.repeat(BLOCK_BYTES + 100);
    new Gauge({ name: 'long_label', help: 'A label value longer than a block', labelNames: ['v'], registers: [registry] }).set({ v: long }, 1);
    const pool = new BlockPool();
    const blocks = await renderRegistryBlocks(registry, {}, pool);
    expect(Buffer.concat(blocks).toString('utf8')).toBe(await registry.metrics());
    expect(blocks.some((b) => b.length > BLOCK_BYTES)).toBe(true);
    pool.give(blocks);
    expect(pool.size).toBe(blocks.filter((b) => b.length <= BLOCK_BYTES).length);
    expect(pool.size).toBeLessThan(blocks.length);
  });

  it('keeps one scrape of blocks at most', () => {
    const pool = new BlockPool();
    const a = [pool.take(), pool.take(), pool.take()];
    const b = [pool.take()];
    pool.give(a);
    expect(pool.size).toBe(3);
    pool.give(b);
    expect(pool.size).toBe(1);
    expect(pool.take().buffer).toBe(b[0]!.buffer);
  });

  it('lets kept blocks go when no scrape takes them again in time', () => {
    vi.useFakeTimers();
    try {
      const pool = new BlockPool(60_000);
      pool.give([pool.take(), pool.take()]);
      vi.advanceTimersByTime(50_000);
      // Given again: kept for another minute from now.
      pool.give([pool.take(), pool.take()]);
      vi.advanceTimersByTime(50_000);
      expect(pool.size).toBe(2);
      vi.advanceTimersByTime(10_001);
      expect(pool.size).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("writes pybal's per-server metrics, whose samples are put as they are picked, as prom-client writes their get()", async () => {
    const registry = richRegistry();
    const hosts = new Map<string, { monitors: MonitorSeries[] | undefined }>();
    for (const [i, host] of ['plain.example.org', 'quote " back \\ newline \n', 'ünïcødé ✓', 'never-checked'].entries()) {
      const monitor = new MonitorSeries('web "a"', host, 'ProxyFetch');
      monitor.upResults = i === 3 ? 0 : 1000 + i;
      monitor.setDuration('successful', 'url', `http://${host}/health`, 0.125 * (i + 1));
      hosts.set(host, { monitors: [monitor] });
    }
    for (let i = 0; i < 700; i++) hosts.set(`s${i}`, { monitors: [Object.assign(new MonitorSeries('web "a"', `s${i}`, 'ProxyFetch'), { upResults: i + 1 })] });
    const services = [hosts];
    for (const metric of [
      new MonitorSeriesMetric('pybal_monitor_up_results_total', 'Successful monitor checks', 'counter', () => services, counterOf((m) => m.upResults)),
      new MonitorSeriesMetric('pybal_monitor_proxyfetch_request_duration_seconds', 'ProxyFetch request duration', 'gauge', () => services, extraOf((m) => m.durations)),
    ])
      registry.registerMetric(metric as unknown as Metric);
    const rows: TrafficRow[] = ['a', 'b "c"'].map((host) => {
      const labels = { service: 'web', host };
      return { labels, inLabels: { ...labels, direction: 'in' }, outLabels: { ...labels, direction: 'out' }, traffic: { inPackets: 2 ** 53 + 2, outPackets: 0 } as TrafficRow['traffic'] };
    });
    registry.registerMetric(new RowsMetric('pybal_ipvs_server_packets_total', 'Packets', 'counter', () => rows, pickPackets) as unknown as Metric);
    for (const labels of [undefined, { instance: 'lvs1 "east"' }]) {
      if (labels) registry.setDefaultLabels(labels);
      const expected = await registry.metrics();
      expect(expected).toContain('pybal_monitor_up_results_total{service="web \\"a\\"",host="quote \\" back \\\\ newline \\n",monitor="ProxyFetch"');
      expect(expected).toContain(`pybal_ipvs_server_packets_total{service="web",host="b \\"c\\"",direction="in"${labels ? ',instance="lvs1 \\"east\\""' : ''}} 9007199254740994\n`);
      expect(await renderRegistry(registry)).toBe(expected);
      expect(await renderRegistry(registry, { budgetMs: 0 })).toBe(expected);
    }
  });

  it('makes a block after many short pieces too, whatever their length', () => {
    const blocks = new TextBlocks();
    for (let i = 0; i < 8191; i++) blocks.push('x');
    expect(blocks.blocks).toHaveLength(0);
    blocks.push('y');
    expect(blocks.blocks.map((b) => b.toString())).toEqual(['x'.repeat(8191) + 'y']);
    blocks.push('z');
    blocks.flush();
    expect(blocks.blocks.map((b) => b.toString()).at(-1)).toBe('z');
  });

  it('makes a block once some 64 KB of text has come, and one of what is left when flushed', () => {
    const blocks = new TextBlocks();
    blocks.push('a'.repeat(40 * 1024));
    expect(blocks.blocks).toHaveLength(0);
    blocks.push('ü'.repeat(30 * 1024));
    expect(blocks.blocks.map((b) => b.length)).toEqual([40 * 1024 + 60 * 1024]);
    blocks.push('tail\n');
    blocks.flush();
    blocks.flush();
    expect(blocks.blocks.map((b) => b.toString())).toEqual(['a'.repeat(40 * 1024) + 'ü'.repeat(30 * 1024), 'tail\n']);
  });

  it('writes an empty registry as a single newline, like prom-client', async () => {
    const registry = new Registry();
    expect(await renderRegistry(registry)).toBe(await registry.metrics());
  });

  it('escapes and formats as prom-client does', () => {
    expect(escapeText('a\\b\nc"d')).toBe('a\\\\b\\nc"d');
    expect(escapeLabelValue('a\\b\nc"d')).toBe('a\\\\b\\nc\\"d');
    expect(escapeLabelValue(0.25)).toBe('0.25');
    expect([NaN, Infinity, -Infinity, 1, 1.5, 1e21, 1e-7, -0].map(formatValue)).toEqual(['Nan', '+Inf', '-Inf', '1', '1.5', '1e+21', '1e-7', '0']);
  });
});
