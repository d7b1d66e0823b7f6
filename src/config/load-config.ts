/**
 * Reads pybal.conf from disk and parses it. Unlike PyBal, which silently runs
 * with no services when the file is missing, a missing or unreadable file is
 * an error naming it.
 *
 * Only a regular file (or a symbolic link to one) is read, and only up to
 * MAX_CONFIG_BYTES. The file is opened non-blocking and its handle checked
 * before any read, so that a FIFO (or a device, or a socket) named as the
 * configuration is refused at once: a blocking open() of a FIFO waits for a
 * writer forever, and a daemon stuck in it on SIGHUP would not even shut down.
 */

import { constants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';

import { fileErrorReason } from '../runtime/errors.js';
import { sliced } from '../runtime/sliced.js';
import { parseConfigSteps, type ParseResult } from './parse-config.js';

/** PyBal's default (`-c`). */
export { DEFAULT_CONFIG_FILE } from '../runtime/defaults.js';

/**
 * Larger configuration files are refused. A real pybal.conf is a few KiB; a
 * site with thousands of services stays under 1 MiB. 16 MiB only stops a
 * mistake (a log or an image named with -c) from being read into memory.
 */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** What a file that is not a regular one is, for the message. */
function kindOf(s: Pick<Stats, 'isDirectory' | 'isFIFO' | 'isSocket' | 'isCharacterDevice' | 'isBlockDevice'>): string {
  if (s.isDirectory()) return 'a directory';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  return 'not a file';
}

class ConfigFileError extends Error {}

async function describeOpenError(path: string, error: unknown): Promise<string> {
  const code = (error as NodeJS.ErrnoException).code;
  // open() of a Unix socket fails with ENXIO; name what is there instead.
  if (code === 'ENXIO' || code === 'EISDIR') {
    const s = await stat(path).catch(() => undefined);
    if (s !== undefined && !s.isFile()) return `not a regular file (${kindOf(s)})`;
  }
  return fileErrorReason(error);
}

/**
 * Reads at most maxBytes + 1 bytes, so that a file growing after fstat() is
 * still caught. A file of the size fstat() gave takes two reads: its bytes,
 * then the end (each read is a slow system call in a virtual machine).
 */
async function readLimited(handle: FileHandle, maxBytes: number, expectedBytes: number): Promise<Buffer> {
  const chunkBytes = Math.max(64 * 1024, expectedBytes + 1);
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const buffer = Buffer.alloc(Math.min(chunkBytes, maxBytes + 1 - total));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
    if (bytesRead === 0) break;
    chunks.push(buffer.subarray(0, bytesRead));
    total += bytesRead;
    if (total > maxBytes) throw new ConfigFileError(`larger than the ${maxBytes}-byte limit (grew while being read)`);
  }
  return Buffer.concat(chunks, total);
}

/** The text of a regular file no larger than maxBytes; throws ConfigFileError (or a system error) otherwise. */
async function readRegularFile(path: string, maxBytes: number): Promise<string> {
  // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer.
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const s = await handle.stat();
    if (!s.isFile()) throw new ConfigFileError(`not a regular file (${kindOf(s)})`);
    if (s.size > maxBytes) throw new ConfigFileError(`larger than the ${maxBytes}-byte limit (${s.size} bytes)`);
    return new TextDecoder('utf-8').decode(await readLimited(handle, maxBytes, s.size));
  } finally {
    await handle.close();
  }
}

/** Reads and parses `path`; the parse runs in slices (src/runtime/sliced.ts), the event loop's other work between them. */
export async function loadConfig(path: string): Promise<ParseResult> {
  let text: string;
  try {
    text = await readRegularFile(path, MAX_CONFIG_BYTES);
  } catch (e) {
    const why = e instanceof ConfigFileError ? e.message : await describeOpenError(path, e);
    return { errors: [{ file: path, message: `cannot read the configuration: ${why}` }], warnings: [] };
  }
  return sliced(parseConfigSteps(text, path));
}
