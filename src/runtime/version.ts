import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPybalPackage } from './package-root.js';

/**
 * pybal's version, from the package.json above this module (the same file
 * whether running from src/ under vitest or from dist/ after a build).
 */
export function readVersion(): string {
  return findPybalPackage(dirname(fileURLToPath(import.meta.url)))?.version ?? 'unknown';
}
