/**
 * The Prometheus text exposition (version 0.0.4) of a prom-client registry,
 * formatted in slices so that a large registry (10,000 servers are some
 * 60,000 series and 4 MB of text) never holds the event loop for long.
 *
 * The text is byte for byte what prom-client 15's `registry.metrics()` writes
 * for the same data (test/api/exposition.test.ts compares them): the same
 * escaping, the same label order, the same number formatting (`+Inf`, `-Inf`
 * and prom-client's `Nan`), one blank line between metrics, a final newline.
 * Only the Prometheus format is written; an OpenMetrics registry is left to
 * prom-client.
 */
import { Registry } from 'prom-client';
import { sliced, turn, type SliceOptions } from '../runtime/sliced.js';

/** One sample as prom-client's `get()` / `getForPromString()` hand it out. */
interface SampleValue {
  readonly value: number;
  readonly labels?: Readonly<Record<string, string | number>>;
  readonly metricName?: string;
  /** Histograms' per-series labels, kept apart from `le` by getForPromString. */
  readonly sharedLabels?: Readonly<Record<string, string | number>>;
}

/** One metric's data. */
export interface MetricData {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly values?: readonly SampleValue[];
}

/** Lines joined into one flat string at a time: the final join then only copies a few hundred strings. */
const CHUNK_LINES = 512;
/** Lines formatted between two chances to end a slice. */
const LINES_PER_STEP = 32;

/** Escapes a HELP text or a metric name (backslash, newline), as prom-client does. */
export function escapeText(text: string): string {
  return /[\\\n]/.test(text) ? text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n') : text;
}

/** Escapes a label value (backslash, newline, double quote); non-strings (a histogram's `le`) are written as they are. */
export function escapeLabelValue(value: string | number): string {
  if (typeof value !== 'string') return `${value}`;
  return /[\\\n"]/.test(value) ? value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"') : value;
}

/** A sample value as prom-client writes it: `Nan`, `+Inf`, `-Inf`, otherwise JavaScript's shortest form (`1`, `0.25`, `1e-7`). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'Nan';
  if (!Number.isFinite(value)) return value < 0 ? '-Inf' : '+Inf';
  return `${value}`;
}

function formatLabels(labels: Readonly<Record<string, string | number>>, exclude?: Readonly<Record<string, unknown>>): string {
  let text = '';
  for (const name in labels) {
    if (!Object.prototype.hasOwnProperty.call(labels, name)) continue;
    if (exclude !== undefined && Object.prototype.hasOwnProperty.call(exclude, name)) continue;
    const pair = `${name}="${escapeLabelValue(labels[name] as string | number)}"`;
    text = text === '' ? pair : `${text},${pair}`;
  }
  return text;
}

/**
 * Formats one metric's block (no trailing newline) into `out`, a chunk at a
 * time; yields every few lines so that a runner can end the slice there.
 */
export function* formatMetric(
  metric: MetricData,
  out: string[],
  defaultLabels?: Readonly<Record<string, string | number>>,
): Generator<void, void, undefined> {
  const name = escapeText(metric.name);
  let lines: string[] = [`# HELP ${name} ${escapeText(metric.help)}`, `# TYPE ${name} ${metric.type}`];
  // A histogram's shared labels object is the same for all of a series' buckets: format it once.
  let sharedOf: Readonly<Record<string, string | number>> | undefined;
  let sharedText = '';
  let n = 0;
  for (const sample of metric.values ?? []) {
    let labels = sample.labels ?? {};
    const shared = sample.sharedLabels ?? {};
    if (defaultLabels !== undefined) labels = { ...labels, ...defaultLabels, ...labels };
    if (shared !== sharedOf) {
      sharedOf = shared;
      sharedText = formatLabels(shared);
    }
    const own = formatLabels(labels, shared);
    const all = own === '' ? sharedText : sharedText === '' ? own : `${own},${sharedText}`;
    lines.push(`${sample.metricName ?? name}${all === '' ? '' : `{${all}}`} ${formatValue(sample.value)}`);
    if (lines.length >= CHUNK_LINES) {
      out.push(lines.join('\n'));
      lines = [''];
    }
    if (++n % LINES_PER_STEP === 0) yield;
  }
  out.push(lines.join('\n'));
}

/** What prom-client's registry keeps of its default labels (`setDefaultLabels`); no public getter exists. */
function defaultLabelsOf(registry: Registry): Readonly<Record<string, string | number>> | undefined {
  const labels = (registry as unknown as { _defaultLabels?: Record<string, string | number> })._defaultLabels;
  return labels !== undefined && Object.keys(labels).length > 0 ? labels : undefined;
}

interface Gettable {
  get(): Promise<MetricData>;
  getForPromString?(): Promise<MetricData>;
}


/**
 * Each metric's data, one metric per turn of the event loop: prom-client
 * copies a metric's series out of its store in one go (some 3-10 ms for
 * 10,000 series on a loaded host), so gathering them all at once, as
 * registry.metrics() does, would hold the loop for the sum.
 */
export async function collectMetrics(registry: Registry): Promise<MetricData[]> {
  // The typings call these MetricObject; they are the metrics themselves.
  const metrics = registry.getMetricsAsArray() as unknown as Gettable[];
  const data: MetricData[] = [];
  for (const metric of metrics) {
    await turn();
    data.push(await (typeof metric.getForPromString === 'function' ? metric.getForPromString() : metric.get()));
  }
  return data;
}

/**
 * Formats gathered metric data into the exposition text as chunks of a few
 * hundred lines each, in order, as one job (run it with runSliced or finish).
 * Never joined: at 10,000 servers the text is some 4 MB, and joining it, then
 * encoding it for the socket, held the lab guest's event loop for about
 * 400 ms each; the chunks are written one at a time (api/server.ts).
 */
export function* formatExpositionChunks(
  metrics: readonly MetricData[],
  defaultLabels?: Readonly<Record<string, string | number>>,
): Generator<unknown, string[], undefined> {
  const out: string[] = [];
  for (const [i, metric] of metrics.entries()) {
    if (i > 0) out.push('\n\n');
    yield* formatMetric(metric, out, defaultLabels);
  }
  out.push('\n');
  return out;
}

/**
 * registry.metrics() in slices, as chunks of text in order: the metrics'
 * data is gathered first, a metric per turn, then formatted by a sliced job.
 */
export async function renderRegistryChunks(registry: Registry, options: SliceOptions = {}): Promise<string[]> {
  if (registry.contentType !== Registry.PROMETHEUS_CONTENT_TYPE) return [await registry.metrics()];
  const metrics = await collectMetrics(registry);
  await turn();
  return sliced(formatExpositionChunks(metrics, defaultLabelsOf(registry)), options);
}

/** renderRegistryChunks as one text (the same text as registry.metrics()). */
export async function renderRegistry(registry: Registry, options: SliceOptions = {}): Promise<string> {
  return (await renderRegistryChunks(registry, options)).join('');
}
