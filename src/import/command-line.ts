/**
 * A check command line (keepalived's misc_path, ldirectord's checkcommand)
 * as pybal's RunCommand runs it: an executable and its arguments, never
 * through a shell, with `server.ip` where the line had the server's own
 * address, so that one command serves every server of a service. A line
 * that needs a shell (pipes, redirections, variables...) becomes
 * `/bin/sh -c LINE`, the server's address passed as `$1`. Pure.
 */

import type { CommandArgument } from '../config/types.js';

export interface CommandSpec {
  readonly command: string;
  readonly arguments: readonly CommandArgument[];
  /** True when the line is run by /bin/sh -c. */
  readonly shell: boolean;
}

export type CommandResult = { readonly spec: CommandSpec } | { readonly problem: string };

const SHELL_SPECIALS = /[|&;<>()$`\n]/;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The address as a whole token: not part of a longer address or name. */
function addressPattern(ip: string): RegExp {
  return new RegExp(`(?<![0-9A-Za-z.:])${escapeRegExp(ip)}(?![0-9A-Za-z.:])`, 'g');
}

/** Splits on unquoted white space; quotes group, backslash escapes the next character. Undefined when a quote is left open. */
export function splitWords(text: string): string[] | undefined {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < text.length) word += text[++i] as string;
      else word += c;
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= '';
    } else if (c === '\\' && i + 1 < text.length) {
      word = (word ?? '') + (text[++i] as string);
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote !== undefined) return undefined;
  if (word !== undefined) words.push(word);
  return words;
}

/** Whether the line uses the shell: an unquoted special character, or a word starting with `~`. */
export function needsShell(text: string): boolean {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote === "'") {
      if (c === "'") quote = undefined;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '$' || c === '`') return true;
      else if (c === '\\') i++;
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === '\\') {
      i++;
    } else if (SHELL_SPECIALS.test(c) || (c === '~' && (i === 0 || /\s/.test(text[i - 1] as string)))) {
      return true;
    }
  }
  return false;
}

/** sh single-quoting. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The line for /bin/sh -c with the address replaced by "$1" (not possible inside single quotes). */
function shellLine(text: string, ip: string | undefined): { line: string; usesAddress: boolean } | undefined {
  if (ip === undefined) return { line: text, usesAddress: false };
  const pattern = addressPattern(ip);
  let line = '';
  let usesAddress = false;
  let quote: string | undefined;
  let i = 0;
  while (i < text.length) {
    pattern.lastIndex = i;
    const m = pattern.exec(text);
    if (m !== null && m.index === i) {
      if (quote === "'") return undefined;
      line += quote === '"' ? '$1' : '"$1"';
      usesAddress = true;
      i += ip.length;
      continue;
    }
    const c = text[i] as string;
    if (quote === undefined && (c === "'" || c === '"')) quote = c;
    else if (quote === c) quote = undefined;
    else if (c === '\\' && quote !== "'" && i + 1 < text.length) {
      line += c + (text[i + 1] as string);
      i += 2;
      continue;
    }
    line += c;
    i++;
  }
  return { line, usesAddress };
}

/**
 * The command a line runs for the server at `ip` (undefined: no server
 * address to look for), with that address replaced by `server.ip`.
 */
export function parseCheckCommand(text: string, ip?: string): CommandResult {
  const line = text.trim();
  if (line === '') return { problem: 'the command is empty' };
  const viaShell = (): CommandResult => {
    const shell = shellLine(line, ip);
    if (shell === undefined) return { problem: "the server's address appears inside single quotes, where it cannot be replaced by each server's own" };
    const args: CommandArgument[] = [{ literal: '-c' }, { literal: shell.line }];
    if (shell.usesAddress) args.push({ literal: 'sh' }, { server: 'ip' });
    return { spec: { command: '/bin/sh', arguments: args, shell: true } };
  };
  if (needsShell(line)) return viaShell();
  const words = splitWords(line);
  if (words === undefined) return { problem: 'a quote is left open' };
  const [command, ...rest] = words;
  if (command === undefined) return { problem: 'the command is empty' };
  if (ip !== undefined && words.some((w) => w !== ip && addressPattern(ip).test(w))) {
    // The address is part of a longer word (--host=ADDR): only a shell can splice it in.
    return viaShell();
  }
  if (ip !== undefined && command === ip) return { problem: "the command itself is the server's address" };
  return {
    spec: {
      command,
      arguments: rest.map((w): CommandArgument => (ip !== undefined && w === ip ? { server: 'ip' } : { literal: w })),
      shell: false,
    },
  };
}
