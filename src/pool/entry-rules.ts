/**
 * The rules one pool entry must follow, shared by the legacy and JSON
 * formats: `host` a host name, `weight` an integer >= 0, `enabled` a boolean.
 * Each format reduces its values to EntryValue and names types in its own
 * terms (Python's `str`/`True`, JSON's `string`/`true`). Pure.
 */
import type { PoolServer } from './types.js';
import { ownCopy } from '../runtime/interner.js';

/** PyBal's Server defaults, used when a line leaves the key out. */
export const DEFAULT_WEIGHT = 10;
export const DEFAULT_ENABLED = true;
/** The kernel keeps an IPVS weight in a C int and rejects negative ones. */
export const MAX_WEIGHT = 2_147_483_647;

/** A value as a format wrote it, reduced to what the rules need. */
export type EntryValue =
  | { readonly type: 'int'; readonly value: number; readonly shown: string }
  | { readonly type: 'str'; readonly value: string; readonly shown: string }
  | { readonly type: 'bool'; readonly value: boolean; readonly shown: string }
  /** Anything else (float, None/null, list, dict...); `shown` names its type and value. */
  | { readonly type: 'other'; readonly shown: string };

/** How a format names the types it expects, for messages. */
export interface FormatTerms {
  readonly int: string;
  readonly bool: string;
  readonly str: string;
  /** The keys an entry may have, listed when an unknown one is ignored. */
  readonly knownKeys: string;
  /** The key that holds the host inside an entry (legacy `host`), if any. */
  readonly hostKey: string | undefined;
}

/** One key of an entry, with the line it sits on. */
export interface EntryField {
  readonly key: string;
  readonly value: EntryValue;
  readonly line: number;
}

export interface EntryProblem {
  readonly line: number;
  readonly key?: string;
  readonly message: string;
}

export interface EntryCheck {
  /** The server, or undefined when an error means the entry is skipped. */
  readonly server: PoolServer | undefined;
  /** Errors (when server is undefined) or notes about ignored keys. */
  readonly problems: readonly EntryProblem[];
}

/** A host name as written in a pool: no spaces or control characters. */
const BAD_HOST_CHARS = /[\s\x00-\x1f\x7f\ufffd]/u;

/** Whether a host string passes the host rule (non-empty, no spaces, control characters or invalid UTF-8). */
export function isHostName(host: string): boolean {
  return host !== '' && !BAD_HOST_CHARS.test(host);
}

function checkHost(value: EntryValue, terms: FormatTerms): string | undefined {
  if (value.type !== 'str' || value.value === '') return `expected a non-empty ${terms.str}, got ${value.shown}`;
  if (BAD_HOST_CHARS.test(value.value)) return `expected a host name (no spaces, control characters or invalid UTF-8), got ${value.shown}`;
  return undefined;
}

function checkWeight(value: EntryValue, terms: FormatTerms): string | number {
  if (value.type !== 'int' || value.value < 0) return `expected ${terms.int} >= 0, got ${value.shown}`;
  if (value.value > MAX_WEIGHT) return `expected ${terms.int} <= ${MAX_WEIGHT}, got ${value.shown}`;
  return value.value;
}

function checkEnabled(value: EntryValue, terms: FormatTerms): string | boolean {
  if (value.type !== 'bool') return `expected ${terms.bool}, got ${value.shown}`;
  return value.value;
}

/**
 * Checks one entry. `host` is the host as the format gives it (the `host` key
 * of a legacy line, the member name of a JSON object); `fields` are the other
 * keys. Keys other than weight and enabled are ignored, as PyBal ignores them,
 * but noted so that a misspelt `enabeld` does not go unseen.
 */
export function checkEntry(
  host: EntryField | undefined,
  fields: readonly EntryField[],
  entryLine: number,
  terms: FormatTerms,
): EntryCheck {
  const errors: EntryProblem[] = [];
  const notes: EntryProblem[] = [];
  if (host === undefined) {
    errors.push({ line: entryLine, key: 'host', message: 'missing: every line needs a host' });
  } else {
    const message = checkHost(host.value, terms);
    if (message !== undefined) errors.push({ line: host.line, key: 'host', message });
  }
  let weight = DEFAULT_WEIGHT;
  let enabled = DEFAULT_ENABLED;
  const seen = new Set<string>(host !== undefined && terms.hostKey !== undefined ? [terms.hostKey] : []);
  for (const field of fields) {
    if (seen.has(field.key)) {
      errors.push({ line: field.line, key: field.key, message: 'given more than once' });
      continue;
    }
    seen.add(field.key);
    if (field.key === 'weight') {
      const checked = checkWeight(field.value, terms);
      if (typeof checked === 'string') errors.push({ line: field.line, key: field.key, message: checked });
      else weight = checked;
    } else if (field.key === 'enabled') {
      const checked = checkEnabled(field.value, terms);
      if (typeof checked === 'string') errors.push({ line: field.line, key: field.key, message: checked });
      else enabled = checked;
    } else {
      notes.push({ line: field.line, key: field.key, message: `unknown key, ignored (known keys: ${terms.knownKeys})` });
    }
  }
  if (errors.length > 0 || host === undefined || host.value.type !== 'str') return { server: undefined, problems: errors };
  // The host is kept as long as the server stays: not as a view into the document it was read from.
  return { server: { host: ownCopy(host.value.value), weight, enabled }, problems: notes };
}

/** Shortens a value shown in a message so that junk cannot flood the log. */
export function clip(text: string, max = 60): string {
  return text.length <= max ? text : `${text.slice(0, max - 3)}...`;
}
