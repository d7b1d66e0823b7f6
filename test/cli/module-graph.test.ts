/**
 * The light commands stay light (issue 14: `pybal status`, `ipvs` and
 * `check-config` start in 150 ms or less). A guard on what is loaded rather
 * than a timing, which a loaded machine would make flaky.
 *
 * `pybal` runs the bundled command, dist/cli/pybal.js
 * (packaging/bundle-cli.ts): yargs and the commands' modules in a few files,
 * the daemon (with prom-client, @opentelemetry/api and pino) in chunks of its
 * own, netlink and ssh2 left in node_modules; each command imports only what
 * it uses. Two views of it:
 * - what the built `pybal` loads, recorded by a loader hook
 *   (test/support/record-imports.mjs): for `--version`, `--help`, `status`,
 *   `check` and `check-config`, nothing but dist/cli/ and node: builtins,
 *   and not the daemon's chunks; for the daemon, its chunks and netlink,
 *   nothing of dist/src/ and none of the bundled packages from node_modules;
 * - what esbuild put where (dist/cli/meta.json): the files that every
 *   command loads hold no daemon module, the daemon and its packages are
 *   bundled, and only netlink and ssh2 are imported from node_modules.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAEMON_NODE_OPTIONS } from '../../src/cli/node-options.js';
import { assertFreshBuild } from '../support/fresh-build.js';

const PYBAL = resolve('dist/cli/pybal.js');
beforeAll(() => assertFreshBuild(['src/cli', 'src/runtime', 'src/api', 'src/config']));
const HOOK = resolve('test/support/record-imports.mjs');
const dir = mkdtempSync(join(tmpdir(), 'pybal-module-graph-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The URLs of the modules loaded by `pybal ...args`. */
function loadedBy(args: readonly string[]): { status: number | null; modules: string[] } {
  const file = join(dir, `${args.join('_').replace(/[^\w.-]/g, '')}.txt`);
  const r = spawnSync(process.execPath, ['--import', HOOK, PYBAL, ...args], {
    encoding: 'utf8',
    timeout: 15_000,
    env: { ...process.env, PYBAL_RECORD_IMPORTS: file },
  });
  return { status: r.status, modules: readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') };
}

interface Metafile {
  readonly inputs: Record<string, unknown>;
  readonly outputs: Record<
    string,
    {
      readonly entryPoint?: string;
      readonly inputs: Record<string, unknown>;
      readonly imports: readonly { readonly path: string; readonly kind: string; readonly external?: boolean }[];
    }
  >;
}

/** esbuild's record of the bundle: each file of dist/cli/, what it holds and what it imports. */
function metafile(): Metafile {
  return JSON.parse(readFileSync('dist/cli/meta.json', 'utf8')) as Metafile;
}

/** The file of dist/cli/ that holds `input` (a path of dist/src/, as esbuild names it). */
function chunkOf(input: string): string {
  const found = Object.entries(metafile().outputs).find(([, o]) => input in o.inputs);
  if (!found) throw new Error(`no file of dist/cli/ holds ${input}`);
  return found[0];
}

/** The files of dist/cli/ that `file` imports statically, transitively, itself included: what loads with it. */
/** The URLs a bundled file starts worker threads from (esbuild may rename Worker to Worker2 and so on). */
function workerUrls(source: string): string[] {
  return [...source.matchAll(/new Worker\d*\(new URL\("([^"]+)", import\.meta\.url\)/g)].map((m) => m[1]!);
}

function staticClosure(file: string): Set<string> {
  const { outputs } = metafile();
  const seen = new Set<string>();
  const visit = (f: string): void => {
    if (seen.has(f)) return;
    seen.add(f);
    for (const i of outputs[f]?.imports ?? []) if (i.kind === 'import-statement' && !i.external) visit(i.path);
  };
  visit(file);
  return seen;
}

/** What stays in node_modules. */
const EXTERNAL_PACKAGES = /^(netlink|ssh2)(\/|$)/;

/** What no light command may load: the daemon and its parts, and the packages only they need. */
const HEAVY: readonly RegExp[] = [
  /\/dist\/src\//,
  /\/node_modules\/(netlink|pino|prom-client|@opentelemetry|ssh2)\//,
];

/** The same, as esbuild names the inputs it bundled (relative paths). */
const HEAVY_INPUT: readonly RegExp[] = [
  /^dist\/src\/(main|daemon)\.js$/,
  /^dist\/src\/(bgp|bfd|monitors|coordinator|pool)\//,
  /^dist\/src\/api\/metrics\.js$/,
  /^dist\/src\/runtime\/logger\.js$/,
  /(^|\/)node_modules\/(netlink|pino|prom-client|@opentelemetry|ssh2)\//,
];

/** The files of dist/cli/ that hold a heavy module: no light command loads one. */
function heavyFiles(): string[] {
  return Object.entries(metafile().outputs)
    .filter(([, o]) => Object.keys(o.inputs).some((input) => HEAVY_INPUT.some((re) => re.test(input))))
    .map(([file]) => `file://${resolve(file)}`);
}

const missing = join(dir, 'no-daemon.sock');

describe('the modules the light commands load', () => {
  it.each([
    [['--version'], 'dist/src/cli/main.js'],
    [['--help'], 'dist/src/cli/main.js'],
    [['status', '--help'], 'dist/src/cli/main.js'],
    [['status', '--socket', missing], 'dist/src/cli/status.js'],
    [['check', '--socket', missing], 'dist/src/cli/check.js'],
    [['check-config', '-c', 'etc/pybal.conf.example'], 'dist/src/config/parse-config.js'],
  ])('pybal %j loads only the bundle and node: builtins', (args, expected) => {
    const { modules } = loadedBy(args);
    // The hook did record (the guard is not vacuous), including the file that holds the command's own module.
    expect(modules).toContain(`file://${resolve(chunkOf(expected))}`);
    expect(modules.filter((url) => HEAVY.some((re) => re.test(url)))).toEqual([]);
    expect(modules.filter((url) => !url.startsWith('node:') && !url.startsWith(`file://${resolve('dist/cli')}/`))).toEqual([]);
    const heavy = heavyFiles();
    expect(heavy).toContain(`file://${resolve(chunkOf('dist/src/main.js'))}`);
    expect(modules.filter((url) => heavy.includes(url))).toEqual([]);
  });

  it('the guard sees heavy modules where they belong: pybal ipvs loads netlink, not the daemon', () => {
    const { modules } = loadedBy(['ipvs']);
    expect(modules.filter((url) => /\/node_modules\/netlink\//.test(url))).not.toEqual([]);
    expect(modules.filter((url) => /\/dist\/src\//.test(url))).toEqual([]);
    expect(modules).not.toContain(`file://${resolve(chunkOf('dist/src/main.js'))}`);
  });

  it('pybal (the daemon) loads its bundled chunks and netlink: nothing of dist/src/, no package it bundles from node_modules', () => {
    const { status, modules } = loadedBy(['-c', join(dir, 'no-such.conf'), '--log-file', '-']);
    expect(status).toBe(1);
    const daemon = chunkOf('dist/src/main.js');
    expect(modules).toContain(`file://${resolve(daemon)}`);
    // With every file that the daemon's chunk imports statically.
    for (const file of staticClosure(daemon)) expect(modules).toContain(`file://${resolve(file)}`);
    expect(modules.filter((url) => /\/dist\/src\//.test(url))).toEqual([]);
    // Nor ssh2, which only an SSH monitor loads when it first runs.
    expect(modules.filter((url) => /\/node_modules\/(prom-client|@opentelemetry|pino|ssh2)\//.test(url))).toEqual([]);
    const outside = modules.filter((url) => !url.startsWith('node:') && !url.startsWith(`file://${resolve('dist/cli')}/`));
    expect(outside.length).toBeGreaterThan(0);
    // netlink, require()d by the IPVS client, and what netlink requires to load its addon; pybal's own addons.
    expect(outside.filter((url) => /\/node_modules\/netlink\//.test(url))).not.toEqual([]);
    const addons = `file://${resolve('dist/native')}/`;
    expect(outside.filter((url) => !/\/node_modules\/(netlink|node-gyp-build)\//.test(url) && !url.startsWith(addons))).toEqual([]);
  });
});

/**
 * A preload (node -r, which worker threads inherit) that writes the thread's
 * process.moduleLoadList to DIR/<main|thread N>.json once `Start-up complete`
 * is in the log, and the checks thread's a second after it started.
 */
const RECORD_BUILTINS = `
const { isMainThread, threadId } = require('node:worker_threads');
const { existsSync, readFileSync, writeFileSync } = require('node:fs');
const out = process.env.PYBAL_RECORD_BUILTINS + '/' + (isMainThread ? 'main' : 'thread' + threadId) + '.json';
const write = () => writeFileSync(out, JSON.stringify(process.moduleLoadList));
if (isMainThread) {
  const log = process.env.PYBAL_RECORD_LOG;
  const look = setInterval(() => {
    if (existsSync(log) && readFileSync(log, 'utf8').includes('Start-up complete')) { clearInterval(look); write(); }
  }, 20);
  look.unref();
} else setTimeout(write, 1000).unref();
`;

describe('what the daemon loads of Node (a dry run of the built daemon, one service checked by IdleConnection and ProxyFetch)', () => {
  // The daemon runs with a V8 flag that costs Node its code cache (src/cli/node-options.ts): each
  // builtin a thread loads is compiled from source as it starts, so what is not needed waits for its use.
  it('the main thread: no https, tls, zlib, crypto, assert, dns/promises, nor the CommonJS export parser; the checks thread: no tls, crypto, readline, dns/promises', async () => {
    const run = mkdtempSync(join(dir, 'builtins-'));
    writeFileSync(join(run, 'pool'), "{ 'host': '127.0.0.1', 'weight': 10, 'enabled': True }\n");
    writeFileSync(join(run, 'record.cjs'), RECORD_BUILTINS);
    writeFileSync(
      join(run, 'pybal.conf'),
      [
        '[global]',
        'bgp = no',
        'instrumentation = no',
        '',
        '[web]',
        'protocol = tcp',
        'ip = 192.0.2.10',
        'port = 80',
        'scheduler = wrr',
        `config = file://${join(run, 'pool')}`,
        'bgp = no',
        'depool-threshold = .5',
        "monitors = ['IdleConnection', 'ProxyFetch']",
        "proxyfetch.url = ['http://localhost/']",
        '',
      ].join('\n'),
    );
    const log = join(run, 'pybal.log');
    const daemon = spawn(process.execPath, ['-r', join(run, 'record.cjs'), ...DAEMON_NODE_OPTIONS, PYBAL, '-n', '-c', join(run, 'pybal.conf'), '--log-file', log, '--control-socket', join(run, 's.sock')], {
      env: { ...process.env, PYBAL_RECORD_BUILTINS: run, PYBAL_RECORD_LOG: log },
      stdio: 'ignore',
    });
    try {
      const threads = (): string[] => readdirSync(run).filter((f) => f.endsWith('.json'));
      for (let i = 0; i < 300 && threads().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      expect(threads().sort()).toEqual(['main.json', expect.stringMatching(/^thread\d+\.json$/)]);
      const loaded = (file: string): string[] => JSON.parse(readFileSync(join(run, file), 'utf8')) as string[];
      const main = loaded('main.json');
      const checks = loaded(threads().find((f) => f !== 'main.json')!);
      // The lists are the real ones: the API's http server on the main thread, the checks' sockets on theirs.
      expect(main).toContain('NativeModule http');
      expect(checks).toContain('NativeModule net');
      expect(main.filter((m) => /^NativeModule (https|tls|zlib|crypto|assert|dns\/promises|internal\/deps\/cjs-module-lexer\/lexer)$/.test(m))).toEqual([]);
      expect(checks.filter((m) => /^NativeModule (tls|crypto|readline|dns\/promises)$/.test(m))).toEqual([]);
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('exit', r));
    }
  });
});

describe('what esbuild put where (dist/cli/meta.json)', () => {
  it('the files every command loads hold no daemon module and import no heavy package', () => {
    const { outputs } = metafile();
    // The entry and what it imports statically, transitively: what `pybal --version` loads.
    const eager = staticClosure('dist/cli/pybal.js');
    expect(eager.size).toBeGreaterThan(1);
    for (const file of eager) {
      const o = outputs[file]!;
      expect(Object.keys(o.inputs).filter((input) => HEAVY_INPUT.some((re) => re.test(input))), file).toEqual([]);
      expect(o.imports.filter((i) => i.external && EXTERNAL_PACKAGES.test(i.path)), file).toEqual([]);
    }
  });

  it('the daemon is bundled: dist/cli/pybal.js imports its chunk when it runs, which holds prom-client, @opentelemetry/api and pino', () => {
    const { inputs, outputs } = metafile();
    const daemon = chunkOf('dist/src/main.js');
    expect(daemon).toMatch(/^dist\/cli\/main-\w+\.js$/);
    expect(chunkOf('dist/src/daemon.js')).toBe(daemon);
    expect(outputs['dist/cli/pybal.js']?.imports).toContainEqual(expect.objectContaining({ path: daemon, kind: 'dynamic-import' }));
    for (const name of ['prom-client', '@opentelemetry/api', 'pino']) {
      // esbuild names them by path: node_modules/..., or ../main/node_modules/... in a worktree.
      const files = Object.keys(inputs).filter((input) => input.includes(`node_modules/${name}/`));
      expect(files.length, name).toBeGreaterThan(0);
      // Loaded with the daemon, by no light command (the test above).
      for (const input of files) expect(staticClosure(daemon), input).toContain(chunkOf(input));
    }
    // tsc's output of src/ (every module that the daemon and the commands use) is all in dist/cli/: nothing
    // is imported from dist/src/, and from node_modules only netlink and ssh2.
    expect(Object.keys(inputs).filter((input) => input.startsWith('dist/src/')).length).toBeGreaterThan(100);
    for (const [file, o] of Object.entries(outputs)) {
      expect(o.imports.filter((i) => i.external && !builtinModules.includes(i.path.replace(/^node:/, '')) && !EXTERNAL_PACKAGES.test(i.path)), file).toEqual([]);
    }
  });

  it('ssh2 stays in node_modules and loads late: only the SSH monitor imports it, dynamically', () => {
    const { outputs } = metafile();
    const imports = Object.entries(outputs).flatMap(([file, o]) => o.imports.filter((i) => i.external && /^ssh2(\/|$)/.test(i.path)).map((i) => ({ file, kind: i.kind })));
    expect(imports).toEqual([{ file: chunkOf('dist/src/monitors/ssh.js'), kind: 'dynamic-import' }]);
  });

  it('the BFD thread has its own entry, dist/cli/bfd-worker.js, which the daemon starts beside its chunk', () => {
    const { outputs } = metafile();
    expect(outputs['dist/cli/bfd-worker.js']?.entryPoint).toBe('dist/src/bfd/worker.js');
    const starter = readFileSync(chunkOf('dist/src/bfd/bfd.js'), 'utf8');
    expect(workerUrls(starter)).toContain('./bfd-worker.js');
    // The thread loads only what it runs: no daemon, no package from node_modules.
    for (const file of staticClosure('dist/cli/bfd-worker.js')) {
      expect(Object.keys(outputs[file]!.inputs).filter((input) => /^dist\/src\/(main|daemon)\.js$/.test(input) || /node_modules\//.test(input)), file).toEqual([]);
    }
  });

  it('the BGP thread has its own entry, dist/cli/bgp-worker.js, which the daemon starts beside its chunk', () => {
    const { outputs } = metafile();
    expect(outputs['dist/cli/bgp-worker.js']?.entryPoint).toBe('dist/src/bgp/worker.js');
    const starter = readFileSync(chunkOf('dist/src/bgp/thread.js'), 'utf8');
    expect(workerUrls(starter)).toContain('./bgp-worker.js');
    expect(workerUrls(starter)).not.toContain('./worker.js');
    // The thread loads the speaker and pino, not the daemon.
    for (const file of staticClosure('dist/cli/bgp-worker.js')) {
      expect(Object.keys(outputs[file]!.inputs).filter((input) => /^dist\/src\/(main|daemon)\.js$/.test(input)), file).toEqual([]);
    }
  });

  it('the checks thread has its own entry, dist/cli/check-worker.js, which the daemon starts beside its chunk', () => {
    const { outputs } = metafile();
    expect(outputs['dist/cli/check-worker.js']?.entryPoint).toBe('dist/src/monitors/check-worker.js');
    const starter = readFileSync(chunkOf('dist/src/monitors/check-thread.js'), 'utf8');
    expect(workerUrls(starter)).toContain('./check-worker.js');
    // The thread loads the monitors, not the daemon, its logger nor its API.
    for (const file of staticClosure('dist/cli/check-worker.js')) {
      expect(Object.keys(outputs[file]!.inputs).filter((input) => /^dist\/src\/(main|daemon)\.js$|^dist\/src\/api\/|node_modules\/pino\//.test(input)), file).toEqual([]);
    }
  });

  it('netlink is loaded only by the file that holds the IPVS client (pybal ipvs and pybal drain load it)', () => {
    const { outputs } = metafile();
    // require()d through createRequire (src/ipvs/client.ts), so esbuild records no import of it: the files' text says.
    const loaders = Object.keys(outputs).filter((file) => file.endsWith('.js') && /['"]netlink(\/[^'"]*)?['"]/.test(readFileSync(file, 'utf8')));
    expect(loaders).toEqual([chunkOf('dist/src/ipvs/client.js')]);
    expect(Object.values(outputs).some((o) => o.imports.some((i) => /^netlink(\/|$)/.test(i.path)))).toBe(false);
  });
});
