/**
 * The daemon's side of the BGP thread (worker.ts): starts it with the
 * speaker's options, hands it every announcement and the End-of-RIB signal in
 * the order they were made, tells it four times a second that the main thread
 * is alive (with the families the kernel forwards for, for graceful restart),
 * writes its log records to pybal's log, and keeps the sessions' latest status
 * for the API and the metrics.
 *
 * A thread that dies unexpectedly is logged and started again after
 * RESTART_AFTER_MS with the same announcements: the routers see a session
 * that went down and comes back, as after a network fault.
 */
import { Worker } from 'node:worker_threads';
import type { AddressFamily } from '../config/types.js';
import type { Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { BgpSpeaker, PeerStatus, Route, SpeakerOptions } from './speaker.js';
import type { BgpThreadConfig, FromBgpThread, SpeakerValues, ToBgpThread } from './thread-messages.js';

/** How often the main thread says it is alive. */
const ALIVE_EVERY_MS = 250;
/** A main thread silent this long is stuck, not busy: the sessions stop sending KEEPALIVEs (the same as BFD's). */
export const DEFAULT_SILENCE_AFTER_MS = 5_000;
/** How often the thread sends the sessions' counters (state changes come at once). */
const STATUS_EVERY_MS = 1_000;
/** How long after an unexpected exit the thread is started again. */
const RESTART_AFTER_MS = 5_000;
/** How long stop() and shutdown() wait beyond their own deadline before the thread is terminated. */
const EXIT_GRACE_MS = 2_000;

/** What the daemon uses of a speaker; BgpThread and BgpSpeaker both are one. */
export type Speaker = Pick<BgpSpeaker, 'setAnnouncements' | 'markReady' | 'abandon' | 'listeningPort' | 'shutdown' | 'stop' | 'status' | 'announcements'>;

export interface BgpThreadOptions {
  /** As for BgpSpeaker; the clock and the logger are the main thread's (the thread has its own clock). */
  readonly speaker: SpeakerOptions;
  readonly silenceAfterMs?: number;
  readonly statusEveryMs?: number;
}

export class BgpThread implements Speaker {
  private worker: Worker;
  private readonly config: BgpThreadConfig;
  private readonly log: Logger;
  /** Keys the main logger binds already (component): left out of the thread's records. */
  private readonly bound: ReadonlySet<string>;
  private peers: readonly PeerStatus[] = [];
  private peersAtMs = 0;
  private port: number | undefined;
  private routes: readonly Route[] = [];
  private ready = false;
  /** Posted on the next turn, in this order: the latest routes, then End-of-RIB (see flush). */
  private pending: { routes: boolean; ready: boolean } = { routes: false, ready: false };
  private flushTimer: Timer | undefined;
  private aliveTimer: Timer | undefined;
  private restartTimer: Timer | undefined;
  private closing = false;
  /** The current thread said it started and has not exited since. */
  private running = false;
  private exited!: Promise<void>;

  private constructor(
    private readonly options: BgpThreadOptions,
    config: BgpThreadConfig,
  ) {
    this.config = config;
    this.log = options.speaker.logger;
    this.bound = new Set(Object.keys(this.log.bindings()));
    this.worker = this.spawn();
  }

  /** Starts the thread and its sessions; rejects when the thread cannot start (its error says why). */
  static start(options: BgpThreadOptions): Promise<BgpThread> {
    // Everything but what lives on this thread (clock, logger, callbacks) goes as values.
    const { clock: _clock, logger, onPeerChange: _onPeerChange, gracefulRestart, ...rest } = options.speaker;
    const values: SpeakerValues = { ...rest, ...(gracefulRestart === undefined ? {} : { gracefulRestart: { restartTimeSec: gracefulRestart.restartTimeSec } }) };
    const config: BgpThreadConfig = {
      speaker: values,
      forwarding: gracefulRestart?.forwarding() ?? [],
      logLevel: logger.level,
      silenceAfterMs: options.silenceAfterMs ?? DEFAULT_SILENCE_AFTER_MS,
      statusEveryMs: options.statusEveryMs ?? STATUS_EVERY_MS,
    };
    const thread = new BgpThread(options, config);
    return thread.started().then(() => {
      thread.sayAlive();
      return thread;
    });
  }

  setAnnouncements(routes: readonly Route[]): void {
    this.routes = routes;
    this.pending.routes = true;
    this.scheduleFlush();
  }

  markReady(): void {
    if (this.ready) return;
    this.ready = true;
    this.pending.ready = true;
    this.scheduleFlush();
  }

  announcements(): Route[] {
    return [...this.routes];
  }

  listeningPort(): number | undefined {
    return this.port;
  }

  /** The sessions as the thread last said, their uptime brought up to now. */
  status(): PeerStatus[] {
    const since = this.options.speaker.clock.now() - this.peersAtMs;
    return this.peers.map((p) => (p.uptimeMs === undefined ? p : { ...p, uptimeMs: p.uptimeMs + since }));
  }

  /** Withdraws everything, says Cease with `reason`, and ends the thread (see BgpSpeaker.shutdown). */
  async shutdown(reason: string, timeoutMs = 3_000): Promise<void> {
    await this.close({ type: 'shutdown', reason, timeoutMs }, timeoutMs + EXIT_GRACE_MS);
  }

  /** Graceful restart: the sessions close without a word (see BgpSpeaker.abandon). */
  abandon(): void {
    void this.close({ type: 'abandon' }, EXIT_GRACE_MS);
  }

  stop(): void {
    void this.close({ type: 'stop' }, EXIT_GRACE_MS);
  }

  // ------------------------------------------------------------ internals

  private spawn(): Worker {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: this.config, name: 'pybal-bgp' });
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (message: FromBgpThread) => this.onMessage(message));
    worker.on('error', (error) => this.log.error(`the BGP thread failed: ${error.message}`));
    worker.once('exit', (code) => this.onExit(worker, code));
    return worker;
  }

  private started(): Promise<void> {
    const worker = this.worker;
    return new Promise((resolve, reject) => {
      const onMessage = (message: FromBgpThread): void => {
        if (message.type === 'started') done(undefined);
        else if (message.type === 'error') done(new Error(message.message));
      };
      const onExit = (code: number): void => done(new Error(`the BGP thread exited (${code}) before it started`));
      const onError = (error: Error): void => done(error);
      const done = (error: Error | undefined): void => {
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        worker.off('error', onError);
        if (error === undefined) resolve();
        else reject(error);
      };
      worker.on('message', onMessage);
      worker.once('exit', onExit);
      worker.once('error', onError);
    });
  }

  private post(message: ToBgpThread): void {
    this.worker.postMessage(message);
  }

  private scheduleFlush(): void {
    if (this.flushTimer !== undefined || this.closing) return;
    this.flushTimer = this.options.speaker.clock.setTimeout(() => this.flush(), 0);
  }

  /** The routes first, End-of-RIB after them: never the other way round (see announcingThenReady). */
  private flush(): void {
    this.flushTimer?.cancel();
    this.flushTimer = undefined;
    if (this.pending.routes) this.post({ type: 'announce', routes: this.routes });
    if (this.pending.ready) this.post({ type: 'ready' });
    this.pending = { routes: false, ready: false };
  }

  private forwarding(): readonly AddressFamily[] {
    return this.options.speaker.gracefulRestart?.forwarding() ?? [];
  }

  private sayAlive(): void {
    if (this.closing) return;
    this.post({ type: 'alive', forwarding: this.forwarding() });
    this.aliveTimer = this.options.speaker.clock.setTimeout(() => this.sayAlive(), ALIVE_EVERY_MS);
  }

  private async close(message: ToBgpThread, waitMs: number): Promise<void> {
    if (this.closing) return this.exited;
    this.flush();
    this.closing = true;
    this.aliveTimer?.cancel();
    this.restartTimer?.cancel();
    this.post(message);
    const worker = this.worker;
    const forced = setTimeout(() => void worker.terminate(), waitMs);
    await this.exited;
    clearTimeout(forced);
  }

  private onMessage(message: FromBgpThread): void {
    switch (message.type) {
      case 'started':
        this.port = message.port;
        this.running = true;
        return;
      case 'log':
        this.relay(message.line);
        return;
      case 'peer':
        this.options.speaker.onPeerChange?.(message.change);
        return;
      case 'status':
        this.peers = message.peers;
        this.peersAtMs = this.options.speaker.clock.now();
        return;
      case 'silenced':
        this.log.error(
          `The main thread did not answer the BGP thread for ${(message.forMs / 1000).toFixed(1)} s: the BGP sessions sent no KEEPALIVE meanwhile, ` +
            'so routers with a shorter hold time will have taken this director out; they are sent again',
        );
        return;
      case 'error':
      case 'closed':
        return;
    }
  }

  /** One of the thread's records, written by the main thread's logger at its level. */
  private relay(line: string): void {
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.log.warn(`the BGP thread logged a line that is not JSON: ${line.trim()}`);
      return;
    }
    const { level, msg, ...fields } = record;
    for (const key of this.bound) delete fields[key];
    const text = typeof msg === 'string' ? msg : '';
    // pino's levels: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal.
    const n = typeof level === 'number' ? level : 30;
    const method = n >= 50 ? 'error' : n >= 40 ? 'warn' : n >= 30 ? 'info' : 'debug';
    this.log[method](fields, text);
  }

  private onExit(worker: Worker, code: number): void {
    // A thread that never started is the caller's to report (started()).
    if (worker !== this.worker || this.closing || !this.running) return;
    this.running = false;
    this.peers = this.peers.map((p) => ({ ...p, state: 'Idle' as PeerStatus['state'], uptimeMs: undefined, establishedAtWallMs: undefined, lastError: `the BGP thread exited (${code})` }));
    this.aliveTimer?.cancel();
    this.log.error(`The BGP thread exited (${code}): the sessions are down; starting it again in ${RESTART_AFTER_MS / 1000} s`);
    this.restartTimer = this.options.speaker.clock.setTimeout(() => this.restart(), RESTART_AFTER_MS);
  }

  private restart(): void {
    if (this.closing) return;
    this.worker = this.spawn();
    this.started().then(
      () => {
        this.log.info('The BGP thread started again');
        this.sayAlive();
        this.pending = { routes: true, ready: this.ready };
        this.flush();
      },
      (error: unknown) => {
        this.log.error(`The BGP thread could not start again: ${error instanceof Error ? error.message : String(error)}; trying again in ${RESTART_AFTER_MS / 1000} s`);
        this.restartTimer = this.options.speaker.clock.setTimeout(() => this.restart(), RESTART_AFTER_MS);
      },
    );
  }
}
