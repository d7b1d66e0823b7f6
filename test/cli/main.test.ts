/** The `pybal` executable's command line, run as operators run it. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const PYBAL = resolve('dist/src/cli/main.js');

function pybal(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [PYBAL, ...args], { encoding: 'utf8', timeout: 15_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('pybal command line', () => {
  it('prints help with PyBal-compatible flags', () => {
    const r = pybal('--help');
    expect(r.status).toBe(0);
    for (const flag of ['--config', '-c', '--dry-run', '-n', '--debug', '-d', '--log-file', '--log-format', 'check-config']) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toContain('/etc/pybal/pybal.conf');
  });

  it('prints the version from package.json', () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const r = pybal('--version');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  it('exits 2 on an unknown option, as PyBal', () => {
    const r = pybal('--bogus');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/Unknown argument: bogus/);
  });

  it('check-config accepts the shipped example', () => {
    const r = pybal('check-config', '-c', 'etc/pybal.conf.example');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^etc\/pybal\.conf\.example: OK: /);
  });

  it('check-config prints every mistake with its line and exits non-zero', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pybal-cli-'));
    const conf = join(dir, 'bad.conf');
    writeFileSync(
      conf,
      [
        '[global]',
        'bgp = maybe',
        '[text]',
        'protocol = tcp',
        'ip = 192.0.2.11',
        'port = 99999',
        'scheduler = fastest',
        'config = file:///etc/pybal/pools/text',
        "monitors = [ 'ProxyFetch' ]",
        '',
      ].join('\n'),
    );
    const r = pybal('check-config', '-c', conf);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`${conf}:2: bgp: `);
    expect(r.stdout).toContain(`${conf}:6: port: `);
    expect(r.stdout).toContain(`${conf}:7: scheduler: `);
    expect(r.stdout).toContain(`${conf}:3: proxyfetch.url: `);
  });

  it('check-config names a missing file', () => {
    const r = pybal('check-config', '-c', '/nonexistent/pybal.conf');
    expect(r.status).toBe(1);
    expect(r.stdout + r.stderr).toContain('/nonexistent/pybal.conf');
  });
});
