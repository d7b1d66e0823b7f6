/**
 * Tests that run the build (`dist/`) test stale code when it was not rebuilt:
 * they call this first to fail at once, saying why.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The bundled command line (packaging/bundle-cli.ts) and esbuild's record of its inputs. */
const BUNDLE = 'dist/cli/pybal.js';
const BUNDLE_META = 'dist/cli/meta.json';

/**
 * Throws when some dist/DIR/X.js is missing or older than DIR/X.ts, or when
 * the bundled command line is missing or older than a file of dist/ it was
 * bundled from (`tsc` alone was run, not `npm run build`).
 */
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
      if (builtMs < statSync(join(dir, name)).mtimeMs) throw new Error(`${built} is older than ${dir}/${name}: run \`npm run build\` first`);
    }
  }
  assertFreshBundle();
}

/** Throws when dist/cli/pybal.js is missing or older than one of the files of dist/ it holds. */
export function assertFreshBundle(): void {
  if (!existsSync(BUNDLE) || !existsSync(BUNDLE_META)) throw new Error(`${BUNDLE} is missing: run \`npm run build\` first`);
  const bundledMs = statSync(BUNDLE_META).mtimeMs;
  const meta = JSON.parse(readFileSync(BUNDLE_META, 'utf8')) as { inputs: Record<string, unknown> };
  for (const input of Object.keys(meta.inputs)) {
    if (!input.startsWith('dist/')) continue;
    // A file that is gone from dist/ is stale too: its source was removed or renamed.
    const ms = existsSync(input) ? statSync(input).mtimeMs : Infinity;
    if (ms > bundledMs) throw new Error(`${BUNDLE} is older than ${input}: run \`npm run build\` first`);
  }
}
