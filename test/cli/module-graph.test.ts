/**
 * The light commands stay light (issue 14: `pybal status`, `ipvs` and
 * `check-config` start in 150 ms or less). A guard on what is loaded rather
 * than a timing, which a loaded machine would make flaky.
 *
 * `pybal` runs the bundled command line, dist/cli/pybal.js
 * (packaging/bundle-cli.ts): yargs and the commands' modules in a few files,
 * the daemon and the heavy packages outside, imported only by the command
 * that uses them. Two views of it:
 * - what the built `pybal` loads, recorded by a loader hook
 *   (test/support/record-imports.mjs): for `--version`, `--help`, `status`,
 *   `check` and `check-config`, nothing but dist/cli/ and node: builtins:
 *   not the daemon (dist/src/), not netlink, pino, prom-client or ssh2;
 * - what esbuild put where (dist/cli/meta.json): the files that every
 *   command loads hold no daemon module, and the daemon is not bundled.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
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

/** What no light command may load: the daemon and its parts, and the packages only they need. */
const HEAVY: readonly RegExp[] = [
  /\/dist\/src\/main\.js$/,
  /\/dist\/src\/daemon\.js$/,
  /\/dist\/src\/(ipvs|bgp|bfd|monitors|coordinator|pool)\//,
  /\/dist\/src\/api\/(server|metrics)\.js$/,
  /\/dist\/src\/runtime\/logger\.js$/,
  /\/node_modules\/(netlink|pino|prom-client|ssh2)\//,
];

/** The same, as esbuild names the inputs it bundled (relative paths). */
const HEAVY_INPUT: readonly RegExp[] = [
  /^dist\/src\/(main|daemon)\.js$/,
  /^dist\/src\/(bgp|bfd|monitors|coordinator|pool)\//,
  /^dist\/src\/api\/metrics\.js$/,
  /^dist\/src\/runtime\/logger\.js$/,
  /^node_modules\/(netlink|pino|prom-client|ssh2)\//,
];

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
  });

  it('the guard sees heavy modules where they belong: pybal ipvs loads netlink, not the daemon', () => {
    const { modules } = loadedBy(['ipvs']);
    expect(modules.filter((url) => /\/node_modules\/netlink\//.test(url))).not.toEqual([]);
    expect(modules.filter((url) => /\/dist\/src\//.test(url))).toEqual([]);
  });

  it('pybal (the daemon) imports it unbundled from dist/src/', () => {
    const { status, modules } = loadedBy(['-c', join(dir, 'no-such.conf'), '--log-file', '-']);
    expect(status).toBe(1);
    expect(modules).toContain(`file://${resolve('dist/src/main.js')}`);
  });
});

describe('what esbuild put where (dist/cli/meta.json)', () => {
  it('the files every command loads hold no daemon module and import no heavy package', () => {
    const { outputs } = metafile();
    // The entry and what it imports statically, transitively: what `pybal --version` loads.
    const eager = new Set<string>();
    const visit = (file: string): void => {
      if (eager.has(file)) return;
      eager.add(file);
      for (const i of outputs[file]?.imports ?? []) if (i.kind === 'import-statement' && !i.external) visit(i.path);
    };
    visit('dist/cli/pybal.js');
    expect(eager.size).toBeGreaterThan(1);
    for (const file of eager) {
      const o = outputs[file]!;
      expect(Object.keys(o.inputs).filter((input) => HEAVY_INPUT.some((re) => re.test(input))), file).toEqual([]);
      expect(o.imports.filter((i) => i.external && /^(netlink|pino|prom-client|ssh2)(\/|$)/.test(i.path)), file).toEqual([]);
    }
  });

  it('the daemon is not bundled: dist/cli/pybal.js imports ../src/main.js when it runs', () => {
    const { inputs, outputs } = metafile();
    expect(Object.keys(inputs).filter((input) => /^dist\/src\/(main|daemon)\.js$/.test(input) || /^node_modules\/(netlink|pino|prom-client|ssh2)\//.test(input))).toEqual([]);
    expect(outputs['dist/cli/pybal.js']?.imports).toContainEqual(expect.objectContaining({ path: '../src/main.js', kind: 'dynamic-import', external: true }));
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
