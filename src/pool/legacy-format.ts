/**
 * PyBal's legacy pool format: one Python dict per line,
 *   { 'host': 'mw1001.eqiad.wmnet', 'weight': 10, 'enabled': True }  # rack A2
 * with blank lines and `#` comment lines. Read with the project's literal
 * reader, never evaluated. A bad line is reported and skipped; the rest
 * applies (and source-reporter keeps the servers the document lacks until
 * it reads clean). A line cut by an interrupted write is a bad line. Unlike
 * PyBal, a missing weight or enabled takes the default instead of losing the
 * line, and a wrongly typed value is reported instead of being silently
 * ignored. Pure.
 */
import { formatPyValue, parsePythonLiteral, PythonLiteralError, pyTypeName, type PyValue } from '../config/python-literal.js';
import { checkEntry, clip, DEFAULT_ENABLED, DEFAULT_WEIGHT, isHostName, MAX_WEIGHT, type EntryCheck, type EntryField, type EntryValue, type FormatTerms } from './entry-rules.js';
import { ownCopy } from '../runtime/interner.js';
import { finish } from '../runtime/sliced.js';
import { createPoolBuilder, poolDelta, type PoolBuilder, type PoolParseResult } from './pool-builder.js';
import type { Pool, PoolServer } from './types.js';

/** Longer lines are junk (a pool line is well under 200 characters). */
export const MAX_LINE_LENGTH = 4096;

const TERMS: FormatTerms = { int: 'an int', bool: 'True or False', str: 'str', knownKeys: 'host, weight, enabled', hostKey: 'host' };

/**
 * Control characters other than white space. Invalid UTF-8 (decoded as
 * U+FFFD) is not junk by itself: in a trailing comment it is harmless, in a
 * host name the host rule rejects it.
 */
const JUNK = /[\x00-\x08\x0e-\x1f\x7f]/;

/**
 * A value of a line as the entry rules take it. Its `shown` (type and value,
 * for a message) is made when a message needs it: made for every value of
 * every line, it was a third of what reading a pool allocated.
 */
class LegacyEntryValue {
  readonly type: EntryValue['type'];
  readonly value: number | string | boolean | undefined;
  constructor(private readonly py: PyValue) {
    this.type = py.type === 'int' || py.type === 'str' || py.type === 'bool' ? py.type : 'other';
    this.value = this.type === 'other' ? undefined : (py as { value: number | string | boolean }).value;
  }
  get shown(): string {
    return `${pyTypeName(this.py)} ${clip(formatPyValue(this.py))}`;
  }
}

function toEntryValue(value: PyValue): EntryValue {
  return new LegacyEntryValue(value) as EntryValue;
}

/** The white space a usual line may have between its parts: space, tab, form feed. */
function isBlank(c: number): boolean {
  return c === 32 || c === 9 || c === 12;
}

/** Where the single-quoted text opened before `from` closes; -1 if it holds a backslash or a newline, or never closes. */
function quoteEnd(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 39) return i;
    if (c === 92 || c === 10) return -1;
  }
  return -1;
}

/** The end of the plain int at `from` (0, or 1 to 15 digits not starting with 0); `from` when there is none. */
function intEnd(text: string, from: number): number {
  const first = text.charCodeAt(from);
  if (first === 48) return from + 1;
  if (first < 49 || first > 57) return from;
  let i = from + 1;
  while (i < text.length && i - from < 15) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) break;
    i++;
  }
  return i;
}

/** Whether what follows the closing brace is only white space and perhaps a comment (no other line break in it). */
function usualEnd(text: string, from: number): boolean {
  let i = from;
  while (i < text.length && isBlank(text.charCodeAt(i))) i++;
  if (i === text.length) return true;
  if (text.charCodeAt(i) !== 35) return false;
  for (i++; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13 || c === 0x2028 || c === 0x2029) return false;
  }
  return true;
}

/** Where the key keyValueAt found starts and ends (one for the module: the readers are synchronous). */
const keySpan = { start: 0, end: 0 };

/**
 * From `i` (just past the `{` or a `,` of a usual line): blanks, a
 * single-quoted key, blanks, a colon, blanks. Sets keySpan to the key's text
 * and returns where its value starts; -1 when the line is not usual there.
 */
function keyValueAt(text: string, i: number): number {
  while (isBlank(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) !== 39) return -1;
  const keyEnd = quoteEnd(text, i + 1);
  if (keyEnd < 0) return -1;
  keySpan.start = i + 1;
  keySpan.end = keyEnd;
  i = keyEnd + 1;
  while (isBlank(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) !== 58) return -1;
  i++;
  while (isBlank(text.charCodeAt(i))) i++;
  return i;
}

/** After a value ending at `i`: blanks, then where the `,` or `}` that follows is; -1 when neither does. */
function separatorAt(text: string, i: number): number {
  while (isBlank(text.charCodeAt(i))) i++;
  const c = text.charCodeAt(i);
  return c === 44 || c === 125 ? i : -1;
}

/**
 * A usual pool line, `{ 'host': 'mw1001', 'weight': 10, 'enabled': True }`
 * (keys in any order, an optional comment), read without the general
 * literal reader, which costs several times as much: 100,000 lines at a
 * cold start. Each `'key': value` is a single-quoted key, and a
 * single-quoted string, a plain int or True/False, with blanks around;
 * strings without backslashes, so that their text is their value. Read by
 * hand, without a regular expression's match objects (half of what reading
 * a pool allocated). Gives exactly what parsePythonLiteral gives for such a
 * line; undefined for any other line, which goes the general way (and gets
 * its messages from there).
 */
export function readUsualLine(text: string): PyValue | undefined {
  if (text.charCodeAt(0) !== 123) return undefined;
  const entries: [PyValue, PyValue][] = [];
  let i = 1;
  for (;;) {
    i = keyValueAt(text, i);
    if (i < 0) return undefined;
    const key = text.slice(keySpan.start, keySpan.end);
    let value: PyValue;
    if (text.charCodeAt(i) === 39) {
      const end = quoteEnd(text, i + 1);
      if (end < 0) return undefined;
      value = { type: 'str', value: text.slice(i + 1, end) };
      i = end + 1;
    } else if (text.startsWith('True', i)) {
      value = { type: 'bool', value: true };
      i += 4;
    } else if (text.startsWith('False', i)) {
      value = { type: 'bool', value: false };
      i += 5;
    } else {
      const end = intEnd(text, i);
      if (end === i) return undefined;
      value = { type: 'int', value: Number(text.slice(i, end)) };
      i = end;
    }
    const separator = separatorAt(text, i);
    if (separator < 0) return undefined;
    i = separator + 1;
    entries.push([{ type: 'str', value: key }, value]);
    if (text.charCodeAt(separator) === 125) break;
  }
  return usualEnd(text, i) ? { type: 'dict', entries } : undefined;
}

/** Which of the three known keys the text from `from` to `end` (a usual line's key) is: 0 host, 1 weight, 2 enabled, -1 another. */
function usualKey(text: string, from: number, end: number): number {
  const length = end - from;
  if (length === 4 && text.startsWith('host', from)) return 0;
  if (length === 6 && text.startsWith('weight', from)) return 1;
  if (length === 7 && text.startsWith('enabled', from)) return 2;
  return -1;
}

/**
 * The server of a usual line that is also clean: only the known keys, each
 * once, `host` a valid host name, `weight` an int from 0 to MAX_WEIGHT,
 * `enabled` True or False (blanks and a comment as readUsualLine allows;
 * no control characters). Read straight into the server, without the
 * dict's entries, the values and the checks' lists and set that the general
 * way makes of each line: a cold start's pools of 10,000 lines made some
 * 16 MB of garbage there, collected meanwhile. Gives exactly the server the
 * general way gives, which has no problem to report for such a line;
 * undefined for any other line, which goes the general way.
 */
export function readUsualServer(text: string): PoolServer | undefined {
  if (text.charCodeAt(0) !== 123 || JUNK.test(text)) return undefined;
  let host: string | undefined;
  let weight = -1;
  let enabled: boolean | undefined;
  let i = 1;
  for (;;) {
    i = keyValueAt(text, i);
    if (i < 0) return undefined;
    const key = usualKey(text, keySpan.start, keySpan.end);
    if (key < 0) return undefined;
    if (key === 0) {
      if (host !== undefined || text.charCodeAt(i) !== 39) return undefined;
      const end = quoteEnd(text, i + 1);
      if (end < 0) return undefined;
      host = text.slice(i + 1, end);
      i = end + 1;
    } else if (key === 1) {
      const end = intEnd(text, i);
      if (weight >= 0 || end === i) return undefined;
      weight = Number(text.slice(i, end));
      if (weight > MAX_WEIGHT) return undefined;
      i = end;
    } else {
      if (enabled !== undefined) return undefined;
      if (text.startsWith('True', i)) {
        enabled = true;
        i += 4;
      } else if (text.startsWith('False', i)) {
        enabled = false;
        i += 5;
      } else {
        return undefined;
      }
    }
    const separator = separatorAt(text, i);
    if (separator < 0) return undefined;
    i = separator + 1;
    if (text.charCodeAt(separator) === 125) break;
  }
  if (!usualEnd(text, i) || host === undefined || !isHostName(host)) return undefined;
  // The host is kept as long as the server stays: not as a view into the document it was read from.
  return { host: ownCopy(host), weight: weight < 0 ? DEFAULT_WEIGHT : weight, enabled: enabled ?? DEFAULT_ENABLED };
}

/** Reads one stripped line; returns the dict's entries or an error message. */
function readLine(text: string, indent: number): PyValue | string {
  const junk = JUNK.exec(text);
  if (junk) return `binary data (character ${JSON.stringify(junk[0])} at column ${indent + junk.index + 1})`;
  const usual = readUsualLine(text);
  if (usual !== undefined) return usual;
  try {
    return parsePythonLiteral(text);
  } catch (error) {
    if (error instanceof PythonLiteralError) return `syntax error at column ${indent + error.offset + 1}: ${error.message}`;
    throw error;
  }
}

/**
 * The lines of a source's last read, with the server each clean line gave
 * (a line that gave a server and no note; a line's problems name its line
 * number, which moves, so such lines are read again). A re-read after an
 * edit parses only the lines that changed: the lines it shares with the last
 * read at the start and at the end are matched by position (one string
 * comparison each), and those in between by their text, so that a weight
 * edited in a pool of 20,000 lines costs one parse and no lookup by text of
 * the other 19,999. One per source.
 */
export class LegacyLineMemo {
  private previous: readonly string[] = [];
  /** The server of each line of `previous` (undefined: not clean). */
  private servers: readonly (PoolServer | undefined)[] = [];
  private currentLines: readonly string[] = [];
  private current: (PoolServer | undefined)[] = [];
  /** Lines of the current read that are the previous read's, by index in each. */
  private head = 0;
  private tail = 0;
  /** The previous read's clean lines between head and tail, by text (made only when some lines changed). */
  private middle: Map<string, PoolServer> | undefined;

  /** Starts a read of `lines`: a read left half done before is forgotten. */
  begin(lines: readonly string[]): void {
    const previous = this.previous;
    const max = Math.min(lines.length, previous.length);
    let head = 0;
    while (head < max && lines[head] === previous[head]) head++;
    let tail = 0;
    while (tail < max - head && lines[lines.length - 1 - tail] === previous[previous.length - 1 - tail]) tail++;
    this.head = head;
    this.tail = tail;
    this.currentLines = lines;
    this.current = new Array<PoolServer | undefined>(lines.length);
    this.middle = undefined;
  }

  /** The server line `index` of the current read gave last time, if it was clean. */
  lookup(index: number): PoolServer | undefined {
    let server: PoolServer | undefined;
    if (index < this.head) server = this.servers[index];
    else if (index >= this.currentLines.length - this.tail) server = this.servers[index - this.currentLines.length + this.previous.length];
    else server = this.middleLines().get(this.currentLines[index]!);
    this.current[index] = server;
    return server;
  }

  remember(index: number, server: PoolServer): void {
    this.current[index] = server;
  }

  /** The pool of the last whole read (what a clean re-read is a delta of). */
  pool: Pool | undefined = undefined;

  /** A whole document was read (its pool): its lines are what the next read compares with. */
  end(pool: Pool): void {
    this.pool = pool;
    this.previous = this.currentLines;
    this.servers = this.current;
    this.currentLines = [];
    this.current = [];
    this.middle = undefined;
  }

  /** Clean lines the next read can take without parsing. */
  get size(): number {
    let n = 0;
    for (const s of this.servers) if (s !== undefined) n++;
    return n;
  }

  private middleLines(): Map<string, PoolServer> {
    if (this.middle === undefined) {
      this.middle = new Map();
      for (let i = this.head; i < this.previous.length - this.tail; i++) {
        const server = this.servers[i];
        if (server !== undefined) this.middle.set(this.previous[i]!, server);
      }
    }
    return this.middle;
  }
}


export function parseLegacyPool(text: string, file: string): PoolParseResult {
  return finish(legacyPoolSteps(text, file));
}

/** Lines read between two pauses of legacyPoolSteps. */
const LINES_PER_STEP = 256;

/**
 * parseLegacyPool as a job that pauses every few hundred lines, so that a
 * pool of 100,000 lines can be read in slices (runtime/sliced.ts).
 */
export function* legacyPoolSteps(text: string, file: string, memo?: LegacyLineMemo): Generator<void, PoolParseResult, undefined> {
  const builder = createPoolBuilder(file);
  const lines = yield* linesOf(text.replace(/^\ufeff/, ''));
  memo?.begin(lines);
  for (let index = 0; index < lines.length; index++) {
    if (index % LINES_PER_STEP === LINES_PER_STEP - 1) yield;
    const raw = lines[index]!;
    const known = memo?.lookup(index);
    if (known !== undefined) builder.addClean(known, index + 1);
    else readPoolLine(builder, raw, index, memo);
  }
  const result = builder.result();
  if (memo === undefined) return result;
  // A clean re-read of the same hosts in the same order says which changed: the others are the very objects of last time.
  const changedFrom = result.problems.length === 0 ? poolDelta(memo.pool, result.pool) : undefined;
  memo.end(result.pool);
  return changedFrom === undefined ? result : { ...result, changedFrom };
}

/**
 * text.split('\n') as a job: cutting 100,000 lines at once held the event
 * loop for most of a pool's first slice in the lab guest.
 */
function* linesOf(text: string): Generator<void, string[], undefined> {
  const lines: string[] = [];
  for (let start = 0; ; ) {
    const end = text.indexOf('\n', start);
    if (end < 0) {
      lines.push(text.slice(start));
      return lines;
    }
    lines.push(text.slice(start, end));
    start = end + 1;
    if (lines.length % LINES_PER_STEP === 0) yield;
  }
}

/** Reads line `index` (0-based) of a document. */
function readPoolLine(builder: PoolBuilder, raw: string, index: number, memo: LegacyLineMemo | undefined): void {
  const lineNo = index + 1;
  const line = raw.trim();
  if (line === '' || line.startsWith('#')) return;
  if (raw.length > MAX_LINE_LENGTH) {
    builder.skip(lineNo, `line too long (${raw.length} characters; the limit is ${MAX_LINE_LENGTH})`);
    return;
  }
  const usual = readUsualServer(line);
  if (usual !== undefined) {
    memo?.remember(index, usual);
    builder.addClean(usual, lineNo);
    return;
  }
  const value = readLine(line, raw.length - raw.trimStart().length);
  if (typeof value === 'string') {
    builder.skip(lineNo, value);
    return;
  }
  if (value.type !== 'dict') {
    builder.skip(
      lineNo,
      `expected a dict like { 'host': 'mw1', 'weight': 10, 'enabled': True }, got ${pyTypeName(value)} ${clip(formatPyValue(value))}`,
    );
    return;
  }
  let host: EntryField | undefined;
  const fields: EntryField[] = [];
  for (const [key, item] of value.entries) {
    const name = key.type === 'str' ? key.value : formatPyValue(key);
    const field = { key: name, value: toEntryValue(item), line: lineNo };
    if (name === 'host' && host === undefined) host = field;
    else fields.push(field);
  }
  const check = checkEntry(host, fields, lineNo, TERMS);
  if (memo !== undefined && check.server !== undefined && check.problems.length === 0) memo.remember(index, check.server);
  builder.add(check, lineNo);
}
