// A clean Debian root booted with a real systemd as PID 1 in a User-Mode
// Linux guest, for test/packaging/systemd.test.ts:
//
//   1. debootstrap (bookworm, minbase, a few packages) into a cache outside
//      the checkout, keyed by what went into it, built once per machine;
//   2. a copy of it per run, where the host's node is installed as a local
//      `nodejs` package (pybal Depends: nodejs (>= 20); bookworm has 18), the
//      UML kernel's modules, the guest's units and the script to run;
//   3. UML booted on it over hostfs with init=systemd; the script runs as a
//      unit, writes its results to the root and powers the guest off.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, createWriteStream, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { GUEST_NO_AVX_ENV, UML_BINARY, UML_MODULES_DIR, repoRoot, shellQuote, umlKernelVersion, umlLauncher, umlTempDir } from '../lab/uml.js';

export const DEBIAN_SUITE = 'bookworm';
export const DEBIAN_MIRROR = process.env.PYBAL_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
/**
 * What the root holds beyond minbase: systemd as init with D-Bus (systemctl
 * as a non-root user, as pybal's restart probe runs it, needs the bus), what
 * pybal's package depends on (kmod, ipvsadm, adduser; libstdc++6 for node),
 * BIRD as the BGP peer, iproute2 for the namespaces, procps and curl for the
 * operator's look.
 */
export const ROOT_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'kmod', 'iproute2', 'ipvsadm', 'adduser', 'procps', 'bird2', 'curl', 'libstdc++6'] as const;
/** Where debootstrapped roots are kept between runs (PYBAL_TEST_CACHE overrides). */
export const ROOT_CACHE_DIR = process.env.PYBAL_TEST_CACHE ?? '/var/cache/pybal-test';

const log = (line: string): void => {
  process.stderr.write(`[systemd test] ${line}\n`);
};

/** Why this machine cannot run the test, or undefined when it can. */
export function cannotRunReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (debootstrap, chroot, dpkg -i into the root, files owned by root in it)';
  for (const tool of ['/usr/bin/dpkg', '/usr/sbin/chroot']) if (!existsSync(tool)) return `needs ${tool} (a Debian host)`;
  return undefined;
}

/**
 * The cached debootstrapped root for ROOT_PACKAGES, made now when missing
 * (about 1.5 minutes from deb.debian.org). Built beside and renamed, so that
 * a run that dies half way never leaves a half root in the cache.
 */
export function cachedDebianRoot(cacheDir = ROOT_CACHE_DIR): { root: string; built: boolean; ms: number } {
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  const recipe = JSON.stringify({ suite: DEBIAN_SUITE, mirror: DEBIAN_MIRROR, arch, variant: 'minbase', packages: ROOT_PACKAGES });
  const key = createHash('sha256').update(recipe).digest('hex').slice(0, 12);
  const root = join(cacheDir, `${DEBIAN_SUITE}-${arch}-${key}`);
  if (existsSync(join(root, '.pybal-test-complete'))) return { root, built: false, ms: 0 };
  if (!existsSync('/usr/sbin/debootstrap')) throw new Error('debootstrap is missing: apt-get install debootstrap (test/debian-packages.txt lists it)');
  mkdirSync(cacheDir, { recursive: true });
  const partial = `${root}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  log(`debootstrap ${DEBIAN_SUITE} (${ROOT_PACKAGES.join(',')}) from ${DEBIAN_MIRROR} into ${root}`);
  const started = Date.now();
  try {
    execFileSync('debootstrap', ['--variant=minbase', `--include=${ROOT_PACKAGES.join(',')}`, `--arch=${arch}`, DEBIAN_SUITE, partial, DEBIAN_MIRROR], {
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 256 << 20,
    });
  } catch (error) {
    const e = error as { stdout?: Buffer; stderr?: Buffer };
    const tail = `${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`.split('\n').slice(-30).join('\n');
    const debootstrapLog = join(partial, 'debootstrap', 'debootstrap.log');
    const more = existsSync(debootstrapLog) ? `\n--- ${debootstrapLog} ---\n${readFileSync(debootstrapLog, 'utf8').split('\n').slice(-30).join('\n')}` : '';
    throw new Error(`debootstrap failed:\n${tail}${more}`);
  }
  writeFileSync(join(partial, '.pybal-test-recipe'), recipe + '\n');
  writeFileSync(join(partial, '.pybal-test-complete'), '');
  try {
    renameSync(partial, root);
  } catch (error) {
    // Another run finished first: keep its root.
    if (!existsSync(join(root, '.pybal-test-complete'))) throw error;
    rmSync(partial, { recursive: true, force: true });
  }
  const ms = Date.now() - started;
  log(`debootstrap took ${(ms / 1000).toFixed(1)} s`);
  return { root, built: true, ms };
}

/**
 * A local Debian package named nodejs holding this machine's node binary
 * (the one running the tests, >= 20), so that pybal's `Depends: nodejs (>= 20)`
 * is met by dpkg itself in a bookworm root, whose own nodejs is 18. Only the
 * binary: pybal needs nothing else of it (no npm, no headers).
 */
export function buildNodejsPackage(outDir: string): string {
  const stage = join(outDir, 'nodejs-stage');
  mkdirSync(join(stage, 'usr', 'bin'), { recursive: true });
  mkdirSync(join(stage, 'DEBIAN'), { recursive: true });
  copyFileSync(process.execPath, join(stage, 'usr', 'bin', 'node'));
  chmodSync(join(stage, 'usr', 'bin', 'node'), 0o755);
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  writeFileSync(
    join(stage, 'DEBIAN', 'control'),
    [
      'Package: nodejs',
      `Version: ${process.versions.node}-0pybaltest1`,
      `Architecture: ${arch}`,
      'Maintainer: pybal tests <pybal-maintainers@example.org>',
      'Depends: libc6, libstdc++6, libgcc-s1',
      'Description: the test host\'s Node.js binary, for pybal\'s systemd test',
      ' /usr/bin/node copied from the machine that runs the tests.',
      '',
    ].join('\n'),
  );
  const deb = join(outDir, 'nodejs.deb');
  // Uncompressed: built and installed once per run, never shipped.
  execFileSync('dpkg-deb', ['--root-owner-group', '-Znone', '--build', stage, deb], { stdio: ['ignore', 'ignore', 'inherit'] });
  rmSync(stage, { recursive: true, force: true });
  return deb;
}

/** A unit file or config as lines. */
const lines = (...l: string[]): string => l.join('\n') + '\n';

/**
 * Makes `root` (a fresh copy of the cached root) bootable by UML with systemd
 * and ready for the guest script: node installed, the kernel's modules, the
 * test units, pybal's .deb at /pybal-test/debs/pybal.deb (the script
 * installs it on the running system).
 */
export function prepareRoot(root: string, cached: string, options: { pybalDeb: string; nodejsDeb: string; script: string }): void {
  execFileSync('cp', ['-a', cached, root]);
  const results = join(root, 'pybal-test');
  mkdirSync(join(results, 'debs'), { recursive: true });
  copyFileSync(options.pybalDeb, join(results, 'debs', 'pybal.deb'));
  copyFileSync(options.nodejsDeb, join(root, 'tmp', 'nodejs.deb'));
  execFileSync('chroot', [root, 'dpkg', '-i', '/tmp/nodejs.deb'], { stdio: ['ignore', 'pipe', 'pipe'] });
  rmSync(join(root, 'tmp', 'nodejs.deb'));

  // modprobe finds the UML kernel's modules where it always looks.
  const version = umlKernelVersion();
  mkdirSync(join(root, 'lib', 'modules'), { recursive: true });
  cpSync(join(UML_MODULES_DIR, version), join(root, 'lib', 'modules', version), { recursive: true });

  // Every program stays off AVX (see GUEST_NO_AVX_ENV in uml.ts): systemd
  // itself through a wrapper init, the services through DefaultEnvironment,
  // the modprobe the kernel runs to load a module on demand (an IPVS
  // scheduler, veth) through a wrapper named in kernel.modprobe.
  const exports = Object.entries(GUEST_NO_AVX_ENV).map(([k, v]) => `export ${k}=${shellQuote(v)}`);
  const write = (path: string, content: string, mode = 0o644): void => {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), content);
    chmodSync(join(root, path), mode);
  };
  write('sbin/pybal-test-init', lines('#!/bin/sh', ...exports, 'exec /lib/systemd/systemd "$@"'), 0o755);
  write('sbin/pybal-test-modprobe', lines('#!/bin/sh', ...exports, 'exec /sbin/modprobe "$@"'), 0o755);
  write('etc/sysctl.d/50-pybal-test.conf', lines('kernel.modprobe = /sbin/pybal-test-modprobe'));
  write(
    'etc/systemd/system.conf.d/pybal-test.conf',
    lines('[Manager]', `DefaultEnvironment=${Object.entries(GUEST_NO_AVX_ENV).map(([k, v]) => `"${k}=${v}"`).join(' ')}`),
  );
  // /tmp private to the guest (PrivateTmp= works on hostfs too, but keep the root clean).
  write('etc/fstab', lines('tmpfs /tmp tmpfs mode=1777 0 0'));
  write('etc/hostname', lines('pybal-systemd-test'));
  // What UML has no use for: binfmt_misc fails to mount there; timers that could fire mid-test.
  for (const unit of ['systemd-binfmt.service', 'proc-sys-fs-binfmt_misc.automount', 'proc-sys-fs-binfmt_misc.mount', 'apt-daily.timer', 'apt-daily-upgrade.timer', 'dpkg-db-backup.timer', 'e2scrub_all.timer', 'fstrim.timer']) {
    const path = join(root, 'etc', 'systemd', 'system', unit);
    rmSync(path, { force: true });
    symlinkSync('/dev/null', path);
  }
  // The boot's target: the basic system and the test script, nothing else
  // (no getty, no bird.service: the script runs its own BIRD).
  write('etc/systemd/system/pybal-test.target', lines('[Unit]', 'Description=pybal systemd test', 'Requires=basic.target pybal-test.service', 'After=basic.target', 'AllowIsolate=yes'));
  write(
    'etc/systemd/system/pybal-test.service',
    lines(
      '[Unit]',
      'Description=pybal systemd test script',
      'After=basic.target',
      '[Service]',
      'Type=exec',
      'ExecStart=/usr/local/sbin/pybal-systemd-test',
      'StandardOutput=journal+console',
      'StandardError=journal+console',
    ),
  );
  write('usr/local/sbin/pybal-systemd-test', readFileSync(options.script, 'utf8'), 0o755);
}

export type BootResult = { timedOut: boolean; consolePath: string; durationMs: number };

/** Boots UML on `root` with systemd as init until it powers off (or the deadline). */
export async function bootSystemd(root: string, scratch: string, options: { timeoutMs: number; memMb?: number }): Promise<BootResult> {
  if (!existsSync(UML_BINARY)) throw new Error(`${UML_BINARY} missing; install the user-mode-linux Debian package`);
  const memMb = options.memMb ?? 1536;
  const consolePath = join(scratch, 'console.log');
  const console = createWriteStream(consolePath);
  const started = Date.now();
  const child = spawn(
    umlLauncher(repoRoot()),
    [
      UML_BINARY,
      `mem=${memMb}M`,
      'root=/dev/root', 'rootfstype=hostfs', `rootflags=${root}`, 'rw',
      'init=/sbin/pybal-test-init', 'systemd.unit=pybal-test.target',
      'con=null', 'con0=null,fd:1', `uml_dir=${scratch}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch, TMPDIR: umlTempDir(memMb) } },
  );
  child.stdout.pipe(console, { end: false });
  child.stderr.pipe(console, { end: false });
  const killGroup = (): void => {
    try {
      process.kill(-(child.pid ?? 0), 'SIGKILL');
    } catch {
      // gone
    }
  };
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, options.timeoutMs);
  process.once('exit', killGroup);
  await new Promise<void>((done) => child.once('close', () => done()));
  clearTimeout(timer);
  process.removeListener('exit', killGroup);
  killGroup();
  await new Promise<void>((done) => console.end(done));
  return { timedOut, consolePath, durationMs: Date.now() - started };
}

/** One step of the guest script: its exit status (null when it never ran) and output. */
export type Step = { rc: number | null; out: string };

export function readStep(root: string, name: string): Step {
  const dir = join(root, 'pybal-test', 'steps');
  const rcPath = join(dir, `${name}.rc`);
  const outPath = join(dir, `${name}.out`);
  return {
    rc: existsSync(rcPath) ? Number(readFileSync(rcPath, 'utf8').trim()) : null,
    out: existsSync(outPath) ? readFileSync(outPath, 'utf8') : '',
  };
}
