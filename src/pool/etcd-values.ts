/**
 * An etcd pool's values, whichever API reads them (v2: etcd-nodes.ts, v3:
 * etcd3-gateway.ts): one key per server, named by the host, whose value is
 * JSON such as {"pooled": "yes", "weight": 10}, as conftool writes it and
 * PyBal reads it. `pooled` "yes" means enabled, "no" disabled, "inactive"
 * not in the pool at all; without `pooled` the server is enabled.
 *
 * EtcdEntries keeps the decoded keys of one pool in key order, so that both
 * sources list the same pool in the same order, a change costs one decode,
 * and a pool of 100,000 keys is built in steps (runtime/sliced.ts) without a
 * sort. Pure.
 */
import type { Problem } from '../runtime/errors.js';
import { finish } from '../runtime/sliced.js';
import { checkEntry, type EntryField, type FormatTerms } from './entry-rules.js';
import { showJson, toEntryValue } from './json-format.js';
import { JsonSyntaxError, parseJson, type JsonValue } from './json-reader.js';
import type { PoolParseResult } from './pool-builder.js';
import type { PoolServer } from './types.js';

/** What one server key amounts to. */
export type EtcdEntry =
  | { readonly kind: 'server'; readonly server: PoolServer; readonly problems: readonly Problem[] }
  | { readonly kind: 'inactive' }
  | { readonly kind: 'bad'; readonly problems: readonly Problem[] };

const TERMS: FormatTerms = { int: 'an integer', bool: 'true or false', str: 'string', knownKeys: 'pooled, weight', hostKey: undefined };
const POOLED = new Map([
  ['yes', true],
  ['no', false],
]);

/** The host a key names: its last path component, as PyBal. */
export function hostOfKey(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

/** Decodes the value of one server key. */
export function decodeEtcdValue(key: string, value: string): EtcdEntry {
  const bad = (message: string, field?: string): EtcdEntry => ({
    kind: 'bad',
    problems: [field === undefined ? { file: key, message } : { file: key, key: field, message }],
  });
  let document: JsonValue;
  try {
    document = parseJson(value);
  } catch (e) {
    if (e instanceof JsonSyntaxError) return bad(`invalid JSON at offset ${e.offset}: ${e.message}`);
    throw e;
  }
  if (document.type !== 'object') return bad(`expected an object like {"pooled": "yes", "weight": 10}, got ${showJson(document)}`);
  const fields: EntryField[] = [];
  for (const member of document.entries) {
    if (member.key !== 'pooled') {
      fields.push({ key: member.key, value: toEntryValue(member.value), line: 0 });
      continue;
    }
    const pooled = member.value.type === 'string' ? member.value.value : undefined;
    if (pooled === 'inactive') return { kind: 'inactive' };
    const enabled = pooled === undefined ? undefined : POOLED.get(pooled);
    if (enabled === undefined) return bad(`expected "yes", "no" or "inactive", got ${showJson(member.value)}`, 'pooled');
    fields.push({ key: 'enabled', value: { type: 'bool', value: enabled, shown: JSON.stringify(pooled) }, line: 0 });
  }
  const host = hostOfKey(key);
  const check = checkEntry({ key: '', value: { type: 'str', value: host, shown: `string ${JSON.stringify(host)}` }, line: 0 }, fields, 0, TERMS);
  const problems = check.problems.map((p): Problem => (p.key === undefined ? { file: key, message: p.message } : { file: key, key: p.key, message: p.message }));
  return check.server === undefined ? { kind: 'bad', problems } : { kind: 'server', server: check.server, problems };
}

/** Keys looked at between two pauses of EtcdEntries.steps. */
const KEYS_PER_STEP = 2048;

interface Stored {
  /** The value as read, to tell whether a new value needs decoding at all. */
  readonly value: string;
  readonly entry: EtcdEntry;
}

/**
 * The decoded keys of one pool, listed in JavaScript string order. A change
 * costs O(1): a new key is appended, a deleted one only noted; the list is
 * put back in order when a pool is next built, which the delivery of a pool
 * (O(pool) anyway) pays for once: sorting a list that is in order but for a
 * few keys at its end takes linear time (V8's sort finds the runs), and
 * dropping the deleted keys one pass.
 */
export class EtcdEntries {
  private readonly byKey = new Map<string, Stored>();
  /** Every key of byKey, and the keys of `removed`; in order unless `ordered` is false. */
  private keys: string[] = [];
  private ordered = true;
  /** Keys deleted since the list was last tidied, still in `keys`. */
  private readonly removed = new Set<string>();

  get size(): number {
    return this.byKey.size;
  }

  /**
   * Sets a key, decoding its value unless `memo` (these entries, or those a
   * full read replaces) holds the same value for it: a rewrite of the same
   * value, or re-reading an unchanged pool of 100,000 servers, decodes nothing.
   */
  set(key: string, value: string, memo: EtcdEntries = this): void {
    const known = this.byKey.has(key);
    const old = memo.byKey.get(key);
    this.byKey.set(key, old !== undefined && old.value === value ? old : { value, entry: decodeEtcdValue(key, value) });
    // A key deleted and set again is still listed, at its place.
    if (known || this.removed.delete(key)) return;
    const last = this.keys[this.keys.length - 1];
    if (last !== undefined && !(last < key)) this.ordered = false;
    this.keys.push(key);
  }

  delete(key: string): void {
    if (this.byKey.delete(key)) this.removed.add(key);
  }

  /** Deletes a key and every key under it as a directory (etcd v2 deletes a directory in one event). */
  deleteTree(key: string): void {
    this.delete(key);
    const dir = key.endsWith('/') ? key : `${key}/`;
    for (const k of this.byKey.keys()) if (k.startsWith(dir)) this.delete(k);
  }

  /**
   * The pool in key order, as a job that pauses every few thousand keys. When
   * two keys name the same host (in two subdirectories), the later key's
   * entry wins at the earlier key's place. A change made between two steps
   * does not disturb the walk (it may or may not be seen).
   */
  *steps(): Generator<void, PoolParseResult, undefined> {
    const keys = this.tidy().slice();
    const pool = new Map<string, PoolServer>();
    const problems: Problem[] = [];
    const skipped: Problem[] = [];
    for (let i = 0; i < keys.length; i++) {
      if (i % KEYS_PER_STEP === KEYS_PER_STEP - 1) yield;
      const entry = this.byKey.get(keys[i] as string)?.entry;
      if (entry === undefined || entry.kind === 'inactive') continue;
      for (const problem of entry.problems) problems.push(problem);
      if (entry.kind === 'server') pool.set(entry.server.host, entry.server);
      else if (entry.problems[0] !== undefined) skipped.push(entry.problems[0]);
    }
    return { pool, problems, skipped };
  }

  /** The pool at once (small pools, tests). */
  result(): PoolParseResult {
    return finish(this.steps());
  }

  /** The keys in order, without the deleted ones. */
  private tidy(): readonly string[] {
    if (this.removed.size > 0) {
      this.keys = this.keys.filter((key) => !this.removed.has(key));
      this.removed.clear();
    }
    if (!this.ordered) {
      this.keys.sort();
      this.ordered = true;
    }
    return this.keys;
  }
}
