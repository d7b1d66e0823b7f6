/**
 * Benchmarks that need a kernel with IPVS: on the host, boot a lab guest and
 * run the bench script itself inside it, then print what it printed.
 */
import { inLabGuest } from '../../test/lab/lab.js';
import { removeScratch, runInGuest, shellQuote, tailFile } from '../../test/lab/uml.js';
import { fileURLToPath } from 'node:url';

export interface GuestBenchOptions {
  /** For messages: "ipvs bench". */
  readonly name: string;
  /** The bench script's import.meta.url. */
  readonly scriptUrl: string;
  /** Runs the measurement (inside the guest). */
  readonly measure: () => Promise<void>;
  readonly timeoutMs?: number;
  /** Raise the open-file limit (soft and hard) in the guest first: many sockets. */
  readonly openFiles?: number;
  readonly memMb?: number;
}

/** Runs the bench and exits the process with its status. */
export function runGuestBench(options: GuestBenchOptions): void {
  run(options).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`${options.name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}

async function run(options: GuestBenchOptions): Promise<number> {
  if (inLabGuest()) {
    await options.measure();
    return 0;
  }
  const argv = [process.execPath, fileURLToPath(options.scriptUrl)];
  const result = await runInGuest({
    argv: options.openFiles === undefined ? argv : ['/bin/sh', '-c', `ulimit -n ${options.openFiles} && exec ${argv.map(shellQuote).join(' ')}`],
    timeoutMs: options.timeoutMs ?? 900_000,
    // The guest starts with a clean environment: pass the bench's own knobs on.
    env: Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[0].startsWith('BENCH_') && e[1] !== undefined)),
    ...(options.memMb === undefined ? {} : { memMb: options.memMb }),
    // Printed as it comes: these runs take minutes.
    echo: process.stdout,
  });
  if (result.code !== 0) {
    process.stderr.write(`${options.name} failed in the guest (status ${result.code}${result.timedOut ? ', timed out' : ''}); console tail:\n${tailFile(result.consolePath)}\n`);
    return 1;
  }
  removeScratch(result.scratchDir);
  if (result.output && !result.output.endsWith('\n')) process.stdout.write('\n');
  return 0;
}
