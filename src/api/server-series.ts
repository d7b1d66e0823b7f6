/**
 * The per-monitor series of /metrics (PyBal's `pybal_monitor_*`), kept as
 * plain numbers on one small object per monitor of each server and turned
 * into samples only when a scrape asks.
 *
 * prom-client's labelled metrics key every series by a string made from its
 * labels, on every update: at 1,000 checks a second that is two label hashes
 * and a few objects per check, and at 10,000 servers some 50,000 stored
 * label sets and keys. Here a check result is a counter increment on the
 * monitor's object; its labels object is made once and shared by its series.
 * The exposition is the same: the same names, HELP, TYPE, labels in the same
 * order, and a series only once it has a value (a counter after its first
 * increment).
 */
import type { MetricData } from './exposition.js';
import { Interner } from '../runtime/interner.js';
import { finish } from '../runtime/sliced.js';

type Labels = Readonly<Record<string, string>>;

/**
 * One series beyond the monitor's own labels (a duration by result and URL,
 * a failure count by reason), found by its one or two extra label values:
 * a check makes no key string to find it.
 */
interface ExtraSeries {
  readonly first: string;
  readonly second: string | undefined;
  readonly labels: Labels;
  value: number;
}

/** The monitors' kinds, one copy each for all their series (a dozen kinds; the bound is for safety). */
const KINDS = new Interner(64);
/**
 * A duration series' URL or exit code, one copy for the servers that share it
 * (every server of a service fetches the same URLs; each result brought a
 * copy of its own from the checks thread, and the first was kept per server).
 */
const SECOND_VALUES = new Interner(4096);

/**
 * What /metrics keeps of one monitor of one server.
 *
 * At 10,000 servers every byte here counts 10,000 times. The extra series
 * are short arrays searched by value (a monitor has one to a few), made one
 * element long at first, not Maps, each of which holds a hash table of its
 * own. Every labels object is written out key by key in one order, so that
 * they all share V8's hidden classes: a spread of one object into another,
 * `{ ...a, ...b }`, made a hidden class per object once its call site had
 * seen many (5 MB at 10,000 servers).
 */
export class MonitorSeries {
  /** service, host, monitor: shared by every series of this monitor. */
  readonly labels: Labels;
  upTransitions = 0;
  downTransitions = 0;
  upResults = 0;
  downResults = 0;
  /** The status gauge (1 up, 0 down), unset until known. */
  status: number | undefined;
  /** How new the status is (see PybalMetrics.setStatus). */
  statusAsOf = 0;
  /** The last duration per result and URL (or exit code), in the order they appeared. */
  durations: ExtraSeries[] | undefined;
  /** IdleConnection's failed connections and lost connections, by reason. */
  idleFailed: ExtraSeries[] | undefined;
  idleLost: ExtraSeries[] | undefined;

  /** The monitor's kind (its `monitor` label). */
  readonly kind: string;

  constructor(service: string, host: string, kind: string) {
    // The kind comes in a message from the checks thread, a copy of its own each time.
    this.kind = KINDS.intern(kind);
    this.labels = { service, host, monitor: this.kind };
  }

  /** Sets the duration series of a result, and of a URL or an exit code when `name` says which. */
  setDuration(result: string, name: 'url' | 'exitcode' | undefined, value: string | undefined, seconds: number): void {
    const known = find(this.durations, result, value);
    if (known) {
      known.value = seconds;
      return;
    }
    const second = value === undefined ? undefined : SECOND_VALUES.intern(value);
    this.durations = add(this.durations, { first: result, second, labels: this.durationLabels(result, name, second), value: seconds });
  }

  /** Counts an IdleConnection event by its reason. */
  countIdle(event: 'failed' | 'lost', reason: string): void {
    const known = find(event === 'failed' ? this.idleFailed : this.idleLost, reason, undefined);
    if (known) {
      known.value += 1;
      return;
    }
    const { service, host, monitor } = this.labels;
    const series: ExtraSeries = { first: reason, second: undefined, labels: { service: service!, host: host!, monitor: monitor!, reason }, value: 1 };
    if (event === 'failed') this.idleFailed = add(this.idleFailed, series);
    else this.idleLost = add(this.idleLost, series);
  }

  /**
   * The monitor's labels, the result's and the URL's or exit code's, in that
   * order, each shape one literal: keys added after a literal went to a
   * property array of their own (56 bytes more a series).
   */
  private durationLabels(result: string, name: 'url' | 'exitcode' | undefined, value: string | undefined): Labels {
    const { service, host, monitor } = this.labels;
    if (value === undefined || name === undefined) return { service: service!, host: host!, monitor: monitor!, result };
    if (name === 'url') return { service: service!, host: host!, monitor: monitor!, result, url: value };
    return { service: service!, host: host!, monitor: monitor!, result, exitcode: value };
  }
}

function find(series: readonly ExtraSeries[] | undefined, first: string, second: string | undefined): ExtraSeries | undefined {
  if (series === undefined) return undefined;
  for (const s of series) if (s.first === first && s.second === second) return s;
  return undefined;
}

/**
 * `list` with `item` at its end. The first item makes an array of exactly
 * one element: a push onto `[]` would reserve room for 17.
 */
export function add<T>(list: T[] | undefined, item: T): T[] {
  if (list === undefined) return [item];
  list.push(item);
  return list;
}

/** A sample as the exposition formats it. */
export interface Sample {
  readonly labels: Labels;
  readonly value: number;
}

/** Where a picker puts a sample: its labels and value, with no object made for it. */
export type Emit = (labels: Labels, value: number) => void;

/** Puts an item's samples (none, one or several), in order. */
export type Picker<T> = (item: T, emit: Emit) => void;

/** Items picked between two chances for the exposition to end a slice. */
const ITEMS_PER_STEP = 16;

/** What a monitor metric walks: per service, its servers by host, each with its monitors' series (one to a few). */
export type MonitorsByServer = () => Iterable<ReadonlyMap<string, { readonly monitors: readonly MonitorSeries[] | undefined }>>;

/**
 * One `pybal_monitor_*` metric for the registry: `get()` walks every
 * monitor's object and picks this metric's samples. It stands where a
 * prom-client Counter or Gauge would (the registry only needs name, get and
 * reset), so that the metrics keep their place in the exposition.
 */
export class MonitorSeriesMetric {
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
    private readonly servers: MonitorsByServer,
    private readonly pick: Picker<MonitorSeries>,
  ) {}

  get(): Promise<MetricData & { aggregator: string }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values: samplesOf(this.each()), aggregator: this.aggregator });
  }

  /** get() with the samples put straight into the exposition as they are picked (see MetricData.each). */
  stream(): MetricData {
    return { name: this.name, help: this.help, type: this.type, each: this.each() };
  }

  /** The values live on the monitors' objects; they go with their server (PybalMetrics.forgetServer). */
  reset(): void {}

  private each(): (emit: Emit) => Generator<void, void, undefined> {
    const { servers, pick } = this;
    return function* (emit) {
      let n = 0;
      for (const hosts of servers()) {
        for (const server of hosts.values()) {
          const monitors = server.monitors;
          if (monitors === undefined) continue;
          for (let i = 0; i < monitors.length; i++) pick(monitors[i] as MonitorSeries, emit);
          if (++n % ITEMS_PER_STEP === 0) yield;
        }
      }
    };
  }
}

/** Each item's samples, put into `emit` in order; yields every few items (see MetricData.each). */
export function eachPicked<T>(items: () => readonly T[], pick: Picker<T>): (emit: Emit) => Generator<void, void, undefined> {
  return function* (emit) {
    const list = items();
    for (let i = 0; i < list.length; i++) {
      pick(list[i] as T, emit);
      if ((i + 1) % ITEMS_PER_STEP === 0) yield;
    }
  };
}

/** The samples a MetricData.each puts, as an array (a metric's get()). */
export function samplesOf(each: (emit: Emit) => Generator<void, void, undefined>): Sample[] {
  const out: Sample[] = [];
  finish(each((labels, value) => void out.push({ labels, value })));
  return out;
}

/** A picker for a plain counter of the monitor: a sample once it is above 0. */
export function counterOf(value: (monitor: MonitorSeries) => number): Picker<MonitorSeries> {
  return (monitor, emit) => {
    const n = value(monitor);
    if (n > 0) emit(monitor.labels, n);
  };
}

/** A picker for series kept by extra labels. */
export function extraOf(series: (monitor: MonitorSeries) => readonly ExtraSeries[] | undefined): Picker<MonitorSeries> {
  return (monitor, emit) => {
    const of = series(monitor);
    if (of === undefined) return;
    for (const s of of) emit(s.labels, s.value);
  };
}
