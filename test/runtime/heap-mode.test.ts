/**
 * A thread's JS heap sized for memory (src/runtime/heap-mode.ts, the v8heap
 * addon): the real addon, in a process of its own, on its main thread and on
 * a worker thread, keeps the heap V8 holds for the same work well below what
 * it holds without; only the thread that asked changes; and where the addon
 * is missing or fails, the caller gets a reason and nothing else happens.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { V8HEAP_ADDON, buildNative } from '../../packaging/build-native.js';
import { preferSmallHeap, type V8HeapAddon } from '../../src/runtime/heap-mode.js';
import { loadNativeAddon } from '../../src/runtime/native-addon.js';

let dir = '';
let script = '';
beforeAll(() => {
  // Compiled here when missing or older than its source (npm run build does the same).
  buildNative();
  dir = mkdtempSync(join(tmpdir(), 'pybal-heap-mode-'));
  script = join(dir, 'work.cjs');
  writeFileSync(script, work(resolve(V8HEAP_ADDON)));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A run of the same work as a checks thread's: 20,000 records that live, and
 * short-lived results about them, 2,000,000 in all, of which the last 5,000
 * to 20,000 are kept a while (they reach the old generation and die there).
 * Prints, as JSON, the most V8 held for the heap of the thread that did the
 * work (`total_heap_size`, sampled after each round) and of the other thread.
 * argv: prefer|plain, main|worker (which thread works and, with prefer, asks).
 */
const work = (addon: string): string => `
  const v8 = require('node:v8');
  const { Worker, isMainThread, workerData, parentPort } = require('node:worker_threads');
  const work = (prefer) => {
    if (prefer && require(${JSON.stringify(addon)}).preferMemory() !== true) throw new Error('preferMemory did not say true');
    const live = [];
    for (let i = 0; i < 20000; i++) live.push({ host: 'mw' + i + '.eqiad.wmnet', last: [i, i + 1, i + 2, i + 3] });
    const kept = [];
    let peak = 0;
    for (let round = 0; round < 400; round++) {
      for (let k = 0; k < 5000; k++) {
        const server = live[(round * 5000 + k) % live.length];
        kept.push({ reason: 'HTTP 200 from ' + server.host + ' in round ' + round, at: round * k });
        server.last = [server.last[1], server.last[2], server.last[3], round];
      }
      if (kept.length > 20000) kept.splice(0, 15000);
      peak = Math.max(peak, v8.getHeapStatistics().total_heap_size);
    }
    return peak;
  };
  const [prefer, where] = [process.argv[2] === 'prefer', process.argv[3]];
  if (!isMainThread) parentPort.postMessage(work(workerData));
  else if (where === 'main') console.log(JSON.stringify({ worked: work(prefer), other: 0 }));
  else {
    const worker = new Worker(__filename, { workerData: prefer });
    worker.on('message', (peak) => console.log(JSON.stringify({ worked: peak, other: v8.getHeapStatistics().total_heap_size })));
  }
`;

/** Runs the work in a node of its own, as the daemon runs (--max-semi-space-size=2); the peaks in bytes. */
function peaks(mode: 'prefer' | 'plain', where: 'main' | 'worker'): { worked: number; other: number } {
  const run = spawnSync(process.execPath, ['--max-semi-space-size=2', script, mode, where], { encoding: 'utf8', timeout: 60_000 });
  if (run.status !== 0) throw new Error(`the work failed (${run.status}): ${run.stderr}`);
  return JSON.parse(run.stdout) as { worked: number; other: number };
}

describe('the v8heap addon', () => {
  it('loads from dist/native with preferMemory', () => {
    const loaded = loadNativeAddon<V8HeapAddon>('v8heap', ['preferMemory']);
    if ('reason' in loaded) throw new Error(loaded.reason);
    expect(typeof loaded.addon.preferMemory).toBe('function');
  });

  it('on the main thread, keeps the heap V8 holds for the same work well below what it holds without', () => {
    const plain = peaks('plain', 'main');
    const prefer = peaks('prefer', 'main');
    // On the development host: about 52 MB without, 27 MB with (for some 10 MB that lives).
    expect(prefer.worked).toBeLessThan(plain.worked * 0.75);
  }, 120_000);

  it('on a worker thread, the same, and only for the thread that asked', () => {
    const plain = peaks('plain', 'worker');
    const prefer = peaks('prefer', 'worker');
    expect(prefer.worked).toBeLessThan(plain.worked * 0.75);
    // The main thread, idle meanwhile, holds about as much either way.
    expect(prefer.other).toBeGreaterThan(plain.other * 0.8);
  }, 120_000);
});

describe('preferSmallHeap', () => {
  it('asks the addon once and says nothing when done', () => {
    let asked = 0;
    expect(preferSmallHeap({ addon: { preferMemory: () => (++asked, true) } })).toBeUndefined();
    expect(asked).toBe(1);
  });

  it('gives the reason where the addon does not load, fails or finds no isolate', () => {
    expect(preferSmallHeap({ reason: 'the v8heap addon (/x/dist/native/v8heap.node): it is missing; run npm run build' })).toMatch(/v8heap addon .*it is missing/);
    expect(
      preferSmallHeap({
        addon: {
          preferMemory: () => {
            throw new Error('undefined symbol: _ZN2v87Isolate31IsolateInBackgroundNotificationEv');
          },
        },
      }),
    ).toBe('the v8heap addon failed: undefined symbol: _ZN2v87Isolate31IsolateInBackgroundNotificationEv');
    expect(preferSmallHeap({ addon: { preferMemory: () => false } })).toBe('this thread has no V8 isolate');
  });
});
