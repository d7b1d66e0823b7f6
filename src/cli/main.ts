#!/usr/bin/env node
/**
 * The `pybal` command: argv -> options -> the daemon or a subcommand.
 * PyBal's own flags (-c, -n, -d) work as they did.
 *
 * Start-up time: each command's module is imported by its handler, and this
 * file imports only what every command needs (yargs, and constants from
 * modules without imports), so `pybal --version`, `status` or `check` never
 * load the daemon, IPVS, BGP, the monitors or pino. `pybal` runs this file
 * bundled with yargs and the commands (dist/cli/pybal.js, made by
 * packaging/bundle-cli.ts), the daemon in chunks that only its handler
 * imports. test/cli/module-graph.test.ts holds that line.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { readVersion } from '../runtime/version.js';
import { DEFAULT_CONFIG_FILE, DEFAULT_LOG_FILE, DEFAULT_POOL_DIR, DEFAULT_SOCKET_PATH } from '../runtime/defaults.js';
import { IMPORT_FORMATS } from '../import/model.js';

export { DEFAULT_LOG_FILE };

/** Exit status for usage errors, as Python's argparse (and so PyBal) uses. */
const USAGE_ERROR = 2;
/** A monitoring plugin's usage error is UNKNOWN (Monitoring Plugins guidelines). */
const PLUGIN_USAGE_ERROR = 3;

/** Parses argv, runs what it asks for, and resolves with the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  let status = 0;
  const parser = yargs([...argv])
    .scriptName('pybal')
    .usage('$0 [command] [options]\n\nLoad-balancer control daemon for Linux LVS directors (PyBal compatible).')
    .option('config', {
      alias: 'c',
      type: 'string',
      default: DEFAULT_CONFIG_FILE,
      describe: 'the pybal.conf to read',
      requiresArg: true,
    })
    .command(
      ['$0', 'run'],
      'run the daemon in the foreground (the default)',
      (y) =>
        y
          .option('dry-run', {
            alias: ['n', 'dryrun'],
            type: 'boolean',
            default: false,
            describe: 'run everything but change nothing in the kernel; log what would be done',
          })
          .option('debug', { alias: 'd', type: 'boolean', default: false, describe: 'log at debug level' })
          .option('log-file', {
            type: 'string',
            default: DEFAULT_LOG_FILE,
            describe: "where to log ('-' for standard error); SIGUSR1 reopens it, SIGHUP reopens it and re-reads the config",
            requiresArg: true,
          })
          .option('log-stderr', {
            type: 'boolean',
            default: false,
            describe: 'also log every line to standard error (the journal, under systemd; the unit sets it)',
          })
          .option('log-format', {
            choices: ['text', 'json'] as const,
            default: 'text' as const,
            describe: 'one readable line per event, or pino JSON',
          })
          .option('control-socket', {
            type: 'string',
            default: DEFAULT_SOCKET_PATH,
            describe: 'the Unix socket that `pybal status` reads',
            requiresArg: true,
          }),
      async (args) => {
        const { runDaemon } = await import('../main.js');
        status = await runDaemon({
          configFile: args.config,
          dryRun: args.dryRun,
          debug: args.debug,
          logFile: args.logFile,
          logFormat: args.logFormat,
          logStderr: args.logStderr,
          controlSocket: args.controlSocket,
        });
      },
    )
    .command(
      'check-config',
      'validate the configuration and exit 0 only when it is valid',
      (y) => y.option('print', { type: 'boolean', default: false, describe: 'also print the effective configuration, defaults filled in' }),
      async (args) => {
        const { runCheckConfig } = await import('./check-config.js');
        status = await runCheckConfig({ file: args.config, print: args.print }, (line) => process.stdout.write(`${line}\n`));
      },
    )
    .command(
      'status',
      "print every service and server of the running daemon: enabled/up/pooled, weight, the last monitor's reason; exit 0 healthy, 1 degraded, 2 unreachable",
      (y) =>
        y
          .option('socket', { type: 'string', default: DEFAULT_SOCKET_PATH, describe: "the daemon's control socket", requiresArg: true })
          .option('url', { type: 'string', describe: 'the instrumentation API instead, e.g. http://127.0.0.1:9090', requiresArg: true }),
      async (args) => {
        const { runStatus } = await import('./status.js');
        status = await runStatus({ socket: args.socket, url: args.url }, process.stdout, process.stderr);
      },
    )
    .command(
      'check',
      'a monitoring plugin (Icinga, Nagios): one line PYBAL OK|WARNING|CRITICAL|UNKNOWN - ... | perfdata; exit 0|1|2|3',
      (y) =>
        y
          .option('socket', { type: 'string', default: DEFAULT_SOCKET_PATH, describe: "the daemon's control socket", requiresArg: true })
          .option('url', { type: 'string', describe: 'the instrumentation API instead, e.g. http://127.0.0.1:9090', requiresArg: true })
          .option('timeout', { alias: 't', type: 'number', default: 10, describe: 'seconds to wait for the daemon (then CRITICAL)', requiresArg: true })
          .check((a) => (Number.isFinite(a.timeout) && a.timeout > 0) || '--timeout: expected a number of seconds above 0'),
      async (args) => {
        const { runCheck } = await import('./check.js');
        status = await runCheck({ socket: args.socket, url: args.url, timeoutMs: args.timeout * 1000 }, (line) => process.stdout.write(`${line}\n`));
      },
    )
    .command(
      'drain',
      "drain this director for maintenance: every VIP stays announced, with GRACEFUL_SHUTDOWN (65535:0) and bgp-drain-med, so the routers move its traffic to the other directors",
      (y) =>
        y
          .option('socket', { type: 'string', default: DEFAULT_SOCKET_PATH, describe: "the daemon's control socket", requiresArg: true })
          .option('wait', {
            type: 'number',
            describe: 'then watch for SECONDS and say what happened (exit 0: no packet reached the VIPs at the end; 3: traffic still arrives)',
            requiresArg: true,
          }),
      async (args) => {
        if (args.wait !== undefined && !(Number.isFinite(args.wait) && args.wait >= 0)) {
          process.stderr.write(`pybal: --wait: expected a number of seconds >= 0, got ${String(args.wait)}\nTry 'pybal --help'.\n`);
          status = USAGE_ERROR;
          return;
        }
        const { runDrainCommand } = await import('./drain.js');
        status = await runDrainCommand(true, { socket: args.socket, waitSec: args.wait }, process.stdout, process.stderr);
      },
    )
    .command(
      'undrain',
      'undo pybal drain: every VIP announced with its configured MED and communities again',
      (y) => y.option('socket', { type: 'string', default: DEFAULT_SOCKET_PATH, describe: "the daemon's control socket", requiresArg: true }),
      async (args) => {
        const { runDrainCommand } = await import('./drain.js');
        status = await runDrainCommand(false, { socket: args.socket }, process.stdout, process.stderr);
      },
    )
    .command(
      'import <file>',
      'convert a keepalived.conf or an ldirectord.cf into pybal.conf and pool files, with a comment for everything not carried over',
      (y) =>
        y
          .positional('file', { type: 'string', demandOption: true, describe: 'the keepalived.conf or ldirectord.cf to read' })
          .option('from', { choices: IMPORT_FORMATS, describe: 'the format of FILE (default: told from its contents)' })
          .option('out', { type: 'string', default: '.', describe: 'the directory to write pybal.conf and pools/ into', requiresArg: true })
          .option('pool-dir', {
            type: 'string',
            default: DEFAULT_POOL_DIR,
            describe: 'where the pool files will live on the director (each service gets config = file://DIR/NAME)',
            requiresArg: true,
          })
          .option('fwmark-ip', {
            type: 'string',
            array: true,
            default: [] as string[],
            describe: 'the VIP of firewall-mark services, [MARK=]ADDRESS (repeatable)',
            requiresArg: true,
          })
          .option('force', { type: 'boolean', default: false, describe: 'overwrite existing files' }),
      async (args) => {
        const { runImport } = await import('./import.js');
        status = await runImport(
          { file: args.file, from: args.from, out: args.out, poolDir: args.poolDir, fwmarkIps: args.fwmarkIp, force: args.force },
          (line) => process.stdout.write(`${line}\n`),
          (line) => process.stderr.write(`${line}\n`),
        );
      },
    )
    .command(
      'ipvs',
      "print the kernel's IPVS table as pybal reads it (over netlink), laid out like ipvsadm -Ln",
      (y) =>
        y
          .option('stats', { type: 'boolean', describe: 'the counters, as ipvsadm -Ln --stats' })
          .option('rate', { type: 'boolean', describe: "the kernel's rate estimates, as ipvsadm -Ln --rate" })
          .option('exact', { type: 'boolean', default: false, describe: 'numbers in full (no K, M, G), as ipvsadm --exact' })
          .conflicts('stats', 'rate'),
      async (args) => {
        const { runIpvsCommand } = await import('./ipvs.js');
        status = await runIpvsCommand(
          { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) },
          { view: args.stats === true ? 'stats' : args.rate === true ? 'rate' : 'table', exact: args.exact },
        );
      },
    )
    .strict()
    .version(readVersion())
    .alias('version', 'V')
    .help()
    .alias('help', 'h')
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((message, error) => {
      // A handler's error is thrown on; yargs' own (YError) and a check()'s message (a string) are usage errors.
      if (error instanceof Error && error.name !== 'YError') throw error;
      message ||= error instanceof Error ? error.message : String(error);
      if (isPluginCommand(argv)) {
        process.stdout.write(`PYBAL UNKNOWN - usage: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
        process.exit(PLUGIN_USAGE_ERROR);
      }
      process.stderr.write(`pybal: ${message}\nTry 'pybal --help'.\n`);
      process.exit(USAGE_ERROR);
    });
  skipHelpCache(parser);
  await parser.parseAsync();
  return status;
}

/**
 * Stops yargs from rendering a command's whole help text before running its
 * handler. yargs does that (its usage instance's `cacheHelpMessage`) in case
 * the handler later shows the help, once the parser has moved on; pybal's
 * handlers never do, and its fail() above never shows help. The rendering
 * (cliui, every line's width through Intl.Segmenter) cost every command but
 * the daemon 15 to 25 ms of its start-up (issue 14). yargs has no public
 * switch for it: this replaces the method on the parser's usage instance,
 * which yargs keeps across commands (internal API, yargs 18.2.0); when that
 * is not there, nothing changes but the time. Returns whether it was done
 * (test/cli/main.test.ts holds that it is, with the yargs installed).
 */
export function skipHelpCache(parser: object): boolean {
  type Internal = { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: unknown } | undefined } | undefined };
  const usage = (parser as Internal).getInternalMethods?.()?.getUsageInstance?.();
  if (typeof usage?.cacheHelpMessage !== 'function') return false;
  usage.cacheHelpMessage = (): void => undefined;
  return true;
}

/** `pybal check ...`: its usage errors follow the plugin guidelines. */
function isPluginCommand(argv: readonly string[]): boolean {
  return argv.find((arg) => !arg.startsWith('-')) === 'check';
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

/**
 * Makes a closed standard output (`pybal check-config --print | head -1`) end
 * the output, not the process: without a listener, the EPIPE that the next
 * write gets is an unhandled 'error' event, and Node dies with a stack trace.
 * The command still runs to its end and exits with the status it would have
 * had, so `check-config | head` under `set -o pipefail` still says whether
 * the file is valid (a tool killed by SIGPIPE would exit 141 whatever the
 * file held). Any other write error (a full disk behind `>`) is reported
 * once on standard error and makes the exit status non-zero.
 */
export function guardStandardOutput(stdout: NodeJS.WriteStream, stderr: NodeJS.WriteStream): void {
  let reported = false;
  stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED' || reported) return;
    reported = true;
    stderr.write(`pybal: cannot write to standard output: ${error.message}\n`);
    if (!process.exitCode) process.exitCode = 1;
  });
  // Standard error going away (`2>&1 | head`) leaves nowhere to report anything.
  stderr.on('error', () => undefined);
}

if (isEntryPoint()) {
  guardStandardOutput(process.stdout, process.stderr);
  main(hideBin(process.argv)).then(
    (status) => {
      // A failed write to standard output (see guardStandardOutput) is not hidden by a 0.
      if (status !== 0 || !process.exitCode) process.exitCode = status;
    },
    (error: unknown) => {
      process.stderr.write(`pybal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
