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
