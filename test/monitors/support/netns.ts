/**
 * A private network namespace for down-path tests: a veth pair whose far
 * end never answers (a static neighbour entry points at a MAC nobody has), in
 * documentation ranges only. 192.0.2.1 and 2001:db8::1 are local (they
 * answer); 192.0.2.2 and 2001:db8::2 are silent until `answer()` makes them local.
 */
import { execFileSync } from 'node:child_process';
import { runVitestInNetns, type NestedRun } from './nested-vitest.js';

export interface SilentNetns {
  readonly name: string;
  /** Runs a command inside the namespace: a prefix for spawn. */
  readonly prefix: readonly string[];
  /** Makes a silent address answer (adds it to the local interface). */
  answer(ip: string): void;
  /** Makes it silent again. */
  silence(ip: string): void;
  remove(): void;
}

export function createSilentNetns(tag: string): SilentNetns {
  const name = `pybal-mon-${tag}-${process.pid}`;
  const ip = (...args: string[]): void => {
    execFileSync('ip', ['-n', name, ...args], { stdio: 'pipe' });
  };
  execFileSync('ip', ['netns', 'add', name], { stdio: 'pipe' });
  try {
    ip('link', 'set', 'lo', 'up');
    ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    ip('addr', 'add', '192.0.2.1/24', 'dev', 'v0');
    ip('-6', 'addr', 'add', '2001:db8::1/64', 'dev', 'v0', 'nodad');
    ip('link', 'set', 'v0', 'up');
    ip('link', 'set', 'v1', 'up');
    ip('neigh', 'add', '192.0.2.2', 'lladdr', '02:00:00:00:00:02', 'dev', 'v0', 'nud', 'permanent');
    ip('-6', 'neigh', 'add', '2001:db8::2', 'lladdr', '02:00:00:00:00:02', 'dev', 'v0', 'nud', 'permanent');
  } catch (error) {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe' });
    throw error;
  }
  const prefixLen = (addr: string): string => (addr.includes(':') ? '128' : '32');
  return {
    name,
    prefix: ['ip', 'netns', 'exec', name],
    answer: (addr) => ip('addr', 'add', `${addr}/${prefixLen(addr)}`, 'dev', 'lo'),
    silence: (addr) => ip('addr', 'del', `${addr}/${prefixLen(addr)}`, 'dev', 'lo'),
    remove: () => execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe' }),
  };
}

/**
 * Runs one test file of test/monitors/netns/ in a nested vitest inside
 * namespace `ns` (`ip netns exec`), with `env` added; its exit code and
 * output, colours removed.
 */
export function runNestedInNetns(ns: string, file: string, env: Readonly<Record<string, string>>): Promise<NestedRun> {
  return runVitestInNetns(ns, 'test/monitors/netns/vitest.netns.config.ts', env, [file]);
}
