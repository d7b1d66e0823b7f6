/**
 * Reads pybal.conf from disk and parses it. Unlike PyBal, which silently runs
 * with no services when the file is missing, a missing or unreadable file is
 * an error naming it.
 */

import { readFile } from 'node:fs/promises';

import { errorMessage } from '../runtime/errors.js';
import { parseConfig, type ParseResult } from './parse-config.js';

/** PyBal's default (`-c`). */
export const DEFAULT_CONFIG_FILE = '/etc/pybal/pybal.conf';

export async function loadConfig(path: string): Promise<ParseResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : errorMessage(e);
    return { errors: [{ file: path, message: `cannot read the configuration: ${why}` }], warnings: [] };
  }
  return parseConfig(text, path);
}
