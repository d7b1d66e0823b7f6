// The quiet-server rule's window, kept as columns, against a model that keeps
// whole readings (what the reader did before) over scripted and random
// sequences of readings.
import { describe, expect, it } from 'vitest';
import type { QuietServerInput } from '../../src/ipvs/quiet-servers.js';
import { QuietWindow, type QuietDestReading, type QuietWindowInput } from '../../src/ipvs/quiet-window.js';
import type { FwdMethod } from '../../src/ipvs/types.js';
import { createRandom } from '../support/random.js';

interface Row {
  address: string;
  weight: number;
  active: number;
  inactive: number;
  connections: number;
  outPackets: number;
  fwd?: FwdMethod;
}

function destOf(r: Row): QuietDestReading {
  return {
    address: r.address,
    weight: r.weight,
    fwdMethod: r.fwd ?? 'droute',
    traffic: {
      connections: r.connections,
      inPackets: 0,
      outPackets: r.outPackets,
      inBytes: 0,
      outBytes: 0,
      connectionsPerSec: 0,
      inPacketsPerSec: 0,
      outPacketsPerSec: 0,
      inBytesPerSec: 0,
      outBytesPerSec: 0,
      activeConnections: r.active,
      inactiveConnections: r.inactive,
      readAtWallMs: 0,
    },
  };
}

/** The rule's input from whole readings, oldest first (the last `size` of them). */
function model(readings: readonly (readonly Row[])[], size: number): QuietWindowInput {
  const window = readings.slice(-size).map((rows) => new Map(rows.map((r) => [r.address, r])));
  const first = window[0] ?? new Map<string, Row>();
  const last = window[window.length - 1] ?? new Map<string, Row>();
  let forwarding: FwdMethod = 'droute';
  const servers: QuietServerInput[] = [];
  for (const [address, d] of last) {
    forwarding = d.fwd ?? 'droute';
    const at = window.map((m) => m.get(address));
    const start = first.get(address);
    servers.push({
      address,
      minWeight: Math.min(...at.map((x) => x?.weight ?? 0)),
      weight: d.weight,
      newConnections: start === undefined ? -1 : d.connections - start.connections,
      newOutPackets: start === undefined ? -1 : d.outPackets - start.outPackets,
      activeConnections: at.map((x) => x?.active ?? 0),
      inactiveConnections: at.map((x) => x?.inactive ?? 0),
    });
  }
  return { forwarding, servers };
}

function run<T>(steps: Generator<void, T, undefined>): T {
  for (;;) {
    const next = steps.next();
    if (next.done === true) return next.value;
  }
}

function add(window: QuietWindow, rows: readonly Row[]): void {
  run(window.addSteps(rows.map(destOf)));
}

const row = (n: number, over: Partial<Row> = {}): Row => ({ address: `10.0.0.${n}`, weight: 10, active: 1, inactive: 2, connections: 0, outPackets: 0, ...over });

describe('QuietWindow', () => {
  it('is full after `size` readings and gives each server its values over the window, oldest first', () => {
    const w = new QuietWindow(3);
    add(w, [row(1, { connections: 5, outPackets: 50, active: 3 }), row(2, { connections: 7 })]);
    expect(w.full).toBe(false);
    add(w, [row(1, { connections: 9, outPackets: 60, active: 4, weight: 5 }), row(2, { connections: 7 })]);
    add(w, [row(1, { connections: 25, outPackets: 70, active: 0, inactive: 0 }), row(2, { connections: 8, fwd: 'masq' })]);
    expect(w.full).toBe(true);
    expect(run(w.inputSteps())).toEqual({
      forwarding: 'masq',
      servers: [
        { address: '10.0.0.1', minWeight: 5, weight: 10, newConnections: 20, newOutPackets: 20, activeConnections: [3, 4, 0], inactiveConnections: [2, 2, 0] },
        { address: '10.0.0.2', minWeight: 10, weight: 10, newConnections: 1, newOutPackets: 0, activeConnections: [1, 1, 1], inactiveConnections: [2, 2, 2] },
      ],
    });
    // The fourth reading pushes out the first.
    add(w, [row(1, { connections: 30, outPackets: 71 })]);
    const input = run(w.inputSteps());
    expect(input.servers).toEqual([
      { address: '10.0.0.1', minWeight: 5, weight: 10, newConnections: 21, newOutPackets: 11, activeConnections: [4, 0, 1], inactiveConnections: [2, 0, 2] },
    ]);
  });

  it('counts a reading a server was missing from as weight 0, and one missing at the start as no counters to compare', () => {
    const w = new QuietWindow(3);
    add(w, [row(1, { connections: 1 }), row(2)]);
    add(w, [row(1, { connections: 2 })]);
    add(w, [row(1, { connections: 3 }), row(2, { connections: 4 })]);
    const [, two] = run(w.inputSteps()).servers;
    expect(two).toMatchObject({ minWeight: 0, newConnections: 4, activeConnections: [1, 0, 1] });
    add(w, [row(1), row(2, { connections: 9 })]);
    // Its first reading is now the one it was missing from.
    expect(run(w.inputSteps()).servers[1]).toMatchObject({ minWeight: 0, newConnections: -1, newOutPackets: -1 });
  });

  it('forgets a server missing from the whole window, and one that comes back starts with no past', () => {
    const w = new QuietWindow(2);
    add(w, [row(1), row(2, { connections: 100 })]);
    add(w, [row(1)]);
    expect(w.remembered).toBe(2);
    add(w, [row(1)]);
    expect(w.remembered).toBe(1);
    add(w, [row(1), row(3)]);
    add(w, [row(1), row(2, { connections: 5 }), row(3)]);
    // 10.0.0.2's slot went to 10.0.0.3: nothing of its old readings shows.
    const byAddress = new Map(run(w.inputSteps()).servers.map((s) => [s.address, s]));
    expect(byAddress.get('10.0.0.2')).toMatchObject({ minWeight: 0, newConnections: -1, activeConnections: [0, 1] });
    expect(byAddress.get('10.0.0.3')).toMatchObject({ minWeight: 10, newConnections: 0 });
  });

  it('keeps the first place of an address the kernel lists twice, with the values it listed last', () => {
    const w = new QuietWindow(1);
    add(w, [row(1, { weight: 3 }), row(2), row(1, { weight: 4 })]);
    expect(run(w.inputSteps()).servers.map((s) => [s.address, s.weight])).toEqual([
      ['10.0.0.1', 4],
      ['10.0.0.2', 10],
    ]);
  });

  it('agrees with a window of whole readings over random pools that grow, shrink and churn', () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const rnd = createRandom(seed);
      const size = 2 + Math.floor(rnd() * 6);
      const w = new QuietWindow(size);
      const readings: Row[][] = [];
      const conns = new Map<number, number>();
      for (let r = 0; r < 40; r++) {
        // From a few servers to a few hundred (past the columns' first sizes), some missing each time.
        const span = 1 + Math.floor(rnd() * (r % 10 < 5 ? 8 : 300));
        const rows: Row[] = [];
        for (let n = 0; n < span; n++) {
          if (rnd() < 0.2) continue;
          const c = (conns.get(n) ?? 0) + Math.floor(rnd() * 3);
          conns.set(n, c);
          rows.push(
            row(n, {
              weight: Math.floor(rnd() * 4),
              active: Math.floor(rnd() * 3),
              inactive: Math.floor(rnd() * 3),
              connections: rnd() < 0.05 ? 0 : c,
              outPackets: c * 3 + 2 ** 40,
              fwd: rnd() < 0.5 ? 'droute' : 'masq',
            }),
          );
        }
        // Listed in a different order each time.
        rows.sort(() => rnd() - 0.5);
        add(w, rows);
        readings.push(rows);
        expect(w.full).toBe(readings.length >= size);
        if (w.full) expect(run(w.inputSteps()), `seed ${seed}, reading ${r}`).toEqual(model(readings, size));
        const inWindow = new Set(readings.slice(-size).flatMap((rows) => rows.map((x) => x.address)));
        expect(w.remembered).toBe(inWindow.size);
      }
    }
  });

  it('gives the event loop turns over 2,000 destinations', () => {
    const w = new QuietWindow(2);
    const rows = Array.from({ length: 2000 }, (_, i) => row(i, { address: `10.0.${i >> 8}.${i & 255}` }));
    let steps = 0;
    for (const _ of w.addSteps(rows.map(destOf))) steps++;
    expect(steps).toBeGreaterThanOrEqual(7);
    steps = 0;
    const gen = w.inputSteps();
    while (gen.next().done !== true) steps++;
    expect(steps).toBeGreaterThanOrEqual(7);
  });

  it('refuses a window of no readings', () => {
    expect(() => new QuietWindow(0)).toThrow(/at least one reading/);
  });
});
