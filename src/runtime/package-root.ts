import { existsSync, readFileSync } from 'node:fs';
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
  // Asked twice as the daemon starts (its version, its addons), from the same directory.
  if (!found.has(dir)) found.set(dir, walkUp(dir));
  return found.get(dir);
}

const found = new Map<string, PybalPackage | undefined>();

function walkUp(dir: string): PybalPackage | undefined {
  for (;;) {
    const file = join(dir, 'package.json');
    // A look first: an exception per missing file (two of them from dist/cli/) cost the daemon's start 40 ms in a profile in the lab guest.
    if (existsSync(file)) {
      try {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'pybal' && pkg.version) return { dir, version: pkg.version };
      } catch {
        // Unreadable, or not JSON: not this one; keep walking up.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}
