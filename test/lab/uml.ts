// Host side of the lab: boots a User-Mode Linux guest with the host's / over
// hostfs, loads IPVS and friends, runs one command in it as root and brings
// back its output and exit status. A guest that overruns its deadline is
// killed; its console log stays in the scratch directory for diagnosis.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, statfsSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHostBrowserAgent, type HostBrowserAgent } from './host-browser.js';
import { createHostLink, guestSetupScript, umlNetArgument, type GuestHostLink, type HostLink, type HostLinkPlan } from './host-link.js';

export const UML_BINARY = '/usr/bin/linux.uml';
export const UML_MODULES_DIR = '/usr/lib/uml/modules';

/** Kernel modules every guest loads: IPVS with all schedulers, veth, bridge, dummy. */
export const DEFAULT_GUEST_MODULES = [
  'ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc', 'ip_vs_wlc', 'ip_vs_sh', 'ip_vs_mh', 'ip_vs_sed',
  'ip_vs_nq', 'ip_vs_dh', 'ip_vs_fo', 'ip_vs_ovf', 'ip_vs_lblc', 'ip_vs_lblcr',
  'veth', 'bridge', 'dummy',
] as const;

/**
 * Every guest program is kept off AVX. UML started by the launcher below
 * keeps only the FXSAVE part of a guest process's FPU state (x87, SSE) when
 * it resumes it, so the wider AVX registers do not survive a syscall or a
 * page fault: seen here, kmod's ELF checks failed (`insmod: Invalid
 * parameters`) and node crashed at start while glibc used its AVX2 and
 * AVX-512 string functions. These make glibc, OpenSSL and Go (gobgpd) pick
 * their SSE code; guest-init.sh exports them before anything else runs.
 */
export const GUEST_NO_AVX_ENV: Readonly<Record<string, string>> = {
  GLIBC_TUNABLES: 'glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,-AVX_Fast_Unaligned_Load',
  // Bit 60 of the first capability word is CPUID.1:ECX.AVX; OpenSSL's AVX, AVX2 and AVX-512 code all require it.
  OPENSSL_ia32cap: '~0x1000000000000000',
  GODEBUG: 'cpu.avx=off,cpu.avx2=off',
  // Node's simdutf (UTF-8 decoding and validation, base64) picks AVX2 or
  // AVX-512 code from CPUID; without this, large WebSocket messages decoded
  // in the guest came out with stray bytes (`Bad control character in string
  // literal in JSON`). westmere is its SSE4.2 code.
  SIMDUTF_FORCE_IMPLEMENTATION: 'westmere',
};

/**
 * The launcher that starts UML with XSAVE hidden from it (see
 * test/lab/uml-fxsave-only.c for why), compiled on first use into
 * .lab-scratch/bin and again whenever its source is newer.
 */
export function umlLauncher(root = repoRoot()): string {
  const source = join(root, 'test', 'lab', 'uml-fxsave-only.c');
  const binary = join(root, '.lab-scratch', 'bin', 'uml-fxsave-only');
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return binary;
  mkdirSync(dirname(binary), { recursive: true });
  // Built beside and renamed, so that guests started in parallel never run a half-written file.
  const partial = `${binary}.${process.pid}`;
  try {
    execFileSync('cc', ['-O2', '-Wall', '-o', partial, source], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    throw new Error(`pybal lab: cannot compile ${source} (install gcc and libc6-dev): ${(error as { stderr?: Buffer }).stderr?.toString() ?? String(error)}`);
  }
  renameSync(partial, binary);
  return binary;
}

/** How long a guest may take to power off after its command reported a status. */
const POWEROFF_GRACE_MS = 20_000;

const BEGIN_MARK = '@@pybal-lab begin@@';
const END_MARK = '@@pybal-lab end@@';

export type GuestRunOptions = {
  /** Program and arguments, run with `sh` semantics after quoting (no shell expansion). */
  argv: readonly string[];
  /** Working directory inside the guest (the host's path: / is shared). Default: the repository root. */
  cwd?: string;
  /** Extra environment for the command. PYBAL_LAB_GUEST=1 and PYBAL_LAB_SCRATCH are always set. */
  env?: Readonly<Record<string, string>>;
  /** The guest is killed after this long. Default 10 minutes. */
  timeoutMs?: number;
  /** Guest memory in MiB. Default 2048. */
  memMb?: number;
  /** Parent of the per-run scratch directory. Default `<repo>/.lab-scratch`. */
  scratchParent?: string;
  /** Where the command's output is echoed live (kernel noise left out). Default: nothing. */
  echo?: NodeJS.WritableStream;
  modules?: readonly string[];
  /** Aborting kills the guest (e.g. on Ctrl-C). */
  signal?: AbortSignal;
  /**
   * Give the guest an eth0 on a tap device of the host, with a private /29,
   * and a browser agent on the host's end (host-link.ts, host-browser.ts).
   * When the tap cannot be made, the guest runs without it and is told why
   * (PYBAL_LAB_HOST_LINK_ERROR), so that a test needing it fails saying so.
   * Default false.
   */
  hostLink?: boolean;
};

export type GuestRunResult = {
  /** Exit status of the command, or null when it never reported one (timeout, crash). */
  code: number | null;
  timedOut: boolean;
  /** The command's output (between the init's markers), CRs removed. */
  output: string;
  scratchDir: string;
  /** The host link's device and addresses, when the guest had one. */
  hostLink?: HostLinkPlan;
  /** Why the guest had no host link although it was asked for. */
  hostLinkError?: string;
  /** Full console: kernel messages, init and command output. */
  consolePath: string;
  durationMs: number;
};

/** The repository root (the directory holding package.json), from this file's location. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('pybal lab: package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

/** The guest init script, shipped beside this file's TypeScript source. */
function guestInitSource(): string {
  return join(repoRoot(), 'test', 'lab', 'guest-init.sh');
}

/** The UML kernel version, read from the module directory (never hard-coded). */
export function umlKernelVersion(modulesDir = UML_MODULES_DIR): string {
  const versions = existsSync(modulesDir) ? readdirSync(modulesDir).sort() : [];
  const last = versions.at(-1);
  if (last === undefined) throw new Error(`pybal lab: no UML kernel modules under ${modulesDir} (is user-mode-linux installed?)`);
  return last;
}

/** Quotes one word for sh. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

export function newScratchDir(parent: string, label: string): string {
  mkdirSync(parent, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  for (let i = 0; ; i++) {
    const dir = join(parent, `${label}-${stamp}-${process.pid}-${i}`);
    try {
      mkdirSync(dir);
      return dir;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}

/** The last `lines` lines of a file, for failure messages. */
export function tailFile(path: string, lines = 60): string {
  if (!existsSync(path)) return '';
  return readFileSync(path, 'utf8').replaceAll('\r', '').split('\n').slice(-lines).join('\n');
}

/**
 * Where UML keeps the guest's memory file: /dev/shm when it has room for all
 * of it (containers often give it 64 MiB, and a guest that outgrows it dies
 * with SIGBUS), the system's temporary directory otherwise.
 */
export function umlTempDir(memMb: number): string {
  try {
    const fs = statfsSync('/dev/shm');
    if ((fs.bavail * fs.bsize) / 2 ** 20 > memMb + 256) return '/dev/shm';
  } catch {
    // no /dev/shm
  }
  return tmpdir();
}

export async function runInGuest(options: GuestRunOptions): Promise<GuestRunResult> {
  if (!existsSync(UML_BINARY)) throw new Error(`pybal lab: ${UML_BINARY} missing; install the user-mode-linux Debian package`);
  umlKernelVersion();
  const root = repoRoot();
  const scratchDir = newScratchDir(options.scratchParent ?? join(root, '.lab-scratch'), 'guest');
  mkdirSync(join(scratchDir, 'modroot', 'lib'), { recursive: true });
  symlinkSync(UML_MODULES_DIR, join(scratchDir, 'modroot', 'lib', 'modules'));
  const init = join(scratchDir, 'init.sh');
  copyFileSync(guestInitSource(), init);
  writeFileSync(join(scratchDir, 'modules'), (options.modules ?? DEFAULT_GUEST_MODULES).join('\n') + '\n');
  writeFileSync(join(scratchDir, 'cwd'), (options.cwd ?? root) + '\n');
  const env: Record<string, string> = {
    HOME: '/tmp',
    PYBAL_LAB_GUEST: '1',
    PYBAL_LAB_SCRATCH: scratchDir,
    ...options.env,
  };
  // Only this function describes a link to the guest.
  delete env.PYBAL_LAB_HOST_LINK;
  // Compiled (when needed) before a tap exists, so that a failure here leaves none behind.
  const launcher = umlLauncher(root);
  let link: HostLink | undefined;
  let agent: HostBrowserAgent | undefined;
  let hostLinkError: string | undefined;
  const removeLinkAtExit = (): void => link?.removeSync();
  if (options.hostLink === true) {
    delete env.PYBAL_LAB_HOST_LINK_ERROR;
    try {
      link = await createHostLink();
      process.once('exit', removeLinkAtExit);
      agent = await startHostBrowserAgent(link.plan.host, join(scratchDir, 'host-browser.log'));
      writeFileSync(join(scratchDir, 'host-link.sh'), guestSetupScript(link.plan) + '\n');
      const told: GuestHostLink = { ...link.plan, agent: agent.url };
      env.PYBAL_LAB_HOST_LINK = JSON.stringify(told);
    } catch (error) {
      hostLinkError = error instanceof Error ? error.message : String(error);
      await agent?.stop().catch(() => undefined);
      agent = undefined;
      await link?.remove();
      process.removeListener('exit', removeLinkAtExit);
      link = undefined;
      env.PYBAL_LAB_HOST_LINK_ERROR = hostLinkError;
    }
  }
  writeFileSync(join(scratchDir, 'early-env.sh'), Object.entries(GUEST_NO_AVX_ENV).map(([k, v]) => `export ${k}=${shellQuote(v)}\n`).join(''));
  writeFileSync(
    join(scratchDir, 'env.sh'),
    Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}\n`).join(''),
  );
  writeFileSync(join(scratchDir, 'command.sh'), 'exec ' + options.argv.map(shellQuote).join(' ') + '\n');
  chmodSync(init, 0o755);

  const memMb = options.memMb ?? 2048;
  const consolePath = join(scratchDir, 'console.log');
  const consoleFile = createWriteStream(consolePath);
  const started = Date.now();
  const child = spawn(
    launcher,
    [
      UML_BINARY,
      `mem=${memMb}M`,
      'root=/dev/root', 'rootfstype=hostfs', 'rootflags=/', 'rw', 'quiet',
      `init=${init}`,
      'con=null', 'con0=null,fd:1', `uml_dir=${scratchDir}`,
      ...(link === undefined ? [] : [umlNetArgument(link.plan)]),
      '--', scratchDir,
    ],
    // Own process group: UML forks helper processes, the deadline kills them all.
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratchDir, TMPDIR: umlTempDir(memMb) } },
  );

  let output = '';
  let inside = false;
  let pending = '';
  const onData = (chunk: Buffer): void => {
    consoleFile.write(chunk);
    pending += chunk.toString('utf8').replaceAll('\r', '');
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl + 1);
      pending = pending.slice(nl + 1);
      if (line.startsWith(BEGIN_MARK)) inside = true;
      else if (line.startsWith(END_MARK)) inside = false;
      else if (inside) {
        output += line;
        options.echo?.write(line);
      }
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);

  let timedOut = false;
  const timeoutMs = options.timeoutMs ?? 600_000;
  const killGroup = (): void => {
    try {
      process.kill(-(child.pid ?? 0), 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, timeoutMs);
  // Once the command has reported its status the guest should power off at
  // once; a stray process keeping the output pipe open must not hold the run
  // until the deadline.
  const statusPath = join(scratchDir, 'status');
  let graceTimer: NodeJS.Timeout | undefined;
  const statusWatch = setInterval(() => {
    if (graceTimer === undefined && existsSync(statusPath)) graceTimer = setTimeout(killGroup, POWEROFF_GRACE_MS);
  }, 1_000);
  // A host-side Ctrl-C or test abort must not leave a guest running.
  process.once('exit', killGroup);
  options.signal?.addEventListener('abort', killGroup, { once: true });

  await new Promise<void>((done) => child.once('close', () => done()));
  clearTimeout(timer);
  clearInterval(statusWatch);
  clearTimeout(graceTimer);
  process.removeListener('exit', killGroup);
  options.signal?.removeEventListener('abort', killGroup);
  killGroup(); // stray helpers, if any
  if (inside && pending) output += pending;
  await new Promise<void>((done) => consoleFile.end(done));
  // The guest is gone: its browsers, then its tap (the tap's address and route go with it).
  await agent?.stop().catch(() => undefined);
  await link?.remove();
  process.removeListener('exit', removeLinkAtExit);

  const statusText = existsSync(statusPath) ? readFileSync(statusPath, 'utf8').trim() : '';
  const code = /^\d+$/.test(statusText) ? Number(statusText) : null;
  return {
    code, timedOut, output, scratchDir, consolePath, durationMs: Date.now() - started,
    ...(link === undefined ? {} : { hostLink: link.plan }),
    ...(hostLinkError === undefined ? {} : { hostLinkError }),
  };
}

/** Removes a run's scratch directory (call when the run passed and nobody needs its logs). */
export function removeScratch(dir: string): void {
  rmSync(resolve(dir), { recursive: true, force: true });
}
