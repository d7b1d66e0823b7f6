/**
 * The main thread's JS heap sized for memory rather than speed, once the
 * daemon has started.
 *
 * V8 lets a heap grow well past what survives its collections: at 10,000
 * servers in the lab guest the main thread's heap held 48-50 MB for some 30
 * that lived. Its memory savings mode (the v8heap addon calls
 * IsolateInBackgroundNotification, for the calling thread's isolate only)
 * lets a heap grow by less over what survives, for collections that come
 * more often (V8's header: a smaller footprint for some runtime
 * performance). With `memory-saving = yes` the daemon asks for it on its
 * main thread at `Start-up complete`: the start (pools read, IPVS
 * programmed) keeps V8's defaults. It is off by default: every full
 * collection then compacts the heap, and in the lab guest a scrape of
 * 1,000 services or a SIGHUP ran one every second or two, each holding the
 * event loop 25 to 195 ms. Not on the checks thread, whose checks make
 * garbage at 1,000 a second (there it cost a fifth more CPU per check), nor
 * on the BGP thread (nothing to gain); docs/native.md has the figures.
 */
import { type LoadedAddon, loadNativeAddon } from './native-addon.js';

/** The addon's exports (src/native/v8heap.cc). */
export interface V8HeapAddon {
  /** Puts the calling thread's isolate in V8's memory savings mode; false when the thread has none. */
  preferMemory(): boolean;
}

/**
 * Asks V8 to keep the calling thread's heap small, for as long as the thread
 * runs. Returns undefined when done, else why not (the addon missing or not
 * loading, no isolate), for the caller to log; the thread then runs as before.
 */
export function preferSmallHeap(addon: LoadedAddon<V8HeapAddon> = loadNativeAddon<V8HeapAddon>('v8heap', ['preferMemory'])): string | undefined {
  if ('reason' in addon) return addon.reason;
  try {
    return addon.addon.preferMemory() ? undefined : 'this thread has no V8 isolate';
  } catch (error) {
    return `the v8heap addon failed: ${(error as Error).message}`;
  }
}
