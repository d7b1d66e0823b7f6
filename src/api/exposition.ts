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
  /** Its samples: an array (prom-client), or samples made as they are formatted (see Gettable.stream). */
  readonly values?: Iterable<SampleValue>;
}

/** Lines joined into one flat string at a time, which then goes into the bytes of the text (TextBlocks). */
const CHUNK_LINES = 512;
/** Characters of text turned into one block of bytes. */
const BLOCK_CHARS = 64 * 1024;
/** Lines formatted between two chances to end a slice. */
const LINES_PER_STEP = 32;

/**
 * What needs escaping, made once: a regular expression literal makes a new
 * RegExp object each time it is evaluated, and a label value is tested for
 * every line (some 110,000 lines at 10,000 servers).
 */
const TEXT_SPECIAL = /[\\\n]/;
const LABEL_SPECIAL = /[\\\n"]/;
/** Labels of a sample that has none: one object for all. */
const NO_LABELS: Readonly<Record<string, string | number>> = Object.freeze({});

/** Escapes a HELP text or a metric name (backslash, newline), as prom-client does. */
export function escapeText(text: string): string {
  return TEXT_SPECIAL.test(text) ? text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n') : text;
}

/** Escapes a label value (backslash, newline, double quote); non-strings (a histogram's `le`) are written as they are. */
export function escapeLabelValue(value: string | number): string {
  if (typeof value !== 'string') return `${value}`;
  return LABEL_SPECIAL.test(value) ? value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"') : value;
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
 * The text as blocks of bytes, each made as soon as some 64 KB of text has
 * come: the bytes live outside the JS heap. At 10,000 servers a scrape is
 * some 11 MB of text; kept as strings until it was written, it was copied by
 * every young-generation collection of the scrape and then promoted (22 MB
 * of the old generation per scrape on the host), and in the lab guest those
 * collections held the event loop over 100 ms again and again.
 */
export class TextBlocks {
  readonly blocks: Buffer[] = [];
  private pending: string[] = [];
  private pendingChars = 0;

  push(text: string): void {
    this.pending.push(text);
    this.pendingChars += text.length;
    if (this.pendingChars >= BLOCK_CHARS) this.flush();
  }

  /** Turns what is pending into a block; call once at the end. */
  flush(): void {
    if (this.pending.length === 0) return;
    this.blocks.push(Buffer.from(this.pending.length === 1 ? (this.pending[0] as string) : this.pending.join(''), 'utf8'));
    this.pending = [];
    this.pendingChars = 0;
  }
}

/**
 * Formats one metric's block (no trailing newline) into `out`, a chunk at a
 * time; yields every few lines so that a runner can end the slice there.
 */
export function* formatMetric(
  metric: MetricData,
  out: TextBlocks,
  defaultLabels?: Readonly<Record<string, string | number>>,
): Generator<void, void, undefined> {
  const name = escapeText(metric.name);
  let lines: string[] = [`# HELP ${name} ${escapeText(metric.help)}`, `# TYPE ${name} ${metric.type}`];
  // A histogram's shared labels object is the same for all of a series' buckets: format it once.
  let sharedOf: Readonly<Record<string, string | number>> | undefined;
  let sharedText = '';
  let n = 0;
  for (const sample of metric.values ?? []) {
    let labels = sample.labels ?? NO_LABELS;
    const shared = sample.sharedLabels ?? NO_LABELS;
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
  /**
   * The data with samples made one at a time as they are formatted (pybal's
   * per-server metrics): an array of 20,000 samples, alive through a
   * metric's slices, was promoted to the old generation at every scrape.
   */
  stream?(): MetricData;
}


/**
 * registry.metrics() in slices, as blocks of bytes in order (TextBlocks):
 * each metric's data is taken on a turn of its own and formatted by a sliced
 * job before the next is taken, so that only one metric's samples are alive
 * at a time. Never joined: joining the text of 10,000 servers, then encoding
 * it for the socket, held the lab guest's event loop for about 400 ms each;
 * the blocks are written one at a time (api/server.ts).
 */
export async function renderRegistryBlocks(registry: Registry, options: SliceOptions = {}): Promise<Buffer[]> {
  if (registry.contentType !== Registry.PROMETHEUS_CONTENT_TYPE) return [Buffer.from(await registry.metrics(), 'utf8')];
  const defaultLabels = defaultLabelsOf(registry);
  const out = new TextBlocks();
  // The typings call these MetricObject; they are the metrics themselves.
  for (const [i, metric] of (registry.getMetricsAsArray() as unknown as Gettable[]).entries()) {
    await turn();
    // prom-client copies a metric's series out of its store in one go (3-10 ms for 10,000 series on a loaded host): a turn each.
    const data = typeof metric.stream === 'function' ? metric.stream() : await (metric.getForPromString?.() ?? metric.get());
    if (i > 0) out.push('\n\n');
    await sliced(formatMetric(data, out, defaultLabels), options);
  }
  out.push('\n');
  out.flush();
  return out.blocks;
}

/** renderRegistryBlocks as one text (the same text as registry.metrics()). */
export async function renderRegistry(registry: Registry, options: SliceOptions = {}): Promise<string> {
  return Buffer.concat(await renderRegistryBlocks(registry, options)).toString('utf8');
}
