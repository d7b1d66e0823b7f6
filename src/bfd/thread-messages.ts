/** What the daemon and its BFD thread (worker.ts) say to each other. */
import type { BfdPeer, BfdPeerStatus } from './engine.js';
import type { BfdStateChange } from './session.js';

export interface BfdThreadConfig {
  readonly peers: readonly BfdPeer[];
  readonly intervalMs: number;
  readonly detectMult: number;
  /** How long the main thread may be silent before BFD stops sending. */
  readonly silenceAfterMs: number;
  readonly controlPort?: number | undefined;
  readonly remotePort?: number | undefined;
}

export type ToBfdThread = { readonly type: 'alive' } | { readonly type: 'status'; readonly id: number } | { readonly type: 'stop' };

export type FromBfdThread =
  | { readonly type: 'started' }
  | { readonly type: 'error'; readonly message: string }
  | { readonly type: 'state'; readonly peer: string; readonly change: BfdStateChange }
  | { readonly type: 'problem'; readonly message: string }
  | { readonly type: 'silenced'; readonly forMs: number }
  | { readonly type: 'status'; readonly id: number; readonly peers: BfdPeerStatus[]; readonly discards: Record<string, number> }
  | { readonly type: 'stopped' };
