/**
 * A `file://` pool source. It checks the file with stat() every
 * pollIntervalMs (1 s, as PyBal), and at once when the system says the file
 * changed (dir-watch.ts), and re-reads it when its identity, size, mtime or
 * ctime changed. Unlike PyBal's watcher, a missing or unreadable
 * file never stops it: the error is reported once, the last good pool stays,
 * and the file is picked up again as soon as it is back.
 *
 * A change is acted on only once it has held still for settleMs, so that a
 * file being written (truncate then write, or an editor's rename dance) is not
 * read half-way; after reading, the file is checked again and read again if
 * it moved meanwhile.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, readSync, statSync, type BigIntStats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { Clock } from '../runtime/clock.js';
import { fileErrorReason, formatProblem, ProblemsError } from '../runtime/errors.js';
import type { Logger } from '../runtime/logger.js';
import { PollLoop } from './poll-loop.js';
import { createRunLimiter } from '../monitors/run-limiter.js';
import { LegacyLineMemo } from './legacy-format.js';
import { turn } from '../runtime/sliced.js';
import { parsePoolSliced, poolFormatForUrl, type PoolFormat } from './pool-format.js';
import { LoopingPoolSource } from './looping-source.js';
import { createSourceReporter, type ReporterSeed, type SourceReporter } from './source-reporter.js';
import type { PoolSource } from './types.js';
import { watchFile, type FileWatch } from './dir-watch.js';

export const FILE_SCHEME = 'file://';

export interface FileSourceOptions extends ReporterSeed {
  readonly clock: Clock;
  readonly logger: Logger;
  /** How often the file is checked (default 1000 ms). */
  readonly pollIntervalMs?: number;
  /** How long a change must hold still before the file is read (default 100 ms). */
  readonly settleMs?: number;
  /** Larger files are refused (default 8 MiB). */
  readonly maxBytes?: number;
  /** Read the file as soon as the system says it changed, besides polling (default true). */
  readonly watchChanges?: boolean;
  /**
   * The poll interval while changes are watched on a local filesystem, where
   * inotify misses nothing (default: pollIntervalMs; the daemon uses 10 s).
   * On NFS, CIFS, FUSE and the like, edits made elsewhere are not notified,
   * and pollIntervalMs applies.
   */
  readonly watchedPollIntervalMs?: number;
}

/**
 * Poll steps of all file sources that run at once. A step is a few file
 * system calls, each through libuv's thread pool, whose completions Node
 * then runs in one go: 1,000 pool files read at a start were 7,000 of them
 * in a single callback (8 s of a held event loop in the lab guest). With
 * a few steps at a time, each turn has only a few to finish.
 */
export const POOL_FILE_STEPS = createRunLimiter(16);

export const FILE_SOURCE_DEFAULTS = { pollIntervalMs: 1000, settleMs: 100, maxBytes: 8 * 1024 * 1024 } as const;

/** A change that keeps moving is read anyway after this many settle checks. */
const MAX_SETTLE_CHECKS = 10;

/**
 * A file modified this close to when it was read may change again without
 * its signature changing (a filesystem with coarse timestamps, such as NFS or
 * UML's hostfs with whole seconds, and an edit of the same size): it is read
 * again at each poll until its last change is this old. The reporter delivers
 * nothing when the pool is the same, so a re-read costs only the read.
 */
export const RACY_WINDOW_MS = 2000;

/** `/etc/pybal/pools/x: no such file`: the path and the reason an operator can act on. */
export function describeFsError(path: string, error: unknown): string {
  return `${path}: ${fileErrorReason(error)}`;
}

/**
 * What one look at the file found: its stat signature and the wall time of
 * its last change (mtime or ctime, whichever is later; coarse when the
 * filesystem keeps whole seconds), or an error.
 */
type Observation =
  | { readonly kind: 'file'; readonly key: string; readonly changedMs: number; readonly coarse: boolean }
  | { readonly kind: 'error'; readonly key: string; readonly message: string };

/** What a look at a regular file's stats tells: its signature, and when and how precisely it last changed. */
function fileObservation(stats: BigIntStats): Observation {
  const changedNs = stats.mtimeNs > stats.ctimeNs ? stats.mtimeNs : stats.ctimeNs;
  return { kind: 'file', key: signature(stats), changedMs: Number(changedNs / 1_000_000n), coarse: changedNs % 1_000_000_000n === 0n };
}

/** Throws unless the file is a regular one: opening a FIFO would block, a directory is a mistake to name. */
function assertRegularFile(s: BigIntStats): void {
  if (!s.isFile()) throw Object.assign(new Error('not a regular file'), { code: s.isDirectory() ? 'EISDIR' : undefined });
}

function signature(s: BigIntStats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

/** The path of a file:// URL, taken literally as PyBal does (`file:///etc/pybal/x` -> `/etc/pybal/x`). */
export function filePathOfUrl(url: string): string {
  return url.startsWith(FILE_SCHEME) ? url.slice(FILE_SCHEME.length) : url;
}

export class FilePoolSource extends LoopingPoolSource {
  readonly url: string;
  private readonly path: string;
  private readonly format: PoolFormat;
  private readonly log: Logger;
  protected readonly clock: Clock;
  protected readonly reporter: SourceReporter;
  protected readonly loop: PollLoop;
  private readonly pollIntervalMs: number;
  private readonly settleMs: number;
  private readonly maxBytes: number;
  /** The last read's clean lines: a re-read parses only what changed. */
  private readonly lines = new LegacyLineMemo();
  /** The observation last acted on (read, or reported as an error). */
  private settled: string | undefined;
  /** No look at the file yet (see check). */
  private firstLook = true;
  /** The settled file changed too recently to trust its signature (RACY_WINDOW_MS). */
  private racy = false;
  /** A new observation waiting to hold still. */
  private candidate: string | undefined;
  private settleChecks = 0;
  /** Change notifications for the file, while they work (see dir-watch.ts); polling goes on regardless. */
  private watch: FileWatch | undefined;
  private readonly watchChanges: boolean;
  private readonly watchedPollIntervalMs: number;
  /**
   * The watched file is on a local filesystem (see dir-watch.ts): its stat
   * and read are then done in place, a few system calls each, rather than on
   * libuv's thread pool with a promise and a FileHandle per call (at a cold
   * start of 1,000 pools, some 3 s of the lab guest's single CPU). A network
   * filesystem keeps the thread pool, where a hung server cannot stall the
   * event loop. Undefined until the watch has said (learnFilesystem).
   */
  private localFs: boolean | undefined = undefined;

  constructor(url: string, options: FileSourceOptions) {
    super();
    this.url = url;
    this.path = filePathOfUrl(url);
    this.format = poolFormatForUrl(url);
    this.log = options.logger;
    this.clock = options.clock;
    this.pollIntervalMs = options.pollIntervalMs ?? FILE_SOURCE_DEFAULTS.pollIntervalMs;
    this.settleMs = options.settleMs ?? FILE_SOURCE_DEFAULTS.settleMs;
    this.maxBytes = options.maxBytes ?? FILE_SOURCE_DEFAULTS.maxBytes;
    this.reporter = createSourceReporter(url, this.log, options);
    this.loop = new PollLoop(options.clock, this.log, (signal) => this.step(signal), this.pollIntervalMs, this.settleMs);
    this.watchChanges = options.watchChanges ?? true;
    this.watchedPollIntervalMs = options.watchedPollIntervalMs ?? this.pollIntervalMs;
  }

  override async stop(): Promise<void> {
    this.unsubscribe();
    await super.stop();
  }

  private unsubscribe(): void {
    this.watch?.stop();
    this.watch = undefined;
  }

  /** Asks to hear of changes to the file (again, if its directory's watch failed or was missing); each poll step asks. */
  private subscribe(): void {
    if (!this.watchChanges || this.path === '' || this.watch?.alive) return;
    this.watch = watchFile(this.path, () => this.loop.wake());
    this.localFs = undefined;
  }

  /** Whether the file's filesystem is one whose every change inotify reports (a local one). */
  private async learnFilesystem(): Promise<void> {
    const watch = this.watch;
    const local = (await watch?.local()) ?? false;
    if (this.watch === watch) this.localFs = local;
  }

  /**
   * The wait before the next look: the watched interval while the file is
   * watched on a local filesystem (jittered by 10%, so that many pool files
   * started together do not all look in the same moment), else pollIntervalMs.
   */
  private nextPollMs(): number {
    if (this.localFs === true && this.watch?.alive && this.watchedPollIntervalMs !== this.pollIntervalMs) return this.watchedPollIntervalMs * (0.9 + 0.2 * Math.random());
    return this.pollIntervalMs;
  }

  protected urlProblem(): string | undefined {
    return this.path === '' ? `${this.url}: no file path in the URL` : undefined;
  }

  private async observe(): Promise<Observation> {
    try {
      const stats = this.localFs === true ? statSync(this.path, { bigint: true }) : await stat(this.path, { bigint: true });
      assertRegularFile(stats);
      return fileObservation(stats);
    } catch (e) {
      const message = describeFsError(this.path, e);
      return { kind: 'error', key: `error:${message}`, message };
    }
  }

  /** One poll step, in one of the file sources' shared slots (POOL_FILE_STEPS). */
  private async step(signal: AbortSignal): Promise<number> {
    let release: () => void;
    try {
      release = await POOL_FILE_STEPS.acquire(signal);
    } catch {
      return this.pollIntervalMs; // stopped while waiting
    }
    try {
      return await this.check();
    } finally {
      release();
    }
  }

  /** One poll step; returns the delay before the next. */
  private async check(): Promise<number> {
    this.subscribe();
    if (this.watch && this.localFs === undefined) await this.learnFilesystem();
    // In place, a step would otherwise run to its end in the microtasks of the one before it
    // (a slot is handed on by resolving a promise): 1,000 pools read at a cold start held
    // the event loop for 4 s in the lab guest. A turn each keeps it to POOL_FILE_STEPS a turn.
    if (this.localFs === true) await turn();
    if (this.firstLook) {
      // The first look reads at once a file that holds still already (every pool at a cold
      // start): its fstat says what a stat before would have, one system call fewer.
      this.firstLook = false;
      const still = this.localFs === true ? this.readIfStill() : undefined;
      if (still !== undefined) return this.read(still);
    }
    const seen = await this.observe();
    // Gone (its directory perhaps, and the watch with it): watch again once it is back.
    if (seen.kind === 'error') this.unsubscribe();
    if (seen.key === this.settled && this.racy) return this.read();
    if (seen.key === this.settled) {
      this.candidate = undefined;
      this.settleChecks = 0;
      return this.nextPollMs();
    }
    if (seen.key !== this.candidate && this.settleChecks < MAX_SETTLE_CHECKS && !this.stillSince(seen)) {
      // New: look again shortly, and act once it holds still.
      this.candidate = seen.key;
      this.settleChecks++;
      return this.settleMs;
    }
    this.settleChecks = 0;
    this.candidate = undefined;
    if (seen.kind === 'error') {
      this.settled = seen.key;
      this.reporter.fail(seen.message);
      return this.pollIntervalMs;
    }
    return this.read();
  }

  /**
   * Whether the file has already held still for the settle time: its last
   * change is older than that (plus RACY_WINDOW_MS where timestamps are whole
   * seconds), so a second look would tell nothing more. A pool file that has
   * not changed for a while (every pool at a cold start, an edit noticed by
   * the periodic poll) is read at the first look: at 1,000 services that is
   * 1,000 stats, timers and steps fewer, and an edit reaches the kernel a
   * settle time sooner. A change time in the future (another host's clock)
   * proves nothing.
   */
  private stillSince(seen: Observation): boolean {
    if (seen.kind !== 'file') return false;
    const age = this.clock.wallNow() - seen.changedMs;
    return age >= this.settleMs + (seen.coarse ? RACY_WINDOW_MS : 0);
  }

  /** The file read in place if it has held still for the settle time; undefined otherwise, or if it cannot be (the usual look then says why). */
  private readIfStill(): { stats: BigIntStats; bytes: Uint8Array } | undefined {
    try {
      const got = this.readInPlace();
      return this.stillSince(fileObservation(got.stats)) ? got : undefined;
    } catch {
      return undefined;
    }
  }

  /** Throws unless what was opened is a regular file within maxBytes. */
  private assertReadable(stats: BigIntStats): void {
    assertRegularFile(stats);
    if (stats.size > BigInt(this.maxBytes)) throw new Error(`larger than ${this.maxBytes} bytes (${stats.size})`);
  }

  // Both open non-blocking, in case a FIFO took the file's place since it was checked.
  // In place: open, fstat, one read of the size fstat gave and a byte more
  // (fewer than asked: the whole file), close. readFileSync(fd) would fstat
  // again, and in the lab guest a system call costs tens of microseconds: at a
  // cold start of 1,000 pools the reads' calls took a tenth of the main thread.
  private readInPlace(): { stats: BigIntStats; bytes: Uint8Array } {
    const fd = openSync(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const stats = fstatSync(fd, { bigint: true });
      this.assertReadable(stats);
      const size = Number(stats.size);
      const bytes = Buffer.allocUnsafe(size + 1);
      const n = readSync(fd, bytes, 0, size + 1, 0);
      // Grown since the fstat: all of it, as it is now (the change is seen after the read).
      return { stats, bytes: n <= size ? bytes.subarray(0, n) : readFileSync(fd) };
    } finally {
      closeSync(fd);
    }
  }

  private async readOnPool(): Promise<{ stats: BigIntStats; bytes: Uint8Array }> {
    const handle = await open(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const stats = await handle.stat({ bigint: true });
      this.assertReadable(stats);
      return { stats, bytes: await handle.readFile() };
    } finally {
      await handle.close();
    }
  }

  /** Reads the file (or takes what `got` read of it), checks it held still meanwhile, and reports its pool. */
  private async read(got?: { stats: BigIntStats; bytes: Uint8Array }): Promise<number> {
    this.log.debug(`${this.path} changed, reading it`);
    let text: string;
    let before: string;
    try {
      const { stats, bytes } = got ?? (this.localFs === true ? this.readInPlace() : await this.readOnPool());
      before = signature(stats);
      this.racy = Math.abs(this.clock.wallNow() - Number(stats.mtimeNs / 1_000_000n)) < RACY_WINDOW_MS;
      text = new TextDecoder('utf-8').decode(bytes);
    } catch (e) {
      // Retried on every poll until it reads, reported once.
      this.settled = undefined;
      this.candidate = (await this.observe()).key;
      this.reporter.fail(describeFsError(this.path, e));
      return this.pollIntervalMs;
    }
    const after = await this.observe();
    if (after.key !== before) {
      // Written or replaced while we read it: read again once it holds still.
      this.log.debug(`${this.path} changed while being read, reading it again`);
      this.candidate = after.key;
      return this.settleMs;
    }
    this.settled = before;
    try {
      this.reporter.good(await parsePoolSliced(text, this.path, this.format, this.lines));
    } catch (e) {
      if (!(e instanceof ProblemsError)) throw e;
      // The whole document is unusable; it is read again when it changes.
      this.reporter.fail(e.problems.map(formatProblem).join('; '));
    }
    return this.nextPollMs();
  }
}

export function createFileSource(url: string, options: FileSourceOptions): PoolSource {
  return new FilePoolSource(url, options);
}
