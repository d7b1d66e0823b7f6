/**
 * A strict JSON (RFC 8259) reader that keeps what JSON.parse throws away and
 * a pool file needs: whether a number was written as an integer (`10`) or not
 * (`10.0`, `1e1`), as Python's json module tells them apart, and the offset
 * of every value and object key, so that a bad entry can be reported by line.
 * Pure: no I/O.
 */

export type JsonValue =
  | { readonly type: 'object'; readonly offset: number; readonly entries: readonly JsonMember[] }
  | { readonly type: 'array'; readonly offset: number; readonly items: readonly JsonValue[] }
  | { readonly type: 'string'; readonly offset: number; readonly value: string }
  /** `integer` is true when the literal has no fraction and no exponent. */
  | { readonly type: 'number'; readonly offset: number; readonly value: number; readonly integer: boolean; readonly raw: string }
  | { readonly type: 'boolean'; readonly offset: number; readonly value: boolean }
  | { readonly type: 'null'; readonly offset: number };

export interface JsonMember {
  readonly key: string;
  readonly keyOffset: number;
  readonly value: JsonValue;
}

export class JsonSyntaxError extends Error {
  /** 0-based offset in the text where the problem was found. */
  readonly offset: number;

  constructor(message: string, offset: number) {
    super(message);
    this.name = 'JsonSyntaxError';
    this.offset = offset;
  }
}

/** Deeper nesting is junk for a pool file; the limit also bounds recursion. */
const MAX_DEPTH = 64;

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

const WORDS = [
  ['true', { type: 'boolean', value: true }],
  ['false', { type: 'boolean', value: false }],
  ['null', { type: 'null' }],
] as const;

function describeChar(c: string): string {
  return JSON.stringify(c);
}

class Reader {
  private pos = 0;

  constructor(private readonly text: string) {}

  parseAll(): JsonValue {
    this.skipSpace();
    if (this.pos >= this.text.length) throw this.error('the document is empty');
    const value = this.parseValue(0);
    this.skipSpace();
    if (this.pos < this.text.length) throw this.error(`unexpected ${describeChar(this.text[this.pos] as string)} after the document`);
    return value;
  }

  private error(message: string, at = this.pos): JsonSyntaxError {
    return new JsonSyntaxError(message, at);
  }

  private skipSpace(): void {
    while (this.pos < this.text.length) {
      const c = this.text[this.pos];
      if (c !== ' ' && c !== '\t' && c !== '\n' && c !== '\r') break;
      this.pos++;
    }
  }

  private parseValue(depth: number): JsonValue {
    if (depth > MAX_DEPTH) throw this.error(`nested more than ${MAX_DEPTH} levels deep`);
    this.skipSpace();
    const offset = this.pos;
    const c = this.text[offset];
    if (c === undefined) throw this.error('unexpected end of the document');
    if (c === '{') return this.parseObject(depth);
    if (c === '[') return this.parseArray(depth);
    if (c === '"') return { type: 'string', offset, value: this.parseString() };
    if (c === '-' || (c >= '0' && c <= '9')) return this.parseNumber();
    for (const [word, value] of WORDS) {
      if (this.text.startsWith(word, offset)) {
        this.pos += word.length;
        return { ...value, offset };
      }
    }
    throw this.error(`unexpected ${describeChar(c)}`);
  }

  /** Reads the separator after an element: true when the container goes on. */
  private separator(close: string, start: number, what: string): boolean {
    this.skipSpace();
    const next = this.text[this.pos];
    if (next === ',') {
      this.pos++;
      return true;
    }
    if (next === close) {
      this.pos++;
      return false;
    }
    if (next === undefined) throw this.error(`${what} is never closed`, start);
    throw this.error(`expected ',' or '${close}', found ${describeChar(next)}`);
  }

  private parseObject(depth: number): JsonValue {
    const offset = this.pos;
    this.pos++;
    const entries: JsonMember[] = [];
    this.skipSpace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return { type: 'object', offset, entries };
    }
    do {
      this.skipSpace();
      const keyOffset = this.pos;
      const c = this.text[keyOffset];
      if (c === undefined) throw this.error('object is never closed', offset);
      if (c !== '"') throw this.error(`expected a string key, found ${describeChar(c)}`);
      const key = this.parseString();
      this.skipSpace();
      if (this.text[this.pos] !== ':') throw this.error("expected ':' after an object key");
      this.pos++;
      entries.push({ key, keyOffset, value: this.parseValue(depth + 1) });
    } while (this.separator('}', offset, 'object'));
    return { type: 'object', offset, entries };
  }

  private parseArray(depth: number): JsonValue {
    const offset = this.pos;
    this.pos++;
    const items: JsonValue[] = [];
    this.skipSpace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return { type: 'array', offset, items };
    }
    do items.push(this.parseValue(depth + 1));
    while (this.separator(']', offset, 'array'));
    return { type: 'array', offset, items };
  }

  private parseString(): string {
    const start = this.pos;
    this.pos++; // the opening quote
    // Fast path: no escape and no control character before the closing quote.
    const close = this.text.indexOf('"', this.pos);
    if (close !== -1) {
      const plain = this.text.slice(this.pos, close);
      if (!/[\\\x00-\x1f]/.test(plain)) {
        this.pos = close + 1;
        return plain;
      }
    }
    let out = '';
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined || c === '\n') throw this.error('string is never closed', start);
      if (c === '"') {
        this.pos++;
        return out;
      }
      if (c < ' ') throw this.error(`control character ${describeChar(c)} in a string`);
      if (c !== '\\') {
        out += c;
        this.pos++;
        continue;
      }
      const next = this.text[this.pos + 1];
      const simple = next === undefined ? undefined : ESCAPES[next];
      if (simple !== undefined) {
        out += simple;
        this.pos += 2;
      } else if (next === 'u') {
        const digits = this.text.slice(this.pos + 2, this.pos + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(digits)) throw this.error('bad \\u escape');
        out += String.fromCharCode(parseInt(digits, 16));
        this.pos += 6;
      } else {
        throw this.error(`bad escape \\${next ?? ''}`);
      }
    }
  }

  /** Advances over digits; returns how many there were. */
  private digits(): number {
    const start = this.pos;
    while (this.pos < this.text.length && (this.text[this.pos] as string) >= '0' && (this.text[this.pos] as string) <= '9') this.pos++;
    return this.pos - start;
  }

  private parseNumber(): JsonValue {
    const offset = this.pos;
    const malformed = (): JsonSyntaxError => this.error('malformed number', offset);
    if (this.text[this.pos] === '-') this.pos++;
    if (this.text[this.pos] === '0') this.pos++;
    else if (this.digits() === 0) throw malformed();
    let integer = true;
    if (this.text[this.pos] === '.') {
      this.pos++;
      integer = false;
      if (this.digits() === 0) throw malformed();
    }
    if (this.text[this.pos] === 'e' || this.text[this.pos] === 'E') {
      this.pos++;
      integer = false;
      if (this.text[this.pos] === '+' || this.text[this.pos] === '-') this.pos++;
      if (this.digits() === 0) throw malformed();
    }
    // `01` or `1.2.3` would leave a digit or dot behind: reject rather than split.
    const after = this.text[this.pos];
    if (after !== undefined && /[0-9.eE]/.test(after)) throw malformed();
    const raw = this.text.slice(offset, this.pos);
    return { type: 'number', offset, value: Number(raw), integer, raw };
  }
}

/** Parses a JSON document; throws JsonSyntaxError with the offset of the problem. */
export function parseJson(text: string): JsonValue {
  return new Reader(text).parseAll();
}
