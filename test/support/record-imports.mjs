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
 * Modules that a CommonJS package require()s internally are not seen on
 * Node 20 (only what ESM imports is), which is enough: a package's entry point is.
 */
import { appendFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { register } from 'node:module';

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
  register(import.meta.url, { data: { file: process.env.PYBAL_RECORD_IMPORTS } });
}
