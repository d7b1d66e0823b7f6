/**
 * A reader for pybal.conf with the semantics of Python 2's
 * ConfigParser.SafeConfigParser (which PyBal uses), keeping the line of every
 * section and value so that messages can name them.
 *
 * What it copies from py2 ConfigParser, quirks included:
 * - `[name]` starts a section; anything after the closing `]` is ignored.
 *   Section names are case-sensitive; `[DEFAULT]` is merged into every section.
 * - `key = value` and `key: value`: the first `=` or `:` delimits. Option names
 *   are lower-cased and right-stripped.
 * - Lines whose first character is `#` or `;`, blank lines, and lines whose
 *   first word is `rem` (starting in column 0) are comments.
 * - An inline comment is only a `;` preceded by white space, and only the first
 *   `;` of the value is considered. `#` inside a value is not a comment.
 * - A line starting with white space continues the previous value (joined with
 *   `\n`), even if it looks like a comment.
 * - A value of exactly `""` is the empty string.
 * - A repeated section is merged into the first; a repeated key keeps the last
 *   value. Both are reported as warnings.
 * - `%(name)s` interpolation against the section, `[DEFAULT]` and `__name__`
 *   (the section's name), `%%` for a literal `%`, at most 10 levels deep.
 *
 * Pure: text in, values and problems out.
 */

import type { Problem } from '../runtime/errors.js';
import { finish } from '../runtime/sliced.js';

export interface IniEntry {
  /** The option name, lower-cased as ConfigParser's optionxform does. */
  readonly key: string;
  /** The raw value: stripped, continuation lines joined with `\n`. */
  readonly value: string;
  /** The line of `key = value`. */
  readonly line: number;
  /** The line of each `\n`-separated part of the value (continuations). */
  readonly partLines: readonly number[];
  /** The 1-based column where each part starts on its line. */
  readonly partColumns: readonly number[];
}

export interface IniSection {
  readonly name: string;
  /** The line of the (first) `[name]` header. */
  readonly line: number;
  /** Entries in the order their keys first appeared. */
  readonly entries: ReadonlyMap<string, IniEntry>;
}

export interface IniDocument {
  readonly file: string;
  /** `[DEFAULT]`, when the file has one. */
  readonly defaults: IniSection | undefined;
  /** Every other section, in file order. */
  readonly sections: readonly IniSection[];
}

export interface IniReadResult {
  readonly document: IniDocument;
  readonly errors: Problem[];
  readonly warnings: Problem[];
}

/** A value as a section sees it: its own or `[DEFAULT]`'s, interpolated. */
export interface ResolvedEntry {
  readonly key: string;
  readonly value: string;
  readonly line: number;
  /** The raw value before interpolation. */
  readonly raw: string;
  readonly partLines: readonly number[];
  readonly partColumns: readonly number[];
  /** True when the value comes from `[DEFAULT]`. */
  readonly fromDefault: boolean;
}

export const DEFAULT_SECTION = 'DEFAULT';

/** Python 2 `str.strip()` white space (ASCII only, unlike String.prototype.trim): ' ', '\t', '\n', '\v', '\f', '\r'. */
function isPySpaceCode(code: number): boolean {
  return code === 0x20 || (code >= 0x09 && code <= 0x0d);
}

export function pyIsSpace(c: string | undefined): boolean {
  return c !== undefined && c.length === 1 && isPySpaceCode(c.charCodeAt(0));
}

export function pyStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isPySpaceCode(text.charCodeAt(start))) start++;
  while (end > start && isPySpaceCode(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

function pyRstrip(text: string): string {
  let end = text.length;
  while (end > 0 && isPySpaceCode(text.charCodeAt(end - 1))) end--;
  return text.slice(0, end);
}

/** Whether a line is empty or only white space. */
function isBlank(line: string): boolean {
  for (let i = 0; i < line.length; i++) if (!isPySpaceCode(line.charCodeAt(i))) return false;
  return true;
}

/** py2's remark line: its first word is `rem`, in any case, starting in column 0. */
function isRemark(line: string): boolean {
  return (line.length === 3 || (line.length > 3 && isPySpaceCode(line.charCodeAt(3)))) && line.slice(0, 3).toLowerCase() === 'rem';
}

/** ConfigParser.SECTCRE: `[`, anything but `]` (at least one), `]`. */
const SECTION_RE = /^\[([^\]]+)\]/;
/** ConfigParser.OPTCRE: a name not starting with white space or a delimiter, then `=` or `:`. */
const OPTION_RE = /^([^:= \t\n\r\x0b\x0c][^:=]*?)[ \t\n\r\x0b\x0c]*[:=][ \t\n\r\x0b\x0c]*(.*)$/s;

/** An entry while its section is read: continuation lines extend the value. */
interface MutableEntry {
  key: string;
  value: string;
  line: number;
  partLines: number[];
  partColumns: number[];
}

interface MutableSection {
  name: string;
  line: number;
  entries: Map<string, MutableEntry>;
}

/** Strips py2's inline comment: the first `;`, when white space precedes it. */
function stripInlineComment(value: string): string {
  const pos = value.indexOf(';');
  // py2 looks at optval[pos-1]; for pos 0 that is the last character.
  if (pos !== -1 && pyIsSpace(value.at(pos - 1))) return value.slice(0, pos);
  return value;
}

function quote(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);
}

/** Whether every '\r' of the text is the first half of a CRLF line end. */
function onlyCrlf(text: string): boolean {
  for (let cr = text.indexOf('\r'); cr !== -1; cr = text.indexOf('\r', cr + 1)) {
    if (text[cr + 1] !== '\n') return false;
  }
  return true;
}

/**
 * Problems with carriage returns that are not part of a CRLF line end.
 *
 * Python 2's ConfigParser (PyBal) reads the file with open(path), which ends
 * lines only at '\n': a file with CR-only line endings (classic Mac OS, or a
 * bad transfer) is one single line to it, so PyBal sees at most the first
 * section header and no services, silently. Reading '\r' as a line end
 * instead would make the same file mean something else to PyBal and to pybal,
 * and `grep -n` or sed would see one line where our messages name several.
 * So such a file is refused, saying why and how to convert it; a lone '\r'
 * inside a line of an otherwise '\n'-ended file is refused at its line for the
 * same reason. A '\r' followed only by white space (CRLF, or "80\r\r\n") is
 * harmless: ConfigParser strips it, as readIni does.
 */
export function checkLineEndings(text: string, file: string): Problem[] {
  if (!text.includes('\r') || onlyCrlf(text)) return [];
  if (!text.includes('\n') && pyStrip(text).includes('\r')) {
    return [
      {
        file,
        message:
          "the file uses CR-only line endings (old Mac): pybal, like PyBal, ends lines only at '\\n', so it would read the whole file as one line; convert it, e.g. with: tr '\\r' '\\n'",
      },
    ];
  }
  const problems: Problem[] = [];
  text.split('\n').forEach((line, index) => {
    const cr = line.indexOf('\r');
    if (cr !== -1 && pyStrip(line.slice(cr)) !== '') {
      problems.push({
        file,
        line: index + 1,
        message:
          "a carriage return ('\\r') in the middle of the line: the file mixes in CR-only line endings (old Mac), and the text after it would not be read as a line of its own",
      });
    }
  });
  return problems;
}

export function readIni(text: string, file: string): IniReadResult {
  return finish(readIniSteps(text, file));
}

/** Lines readIniSteps reads between two chances to end a slice. */
const LINES_PER_STEP = 512;

/** readIni as a job for a sliced runner (src/runtime/sliced.ts): it yields every few hundred lines. */
export function* readIniSteps(text: string, file: string): Generator<unknown, IniReadResult, undefined> {
  const errors: Problem[] = [];
  const warnings: Problem[] = [];
  const sections = new Map<string, MutableSection>();
  let defaults: MutableSection | undefined;
  let current: MutableSection | undefined;
  let currentEntry: MutableEntry | undefined;
  // A UTF-8 byte order mark is not part of the first line (py2 would choke on it).
  const lines = (text.startsWith('\ufeff') ? text.slice(1) : text).split('\n');
  // A final newline does not start another line.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();

  for (let index = 0; index < lines.length; index++) {
    if (index > 0 && index % LINES_PER_STEP === 0) yield;
    const line = lines[index] as string;
    const lineNo = index + 1;
    const first = line[0];
    if (first === '#' || first === ';' || isBlank(line)) continue;
    if ((first === 'r' || first === 'R') && isRemark(line)) continue;

    if (pyIsSpace(first) && current !== undefined && currentEntry !== undefined) {
      const part = pyStrip(line);
      if (part !== '') {
        currentEntry.value += `\n${part}`;
        currentEntry.partLines.push(lineNo);
        currentEntry.partColumns.push(line.indexOf(part) + 1);
        if (part.startsWith('#') || part.startsWith(';')) {
          warnings.push({
            file,
            line: lineNo,
            key: currentEntry.key,
            message: `this indented line is not a comment: it continues the value of '${currentEntry.key}' (line ${currentEntry.line}); start comments in column 1`,
          });
        }
      }
      continue;
    }

    const header = first === '[' ? SECTION_RE.exec(line) : null;
    if (header) {
      const name = header[1] as string;
      const rest = pyStrip(line.slice(header[0].length));
      if (rest !== '') {
        warnings.push({ file, line: lineNo, message: `text after the section header [${name}] is ignored: ${quote(rest)}` });
      }
      if (name === DEFAULT_SECTION) {
        if (defaults === undefined) {
          defaults = { name, line: lineNo, entries: new Map() };
        } else {
          warnings.push({ file, line: lineNo, message: `[${name}] is repeated (first at line ${defaults.line}); the two are merged and later keys win` });
        }
        current = defaults;
      } else {
        const existing = sections.get(name);
        if (existing) {
          warnings.push({ file, line: lineNo, message: `section [${name}] is repeated (first at line ${existing.line}); the two are merged and later keys win` });
          current = existing;
        } else {
          current = { name, line: lineNo, entries: new Map() };
          sections.set(name, current);
        }
      }
      currentEntry = undefined;
      continue;
    }

    if (current === undefined) {
      errors.push({ file, line: lineNo, message: `no section header before this line (every key belongs to a [section]): ${quote(pyStrip(line))}` });
      continue;
    }

    const option = OPTION_RE.exec(line);
    if (!option) {
      errors.push({
        file,
        line: lineNo,
        message: pyIsSpace(first)
          ? `indented line with no value to continue: ${quote(pyStrip(line))}`
          : `expected 'key = value', 'key: value' or '[section]', got ${quote(pyStrip(line))}`,
      });
      currentEntry = undefined;
      continue;
    }
    const key = pyRstrip(option[1] as string).toLowerCase();
    let value = pyStrip(stripInlineComment(option[2] as string));
    if (value === '""') value = '';
    const previous = current.entries.get(key);
    if (previous) {
      warnings.push({
        file,
        line: lineNo,
        key,
        message: `'${key}' is set again (first at line ${previous.line}); the value here wins`,
      });
      // Keep the key's first position (Python's ordered dict does) but take the new value.
    }
    // The value starts where the delimiter's trailing white space ends.
    const valueColumn = line.length - (option[2] as string).length + 1;
    currentEntry = { key, value, line: lineNo, partLines: [lineNo], partColumns: [valueColumn] };
    current.entries.set(key, currentEntry);
  }

  return {
    // The sections as read: nothing changes them once the text is done.
    document: { file, defaults, sections: [...sections.values()] },
    errors,
    warnings,
  };
}

const MAX_INTERPOLATION_DEPTH = 10;
const REFERENCE_RE = /^%\(([^)]+)\)s/;

class InterpolationError extends Error {}

function interpolate(raw: string, lookup: (name: string) => string | undefined, depth: number): string {
  if (depth > MAX_INTERPOLATION_DEPTH) {
    throw new InterpolationError(`interpolation nested more than ${MAX_INTERPOLATION_DEPTH} levels deep (a reference loop?)`);
  }
  let out = '';
  let rest = raw;
  while (rest !== '') {
    const p = rest.indexOf('%');
    if (p < 0) return out + rest;
    out += rest.slice(0, p);
    rest = rest.slice(p);
    const next = rest[1];
    if (next === '%') {
      out += '%';
      rest = rest.slice(2);
    } else if (next === '(') {
      const m = REFERENCE_RE.exec(rest);
      if (!m) throw new InterpolationError(`bad interpolation reference ${quote(rest)} (expected %(name)s; write %% for a literal %)`);
      const name = (m[1] as string).toLowerCase();
      const value = lookup(name);
      if (value === undefined) {
        throw new InterpolationError(`%(${m[1] as string})s refers to '${name}', which is not set in this section or [DEFAULT]`);
      }
      out += value.includes('%') ? interpolate(value, lookup, depth + 1) : value;
      rest = rest.slice(m[0].length);
    } else {
      throw new InterpolationError(`'%' must be followed by '%' or '(', found ${quote(rest)} (write %% for a literal %)`);
    }
  }
  return out;
}

/**
 * The values a section sees, as ConfigParser's items(section) returns them:
 * `[DEFAULT]` under the section's own keys, every value interpolated. A value
 * that cannot be interpolated is reported, left out of `entries` and named in `failed`.
 */
export function resolveSection(
  document: IniDocument,
  section: IniSection,
): { entries: Map<string, ResolvedEntry>; errors: Problem[]; failed: Set<string> } {
  const errors: Problem[] = [];
  const own = section.entries;
  const defaults = document.defaults?.entries;
  const lookup = (name: string): string | undefined => (name === '__name__' ? section.name : (own.get(name) ?? defaults?.get(name))?.value);
  const entries = new Map<string, ResolvedEntry>();
  const failed = new Set<string>();
  const resolve = (entry: IniEntry, fromDefault: boolean): void => {
    let value = entry.value;
    if (value.includes('%')) {
      try {
        value = interpolate(value, lookup, 1);
      } catch (e) {
        if (!(e instanceof InterpolationError)) throw e;
        errors.push({ file: document.file, line: entry.line, key: entry.key, message: e.message });
        failed.add(entry.key);
        return;
      }
    }
    const { key, line, partLines, partColumns } = entry;
    entries.set(key, { key, value, line, raw: entry.value, partLines, partColumns, fromDefault });
  };
  // In ConfigParser's order: [DEFAULT]'s keys first (a section's own value in
  // the place of the default it overrides), then the section's other keys.
  if (defaults !== undefined) {
    for (const entry of defaults.values()) {
      const mine = own.get(entry.key);
      resolve(mine ?? entry, mine === undefined);
    }
  }
  for (const entry of own.values()) if (!defaults?.has(entry.key)) resolve(entry, false);
  return { entries, errors, failed };
}

/**
 * The file line and 1-based column of an offset into a (possibly multi-line)
 * value; undefined when interpolation changed the value, so that offsets no
 * longer match the file.
 */
export function locateInValue(
  entry: Pick<ResolvedEntry, 'value' | 'raw' | 'partLines' | 'partColumns'>,
  offset: number,
): { line: number; column: number } | undefined {
  if (entry.value !== entry.raw) return undefined;
  const before = entry.value.slice(0, offset);
  const part = before.split('\n').length - 1;
  const partStart = before.lastIndexOf('\n') + 1;
  const line = entry.partLines[part];
  const column = entry.partColumns[part];
  if (line === undefined || column === undefined) return undefined;
  return { line, column: column + offset - partStart };
}
