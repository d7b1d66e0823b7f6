/**
 * The lab guests' split of the lab files (test/lab/sequencer.ts): every file
 * in exactly one guest, the same split whatever order vitest lists them in,
 * and the guests' shares close to even by the recorded durations.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { balancedShard, LabSequencer, readDurations, UNKNOWN_FILE_SECONDS } from './sequencer.js';

function labFiles(dir = 'test'): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return labFiles(path);
    return path.endsWith('.lab.test.ts') ? [path] : [];
  });
}

describe('the lab guests share the lab files by their last durations', () => {
  const durations = readDurations('test/lab/durations.json');
  const seconds = (name: string): number => durations.get(name) ?? UNKNOWN_FILE_SECONDS;
  const files = labFiles();

  it('durations.json lists every lab file there is, and only those', () => {
    expect([...durations.keys()].sort()).toEqual([...files].sort());
  });

  it('every file goes to exactly one guest, whatever the order vitest lists them in, and the shares are close to even', () => {
    for (const count of [2, 3]) {
      const shards = Array.from({ length: count }, (_, k) => balancedShard(files, (f) => f, seconds, k + 1, count));
      const reversed = Array.from({ length: count }, (_, k) => balancedShard([...files].reverse(), (f) => f, seconds, k + 1, count));
      expect(reversed.map((s) => [...s].sort())).toEqual(shards.map((s) => [...s].sort()));
      expect(shards.flat().sort()).toEqual([...files].sort());
      const loads = shards.map((s) => s.reduce((a, f) => a + seconds(f), 0));
      const longest = Math.max(...files.map(seconds));
      // Longest-first to the least loaded: no guest ends more than one file's time after another.
      expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(longest);
    }
  });

  it('the sequencer gives vitest its share by the files paths relative to the root, and all of them without --shard', async () => {
    const specs = files.map((f) => ({ moduleId: join(process.cwd(), f) }));
    const ctx = (shard?: { index: number; count: number }) => ({ config: { root: process.cwd(), ...(shard ? { shard } : {}) } });
    const sequencer = (shard?: { index: number; count: number }) => new LabSequencer(ctx(shard) as never);
    const one = await sequencer({ index: 1, count: 2 }).shard(specs as never);
    const two = await sequencer({ index: 2, count: 2 }).shard(specs as never);
    expect(one.length + two.length).toBe(files.length);
    expect(new Set([...one, ...two]).size).toBe(files.length);
    expect(one).toEqual(balancedShard(specs, (s) => s.moduleId.slice(process.cwd().length + 1), seconds, 1, 2));
    expect(await sequencer().shard(specs as never)).toHaveLength(files.length);
  });
});
