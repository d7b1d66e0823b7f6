/**
 * `npm run package` as an operator gets it: the .deb is built from the build
 * in dist/, its control fields, files and conffiles are what Debian expects,
 * the program in it runs from where it is installed (its dependencies, the
 * netlink binding and the sockmark, memtrim, tcpcheck and v8heap addons inside), the man pages render without a warning and
 * document every key and command pybal knows, and lintian (when installed,
 * as test/debian-packages.txt asks) finds nothing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GLOBAL_KEYS, SERVICE_KEYS } from '../../src/config/keys.js';
import { commandsFromHelp } from '../../packaging/commands.js';

const out = mkdtempSync(join(tmpdir(), 'pybal-deb-test-'));
const root = join(out, 'root');
/** The package's path, once built. */
const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
let deb = '';
const sh = (cmd: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv } = {}): string => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
const hasCommand = (name: string): boolean => spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;

afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('the Debian package', () => {
  beforeAll(() => {
    deb = execFileSync(process.execPath, [resolve('dist/packaging/build-deb.js')], { encoding: 'utf8', env: { ...process.env, PYBAL_DEB_OUT_DIR: out } }).trim();
    sh('dpkg-deb', ['-x', deb, root]);
  }, 120_000);

  it('is named and described as Debian expects, depending on a Node.js that runs pybal', () => {
    const arch = sh('dpkg', ['--print-architecture']).trim();
    expect(deb).toBe(join(out, `pybal_${version}_${arch}.deb`));
    const field = (name: string): string => sh('dpkg-deb', ['-f', deb, name]).trim();
    expect(field('Package')).toBe('pybal');
    expect(field('Version')).toBe(version);
    expect(field('Architecture')).toBe(arch);
    expect(field('Depends')).toMatch(/^nodejs \(>= 20\), libc6 \(>= [\d.]+\), adduser, ipvsadm, kmod$/);
    // Node's own major version here satisfies it.
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(20);
  });

  it('holds the program, the unit, logrotate, the example, man pages, completion and copyright; /etc files are conffiles', () => {
    const files = sh('dpkg-deb', ['-c', deb])
      .split('\n')
      .map((l) => l.split(/\s+/).at(-1)?.replace(/^\./, ''))
      .filter((p): p is string => p !== undefined && p !== '');
    for (const path of [
      '/usr/sbin/pybal',
      '/usr/lib/pybal/dist/cli/pybal.js',
      '/usr/lib/pybal/dist/cli/locales/en.json',
      '/usr/lib/pybal/dist/cli/bfd-worker.js',
      '/usr/lib/pybal/dist/cli/bgp-worker.js',
      '/usr/lib/pybal/dist/cli/check-worker.js',
      '/usr/lib/pybal/dist/native/sockmark.node',
      '/usr/lib/pybal/dist/native/memtrim.node',
      '/usr/lib/pybal/dist/native/tcpcheck.node',
      '/usr/lib/pybal/dist/native/v8heap.node',
      '/usr/lib/pybal/package.json',
      '/lib/systemd/system/pybal.service',
      '/etc/logrotate.d/pybal',
      '/etc/pybal/pybal.conf.example',
      '/etc/pybal/pools/',
      '/usr/share/man/man8/pybal.8.gz',
      '/usr/share/man/man5/pybal.conf.5.gz',
      '/usr/share/bash-completion/completions/pybal',
      '/usr/share/doc/pybal/copyright',
    ]) {
      expect(files, path).toContain(path);
    }
    // The daemon is in the bundle (its chunk, main-<hash>.js), and tsc's unbundled output is not shipped.
    expect(files.filter((f) => /^\/usr\/lib\/pybal\/dist\/cli\/main-\w+\.js$/.test(f))).toHaveLength(1);
    // No unbundled build, test, benchmark, packaging code, source map or esbuild record, no development dependency.
    expect(files.filter((f) => /^\/usr\/lib\/pybal\/dist\/(src|test|bench|packaging)\//.test(f) || f.endsWith('.map') || f.endsWith('/meta.json'))).toEqual([]);
    expect(files.filter((f) => /\/node_modules\/(vitest|typescript|@types)\//.test(f))).toEqual([]);
    const conffiles = sh('sh', ['-c', `dpkg-deb --ctrl-tarfile '${deb}' | tar -xO ./conffiles`]);
    expect(conffiles.trim().split('\n')).toEqual(['/etc/logrotate.d/pybal', '/etc/pybal/pybal.conf.example']);
    const unit = readFileSync(join(root, 'lib/systemd/system/pybal.service'), 'utf8');
    expect(unit).toContain('ExecStart=/usr/sbin/pybal --config /etc/pybal/pybal.conf');
    expect(unit).toContain('ConditionPathExists=/etc/pybal/pybal.conf');
    // As PyBal's unit: back after a crash and after a SIGTERM by hand; only `systemctl stop` keeps it down.
    expect(unit).toMatch(/^Restart=always$/m);
    const wrapper = readFileSync(join(root, 'usr/sbin/pybal'), 'utf8');
    expect(wrapper).toContain('exec /usr/bin/node --max-semi-space-size=2 /usr/lib/pybal/dist/cli/pybal.js "$@"');
    // With the daemon's environment (src/cli/node-options.ts): two malloc arenas, unless the operator's unit says otherwise.
    const arenas = (env: NodeJS.ProcessEnv): string =>
      sh('sh', ['-c', `${wrapper.replace(/^exec .*$/m, '')}\necho "$MALLOC_ARENA_MAX"`], { env: { PATH: process.env.PATH, ...env } }).trim();
    expect(arenas({})).toBe('2');
    expect(arenas({ MALLOC_ARENA_MAX: '4' })).toBe('4');
  });

  it('runs from where it is installed: --version, check-config of its example, and its netlink binding loads', () => {
    const main = join(root, 'usr/lib/pybal/dist/cli/pybal.js');
    expect(sh(process.execPath, [main, '--version']).trim()).toBe(version);
    const check = spawnSync(process.execPath, [main, 'check-config', '-c', join(root, 'etc/pybal/pybal.conf.example')], { encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/: OK: 6 services/);
    const load = spawnSync(process.execPath, ['--input-type=module', '-e', "const m = await import('netlink'); if (Object.keys(m).length === 0) process.exit(3)"], {
      cwd: join(root, 'usr/lib/pybal'),
      encoding: 'utf8',
    });
    expect(load.status, load.stderr).toBe(0);
    // The bundled program finds what it leaves outside: netlink (pybal ipvs: a table, or no IPVS in
    // this kernel, never a missing module); the daemon, bundled, starts and stops on the missing file.
    const ipvs = spawnSync(process.execPath, [main, 'ipvs'], { encoding: 'utf8' });
    expect(ipvs.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find/);
    if (ipvs.status !== 0) expect(ipvs.stderr).toMatch(/^pybal ipvs: /);
    // The sockmark addon (data-path checks), stripped, where src/monitors/marked-socket.ts finds it: below pybal's package.json.
    const sockmark = join(root, 'usr/lib/pybal/dist/native/sockmark.node');
    expect(sh('file', ['-b', sockmark])).toMatch(/^ELF .*shared object.*, stripped$/m);
    const marked = spawnSync(process.execPath, ['-e', `const a = require(${JSON.stringify(sockmark)}); console.log(a.getMark(a.openSocket(4, 'udp', 0x77)))`], { encoding: 'utf8' });
    expect(marked.stdout.trim(), marked.stderr).toBe('119');
    // The memtrim addon (the C heap's trims), stripped, beside it: it reads the heap and trims it.
    const memtrim = join(root, 'usr/lib/pybal/dist/native/memtrim.node');
    expect(sh('file', ['-b', memtrim])).toMatch(/^ELF .*shared object.*, stripped$/m);
    const trimmed = spawnSync(process.execPath, ['-e', `const a = require(${JSON.stringify(memtrim)}); a.trim().then((r) => console.log(typeof r, a.stats().inUseBytes > 0))`], { encoding: 'utf8' });
    expect(trimmed.stdout.trim(), trimmed.stderr).toBe('boolean true');
    // The tcpcheck addon (ProxyFetch's connections), stripped, beside them: a connect to a closed port is refused.
    const tcpcheck = join(root, 'usr/lib/pybal/dist/native/tcpcheck.node');
    expect(sh('file', ['-b', tcpcheck])).toMatch(/^ELF .*shared object.*, stripped$/m);
    const refused = spawnSync(
      process.execPath,
      [
        '-e',
        `const a = require(${JSON.stringify(tcpcheck)});
        a.init((id, event, value) => { console.log(event === a.EVENT_CONNECT_ERROR, require('node:util').getSystemErrorName(value)); a.close(id); }, Buffer.alloc(1024));
        const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { const port = s.address().port; s.close(() => a.open('127.0.0.1', port, 4, Buffer.from('GET /'))); });`,
      ],
      { encoding: 'utf8', timeout: 10_000 },
    );
    expect(refused.stdout.trim(), refused.stderr).toBe('true ECONNREFUSED');
    // The v8heap addon (the main thread's heap sized for memory), stripped, beside them: it loads and does it.
    const v8heap = join(root, 'usr/lib/pybal/dist/native/v8heap.node');
    expect(sh('file', ['-b', v8heap])).toMatch(/^ELF .*shared object.*, stripped$/m);
    const preferred = spawnSync(process.execPath, ['-e', `console.log(require(${JSON.stringify(v8heap)}).preferMemory())`], { encoding: 'utf8', timeout: 10_000 });
    expect(preferred.stdout.trim(), preferred.stderr).toBe('true');
    const daemon = spawnSync(process.execPath, [main, '-c', join(root, 'no-such.conf'), '--log-file', '-'], { encoding: 'utf8', timeout: 20_000 });
    expect(daemon.status, daemon.stderr).toBe(1);
    expect(daemon.stderr).toMatch(/no-such\.conf: cannot read the configuration/);
  });

  const man = (path: string): string => gunzipSync(readFileSync(join(root, path))).toString('utf8');

  it('has man pages that groff renders without a warning', () => {
    for (const page of ['usr/share/man/man8/pybal.8.gz', 'usr/share/man/man5/pybal.conf.5.gz']) {
      const r = spawnSync('groff', ['-ww', '-z', '-man'], { input: man(page), encoding: 'utf8' });
      expect(r.status, page).toBe(0);
      expect(r.stderr, page).toBe('');
    }
  });

  it('pybal.conf(5) documents every key pybal knows; pybal(8) every command it has', () => {
    const conf = man('usr/share/man/man5/pybal.conf.5.gz').replaceAll('\\-', '-');
    for (const key of [...GLOBAL_KEYS, ...SERVICE_KEYS]) expect(conf, key).toMatch(new RegExp(`^\\.B ${key.replace(/[.]/g, '\\.')}$`, 'm'));
    const help = sh(process.execPath, [resolve('dist/cli/pybal.js'), '--help']);
    const commands = commandsFromHelp(help).map((c) => c.synopsis);
    expect(commands).toContain('pybal check-config');
    const page = man('usr/share/man/man8/pybal.8.gz').replaceAll('\\-', '-');
    for (const c of commands) expect(page, c).toContain(`.B ${c}`);
  });

  it('its bash completion parses and offers every command', () => {
    const path = join(root, 'usr/share/bash-completion/completions/pybal');
    expect(spawnSync('bash', ['-n', path]).status).toBe(0);
    const offered = /local commands="([^"]+)"/.exec(readFileSync(path, 'utf8'))?.[1]?.split(' ') ?? [];
    const help = sh(process.execPath, [resolve('dist/cli/pybal.js'), '--help']);
    for (const c of commandsFromHelp(help)) expect(offered, c.synopsis).toContain(c.synopsis.split(' ')[1]);
  });

  it('its maintainer scripts are valid sh', () => {
    for (const script of ['postinst', 'prerm', 'postrm']) expect(spawnSync('sh', ['-n', resolve('packaging/deb', script)]).status, script).toBe(0);
  });

  it.runIf(hasCommand('lintian'))('lintian finds no error and no warning', () => {
    const r = spawnSync('lintian', ['--no-tag-display-limit', deb], { encoding: 'utf8' });
    expect(r.stdout.split('\n').filter((l) => /^[EW]: /.test(l))).toEqual([]);
  });
});
