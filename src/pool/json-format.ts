/**
 * PyBal's JSON pool format (a `.json` URL):
 *   {"mw1001.eqiad.wmnet": {"enabled": true, "weight": 10}, ...}
 * A document that is not valid JSON, or not an object, is an error for the
 * whole file (the caller keeps the last good pool). A bad entry is reported
 * with the line of its key and skipped; the rest applies. Pure.
 */
import { ProblemsError } from '../runtime/errors.js';
import { checkEntry, clip, type EntryValue, type FormatTerms } from './entry-rules.js';
import { parseJson, JsonSyntaxError, type JsonValue } from './json-reader.js';
import { createLineIndex, createPoolBuilder, type PoolParseResult } from './pool-builder.js';

const TERMS: FormatTerms = { int: 'an integer', bool: 'true or false', str: 'string', knownKeys: 'weight, enabled', hostKey: undefined };

const EXAMPLE = '{"mw1": {"enabled": true, "weight": 10}}';

/** A JSON value as messages show it: its type, and its text for a scalar (`string "10"`). */
export function showJson(value: JsonValue): string {
  switch (value.type) {
    case 'object':
      return 'object';
    case 'array':
      return 'array';
    case 'string':
      return `string ${clip(JSON.stringify(value.value))}`;
    case 'number':
      return `number ${clip(value.raw)}`;
    case 'boolean':
      return `boolean ${value.value}`;
    case 'null':
      return 'null';
  }
}

/** A JSON value reduced to what the entry rules check (shared with the etcd values, which are JSON too). */
export function toEntryValue(value: JsonValue): EntryValue {
  const shown = showJson(value);
  if (value.type === 'number' && value.integer) {
    // Outside the safe range the value is not exact; the rules only need to see it is too large.
    return { type: 'int', value: value.value, shown };
  }
  if (value.type === 'string') return { type: 'str', value: value.value, shown };
  if (value.type === 'boolean') return { type: 'bool', value: value.value, shown };
  return { type: 'other', shown };
}

/** Parses a JSON pool; throws ProblemsError when the document as a whole is unusable. */
export function parseJsonPool(text: string, file: string): PoolParseResult {
  const body = text.replace(/^\ufeff/, '');
  const at = createLineIndex(body);
  let document: JsonValue;
  try {
    document = parseJson(body);
  } catch (error) {
    if (!(error instanceof JsonSyntaxError)) throw error;
    const { line, column } = at(error.offset);
    throw new ProblemsError([{ file, line, message: `invalid JSON at column ${column}: ${error.message}` }]);
  }
  if (document.type !== 'object') {
    const { line } = at(document.offset);
    throw new ProblemsError([{ file, line, message: `expected an object of hosts like ${EXAMPLE}, got ${showJson(document)}` }]);
  }
  const builder = createPoolBuilder(file);
  for (const member of document.entries) {
    const line = at(member.keyOffset).line;
    const host = { key: member.key, value: toEntryValue({ type: 'string', offset: member.keyOffset, value: member.key }), line };
    if (member.value.type !== 'object') {
      builder.skip(line, `expected an object like {"enabled": true, "weight": 10}, got ${showJson(member.value)}`, member.key);
      continue;
    }
    const fields = member.value.entries.map((field) => ({
      key: field.key,
      value: toEntryValue(field.value),
      line: at(field.keyOffset).line,
    }));
    builder.add(checkEntry(host, fields, line, TERMS), line);
  }
  return builder.result();
}
