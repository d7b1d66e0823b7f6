/**
 * Tests that run the build (`dist/`) test stale code when `tsc` was not run:
 * they call this first to fail at once, saying why.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Throws when some dist/DIR/X.js is missing or older than DIR/X.ts. */
export function assertFreshBuild(dirs: readonly string[]): void {
  for (const dir of dirs) {
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
      const built = join('dist', dir, name.replace(/\.ts$/, '.js'));
      let builtMs = 0;
      try {
        builtMs = statSync(built).mtimeMs;
      } catch {
        // missing: stale
      }
      if (builtMs < statSync(join(dir, name)).mtimeMs) throw new Error(`${built} is older than ${dir}/${name}: run \`npx tsc -p .\` first`);
    }
  }
}
