/**
 * The batch pinger behind every Ping monitor: one long-running `fping` in loop
 * mode per (period, timeout) pair, over all the addresses monitored with
 * those settings, its output parsed line by line. fping reports each echo as
 * a reply or "timed out", so a loss is explicit; a watchdog turns silence
 * (fping could not send, or is restarting) into failures too.
 *
 * fping reads its targets only at start, so a change of the address set
 * restarts that group's processes (debounced, so that a pool of 10,000
 * servers starts a few processes, not 10,000). A group larger than one fping
 * can serve is split over several processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Clock, Timer } from '../runtime/clock.js';
import type { LineLogger } from '../runtime/logger.js';
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
  readonly logger: LineLogger;
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

/**
 * fping keeps at most 65,535 echoes in flight per process over a 10 s window
 * (its 16-bit sequence map), about 6,500 echoes a second; one process takes
 * at most this many echoes a second (a margin under that ceiling, since
 * fping exits when it runs out of sequence numbers), and larger groups are
 * split.
 */
export const MAX_ECHOES_PER_SECOND_PER_PROCESS = 6000;

/** How many addresses one fping process takes at this period. */
export function targetsPerProcess(periodMs: number): number {
  return Math.max(1, Math.floor((MAX_ECHOES_PER_SECOND_PER_PROCESS * periodMs) / 1000));
}

/** Splits addresses into the fewest, evenly sized shards that respect targetsPerProcess. */
export function shardTargets(ips: readonly string[], periodMs: number): string[][] {
  const shards = Math.max(1, Math.ceil(ips.length / targetsPerProcess(periodMs)));
  const size = Math.ceil(ips.length / shards);
  const out: string[][] = [];
  for (let i = 0; i < ips.length; i += size) out.push(ips.slice(i, i + size));
  return out;
}

/** fping's -i (ms between any two packets): one round over half the period. */
export function packetIntervalMs(periodMs: number, targets: number): number {
  const spread = (periodMs * 0.5) / Math.max(1, targets);
  return Math.min(10, Math.max(0.01, Number(spread.toFixed(3))));
}

interface Group {
  readonly key: string;
  readonly settings: PingSettings;
  readonly listeners: Map<string, Set<(sample: PingSample) => void>>;
  readonly lastSampleMs: Map<string, number>;
  /** The fping processes of the current generation, one per shard. */
  children: ChildProcess[];
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
  const live = new Map<ChildProcess, Promise<void>>();
  let stopped = false;

  const emit = (group: Group, ip: string, sample: PingSample): void => {
    group.lastSampleMs.set(ip, clock.now());
    for (const listener of group.listeners.get(ip) ?? []) listener(sample);
  };

  const kill = (group: Group): Promise<void> => {
    const children = group.children;
    group.children = [];
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    return Promise.all(children.map((c) => live.get(c))).then(() => undefined);
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

  const spawnShard = (group: Group, ips: readonly string[]): ChildProcess => {
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
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    live.set(child, exited);
    void exited.then(() => live.delete(child));
    child.stdin.on('error', () => undefined);
    child.stdin.end(ips.join('\n') + '\n');
    const replyReason = (rttMs: number): string => `echo reply in ${rttMs} ms`;
    const lostReason = `no echo reply within ${formatSeconds(timeoutMs)}`;
    // Split lines by hand: at 10,000 echoes a second, readline's overhead shows.
    let partial = '';
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk: string) => {
      if (!group.children.includes(child)) return;
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const parsed = parseFpingLine(line);
        if (!parsed || !group.listeners.has(parsed.ip)) continue;
        group.failures = 0;
        emit(group, parsed.ip, parsed.rttMs === undefined
          ? { ok: false, rttMs: undefined, reason: lostReason }
          : { ok: true, rttMs: parsed.rttMs, reason: replyReason(parsed.rttMs) });
      }
    });
    // node:readline once fping runs, not with the checks thread.
    process.getBuiltinModule('node:readline').createInterface({ input: child.stderr }).on('line', (line) => logger.debug(`fping: ${line}`));
    child.on('error', (error) => logger.error(`could not run ${command[0]}: ${error.message}`));
    child.once('close', (code, signal) => {
      if (!group.children.includes(child) || stopped) return;
      // One shard died: restart the group's generation after a growing delay.
      void kill(group);
      group.failures += 1;
      const delay = Math.min(restartDelayMs * 2 ** (group.failures - 1), 30_000);
      logger.warn(`fping exited (code ${code ?? 'none'}, signal ${signal ?? 'none'}); restarting in ${formatSeconds(delay)}`);
      group.restartTimer ??= clock.setTimeout(() => launch(group), delay);
    });
    return child;
  };

  const launch = (group: Group): void => {
    group.restartTimer = undefined;
    if (stopped || group.listeners.size === 0) return;
    const ips = [...group.listeners.keys()];
    const now = clock.now();
    for (const ip of ips) group.lastSampleMs.set(ip, now);
    group.children = shardTargets(ips, group.settings.periodMs).map((shard) => spawnShard(group, shard));
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
        group = { key, settings, listeners: new Map(), lastSampleMs: new Map(), children: [], restartTimer: undefined, watchdog: undefined, failures: 0 };
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
      await Promise.all([...waits, ...live.values()]);
    },
  };
}
