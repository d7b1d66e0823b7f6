/**
 * How the lab guests share the lab files (test/run.sh runs one vitest per
 * guest with --shard=k/n). vitest's own sharding splits the files by count,
 * whatever each takes: one guest ran 1,068 s while the other was done after
 * 734 s. Here the files go, longest first, to whichever guest has the least
 * so far, by the seconds each took in the last full run
 * (test/lab/durations.json; a file not listed counts as 60 s). Every guest
 * computes the same split from the same list, so each file runs exactly once.
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Seconds a lab file not in durations.json is counted as. */
export const UNKNOWN_FILE_SECONDS = 60;

/** The files of shard `index` (1-based) of `count`, balanced by `seconds` (longest first, to the least loaded). */
export function balancedShard<T>(files: readonly T[], name: (file: T) => string, seconds: (name: string) => number, index: number, count: number): T[] {
  const named = files.map((file) => ({ file, name: name(file), s: seconds(name(file)) }));
  // By time, then by name: the same order in every guest.
  named.sort((a, b) => b.s - a.s || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const load = new Array<number>(count).fill(0);
  const mine: T[] = [];
  for (const f of named) {
    let least = 0;
    for (let k = 1; k < count; k++) if ((load[k] as number) < (load[least] as number)) least = k;
    load[least] = (load[least] as number) + f.s;
    if (least === index - 1) mine.push(f.file);
  }
  return mine;
}

export function readDurations(path: string): Map<string, number> {
  const table = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  return new Map(Object.entries(table).filter((e): e is [string, number] => typeof e[1] === 'number'));
}

export class LabSequencer extends BaseSequencer {
  override async shard(files: TestSpecification[]): Promise<TestSpecification[]> {
    const shard = this.ctx.config.shard;
    if (shard === undefined) return files;
    const root = this.ctx.config.root;
    const durations = readDurations(join(root, 'test/lab/durations.json'));
    return balancedShard(
      files,
      (spec) => relative(root, spec.moduleId).split('\\').join('/'),
      (name) => durations.get(name) ?? UNKNOWN_FILE_SECONDS,
      shard.index,
      shard.count,
    );
  }
}
