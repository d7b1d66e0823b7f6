/**
 * keepalived.conf's syntax, without its meaning: text in, a tree of
 * `keyword args... [{ children }]` statements out, each with its file and
 * line. Pure: an `include` asks the caller's resolver for the included
 * files' text.
 *
 * What it follows of keepalived's parser (keepalived.conf(5)):
 * - one statement per line; `{` opens a block for the statement before it
 *   (on the same line, or alone on the next line), `}` closes it;
 * - `#` and `!` start a comment anywhere outside quotes;
 * - `"` and `'` quote parts of a word (`a" b "c` is the one word `a b c`),
 *   with backslash escapes inside quotes (`\n`, `\t`, `\xHH`, octal, `\\`...);
 * - `include FILE` (and includer, includem, includew, includeb, includea)
 *   is textual: the included lines take the place of the include line;
 * - `$NAME=VALUE` defines a parameter, replaced in later lines where
 *   `${NAME}`, or `$NAME` followed by white space, appears;
 * - a line starting with `@id` or `@^id` is conditional on the host's
 *   config-id, which an import does not know: it is left out, with a note.
 */

import type { Problem } from '../runtime/errors.js';
import type { ImportNote, SourceRef } from './model.js';

export interface KaNode {
  readonly keyword: string;
  readonly args: readonly string[];
  /** The keyword's line; for a block, endLine is the line of its `}`. */
  readonly at: SourceRef;
  /** Undefined when the statement has no block. */
  readonly children: readonly KaNode[] | undefined;
}

export interface IncludedFile {
  /** The file's name as messages should show it. */
  readonly file: string;
  readonly text: string;
}

/** The files an include pattern names (relative to the including file), or why they cannot be read. */
export type IncludeResolver = (pattern: string, from: string) => { readonly files: readonly IncludedFile[] } | { readonly error: string };

export interface KaSyntax {
  readonly nodes: readonly KaNode[];
  readonly errors: readonly Problem[];
  readonly notes: readonly ImportNote[];
}

const INCLUDE_KEYWORDS = new Set(['include', 'includer', 'includem', 'includew', 'includeb', 'includea']);
const MAX_INCLUDE_DEPTH = 8;
const MAX_SUBSTITUTIONS = 16;

interface Building {
  keyword: string;
  args: string[];
  at: { file: string; line: number; endLine?: number };
  children: Building[] | undefined;
}

type Token = { kind: 'word'; text: string } | { kind: 'open' } | { kind: 'close' };

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = { a: '\x07', b: '\b', E: '\x1b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** The escape at text[i] (a backslash); returns the character(s) and the index after it. */
function readEscape(text: string, i: number): { value: string; next: number } {
  const c = text[i + 1];
  if (c === undefined) return { value: '\\', next: i + 1 };
  const simple = SIMPLE_ESCAPES[c];
  if (simple !== undefined) return { value: simple, next: i + 2 };
  if (c === 'x') {
    const hex = /^[0-9a-fA-F]{1,2}/.exec(text.slice(i + 2))?.[0];
    if (hex !== undefined) return { value: String.fromCharCode(parseInt(hex, 16)), next: i + 2 + hex.length };
  }
  const octal = /^[0-7]{1,3}/.exec(text.slice(i + 1))?.[0];
  if (octal !== undefined) return { value: String.fromCharCode(parseInt(octal, 8) & 0xff), next: i + 1 + octal.length };
  if (c === 'c' && i + 2 < text.length) return { value: String.fromCharCode(text.charCodeAt(i + 2) & 0x1f), next: i + 3 };
  return { value: c, next: i + 2 };
}

const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v';

/** One line's tokens, up to its comment; an error for an unterminated quote. */
export function tokenizeKeepalivedLine(line: string): { tokens: Token[]; error?: string } {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i] as string;
    if (isSpace(c)) {
      i++;
    } else if (c === '#' || c === '!') {
      break;
    } else if (c === '{' || c === '}') {
      tokens.push({ kind: c === '{' ? 'open' : 'close' });
      i++;
    } else {
      let text = '';
      while (i < line.length) {
        const d = line[i] as string;
        if (isSpace(d) || d === '{' || d === '}' || d === '#' || d === '!') break;
        if (d === '"' || d === "'") {
          const start = i;
          i++;
          while (i < line.length && line[i] !== d) {
            if (line[i] === '\\') {
              const escape = readEscape(line, i);
              text += escape.value;
              i = escape.next;
            } else {
              text += line[i];
              i++;
            }
          }
          if (i >= line.length) return { tokens, error: `unterminated ${d === '"' ? 'double' : 'single'} quote (opened at column ${start + 1})` };
          i++;
        } else {
          text += d;
          i++;
        }
      }
      tokens.push({ kind: 'word', text });
    }
  }
  return { tokens };
}

const PARAMETER_DEFINITION = /^\s*\$([A-Za-z_][A-Za-z0-9_]*)=(.*)$/;
const PARAMETER_USE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)(?=\s|$)/g;

function substitute(line: string, params: ReadonlyMap<string, string>): string {
  if (params.size === 0 || !line.includes('$')) return line;
  let text = line;
  for (let round = 0; round < MAX_SUBSTITUTIONS; round++) {
    const next = text.replace(PARAMETER_USE, (whole, braced?: string, bare?: string) => params.get(braced ?? bare ?? '') ?? whole);
    if (next === text) break;
    text = next;
  }
  return text;
}

/** keepalived.conf text -> statements, with every syntax error (file:line). */
export function parseKeepalivedSyntax(text: string, file: string, resolve?: IncludeResolver): KaSyntax {
  const root: Building[] = [];
  const errors: Problem[] = [];
  const notes: ImportNote[] = [];
  const stack: Building[] = [];
  const params = new Map<string, string>();
  const including: string[] = [];

  const container = (): Building[] => stack[stack.length - 1]?.children ?? root;

  function readFile(text: string, file: string): void {
    including.push(file);
    text
      .replace(/^\ufeff/, '')
      .split('\n')
      .forEach((raw, index) => readLine(raw.replace(/\r$/, ''), file, index + 1));
    including.pop();
  }

  function readLine(raw: string, file: string, line: number): void {
    const error = (message: string): void => void errors.push({ file, line, message });
    const definition = PARAMETER_DEFINITION.exec(raw);
    if (definition) {
      params.set(definition[1] as string, (definition[2] as string).trim());
      return;
    }
    const text = substitute(raw, params);
    const conditional = /^\s*@(\^?\S*)/.exec(text);
    if (conditional) {
      const id = conditional[1] ?? '';
      if (/[{}]/.test(text.slice(conditional[0].length).replace(/[#!].*$/, ''))) {
        error(`a conditional line (@${id}) that opens or closes a block cannot be imported: pybal import does not know this host's config-id; resolve it by hand`);
      } else {
        notes.push({
          at: { file, line },
          message: `conditional line (@${id}) left out: pybal import does not know this host's config-id, and pybal.conf has no conditional lines`,
        });
      }
      return;
    }
    const { tokens, error: tokenError } = tokenizeKeepalivedLine(text);
    if (tokenError !== undefined) {
      error(tokenError);
      return;
    }
    const first = tokens[0];
    if (first?.kind === 'word' && INCLUDE_KEYWORDS.has(first.text)) {
      include(tokens.slice(1), file, line);
      return;
    }
    let current: Building | undefined;
    tokens.forEach((token, index) => {
      if (token.kind === 'word') {
        if (current === undefined) {
          current = { keyword: token.text, args: [], at: { file, line }, children: undefined };
          container().push(current);
        } else {
          current.args.push(token.text);
        }
      } else if (token.kind === 'open') {
        let owner = current;
        if (owner === undefined && index === 0) {
          // `{` alone on the line after its keyword.
          const last = container()[container().length - 1];
          if (last !== undefined && last.children === undefined && (last.at.line < line || last.at.file !== file)) owner = last;
        }
        if (owner === undefined || owner.children !== undefined) {
          error("'{' with no keyword before it");
          return;
        }
        owner.children = [];
        stack.push(owner);
        current = undefined;
      } else {
        current = undefined;
        const closed = stack.pop();
        if (closed === undefined) error("'}' with no open block");
        else closed.at.endLine = line;
      }
    });
  }

  function include(args: readonly Token[], file: string, line: number): void {
    const error = (message: string): void => void errors.push({ file, line, message });
    const patterns = args.flatMap((t) => (t.kind === 'word' ? [t.text] : []));
    if (patterns.length === 0 || patterns.length !== args.length) {
      error('include needs a file name');
      return;
    }
    if (resolve === undefined) {
      error(`include ${patterns.join(' ')}: includes cannot be read here`);
      return;
    }
    if (including.length > MAX_INCLUDE_DEPTH) {
      error(`include ${patterns.join(' ')}: includes nested more than ${MAX_INCLUDE_DEPTH} deep`);
      return;
    }
    for (const pattern of patterns) {
      const resolved = resolve(pattern, file);
      if ('error' in resolved) {
        error(`include ${pattern}: ${resolved.error}`);
        continue;
      }
      for (const included of resolved.files) {
        if (including.includes(included.file)) {
          error(`include ${pattern}: ${included.file} would include itself (${[...including, included.file].join(' -> ')})`);
          continue;
        }
        readFile(included.text, included.file);
      }
    }
  }

  readFile(text, file);
  for (const open of stack.reverse()) {
    errors.push({ file: open.at.file, line: open.at.line, message: `the block of ${open.keyword} is never closed (missing '}')` });
  }
  return { nodes: root, errors, notes };
}
