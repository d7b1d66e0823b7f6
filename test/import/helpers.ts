/** Assertions the reader tests share. */
import { expect } from 'vitest';

import type { LvsImport, LvsService } from '../../src/import/model.js';
import { formatProblem } from '../../src/runtime/errors.js';

/** The one service a file without errors defines. */
export function onlyService(r: LvsImport): LvsService {
  expect(r.errors.map(formatProblem)).toEqual([]);
  expect(r.services).toHaveLength(1);
  return r.services[0] as LvsService;
}

/** Notes as `line: message`. */
export function noteLines(r: { notes: readonly { at: { line: number }; message: string }[] }): string[] {
  return r.notes.map((n) => `${n.at.line}: ${n.message}`);
}
