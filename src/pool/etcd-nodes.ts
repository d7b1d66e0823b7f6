/**
 * The etcd v2 side of a pool: one key per server under the pool's directory
 * (subdirectories included), whose value etcd-values.ts decodes. Pure:
 * checks the shape of answers and keeps the state the watch updates.
 */
import type { PoolParseResult } from './pool-builder.js';
import { EtcdEntries } from './etcd-values.js';

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

/** Actions after which a key no longer exists. */
const REMOVALS = new Set(['delete', 'expire', 'compareAndDelete']);

/** The servers of a pool directory, kept up to date from a full read and then each watch event. */
export class EtcdPoolState {
  private entries = new EtcdEntries();

  /** Replaces everything with the tree of a full read (values that did not change are not decoded again). */
  reset(root: EtcdNode): void {
    const next = new EtcdEntries();
    forEachValue(root, (key, value) => next.set(key, value, this.entries));
    this.entries = next;
  }

  /** Applies one answer (a watch event). */
  apply(answer: EtcdAnswer): void {
    if (REMOVALS.has(answer.action)) this.entries.deleteTree(answer.node.key);
    else forEachValue(answer.node, (key, value) => this.entries.set(key, value));
  }

  result(): PoolParseResult {
    return this.entries.result();
  }
}

/** Calls `fn` with each key that has a value in a tree (a directory's keys, at any depth). */
function forEachValue(node: EtcdNode, fn: (key: string, value: string) => void): void {
  if (node.dir === true || node.nodes !== undefined) {
    for (const child of node.nodes ?? []) forEachValue(child, fn);
  } else if (node.value !== undefined) {
    fn(node.key, node.value);
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
