import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LogTail, logLineTime } from '../../bench/lib/log-tail.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('LogTail', () => {
  it('reads the time pybal writes on a line, as local time', () => {
    expect(logLineTime('2026-12-03 16:31:34.733 [ipvs] INFO: IPVS: applied 5001 of 5001 changes')).toBe(new Date(2026, 11, 3, 16, 31, 34, 733).getTime());
    expect(logLineTime('not a log line')).toBeUndefined();
  });

  it('finds only lines written after it started, even one written in two pieces', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'log-tail-'));
    dirs.push(dir);
    const path = join(dir, 'pybal.log');
    writeFileSync(path, '2026-12-03 10:00:00.000 [ipvs] INFO: IPVS: edit server A weight 7\n');
    const tail = new LogTail(path);
    appendFileSync(path, '2026-12-03 10:00:01.000 [svc] INFO: Merged enabled server A, weight 7\n2026-12-03 10:00:02.250 [ipvs] INFO: IPVS: edit ');
    const found = tail.waitFor(/IPVS: edit server A/, 2000, 5);
    setTimeout(() => appendFileSync(path, 'server A weight 7\n'), 30);
    const { line, atMs } = await found;
    expect(line).toContain('10:00:02.250');
    expect(atMs).toBe(new Date(2026, 11, 3, 10, 0, 2, 250).getTime());
    await expect(tail.waitFor(/never/, 50, 5)).rejects.toThrow(/no log line matching/);
  });
});
