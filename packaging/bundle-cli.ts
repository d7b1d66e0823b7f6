/**
 * The second step of `npm run build`: bundles the `pybal` command, daemon
 * included, into dist/cli/ (esbuild), from what `tsc` wrote to dist/src/.
 *
 * Why: Node loads ES modules one file at a time. The command line (yargs and
 * pybal's small modules, about 50 files) cost more start-up time than the
 * commands' work (issue 14: `pybal status`, `ipvs` and `check-config` start
 * in 150 ms or less), and the daemon (about 300 files with prom-client,
 * @opentelemetry/api and pino) took 2.5 s to load in the lab's slow guest
 * (issue 11: every service in IPVS within 5 s of start). A few files load
 * much faster than hundreds.
 *
 *   dist/cli/pybal.js         the entry (`#!/usr/bin/env node`): src/cli/main.ts, yargs and what every command needs
 *   dist/cli/<name>-<hash>.js a chunk per module that main.ts imports when a command runs: the daemon
 *                             (main-<hash>.js, with prom-client, @opentelemetry/api and pino), status,
 *                             check, drain, check-config, import, ipvs; and the parts they share
 *   dist/cli/bfd-worker.js    the BFD thread's entry (src/bfd/worker.ts), which bfd.ts starts beside itself
 *   dist/cli/bgp-worker.js    the BGP thread's entry (src/bgp/worker.ts), which thread.ts starts beside itself
 *   dist/cli/check-worker.js  the checks thread's entry (src/monitors/check-worker.ts), which check-thread.ts starts beside itself
 *   dist/cli/locales/         yargs' message translations (read at run time, as yargs does from its package)
 *   dist/cli/meta.json        esbuild's record of what went into which file (test/cli/module-graph.test.ts reads it)
 *
 * What stays out, imported by name from node_modules only by the command
 * that uses it: netlink (a native addon, found by node-gyp-build from its own
 * directory) and ssh2 (native parts, and loaded only when an SSH monitor
 * first runs); and pybal's own addons, dist/native/*.node
 * (packaging/build-native.ts), loaded by src/runtime/native-addon.ts:
 * sockmark when a data-path check first runs, memtrim at start, tcpcheck
 * with the checks thread, v8heap once the daemon has started (with
 * memory-saving = yes). dist/src/ is not needed at run time.
 *
 * Every file of dist/cli/ is in one directory, so a path relative to one is
 * right for all of them, whichever chunk esbuild puts an import in. What
 * finds a file from its own location is checked by `fileLocations` below.
 * Nothing is minified (stack traces keep function names, and each module's
 * code starts with a `// dist/src/...` comment); no source map is written.
 */
import { build, type Plugin } from 'esbuild';
import { chmodSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where the bundled command goes. */
export const CLI_DIR = join(root, 'dist/cli');
/** The file that `pybal` runs (package.json's bin, the Debian package's /usr/sbin/pybal). */
export const CLI_ENTRY = join(CLI_DIR, 'pybal.js');
/** The BFD thread's entry, beside the chunk that starts it. */
export const BFD_WORKER_ENTRY = 'bfd-worker';
/** The BGP thread's entry, beside the chunk that starts it. */
export const BGP_WORKER_ENTRY = 'bgp-worker';
/** The checks thread's entry, beside the chunk that starts it: the same name as in dist/src/monitors/. */
export const CHECK_WORKER_ENTRY = 'check-worker';

/** Packages left in node_modules: native addons (ssh2 also loaded late, by `import('ssh2')`). */
export const EXTERNAL_PACKAGES = ['netlink', 'ssh2'];

/**
 * Code that finds files from its own location, or loads a module by a name
 * known only at run time: from dist/cli/ it would look in the wrong place,
 * or esbuild could not bundle what it loads.
 */
const LOCATION_DEPENDENT = /\bimport\.meta\.(url|resolve)\b|\b__dirname\b|\b__filename\b|\bcreateRequire\b|\brequire\.(resolve|main)\b|\brequire\((?!\s*['"`])|\bimport\((?!\s*['"`])|\bnew Worker\(/;

/**
 * The files of dist/src/ that are LOCATION_DEPENDENT, and why each is right
 * from dist/cli/. Another such file, or one of these that no longer reads as
 * expected, fails the build: decide first where what it looks for is, once
 * bundled.
 */
const LOCATED: Record<string, (source: string, path: string) => string> = {
  // Walks up from its directory to pybal's package.json: dist/cli/ is as far below it as dist/src/runtime/
  // (the checkout's root; /usr/lib/pybal in the Debian package).
  'runtime/version.js': (source, path) => mustContain(source, path, 'findPybalPackage(dirname(fileURLToPath(import.meta.url)))'),
  // Loads pybal's addons (sockmark on the first data-path check, memtrim at start, ...) from dist/native/ below pybal's
  // package.json, found as version.js finds it: the checkout's root, or /usr/lib/pybal where the Debian package ships them.
  'runtime/native-addon.js': (source, path) => {
    mustContain(source, path, 'findPybalPackage(dirname(fileURLToPath(import.meta.url)))');
    mustContain(source, path, 'const relative = `dist/native/${name}.node`');
    return mustContain(source, path, 'createRequire(import.meta.url)(path)');
  },
  // require()s the netlink package (external, EXTERNAL_PACKAGES) by name: from dist/cli/ as from dist/src/ipvs/, Node
  // finds it in the node_modules above (the checkout's; /usr/lib/pybal/node_modules in the Debian package).
  'ipvs/client.js': (source, path) => mustContain(source, path, "createRequire(import.meta.url)('netlink/dist/raw.js')"),
  // Compares its own file with process.argv[1]: in the bundle, dist/cli/pybal.js, the file `pybal` runs.
  'cli/main.js': (source, path) => mustContain(source, path, 'realpathSync(fileURLToPath(import.meta.url))'),
  // Starts the BFD thread from the file beside it: the bundled worker entry, beside the daemon's chunk.
  'bfd/bfd.js': (source, path) => {
    const from = "new Worker(new URL('./worker.js', import.meta.url)";
    mustContain(source, path, from);
    return source.replace(from, `new Worker(new URL('./${BFD_WORKER_ENTRY}.js', import.meta.url)`);
  },
  // Starts the BGP thread in the same way.
  'bgp/thread.js': (source, path) => {
    const from = "new Worker(new URL('./worker.js', import.meta.url)";
    mustContain(source, path, from);
    return source.replace(from, `new Worker(new URL('./${BGP_WORKER_ENTRY}.js', import.meta.url)`);
  },
  // Starts the checks thread from the file beside it, which has the same name bundled.
  'monitors/check-thread.js': (source, path) => mustContain(source, path, `new Worker(new URL('./${CHECK_WORKER_ENTRY}.js', import.meta.url)`),
};

function mustContain(source: string, path: string, text: string): string {
  if (!source.includes(text)) throw new Error(`${path}: no ${text}: it finds files from its location differently now; update LOCATED in packaging/bundle-cli.ts`);
  return source;
}

/** See LOCATED. */
const fileLocations: Plugin = {
  name: 'pybal-file-locations',
  setup(b) {
    const src = join(root, 'dist/src');
    b.onLoad({ filter: /[\\/]dist[\\/]src[\\/].*\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const name = relative(src, args.path).split(sep).join('/');
      const located = LOCATED[name];
      if (located !== undefined) return { contents: located(source, args.path), loader: 'js' };
      const found = LOCATION_DEPENDENT.exec(source);
      if (found !== null) throw new Error(`${args.path}: ${found[0]}: what it finds from its location is elsewhere once bundled; add it to LOCATED in packaging/bundle-cli.ts`);
      return { contents: source, loader: 'js' };
    });
  },
};

/**
 * The bundled packages' files that are LOCATION_DEPENDENT, each only in code
 * that pybal does not run (or, for yargs' locales, handled below). Checked
 * after the build: a package that comes to need a file beside it at run
 * time fails it, rather than the daemon when it gets there.
 */
const PACKAGES_LOCATED: Record<string, string> = {
  // pino.transport() and the `transport` option run a worker thread from a file of node_modules;
  // pybal writes with pino.destination() and uses no transport.
  'pino/lib/transport.js': 'transports only',
  'thread-stream/index.js': "pino's transports only",
  // yargs' .config() and `extends` files, found by the path given; pybal uses neither.
  'yargs-parser/build/lib/index.js': 'config files',
  'yargs-parser/build/lib/yargs-parser.js': 'config files',
  'yargs/build/lib/utils/apply-extends.js': 'config files',
  // yargs' deprecated .require() method: its name only.
  'yargs/build/lib/yargs-factory.js': 'a method named require',
  // Its locales (yargsLocales) and, as above, config files.
  'yargs/lib/platform-shims/esm.mjs': 'locales, config files',
};

function checkPackagesLocated(inputs: Record<string, unknown>): void {
  for (const input of Object.keys(inputs)) {
    const name = /(?:^|\/)node_modules\/(.+)$/.exec(input)?.[1];
    // Plugins' own namespaces (`pybal-builtin:node:util`) are not files.
    if (name === undefined || /^[\w-]+:/.test(input) || name in PACKAGES_LOCATED) continue;
    const found = LOCATION_DEPENDENT.exec(readFileSync(join(root, input), 'utf8'));
    if (found !== null) throw new Error(`${input}: ${found[0]}: what it finds from its location is elsewhere once bundled; see PACKAGES_LOCATED in packaging/bundle-cli.ts`);
  }
}

/**
 * A CommonJS package's require() of a Node builtin (prom-client's
 * `require('util')`, pino's `require('node:os')`): in an ES module bundle
 * there is no `require`, and esbuild's stand-in throws ("Dynamic require of
 * ... is not supported"). Each becomes a small module that takes the builtin
 * from process.getBuiltinModule (Node >= 20.16), evaluated when the
 * require() runs, as before: prom-client's lazy `require('cluster')` and
 * its guarded `require('perf_hooks')` behave as they did from node_modules.
 */
const builtinRequires: Plugin = {
  name: 'pybal-builtin-requires',
  setup(b) {
    const builtins = new Set(builtinModules);
    b.onResolve({ filter: /^(node:)?[\w/]+$/ }, (args) => {
      if (args.kind !== 'require-call') return undefined;
      const name = args.path.replace(/^node:/, '');
      if (!builtins.has(name)) return undefined;
      return { path: `node:${name}`, namespace: 'pybal-builtin' };
    });
    b.onLoad({ filter: /.*/, namespace: 'pybal-builtin' }, (args) => ({
      contents: `module.exports = process.getBuiltinModule(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
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
 * A plugin that puts, in place of each import of `filter` (from a file whose
 * path holds `importerPart`, when given), a small module of `wrapper(real)`,
 * where `real` is the real module's path as a string literal: the wrapper
 * require()s it when first used, which esbuild turns into a lazy evaluation
 * of the bundled module.
 */
function lazyModule(name: string, filter: RegExp, wrapper: (real: string) => readonly string[], importerPart?: string): Plugin {
  const namespace = `lazy-${name}`;
  return {
    name: `pybal-lazy-${name}`,
    setup(b) {
      b.onResolve({ filter }, async (args) => {
        // The resolution just below comes back here: that one is esbuild's own.
        if (args.pluginData?.real === true || (importerPart !== undefined && !args.importer.includes(importerPart))) return undefined;
        const real = await b.resolve(args.path, { resolveDir: args.resolveDir, importer: args.importer, kind: args.kind, pluginData: { real: true } });
        if (real.errors.length > 0) return undefined;
        return { path: real.path, namespace };
      });
      b.onLoad({ filter: /.*/, namespace }, (args) => ({
        contents: wrapper(JSON.stringify(args.path)).join('\n'),
        resolveDir: dirname(args.path),
        loader: 'js',
      }));
    },
  };
}

/**
 * yargs measures text with string-width (three copies: its own, cliui's and
 * wrap-ansi's), and each copy does costly work when it is loaded: an
 * Intl.Segmenter (12 ms for the first: ICU's break rules) and, in the newest,
 * the regular expression /^\p{RGI_Emoji}$/v (14 ms: V8 builds the set of
 * every emoji sequence). Every `pybal` command paid that, though only help
 * and usage errors measure text. Each `import stringWidth from
 * 'string-width'` gets instead a function that loads its copy on the first
 * call. (A copy that came to export more than its default would fail the
 * build here: "No matching export".)
 */
const lazyStringWidth = lazyModule('string-width', /^string-width$/, (real) => [
  'let real;',
  'export default function stringWidth(...args) {',
  `  real ??= require(${real});`,
  '  return real.default(...args);',
  '}',
]);

/**
 * prom-client's index requires its Pushgateway, which requires node:https
 * (and so node:tls), node:http and node:zlib as it loads: the daemon compiled
 * them at every start (0.1 s in a CPU profile of a start in the lab guest,
 * where the daemon's V8 flag costs Node its code cache; too little to tell in
 * a whole start's time) and never pushes. The index gets instead a
 * constructor that loads the real one at its first use.
 */
export const lazyPushgateway = lazyModule(
  'pushgateway',
  /^\.\/lib\/pushgateway$/,
  (real) => ['let real;', 'module.exports = function Pushgateway(...args) {', `  real ??= require(${real});`, '  return new real(...args);', '};'],
  '/node_modules/prom-client/',
);

/**
 * prom-client's CPU metric requires @opentelemetry/api as it loads (ten
 * modules; 30 ms of a profiled start in the lab guest), for exemplars, which
 * pybal never enables. Its require gets an object that loads the real one at
 * the first property read.
 */
export const lazyOpenTelemetry = lazyModule(
  'opentelemetry',
  /^@opentelemetry\/api$/,
  (real) => ['let real;', 'module.exports = new Proxy({}, {', `  get: (_, key) => (real ??= require(${real}))[key],`, '});'],
  '/node_modules/prom-client/',
);

/**
 * node:assert, for a check or two in yargs and in sonic-boom (pino's
 * writer), was compiled at every start of the daemon (without Node's code
 * cache, see lazyPushgateway), and yargs runs its checks at every start.
 * Each import gets functions that pass a check that holds at once, and
 * load node:assert for one that fails, which then throws its own error:
 * yargs' two named functions (Object.is is their comparison); sonic-boom's
 * call of the module (a truthy value passes).
 */
export const lazyAssertOfYargs = lazyModule(
  'assert-yargs',
  /^assert$/,
  (real) => [
    'let real;',
    `const load = () => (real ??= require(${real}));`,
    'export function notStrictEqual(...args) {',
    '  if (args.length < 2 || Object.is(args[0], args[1])) load().notStrictEqual(...args);',
    '}',
    'export function strictEqual(...args) {',
    '  if (args.length < 2 || !Object.is(args[0], args[1])) load().strictEqual(...args);',
    '}',
  ],
  '/node_modules/yargs/',
);
export const lazyAssertOfSonicBoom = lazyModule(
  'assert-sonic-boom',
  /^assert$/,
  (real) => ['let real;', 'module.exports = function assert(...args) {', `  if (args.length === 0 || !args[0]) (real ??= require(${real}))(...args);`, '};'],
  '/node_modules/sonic-boom/',
);

/**
 * pino requires thread-stream (its transports' worker thread) as it loads,
 * and thread-stream requires node:assert, node:worker_threads' machinery and
 * more; pybal writes with pino.destination() and runs no transport. pino's
 * one use, `new ThreadStream(...)`, gets a constructor that loads it then.
 */
export const lazyThreadStream = lazyModule(
  'thread-stream',
  /^thread-stream$/,
  (real) => ['let real;', 'module.exports = function ThreadStream(...args) {', `  real ??= require(${real});`, '  return new real(...args);', '};'],
  '/node_modules/pino/',
);

export async function bundleCli(): Promise<void> {
  rmSync(CLI_DIR, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: {
      pybal: join(root, 'dist/src/cli/main.js'),
      [BFD_WORKER_ENTRY]: join(root, 'dist/src/bfd/worker.js'),
      [BGP_WORKER_ENTRY]: join(root, 'dist/src/bgp/worker.js'),
      [CHECK_WORKER_ENTRY]: join(root, 'dist/src/monitors/check-worker.js'),
    },
    outdir: CLI_DIR,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    chunkNames: '[name]-[hash]',
    external: EXTERNAL_PACKAGES.flatMap((p) => [p, `${p}/*`]),
    plugins: [fileLocations, lazyAssertOfSonicBoom, builtinRequires, yargsLocales, lazyStringWidth, lazyPushgateway, lazyOpenTelemetry, lazyAssertOfYargs, lazyThreadStream],
    metafile: true,
    logLevel: 'warning',
    legalComments: 'eof',
  });
  checkPackagesLocated(result.metafile.inputs);
  writeFileSync(join(CLI_DIR, 'meta.json'), `${JSON.stringify(result.metafile, null, 1)}\n`);
  mkdirSync(join(CLI_DIR, 'locales'), { recursive: true });
  cpSync(join(root, 'node_modules/yargs/locales'), join(CLI_DIR, 'locales'), { recursive: true });
  // The entry keeps main.ts's `#!/usr/bin/env node`; npm's bin and `./dist/cli/pybal.js` need it executable.
  chmodSync(CLI_ENTRY, 0o755);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await bundleCli();
}
