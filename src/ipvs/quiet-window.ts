/**
 * A service's window of IPVS counter readings for the quiet-server rule
 * (quiet-servers.ts), kept as what the rule needs of each destination at
 * each reading: its weight, ActiveConn, InActConn, and its connection and
 * outgoing-packet counters. Nothing else of a reading is kept.
 *
 * Keeping whole readings cost about 300 bytes per destination per reading
 * (a record, its traffic values and a Map entry): 18 MB at 10,000 servers
 * and 6 readings. Here each destination has a slot, and each of its values
 * a place in a typed array per column, one per reading in a ring: about 170
 * bytes per destination for the whole window, plus its Map entry.
 *
 * A destination missing from a reading counts as weight 0 and no
 * connections there, as the rule wants; one missing from every reading of
 * the window is forgotten and its slot reused.
 */
import type { QuietServerInput } from './quiet-servers.js';
import type { FwdMethod, TrafficValue } from './types.js';

/** What the window takes of one destination in one reading. */
export interface QuietDestReading {
  readonly address: string;
  readonly weight: number;
  readonly fwdMethod: FwdMethod;
  readonly traffic: TrafficValue;
}

/** The rule's input over a window (a service's scheduler and persistence come from its configuration). */
export interface QuietWindowInput {
  readonly forwarding: FwdMethod;
  readonly servers: QuietServerInput[];
}

/** Destinations handled between two chances to end a slice (runtime/sliced.ts). */
const DESTS_PER_STEP = 256;
/** The weight column's mark for "missing from this reading". */
const MISSING = -1;

export class QuietWindow {
  /** Readings the window holds when full. */
  readonly size: number;
  /** Readings taken so far (the window is full from `size` on). */
  private taken = 0;
  /** Slot of each destination seen in the window, by address. */
  private readonly slots = new Map<string, number>();
  /** Slots free for reuse. */
  private readonly freeSlots: number[] = [];
  /** The reading (by `taken`) each slot was last seen in. */
  private lastSeen = new Int32Array(0);
  /** The latest reading's addresses, in the kernel's order. */
  private latestOrder: string[] = [];
  private forwarding: FwdMethod = 'droute';
  // Columns: slot * size + ring position.
  private weight = new Int32Array(0);
  private active = new Uint32Array(0);
  private inactive = new Uint32Array(0);
  private connections = new Float64Array(0);
  private outPackets = new Float64Array(0);

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`a quiet-server window holds at least one reading, not ${size}`);
    this.size = size;
  }

  /** Whether the window holds `size` readings (the rule waits for a full window). */
  get full(): boolean {
    return this.taken >= this.size;
  }

  /** Destinations the window remembers (those in at least one of its readings). */
  get remembered(): number {
    return this.slots.size;
  }

  /** Adds a reading (its destinations in the kernel's order), dropping the oldest when full; a sliced job. */
  *addSteps(dests: Iterable<QuietDestReading>): Generator<void, void, undefined> {
    const reading = this.taken;
    const position = reading % this.size;
    const order: string[] = [];
    let forwarding: FwdMethod = 'droute';
    let n = 0;
    for (const d of dests) {
      const slot = this.slotOf(d.address, reading);
      // The kernel lists an address once; were it listed twice, the last counts, at its first place.
      if (this.lastSeen[slot] !== reading) order.push(d.address);
      const at = slot * this.size + position;
      this.weight[at] = d.weight;
      this.active[at] = d.traffic.activeConnections ?? 0;
      this.inactive[at] = d.traffic.inactiveConnections ?? 0;
      this.connections[at] = d.traffic.connections;
      this.outPackets[at] = d.traffic.outPackets;
      this.lastSeen[slot] = reading;
      forwarding = d.fwdMethod;
      if (++n % DESTS_PER_STEP === 0) yield;
    }
    // Those not in this reading: missing here, and forgotten once missing from the whole window.
    for (const [address, slot] of this.slots) {
      if (this.lastSeen[slot] === reading) continue;
      this.weight[slot * this.size + position] = MISSING;
      if (reading - (this.lastSeen[slot] ?? 0) >= this.size) {
        this.slots.delete(address);
        this.freeSlots.push(slot);
      }
      if (++n % DESTS_PER_STEP === 0) yield;
    }
    this.latestOrder = order;
    this.forwarding = forwarding;
    this.taken = reading + 1;
  }

  /**
   * The rule's input: the latest reading's servers, each over the window
   * (oldest reading first); a sliced job.
   */
  *inputSteps(): Generator<void, QuietWindowInput, undefined> {
    const readings = Math.min(this.taken, this.size);
    const oldest = this.taken - readings;
    const newest = (this.taken - 1) % this.size;
    const servers: QuietServerInput[] = [];
    for (const address of this.latestOrder) {
      const slot = this.slots.get(address);
      if (slot === undefined) continue;
      const base = slot * this.size;
      const activeConnections: number[] = [];
      const inactiveConnections: number[] = [];
      let minWeight = Infinity;
      for (let r = oldest; r < this.taken; r++) {
        const at = base + (r % this.size);
        const w = this.weight[at] ?? MISSING;
        const present = w !== MISSING;
        minWeight = Math.min(minWeight, present ? w : 0);
        activeConnections.push(present ? (this.active[at] ?? 0) : 0);
        inactiveConnections.push(present ? (this.inactive[at] ?? 0) : 0);
      }
      const first = base + (oldest % this.size);
      const last = base + newest;
      const fromStart = (this.weight[first] ?? MISSING) !== MISSING;
      servers.push({
        address,
        minWeight,
        weight: this.weight[last] ?? 0,
        newConnections: fromStart ? (this.connections[last] ?? 0) - (this.connections[first] ?? 0) : -1,
        newOutPackets: fromStart ? (this.outPackets[last] ?? 0) - (this.outPackets[first] ?? 0) : -1,
        activeConnections,
        inactiveConnections,
      });
      if (servers.length % DESTS_PER_STEP === 0) yield;
    }
    return { forwarding: this.forwarding, servers };
  }

  /** The slot of an address, given a fresh one (every reading marked missing, not yet seen in this one) when it has none. */
  private slotOf(address: string, reading: number): number {
    const known = this.slots.get(address);
    if (known !== undefined) return known;
    const slot = this.freeSlots.pop() ?? this.slots.size;
    if (slot >= this.lastSeen.length) this.grow(Math.max(16, this.lastSeen.length * 2));
    this.weight.fill(MISSING, slot * this.size, (slot + 1) * this.size);
    this.lastSeen[slot] = reading - 1;
    this.slots.set(address, slot);
    return slot;
  }

  /**
   * Room for `slots` destinations: the columns are views of one buffer, the
   * 64-bit ones first (each view starts at a multiple of its element's
   * size). A buffer of its own per column cost six allocations outside V8's
   * heap per service, 6,000 at the first reading of 1,000 services.
   */
  private grow(slots: number): void {
    const cells = slots * this.size;
    const buffer = new ArrayBuffer(cells * 8 * 2 + cells * 4 * 3 + slots * 4);
    let offset = 0;
    const take = <T extends Float64Array | Int32Array | Uint32Array>(from: T, make: (at: number) => T): T => {
      const to = make(offset);
      to.set(from);
      offset += to.byteLength;
      return to;
    };
    this.connections = take(this.connections, (at) => new Float64Array(buffer, at, cells));
    this.outPackets = take(this.outPackets, (at) => new Float64Array(buffer, at, cells));
    this.weight = take(this.weight, (at) => new Int32Array(buffer, at, cells));
    this.active = take(this.active, (at) => new Uint32Array(buffer, at, cells));
    this.inactive = take(this.inactive, (at) => new Uint32Array(buffer, at, cells));
    this.lastSeen = take(this.lastSeen, (at) => new Int32Array(buffer, at, slots));
  }
}
