import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** pybal's package.json, found at or above a directory. */
export interface PybalPackage {
  /** The directory that holds it: the checkout's root, or /usr/lib/pybal in the Debian package. */
  readonly dir: string;
  readonly version: string;
}

/**
 * The nearest package.json named pybal at or above `dir`: the same one from
 * src/ (vitest), dist/src/ (tsc's output) and dist/cli/ (the bundle), which
 * are all below it. Undefined when there is none.
 */
export function findPybalPackage(dir: string): PybalPackage | undefined {
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pybal' && pkg.version) return { dir, version: pkg.version };
    } catch {
      // Not here; keep walking up.
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}
