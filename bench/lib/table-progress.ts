/**
 * How far the kernel's IPVS table is towards what the pools benchmark
 * expects, and the line format bench/lib/table-watch.ts prints it in. Pure.
 *
 * Watching costs the guest CPU the daemon also needs, so a service already
 * seen with all its destinations is not dumped again (the bench only adds);
 * only the service of a watched destination is dumped on every poll.
 */

export interface ExpectedService {
  readonly address: string;
  readonly port: number;
  /** Destinations it should end up with. */
  readonly dests: number;
}

/** A destination whose weight is followed on every poll. */
export interface WatchedDest {
  readonly address: string;
  readonly port: number;
  readonly dest: string;
}

export interface WatchSpec {
  readonly pollMs: number;
  readonly services: readonly ExpectedService[];
  readonly weightOf?: WatchedDest;
}

export interface Progress {
  /** Expected services present in the kernel. */
  readonly present: number;
  /** Expected services with at least their expected destinations. */
  readonly complete: number;
  /** Destinations counted in the expected services (as last dumped). */
  readonly dests: number;
  /** The watched destination's weight; undefined when not watched or absent. */
  readonly weight: number | undefined;
}

export function serviceId(address: string, port: number): string {
  return `${address}:${port}`;
}

export class TableProgressTracker {
  private readonly expected = new Map<string, number>();
  private readonly counts = new Map<string, number>();
  private readonly weightId: string | undefined;
  private weight: number | undefined;

  constructor(spec: Pick<WatchSpec, 'services' | 'weightOf'>) {
    for (const s of spec.services) this.expected.set(serviceId(s.address, s.port), s.dests);
    this.weightId = spec.weightOf && serviceId(spec.weightOf.address, spec.weightOf.port);
  }

  /** Of the services now in the kernel, those whose destinations must be dumped this poll. */
  toDump(presentIds: readonly string[]): string[] {
    return presentIds.filter((id) => {
      const want = this.expected.get(id);
      if (want === undefined) return false;
      return id === this.weightId || (this.counts.get(id) ?? 0) < want;
    });
  }

  /** A dump of service `id` found `count` destinations (and, for the watched service, the watched one's weight). */
  record(id: string, count: number, weight?: number): void {
    this.counts.set(id, count);
    if (id === this.weightId) this.weight = weight;
  }

  /** Progress with `presentIds` in the kernel; services gone from it count for nothing. */
  progress(presentIds: readonly string[]): Progress {
    let present = 0;
    let complete = 0;
    let dests = 0;
    for (const id of presentIds) {
      const want = this.expected.get(id);
      if (want === undefined) continue;
      present++;
      const n = this.counts.get(id) ?? 0;
      dests += n;
      if (n >= want) complete++;
    }
    const weightPresent = this.weightId !== undefined && presentIds.includes(this.weightId);
    return { present, complete, dests, weight: weightPresent ? this.weight : undefined };
  }
}

/** One line of the watcher's output: `<wall ms> <present> <complete> <dests> <weight or ->`. */
export function formatProgressLine(atMs: number, p: Progress): string {
  return `${atMs} ${p.present} ${p.complete} ${p.dests} ${p.weight ?? '-'}`;
}

export interface ProgressLine extends Progress {
  readonly atMs: number;
}

/** The inverse of formatProgressLine; undefined for any other line. */
export function parseProgressLine(line: string): ProgressLine | undefined {
  const m = /^(\d+) (\d+) (\d+) (\d+) (\d+|-)$/.exec(line.trim());
  if (!m) return undefined;
  return { atMs: Number(m[1]), present: Number(m[2]), complete: Number(m[3]), dests: Number(m[4]), weight: m[5] === '-' ? undefined : Number(m[5]) };
}
