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

/** Copies dist/cli into the lab run's scratch directory and returns the pybal.js to run (dist/cli's own outside a lab run). */
export function snapshotPybalBuild(): string {
  const scratch = process.env.PYBAL_LAB_SCRATCH;
  if (scratch === undefined) return join(repoRoot(), 'dist/cli/pybal.js');
  const target = join(scratch, 'pybal-build');
  cpSync(join(repoRoot(), 'dist/cli'), join(target, 'cli'), { recursive: true });
  return join(target, 'cli/pybal.js');
}
