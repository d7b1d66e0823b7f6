/**
 * The C heap's trims (src/runtime/malloc-trim.ts, the memtrim addon): the
 * real addon, in a process of its own, gives the pages of freed memory back
 * to the kernel (its RSS falls, what is allocated stays); the trimmer looks
 * every interval, trims only with enough free, never two at once, and says
 * once why it cannot trim at all.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MEMTRIM_ADDON, buildNative } from '../../packaging/build-native.js';
import { DEFAULT_TOP_PAD_BYTES, START_TOP_PAD_BYTES, padCHeapForStartUp, startMallocTrim, type MallocStats, type MemtrimAddon } from '../../src/runtime/malloc-trim.js';
import { loadNativeAddon } from '../../src/runtime/native-addon.js';

let addonPath = '';
beforeAll(() => {
  // Compiled here when missing or older than its source (npm run build does the same).
  buildNative();
  addonPath = resolve(MEMTRIM_ADDON);
});

describe('the memtrim addon', () => {
  it('loads from dist/native with its three functions, and reads the C heap', () => {
    const loaded = loadNativeAddon<MemtrimAddon>('memtrim', ['stats', 'trim', 'topPad']);
    if ('reason' in loaded) throw new Error(loaded.reason);
    const stats = loaded.addon.stats();
    expect(stats).not.toBeNull();
    expect(stats!.heapBytes).toBeGreaterThan(0);
    expect(stats!.inUseBytes).toBeGreaterThan(0);
    expect(stats!.inUseBytes).toBeLessThanOrEqual(stats!.heapBytes);
  });

  it('gives the pages of freed memory back: the RSS falls by most of what was freed, what is allocated stays', () => {
    // 2,000 Buffers of 64 KiB (malloc'd, under glibc's mmap threshold: they land in the arena),
    // every other one freed: 64 MiB of holes between live chunks, which free() alone keeps resident.
    const script = `
      const addon = require(${JSON.stringify(addonPath)});
      const anon = () => Number(/RssAnon:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      const kept = [];
      for (let i = 0; i < 2000; i++) kept.push(Buffer.alloc(64 * 1024, 1));
      for (let i = 0; i < 2000; i += 2) kept[i] = null;
      gc(); gc();
      setTimeout(async () => {
        const before = { stats: addon.stats(), anon: anon() };
        const released = await addon.trim();
        const after = { stats: addon.stats(), anon: anon() };
        console.log(JSON.stringify({ before, released, after, live: kept.filter(Boolean).length }));
      }, 50);`;
    const run = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(run.status, run.stderr).toBe(0);
    const r = JSON.parse(run.stdout) as { before: { stats: MallocStats; anon: number }; released: boolean; after: { stats: MallocStats; anon: number }; live: number };
    const MiB = 2 ** 20;
    expect(r.live).toBe(1000);
    expect(r.before.stats.freeBytes).toBeGreaterThan(60 * MiB);
    expect(r.released).toBe(true);
    expect(r.before.anon - r.after.anon).toBeGreaterThan(40 * MiB);
    // The live Buffers are untouched: as much allocated as before (give or take the process's own small allocations).
    expect(Math.abs(r.after.stats.inUseBytes - r.before.stats.inUseBytes)).toBeLessThan(4 * MiB);
  });
});

describe('the memtrim addon: topPad', () => {
  // Buffers of 64 KiB (malloc'd, under glibc's mmap threshold) until the main arena grows:
  // it grows by what was asked plus the pad, so the first step says which pad is in force.
  const firstGrowth = (pad: number): number => {
    const script = `
      const addon = require(${JSON.stringify(addonPath)});
      if (!addon.topPad(${pad})) throw new Error('topPad refused');
      const kept = [];
      const start = addon.stats().heapBytes;
      let now = start;
      for (let i = 0; i < 4096 && now === start; i++) {
        kept.push(Buffer.alloc(64 * 1024, 1));
        now = addon.stats().heapBytes;
      }
      console.log(JSON.stringify({ growth: now - start }));`;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(child.status, child.stderr).toBe(0);
    return (JSON.parse(child.stdout) as { growth: number }).growth;
  };

  it('makes an arena grow by that much more than asked; glibc\'s default by 128 KiB', () => {
    const MiB = 2 ** 20;
    const padded = firstGrowth(START_TOP_PAD_BYTES);
    const plain = firstGrowth(DEFAULT_TOP_PAD_BYTES);
    expect(padded).toBeGreaterThanOrEqual(16 * MiB);
    expect(plain).toBeGreaterThan(0);
    expect(plain).toBeLessThan(1 * MiB);
  });

  it('refuses what is not a size', () => {
    const loaded = loadNativeAddon<MemtrimAddon>('memtrim', ['topPad']);
    if ('reason' in loaded) throw new Error(loaded.reason);
    expect(() => loaded.addon.topPad(-1)).toThrow(/bytes must be a number from 0 to 1 GiB/);
    expect(() => (loaded.addon.topPad as (x: unknown) => boolean)('16M')).toThrow(/bytes must be a number/);
    // Leave this process as it was.
    expect(loaded.addon.topPad(DEFAULT_TOP_PAD_BYTES)).toBe(true);
  });
});

describe('padCHeapForStartUp', () => {
  it('raises the pad for the start-up and puts glibc\'s default back once, at its end', () => {
    const pads: number[] = [];
    const addon: MemtrimAddon = { ...fakeAddon({ free: 0 }).addon, topPad: (bytes) => (pads.push(bytes), true) };
    const pad = padCHeapForStartUp({ addon: { addon } });
    expect(pads).toEqual([16 * 2 ** 20]);
    pad.end();
    pad.end();
    expect(pads).toEqual([16 * 2 ** 20, 128 * 1024]);
  });

  it('does nothing where the addon is missing or glibc refuses the pad', () => {
    const pads: number[] = [];
    padCHeapForStartUp({ addon: { reason: 'missing' } }).end();
    const refused = padCHeapForStartUp({ addon: { addon: { ...fakeAddon(null).addon, topPad: (bytes) => (pads.push(bytes), false) } } });
    refused.end();
    // Refused at the start: nothing to put back.
    expect(pads).toEqual([16 * 2 ** 20]);
  });
});

/** An addon whose heap the test sets, and whose trims it finishes when it wants. */
function fakeAddon(heap: { free: number } | null) {
  const pending: ((released: boolean) => void)[] = [];
  const addon: MemtrimAddon = {
    stats: () => (heap === null ? null : { heapBytes: 50_000_000, inUseBytes: 20_000_000, freeBytes: heap.free }),
    trim: () => new Promise<boolean>((resolve) => pending.push(resolve)),
    topPad: () => true,
  };
  return { addon, pending };
}

/** A timer the test fires by hand. */
function manualTimer() {
  let fire: (() => void) | undefined;
  let cancelled = false;
  return {
    every: (fn: () => void, ms: number) => {
      expect(ms).toBe(10_000);
      fire = fn;
      return () => {
        cancelled = true;
      };
    },
    tick: () => fire?.(),
    get cancelled() {
      return cancelled;
    },
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('startMallocTrim', () => {
  it('trims at an interval when enough is free, one trim at a time, and counts those that returned memory', async () => {
    const heap = { free: 8 * 2 ** 20 };
    const { addon, pending } = fakeAddon(heap);
    const timer = manualTimer();
    const trim = startMallocTrim({ addon: { addon }, every: timer.every });
    expect(trim.stats()).toEqual({ trims: 0, released: 0, heap: { heapBytes: 50_000_000, inUseBytes: 20_000_000, freeBytes: 8 * 2 ** 20 } });
    timer.tick();
    expect(pending).toHaveLength(1);
    timer.tick(); // the first still runs: no second
    expect(pending).toHaveLength(1);
    pending[0]!(true);
    await settle();
    expect(trim.stats()).toMatchObject({ trims: 1, released: 1 });
    timer.tick();
    expect(pending).toHaveLength(2);
    pending[1]!(false);
    await settle();
    expect(trim.stats()).toMatchObject({ trims: 2, released: 1 });
    // Under 2 MiB free: not worth a walk over the arenas; the figures are still read.
    heap.free = 1 * 2 ** 20;
    timer.tick();
    expect(pending).toHaveLength(2);
    expect(trim.stats().heap?.freeBytes).toBe(2 ** 20);
    trim.stop();
    expect(timer.cancelled).toBe(true);
  });

  it('a trim that fails lets the next one run', async () => {
    const addon: MemtrimAddon = { stats: () => ({ heapBytes: 9e7, inUseBytes: 1e7, freeBytes: 8e7 }), trim: () => Promise.reject(new Error('cannot queue')), topPad: () => true };
    const timer = manualTimer();
    let calls = 0;
    const trim = startMallocTrim({ addon: { addon: { ...addon, trim: () => (calls++, addon.trim()) } }, every: timer.every });
    timer.tick();
    await settle();
    timer.tick();
    await settle();
    expect(calls).toBe(2);
    expect(trim.stats()).toMatchObject({ trims: 0, released: 0 });
  });

  it('says once why it cannot trim: the addon missing, or a C library other than glibc', () => {
    const reasons: string[] = [];
    const missing = loadNativeAddon<MemtrimAddon>('no-such-addon', ['stats', 'trim']);
    expect('reason' in missing && missing.reason).toMatch(/^the no-such-addon addon \(.*dist\/native\/no-such-addon\.node\): it is missing; run npm run build$/);
    const timer = manualTimer();
    const a = startMallocTrim({ addon: missing, every: timer.every, unavailable: (r) => reasons.push(r) });
    const b = startMallocTrim({ addon: { addon: fakeAddon(null).addon }, every: timer.every, unavailable: (r) => reasons.push(r) });
    expect(reasons).toEqual([(missing as { reason: string }).reason, 'the C library is not glibc (no malloc_trim)']);
    expect(a.stats()).toEqual({ trims: 0, released: 0 });
    expect(b.stats()).toEqual({ trims: 0, released: 0 });
    a.stop();
    b.stop();
  });
});
