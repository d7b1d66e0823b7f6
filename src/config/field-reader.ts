/**
 * Typed reads of one section's values. Each read either returns the value (or
 * its default when the key is absent) or records a problem naming file, line
 * and key and returns the default, so that every mistake of a file is
 * collected in one pass. Pure.
 */

import type { Problem } from '../runtime/errors.js';
import { locateInValue, pyStrip, type ResolvedEntry } from './ini-reader.js';
import { parseIpAddress, type IpAddress } from './ip-address.js';
import { formatPyValue, parsePythonLiteral, PythonLiteralError, pyTypeName, type PyValue } from './python-literal.js';
import type { Community } from './types.js';

export interface FieldContext {
  readonly file: string;
  /** The section's name and header line (where a missing key is reported). */
  readonly section: string;
  readonly sectionLine: number | undefined;
  readonly entries: ReadonlyMap<string, ResolvedEntry>;
  /** Keys present but unusable (already reported): neither missing nor read. */
  readonly failed?: ReadonlySet<string>;
  readonly errors: Problem[];
  readonly warnings: Problem[];
  /** The Python literals read so far in the file (see LiteralCache); none kept when absent. */
  readonly literals?: LiteralCache;
}

/**
 * The Python literals already read in one file, by text: the services of a
 * file often share a value (`monitors`), read once instead of once per
 * service. A text that is not a literal keeps its error. Only literals
 * without names are kept (the names allowed change what a text means).
 */
export type LiteralCache = Map<string, PyValue | PythonLiteralError>;

export interface Range {
  readonly min?: number;
  readonly max?: number;
}

export const MAX_U32 = 4294967295;
/** The longest delay a Node timer can hold (about 24.8 days). */
const MAX_TIMER_MS = 2147483647;

const TRUE_WORDS = ['1', 'yes', 'true', 'on', 't', 'y'];
const FALSE_WORDS = ['0', 'no', 'false', 'off', 'f', 'n'];

const INT_RE = /^[-+]?\d+$/;
const FLOAT_RE = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** A value for messages: quoted, shortened, on one line. */
export function show(value: string): string {
  const oneLine = value.replace(/\n/g, '\\n');
  return `'${oneLine.length > 60 ? `${oneLine.slice(0, 57)}...` : oneLine}'`;
}

function rangeMessage(range: Range, got: number | string): string | undefined {
  const { min, max } = range;
  const n = Number(got);
  if (min !== undefined && max !== undefined && (n < min || n > max)) return `must be between ${min} and ${max}, got ${got}`;
  if (min !== undefined && n < min) return `must be at least ${min}, got ${got}`;
  if (max !== undefined && n > max) return `must be at most ${max}, got ${got}`;
  return undefined;
}

/** An http:// or https:// URL with a host right after `//` (WHATWG URL would read http:///x as host x). */
export function isHttpUrl(url: string): boolean {
  if (!/^https?:\/\/[^/]/i.test(url)) return false;
  try {
    return new URL(url).hostname !== '';
  } catch {
    return false;
  }
}

/** One AS number, 1..4294967295 (0 is reserved, RFC 7607). */
export function parseAsn(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= MAX_U32 ? n : undefined;
}

/** RFC 1997's well-known communities. */
export const WELL_KNOWN_COMMUNITIES: Readonly<Record<string, Community>> = {
  'no-export': { asn: 0xffff, value: 0xff01 },
  'no-advertise': { asn: 0xffff, value: 0xff02 },
  'no-export-subconfed': { asn: 0xffff, value: 0xff03 },
};

export function parseCommunity(text: string): Community | undefined {
  const known = WELL_KNOWN_COMMUNITIES[text.toLowerCase()];
  if (known) return known;
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m) return undefined;
  const asn = Number(m[1]);
  const value = Number(m[2]);
  return asn <= 0xffff && value <= 0xffff ? { asn, value } : undefined;
}

/** A Python literal, or why the text is not one; from the cache when it has the text. */
function readLiteral(text: string, names: readonly string[], cache: LiteralCache | undefined): PyValue | PythonLiteralError {
  const kept = names.length === 0 ? cache : undefined;
  let result = kept?.get(text);
  if (result === undefined) {
    try {
      result = parsePythonLiteral(text, { names });
    } catch (err) {
      if (!(err instanceof PythonLiteralError)) throw err;
      result = err;
    }
    kept?.set(text, result);
  }
  return result;
}

/** What a list item check returns: the item's value, or why it is wrong. */
export type ItemResult<T> = { readonly value: T } | { readonly error: string };

const stringItem = (v: PyValue): ItemResult<string> => (v.type === 'str' ? { value: v.value } : { error: `expected a string, got ${pyTypeName(v)}` });

/**
 * The reader of one section. A class rather than a record of closures: a
 * file of a thousand services makes a thousand readers, and methods on a
 * prototype are not made again for each.
 */
export class FieldReader {
  constructor(private readonly ctx: FieldContext) {}

  has(key: string): boolean {
    return this.ctx.entries.has(key) || (this.ctx.failed?.has(key) ?? false);
  }

  entry(key: string): ResolvedEntry | undefined {
    return this.ctx.entries.get(key);
  }

  lineOf(key: string): number | undefined {
    return this.entry(key)?.line ?? this.ctx.sectionLine;
  }

  error(key: string, message: string, line = this.lineOf(key)): void {
    this.ctx.errors.push({ file: this.ctx.file, line, key, message });
  }

  warn(key: string | undefined, message: string, line = key === undefined ? this.ctx.sectionLine : this.lineOf(key)): void {
    this.ctx.warnings.push(key === undefined ? { file: this.ctx.file, line, message } : { file: this.ctx.file, line, key, message });
  }

  missing(key: string, why = 'missing required key'): void {
    if (this.ctx.failed?.has(key)) return;
    this.ctx.errors.push({ file: this.ctx.file, line: this.ctx.sectionLine, key, message: `${why} (in [${this.ctx.section}])` });
  }

  /** The value, stripped; undefined when absent. */
  text(key: string): string | undefined {
    const e = this.entry(key);
    return e === undefined ? undefined : pyStrip(e.value);
  }

  /** A value that must be present and non-empty. */
  requiredText(key: string): string | undefined {
    const value = this.text(key);
    if (value === undefined) this.missing(key);
    else if (value === '') this.error(key, 'must not be empty');
    else return value;
    return undefined;
  }

  /** ConfigParser's and PyBal's boolean spellings, case-insensitive. */
  bool(key: string, fallback: boolean): boolean {
    const value = this.text(key);
    if (value === undefined) return fallback;
    const word = value.toLowerCase();
    if (TRUE_WORDS.includes(word)) return true;
    if (FALSE_WORDS.includes(word)) return false;
    this.error(key, `expected a boolean (yes/no, true/false, on/off, 1/0), got ${show(value)}`);
    return fallback;
  }

  /** An integer as Python's int() reads it, within a range. */
  int(key: string, fallback: number, range: Range = {}): number {
    const value = this.text(key);
    if (value === undefined) return fallback;
    return this.parseInt(key, value, range) ?? fallback;
  }

  /** Checks a present integer; undefined (and an error) when it is not one. */
  parseInt(key: string, value: string, range: Range = {}): number | undefined {
    if (!INT_RE.test(value)) {
      this.error(key, `expected an integer, got ${show(value)}`);
      return undefined;
    }
    const n = Number(value);
    const bad = rangeMessage(range, n);
    if (bad !== undefined) {
      this.error(key, bad);
      return undefined;
    }
    return n;
  }

  optionalInt(key: string, range: Range = {}): number | undefined {
    const value = this.text(key);
    return value === undefined ? undefined : this.parseInt(key, value, range);
  }

  /** A number as Python's float() reads it (no inf or nan), within a range. */
  float(key: string, fallback: number, range: Range = {}): number {
    const value = this.text(key);
    if (value === undefined) return fallback;
    if (!FLOAT_RE.test(value)) {
      this.error(key, `expected a number, got ${show(value)}`);
      return fallback;
    }
    const n = Number(value);
    const bad = rangeMessage(range, value);
    if (bad !== undefined) {
      this.error(key, bad);
      return fallback;
    }
    return n;
  }

  /**
   * A duration in seconds (fractions allowed) returned in milliseconds;
   * greater than 0 unless zero is allowed, and at least `minSec` if given.
   */
  seconds(key: string, fallbackSec: number, options: { allowZero?: boolean; minSec?: number } = {}): number {
    const value = this.text(key);
    if (value === undefined) return fallbackSec * 1000;
    if (!FLOAT_RE.test(value)) {
      this.error(key, `expected a number of seconds, got ${show(value)}`);
      return fallbackSec * 1000;
    }
    const sec = Number(value);
    const ms = Math.round(sec * 1000);
    if (sec < 0 || (sec === 0 && !options.allowZero)) {
      this.error(key, options.allowZero ? `must be 0 or more seconds, got ${value}` : `must be greater than 0 seconds, got ${value}`);
    } else if (sec > 0 && ms === 0) {
      this.error(key, `must be at least 0.001 seconds, got ${value}`);
    } else if (options.minSec !== undefined && sec < options.minSec) {
      this.error(key, `must be at least ${options.minSec} seconds, got ${value}`);
    } else if (ms > MAX_TIMER_MS) {
      this.error(key, `must be at most ${Math.floor(MAX_TIMER_MS / 1000)} seconds, got ${value}`);
    } else {
      return ms;
    }
    return fallbackSec * 1000;
  }

  /** A Python literal, read without evaluating anything. */
  literal(key: string, names: readonly string[] = []): PyValue | undefined {
    const e = this.entry(key);
    if (e === undefined) return undefined;
    const result = readLiteral(e.value, names, this.ctx.literals);
    if (!(result instanceof PythonLiteralError)) return result;
    const at = locateInValue(e, result.offset);
    if (at) this.error(key, `malformed Python literal at column ${at.column}: ${result.message}`, at.line);
    else this.error(key, `malformed Python literal at character ${result.offset + 1} of the interpolated value: ${result.message}`);
    return undefined;
  }

  /** A Python list whose items are checked by `item`; undefined when absent or bad. */
  list<T>(key: string, item: (value: PyValue) => ItemResult<T>, names: readonly string[] = []): T[] | undefined {
    const value = this.literal(key, names);
    return value === undefined ? undefined : this.itemsOf(key, value, item);
  }

  /** A Python list of strings. */
  stringList(key: string): string[] | undefined {
    return this.list(key, stringItem);
  }

  /**
   * PyBal's _getConfigStringList: a string or a non-empty list of strings.
   * A lone string becomes a list of one, with a warning: PyBal would pick
   * single characters of it.
   */
  requiredStringList(key: string): string[] | undefined {
    if (!this.has(key)) {
      this.missing(key);
      return undefined;
    }
    const value = this.literal(key);
    if (value === undefined) return undefined;
    if (value.type === 'str') {
      this.warn(key, `a single string; write a list: [ ${formatPyValue(value)} ] (PyBal would pick single characters from it)`);
      return [value.value];
    }
    const list = this.itemsOf(key, value, stringItem);
    if (list !== undefined && list.length === 0) {
      this.error(key, 'must not be an empty list');
      return undefined;
    }
    return list;
  }

  /** A list of IP addresses (normalised); `""` allowed when it means every address. */
  ipList(key: string, fallback: readonly string[], allowAny: boolean): string[] {
    if (!this.ctx.entries.has(key)) return [...fallback];
    const list = this.list(key, (v): ItemResult<string> => {
      if (v.type !== 'str') return { error: `expected a string, got ${pyTypeName(v)}` };
      if (v.value === '' && allowAny) return { value: '' };
      const ip = parseIpAddress(v.value);
      return ip ? { value: ip.address } : { error: `expected an IPv4 or IPv6 address${allowAny ? ' (or "" for every address)' : ''}` };
    });
    return list ?? [...fallback];
  }

  /** One IP address of the given family (or either), normalised. */
  ip(key: string, family?: 4 | 6): IpAddress | undefined {
    const value = this.text(key);
    if (value === undefined) return undefined;
    const ip = parseIpAddress(value);
    if (ip === undefined || (family !== undefined && ip.family !== family)) {
      const what = family === undefined ? 'an IPv4 or IPv6 address' : `an IPv${family} address`;
      this.error(key, `expected ${what}, got ${show(value)}`);
      return undefined;
    }
    return ip;
  }

  asn(key: string): number | undefined {
    const value = this.text(key);
    if (value === undefined) return undefined;
    const asn = parseAsn(value);
    if (asn === undefined) this.error(key, `expected an AS number between 1 and ${MAX_U32}, got ${show(value)}`);
    return asn;
  }

  /** Space-separated communities. */
  communities(key: string): Community[] {
    const value = this.text(key);
    if (value === undefined || value === '') return [];
    const out: Community[] = [];
    for (const word of value.split(/\s+/)) {
      const c = parseCommunity(word);
      if (c === undefined) {
        this.error(key, `expected communities as asn:value (each 0..65535) or no-export, no-advertise, no-export-subconfed, got ${show(word)}`);
      } else {
        out.push(c);
      }
    }
    return out;
  }

  /** One of a fixed set of words (case-sensitive, as PyBal compares). */
  oneOf<T extends string>(key: string, words: readonly T[], what: string): T | undefined {
    const value = this.text(key);
    if (value === undefined) return undefined;
    if ((words as readonly string[]).includes(value)) return value as T;
    const lower = value.toLowerCase();
    const hint = (words as readonly string[]).includes(lower) ? ` (write it in lower case: ${lower})` : '';
    this.error(key, `unknown ${what} ${show(value)}; expected one of ${words.join(', ')}${hint}`);
    return undefined;
  }

  /** The items of a list value, each checked by `item`. */
  private itemsOf<T>(key: string, value: PyValue, item: (value: PyValue) => ItemResult<T>): T[] | undefined {
    if (value.type !== 'list') {
      this.error(key, `expected a Python list such as [ 'a', 'b' ], got ${pyTypeName(value)} ${formatPyValue(value)}`);
      return undefined;
    }
    const out: T[] = [];
    let ok = true;
    value.items.forEach((v, i) => {
      const result = item(v);
      if ('error' in result) {
        this.error(key, `item ${i + 1} (${formatPyValue(v)}): ${result.error}`);
        ok = false;
      } else {
        out.push(result.value);
      }
    });
    return ok ? out : undefined;
  }
}
