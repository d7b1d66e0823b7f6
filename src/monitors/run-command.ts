/**
 * RunCommand: runs `command` with `arguments` (server.host / server.ip
 * substituted), never through a shell, with an empty environment, in its own
 * process group. Exit 0 is up. On the deadline the whole group is killed, and
 * after every exit the group is killed again so that no child left behind
 * survives (PyBal does the same).
 */
import { spawn } from 'node:child_process';
import type { CommandArgument, RunCommandConfig } from '../config/types.js';
import type { LineLogger } from '../runtime/logger.js';
import { createPeriodicMonitor } from './periodic.js';
import type { CheckSignal } from './deadline.js';
import type { CheckOutcome, Monitor, MonitorDeps, MonitorTarget } from './types.js';

/** Output kept per stream for the debug log. */
const OUTPUT_CAP_BYTES = 16 * 1024;

export function substituteArguments(args: readonly CommandArgument[], target: MonitorTarget): string[] {
  return args.map((arg) => ('literal' in arg ? arg.literal : arg.server === 'host' ? target.host : target.ip));
}

/** PyBal's escaping of command output in the log: one line, `\n \r \t` spelled out. */
export function escapeOutput(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t');
}

/** Sends SIGKILL to a process group; true if any process was there to receive it. */
function killGroup(pgid: number): boolean {
  try {
    process.kill(-pgid, 'SIGKILL');
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return false;
    throw error;
  }
}

export interface CommandResult extends CheckOutcome {
  readonly stdout: string;
  readonly stderr: string;
  /** Processes of the group were still alive after the command exited and were killed. */
  readonly leftovers: boolean;
}

/**
 * Runs one command to completion or until the signal aborts, then kills its
 * process group. Never rejects.
 */
export function runCommand(command: string, args: readonly string[], signal: CheckSignal, logger: LineLogger): Promise<CommandResult> {
  return new Promise((resolve) => {
    const chunks = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    const sizes = { stdout: 0, stderr: 0 };
    let child;
    try {
      child = spawn(command, args, { detached: true, env: {}, shell: false, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      resolve({ ok: false, reason: `could not run ${command}: ${(error as Error).message}`, exitCode: null, stdout: '', stderr: '', leftovers: false });
      return;
    }
    const collect = (name: 'stdout' | 'stderr') => (data: Buffer) => {
      if (sizes[name] >= OUTPUT_CAP_BYTES) return;
      const part = data.subarray(0, OUTPUT_CAP_BYTES - sizes[name]);
      chunks[name].push(part);
      sizes[name] += part.length;
    };
    child.stdout.on('data', collect('stdout'));
    child.stderr.on('data', collect('stderr'));
    let spawnError: Error | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let timedOut = false;
    let leftovers = false;
    const pid = child.pid;

    const onAbort = (): void => {
      if (exit || pid === undefined) return;
      timedOut = true;
      try {
        killGroup(pid);
      } catch (error) {
        logger.warn(`Could not kill process group ${pid} of ${command}: ${(error as Error).message}`);
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();

    child.on('error', (error) => {
      spawnError = error;
    });
    child.on('exit', (code, sig) => {
      exit = { code, signal: sig };
      // Children left behind keep the group alive (and may hold our pipes open).
      if (pid !== undefined && !timedOut) {
        try {
          leftovers = killGroup(pid);
          if (leftovers) logger.warn(`Command ${command} ${args.join(' ')} left child processes behind, which have been killed!`);
        } catch (error) {
          leftovers = true;
          logger.warn(`Command ${command} ${args.join(' ')} left child processes behind, and not all could be killed! (${(error as Error).message})`);
        }
      }
    });
    child.on('close', () => {
      signal.removeEventListener('abort', onAbort);
      const stdout = Buffer.concat(chunks.stdout).toString('utf8');
      const stderr = Buffer.concat(chunks.stderr).toString('utf8');
      const common = { stdout, stderr, leftovers };
      if (spawnError) {
        resolve({ ok: false, reason: `could not run ${command}: ${spawnError.message}`, exitCode: null, ...common });
      } else if (timedOut) {
        const why = signal.reason instanceof Error ? signal.reason.message : 'aborted';
        resolve({ ok: false, reason: `${command}: ${why}; process group killed`, exitCode: null, ...common });
      } else if (exit?.code === 0) {
        resolve({ ok: true, reason: `${command} exited with code 0`, exitCode: 0, ...common });
      } else if (exit?.code !== null && exit?.code !== undefined) {
        resolve({ ok: false, reason: `${command}: process ended with exit code ${exit.code}`, exitCode: exit.code, ...common });
      } else {
        resolve({ ok: false, reason: `${command}: process was killed by signal ${exit?.signal ?? 'unknown'}`, exitCode: null, ...common });
      }
    });
  });
}

export function createRunCommandMonitor(config: RunCommandConfig, target: MonitorTarget, deps: MonitorDeps): Monitor {
  const args = substituteArguments(config.arguments, target);
  const { logger, runLimiter } = deps;
  return createPeriodicMonitor(
    config.kind,
    config,
    {
      gate: runLimiter ? (signal) => runLimiter.acquire(signal) : undefined,
      timeoutReason: (message) => `${config.command}: ${message}; process group killed`,
      async run(signal) {
        const result = await runCommand(config.command, args, signal, logger);
        if (config.logOutput) {
          if (result.stdout) logger.debug(`Cmd stdout: ${escapeOutput(result.stdout)}`);
          if (result.stderr) logger.debug(`Cmd stderr: ${escapeOutput(result.stderr)}`);
        }
        return { ok: result.ok, reason: result.reason, exitCode: result.exitCode };
      },
    },
    deps,
  );
}
