/**
 * The light commands stay light: what the built `pybal` loads for
 * `--version`, `--help`, `status`, `check` and `check-config`, recorded by a
 * loader hook (test/support/record-imports.mjs), never includes the daemon,
 * IPVS, BGP, the monitors or the heavy packages. A guard on the module graph
 * rather than a timing, which a loaded machine would make flaky: every module
 * those would pull in costs start-up time (issue 14).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertFreshBuild } from '../support/fresh-build.js';

const PYBAL = resolve('dist/src/cli/main.js');
beforeAll(() => assertFreshBuild(['src/cli', 'src/runtime', 'src/api']));
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

/** What no light command may load: the daemon and its parts, and the packages only they need. */
const HEAVY: readonly RegExp[] = [
  /\/dist\/src\/main\.js$/,
  /\/dist\/src\/daemon\.js$/,
  /\/dist\/src\/(ipvs|bgp|bfd|monitors|coordinator|pool)\//,
  /\/dist\/src\/api\/(server|metrics)\.js$/,
  /\/dist\/src\/runtime\/logger\.js$/,
  /\/node_modules\/(netlink|pino|prom-client|ssh2)\//,
];

const missing = join(dir, 'no-daemon.sock');

describe('the module graph of the light commands', () => {
  it.each([
    [['--version'], 'dist/src/cli/main.js'],
    [['--help'], 'dist/src/cli/main.js'],
    [['status', '--help'], 'dist/src/cli/main.js'],
    [['status', '--socket', missing], 'dist/src/cli/status.js'],
    [['check', '--socket', missing], 'dist/src/cli/check.js'],
    [['check-config', '-c', 'etc/pybal.conf.example'], 'dist/src/config/parse-config.js'],
  ])('pybal %j loads no daemon module', (args, expected) => {
    const { modules } = loadedBy(args);
    // The hook did record (the guard is not vacuous), including the command's own module.
    expect(modules.some((url) => url.endsWith(`/${expected}`))).toBe(true);
    expect(modules.filter((url) => HEAVY.some((re) => re.test(url)))).toEqual([]);
  });

  it('the guard sees heavy modules where they belong (pybal ipvs loads netlink)', () => {
    const { modules } = loadedBy(['ipvs']);
    expect(modules.filter((url) => /\/node_modules\/netlink\//.test(url))).not.toEqual([]);
    expect(modules.filter((url) => /\/dist\/src\/main\.js$/.test(url))).toEqual([]);
  });
});
