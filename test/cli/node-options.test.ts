/**
 * How the daemon's node is started (src/cli/node-options.ts), run for real:
 * env(1) gives the daemon's environment, then any extra one, which wins, and
 * execs node with the daemon's options.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { daemonCommand, DAEMON_NODE_OPTIONS } from '../../src/cli/node-options.js';

function run(command: string[]): { arenas: string | undefined; execArgv: string[] } {
  const [file, ...args] = command;
  const out = execFileSync(file!, [...args, '-e', 'console.log(JSON.stringify({ arenas: process.env.MALLOC_ARENA_MAX, execArgv: process.execArgv }))'], { encoding: 'utf8' });
  return JSON.parse(out) as { arenas: string | undefined; execArgv: string[] };
}

describe('daemonCommand', () => {
  it("starts node with the daemon's environment and options", () => {
    expect(run(daemonCommand(process.execPath))).toEqual({ arenas: '2', execArgv: [...DAEMON_NODE_OPTIONS, '-e', expect.any(String)] });
  });

  it('lets an extra environment override the daemon\'s own', () => {
    expect(run(daemonCommand(process.execPath, ['MALLOC_ARENA_MAX=8'])).arenas).toBe('8');
  });
});
