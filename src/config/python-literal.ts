/**
 * A reader for the Python literals PyBal's files contain: the list values of
 * pybal.conf (`[ 'ProxyFetch', "IdleConnection" ]`, `u'...'`, and the names
 * `server.host` / `server.ip` in runcommand.arguments) and the one-dict-per-line
 * legacy pool files (`{ 'host': 'mw1', 'weight': 10, 'enabled': True }`).
 *
 * It accepts what Python's ast.literal_eval accepts for these shapes and
 * evaluates nothing. Pure: no I/O.
 */

export type PyValue =
  | { readonly type: 'str'; readonly value: string }
  | { readonly type: 'int'; readonly value: number }
  | { readonly type: 'float'; readonly value: number }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'none' }
  | { readonly type: 'list'; readonly items: readonly PyValue[] }
  | { readonly type: 'tuple'; readonly items: readonly PyValue[] }
  | { readonly type: 'dict'; readonly entries: readonly (readonly [PyValue, PyValue])[] }
  /** A bare dotted name, only where the caller allows it (`server.host`). */
  | { readonly type: 'name'; readonly name: string };

export interface ParseOptions {
  /** Dotted names allowed as values, e.g. ['server.host', 'server.ip']. */
  readonly names?: readonly string[];
}

export class PythonLiteralError extends Error {
  /** 0-based offset in the text where the problem was found. */
  readonly offset: number;

  constructor(message: string, offset: number) {
    super(message);
    this.name = 'PythonLiteralError';
    this.offset = offset;
  }
}

/** The Python type name of a value, for messages ("expected int, got str"). */
export function pyTypeName(value: PyValue): string {
  return value.type === 'none' ? 'NoneType' : value.type;
}

/** Python's repr-like rendering, for messages. */
export function formatPyValue(value: PyValue): string {
  switch (value.type) {
    case 'str':
      return `'${value.value.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
    case 'int':
      return String(value.value);
    case 'float':
      // Python's repr keeps the point: 7.0, not 7.
      return Number.isInteger(value.value) && Math.abs(value.value) < 1e16 ? value.value.toFixed(1) : String(value.value);
    case 'bool':
      return value.value ? 'True' : 'False';
    case 'none':
      return 'None';
    case 'list':
      return `[${value.items.map(formatPyValue).join(', ')}]`;
    case 'tuple':
      return `(${value.items.map(formatPyValue).join(', ')}${value.items.length === 1 ? ',' : ''})`;
    case 'dict':
      return `{${value.entries.map(([k, v]) => `${formatPyValue(k)}: ${formatPyValue(v)}`).join(', ')}}`;
    case 'name':
      return value.name;
  }
}

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\',
  "'": "'",
  '"': '"',
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

class Reader {
  private pos = 0;

  constructor(
    private readonly text: string,
    private readonly names: readonly string[],
  ) {}

  parseAll(): PyValue {
    this.skipSpace();
    if (this.pos >= this.text.length) throw this.error('empty value');
    const value = this.parseValue();
    this.skipSpace();
    if (this.pos < this.text.length) throw this.error(`unexpected ${JSON.stringify(this.text[this.pos])} after the value`);
    return value;
  }

  private error(message: string, at = this.pos): PythonLiteralError {
    return new PythonLiteralError(message, at);
  }

  /** Skips white space and `#` comments (which run to the end of the line). */
  private skipSpace(): void {
    while (this.pos < this.text.length) {
      const c = this.text[this.pos];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') {
        this.pos++;
      } else if (c === '#') {
        while (this.pos < this.text.length && this.text[this.pos] !== '\n') this.pos++;
      } else {
        break;
      }
    }
  }

  private parseValue(): PyValue {
    this.skipSpace();
    const c = this.text[this.pos];
    if (c === undefined) throw this.error('unexpected end of value');
    if (c === '[') return { type: 'list', items: this.parseSequence('[', ']').items };
    if (c === '(') {
      const { items, trailingComma } = this.parseSequence('(', ')');
      // `(x)` is just x in Python; `(x,)` and `()` are tuples.
      if (items.length === 1 && !trailingComma) return items[0] as PyValue;
      return { type: 'tuple', items };
    }
    if (c === '{') return this.parseDict();
    if (c === "'" || c === '"') return this.parseStrings();
    if (c === '-' || c === '+' || c === '.' || (c >= '0' && c <= '9')) return this.parseNumber();
    if (/[A-Za-z_]/.test(c)) return this.parseWord();
    throw this.error(`unexpected ${JSON.stringify(c)}`);
  }

  private parseSequence(open: string, close: string): { items: PyValue[]; trailingComma: boolean } {
    const start = this.pos;
    this.pos++; // the opening bracket
    const items: PyValue[] = [];
    let trailingComma = false;
    for (;;) {
      this.skipSpace();
      if (this.pos >= this.text.length) throw this.error(`'${open}' is never closed`, start);
      if (this.text[this.pos] === close) {
        this.pos++;
        return { items, trailingComma };
      }
      items.push(this.parseValue());
      this.skipSpace();
      trailingComma = false;
      const next = this.text[this.pos];
      if (next === ',') {
        this.pos++;
        trailingComma = true;
      } else if (next !== close) {
        if (next === undefined) throw this.error(`'${open}' is never closed`, start);
        throw this.error(`expected ',' or '${close}', found ${JSON.stringify(next)}`);
      }
    }
  }

  private parseDict(): PyValue {
    const start = this.pos;
    this.pos++;
    const entries: [PyValue, PyValue][] = [];
    for (;;) {
      this.skipSpace();
      if (this.pos >= this.text.length) throw this.error("'{' is never closed", start);
      if (this.text[this.pos] === '}') {
        this.pos++;
        return { type: 'dict', entries };
      }
      const keyAt = this.pos;
      const key = this.parseValue();
      if (key.type === 'list' || key.type === 'dict') throw this.error(`a ${key.type} cannot be a dict key`, keyAt);
      this.skipSpace();
      if (this.text[this.pos] !== ':') throw this.error("expected ':' after a dict key");
      this.pos++;
      const value = this.parseValue();
      entries.push([key, value]);
      this.skipSpace();
      const next = this.text[this.pos];
      if (next === ',') this.pos++;
      else if (next !== '}') {
        if (next === undefined) throw this.error("'{' is never closed", start);
        throw this.error(`expected ',' or '}', found ${JSON.stringify(next)}`);
      }
    }
  }

  /** One or more adjacent string literals, concatenated as Python does. */
  private parseStrings(): PyValue {
    let value = '';
    do {
      const c = this.text[this.pos];
      if (c === "'" || c === '"') {
        value += this.parseString();
      } else {
        // A u'' or r'' prefix.
        this.pos++;
        value += this.parseString(c === 'r' || c === 'R');
      }
    } while (this.atAdjacentString());
    return { type: 'str', value };
  }

  /** Skips to another string literal when one follows; otherwise stays put. */
  private atAdjacentString(): boolean {
    const save = this.pos;
    this.skipSpace();
    const c = this.text[this.pos];
    if (c === "'" || c === '"' || /^[uUrR]['"]/.test(this.text.slice(this.pos, this.pos + 2))) return true;
    this.pos = save;
    return false;
  }

  private parseString(raw = false): string {
    const start = this.pos;
    const quote = this.text[this.pos] as string;
    const triple = this.text.startsWith(quote.repeat(3), this.pos);
    const closing = triple ? quote.repeat(3) : quote;
    this.pos += closing.length;
    let out = '';
    for (;;) {
      // The plain characters up to this string's quote, a backslash or a line end, in one piece.
      const run = this.pos;
      while (this.pos < this.text.length) {
        const c = this.text[this.pos];
        if (c === quote || c === '\\' || c === '\n') break;
        this.pos++;
      }
      out += this.text.slice(run, this.pos);
      if (this.pos >= this.text.length) throw this.error('string is never closed', start);
      if (this.text.startsWith(closing, this.pos)) {
        this.pos += closing.length;
        return out;
      }
      const c = this.text[this.pos] as string;
      if (c === '\n' && !triple) throw this.error('string is never closed', start);
      if (c !== '\\') {
        out += c;
        this.pos++;
        continue;
      }
      const next = this.text[this.pos + 1];
      if (next === undefined) throw this.error('string is never closed', start);
      if (raw) {
        out += c + next;
        this.pos += 2;
        continue;
      }
      out += this.parseEscape(next);
    }
  }

  /** Reads the escape at this.pos (a backslash followed by `next`). */
  private parseEscape(next: string): string {
    const at = this.pos;
    const simple = SIMPLE_ESCAPES[next];
    if (simple !== undefined) {
      this.pos += 2;
      return simple;
    }
    if (next === '\n') {
      this.pos += 2;
      return '';
    }
    const hexLength = next === 'x' ? 2 : next === 'u' ? 4 : next === 'U' ? 8 : 0;
    if (hexLength > 0) {
      const digits = this.text.slice(at + 2, at + 2 + hexLength);
      if (digits.length !== hexLength || !/^[0-9a-fA-F]+$/.test(digits)) throw this.error(`bad \\${next} escape`, at);
      const code = parseInt(digits, 16);
      if (code > 0x10ffff) throw this.error(`bad \\${next} escape`, at);
      this.pos += 2 + hexLength;
      return String.fromCodePoint(code);
    }
    if (next >= '0' && next <= '7') {
      const octal = /^[0-7]{1,3}/.exec(this.text.slice(at + 1))?.[0] ?? next;
      this.pos += 1 + octal.length;
      return String.fromCodePoint(parseInt(octal, 8));
    }
    // Python keeps unknown escapes as they are.
    this.pos += 2;
    return '\\' + next;
  }

  private parseNumber(): PyValue {
    const start = this.pos;
    const match = /^[-+]?\s*(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)[lL]?/.exec(
      this.text.slice(this.pos),
    );
    if (!match) throw this.error('malformed number');
    const literal = match[0].replace(/\s+/g, '').replace(/[lL]$/, '');
    this.pos += match[0].length;
    if (/^[-+]?[0-9.]/.test(literal) && /[.eE]/.test(literal) && !/^[-+]?0[xX]/.test(literal)) {
      return { type: 'float', value: Number(literal) };
    }
    const negative = literal.startsWith('-');
    const body = literal.replace(/^[-+]/, '');
    let value: number;
    if (/^0[xX]/.test(body)) value = parseInt(body.slice(2), 16);
    else if (/^0[oO]/.test(body)) value = parseInt(body.slice(2), 8);
    else if (/^0[bB]/.test(body)) value = parseInt(body.slice(2), 2);
    else {
      // Python 3 rejects 010; Python 2 read it as octal. Neither means ten.
      if (/^0\d/.test(body)) throw this.error(`ambiguous number with a leading zero: ${literal}`, start);
      value = parseInt(body, 10);
    }
    if (!Number.isSafeInteger(value)) throw this.error(`number out of range: ${literal}`, start);
    return { type: 'int', value: negative ? -value : value };
  }

  private parseWord(): PyValue {
    const start = this.pos;
    if (/^[uUrRbB]['"]/.test(this.text.slice(this.pos, this.pos + 2))) {
      if (/[bB]/.test(this.text[this.pos] as string)) throw this.error('bytes literals are not supported', start);
      return this.parseStrings();
    }
    const word = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/.exec(this.text.slice(this.pos))?.[0] ?? '';
    this.pos += word.length;
    if (word === 'True') return { type: 'bool', value: true };
    if (word === 'False') return { type: 'bool', value: false };
    if (word === 'None') return { type: 'none' };
    if (this.names.includes(word)) return { type: 'name', name: word };
    throw this.error(`unknown name '${word}' (only literals are allowed here)`, start);
  }
}

/** Parses one Python literal; trailing white space and `#` comments are allowed. */
export function parsePythonLiteral(text: string, options: ParseOptions = {}): PyValue {
  return new Reader(text, options.names ?? []).parseAll();
}
