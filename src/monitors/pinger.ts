/**
 * The batch pinger behind every Ping monitor: one long-running `fping` in loop
 * mode per (period, timeout) pair, over all the addresses monitored with
 * those settings, its output parsed line by line. fping reports each echo as
 * a reply or "timed out", so a loss is explicit; a watchdog turns silence
 * (fping could not send, or is restarting) into failures too.
 *
 * fping reads its targets only at start, so a change of the address set
 * restarts that group's process (debounced, so that a pool of 10,000 servers
 * starts one process, not 10,000).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { formatSeconds } from './deadline.js';

export interface PingSample {
  readonly ok: boolean;
  readonly rttMs: number | undefined;
  readonly reason: string;
}

export interface PingSettings {
  /** Time between echoes to one address. */
  readonly periodMs: number;
  /** How long one echo may take. */
  readonly timeoutMs: number;
}

export interface Pinger {
  /** Starts pinging `ip` (if not already) and calls listener with every sample; returns the unsubscribe. */
  subscribe(ip: string, settings: PingSettings, listener: (sample: PingSample) => void): () => void;
  /** Kills every fping process; resolves once they are gone. */
  stop(): Promise<void>;
}

export interface PingerOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** fping and any prefix, e.g. ['ip', 'netns', 'exec', 'ns1', 'fping'] (default ['fping']). */
  readonly command?: readonly string[];
  /** How long membership changes are gathered before a restart (default 100 ms). */
  readonly settleMs?: number;
  /** Delay before restarting an fping that died (default 1 s). */
  readonly restartDelayMs?: number;
}

export type FpingLine = { readonly ip: string; readonly seq: number; readonly rttMs: number | undefined };

/** Parses one line of `fping -l` output; undefined for anything else. Pure. */
export function parseFpingLine(line: string): FpingLine | undefined {
  const match = /^(\S+)\s*: \[(\d+)\], (?:\d+ bytes, ([\d.]+) ms|(timed out))/.exec(line);
  if (!match) return undefined;
  const rtt = match[3];
  return { ip: match[1]!, seq: Number(match[2]), rttMs: rtt === undefined ? undefined : Number(rtt) };
}

/** fping's -i (ms between any two packets): spread one round over most of the period. */
export function packetIntervalMs(periodMs: number, targets: number): number {
  const spread = (periodMs * 0.8) / Math.max(1, targets);
  return Math.min(10, Math.max(0.01, Number(spread.toFixed(3))));
}

interface Group {
  readonly key: string;
  readonly settings: PingSettings;
  readonly listeners: Map<string, Set<(sample: PingSample) => void>>;
  readonly lastSampleMs: Map<string, number>;
  child: ChildProcess | undefined;
  exited: Promise<void>;
  restartTimer: Timer | undefined;
  watchdog: Timer | undefined;
  failures: number;
}

export function createFpingPinger(options: PingerOptions): Pinger {
  const { clock, logger } = options;
  const command = options.command ?? ['fping'];
  const settleMs = options.settleMs ?? 100;
  const restartDelayMs = options.restartDelayMs ?? 1000;
  const groups = new Map<string, Group>();
  /** Every fping not yet reaped, so that stop() can wait for all of them. */
  const live = new Set<Promise<void>>();
  let stopped = false;

  const emit = (group: Group, ip: string, sample: PingSample): void => {
    group.lastSampleMs.set(ip, clock.now());
    for (const listener of group.listeners.get(ip) ?? []) listener(sample);
  };

  const kill = (group: Group): Promise<void> => {
    const child = group.child;
    group.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    return group.exited;
  };

  /** Silence longer than this counts as a lost echo. */
  const silenceLimitMs = (s: PingSettings): number => 2 * s.periodMs + s.timeoutMs + 1000;

  const armWatchdog = (group: Group): void => {
    group.watchdog?.cancel();
    group.watchdog = clock.setTimeout(() => {
      const now = clock.now();
      const limit = silenceLimitMs(group.settings);
      for (const ip of group.listeners.keys()) {
        const last = group.lastSampleMs.get(ip) ?? now;
        if (now - last > limit) emit(group, ip, { ok: false, rttMs: undefined, reason: `no echo result for ${formatSeconds(now - last)} (fping could not send or is not running)` });
      }
      armWatchdog(group);
    }, group.settings.periodMs);
  };

  const launch = (group: Group): void => {
    group.restartTimer = undefined;
    if (stopped || group.listeners.size === 0) return;
    const ips = [...group.listeners.keys()];
    const { periodMs, timeoutMs } = group.settings;
    const args = [
      ...command.slice(1),
      '-l',
      '-p', String(Math.max(1, Math.round(periodMs))),
      '-t', String(Math.max(1, Math.round(timeoutMs))),
      '-i', String(packetIntervalMs(periodMs, ips.length)),
      '-f', '-',
    ];
    const child = spawn(command[0]!, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
    group.child = child;
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    live.add(exited);
    void exited.then(() => live.delete(exited));
    group.exited = exited;
    const now = clock.now();
    for (const ip of ips) group.lastSampleMs.set(ip, now);
    child.stdin.on('error', () => undefined);
    child.stdin.end(ips.join('\n') + '\n');
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (group.child !== child) return;
      const parsed = parseFpingLine(line);
      if (!parsed || !group.listeners.has(parsed.ip)) return;
      group.failures = 0;
      emit(group, parsed.ip, parsed.rttMs === undefined
        ? { ok: false, rttMs: undefined, reason: `no echo reply within ${formatSeconds(timeoutMs)}` }
        : { ok: true, rttMs: parsed.rttMs, reason: `echo reply in ${parsed.rttMs} ms` });
    });
    createInterface({ input: child.stderr }).on('line', (line) => logger.debug(`fping: ${line}`));
    child.on('error', (error) => logger.error(`could not run ${command[0]}: ${error.message}`));
    child.once('close', (code, signal) => {
      if (group.child !== child || stopped) return;
      group.child = undefined;
      group.failures += 1;
      const delay = Math.min(restartDelayMs * 2 ** (group.failures - 1), 30_000);
      logger.warn(`fping exited (code ${code ?? 'none'}, signal ${signal ?? 'none'}); restarting in ${formatSeconds(delay)}`);
      group.restartTimer ??= clock.setTimeout(() => launch(group), delay);
    });
    armWatchdog(group);
  };

  const scheduleRestart = (group: Group): void => {
    if (group.restartTimer) return;
    group.restartTimer = clock.setTimeout(() => {
      void kill(group).then(() => launch(group));
    }, settleMs);
  };

  return {
    subscribe(ip, settings, listener) {
      const key = `${settings.periodMs}/${settings.timeoutMs}`;
      let group = groups.get(key);
      if (!group) {
        group = { key, settings, listeners: new Map(), lastSampleMs: new Map(), child: undefined, exited: Promise.resolve(), restartTimer: undefined, watchdog: undefined, failures: 0 };
        groups.set(key, group);
      }
      const g = group;
      let set = g.listeners.get(ip);
      if (!set) {
        set = new Set();
        g.listeners.set(ip, set);
        scheduleRestart(g);
      }
      set.add(listener);
      return () => {
        const current = g.listeners.get(ip);
        if (!current?.delete(listener) || current.size > 0) return;
        g.listeners.delete(ip);
        g.lastSampleMs.delete(ip);
        if (g.listeners.size === 0) {
          g.restartTimer?.cancel();
          g.restartTimer = undefined;
          g.watchdog?.cancel();
          g.watchdog = undefined;
          void kill(g);
          groups.delete(g.key);
        } else {
          scheduleRestart(g);
        }
      };
    },
    async stop() {
      stopped = true;
      const waits: Promise<void>[] = [];
      for (const group of groups.values()) {
        group.restartTimer?.cancel();
        group.watchdog?.cancel();
        waits.push(kill(group));
      }
      groups.clear();
      await Promise.all([...waits, ...live]);
    },
  };
}
