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

type Labels = Readonly<Record<string, string>>;

/** One series beyond the monitor's own labels (a duration by result and URL, a failure count by reason). */
interface ExtraSeries {
  readonly labels: Labels;
  value: number;
}

/** What /metrics keeps of one monitor of one server. */
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
  /** The last duration per extra labels (result and URL, or result and exit code), in the order they appeared. */
  durations: Map<string, ExtraSeries> | undefined;
  /** IdleConnection's failed connections and lost connections, by reason. */
  idleFailed: Map<string, ExtraSeries> | undefined;
  idleLost: Map<string, ExtraSeries> | undefined;

  constructor(service: string, host: string, monitor: string) {
    this.labels = { service, host, monitor };
  }

  /** Sets the duration series named by `key`; `extra` gives its extra labels the first time. */
  setDuration(key: string, extra: () => Labels, seconds: number): void {
    this.durations ??= new Map();
    const known = this.durations.get(key);
    if (known) known.value = seconds;
    else this.durations.set(key, { labels: { ...this.labels, ...extra() }, value: seconds });
  }

  /** Counts an IdleConnection event by its reason. */
  countIdle(event: 'failed' | 'lost', reason: string): void {
    const series = event === 'failed' ? (this.idleFailed ??= new Map()) : (this.idleLost ??= new Map());
    const known = series.get(reason);
    if (known) known.value += 1;
    else series.set(reason, { labels: { ...this.labels, reason }, value: 1 });
  }
}

/** A sample as the exposition formats it. */
interface Sample {
  readonly labels: Labels;
  readonly value: number;
}

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
    private readonly monitors: () => Iterable<MonitorSeries>,
    private readonly pick: (monitor: MonitorSeries, out: Sample[]) => void,
  ) {}

  get(): Promise<MetricData & { aggregator: string }> {
    const values: Sample[] = [];
    for (const monitor of this.monitors()) this.pick(monitor, values);
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  /** The values live on the monitors' objects; they go with their server (PybalMetrics.forgetServer). */
  reset(): void {}
}

/** A picker for a plain counter of the monitor: a sample once it is above 0. */
export function counterOf(value: (monitor: MonitorSeries) => number): (monitor: MonitorSeries, out: Sample[]) => void {
  return (monitor, out) => {
    const n = value(monitor);
    if (n > 0) out.push({ labels: monitor.labels, value: n });
  };
}

/** A picker for series kept by extra labels. */
export function extraOf(
  series: (monitor: MonitorSeries) => Map<string, ExtraSeries> | undefined,
): (monitor: MonitorSeries, out: Sample[]) => void {
  return (monitor, out) => {
    const of = series(monitor);
    if (of === undefined) return;
    for (const s of of.values()) out.push({ labels: s.labels, value: s.value });
  };
}
