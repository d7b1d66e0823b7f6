/**
 * The event history: the daemon's last N state changes (monitor and server
 * transitions, pooling decisions, reloads, pools applied, BGP sessions and
 * routes, IPVS drift and errors), kept in memory for the status page,
 * `GET /events` and `GET /events/stream`.
 *
 * A ring buffer of fixed capacity: recording an event is O(1) and never
 * grows memory; the oldest event is overwritten. Each event gets a sequence
 * number that only grows (never reused, also across a resize), so a client
 * can ask for what came after the last one it saw. Events are small plain
 * objects: a mass depool of 10,000 servers records 10,000 of them (and keeps
 * the last N) without anything else being copied.
 *
 * Components never import a history: they are handed an EventSink (DESIGN
 * rule 6), which is this class in the daemon and a list in unit tests.
 */

export const EVENT_KINDS = [
  /** A monitor of a server reported down (or its first result was down). */
  'monitor-down',
  /** A monitor of a server that was down reported up again. */
  'monitor-up',
  /** A server entered IPVS (pooled, repooled, forced in by the depool threshold). */
  'pooled',
  /** A server left IPVS (down, disabled, unresolved). */
  'depooled',
  /** A down server kept pooled: the depool threshold forbids removing it. */
  'depool-held',
  /** A pool (file, http, etcd) applied: servers added, removed, changed. */
  'pool-applied',
  /** pybal.conf reloaded: services added, removed, changed. */
  'reload',
  /** The director was drained or undrained. */
  'drain',
  'bgp-session-up',
  'bgp-session-down',
  'bgp-announce',
  'bgp-withdraw',
  /** A resync found the kernel's IPVS table different from pybal's model, and repaired it. */
  'ipvs-drift',
  /** An IPVS reconcile failed (it is retried). */
  'ipvs-error',
  /** IPVS reconciles succeed again after a failure. */
  'ipvs-recovered',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export type EventLevel = 'info' | 'warn' | 'error';

/** What a component reports: the history adds the sequence number and the time. */
export interface EventInput {
  readonly kind: EventKind;
  readonly level: EventLevel;
  /** The human message, in the log's wording. */
  readonly message: string;
  readonly service?: string;
  readonly server?: string;
  readonly peer?: string;
  /** The server's health after the change, when the event tells it (monitor and pooling events). */
  readonly up?: boolean;
  /** Whether the server is pooled after the change, when the event tells it (pooling events). */
  readonly pooled?: boolean;
}

/** One recorded event. */
export interface DaemonEvent extends EventInput {
  /** 1, 2, 3, ...: only grows. */
  readonly seq: number;
  /** Wall-clock milliseconds since the epoch. */
  readonly atWallMs: number;
}

/** Where components report events (the history, or a list in tests). */
export interface EventSink {
  emit(event: EventInput): void;
}

/** A sink that drops everything (components without a history). */
export const NO_EVENTS: EventSink = { emit: () => undefined };

/** The default `event-history-size`. */
export const DEFAULT_EVENT_HISTORY_SIZE = 1000;

export class EventHistory implements EventSink {
  private ring: (DaemonEvent | undefined)[];
  /** Where the next event goes. */
  private next = 0;
  private count = 0;
  private seq = 0;
  private readonly listeners = new Set<(event: DaemonEvent) => void>();

  constructor(
    capacity: number,
    private readonly wallNow: () => number,
  ) {
    this.ring = new Array<DaemonEvent | undefined>(EventHistory.checkCapacity(capacity)).fill(undefined);
  }

  private static checkCapacity(capacity: number): number {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`event history capacity must be a positive integer, got ${capacity}`);
    return capacity;
  }

  get capacity(): number {
    return this.ring.length;
  }

  /** The sequence number of the latest event (0 before the first). */
  get latestSeq(): number {
    return this.seq;
  }

  /** The sequence number of the oldest event still kept (latestSeq + 1 when empty). */
  get oldestSeq(): number {
    return this.seq - this.count + 1;
  }

  get size(): number {
    return this.count;
  }

  /** Records an event (O(1)) and tells the listeners. */
  emit(input: EventInput): DaemonEvent {
    const event: DaemonEvent = { seq: ++this.seq, atWallMs: this.wallNow(), ...input };
    this.ring[this.next] = event;
    this.next = (this.next + 1) % this.ring.length;
    if (this.count < this.ring.length) this.count++;
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure (a broken stream) is its own: recording goes on.
      }
    }
    return event;
  }

  /** Calls `listener` with every event from now on (synchronously: keep it cheap); returns the unsubscribe. */
  subscribe(listener: (event: DaemonEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The event with this sequence number, if still kept. */
  get(seq: number): DaemonEvent | undefined {
    if (!Number.isInteger(seq) || seq < this.oldestSeq || seq > this.seq) return undefined;
    return this.at(seq);
  }

  /**
   * Events after `sinceSeq`, oldest first, at most `limit` of them: the
   * first `limit` after it (so that a reader can page forward). Events
   * already overwritten are skipped.
   */
  since(sinceSeq: number, limit = this.capacity): DaemonEvent[] {
    const from = Math.max(this.oldestSeq, Math.floor(sinceSeq) + 1);
    const to = Math.min(this.seq, from + Math.max(0, Math.floor(limit)) - 1);
    const out: DaemonEvent[] = [];
    for (let seq = from; seq <= to; seq++) out.push(this.at(seq));
    return out;
  }

  /** The latest `limit` events, newest first. */
  latest(limit = this.capacity): DaemonEvent[] {
    const out: DaemonEvent[] = [];
    const stop = Math.max(this.oldestSeq, this.seq - Math.max(0, Math.floor(limit)) + 1);
    for (let seq = this.seq; seq >= stop; seq--) out.push(this.at(seq));
    return out;
  }

  /**
   * A new capacity (a reload changed event-history-size): the latest events
   * that fit are kept, sequence numbers go on.
   */
  resize(capacity: number): void {
    EventHistory.checkCapacity(capacity);
    if (capacity === this.ring.length) return;
    const kept = this.latest(capacity).reverse();
    this.ring = new Array<DaemonEvent | undefined>(capacity).fill(undefined);
    kept.forEach((event, i) => (this.ring[i] = event));
    this.count = kept.length;
    this.next = kept.length % capacity;
  }

  /** The kept event with this sequence number (the caller checked the range). */
  private at(seq: number): DaemonEvent {
    // The latest event sits just before `next`.
    const back = this.seq - seq;
    const index = (((this.next - 1 - back) % this.ring.length) + this.ring.length) % this.ring.length;
    return this.ring[index] as DaemonEvent;
  }
}
