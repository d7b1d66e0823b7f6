/**
 * A step of `npm run build`: compiles pybal's addons, Node-API modules in
 * plain C (docs/native.md), with `cc` (or $CC) and Node's own headers, and one
 * in C++ (v8heap, which calls V8's own API) with `c++` (or $CXX):
 * src/native/sockmark.c (sockets that carry a firewall mark, for data-path
 * checks) into dist/native/sockmark.node, and src/native/memtrim.c (the C
 * heap's free pages back to the kernel) into dist/native/memtrim.node, and
 * src/native/tcpcheck.c (ProxyFetch's plain TCP connections on libuv) into
 * dist/native/tcpcheck.node, and src/native/v8heap.cc (a thread's JS heap
 * kept small) into dist/native/v8heap.node.
 * Nothing to do, and fast, for an addon newer than its source.
 *
 * Node's headers (node_api.h) are taken from $npm_config_nodedir/include/node
 * (npm's and node-gyp's --nodedir) when that is set, else from beside the node
 * that runs this: <prefix>/include/node for <prefix>/bin/node (/usr/include/node
 * with Debian's nodejs). No compiler or no headers fails the build, saying so.
 *
 * No node-gyp: a C file each and no dependency needs only the compiler, as
 * test/lab/uml.ts does for its launcher.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPybalPackage } from '../src/runtime/package-root.js';

/** Where the addons' sources and the built addons are, below pybal's root (src/runtime/native-addon.ts loads the latter). */
export const SOCKMARK_SOURCE = 'src/native/sockmark.c';
export const SOCKMARK_ADDON = 'dist/native/sockmark.node';
export const MEMTRIM_SOURCE = 'src/native/memtrim.c';
export const MEMTRIM_ADDON = 'dist/native/memtrim.node';
export const TCPCHECK_SOURCE = 'src/native/tcpcheck.c';
export const TCPCHECK_ADDON = 'dist/native/tcpcheck.node';
export const V8HEAP_SOURCE = 'src/native/v8heap.cc';
export const V8HEAP_ADDON = 'dist/native/v8heap.node';
export const NATIVE_ADDONS: readonly { readonly source: string; readonly addon: string }[] = [
  { source: SOCKMARK_SOURCE, addon: SOCKMARK_ADDON },
  { source: MEMTRIM_SOURCE, addon: MEMTRIM_ADDON },
  { source: TCPCHECK_SOURCE, addon: TCPCHECK_ADDON },
  { source: V8HEAP_SOURCE, addon: V8HEAP_ADDON },
];

const CFLAGS = ['-Wall', '-Wextra', '-Werror', '-O2', '-fPIC', '-shared'];
/**
 * C++: no exceptions and no RTTI, so the addon needs nothing of libstdc++;
 * Node's headers as system headers (V8's inline functions leave parameters
 * unused, which -Wextra -Werror would refuse).
 */
const CXXFLAGS = ['-std=c++17', '-fno-exceptions', '-fno-rtti', ...CFLAGS];

/** The compiler and its arguments for a source: C++ for .cc, C otherwise. */
export function compileCommand(source: string, include: string, output: string, env: NodeJS.ProcessEnv = process.env): { compiler: string; args: string[] } {
  // None of the C++ runtime's libraries (nothing of them is used), and libc though nothing of it is either, so that
  // the object says what it runs on (lintian: shared-library-lacks-prerequisites).
  if (source.endsWith('.cc')) return { compiler: env.CXX ?? 'c++', args: [...CXXFLAGS, '-isystem', include, '-o', output, source, '-nodefaultlibs', '-Wl,--no-as-needed', '-lc'] };
  return { compiler: env.CC ?? 'cc', args: [...CFLAGS, '-I', include, '-o', output, source] };
}

/** The directory with node_api.h for the node running this (see the top of this file). */
export function nodeIncludeDir(env: NodeJS.ProcessEnv = process.env): string {
  const nodedir = env.npm_config_nodedir;
  if (nodedir !== undefined && nodedir !== '') return join(resolve(nodedir), 'include', 'node');
  return join(dirname(dirname(process.execPath)), 'include', 'node');
}

/**
 * Builds each of pybal's addons below `root` that is missing or older than
 * its source; returns the sockmark addon's path (what the tests load). Throws,
 * saying what is missing, when it cannot.
 */
export function buildNative(root = pybalRoot()): string {
  for (const { source, addon } of NATIVE_ADDONS) buildAddon(root, source, addon);
  return join(root, SOCKMARK_ADDON);
}

function buildAddon(root: string, sourcePath: string, addonPath: string): void {
  const source = join(root, sourcePath);
  const addon = join(root, addonPath);
  if (existsSync(addon) && statSync(addon).mtimeMs >= statSync(source).mtimeMs) return;
  const include = nodeIncludeDir();
  if (!existsSync(join(include, 'node_api.h'))) {
    throw new Error(`cannot build ${addonPath}: Node's headers are not in ${include} (no node_api.h): install them (Debian: nodejs, or libnode-dev) or set npm_config_nodedir`);
  }
  mkdirSync(dirname(addon), { recursive: true });
  // Built beside and renamed: a test worker that loads the addon meanwhile never sees half a file.
  const partial = `${addon}.${process.pid}.tmp`;
  const { compiler, args } = compileCommand(source, include, partial);
  try {
    execFileSync(compiler, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    rmSync(partial, { force: true });
    const e = error as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error(`cannot build ${addonPath}: no ${source.endsWith('.cc') ? 'C++' : 'C'} compiler (${compiler}): install ${source.endsWith('.cc') ? 'g++' : 'gcc'} and libc6-dev`);
    throw new Error(`cannot build ${addonPath}: ${compiler} failed on ${sourcePath}:\n${e.stderr?.toString() ?? String(error)}`);
  }
  renameSync(partial, addon);
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
