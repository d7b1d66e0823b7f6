/**
 * A canary for the machine's own hiccups: a separate process that does
 * nothing but a 20 ms timer, and says each time the timer fired more than
 * `reportOverMs` late. The daemon's stall watch counts its event loop held
 * over 100 ms; in a one-CPU lab guest some of that may be the guest's (its
 * kernel walking a large IPVS table, UML itself), which a process with no
 * work of its own sees too. A stall pybal counts that the canary did not
 * see is pybal's own.
 *
 * The canary runs from before the window to its end; `summary` counts the
 * lateness whose fire fell in the window (times are this process's epoch ms:
 * the canary prints Date.now(), which both share).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** The canary's program: no allocation per tick beyond a number, a line only when late. */
const PROGRAM = `
const { performance } = require('node:perf_hooks');
const period = 20, over = Number(process.argv[1]);
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  const late = now - last - period;
  last = now;
  if (late > over) process.stdout.write(Date.now() + ' ' + late.toFixed(1) + '\\n');
}, period);
process.stdin.on('end', () => process.exit(0)).resume();
`;

export interface CanarySummary {
  /** Times its timer fired over 100 ms late in the window. */
  readonly over100: number;
  /** The worst lateness in the window (ms; 0 when none was reported). */
  readonly worstMs: number;
}

export interface LoopCanary {
  summary(fromEpochMs: number, toEpochMs: number): CanarySummary;
  stop(): void;
}

export function startLoopCanary(reportOverMs = 20): LoopCanary {
  const child = spawn(process.execPath, ['-e', PROGRAM, String(reportOverMs)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const late: { atMs: number; lateMs: number }[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const [at, ms] = line.split(' ').map(Number);
    if (Number.isFinite(at) && Number.isFinite(ms)) late.push({ atMs: at!, lateMs: ms! });
  });
  child.on('error', () => undefined);
  return {
    summary(fromEpochMs, toEpochMs) {
      const inWindow = late.filter((l) => l.atMs >= fromEpochMs && l.atMs <= toEpochMs);
      return { over100: inWindow.filter((l) => l.lateMs > 100).length, worstMs: inWindow.reduce((m, l) => Math.max(m, l.lateMs), 0) };
    },
    stop() {
      // Its stdin closing ends it; a kill if that did not.
      child.stdin.end();
      setTimeout(() => child.kill('SIGKILL'), 2000).unref();
    },
  };
}
