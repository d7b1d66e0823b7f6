/**
 * The second step of `npm run build`: bundles the `pybal` command's front end
 * into dist/cli/ (esbuild), from what `tsc` wrote to dist/src/.
 *
 * Why: the command line is parsed by yargs, whose ES module graph (about 20
 * files) plus pybal's own small modules cost more start-up time than the
 * commands' work (issue 14: `pybal status`, `ipvs` and `check-config` start
 * in 150 ms or less). One file, or a few, load much faster than fifty.
 *
 *   dist/cli/pybal.js         the entry (`#!/usr/bin/env node`): src/cli/main.ts, yargs and what every command needs
 *   dist/cli/<name>-<hash>.js a chunk per command module that main.ts imports when the command runs
 *                             (status, check, drain, check-config, import, ipvs) and the parts they share
 *   dist/cli/locales/         yargs' message translations (read at run time, as yargs does from its package)
 *   dist/cli/meta.json        esbuild's record of what went into which file (test/cli/module-graph.test.ts reads it)
 *
 * What stays out, loaded from dist/src and node_modules only by the command
 * that uses it:
 * - the daemon (dist/src/main.js and everything under it): `pybal` without a
 *   command imports it, unbundled, by a relative path from dist/cli/;
 * - the packages that are native addons or only the daemon's (netlink, pino,
 *   prom-client, ssh2), imported by name from node_modules as before.
 * Every file of dist/cli/ is in one directory, so a path relative to one is
 * right for all of them, whichever chunk esbuild puts an import in.
 */
import { build, type Plugin } from 'esbuild';
import { chmodSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where the bundled front end goes. */
export const CLI_DIR = join(root, 'dist/cli');
/** The file that `pybal` runs (package.json's bin, the Debian package's /usr/sbin/pybal). */
export const CLI_ENTRY = join(CLI_DIR, 'pybal.js');

/** tsc's output that is imported at run time rather than bundled: the daemon. */
const UNBUNDLED = [join(root, 'dist/src/main.js')];

/** Packages left in node_modules: a native addon, and what only the daemon uses. */
const EXTERNAL_PACKAGES = ['netlink', 'pino', 'prom-client', 'ssh2'];

/** Imports of an UNBUNDLED file become imports of it by its path relative to dist/cli/. */
const keepUnbundled: Plugin = {
  name: 'pybal-keep-unbundled',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      const target = resolve(args.resolveDir, args.path);
      if (!UNBUNDLED.includes(target)) return undefined;
      const path = relative(CLI_DIR, target).split(sep).join('/');
      return { path: path.startsWith('../') ? path : `./${path}`, external: true };
    });
  },
};

/**
 * yargs finds its translations from its own file's URL (`resolve(file,
 * '../../../locales')`); in the bundle that URL is a file of dist/cli/, so it
 * is pointed at dist/cli/locales/, where they are copied.
 */
const yargsLocales: Plugin = {
  name: 'pybal-yargs-locales',
  setup(b) {
    b.onLoad({ filter: /[\\/]yargs[\\/]lib[\\/]platform-shims[\\/]esm\.mjs$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const from = "resolve(__dirname, '../../../locales')";
      if (!source.includes(from)) throw new Error(`${args.path}: no ${from}: yargs changed where it reads its locales from; update packaging/bundle-cli.ts`);
      return { contents: source.replace(from, "resolve(__dirname, '../locales')"), loader: 'js' };
    });
  },
};

/**
 * yargs measures text with string-width (three copies: its own, cliui's and
 * wrap-ansi's), and each copy does costly work when it is loaded: an
 * Intl.Segmenter (12 ms for the first: ICU's break rules) and, in the newest,
 * the regular expression /^\p{RGI_Emoji}$/v (14 ms: V8 builds the set of
 * every emoji sequence). Every `pybal` command paid that, though only help
 * and usage errors measure text. Each `import stringWidth from
 * 'string-width'` gets instead a function that loads its copy on the first
 * call: a require(), which esbuild turns into a lazy evaluation of the
 * bundled module. (A copy that came to export more than its default would
 * fail the build here: "No matching export".)
 */
const lazyStringWidth: Plugin = {
  name: 'pybal-lazy-string-width',
  setup(b) {
    b.onResolve({ filter: /^string-width$/ }, async (args) => {
      // The resolution just below comes back here: that one is esbuild's own.
      if (args.pluginData?.real === true) return undefined;
      const real = await b.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, pluginData: { real: true } });
      if (real.errors.length > 0) return undefined;
      return { path: real.path, namespace: 'lazy-string-width' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-string-width' }, (args) => ({
      contents: [
        'let real;',
        'export default function stringWidth(...args) {',
        `  real ??= require(${JSON.stringify(args.path)});`,
        '  return real.default(...args);',
        '}',
      ].join('\n'),
      resolveDir: dirname(args.path),
      loader: 'js',
    }));
  },
};

export async function bundleCli(): Promise<void> {
  rmSync(CLI_DIR, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: { pybal: join(root, 'dist/src/cli/main.js') },
    outdir: CLI_DIR,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    chunkNames: '[name]-[hash]',
    external: EXTERNAL_PACKAGES.flatMap((p) => [p, `${p}/*`]),
    plugins: [keepUnbundled, yargsLocales, lazyStringWidth],
    metafile: true,
    logLevel: 'warning',
    legalComments: 'eof',
  });
  writeFileSync(join(CLI_DIR, 'meta.json'), `${JSON.stringify(result.metafile, null, 1)}\n`);
  mkdirSync(join(CLI_DIR, 'locales'), { recursive: true });
  cpSync(join(root, 'node_modules/yargs/locales'), join(CLI_DIR, 'locales'), { recursive: true });
  // The entry keeps main.ts's `#!/usr/bin/env node`; npm's bin and `./dist/cli/pybal.js` need it executable.
  chmodSync(CLI_ENTRY, 0o755);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await bundleCli();
}
