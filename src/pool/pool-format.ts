/**
 * Choosing and running the parser for a pool document, and comparing pools,
 * for every source that reads whole documents (file, http). Pure.
 */
import { formatProblem, type Problem } from '../runtime/errors.js';
import { parseJsonPool } from './json-format.js';
import { legacyPoolSteps, parseLegacyPool, type LegacyLineMemo } from './legacy-format.js';
import { sliced } from '../runtime/sliced.js';
import type { PoolParseResult } from './pool-builder.js';
import type { Pool } from './types.js';

export const POOL_FORMATS = ['legacy', 'json'] as const;
export type PoolFormat = (typeof POOL_FORMATS)[number];

/** As PyBal: a URL ending in `.json` holds JSON, anything else the legacy format. */
export function poolFormatForUrl(url: string): PoolFormat {
  return url.endsWith('.json') ? 'json' : 'legacy';
}

const PARSERS: Record<PoolFormat, (text: string, file: string) => PoolParseResult> = {
  legacy: parseLegacyPool,
  json: parseJsonPool,
};

/** Parses a document; throws ProblemsError when the whole document is unusable. */
export function parsePool(text: string, file: string, format: PoolFormat): PoolParseResult {
  return PARSERS[format](text, file);
}

/**
 * parsePool in slices, for the sources: a legacy pool of 100,000 lines is
 * read without holding the event loop, and with the source's memo only its
 * changed lines are parsed. (A JSON document is parsed in one go.)
 */
export function parsePoolSliced(text: string, file: string, format: PoolFormat, memo?: LegacyLineMemo): Promise<PoolParseResult> {
  if (format === 'legacy') return sliced(legacyPoolSteps(text, file, memo));
  return new Promise((resolve) => resolve(parsePool(text, file, format)));
}

/** True when both pools hold the same servers with the same settings (order aside, as PyBal's dict compare). */
export function samePool(a: Pool | undefined, b: Pool | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.size !== b.size) return false;
  for (const [host, server] of a) {
    const other = b.get(host);
    if (other === undefined || other.weight !== server.weight || other.enabled !== server.enabled) return false;
  }
  return true;
}

export function sameProblems(a: readonly Problem[], b: readonly Problem[]): boolean {
  return a.length === b.length && a.every((p, i) => formatProblem(p) === formatProblem(b[i] as Problem));
}
