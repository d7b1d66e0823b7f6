/**
 * `node --import ./test/support/record-imports.mjs PROGRAM ...` appends the URL
 * of every module the ES module loader loads (the program's own files, the
 * packages they import, node: builtins) to the file named by
 * PYBAL_RECORD_IMPORTS, one per line. test/cli/module-graph.test.ts uses it to
 * prove that a light command never loads the daemon.
 *
 * Plain JavaScript, not TypeScript, so that it runs without a build. This one
 * file is both the preloaded module (which registers the hooks, Node >= 20.6)
 * and the hooks module (whose load hook runs on the loader's own thread).
 * The loader hooks do not see require() on Node 20 (the IPVS client
 * require()s netlink, and netlink its own files), so the CommonJS modules
 * loaded by then (require.cache) are added when the process exits.
 */
import { appendFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

let output;

/** Runs on the hooks thread when register() starts it. */
export function initialize(data) {
  output = data.file;
}

export async function load(url, context, nextLoad) {
  if (output) appendFileSync(output, `${url}\n`);
  return nextLoad(url, context);
}

// The preloaded copy registers itself; the copy loaded as hooks must not (it runs off the main thread).
if (isMainThread && process.env.PYBAL_RECORD_IMPORTS) {
  const file = process.env.PYBAL_RECORD_IMPORTS;
  register(import.meta.url, { data: { file } });
  const cache = createRequire(import.meta.url).cache;
  process.on('exit', () => {
    const required = Object.keys(cache).map((path) => `${pathToFileURL(path).href}\n`);
    if (required.length > 0) appendFileSync(file, required.join(''));
  });
}
