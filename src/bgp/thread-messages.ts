/** What the daemon and its BGP thread (worker.ts) say to each other. */
import type { AddressFamily } from '../config/types.js';
import type { Route } from './pack.js';
import type { PeerChange, PeerStatus, SpeakerOptions } from './speaker.js';

/** The speaker's options as values: the thread has its own clock and logger, and learns the kernel's families by message. */
export type SpeakerValues = Omit<SpeakerOptions, 'clock' | 'logger' | 'onPeerChange' | 'gracefulRestart'> & {
  readonly gracefulRestart?: { readonly restartTimeSec: number };
};

export interface BgpThreadConfig {
  readonly speaker: SpeakerValues;
  /** Graceful restart: the families the kernel forwards for at start (later ones come with each `alive`). */
  readonly forwarding: readonly AddressFamily[];
  /** The daemon's log level: the thread formats nothing below it. */
  readonly logLevel: string;
  /** How long the main thread may be silent before the sessions stop sending KEEPALIVEs. */
  readonly silenceAfterMs: number;
  /** How often the thread sends the sessions' status (and at once on every session change). */
  readonly statusEveryMs: number;
}

export type ToBgpThread =
  | { readonly type: 'alive'; readonly forwarding: readonly AddressFamily[] }
  | { readonly type: 'announce'; readonly routes: readonly Route[] }
  | { readonly type: 'ready' }
  | { readonly type: 'shutdown'; readonly reason: string; readonly timeoutMs: number }
  | { readonly type: 'abandon' }
  | { readonly type: 'stop' };

export type FromBgpThread =
  | { readonly type: 'started'; readonly port: number | undefined }
  | { readonly type: 'error'; readonly message: string }
  /** One log record as pino's JSON, without time, pid or hostname. */
  | { readonly type: 'log'; readonly line: string }
  | { readonly type: 'peer'; readonly change: PeerChange }
  | { readonly type: 'status'; readonly peers: readonly PeerStatus[] }
  | { readonly type: 'silenced'; readonly forMs: number }
  | { readonly type: 'closed' };
