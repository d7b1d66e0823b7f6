/**
 * `pybal import FILE [--from keepalived|ldirectord] [--out DIR] [--pool-dir PATH]
 * [--fwmark-ip [MARK=]ADDRESS]... [--force]`: converts a keepalived.conf or an
 * ldirectord.cf into DIR/pybal.conf and one pool file per service in
 * DIR/pools/, each thing not carried over a comment naming its file and line.
 * The reading, converting and checking are pure (src/import, src/config);
 * the files are read and written here. Exit 0 when the files were written,
 * 1 when the input cannot be read or parsed or an output file exists, 2 on a
 * usage error.
 */

import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

import { parseConfig } from '../config/parse-config.js';
import { convertToPybal, DEFAULT_POOL_DIR } from '../import/convert.js';
import { detectFormat } from '../import/detect.js';
import { parseKeepalived } from '../import/keepalived.js';
import type { IncludeResolver } from '../import/keepalived-syntax.js';
import { parseLdirectord } from '../import/ldirectord.js';
import type { ImportFormat, LvsImport } from '../import/model.js';
import { parseIpAddress } from '../config/ip-address.js';
import { fileErrorReason, formatProblem } from '../runtime/errors.js';
import { formatWarning } from './check-config.js';

export interface ImportOptions {
  readonly file: string;
  readonly from?: ImportFormat;
  /** Where pybal.conf and pools/ are written (default: the current directory). */
  readonly out?: string;
  /** The pool directory on the director (default /etc/pybal/pools). */
  readonly poolDir?: string;
  /** `MARK=ADDRESS` or `ADDRESS` (every mark): the VIP of firewall-mark services. */
  readonly fwmarkIps?: readonly string[];
  readonly force?: boolean;
}

const USAGE_ERROR = 2;

/** Input files larger than this are refused (a mistake, not a configuration). */
const MAX_INPUT_BYTES = 16 * 1024 * 1024;

function readText(path: string): string {
  const size = statSync(path).size;
  if (size > MAX_INPUT_BYTES) throw new Error(`larger than ${MAX_INPUT_BYTES} bytes`);
  return readFileSync(path, 'utf8');
}

function globToRegExp(glob: string): RegExp {
  let source = '';
  for (const c of glob) source += c === '*' ? '[^/]*' : c === '?' ? '[^/]' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${source}$`);
}

/** keepalived's include: relative to the including file; `*` and `?` in the file name part. */
export const readIncludes: IncludeResolver = (pattern, from) => {
  const path = pattern.startsWith('/') ? pattern : join(dirname(from), pattern);
  try {
    if (!/[*?]/.test(basename(path))) return { files: [{ file: path, text: readText(path) }] };
    if (/[*?[{]/.test(dirname(path))) return { error: 'wildcards are supported in the file name only, not in directories' };
    const dir = dirname(path);
    const matcher = globToRegExp(basename(path));
    const names = existsSync(dir) ? readdirSync(dir).filter((n) => matcher.test(n)).sort() : [];
    return { files: names.map((n) => ({ file: join(dir, n), text: readText(join(dir, n)) })) };
  } catch (error) {
    return { error: fileErrorReason(error) };
  }
};

/** --fwmark-ip values -> a lookup, or the first bad value. */
export function parseFwmarkIps(values: readonly string[]): { lookup: (mark: number) => string | undefined } | { error: string } {
  const byMark = new Map<number, string>();
  let every: string | undefined;
  for (const value of values) {
    const m = /^(?:(\d+)=)?(.+)$/.exec(value);
    const ip = m?.[2] === undefined ? undefined : parseIpAddress(m[2]);
    if (m === null || ip === undefined) return { error: `--fwmark-ip: expected [MARK=]ADDRESS, got ${JSON.stringify(value)}` };
    if (m[1] === undefined) every = ip.address;
    else byMark.set(Number(m[1]), ip.address);
  }
  return { lookup: (mark) => byMark.get(mark) ?? every };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export async function runImport(options: ImportOptions, out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const fwmark = parseFwmarkIps(options.fwmarkIps ?? []);
  if ('error' in fwmark) {
    err(`pybal import: ${fwmark.error}`);
    return USAGE_ERROR;
  }
  let text: string;
  try {
    text = readText(options.file);
  } catch (error) {
    err(`pybal import: ${options.file}: ${fileErrorReason(error)}`);
    return 1;
  }
  const format = options.from ?? detectFormat(text, options.file);
  if (format === undefined) {
    err(`pybal import: ${options.file}: cannot tell whether this is a keepalived.conf or an ldirectord.cf; say which with --from`);
    return 1;
  }
  const readOptions = { fwmarkIp: fwmark.lookup };
  const imported: LvsImport =
    format === 'keepalived' ? parseKeepalived(text, options.file, readIncludes, readOptions) : parseLdirectord(text, options.file, readOptions);
  if (imported.errors.length > 0) {
    for (const problem of imported.errors) err(formatProblem(problem));
    err(`pybal import: ${options.file} (${format}): ${plural(imported.errors.length, 'error')}; nothing written`);
    return 1;
  }

  const poolDir = options.poolDir ?? DEFAULT_POOL_DIR;
  const conversion = convertToPybal(imported, { poolDir });
  const outDir = options.out ?? '.';
  const confPath = join(outDir, 'pybal.conf');
  const poolsDir = join(outDir, 'pools');
  const targets = [confPath, ...conversion.pools.map((p) => join(poolsDir, p.service))];
  const existing = targets.filter((t) => existsSync(t));
  if (existing.length > 0 && options.force !== true) {
    err(`pybal import: refusing to overwrite ${existing.join(', ')} (use --force)`);
    return 1;
  }
  try {
    mkdirSync(poolsDir, { recursive: true });
    writeFileSync(confPath, conversion.conf);
    for (const pool of conversion.pools) writeFileSync(join(poolsDir, pool.service), pool.text);
  } catch (error) {
    err(`pybal import: cannot write into ${outDir}: ${fileErrorReason(error)}`);
    return 1;
  }

  const servers = conversion.services.reduce((n, s) => n + s.servers, 0);
  out(
    `${options.file} (${format}): ${plural(conversion.services.length, 'service')}, ${plural(servers, 'server')}, ${plural(conversion.comments, 'comment')} -> ${confPath}, ${plural(conversion.pools.length, 'pool file')} in ${poolsDir}`,
  );
  for (const s of conversion.services) {
    const missing = s.missing.length > 0 ? `; fill in ${s.missing.join(', ')}` : '';
    out(`  [${s.name}] ${plural(s.servers, 'server')}, ${plural(s.comments, 'comment')}${missing}`);
  }
  if (resolve(poolDir) !== resolve(poolsDir)) out(`the pool files belong in ${poolDir} on the director (config = file://${poolDir}/NAME)`);
  const check = parseConfig(conversion.conf, confPath);
  if (check.errors.length === 0 && check.warnings.length === 0) {
    out(`pybal check-config: ${confPath}: OK`);
  } else {
    for (const problem of check.errors) out(`pybal check-config: ${formatProblem(problem)}`);
    for (const problem of check.warnings) out(`pybal check-config: ${formatWarning(problem)}`);
  }
  return 0;
}
