/**
 * pybal's own Node-API addons (src/native/*.c, built into dist/native by
 * `npm run build`; docs/native.md), loaded below pybal's root: the checkout,
 * or /usr/lib/pybal in the Debian package. An addon that is missing, does not
 * load or lacks a function is not an exception here but a reason, which its
 * user reports as it sees fit (a check that fails, a line at start).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPybalPackage } from './package-root.js';

export type LoadedAddon<T> = { readonly addon: T } | { readonly reason: string };

/**
 * Loads dist/native/<name>.node; `functions` are the exports it must have.
 * The reason ("the <name> addon (<path>): it is missing; run npm run build")
 * names the file and what to do; its user says what needs the addon.
 */
export function loadNativeAddon<T>(name: string, functions: readonly (keyof T & string)[]): LoadedAddon<T> {
  const relative = `dist/native/${name}.node`;
  const root = findPybalPackage(dirname(fileURLToPath(import.meta.url)))?.dir;
  const path = root === undefined ? relative : join(root, relative);
  const fail = (why: string): LoadedAddon<T> => ({ reason: `the ${name} addon (${path}): ${why}; run npm run build` });
  if (root === undefined) return fail('no package.json of pybal above this module');
  if (!existsSync(path)) return fail('it is missing');
  try {
    const addon = createRequire(import.meta.url)(path) as Record<string, unknown>;
    const lacking = functions.filter((f) => typeof addon[f] !== 'function');
    return lacking.length === 0 ? { addon: addon as T } : fail(`it lacks ${lacking.join(', ')}`);
  } catch (error) {
    return fail(`it does not load: ${(error as Error).message}`);
  }
}
