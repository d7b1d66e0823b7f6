/**
 * `npm run package`: the Debian package of pybal, from the build in dist/.
 *
 *   /usr/lib/pybal/           the program (dist/cli: `pybal` bundled, the daemon included;
 *                             packaging/bundle-cli.ts), its addons dist/native/sockmark.node (marked
 *                             sockets for data-path checks), memtrim.node (the C heap's free pages
 *                             back to the kernel), tcpcheck.node (ProxyFetch's connections) and
 *                             v8heap.node (the main thread's heap sized for memory;
 *                             packaging/build-native.ts), package.json
 *                             and the production node_modules (netlink and ssh2 are loaded from
 *                             there; the rest for their licenses)
 *   /usr/sbin/pybal           runs it with Debian's node
 *   /lib/systemd/system/pybal.service, /etc/logrotate.d/pybal
 *   /etc/pybal/pybal.conf.example, /etc/pybal/pools/   (conffiles: never overwritten)
 *   /usr/share/man/man8/pybal.8.gz, man5/pybal.conf.5.gz, bash completion, copyright, changelog
 *
 * The production dependencies are copied from node_modules as `npm ls
 * --omit=dev` lists them (no download), with only this architecture's
 * prebuilt netlink binding. Writes build/pybal_VERSION_ARCH.deb (or
 * PYBAL_DEB_OUT_DIR) and prints its path.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { NATIVE_ADDONS } from './build-native.js';
import { DAEMON_ENV, DAEMON_NODE_OPTIONS } from '../src/cli/node-options.js';
import { commandsFromHelp } from './commands.js';
import { confManPage, pybalManPage } from './man.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = (cmd: string, args: readonly string[], cwd = root): string => execFileSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });

const MAINTAINER = 'pybal maintainers <pybal-maintainers@example.org>';

/** dpkg's name for this machine's architecture, and Node's for the netlink prebuilds. */
const NODE_ARCH: Record<string, string> = { amd64: 'x64', arm64: 'arm64', armhf: 'arm', i386: 'ia32' };

export function buildDeb(outDir: string): string {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; description?: string; engines?: { node?: string } };
  const version = pkg.version;
  const arch = run('dpkg', ['--print-architecture']).trim();
  const nodeArch = NODE_ARCH[arch];
  if (nodeArch === undefined) throw new Error(`no netlink prebuild for ${arch}`);
  const main = join(root, 'dist/cli/pybal.js');
  if (!existsSync(main)) throw new Error('dist/cli/pybal.js is missing: run `npm run build` first');
  for (const { addon } of NATIVE_ADDONS) {
    if (!existsSync(join(root, addon))) throw new Error(`${addon} is missing: run \`npm run build\` first`);
  }
  // Reproducible: the date of the last commit, not now.
  const epoch = Number(run('git', ['log', '-1', '--format=%ct']).trim() || '0');
  const date = new Date(epoch * 1000);
  const day = date.toISOString().slice(0, 10);

  const stage = mkdtempSync(join(tmpdir(), 'pybal-deb-'));
  chmodSync(stage, 0o755);
  try {
    const put = (path: string, content: string | Buffer, mode = 0o644): void => {
      const full = join(stage, path);
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, content);
      chmodSync(full, mode);
    };
    const lib = join(stage, 'usr/lib/pybal');
    mkdirSync(lib, { recursive: true });
    // The bundled program, without esbuild's record of its inputs (packaging/bundle-cli.ts); it needs nothing of dist/src/.
    cpSync(join(root, 'dist/cli'), join(lib, 'dist/cli'), { recursive: true, filter: (src) => !src.endsWith('/meta.json') });
    // Where src/runtime/native-addon.ts looks for them: below the package.json written next.
    for (const { addon } of NATIVE_ADDONS) cpSync(join(root, addon), join(lib, addon));
    put('usr/lib/pybal/package.json', JSON.stringify({ name: 'pybal', version, type: 'module', private: true }, null, 2) + '\n');

    // Production dependencies, each package once, without its own nested node_modules (listed separately).
    // netlink lists type definitions and the headers it was built with as dependencies, and
    // ssh2 an optional native CPU probe that builds from source (it runs without it): not shipped.
    const paths = run('npm', ['ls', '--omit=dev', '--all', '--parseable'])
      .split('\n')
      .filter((p) => p !== '' && p !== root && !/\/node_modules\/(@types\/[^/]+|node-addon-api|nan|cpu-features)$/.test(p));
    for (const path of paths) {
      const target = join(lib, relative(root, path));
      cpSync(path, target, {
        recursive: true,
        filter: (src) => {
          const rel = relative(path, src);
          if (rel.startsWith('node_modules')) return false;
          // netlink: this architecture's prebuilt binding only.
          const prebuild = /^prebuilds\/([^/]+)/.exec(rel);
          if (prebuild && prebuild[1] !== `linux-${nodeArch}`) return false;
          // Their documentation, tests and dotfiles stay out; their licenses stay in.
          if (/(^|\/)LICEN[CS]E/i.test(rel)) return true;
          return !/(^|\/)(\.[^/]+|test|tests|benchmarks?|docs?|examples?|[^/]+\.(md|html|ts|map|sh))$/.test(rel);
        },
      });
    }

    // Scripts (#!) executable, every other file plain, in our build as in node_modules (npm keeps
    // whatever modes the files had); the addons stripped.
    for (const dir of ['dist', 'node_modules']) walk(join(lib, dir), (path) => chmodSync(path, readFileSync(path).subarray(0, 2).toString() === '#!' ? 0o755 : 0o644));
    for (const addon of [`node_modules/netlink/prebuilds/linux-${nodeArch}/node.napi.node`, ...NATIVE_ADDONS.map((a) => a.addon)]) execFileSync('strip', ['--strip-unneeded', join(lib, addon)]);

    put(
      'usr/sbin/pybal',
      [
        '#!/bin/sh',
        "# pybal, as installed by its Debian package: the program runs with Debian's node.",
        ...Object.entries(DAEMON_ENV).map(([name, value]) => `export ${name}="\${${name}:-${value}}"`),
        `exec /usr/bin/node ${DAEMON_NODE_OPTIONS.join(' ')} /usr/lib/pybal/dist/cli/pybal.js "$@"`,
        '',
      ].join('\n'),
      0o755,
    );
    put('lib/systemd/system/pybal.service', readFileSync(join(root, 'etc/pybal.service'), 'utf8'));
    put('etc/logrotate.d/pybal', readFileSync(join(root, 'etc/logrotate.d/pybal'), 'utf8'));
    put('etc/pybal/pybal.conf.example', readFileSync(join(root, 'etc/pybal.conf.example'), 'utf8'));
    mkdirSync(join(stage, 'etc/pybal/pools'), { recursive: true });

    const help = run('node', [main, '--help']);
    put('usr/share/man/man8/pybal.8.gz', gzipSync(pybalManPage(version, day, commandsFromHelp(help)), { level: 9 }));
    put('usr/share/man/man5/pybal.conf.5.gz', gzipSync(confManPage(readFileSync(join(root, 'etc/pybal.conf.example'), 'utf8'), version, day), { level: 9 }));
    put('usr/share/bash-completion/completions/pybal', readFileSync(join(root, 'packaging/completion/pybal'), 'utf8'));
    put('usr/share/doc/pybal/copyright', readFileSync(join(root, 'packaging/deb/copyright'), 'utf8'));
    const changelog = `pybal (${version}) unstable; urgency=medium\n\n  * Built from the pybal repository; see README.md.\n\n -- ${MAINTAINER}  ${date.toUTCString().replace('GMT', '+0000')}\n`;
    put('usr/share/doc/pybal/changelog.gz', gzipSync(changelog, { level: 9 }));

    // Control files.
    const installedKb = Math.ceil(sizeOf(stage) / 1024);
    const control = [
      'Package: pybal',
      `Version: ${version}`,
      `Architecture: ${arch}`,
      `Maintainer: ${MAINTAINER}`,
      `Installed-Size: ${installedKb}`,
      // libc6: the netlink, sockmark and memtrim addons link it; adduser: the postinst creates the pybal user.
      'Depends: nodejs (>= 20), libc6 (>= 2.17), adduser, ipvsadm, kmod',
      // fping: the Ping monitor; iputils-arping: data-path checks' ARP watch (docs/arp-theft.md).
      'Recommends: fping, iputils-arping, logrotate',
      'Section: net',
      'Priority: optional',
      'Homepage: https://wikitech.wikimedia.org/wiki/PyBal',
      'Description: load-balancer control daemon for Linux LVS directors',
      ' pybal keeps the kernel\'s IPVS table as its configuration and pool files',
      ' say: it health-checks every real server, pools and depools them under a',
      ' depool threshold, programs IPVS over generic netlink, and announces each',
      ' service IP to the routers with its own BGP speaker (with BFD and graceful',
      ' restart). It reads PyBal\'s configuration unchanged.',
      '',
    ].join('\n');
    put('DEBIAN/control', control);
    put('DEBIAN/conffiles', ['/etc/logrotate.d/pybal', '/etc/pybal/pybal.conf.example', ''].join('\n'));
    for (const script of ['postinst', 'prerm', 'postrm']) put(`DEBIAN/${script}`, readFileSync(join(root, 'packaging/deb', script), 'utf8'), 0o755);
    put('DEBIAN/md5sums', md5sums(stage));

    mkdirSync(outDir, { recursive: true });
    const deb = join(outDir, `pybal_${version}_${arch}.deb`);
    execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', stage, deb], { env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch) }, stdio: ['ignore', 'ignore', 'inherit'] });
    return deb;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

function walk(dir: string, visit: (path: string) => void): void {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const s = statSync(path);
    if (s.isDirectory()) walk(path, visit);
    else visit(path);
  }
}

function sizeOf(dir: string): number {
  let total = 0;
  walk(dir, (p) => (total += statSync(p).size));
  return total;
}

function md5sums(stage: string): string {
  const lines: string[] = [];
  walk(stage, (path) => {
    const rel = relative(stage, path);
    if (rel.startsWith('DEBIAN/') || rel.startsWith('etc/')) return;
    lines.push(`${createHash('md5').update(readFileSync(path)).digest('hex')}  ${rel}`);
  });
  return lines.join('\n') + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(buildDeb(process.env.PYBAL_DEB_OUT_DIR ?? join(root, 'build')));
}
