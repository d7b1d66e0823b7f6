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
