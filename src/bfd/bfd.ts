/**
 * The daemon's side of BFD: starts the BFD thread (worker.ts), keeps it told
 * that the main thread is alive, logs what it reports, and keeps each peer's
 * latest state for the status API.
 */
import { Worker } from 'node:worker_threads';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { BfdPeerStatus } from './engine.js';
import { diagnosticName, type BfdState } from './packet.js';
import type { BfdThreadConfig, FromBfdThread, ToBfdThread } from './thread-messages.js';

/** How often the main thread says it is alive. */
const ALIVE_EVERY_MS = 250;
/** A main thread silent this long is stuck, not busy: BFD stops sending (the routers then take the director out). */
export const DEFAULT_SILENCE_AFTER_MS = 5_000;

export interface BfdPeerSummary {
  readonly peer: string;
  readonly state: BfdState;
  /** Why it last went down, as RFC 5880 names it ('No Diagnostic' when it never did). */
  readonly diagnostic: string;
  /** Wall-clock ms of the last change. */
  readonly sinceWallMs: number;
}

export interface BfdStartOptions extends Omit<BfdThreadConfig, 'silenceAfterMs'> {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly silenceAfterMs?: number;
}

export class BfdThread {
  private readonly peers = new Map<string, BfdPeerSummary>();
  private aliveTimer: Timer | undefined;
  private stopped = false;
  private readonly exited: Promise<void>;
  private nextStatusId = 1;
  private readonly statusWaiters = new Map<number, (peers: BfdPeerStatus[]) => void>();

  private constructor(
    private readonly worker: Worker,
    private readonly options: BfdStartOptions,
  ) {
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    for (const p of options.peers) this.peers.set(p.address, { peer: p.address, state: 'Down', diagnostic: diagnosticName(0), sinceWallMs: options.clock.wallNow() });
  }

  /** Starts the thread and its sessions; rejects when its sockets cannot be bound. */
  static start(options: BfdStartOptions): Promise<BfdThread> {
    const config: BfdThreadConfig = {
      peers: options.peers,
      intervalMs: options.intervalMs,
      detectMult: options.detectMult,
      silenceAfterMs: options.silenceAfterMs ?? DEFAULT_SILENCE_AFTER_MS,
      controlPort: options.controlPort,
      remotePort: options.remotePort,
    };
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: config, name: 'pybal-bfd' });
    const thread = new BfdThread(worker, options);
    return new Promise((resolve, reject) => {
      worker.on('message', (message: FromBfdThread) => {
        if (message.type === 'started') {
          thread.sayAlive();
          resolve(thread);
        } else if (message.type === 'error') {
          reject(new Error(`BFD could not start: ${message.message}`));
        } else {
          thread.onMessage(message);
        }
      });
      worker.once('error', (error) => reject(error));
      worker.once('exit', (code) => reject(new Error(`the BFD thread exited (${code}) before it started`)));
    });
  }

  status(): BfdPeerSummary[] {
    return [...this.peers.values()];
  }

  /** The sessions' own counters and timers, from the thread. */
  details(): Promise<BfdPeerStatus[]> {
    if (this.stopped) return Promise.resolve([]);
    const id = this.nextStatusId++;
    return new Promise((resolve) => {
      this.statusWaiters.set(id, resolve);
      this.post({ type: 'status', id });
    });
  }

  /** Tells every peer AdminDown and ends the thread. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.aliveTimer?.cancel();
    this.post({ type: 'stop' });
    const forced = setTimeout(() => void this.worker.terminate(), 2_000);
    await this.exited;
    clearTimeout(forced);
    for (const resolve of this.statusWaiters.values()) resolve([]);
  }

  private post(message: ToBfdThread): void {
    this.worker.postMessage(message);
  }

  private sayAlive(): void {
    if (this.stopped) return;
    this.post({ type: 'alive' });
    this.aliveTimer = this.options.clock.setTimeout(() => this.sayAlive(), ALIVE_EVERY_MS);
  }

  private onMessage(message: FromBfdThread): void {
    const log = this.options.logger;
    switch (message.type) {
      case 'state': {
        const { peer, change } = message;
        this.peers.set(peer, { peer, state: change.state, diagnostic: diagnosticName(change.diag), sinceWallMs: this.options.clock.wallNow() });
        if (change.state === 'Up') {
          log.info(`BFD session with ${peer} is up`);
        } else if (change.state === 'Down' && change.previous !== 'AdminDown') {
          const theirs = change.remoteDiag !== undefined && change.remoteDiag !== 0 ? ` (the peer says: ${diagnosticName(change.remoteDiag)})` : '';
          log.warn(`BFD session with ${peer} is down: ${diagnosticName(change.diag)}${theirs}`);
        } else {
          log.debug(`BFD session with ${peer}: ${change.previous} -> ${change.state}`);
        }
        break;
      }
      case 'problem':
        log.warn(message.message);
        break;
      case 'silenced':
        log.error(
          `The main thread did not answer the BFD thread for ${(message.forMs / 1000).toFixed(1)} s: BFD stopped sending meanwhile, ` +
            'so the routers will have taken this director out; it is sending again',
        );
        break;
      case 'status':
        this.statusWaiters.get(message.id)?.(message.peers);
        this.statusWaiters.delete(message.id);
        break;
      default:
        break;
    }
  }
}
