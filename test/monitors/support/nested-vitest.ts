/**
 * Runs a vitest config inside a network namespace (`ip netns exec`), for
 * tests whose code under test must live in a namespace an outer test built.
 */
import { spawn } from 'node:child_process';

export interface NestedRun {
  readonly code: number | null;
  /** stdout and stderr, without colour codes. */
  readonly output: string;
}

/** `files`: only these test files of the config (default: all it includes). */
export async function runVitestInNetns(ns: string, config: string, env: Readonly<Record<string, string>>, files: readonly string[] = []): Promise<NestedRun> {
  const child = spawn('ip', ['netns', 'exec', ns, 'npx', 'vitest', 'run', '--config', config, ...files], {
    env: { ...process.env, ...env, NO_COLOR: '1', FORCE_COLOR: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  // eslint-disable-next-line no-control-regex
  return { code, output: output.replace(/\x1b\[[0-9;]*m/g, '') };
}
