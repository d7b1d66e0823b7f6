/**
 * The system calls a watched local pool file's reads make: in the lab guest
 * each costs tens of microseconds, and a cold start reads 1,000 files. The
 * calls are counted through a wrapped node:fs (this file's own module graph).
 */
import * as fs from 'node:fs';
import { utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => ({ statSync: 0, fstatSync: 0, openSync: 0, readSync: 0, readFileSync: 0, closeSync: 0 }));

vi.mock('node:fs', async (original) => {
  const real = await original<typeof fs>();
  const counted = <K extends keyof typeof calls>(name: K) =>
    ((...args: unknown[]) => {
      calls[name]++;
      return (real[name] as (...a: unknown[]) => unknown)(...args);
    }) as unknown as (typeof fs)[K];
  return {
    ...real,
    statSync: counted('statSync'),
    fstatSync: counted('fstatSync'),
    openSync: counted('openSync'),
    readSync: counted('readSync'),
    readFileSync: counted('readFileSync'),
    closeSync: counted('closeSync'),
  };
});

const { ManualClock } = await import('../../src/runtime/clock.js');
const { createMemoryLogger } = await import('../../src/runtime/logger.js');
const { createFileSource } = await import('../../src/pool/file-source.js');
const { advanceUntil, rows, tempDir } = await import('./helpers.js');

const A = "{ 'host': 'mw1', 'weight': 10, 'enabled': True }\n{ 'host': 'mw2', 'weight': 20, 'enabled': False }\n";

describe('file pool source: the system calls of a read', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    for (const k of Object.keys(calls) as (keyof typeof calls)[]) calls[k] = 0;
  });
  afterEach(async () => cleanup());

  const delta = (before: typeof calls) => Object.fromEntries(Object.entries(calls).map(([k, v]) => [k, v - before[k as keyof typeof calls]]));

  it('reads a file that holds still at the first look with open, fstat, one read, close and one stat after; a fresh one only once it holds still', async () => {
    const still = join(dir, 'still');
    const fresh = join(dir, 'fresh');
    await writeFile(still, A);
    await writeFile(fresh, A);
    const wallMs = Date.now() + 60_000;
    const clock = new ManualClock(0, wallMs);
    await utimes(fresh, new Date(wallMs - 20), new Date(wallMs - 20));
    const memory = createMemoryLogger();
    const got = new Map<string, unknown[]>();
    const open = (path: string) => {
      const s = createFileSource(`file://${path}`, { clock, logger: memory.logger, settleMs: 100 });
      s.start((e) => got.set(path, [...(got.get(path) ?? []), e]));
      return s;
    };

    const before = { ...calls };
    const a = open(still);
    try {
      await advanceUntil(clock, () => got.has(still), 1);
      expect(rows(a.status().pool)).toEqual([['mw1', 10, true], ['mw2', 20, false]]);
      // No stat before the read, no second fstat, no read to find the end.
      expect(delta(before)).toEqual({ statSync: 1, fstatSync: 1, openSync: 1, readSync: 1, readFileSync: 0, closeSync: 1 });
    } finally {
      await a.stop();
    }

    // Written 20 ms ago: its first read is not delivered; once it has held still for 100 ms it is.
    const b = open(fresh);
    try {
      await advanceUntil(clock, () => clock.now() >= 50, 1);
      expect(got.has(fresh)).toBe(false);
      await advanceUntil(clock, () => got.has(fresh), 10);
      expect(clock.now()).toBeGreaterThanOrEqual(100);
      expect(rows(b.status().pool)).toEqual([['mw1', 10, true], ['mw2', 20, false]]);
    } finally {
      await b.stop();
    }
  });
});
