/** Another process's resource use, read from /proc (no process spawned, so the figures are not skewed). */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';

/** USER_HZ: clock ticks per second in /proc/<pid>/stat (100 on Linux). */
const TICK_MS = 10;

/** CPU ms (user + system) of a process, from /proc/<pid>/stat. */
export function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  // Fields after "(comm) ": state is field 3, so utime (14) and stime (15) are at 11 and 12.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** Page faults (minor + major) of a process so far, from /proc/<pid>/stat (fields 10 and 12). */
export function processFaults(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[7]) + Number(fields[9]);
}

/**
 * A process's resident memory, bytes, from one read of /proc/<pid>/status:
 * the whole (VmRSS), and its anonymous (heaps, malloc, stacks) and
 * file-backed (the executable's and libraries' pages it touched) parts;
 * NaNs when it is gone.
 */
export function processRss(pid: number | undefined): { rss: number; anon: number; file: number } {
  if (pid === undefined) return { rss: NaN, anon: NaN, file: NaN };
  try {
    const lines = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n');
    const kb = (key: string): number => {
      const line = lines.find((l) => l.startsWith(key));
      return line === undefined ? NaN : Number(line.replace(/\D+/g, '')) * 1024;
    };
    return { rss: kb('VmRSS:'), anon: kb('RssAnon:'), file: kb('RssFile:') };
  } catch {
    return { rss: NaN, anon: NaN, file: NaN };
  }
}

/** Resident set size of a process in bytes (VmRSS), or NaN when it is gone. */
export function processRssBytes(pid: number | undefined): number {
  return processRss(pid).rss;
}

/** The machine's CPU time so far, busy and in all (ticks), from the first line of /proc/stat. */
export function guestCpuTicks(): { busy: number; total: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  // idle and iowait are fields 4 and 5
  return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
}

/**
 * What a first touch of a page costs here, in microseconds: `mb` MiB taken
 * fresh from the kernel and one byte written per 4 KiB page, timed (each
 * write a minor page fault). In the UML guest a fault is a round trip through
 * the guest's kernel and the host (about 190 us in the runs of 2026-12-06,
 * 2 us on the host), so a process's faults are a large part of its CPU there:
 * the benchmarks print this beside the daemon's faults to say how large.
 */
export function pageFaultCostUs(mb = 64): number {
  const page = 4096;
  const bytes = Buffer.allocUnsafeSlow(mb * 2 ** 20);
  const t0 = process.hrtime.bigint();
  for (let offset = 0; offset < bytes.length; offset += page) bytes[offset] = 1;
  const ns = Number(process.hrtime.bigint() - t0);
  return ns / 1000 / (bytes.length / page);
}

/**
 * How fast the machine is right now, by two fixed pieces of work timed in
 * this process: a page's first touch (pageFaultCostUs, 16 MiB) and a system
 * call (fstat, 2,000 times). The UML guest's speed varies from boot to boot
 * and within a boot: in one boot, cold starts of 1,000 services took 6.1 to
 * 7.4 s while a system call cost 49 to 128 us and 3.4 to 4.4 s while it cost
 * 16. Printed beside a trial, these say whether the machine was slower then
 * or the daemon did more.
 */
export function machineSpeed(): { faultUs: number; syscallUs: number } {
  const faultUs = pageFaultCostUs(16);
  const calls = 2_000;
  const fd = openSync('/dev/null', 'r');
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) fstatSync(fd);
  const syscallUs = Number(process.hrtime.bigint() - t0) / 1000 / calls;
  closeSync(fd);
  return { faultUs, syscallUs };
}
