/**
 * The node options the daemon runs with: the Debian package's /usr/sbin/pybal
 * gives them, and so do the benchmarks and the lab, which run the daemon as
 * operators do. V8 sizes its heap when the process starts, so they cannot be
 * set from inside. (The `#!` line of dist/cli/pybal.js, for npm's bin, stays
 * `#!/usr/bin/env node`: options there need `env -S`, which lintian flags.)
 *
 * --max-semi-space-size=2: every thread's young generation at most 2 MB a
 * half (V8's own limit is 16). At 10,000 servers checked every 10 s, its
 * checks and messages make a lot of short-lived garbage, and V8 grew each
 * heap's young generation towards its limit for it. Side by side in one lab
 * guest (bench:checks, 10,000 ProxyFetch servers, two rounds each) RSS was
 * 215 and 214 MB against 236 and 225, for the same CPU per check and no more
 * event-loop stalls; on the host 129 MB against 151.
 */
export const DAEMON_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=2'];

/**
 * The environment the daemon runs with, given the same way (glibc reads it
 * when the process starts; an operator's own value, from the unit's
 * Environment=, wins in /usr/sbin/pybal).
 *
 * MALLOC_ARENA_MAX=2: at most two malloc arenas for the whole process. glibc
 * gives each thread that allocates an arena of its own, up to eight per core
 * (the main thread, V8's helpers, libuv's pool, the checks and BGP threads),
 * and free memory stays behind in each. Side by side in one lab guest
 * (bench:checks, 10,000 ProxyFetch servers, the same build, two rounds
 * each): RSS 146.0 and 142.4 MB against 156.2 and 149.0, the C heap 35.0 and
 * 28.7 MB against 56.4 and 55.9, for no resolvable change in CPU per check
 * (656 and 832 ms per 1,000 against 745 and 775).
 */
export const DAEMON_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

/**
 * The command that starts the daemon's `node`: env(1) with DAEMON_ENV, then
 * `extraEnv` ('NAME=value', which wins over DAEMON_ENV), then node with
 * DAEMON_NODE_OPTIONS (env execs node: the pid is node's).
 */
export function daemonCommand(node: string, extraEnv: readonly string[] = []): string[] {
  return ['/usr/bin/env', ...Object.entries(DAEMON_ENV).map(([name, value]) => `${name}=${value}`), ...extraEnv, node, ...DAEMON_NODE_OPTIONS];
}
