import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { watchedDirectories, watchFile, type FileWatch } from '../../src/pool/dir-watch.js';
import { tempDir, waitReal } from './helpers.js';

const watches: FileWatch[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const w of watches.splice(0)) w.stop();
  for (const c of cleanups.splice(0)) await c();
});

describe('pool file change notifications', () => {
  it('one watch per directory tells each file of its own changes', async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const seen = { a: 0, b: 0 };
    const before = watchedDirectories();
    watches.push(watchFile(join(dir, 'a'), () => seen.a++)!, watchFile(join(dir, 'b'), () => seen.b++)!);
    expect(watchedDirectories()).toBe(before + 1);
    await writeFile(join(dir, 'a'), 'x');
    await waitReal(() => seen.a > 0, 2000);
    expect(seen.b).toBe(0);
    await writeFile(join(dir, 'b'), 'y');
    await waitReal(() => seen.b > 0, 2000);
    for (const w of watches.splice(0)) w.stop();
    expect(watchedDirectories()).toBe(before);
  });

  it('says when a directory cannot be watched', async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    expect(watchFile(join(dir, 'missing', 'pool'), () => undefined)).toBeUndefined();
  });
});
