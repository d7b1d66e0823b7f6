/**
 * Gives the C heap's free pages back to the kernel, every so often.
 *
 * glibc keeps freed memory in its arenas for later mallocs and returns it to
 * the kernel only from an arena's top. Socket buffers, messages between the
 * threads, a scrape's blocks and V8's own scratch memory come and go at the
 * pace of the checks, and the holes they leave between live chunks stay
 * resident. In the lab guest at 10,000 ProxyFetch servers the arenas held
 * 36 to 48 MB, a quarter of the daemon's RSS, with 11 to 20 MB in use. The memtrim
 * addon (src/native/memtrim.c) runs glibc's malloc_trim(0) on libuv's thread
 * pool, never on the event loop: it hands the whole pages of every free chunk
 * back (madvise), and malloc takes them again, zeroed, when it reuses them.
 *
 * A trim is skipped while less than `minFreeBytes` is free in the arenas
 * (nothing worth a walk over them), and while the one before runs. Where the
 * addon does not load (not built, not glibc) nothing is trimmed: the reason is
 * given once, and the daemon runs as it would without.
 */
import { loadNativeAddon, type LoadedAddon } from './native-addon.js';
import { everyUnref, type Every } from './stall-watch.js';

/** The C heap, all arenas (mallinfo2). */
export interface MallocStats {
  /** What glibc has from the kernel for it: its arenas, and chunks mapped on their own. */
  readonly heapBytes: number;
  /** Of that, allocated. */
  readonly inUseBytes: number;
  /** Free in the arenas: a trim returns the whole pages of it (and malloc takes them back as it reuses them). */
  readonly freeBytes: number;
}

/** The addon's exports (src/native/memtrim.c). */
export interface MemtrimAddon {
  /** null where the C library is not glibc. */
  stats(): MallocStats | null;
  /** malloc_trim(0) on the thread pool: whether anything was returned. */
  trim(): Promise<boolean>;
  /** mallopt(M_TOP_PAD, bytes): false where the C library is not glibc or refused it. */
  topPad(bytes: number): boolean;
}

export interface MallocTrimOptions {
  /** How often to look (default 10 s). */
  readonly intervalMs?: number;
  /** Trim only with at least this much free in the arenas (default 2 MiB). */
  readonly minFreeBytes?: number;
  /** Told once, when there is no trimming here (the addon does not load, or the C library is not glibc). */
  readonly unavailable?: (reason: string) => void;
  /** The addon; loaded from dist/native/ by default (tests give their own). */
  readonly addon?: LoadedAddon<MemtrimAddon>;
  /** A repeating timer; setInterval by default (unref'd: it never keeps the process alive). */
  readonly every?: Every;
}

export interface MallocTrimStats {
  /** Trims run so far, and of them those that returned memory. */
  readonly trims: number;
  readonly released: number;
  /** The C heap as last read (undefined where there is no addon or no glibc). */
  readonly heap?: MallocStats;
}

export interface MallocTrim {
  stats(): MallocTrimStats;
  stop(): void;
}

const MEMTRIM_FUNCTIONS: readonly (keyof MemtrimAddon)[] = ['stats', 'trim', 'topPad'];

/** glibc's own M_TOP_PAD (mallopt(3)): what an arena takes beyond a request when it grows and keeps when it shrinks. */
export const DEFAULT_TOP_PAD_BYTES = 128 * 2 ** 10;
/**
 * M_TOP_PAD while the daemon starts. Then V8's helper threads compile the
 * daemon's hot functions and collect its growing heap in scratch memory that
 * glibc takes from their arenas and, at the end of each job, gives back to
 * the kernel (an arena's free top past 128 KiB, M_TRIM_THRESHOLD, less this
 * pad), so the next job's pages are fresh: a page fault each, about 190 us
 * in the lab guest. A dry run of 1,000 services x 10 there: 32,000 faults to
 * `Start-up complete` with the default, 25,000 with 16 MiB (V8's helper
 * threads 10,000-11,000 instead of 17,000-19,000), and 8 to 13 % less CPU, in
 * four runs each.
 */
export const START_TOP_PAD_BYTES = 16 * 2 ** 20;

export interface StartUpPad {
  /** Back to glibc's default pad (what the pad kept is trimmed with the rest, within the trimmer's interval). Once. */
  end(): void;
}

/**
 * Raises the C heap's top pad for the start-up (START_TOP_PAD_BYTES); end()
 * puts glibc's default back. Nothing where the addon does not load or the C
 * library is not glibc (startMallocTrim says so).
 */
export function padCHeapForStartUp(options: { readonly addon?: LoadedAddon<MemtrimAddon>; readonly bytes?: number } = {}): StartUpPad {
  const loaded = options.addon ?? loadNativeAddon<MemtrimAddon>('memtrim', MEMTRIM_FUNCTIONS);
  if ('reason' in loaded || !loaded.addon.topPad(options.bytes ?? START_TOP_PAD_BYTES)) return { end: () => undefined };
  const addon = loaded.addon;
  let ended = false;
  return {
    end: () => {
      if (ended) return;
      ended = true;
      addon.topPad(DEFAULT_TOP_PAD_BYTES);
    },
  };
}

export function startMallocTrim(options: MallocTrimOptions = {}): MallocTrim {
  const intervalMs = options.intervalMs ?? 10_000;
  const minFreeBytes = options.minFreeBytes ?? 2 * 2 ** 20;
  const loaded = options.addon ?? loadNativeAddon<MemtrimAddon>('memtrim', MEMTRIM_FUNCTIONS);
  const addon = 'reason' in loaded ? undefined : loaded.addon;
  let heap = addon?.stats() ?? undefined;
  let trims = 0;
  let released = 0;
  const stats = (): MallocTrimStats => ({ trims, released, ...(heap === undefined ? {} : { heap }) });
  if (addon === undefined || heap === undefined) {
    options.unavailable?.('reason' in loaded ? loaded.reason : 'the C library is not glibc (no malloc_trim)');
    return { stats, stop: () => undefined };
  }
  let running = false;
  let stopped = false;
  const every = options.every ?? everyUnref;
  const cancel = every(() => {
    if (running || stopped) return;
    heap = addon.stats() ?? heap;
    if (heap === undefined || heap.freeBytes < minFreeBytes) return;
    running = true;
    addon.trim().then(
      (returned) => {
        running = false;
        trims++;
        if (returned) released++;
      },
      () => {
        running = false;
      },
    );
  }, intervalMs);
  return {
    stats,
    stop: () => {
      stopped = true;
      cancel();
    },
  };
}
