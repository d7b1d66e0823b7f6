/**
 * A step of `npm run build`: compiles the sockmark addon (src/native/sockmark.c,
 * a plain C Node-API module: sockets that carry a firewall mark, for data-path
 * checks; docs/native.md) into dist/native/sockmark.node, with `cc` (or $CC)
 * and Node's own headers. Nothing to do, and fast, when the addon is newer
 * than its source.
 *
 * Node's headers (node_api.h) are taken from $npm_config_nodedir/include/node
 * (npm's and node-gyp's --nodedir) when that is set, else from beside the node
 * that runs this: <prefix>/include/node for <prefix>/bin/node (/usr/include/node
 * with Debian's nodejs). No compiler or no headers fails the build, saying so.
 *
 * No node-gyp: one C file and no dependency needs only the compiler, as
 * test/lab/uml.ts does for its launcher.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPybalPackage } from '../src/runtime/package-root.js';

/** Where the addon's source and the built addon are, below pybal's root (src/monitors/marked-socket.ts loads the latter). */
export const SOCKMARK_SOURCE = 'src/native/sockmark.c';
export const SOCKMARK_ADDON = 'dist/native/sockmark.node';

const CFLAGS = ['-Wall', '-Wextra', '-Werror', '-O2', '-fPIC', '-shared'];

/** The directory with node_api.h for the node running this (see the top of this file). */
export function nodeIncludeDir(env: NodeJS.ProcessEnv = process.env): string {
  const nodedir = env.npm_config_nodedir;
  if (nodedir !== undefined && nodedir !== '') return join(resolve(nodedir), 'include', 'node');
  return join(dirname(dirname(process.execPath)), 'include', 'node');
}

/**
 * Builds dist/native/sockmark.node below `root` when it is missing or older
 * than its source; returns its path. Throws, saying what is missing, when it
 * cannot.
 */
export function buildNative(root = pybalRoot()): string {
  const source = join(root, SOCKMARK_SOURCE);
  const addon = join(root, SOCKMARK_ADDON);
  if (existsSync(addon) && statSync(addon).mtimeMs >= statSync(source).mtimeMs) return addon;
  const include = nodeIncludeDir();
  if (!existsSync(join(include, 'node_api.h'))) {
    throw new Error(`cannot build ${SOCKMARK_ADDON}: Node's headers are not in ${include} (no node_api.h): install them (Debian: nodejs, or libnode-dev) or set npm_config_nodedir`);
  }
  mkdirSync(dirname(addon), { recursive: true });
  // Built beside and renamed: a test worker that loads the addon meanwhile never sees half a file.
  const partial = `${addon}.${process.pid}.tmp`;
  const cc = process.env.CC ?? 'cc';
  try {
    execFileSync(cc, [...CFLAGS, '-I', include, '-o', partial, source], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    rmSync(partial, { force: true });
    const e = error as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error(`cannot build ${SOCKMARK_ADDON}: no C compiler (${cc}): install gcc and libc6-dev`);
    throw new Error(`cannot build ${SOCKMARK_ADDON}: ${cc} failed on ${SOCKMARK_SOURCE}:\n${e.stderr?.toString() ?? String(error)}`);
  }
  renameSync(partial, addon);
  return addon;
}

function pybalRoot(): string {
  const found = findPybalPackage(dirname(fileURLToPath(import.meta.url)));
  if (found === undefined) throw new Error('packaging/build-native: no package.json of pybal above this file');
  return found.dir;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    buildNative();
  } catch (error) {
    console.error(`build-native: ${(error as Error).message}`);
    process.exit(1);
  }
}
