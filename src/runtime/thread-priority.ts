/**
 * The checks thread's share of the CPU against the daemon's other threads.
 *
 * An operator may run the daemon at a negative nice value (`Nice=-5` in a
 * drop-in for pybal.service), so that on a director whose CPU is taken its
 * main thread (IPVS, pool files, the API) and its BGP thread get the CPU
 * before other work. On Linux a nice value belongs to a thread, and a new
 * thread, like a process it starts, takes its creator's. The checks thread
 * puts itself back at nice 0, level with the director's other processes: the
 * checks do not share the boost, and the commands they run (RunCommand,
 * fping, arping) run at normal priority, as they would under PyBal. Raising
 * one's own nice value needs no privilege (the unit grants no CAP_SYS_NICE).
 *
 * Started at nice 0 or above (the unit's default), every thread keeps what
 * it was given.
 */
import * as os from 'node:os';

/** The nice value the checks thread runs at, at least. */
export const CHECKS_NICE = 0;

/** What this needs of node:os (the calling thread's nice value: pid 0). */
export interface ThreadPriorityOs {
  getPriority(pid: number): number;
  setPriority(pid: number, priority: number): void;
}

/**
 * Moves the calling thread to nice CHECKS_NICE when it runs below it (at a
 * higher priority); says what it changed, or undefined when nothing.
 * Throws what setPriority throws.
 */
export function leaveControlPlanePriority(system: ThreadPriorityOs = os): { readonly from: number; readonly to: number } | undefined {
  const from = system.getPriority(0);
  if (from >= CHECKS_NICE) return undefined;
  system.setPriority(0, CHECKS_NICE);
  return { from, to: system.getPriority(0) };
}
