/**
 * The IPVS counters' series of /metrics (`pybal_ipvs_service_*` and
 * `pybal_ipvs_server_*`), made into samples only when a scrape asks, from
 * the rows the last update job collected from the snapshot. Label objects
 * are made once per service or server and direction, and reused from scrape
 * to scrape (10,000 servers are 70,000 samples).
 *
 * Naming (Prometheus' guidelines): counters end in `_total` and carry their
 * unit (`_bytes_total`); in and out are a `direction` label of one metric,
 * not two metrics, because summing them is meaningful (all the packets or
 * bytes that went through the director for that service or server), which
 * is the guidelines' test for a label. The kernel's rate estimates are not
 * exported: rate() over the counters gives any window, where the kernel's
 * estimate is a fixed 2-second-tick average.
 */
import type { MetricData } from './exposition.js';
import { eachPicked, samplesOf, type Picker } from './server-series.js';
import type { QuietServerValue, TrafficValue } from '../ipvs/types.js';

type Labels = Readonly<Record<string, string>>;


/** One service's or server's counters, with its label sets. */
export interface TrafficRow {
  /** service (and host, for a server). */
  readonly labels: Labels;
  readonly inLabels: Labels;
  readonly outLabels: Labels;
  readonly traffic: TrafficValue;
  readonly quiet?: QuietServerValue | undefined;
}

/** A metric whose samples are picked from rows at scrape time (it stands where a prom-client metric would). */
export class RowsMetric {
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
    private readonly rows: () => readonly TrafficRow[],
    private readonly pick: Picker<TrafficRow>,
  ) {}

  get(): Promise<MetricData & { aggregator: string }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values: samplesOf(eachPicked(this.rows, this.pick)), aggregator: this.aggregator });
  }

  /** get() with the samples put straight into the exposition as they are picked (see MetricData.each). */
  stream(): MetricData {
    return { name: this.name, help: this.help, type: this.type, each: eachPicked(this.rows, this.pick) };
  }

  /** The rows belong to the update job; nothing to reset. */
  reset(): void {}
}

/** A row as TrafficRows keeps it: its label sets made once, its values set by each update. */
interface KeptRow {
  readonly labels: Labels;
  readonly inLabels: Labels;
  readonly outLabels: Labels;
  traffic: TrafficValue;
  quiet: QuietServerValue | undefined;
  /** The last update that asked for it. */
  seen: number;
}

/**
 * The row of each service or server, kept between updates: an update sets
 * the values of the row it had, rather than making a row, its key and a map
 * of them all afresh. Made anew at every scrape, those of 10,000 servers
 * lived until the next one and reached the old generation (some 2 MB a
 * scrape, host), which only a full collection empties.
 */
export class TrafficRows {
  private readonly kept = new Map<string, KeptRow>();
  private update = 0;

  /** This update's row of `key` (its labels from `labels`, the first time), with these values. */
  row(key: string, labels: () => Labels, traffic: TrafficValue, quiet?: QuietServerValue): TrafficRow {
    let row = this.kept.get(key);
    if (row === undefined) {
      const base = labels();
      // Object.assign, not `{ ...base, direction }`: V8 (Node 20) gives each
      // copy spread and then extended a map (hidden class) of its own, and
      // at 10,000 servers those 20,000 maps held 6 MB.
      row = {
        labels: base,
        inLabels: Object.assign({}, base, { direction: 'in' }),
        outLabels: Object.assign({}, base, { direction: 'out' }),
        traffic,
        quiet,
        seen: this.update,
      };
      this.kept.set(key, row);
    } else {
      row.traffic = traffic;
      row.quiet = quiet;
      row.seen = this.update;
    }
    return row;
  }

  /** An update is over: the rows it did not ask for are forgotten. */
  settle(): void {
    for (const [key, row] of this.kept) if (row.seen !== this.update) this.kept.delete(key);
    this.update++;
  }
}

type Pick2 = Picker<TrafficRow>;

export const pickConnections: Pick2 = (row, emit) => emit(row.labels, row.traffic.connections);
export const pickPackets: Pick2 = (row, emit) => {
  emit(row.inLabels, row.traffic.inPackets);
  emit(row.outLabels, row.traffic.outPackets);
};
export const pickBytes: Pick2 = (row, emit) => {
  emit(row.inLabels, row.traffic.inBytes);
  emit(row.outLabels, row.traffic.outBytes);
};
export const pickActive: Pick2 = (row, emit) => {
  if (row.traffic.activeConnections !== undefined) emit(row.labels, row.traffic.activeConnections);
};
export const pickInactive: Pick2 = (row, emit) => {
  if (row.traffic.inactiveConnections !== undefined) emit(row.labels, row.traffic.inactiveConnections);
};
/** 1 for a quiet server, 0 for the others (a series per server, so that an alert can say which and when it cleared). */
export const pickQuiet: Pick2 = (row, emit) => emit(row.labels, row.quiet === undefined ? 0 : 1);
