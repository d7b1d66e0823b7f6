/**
 * The etcd v2 side of a pool, as conftool writes it and PyBal reads it: one
 * key per server under the pool's directory, named by the host, whose value
 * is JSON such as {"pooled": "yes", "weight": 10}. `pooled` "yes" means
 * enabled, "no" disabled, "inactive" not in the pool at all; without
 * `pooled` the server is enabled. Pure: decodes responses and keeps the
 * state the watch updates.
 */
import type { Problem } from '../runtime/errors.js';
import { checkEntry, clip, type EntryField, type EntryValue, type FormatTerms } from './entry-rules.js';
import { JsonSyntaxError, parseJson, type JsonValue } from './json-reader.js';
import type { Pool, PoolServer } from './types.js';

/** A node of an etcd v2 answer, as far as the pool needs it. */
export interface EtcdNode {
  readonly key: string;
  readonly value?: string;
  readonly dir?: boolean;
  readonly nodes?: readonly EtcdNode[];
  readonly modifiedIndex?: number;
}

export interface EtcdAnswer {
  readonly action: string;
  readonly node: EtcdNode;
}

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

/** Actions after which a key no longer exists. */
const REMOVALS = new Set(['delete', 'expire', 'compareAndDelete']);

function show(value: JsonValue): string {
  if (value.type === 'string') return `string ${clip(JSON.stringify(value.value))}`;
  if (value.type === 'number') return `number ${clip(value.raw)}`;
  if (value.type === 'boolean') return `boolean ${value.value}`;
  return value.type;
}

function entryValue(value: JsonValue): EntryValue {
  const shown = show(value);
  if (value.type === 'number' && value.integer) return { type: 'int', value: value.value, shown };
  if (value.type === 'string') return { type: 'str', value: value.value, shown };
  if (value.type === 'boolean') return { type: 'bool', value: value.value, shown };
  return { type: 'other', shown };
}

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
  if (document.type !== 'object') return bad(`expected an object like {"pooled": "yes", "weight": 10}, got ${show(document)}`);
  const fields: EntryField[] = [];
  for (const member of document.entries) {
    if (member.key !== 'pooled') {
      fields.push({ key: member.key, value: entryValue(member.value), line: 0 });
      continue;
    }
    const pooled = member.value.type === 'string' ? member.value.value : undefined;
    if (pooled === 'inactive') return { kind: 'inactive' };
    const enabled = pooled === undefined ? undefined : POOLED.get(pooled);
    if (enabled === undefined) return bad(`expected "yes", "no" or "inactive", got ${show(member.value)}`, 'pooled');
    fields.push({ key: 'enabled', value: { type: 'bool', value: enabled, shown: JSON.stringify(pooled) }, line: 0 });
  }
  const host = hostOfKey(key);
  const check = checkEntry({ key: '', value: { type: 'str', value: host, shown: `string ${JSON.stringify(host)}` }, line: 0 }, fields, 0, TERMS);
  const problems = check.problems.map((p): Problem => (p.key === undefined ? { file: key, message: p.message } : { file: key, key: p.key, message: p.message }));
  return check.server === undefined ? { kind: 'bad', problems } : { kind: 'server', server: check.server, problems };
}

/** The servers of a pool directory, kept up to date from a full read and then each watch event. */
export class EtcdPoolState {
  private readonly entries = new Map<string, EtcdEntry>();

  /** Replaces everything with the tree of a full read. */
  reset(root: EtcdNode): void {
    this.entries.clear();
    this.apply({ action: 'get', node: root });
  }

  /** Applies one answer (a full read or a watch event). */
  apply(answer: EtcdAnswer): void {
    if (REMOVALS.has(answer.action)) {
      this.remove(answer.node.key);
      return;
    }
    this.store(answer.node);
  }

  pool(): Pool {
    const servers = new Map<string, PoolServer>();
    for (const key of [...this.entries.keys()].sort()) {
      const entry = this.entries.get(key);
      if (entry?.kind === 'server') servers.set(entry.server.host, entry.server);
    }
    return servers;
  }

  problems(): Problem[] {
    return [...this.entries.keys()].sort().flatMap((key) => {
      const entry = this.entries.get(key);
      return entry === undefined || entry.kind === 'inactive' ? [] : entry.problems;
    });
  }

  /** The first problem of each key that was skipped (a bad value), in key order. */
  skipped(): Problem[] {
    return [...this.entries.keys()].sort().flatMap((key) => {
      const entry = this.entries.get(key);
      return entry?.kind === 'bad' ? entry.problems.slice(0, 1) : [];
    });
  }

  private store(node: EtcdNode): void {
    if (node.dir === true || node.nodes !== undefined) {
      for (const child of node.nodes ?? []) this.store(child);
      return;
    }
    if (node.value === undefined) return;
    this.entries.set(node.key, decodeEtcdValue(node.key, node.value));
  }

  /** Removes a key, or everything under it when it was a directory. */
  private remove(key: string): void {
    const prefix = key.endsWith('/') ? key : `${key}/`;
    for (const k of [...this.entries.keys()]) if (k === key || k.startsWith(prefix)) this.entries.delete(k);
  }
}

/** The highest modifiedIndex in a tree (the next watch starts after it). */
export function maxModifiedIndex(node: EtcdNode): number {
  let max = node.modifiedIndex ?? 0;
  for (const child of node.nodes ?? []) max = Math.max(max, maxModifiedIndex(child));
  return max;
}

/** Checks the shape of an etcd answer; returns it typed, or a reason. */
export function readEtcdAnswer(body: unknown): EtcdAnswer | string {
  if (typeof body !== 'object' || body === null) return 'the answer is not a JSON object';
  const { action, node } = body as { action?: unknown; node?: unknown };
  if (typeof action !== 'string') return 'the answer has no action';
  const problem = nodeProblem(node);
  return problem ?? { action, node: node as EtcdNode };
}

function nodeProblem(node: unknown): string | undefined {
  if (typeof node !== 'object' || node === null) return 'a node is not an object';
  const n = node as Record<string, unknown>;
  if (typeof n.key !== 'string') return 'a node has no key';
  if (n.value !== undefined && typeof n.value !== 'string') return `node ${n.key} has a value that is not a string`;
  if (n.modifiedIndex !== undefined && typeof n.modifiedIndex !== 'number') return `node ${n.key} has a bad modifiedIndex`;
  if (n.nodes !== undefined) {
    if (!Array.isArray(n.nodes)) return `node ${n.key} has nodes that are not a list`;
    for (const child of n.nodes) {
      const problem = nodeProblem(child);
      if (problem !== undefined) return problem;
    }
  }
  return undefined;
}
