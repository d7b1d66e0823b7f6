/**
 * The four setups of real-world keepalived and ldirectord guides, each
 * written for both tools (test/import/fixtures/guides), converted as
 * `pybal import` converts them. Shared by the golden tests, the test that
 * feeds the result to pybal's own parser, and the lab test.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { convertToPybal, type Conversion } from '../../src/import/convert.js';
import { parseKeepalived } from '../../src/import/keepalived.js';
import { parseLdirectord } from '../../src/import/ldirectord.js';
import type { ImportFormat, LvsImport } from '../../src/import/model.js';

export const GUIDE_DIR = join('test', 'import', 'fixtures', 'guides');
export const EXPECTED_DIR = join('test', 'import', 'fixtures', 'expected');

/** The VIP and real servers the guides use: the lab's addresses (test/lab/topology.ts). */
export const GUIDE_VIP = '203.0.113.1';
export const GUIDE_REAL_SERVERS = ['198.51.100.11', '198.51.100.12', '198.51.100.13'] as const;

export const SETUPS = ['web-dr', 'tcp-weights', 'fwmark', 'udp-command'] as const;
export type Setup = (typeof SETUPS)[number];

export interface Guide {
  readonly setup: Setup;
  readonly format: ImportFormat;
  /** The fixture's file name, also how comments name it. */
  readonly file: string;
}

export const GUIDES: readonly Guide[] = SETUPS.flatMap((setup) => [
  { setup, format: 'keepalived' as const, file: `${setup}.keepalived.conf` },
  { setup, format: 'ldirectord' as const, file: `${setup}.ldirectord.cf` },
]);

export function guideText(guide: Guide): string {
  return readFileSync(join(GUIDE_DIR, guide.file), 'utf8');
}

/**
 * Reads a guide's text (the fixture's unless given) as `pybal import` does.
 * An ldirectord firewall-mark virtual names no address: it gets the guide's
 * VIP, as `--fwmark-ip 1=203.0.113.1` would give it.
 */
export function importGuide(guide: Guide, text = guideText(guide)): LvsImport {
  return guide.format === 'keepalived' ? parseKeepalived(text, guide.file) : parseLdirectord(text, guide.file, { fwmarkIp: () => GUIDE_VIP });
}

export function convertGuide(guide: Guide, options: { text?: string; poolDir?: string } = {}): Conversion {
  const imported = importGuide(guide, options.text);
  if (imported.errors.length > 0) throw new Error(`${guide.file}: ${imported.errors.map((e) => e.message).join('; ')}`);
  return convertToPybal(imported, options.poolDir === undefined ? {} : { poolDir: options.poolDir });
}
