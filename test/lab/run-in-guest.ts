// CLI: runs one command inside a lab guest and exits with its status.
//   node dist/test/lab/run-in-guest.js [--timeout-sec N] [--mem-mb N] [--keep] -- CMD ARGS...
// The guest has a network link to the host (a tap, test/lab/host-link.ts) and
// the host's Chromium on request (host-browser.ts); PYBAL_LAB_HOST_LINK=0 leaves it out.
// On a timeout or a missing status it prints the tail of the console log.
import { removeScratch, runInGuest, tailFile } from './uml.js';

type CliOptions = { timeoutMs: number; memMb: number; keep: boolean; argv: string[] };

function parseArgs(args: readonly string[]): CliOptions {
  const options: CliOptions = {
    timeoutMs: Number(process.env.PYBAL_LAB_TIMEOUT_SEC ?? 1800) * 1000,
    memMb: Number(process.env.PYBAL_LAB_MEM_MB ?? 2048),
    keep: process.env.PYBAL_LAB_KEEP === '1',
    argv: [],
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const next = (): string => {
      const value = args[++i];
      if (value === undefined) throw new Error(`${arg} needs a value`);
      return value;
    };
    if (arg === '--') {
      options.argv = args.slice(i + 1);
      break;
    } else if (arg === '--timeout-sec') options.timeoutMs = Number(next()) * 1000;
    else if (arg === '--mem-mb') options.memMb = Number(next());
    else if (arg === '--keep') options.keep = true;
    else throw new Error(`unknown option ${arg}`);
  }
  if (options.argv.length === 0) throw new Error('usage: run-in-guest [--timeout-sec N] [--mem-mb N] [--keep] -- CMD ARGS...');
  if (!(options.timeoutMs > 0) || !(options.memMb > 0)) throw new Error('--timeout-sec and --mem-mb must be positive numbers');
  return options;
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const abort = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => abort.abort());
  const result = await runInGuest({
    signal: abort.signal,
    argv: options.argv,
    timeoutMs: options.timeoutMs,
    memMb: options.memMb,
    echo: process.stdout,
    // The guest gets an eth0 on a tap of the host (test/lab/host-link.ts) unless PYBAL_LAB_HOST_LINK=0.
    hostLink: process.env.PYBAL_LAB_HOST_LINK !== '0',
    env: {
      ...Object.fromEntries(
        Object.entries(process.env).filter(
          (e): e is [string, string] => /^(PYBAL_|CI$|NO_COLOR$|FORCE_COLOR$)/.test(e[0]) && e[1] !== undefined && !['PYBAL_LAB_SCRATCH', 'PYBAL_LAB_HOST_LINK', 'PYBAL_LAB_HOST_LINK_ERROR'].includes(e[0]),
        ),
      ),
      ...(process.env.PYBAL_LAB_HOST_LINK === '0' ? { PYBAL_LAB_HOST_LINK_ERROR: 'turned off by PYBAL_LAB_HOST_LINK=0' } : {}),
    },
  });
  const seconds = (result.durationMs / 1000).toFixed(1);
  if (result.hostLinkError !== undefined) process.stderr.write(`[lab] the guest had no link to the host: ${result.hostLinkError}\n`);
  if (abort.signal.aborted) {
    process.stderr.write(`\n[lab] interrupted; guest killed. Console log: ${result.consolePath}\n`);
    return 130;
  }
  if (result.code === null) {
    const why = result.timedOut ? `killed after its ${options.timeoutMs / 1000} s deadline` : 'ended without reporting a status';
    process.stderr.write(`\n[lab] guest ${why} (${seconds} s); console log: ${result.consolePath}\n--- console tail ---\n${tailFile(result.consolePath)}\n---\n`);
    return 124;
  }
  process.stderr.write(`[lab] guest command exited ${result.code} in ${seconds} s${result.code !== 0 || options.keep ? `; scratch kept: ${result.scratchDir}` : ''}\n`);
  if (result.code === 0 && !options.keep) removeScratch(result.scratchDir);
  return result.code;
}

// process.exit() can cut off output still queued for a pipe: flush first.
const flushed = (): Promise<void> => new Promise((done) => process.stdout.write('', () => done()));

main().then(
  async (code) => {
    await flushed();
    process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`[lab] ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);
