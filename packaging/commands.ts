/** The subcommands as `pybal --help` lists them: what the man page and the bash completion name. */
import type { CommandDoc } from './man.js';

export function commandsFromHelp(help: string): CommandDoc[] {
  const lines = help.split('\n');
  const start = lines.indexOf('Commands:');
  if (start < 0) throw new Error('no Commands: section in pybal --help');
  const out: { synopsis: string; text: string }[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '') break;
    const entry = /^ {2}pybal (\S+(?: <[^>]+>)?)\s{2,}(.*)$/.exec(line);
    if (entry) {
      out.push({ synopsis: `pybal ${entry[1]}`, text: entry[2]!.replace(/\s*\[default\]\s*$/, '').trim() });
    } else if (out.length > 0 && /^\s{3,}\S/.test(line)) {
      const last = out[out.length - 1]!;
      last.text = `${last.text} ${line.trim()}`;
    }
  }
  return out;
}
