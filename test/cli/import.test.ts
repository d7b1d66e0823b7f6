/** `pybal import`, run as an operator runs it: the built command line, real files. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertFreshBundle } from '../support/fresh-build.js';
import { testDir } from '../support/temp-dir.js';

const PYBAL = resolve('dist/cli/pybal.js');

/** These tests run the build: fail at once, saying why, when it is older than the source it tests. */
beforeAll(() => {
  for (const dir of ['src/cli', 'src/import', 'src/config']) {
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
      const built = join('dist', dir, name.replace(/\.ts$/, '.js'));
      const builtMs = existsSync(built) ? statSync(built).mtimeMs : 0;
      if (builtMs < statSync(join(dir, name)).mtimeMs) throw new Error(`${built} is older than ${dir}/${name}: run \`npm run build\` first`);
    }
  }
  assertFreshBundle();
});

function pybal(cwd: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [PYBAL, ...args], { cwd, encoding: 'utf8', timeout: 15_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function scratch(files: Record<string, string>): string {
  const dir = testDir('pybal-import-');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const KEEPALIVED = `global_defs {
  router_id lvs1
}
virtual_server 192.0.2.1 80 {
  delay_loop 5
  lb_algo wrr
  lb_kind DR
  include conf.d/*.conf
}
`;

const realServer = (ip: string, weight: number): string =>
  `real_server ${ip} 80 {\n  weight ${weight}\n  HTTP_GET {\n    url {\n      path /health\n      digest 0123456789abcdef\n    }\n    connect_timeout 2\n  }\n}\n`;

const LDIRECTORD = 'checkinterval=5\nvirtual=192.0.2.1:80\n\treal=192.0.2.7:80 gate 3\n\treal=192.0.2.8:80 gate\n\trequest="ok.html"\n\treceive="OK"\n';

describe('pybal import', () => {
  it('converts a keepalived.conf and its includes into pybal.conf and pool files, and says what it did', () => {
    const dir = scratch({ 'etc/keepalived.conf': KEEPALIVED, 'etc/conf.d/a.conf': realServer('192.0.2.7', 3), 'etc/conf.d/b.conf': realServer('192.0.2.8', 1), 'etc/conf.d/b.txt': 'not included' });
    const r = pybal(dir, 'import', 'etc/keepalived.conf', '--out', 'out', '--pool-dir', '/srv/pybal/pools');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      'etc/keepalived.conf (keepalived): 1 service, 2 servers, 5 comments -> out/pybal.conf, 1 pool file in out/pools',
      '  [http_80] 2 servers, 4 comments',
      'the pool files belong in /srv/pybal/pools on the director (config = file:///srv/pybal/pools/NAME)',
      'pybal check-config: out/pybal.conf: OK',
      '',
    ]);
    const conf = readFileSync(join(dir, 'out/pybal.conf'), 'utf8');
    expect(conf).toContain('config = file:///srv/pybal/pools/http_80\n');
    expect(conf).toContain('proxyfetch.url = [ \'http://192.0.2.1/health\' ]\n');
    expect(conf).toContain('# etc/keepalived.conf:1-3: global_defs: ');
    expect(conf).toContain('# etc/conf.d/a.conf:6: digest (MD5 of the page) has no pybal equivalent');
    expect(conf).toContain('# etc/conf.d/b.conf:6: digest (MD5 of the page) has no pybal equivalent');
    expect(readFileSync(join(dir, 'out/pools/http_80'), 'utf8').split('\n').filter((l) => l.startsWith('{'))).toEqual([
      "{ 'host': '192.0.2.7', 'weight': 3, 'enabled': True }",
      "{ 'host': '192.0.2.8', 'weight': 1, 'enabled': True }",
    ]);
    // What it wrote is what check-config reads.
    const check = pybal(dir, 'check-config', '-c', 'out/pybal.conf');
    expect(check.status).toBe(0);
  });

  it('tells ldirectord.cf from its contents (whatever its name), or takes --from', () => {
    const dir = scratch({ 'director.txt': LDIRECTORD, 'empty.txt': '# nothing\n' });
    const r = pybal(dir, 'import', 'director.txt');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^director\.txt \(ldirectord\): 1 service, 2 servers, 0 comments -> pybal\.conf, 1 pool file in pools\n/);
    expect(readFileSync(join(dir, 'pybal.conf'), 'utf8')).toContain("proxyfetch.expect-body = OK\n");
    const unknown = pybal(dir, 'import', 'empty.txt', '--out', 'x');
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toBe("pybal import: empty.txt: cannot tell whether this is a keepalived.conf or an ldirectord.cf; say which with --from\n");
    const forced = pybal(dir, 'import', 'empty.txt', '--from', 'ldirectord', '--out', 'x');
    expect(forced.status).toBe(1);
    expect(forced.stderr).toBe('empty.txt: no virtual section to convert\npybal import: empty.txt (ldirectord): 1 error; nothing written\n');
  });

  it('refuses to overwrite files unless --force', () => {
    const dir = scratch({ 'ldirectord.cf': LDIRECTORD, 'out/pools/http_80': 'mine\n' });
    const r = pybal(dir, 'import', 'ldirectord.cf', '--out', 'out');
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('pybal import: refusing to overwrite out/pools/http_80 (use --force)\n');
    expect(existsSync(join(dir, 'out/pybal.conf'))).toBe(false);
    expect(readFileSync(join(dir, 'out/pools/http_80'), 'utf8')).toBe('mine\n');
    const forced = pybal(dir, 'import', 'ldirectord.cf', '--out', 'out', '--force');
    expect(forced.status).toBe(0);
    expect(readFileSync(join(dir, 'out/pools/http_80'), 'utf8')).toContain("'host': '192.0.2.7'");
  });

  it('exits 1 on a file it cannot read, and on one it cannot parse, naming file:line; nothing is written', () => {
    const dir = scratch({ 'keepalived.conf': 'virtual_server 192.0.2.1 80 {\n  lb_kind DR\n  real_server 192.0.2.7 80 {\n    weight many\n  }\n  include gone.conf\n' });
    const missing = pybal(dir, 'import', 'nope.conf');
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe('pybal import: nope.conf: no such file\n');
    const bad = pybal(dir, 'import', 'keepalived.conf', '--out', 'out');
    expect(bad.status).toBe(1);
    expect(bad.stderr.split('\n')).toEqual([
      'keepalived.conf:6: include gone.conf: no such file',
      "keepalived.conf:1: the block of virtual_server is never closed (missing '}')",
      'keepalived.conf:4: weight: expected an integer from 0 to 2147483647, got "many"',
      'pybal import: keepalived.conf (keepalived): 3 errors; nothing written',
      '',
    ]);
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('gives firewall-mark services the address of --fwmark-ip, and lists what is left to fill in', () => {
    const dir = scratch({ 'ldirectord.cf': 'virtual=1\n\treal=192.0.2.7 gate\n\tchecktype=ping\n\tprotocol=fwm\n\nvirtual=2\n\treal=192.0.2.7 gate\n\tchecktype=ping\n' });
    const given = pybal(dir, 'import', 'ldirectord.cf', '--out', 'a', '--fwmark-ip', '1=192.0.2.1');
    expect(given.status).toBe(0);
    expect(given.stdout).toContain('  [fwmark_1] 1 server, 0 comments; fill in port\n');
    expect(given.stdout).toContain('  [fwmark_2] 1 server, 0 comments; fill in ip, port\n');
    expect(readFileSync(join(dir, 'a/pybal.conf'), 'utf8')).toContain('[fwmark_1]\nprotocol = tcp\nip = 192.0.2.1\n');
    const bad = pybal(dir, 'import', 'ldirectord.cf', '--out', 'b', '--fwmark-ip', '1=not-an-address');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('pybal import: --fwmark-ip: expected [MARK=]ADDRESS, got "1=not-an-address"\n');
  });

  it('is in the help, with its options', () => {
    expect(pybal('.', '--help').stdout).toMatch(/pybal import <file>\s+convert a keepalived\.conf or an ldirectord\.cf/);
    const help = pybal('.', 'import', '--help');
    expect(help.status).toBe(0);
    for (const option of ['--from', '--out', '--pool-dir', '--fwmark-ip', '--force', 'keepalived', 'ldirectord', '/etc/pybal/pools']) expect(help.stdout).toContain(option);
    const usage = pybal('.', 'import');
    expect(usage.status).toBe(2);
  });
});
