/** The `pybal` executable's command line, run as operators run it. */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertFreshBuild } from '../support/fresh-build.js';
import { testDir } from '../support/temp-dir.js';

const PYBAL = resolve('dist/cli/pybal.js');

beforeAll(() => assertFreshBuild(['src/cli', 'src/config']));

/** A valid configuration with `count` services: its --print output is far larger than a pipe's buffer. */
function manyServices(count: number): string {
  const lines = ['[global]', 'bgp = no', ''];
  for (let i = 0; i < count; i++) {
    lines.push(`[svc_${i}]`, 'protocol = tcp', `ip = 192.0.2.${(i % 250) + 1}`, `port = ${1000 + i}`, 'scheduler = wrr');
    lines.push(`config = file:///etc/pybal/pools/svc_${i}`, "monitors = [ 'IdleConnection' ]", '');
  }
  return lines.join('\n');
}

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
    const dir = testDir('pybal-cli-');
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

  it('check-config refuses a FIFO at once instead of waiting for a writer', () => {
    const dir = testDir('pybal-cli-');
    const fifo = join(dir, 'pybal.conf');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const start = Date.now();
    const r = pybal('check-config', '-c', fifo);
    expect(Date.now() - start).toBeLessThan(5000);
    expect(r.stdout.split('\n')[0]).toBe(`${fifo}: cannot read the configuration: not a regular file (a FIFO)`);
    expect(r.status).toBe(1);
  });

  it('check-config exits non-zero on a configuration with no services', () => {
    const dir = testDir('pybal-cli-');
    const conf = join(dir, 'pybal.conf');
    writeFileSync(conf, '[global]\nbgp = no\n');
    const r = pybal('check-config', '-c', conf);
    expect(r.stdout).toContain(`${conf}: no services are defined`);
    expect(r.status).toBe(1);
  });

  it('check-config --print stops quietly when its reader goes away (| head -1), keeping its exit status', async () => {
    const dir = testDir('pybal-cli-');
    const conf = join(dir, 'pybal.conf');
    writeFileSync(conf, manyServices(2000));
    const child = spawn(process.execPath, [PYBAL, 'check-config', '--print', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    let first = '';
    child.stdout.setEncoding('utf8').once('data', (t: string) => {
      first = t;
      child.stdout.destroy(); // as head(1) exits after its first line
    });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done) => child.on('close', (c, s) => done([c, s])));
    expect(first).toMatch(/^; .*: OK: 2000 services/);
    expect(stderr).toBe('');
    expect(signal).toBeNull();
    expect(code).toBe(0);
  });

  it('check-config keeps exit status 1 for an invalid file when its reader goes away', async () => {
    const dir = testDir('pybal-cli-');
    const conf = join(dir, 'pybal.conf');
    // Every service is a duplicate of the first: thousands of error lines.
    writeFileSync(conf, manyServices(2000).replace(/port = \d+/g, 'port = 80').replace(/ip = [\d.]+/g, 'ip = 192.0.2.1'));
    const child = spawn(process.execPath, [PYBAL, 'check-config', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
    expect(stderr).toBe('');
    expect(code).toBe(1);
  });
});

describe('skipHelpCache (start-up time, issue 14)', () => {
  type Usage = { hasCachedHelpMessage(): boolean };
  const usageOf = (parser: object): Usage => (parser as { getInternalMethods(): { getUsageInstance(): Usage } }).getInternalMethods().getUsageInstance();

  it("finds yargs' help cache in the installed yargs, and a command then runs without rendering its help", async () => {
    const { default: yargs } = await import('yargs');
    const { skipHelpCache } = await import('../../src/cli/main.js');
    const ran: string[] = [];
    const build = (): ReturnType<typeof yargs> => yargs(['x']).command('x', 'the x command', (y) => y.option('o', { type: 'string' }), () => void ran.push('x'));
    // What yargs does by itself: the whole help of `x`, rendered before its handler runs.
    const plain = build();
    await plain.parseAsync();
    expect(usageOf(plain).hasCachedHelpMessage()).toBe(true);
    const spared = build();
    expect(skipHelpCache(spared)).toBe(true);
    await spared.parseAsync();
    expect(ran).toEqual(['x', 'x']);
    expect(usageOf(spared).hasCachedHelpMessage()).toBe(false);
    // Help is still there when asked for.
    expect(await spared.getHelp()).toContain('the x command');
  });
});
