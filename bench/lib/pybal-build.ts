/**
 * The pybal build a benchmark's rounds run: dist/cli (the whole program,
 * bundled) copied once at the start, so that a rebuild in the working tree
 * during the run (other work goes on there) cannot change pybal between
 * rounds. It lives in the guest run's scratch directory under the
 * repository, where node_modules, package.json ("type": "module") and
 * dist/native (the sockmark addon) are found by walking up.
 */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../test/lab/uml.js';
import { daemonCommand } from '../../src/cli/node-options.js';

/**
 * Copies dist/cli (or `source`, another build's dist/cli) into the lab run's
 * scratch directory, as `name`, and returns the pybal.js to run (the
 * source's own outside a lab run).
 */
export function snapshotPybalBuild(source = join(repoRoot(), 'dist/cli'), name = 'pybal-build'): string {
  const scratch = process.env.PYBAL_LAB_SCRATCH;
  if (scratch === undefined) return join(source, 'pybal.js');
  const target = join(scratch, name);
  cpSync(source, join(target, 'cli'), { recursive: true });
  return join(target, 'cli/pybal.js');
}

const words = (text: string | undefined): string[] => (text ?? '').split(' ').filter((w) => w !== '');

/**
 * Diagnosis, for the bench's own build only (not BENCH_BASE_BUILD's):
 * BENCH_PYBAL_ENV='NAME=value ...' goes to env(1) after the daemon's own
 * environment, which it overrides; BENCH_PYBAL_NODE_FLAGS='--flag ...' after
 * the daemon's node options (a V8 flag given twice takes the last).
 */
export const PYBAL_ENV = words(process.env.BENCH_PYBAL_ENV);
export const PYBAL_NODE_FLAGS = words(process.env.BENCH_PYBAL_NODE_FLAGS);

/**
 * How a bench starts a build's daemon, up to the program: the daemon's own
 * command (daemonCommand), with the diagnostic environment and node options
 * when it is the bench's own build (`ownBuild`).
 */
export function benchDaemonCommand(node: string, ownBuild: boolean): string[] {
  return ownBuild ? [...daemonCommand(node, PYBAL_ENV), ...PYBAL_NODE_FLAGS] : daemonCommand(node);
}
