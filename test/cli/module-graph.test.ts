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
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
    expect(outside.filter((url) => !/\/node_modules\/netlink\//.test(url))).toEqual([]);
  });
});

describe("what the daemon's chunk loads of Node", () => {
  it('no node:https, node:tls or node:zlib: a site whose pools are files never needs them (prom-client\'s Pushgateway and the https pool sources load them when used)', () => {
    const url = pathToFileURL(resolve(chunkOf('dist/src/main.js'))).href;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(url)}); process.stdout.write(JSON.stringify(process.moduleLoadList))`], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    expect(r.stderr).toBe('');
    const loaded = JSON.parse(r.stdout) as string[];
    // The list is the real one: the API's http server is there.
    expect(loaded).toContain('NativeModule http');
    expect(loaded.filter((m) => /^NativeModule (https|tls|zlib)$/.test(m))).toEqual([]);
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

  it('netlink is imported only by the file that holds the IPVS client (pybal ipvs and pybal drain load it)', () => {
    const { outputs } = metafile();
    const importers = Object.entries(outputs)
      .filter(([, o]) => o.imports.some((i) => i.external && /^netlink(\/|$)/.test(i.path)))
      .map(([file]) => file);
    expect(importers).toEqual([chunkOf('dist/src/ipvs/client.js')]);
    expect(importers).not.toContain('dist/cli/pybal.js');
  });
});
