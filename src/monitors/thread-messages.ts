/** What the daemon and its checks thread (check-worker.ts) say to each other. */
import type { MonitorConfig } from '../config/types.js';
import type { LogLevel } from '../runtime/logger.js';
import type { StallStats } from '../runtime/stall-watch.js';
import type { CheckResult, StartOptions } from './types.js';

export interface CheckThreadConfig {
  /** The daemon's log level: the thread sends nothing below it. */
  readonly logLevel: LogLevel;
  /** `runcommand-max-concurrent` at start (later values come by message). */
  readonly runcommandMaxConcurrent: number;
  /** The ARP watch's round (data-path checks of IPv4 direct routing). */
  readonly arpWatchIntervalMs: number;
  /** How long the thread gathers events before it sends them, as one message. */
  readonly sendEveryMs: number;
  /** How often the thread sends its event loop's figures. */
  readonly loopEveryMs: number;
  /** How late the thread's timers may fire, grouped on a grid of this step (see TimerQueue.setSlack). */
  readonly timerSlackMs: number;
  /** How long the thread sleeps after a short busy turn of its loop (see setTurnPause). */
  readonly turnPauseMs: number;
}

/** A monitor's target as values: the data path's readiness comes by message. */
export interface TargetValues {
  readonly host: string;
  readonly ip: string;
  readonly port: number;
  readonly family: 4 | 6;
  readonly dataPath?: {
    readonly vip: string;
    readonly mark: number;
    readonly method: 'dr' | 'tunnel';
    readonly source: string | undefined;
    /** Whether the probe service was in the kernel when the monitor started. */
    readonly ready: boolean;
  };
}

/** What the thread acts on, one by one, in the order sent (each in a batch). */
export type ThreadAction =
  /**
   * Creates and starts monitor `id` of config `configId`. The config comes
   * with the first monitor of it; the thread keeps it while a monitor of it
   * runs, and the daemon sends it again after that.
   */
  | {
      readonly type: 'start';
      readonly id: number;
      readonly configId: number;
      readonly config?: MonitorConfig;
      readonly target: TargetValues;
      readonly options: StartOptions;
    }
  | { readonly type: 'stop'; readonly id: number }
  /** The data-path monitors whose probe service came or went: [id, ready] pairs. */
  | { readonly type: 'ready'; readonly changes: readonly (readonly [number, boolean])[] }
  | { readonly type: 'limit'; readonly runcommandMaxConcurrent: number }
  /** Pools are being read for the first time on the main thread (a cold start): start checks slower until `on` is false. */
  | { readonly type: 'hold'; readonly on: boolean };

export type ToCheckThread =
  /** Actions in order, up to a few hundred; the thread says `took` once it has acted on them. */
  | { readonly type: 'batch'; readonly messages: readonly ThreadAction[] }
  /** Stops every monitor, the pinger and the ARP watch, says `closed`, and ends the thread. */
  | { readonly type: 'close' };

/** Which logger a record of the thread is for: a monitor by id, or a component the thread shares. */
export type LogSource = number | 'ping' | 'arp' | 'thread';

/** One thing that happened in the thread, in the order it happened. */
export type CheckThreadEvent =
  | { readonly k: 'report'; readonly id: number; readonly up: boolean; readonly reason: string; readonly firstCheck: boolean }
  | { readonly k: 'result'; readonly id: number; readonly result: CheckResult }
  /** The monitor could not be created or started; the reason is the error's message. */
  | { readonly k: 'broken'; readonly id: number; readonly message: string }
  | { readonly k: 'stopped'; readonly id: number }
  | {
      readonly k: 'log';
      readonly source: LogSource;
      readonly level: LogLevel;
      readonly fields: Readonly<Record<string, unknown>> | undefined;
      readonly msg: string;
    };

/** A thread's JS heap (its own V8 heap: the process's RSS holds it beside the main thread's). */
export interface ThreadHeap {
  readonly usedBytes: number;
  /** What V8 holds for it. */
  readonly totalBytes: number;
}

export type FromCheckThread =
  | { readonly type: 'events'; readonly events: readonly CheckThreadEvent[] }
  /** The thread's event loop (stalls over 100 ms and the longest, since it started) and its JS heap now. */
  | { readonly type: 'loop'; readonly stats: StallStats; readonly heap: ThreadHeap }
  /** The thread has acted on the last batch it was sent: the next may come. */
  | { readonly type: 'took' }
  | { readonly type: 'closed' };
