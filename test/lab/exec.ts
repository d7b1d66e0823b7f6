// Process helpers for code running inside the lab guest: one-shot commands
// with their output, long-running processes that are always cleaned up, and
// polling with a deadline (the lab never reads state once and hopes).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { constants } from 'node:os';

export type ExecResult = { code: number; stdout: string; stderr: string };

export type ExecOptions = {
  /** Killed (SIGKILL) after this long; the result then has code 137. Default 30 s. */
  timeoutMs?: number;
  input?: string;
  cwd?: string;
  env?: Readonly<Record<string, string>>;
};

/** Runs a program to completion. Never throws for a non-zero exit: look at `code`. */
export function exec(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new Error('exec: empty argv'));
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env ? { ...process.env, ...options.env } : process.env,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`exec ${argv.join(' ')}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128 + signalNumber(signal), stdout, stderr });
    });
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // the program may exit without reading
      child.stdin.end(options.input);
    }
  });
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal === null ? 0 : constants.signals[signal];
}

/** Like exec, but a non-zero exit is an error carrying the command and its stderr. */
export async function execOk(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const result = await exec(argv, options);
  if (result.code !== 0) {
    throw new Error(`command failed (exit ${result.code}): ${argv.join(' ')}\n${result.stderr || result.stdout}`.trimEnd());
  }
  return result;
}

export type WaitOptions = { timeoutMs?: number; intervalMs?: number; what?: string };

/**
 * Polls `probe` until it returns something other than undefined, or throws
 * after the deadline with the last value/error seen, so failures say why.
 */
export async function waitFor<T>(probe: () => Promise<T | undefined>, options: WaitOptions = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  const intervalMs = options.intervalMs ?? 100;
  let last = 'nothing yet';
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
      last = 'condition not met';
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${options.timeoutMs ?? 10_000} ms waiting for ${options.what ?? 'a condition'} (${last})`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export type SpawnOptions = {
  cwd?: string;
  env?: Readonly<Record<string, string>>;
  /** File that receives stdout and stderr (kept for diagnosis). */
  logPath?: string;
};

/** A long-running process; its output is kept in memory and optionally in a log file. */
export class LabProcess {
  readonly name: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #child: ChildProcess;
  #output = '';
  #log: WriteStream | undefined;
  #done = false;
  #listeners = new Set<() => void>();

  constructor(name: string, argv: readonly string[], options: SpawnOptions = {}) {
    const [file, ...args] = argv;
    if (file === undefined) throw new Error('spawn: empty argv');
    this.name = name;
    this.#log = options.logPath === undefined ? undefined : createWriteStream(options.logPath);
    // Own process group, so stop() reaches whatever the program forks.
    this.#child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env ? { ...process.env, ...options.env } : process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const onData = (chunk: Buffer): void => {
      this.#output += chunk.toString('utf8');
      this.#log?.write(chunk);
      for (const listener of this.#listeners) listener();
    };
    this.#child.stdout?.on('data', onData);
    this.#child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      this.#child.once('error', (error) => {
        this.#output += `\n[spawn error] ${error.message}\n`;
        this.#done = true;
        resolve({ code: null, signal: null });
      });
      this.#child.once('close', (code, signal) => {
        this.#done = true;
        this.#log?.end();
        for (const listener of this.#listeners) listener();
        resolve({ code, signal });
      });
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get running(): boolean {
    return !this.#done;
  }

  /** Everything the process printed so far (stdout and stderr interleaved). */
  output(): string {
    return this.#output;
  }

  /** Resolves with the first output line matching `pattern`; rejects if the process exits first or the deadline passes. */
  waitForLine(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const line = this.#output.split('\n').find((l) => pattern.test(l));
        if (line !== undefined) finish(() => resolve(line));
        else if (this.#done) finish(() => reject(new Error(`${this.name} exited before printing ${pattern}:\n${this.#output.slice(-2000)}`)));
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`${this.name}: no line matching ${pattern} within ${timeoutMs} ms:\n${this.#output.slice(-2000)}`))),
        timeoutMs,
      );
      const finish = (settle: () => void): void => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        settle();
      };
      this.#listeners.add(check);
      check();
    });
  }

  signal(signal: NodeJS.Signals): void {
    if (this.#done || this.#child.pid === undefined) return;
    try {
      process.kill(-this.#child.pid, signal);
    } catch {
      // already gone
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 2_000): Promise<void> {
    if (this.#done) return;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    this.signal('SIGKILL'); // leftovers in the group
  }
}
