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
  /** Its samples (prom-client's metrics). */
  readonly values?: Iterable<SampleValue>;
  /**
   * Instead of `values` (pybal's per-server metrics, see Gettable.stream):
   * puts each sample into `sample` in order, yielding every few so that a
   * runner can end the slice there. No sample object, array or iterator
   * result is made per sample (at 10,000 servers, 110,000 of each a scrape).
   */
  readonly each?: (sample: (labels: Readonly<Record<string, string>>, value: number) => void) => Generator<void, void, undefined>;
}

/** Characters of text turned into one block of bytes. */
const BLOCK_CHARS = 64 * 1024;
/**
 * A reusable block's size: a block's text is BLOCK_CHARS characters and
 * the last piece (a label value, a number, rarely over 100), which fits here
 * unless that piece is long or the text is far from ASCII (then the block is
 * made to measure and not reused). The pool holds a scrape's blocks all the
 * time: what is left over in each is memory for nothing.
 */
export const BLOCK_BYTES = BLOCK_CHARS + 2 * 1024;
/** How long blocks are kept for the next scrape: longer than any usual scrape interval (Prometheus' default is 1 min). */
const KEEP_BLOCKS_MS = 5 * 60_000;
/** Pieces of text (a line is a dozen) kept before they are joined into a block, whatever their length. */
const BLOCK_PIECES = 8192;
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
const hasOwn = (o: object, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key);

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

function formatLabels(labels: Readonly<Record<string, string | number>>): string {
  let text = '';
  for (const name in labels) {
    if (!hasOwn(labels, name)) continue;
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
 *
 * The text comes in pieces (a metric name, a label's name, its value, a
 * comma), most of them strings that exist anyway, held by reference in one
 * array that every block reuses and joined once per block: a line made
 * whole first (a string per label pair, per label set, per line, then lines
 * joined, then chunks joined) allocated some 1.3 KB per line, 145 MB a
 * scrape at 10,000 servers on the host.
 */
export class TextBlocks {
  readonly blocks: Buffer[] = [];
  private readonly pieces: string[] = Array.from({ length: BLOCK_PIECES }, () => '');
  private count = 0;
  private chars = 0;

  /** `pool`: where blocks of BLOCK_BYTES come from (see BlockPool); without it each block is made for its text. */
  constructor(private readonly pool?: BlockPool) {}

  push(text: string): void {
    this.pieces[this.count++] = text;
    this.chars += text.length;
    if (this.count === BLOCK_PIECES || this.chars >= BLOCK_CHARS) this.flush();
  }

  /** Turns what is pending into a block; call once at the end. */
  flush(): void {
    if (this.count === 0) return;
    const text = this.count === BLOCK_PIECES ? this.pieces.join('') : this.pieces.slice(0, this.count).join('');
    if (this.pool === undefined) this.blocks.push(Buffer.from(text, 'utf8'));
    else {
      const bytes = Buffer.byteLength(text, 'utf8');
      const block = bytes <= BLOCK_BYTES ? this.pool.take() : Buffer.allocUnsafeSlow(bytes);
      block.write(text, 0, 'utf8');
      this.blocks.push(bytes === block.length ? block : block.subarray(0, bytes));
    }
    this.count = 0;
    this.chars = 0;
  }
}

/**
 * Blocks of bytes kept from one scrape for the next. A scrape of 10,000
 * servers with their IPVS counters is some 11 MB of blocks; made anew each
 * time, they lived outside the JS heap until a full collection found their
 * (by then promoted) Buffer objects, which V8 starts for memory outside its
 * heap only after 64 MB more: scraped every 15 s, the RSS of 25,000 servers
 * on the host peaked 50 to 75 MB higher than with the blocks kept. Given
 * back once no response that carries them can still be writing them
 * (`give`), they are written over by the next scrape; they cost their size
 * all the time (docs/benchmarks.md: some 3 MB of the median RSS at 10,000
 * servers in the lab guest, where collections came often anyway).
 */
export class BlockPool {
  private free: Buffer[] = [];
  private dropTimer: ReturnType<typeof setTimeout> | undefined;

  /** `keepMs`: blocks not taken again within it are let go (a one-off scrape keeps nothing for long). */
  constructor(private readonly keepMs = KEEP_BLOCKS_MS) {}

  /** A block of BLOCK_BYTES, a kept one if there is one. */
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(BLOCK_BYTES);
  }

  /**
   * Keeps the blocks of `blocks` that came from take() (those made to
   * measure are left to the collector), in place of what was kept: the
   * pool holds at most one scrape's worth. Nothing may read or write
   * `blocks` after this.
   */
  give(blocks: readonly Buffer[]): void {
    const kept: Buffer[] = [];
    for (const block of blocks) {
      if (block.byteOffset === 0 && block.buffer.byteLength === BLOCK_BYTES) kept.push(block.length === BLOCK_BYTES ? block : Buffer.from(block.buffer, 0, BLOCK_BYTES));
    }
    this.free = kept;
    clearTimeout(this.dropTimer);
    this.dropTimer = kept.length === 0 ? undefined : setTimeout(() => this.drop(), this.keepMs).unref();
  }

  /** Lets every kept block go. */
  drop(): void {
    clearTimeout(this.dropTimer);
    this.dropTimer = undefined;
    this.free = [];
  }

  /** Blocks kept now. */
  get size(): number {
    return this.free.length;
  }
}

/**
 * Formats one metric's block (no trailing newline) into `out`, a piece at a
 * time; yields every few lines so that a runner can end the slice there.
 */
export function* formatMetric(
  metric: MetricData,
  out: TextBlocks,
  defaultLabels?: Readonly<Record<string, string | number>>,
): Generator<void, void, undefined> {
  const name = escapeText(metric.name);
  out.push(`# HELP ${name} ${escapeText(metric.help)}\n# TYPE ${name} ${metric.type}`);
  // A histogram's shared labels object is the same for all of a series' buckets: format it once.
  let sharedOf: Readonly<Record<string, string | number>> | undefined;
  let sharedText = '';
  const line = (
    ownLabels: Readonly<Record<string, string | number>>,
    shared: Readonly<Record<string, string | number>>,
    metricName: string,
    value: number,
  ): void => {
    const labels = defaultLabels === undefined ? ownLabels : { ...ownLabels, ...defaultLabels, ...ownLabels };
    if (shared !== sharedOf) {
      sharedOf = shared;
      sharedText = formatLabels(shared);
    }
    out.push('\n');
    out.push(metricName);
    // The sample's own labels (those not shared), then the shared ones.
    let open = false;
    for (const label in labels) {
      if (!hasOwn(labels, label) || hasOwn(shared, label)) continue;
      out.push(open ? ',' : '{');
      open = true;
      out.push(label);
      out.push('="');
      out.push(escapeLabelValue(labels[label] as string | number));
      out.push('"');
    }
    if (sharedText !== '') {
      out.push(open ? ',' : '{');
      open = true;
      out.push(sharedText);
    }
    out.push(open ? '} ' : ' ');
    out.push(formatValue(value));
  };
  if (metric.each !== undefined) {
    yield* metric.each((labels, value) => line(labels, NO_LABELS, name, value));
    return;
  }
  let n = 0;
  for (const sample of metric.values ?? []) {
    line(sample.labels ?? NO_LABELS, sample.sharedLabels ?? NO_LABELS, sample.metricName ?? name, sample.value);
    if (++n % LINES_PER_STEP === 0) yield;
  }
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
 * the blocks are written one at a time (api/server.ts). With `pool`, the
 * blocks come from it (see BlockPool).
 */
export async function renderRegistryBlocks(registry: Registry, options: SliceOptions = {}, pool?: BlockPool): Promise<Buffer[]> {
  if (registry.contentType !== Registry.PROMETHEUS_CONTENT_TYPE) return [Buffer.from(await registry.metrics(), 'utf8')];
  const defaultLabels = defaultLabelsOf(registry);
  const out = new TextBlocks(pool);
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
