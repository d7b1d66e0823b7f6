/**
 * `pybal check-config [-c FILE] [--print]`: validates a configuration and
 * prints every problem, or a one-line summary of what the file defines.
 * Exit code 0 only when the file has no errors (warnings are allowed).
 */

import { formatProblem, type Problem } from '../runtime/errors.js';
import { formatConfig } from '../config/format-config.js';
import { loadConfig } from '../config/load-config.js';
import { formatEndpoint } from '../config/parse-config.js';
import type { Config } from '../config/types.js';

export interface CheckConfigOptions {
  readonly file: string;
  /** Also print the effective configuration (every default filled in) as INI. */
  readonly print?: boolean;
}

export function formatWarning(problem: Problem): string {
  return formatProblem({ ...problem, message: `warning: ${problem.message}` });
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** `FILE: OK: 2 services (text_80 tcp 192.0.2.11:80 wlc, ...), BGP on (AS 64496, 1 peer)`. */
export function summarizeConfig(config: Config, warnings: number): string {
  const services = config.services
    .map((s) => {
      const endpoint = `${s.protocol} ${formatEndpoint(s)}`;
      return `${s.name} ${s.fwmark !== undefined ? `fwmark ${s.fwmark} (${endpoint})` : endpoint} ${s.scheduler}`;
    })
    .join(', ');
  const g = config.global;
  const bgp = g.bgp ? `BGP on (AS ${g.bgpLocalAsn ?? '?'}, ${plural(g.bgpPeerAddresses.length, 'peer')})` : 'BGP off';
  const tail = warnings > 0 ? `, ${plural(warnings, 'warning')}` : '';
  return `${config.file}: OK: ${plural(config.services.length, 'service')}${services === '' ? '' : ` (${services})`}, ${bgp}${tail}`;
}

export async function runCheckConfig(options: CheckConfigOptions, out: (line: string) => void): Promise<number> {
  const result = await loadConfig(options.file);
  const { config, errors, warnings } = result;
  if (config === undefined) {
    const problems = [...errors.map((p) => ({ p, text: formatProblem(p) })), ...warnings.map((p) => ({ p, text: formatWarning(p) }))];
    problems.sort((a, b) => (a.p.line ?? 0) - (b.p.line ?? 0));
    for (const { text } of problems) out(text);
    out(`${options.file}: ${plural(errors.length, 'error')}${warnings.length > 0 ? `, ${plural(warnings.length, 'warning')}` : ''}`);
    return 1;
  }
  // With --print everything but the INI itself is an INI comment, so the whole output stays INI.
  const note = options.print ? (line: string): void => out(`; ${line}`) : out;
  for (const w of warnings) note(formatWarning(w));
  note(summarizeConfig(config, warnings.length));
  if (options.print) {
    for (const line of formatConfig(config).replace(/\n$/, '').split('\n')) out(line);
  }
  return 0;
}
