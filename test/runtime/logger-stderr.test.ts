/**
 * The log on standard error as well as in the file (`--log-stderr`, what the
 * unit sets so that `journalctl -u pybal` shows pybal's lines): the same
 * lines in both, and on the journal each with its syslog priority. Run in a
 * child process (the build's logger), whose standard error is a pipe that is
 * made to look like the journal by setting JOURNAL_STREAM to its device and inode.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'pybal-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(options: { file: string; alsoStderr: boolean; journal: boolean }): { stderr: string; file: string } {
  const script = `
    import { fstatSync } from 'node:fs';
    const { createLogger } = await import(${JSON.stringify(resolve('dist/src/runtime/logger.js'))});
    if (${options.journal}) { const s = fstatSync(2); process.env.JOURNAL_STREAM = s.dev + ':' + s.ino; }
    const h = await createLogger({ file: ${JSON.stringify(options.file)}, format: 'text', level: 'info', alsoStderr: ${options.alsoStderr} });
    h.logger.info('Started');
    h.logger.child({ service: 'web' }).warn('Server mw1 is down');
    h.logger.error('IPVS reconcile failed');
    await h.close();
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return { stderr: r.stderr, file: options.file === '-' ? '' : readFileSync(options.file, 'utf8') };
}
const strip = (text: string): string[] => text.split('\n').filter((l) => l !== '').map((l) => l.replace(/^(<\d>)?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /, '$1'));

describe('logging to standard error too', () => {
  it('the same lines in the file and on standard error', () => {
    const r = run({ file: join(dir, 'a.log'), alsoStderr: true, journal: false });
    expect(strip(r.file)).toEqual(['[pybal] INFO: Started', '[web] WARN: Server mw1 is down', '[pybal] ERROR: IPVS reconcile failed']);
    expect(strip(r.stderr)).toEqual(strip(r.file));
  });

  it('on the journal, each line starts with its syslog priority (6 info, 4 warning, 3 error); the file has none', () => {
    const r = run({ file: join(dir, 'b.log'), alsoStderr: true, journal: true });
    expect(strip(r.stderr)).toEqual(['<6>[pybal] INFO: Started', '<4>[web] WARN: Server mw1 is down', '<3>[pybal] ERROR: IPVS reconcile failed']);
    expect(r.file).not.toMatch(/</);
  });

  it('--log-file - under systemd: the journal gets the prefixed lines once', () => {
    const r = run({ file: '-', alsoStderr: false, journal: true });
    expect(strip(r.stderr)).toEqual(['<6>[pybal] INFO: Started', '<4>[web] WARN: Server mw1 is down', '<3>[pybal] ERROR: IPVS reconcile failed']);
  });

  it('without --log-stderr, standard error stays quiet', () => {
    const r = run({ file: join(dir, 'c.log'), alsoStderr: false, journal: true });
    expect(r.stderr).toBe('');
    expect(strip(r.file)).toHaveLength(3);
  });
});
