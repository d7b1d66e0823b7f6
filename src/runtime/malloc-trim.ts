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

export function startMallocTrim(options: MallocTrimOptions = {}): MallocTrim {
  const intervalMs = options.intervalMs ?? 10_000;
  const minFreeBytes = options.minFreeBytes ?? 2 * 2 ** 20;
  const loaded = options.addon ?? loadNativeAddon<MemtrimAddon>('memtrim', ['stats', 'trim']);
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
