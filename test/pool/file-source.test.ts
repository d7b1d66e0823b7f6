import { execFile } from 'node:child_process';
import { mkdir, rename, rm, statfs, utimes, writeFile } from 'node:fs/promises';
import { createHook } from 'node:async_hooks';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSystemClock, ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger, type MemoryLog } from '../../src/runtime/logger.js';
import { createFileSource, POOL_FILE_STEPS, RACY_WINDOW_MS } from '../../src/pool/file-source.js';
import { FIRST_READ_HOLD_MAX_MS } from '../../src/pool/looping-source.js';
import { controlPlaneWaiting } from '../../src/runtime/sliced.js';
import type { PoolEvent, PoolSource } from '../../src/pool/types.js';
import { advanceFor, advanceUntil, rows, summarize, tempDir, waitReal } from './helpers.js';

const A = "{ 'host': 'mw1', 'weight': 10, 'enabled': True }\n{ 'host': 'mw2', 'weight': 20, 'enabled': False }\n";
const B = "{ 'host': 'mw1', 'weight': 10, 'enabled': True }\n{ 'host': 'mw3', 'weight': 5, 'enabled': True }\n";

describe('file pool source', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let clock: ManualClock;
  let memory: MemoryLog;
  let events: PoolEvent[];
  let source: PoolSource | undefined;

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    clock = new ManualClock();
    memory = createMemoryLogger();
    events = [];
    source = undefined;
  });

  afterEach(async () => {
    await source?.stop();
    await cleanup();
  });

  function start(path: string): PoolSource {
    source = createFileSource(`file://${path}`, {
      clock,
      logger: memory.logger.child({ component: 'pool', service: 'text' }),
    });
    source.start((e) => events.push(e));
    return source;
  }

  /** Number of times the source has read the file so far. */
  const reads = (): number => memory.lines().filter((l) => l.includes('changed, reading it')).length;

  it('reads the file at start and delivers nothing while it is unchanged', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    start(path);
    await advanceUntil(clock, () => events.length === 1);
    expect(summarize(events)).toEqual([
      { type: 'pool', servers: [['mw1', 10, true], ['mw2', 20, false]], problems: [] },
    ]);
    await advanceFor(clock, 3000);
    expect(events).toHaveLength(1);
    expect(reads()).toBe(1);
    expect(source?.status()).toMatchObject({ url: `file://${path}`, error: undefined });
    expect(rows(source?.status().pool)).toEqual([['mw1', 10, true], ['mw2', 20, false]]);
    expect(memory.lines()).toContain(`[text pool] DEBUG: pool from file://${path}: 2 servers`);
  });

  it('reads a file that has held still for the settle time at the first look; a fresh or whole-second-stamped one only once it holds still', async () => {
    const still = join(dir, 'still');
    const fresh = join(dir, 'fresh');
    const coarse = join(dir, 'coarse');
    await writeFile(still, A);
    await writeFile(fresh, A);
    await writeFile(coarse, A);
    // The manual clock's wall time is a minute on: the files' change times (ctime, which only the
    // kernel sets, is now) are a minute old unless their mtime says later.
    const wallMs = Date.now() + 60_000;
    clock = new ManualClock(0, wallMs);
    await utimes(fresh, new Date(wallMs - 20), new Date(wallMs - 20));
    // Whole seconds, 1 to 2 s old: on such a filesystem the last write may be much newer than the stamp.
    const coarseSec = Math.floor((wallMs - 1000) / 1000);
    await utimes(coarse, coarseSec, coarseSec);
    const got = new Map<string, PoolEvent[]>();
    const sources = [still, fresh, coarse].map((path) => {
      const s = createFileSource(`file://${path}`, { clock, logger: memory.logger, settleMs: 100, watchChanges: false });
      s.start((e) => got.set(path, [...(got.get(path) ?? []), e]));
      return s;
    });
    try {
      // Within a few ms of the clock: the still file is read and delivered; the others wait for a second look.
      await advanceUntil(clock, () => got.has(still), 1);
      expect(clock.now()).toBeLessThan(50);
      expect(summarize(got.get(still) ?? [])).toEqual([{ type: 'pool', servers: [['mw1', 10, true], ['mw2', 20, false]], problems: [] }]);
      expect(got.has(fresh)).toBe(false);
      expect(got.has(coarse)).toBe(false);
      // After the settle time both have held still, and are read.
      await advanceUntil(clock, () => got.has(fresh) && got.has(coarse), 50);
      expect(clock.now()).toBeGreaterThanOrEqual(100);
    } finally {
      for (const s of sources) await s.stop();
    }
  });

  it('on a local filesystem looks and reads in place, with no thread-pool request; elsewhere on the thread pool', async () => {
    const fsRequests = (): { count: () => number; stop: () => void } => {
      let n = 0;
      const hook = createHook({
        init: (_id, type) => {
          if (type.startsWith('FSREQ') || type === 'FILEHANDLE') n++;
        },
      }).enable();
      return { count: () => n, stop: () => hook.disable() };
    };
    // The test's directory must be on one of the local filesystems for the first half to mean anything.
    expect([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0x858458f6, 0x2fc12fc1, 0xf2f52010, 0x794c7630]).toContain(Number((await statfs(dir)).type));
    for (const watchChanges of [true, false]) {
      const path = join(dir, `pool-${watchChanges}`);
      await writeFile(path, A);
      const got: PoolEvent[] = [];
      const s = createFileSource(`file://${path}`, { clock, logger: memory.logger, watchChanges, pollIntervalMs: 1000 });
      s.start((e) => got.push(e));
      try {
        await advanceUntil(clock, () => got.length === 1);
        // An edit, older than the settle time: the next poll looks, reads and delivers it.
        await writeFile(path, B);
        const old = new Date(Date.now() - 60_000);
        await utimes(path, old, old);
        const requests = fsRequests();
        try {
          await advanceUntil(clock, () => got.length === 2);
        } finally {
          requests.stop();
        }
        expect(rows(s.status().pool)).toEqual([['mw1', 10, true], ['mw3', 5, true]]);
        // Watched (so its filesystem is known to be local): in place. Not watched: on the pool, as for NFS.
        if (watchChanges) expect(requests.count()).toBe(0);
        else expect(requests.count()).toBeGreaterThan(0);
      } finally {
        await s.stop();
      }
    }
  });

  it('reads a just-modified file again until it is older than the racy window, for filesystems with coarse timestamps', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    // The manual clock's wall time starts now, as the file's modification time.
    clock = new ManualClock(0, Date.now());
    start(path);
    await advanceUntil(clock, () => events.length === 1);
    // Its signature did not change, yet it is read at each poll while it is recent...
    await advanceFor(clock, RACY_WINDOW_MS + 1500);
    const whileRecent = reads();
    expect(whileRecent).toBeGreaterThanOrEqual(2);
    // ...and no longer once it is older; the same pool is never delivered twice.
    await advanceFor(clock, 3000);
    expect(reads()).toBe(whileRecent);
    expect(events).toHaveLength(1);
  });

  it('delivers nothing when the file is rewritten with the same content', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    start(path);
    await advanceUntil(clock, () => events.length === 1);
    await writeFile(path, A);
    await advanceUntil(clock, () => reads() === 2);
    await advanceFor(clock, 1000);
    expect(events).toHaveLength(1);
  });

  it('picks up an edit written in place', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    start(path);
    await advanceUntil(clock, () => events.length === 1);
    await writeFile(path, B);
    await advanceUntil(clock, () => events.length === 2);
    expect(summarize(events.slice(1))).toEqual([{ type: 'pool', servers: [['mw1', 10, true], ['mw3', 5, true]], problems: [] }]);
    expect(memory.lines()).toContain(`[text pool] DEBUG: pool from file://${path}: 2 servers; added mw3; removed mw2`);
  });

  it('picks up an atomic rename over the file (editors, sed -i, mv)', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    start(path);
    await advanceUntil(clock, () => events.length === 1);
    await writeFile(join(dir, '.text.tmp'), B);
    await rename(join(dir, '.text.tmp'), path);
    await advanceUntil(clock, () => events.length === 2);
    expect(summarize(events.slice(1))).toEqual([{ type: 'pool', servers: [['mw1', 10, true], ['mw3', 5, true]], problems: [] }]);
  });

  it('keeps the pool while the file is gone, reports it once, and recovers when it is back', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    start(path);
    await advanceUntil(clock, () => events.length === 1);
    await rm(path);
    await advanceUntil(clock, () => events.length === 2);
    await advanceFor(clock, 5000);
    expect(summarize(events.slice(1))).toEqual([{ type: 'error', message: `${path}: no such file` }]);
    expect(source?.status().error).toBe(`${path}: no such file`);
    expect(rows(source?.status().pool)).toEqual([['mw1', 10, true], ['mw2', 20, false]]);
    expect(memory.lines().filter((l) => l.includes('no such file'))).toEqual([
      `[text pool] WARN: ${path}: no such file (keeping the last good pool of 2 servers)`,
    ]);

    // Put back as it was: recovered, and nothing else since the pool is the same.
    await writeFile(path, A);
    await advanceUntil(clock, () => events.length === 3);
    await advanceFor(clock, 2000);
    expect(summarize(events.slice(2))).toEqual([{ type: 'recovered' }]);
    expect(source?.status().error).toBeUndefined();
    expect(memory.lines()).toContain(`[text pool] INFO: file://${path} reads fine again`);

    // Gone again and back with other content: error, recovered, then the new pool.
    await rm(path);
    await advanceUntil(clock, () => events.length === 4);
    await writeFile(path, B);
    await advanceUntil(clock, () => events.length === 6);
    expect(summarize(events.slice(3))).toEqual([
      { type: 'error', message: `${path}: no such file` },
      { type: 'recovered' },
      { type: 'pool', servers: [['mw1', 10, true], ['mw3', 5, true]], problems: [] },
    ]);
  });

  it('reports a missing file at start with no pool, and reads it once it appears', async () => {
    const path = join(dir, 'later');
    start(path);
    await advanceUntil(clock, () => events.length === 1);
    expect(events).toEqual([{ type: 'error', message: `${path}: no such file` }]);
    expect(source?.status().pool).toBeUndefined();
    expect(memory.lines()).toContain(`[text pool] ERROR: ${path}: no such file (no pool read yet)`);
    await writeFile(path, A);
    await advanceUntil(clock, () => events.length === 3);
    expect(summarize(events.slice(1))).toEqual([
      { type: 'recovered' },
      { type: 'pool', servers: [['mw1', 10, true], ['mw2', 20, false]], problems: [] },
    ]);
  });

  it('reports a new error when the error changes', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    start(path);
    await advanceUntil(clock, () => events.length === 1);
    await rm(path);
    await advanceUntil(clock, () => events.length === 2);
    await mkdir(path);
    await advanceUntil(clock, () => events.length === 3);
    expect(events.slice(1)).toEqual([
      { type: 'error', message: `${path}: no such file` },
      { type: 'error', message: `${path}: is a directory` },
    ]);
  });

  it('reports a bad line as file:line: reason and applies the other lines', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    start(path);
    await advanceUntil(clock, () => events.length === 1);
    await writeFile(path, `${A}{ 'host': 'mw4', 'weight': '10', 'enabled': True }\n{ 'host': 'mw5', 'weight': 1 }\n`);
    await advanceUntil(clock, () => events.length === 3);
    // The pool, then the source's error: a skipped line is an error until fixed (so /alerts warns).
    expect(summarize(events.slice(1))).toEqual([
      {
        type: 'pool',
        servers: [['mw1', 10, true], ['mw2', 20, false], ['mw5', 1, true]],
        problems: ["3:weight:expected an int >= 0, got str '10'"],
      },
      { type: 'error', message: `file://${path}: 1 line(s) skipped (first: ${path}:3: weight: expected an int >= 0, got str '10')` },
    ]);
    expect(memory.lines()).toContain(`[text pool] WARN: ${path}:3: weight: expected an int >= 0, got str '10'`);

    // Fixing the line clears the error and delivers the pool again, now without problems.
    await writeFile(path, `${A}{ 'host': 'mw4', 'weight': 10, 'enabled': True }\n{ 'host': 'mw5', 'weight': 1 }\n`);
    await advanceUntil(clock, () => events.length === 5);
    expect(summarize(events.slice(3))).toEqual([
      { type: 'recovered' },
      { type: 'pool', servers: [['mw1', 10, true], ['mw2', 20, false], ['mw4', 10, true], ['mw5', 1, true]], problems: [] },
    ]);
  });

  it('keeps the last good pool when a JSON file becomes invalid, until it is fixed', async () => {
    const path = join(dir, 'text.json');
    await writeFile(path, '{"mw1": {"enabled": true, "weight": 10}}');
    start(path);
    await advanceUntil(clock, () => events.length === 1);
    await writeFile(path, '{"mw1": {"enabled": true, "weight": 10},\n}');
    await advanceUntil(clock, () => events.length === 2);
    await advanceFor(clock, 2000);
    expect(events.slice(1)).toEqual([{ type: 'error', message: `${path}:2: invalid JSON at column 1: expected a string key, found "}"` }]);
    expect(rows(source?.status().pool)).toEqual([['mw1', 10, true]]);
    await writeFile(path, '{"mw1": {"enabled": true, "weight": 10}, "mw2": {"enabled": false, "weight": 3}}');
    await advanceUntil(clock, () => events.length === 4);
    expect(summarize(events.slice(2))).toEqual([
      { type: 'recovered' },
      { type: 'pool', servers: [['mw1', 10, true], ['mw2', 3, false]], problems: [] },
    ]);
  });

  it('waits for a change to hold still, so a file truncated before being written is not applied empty', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    source = createFileSource(`file://${path}`, { clock, logger: memory.logger, settleMs: 5000 });
    source.start((e) => events.push(e));
    await advanceUntil(clock, () => events.length === 1, 500);
    await writeFile(path, ''); // the first half of an in-place write
    await advanceFor(clock, 1500); // the poll sees the change and waits for it to settle
    await writeFile(path, B); // the second half
    await advanceUntil(clock, () => events.length === 2, 500);
    await advanceFor(clock, 3000);
    expect(summarize(events.slice(1))).toEqual([{ type: 'pool', servers: [['mw1', 10, true], ['mw3', 5, true]], problems: [] }]);
  });

  it('refuses a file over the size cap and a FIFO, without blocking', async () => {
    const big = join(dir, 'big');
    await writeFile(big, A.repeat(100));
    source = createFileSource(`file://${big}`, { clock, logger: memory.logger, maxBytes: 1000 });
    source.start((e) => events.push(e));
    await advanceUntil(clock, () => events.length === 1);
    expect(events).toEqual([{ type: 'error', message: `${big}: larger than 1000 bytes (${A.length * 100})` }]);
    await source.stop();

    const fifo = join(dir, 'fifo');
    await promisify(execFile)('mkfifo', [fifo]);
    events.length = 0;
    source = createFileSource(`file://${fifo}`, { clock, logger: memory.logger });
    source.start((e) => events.push(e));
    await advanceUntil(clock, () => events.length === 1);
    expect(events).toEqual([{ type: 'error', message: `${fifo}: not a regular file` }]);
  });

  it('stop() leaves no timer behind', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    const s = start(path);
    await advanceUntil(clock, () => events.length === 1);
    expect(clock.pendingCount()).toBe(1);
    await s.stop();
    expect(clock.pendingCount()).toBe(0);
    await writeFile(path, B);
    await advanceFor(clock, 3000);
    expect(events).toHaveLength(1);
  });

  it('picks up an edit within 2 s on the real clock', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    source = createFileSource(`file://${path}`, { clock: createSystemClock(), logger: memory.logger });
    const got = new Promise<void>((resolve) => {
      source?.start((e) => {
        events.push(e);
        if (events.length === 2) resolve();
      });
    });
    await waitReal(() => events.length === 1, 2000);
    await writeFile(path, B);
    const deadline = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 2000).unref());
    expect(await Promise.race([got.then(() => 'in time' as const), deadline])).toBe('in time');
    expect(summarize(events.slice(1))).toEqual([{ type: 'pool', servers: [['mw1', 10, true], ['mw3', 5, true]], problems: [] }]);
  });

  it('reads an edit as soon as the system says the file changed, polling aside (a replace by rename too)', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    // A poll a minute: only the change notification can make it read in time.
    source = createFileSource(`file://${path}`, { clock: createSystemClock(), logger: memory.logger, pollIntervalMs: 60_000, settleMs: 20 });
    source.start((e) => events.push(e));
    await waitReal(() => events.length === 1, 2000);
    await writeFile(path, B);
    await waitReal(() => events.length === 2, 2000);
    expect(summarize(events.slice(1))).toEqual([{ type: 'pool', servers: [['mw1', 10, true], ['mw3', 5, true]], problems: [] }]);
    // As a deployment tool does: a new file renamed over the old one.
    await writeFile(join(dir, 'text.new'), A);
    await rename(join(dir, 'text.new'), path);
    await waitReal(() => events.length === 3, 2000);
    expect(summarize(events.slice(2))).toEqual([{ type: 'pool', servers: [['mw1', 10, true], ['mw2', 20, false]], problems: [] }]);
    // An unrelated file in the same directory makes it look, and finds nothing new.
    await writeFile(join(dir, 'other'), B);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(events).toHaveLength(3);
  });

  it('watches again when its directory comes back after it was removed', async () => {
    const sub = join(dir, 'pools');
    const path = join(sub, 'text');
    await mkdir(sub);
    await writeFile(path, A);
    source = createFileSource(`file://${path}`, { clock: createSystemClock(), logger: memory.logger, pollIntervalMs: 200, settleMs: 20 });
    source.start((e) => events.push(e));
    await waitReal(() => events.length === 1, 2000);
    await rm(sub, { recursive: true });
    await waitReal(() => memory.lines().some((l) => l.includes('no such file')), 2000);
    const watch = (): { alive: boolean } | undefined => (source as unknown as { watch?: { alive: boolean } }).watch;
    expect(watch()).toBeUndefined();
    await mkdir(sub);
    await writeFile(path, A);
    // Back, found by a poll: the source listens for changes again (its old watch died with the directory).
    await waitReal(() => watch()?.alive === true, 3000);
    expect(watch()?.alive).toBe(true);
    await writeFile(path, B);
    await waitReal(() => events.some((e) => e.type === 'pool' && e.pool.has('mw3')), 2000);
    expect(summarize(events.slice(-1))).toEqual([{ type: 'pool', servers: [['mw1', 10, true], ['mw3', 5, true]], problems: [] }]);
  });

  it('polls only now and then while a local filesystem notifies it, every pollIntervalMs otherwise', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    const options = { clock: createSystemClock(), logger: memory.logger, pollIntervalMs: 1000, watchedPollIntervalMs: 60_000 };
    const watched = createFileSource(`file://${path}`, options);
    const unwatched = createFileSource(`file://${path}`, { ...options, watchChanges: false });
    const next = (s: PoolSource): number => (s as unknown as { nextPollMs(): number }).nextPollMs();
    try {
      watched.start(() => undefined);
      unwatched.start(() => undefined);
      // The test's temporary directory is on a local filesystem (ext4 or tmpfs).
      await waitReal(() => next(watched) > 1000, 2000);
      expect(next(watched)).toBeGreaterThanOrEqual(54_000);
      expect(next(watched)).toBeLessThanOrEqual(66_000);
      expect(next(unwatched)).toBe(1000);
    } finally {
      await watched.stop();
      await unwatched.stop();
    }
  });

  it('reads many pool files a few at a time, and every one of them', async () => {
    const sources: PoolSource[] = [];
    const got = new Map<number, number>();
    let most = 0;
    try {
      for (let i = 0; i < 100; i++) {
        const path = join(dir, `pool${i}`);
        await writeFile(path, `{ 'host': 'mw${i}', 'weight': ${i + 1}, 'enabled': True }\n`);
        // Unwatched, so on the thread pool (as on NFS), where steps overlap; on a local filesystem each is done in place.
        const s = createFileSource(`file://${path}`, { clock: createSystemClock(), logger: memory.logger, settleMs: 5, watchChanges: false });
        sources.push(s);
      }
      const watchSlots = setInterval(() => (most = Math.max(most, POOL_FILE_STEPS.running())), 1);
      try {
        sources.forEach((s, i) => s.start((e) => e.type === 'pool' && got.set(i, e.pool.get(`mw${i}`)?.weight ?? -1)));
        await waitReal(() => got.size === 100, 10_000);
      } finally {
        clearInterval(watchSlots);
      }
      expect([...got.entries()].every(([i, weight]) => weight === i + 1)).toBe(true);
      expect(most).toBeGreaterThan(0);
      expect(most).toBeLessThanOrEqual(16);
    } finally {
      await Promise.all(sources.map((s) => s.stop()));
    }
  });

  it('reads many local pool files in place a few a turn, never all in one run of the event loop', async () => {
    const sources: PoolSource[] = [];
    const turnOf = new Map<number, number>();
    let turnNo = 0;
    let ticking = true;
    const tick = (): void => {
      turnNo++;
      if (ticking) setImmediate(tick);
    };
    try {
      const old = new Date(Date.now() - 60_000);
      for (let i = 0; i < 100; i++) {
        const path = join(dir, `local${i}`);
        await writeFile(path, `{ 'host': 'mw${i}', 'weight': ${i + 1}, 'enabled': True }\n`);
        await utimes(path, old, old);
        sources.push(createFileSource(`file://${path}`, { clock: createSystemClock(), logger: memory.logger }));
      }
      setImmediate(tick);
      sources.forEach((s, i) => s.start((e) => e.type === 'pool' && !turnOf.has(i) && turnOf.set(i, turnNo)));
      await waitReal(() => turnOf.size === 100, 10_000);
    } finally {
      ticking = false;
      await Promise.all(sources.map((s) => s.stop()));
    }
    const perTurn = new Map<number, number>();
    for (const t of turnOf.values()) perTurn.set(t, (perTurn.get(t) ?? 0) + 1);
    expect(Math.max(...perTurn.values())).toBeLessThanOrEqual(16);
  });

  it('holds check admission back until its first read has an outcome, and lets go on stop', async () => {
    const base = controlPlaneWaiting();
    const path = join(dir, 'held');
    await writeFile(path, A);
    start(path);
    // The first step only looks (the file must hold still): no outcome yet, still held.
    await advanceFor(clock, 50);
    expect(controlPlaneWaiting()).toBe(base + 1);
    await advanceUntil(clock, () => events.length === 1);
    expect(controlPlaneWaiting()).toBe(base);
    // Later reads (an edit) are not held this way: their parse is a sliced job of its own.
    await writeFile(path, B);
    await advanceUntil(clock, () => events.length === 2);
    expect(controlPlaneWaiting()).toBe(base);
    // A missing file is an outcome too; a source stopped before any outcome lets go.
    const missing = createFileSource(`file://${join(dir, 'absent')}`, { clock, logger: memory.logger });
    const errors: PoolEvent[] = [];
    missing.start((e) => errors.push(e));
    await advanceUntil(clock, () => errors.length > 0);
    expect(controlPlaneWaiting()).toBe(base);
    const early = createFileSource(`file://${join(dir, 'held')}`, { clock, logger: memory.logger });
    early.start(() => undefined);
    await advanceFor(clock, 10);
    expect(controlPlaneWaiting()).toBe(base + 1);
    await Promise.all([missing.stop(), early.stop()]);
    expect(controlPlaneWaiting()).toBe(base);
  });

  it('lets go of the hold after FIRST_READ_HOLD_MAX_MS when the first read cannot even start', async () => {
    const base = controlPlaneWaiting();
    // Every shared slot taken: the source's first step waits, as behind a hung filesystem.
    const slots = await Promise.all(Array.from({ length: 16 }, () => POOL_FILE_STEPS.acquire()));
    try {
      const path = join(dir, 'stuck');
      await writeFile(path, A);
      start(path);
      await advanceFor(clock, 10);
      expect(controlPlaneWaiting()).toBe(base + 1);
      await advanceFor(clock, FIRST_READ_HOLD_MAX_MS);
      expect(controlPlaneWaiting()).toBe(base);
      expect(events).toHaveLength(0);
    } finally {
      for (const release of slots) release();
    }
    // The read still happens once a slot is free; the hold does not come back.
    await advanceUntil(clock, () => events.length === 1);
    expect(controlPlaneWaiting()).toBe(base);
  });

  it('still polls when change notifications are off', async () => {
    const path = join(dir, 'text');
    await writeFile(path, A);
    source = createFileSource(`file://${path}`, { clock: createSystemClock(), logger: memory.logger, pollIntervalMs: 60_000, settleMs: 20, watchChanges: false });
    source.start((e) => events.push(e));
    await waitReal(() => events.length === 1, 2000);
    await writeFile(path, B);
    await new Promise((resolve) => setTimeout(resolve, 500));
    // Nothing looks before the next poll, a minute away.
    expect(events).toHaveLength(1);
  });

  describe('what would empty the pool or remove servers by accident', () => {
    const line = (host: string, weight: number): string => `{ 'host': '${host}', 'weight': ${weight}, 'enabled': True }`;
    const THREE = `${line('mw1', 10)}\n${line('mw2', 20)}\n${line('mw3', 30)}\n`;
    const ROWS3: [string, number, boolean][] = [['mw1', 10, true], ['mw2', 20, true], ['mw3', 30, true]];

    let path: string;
    beforeEach(() => {
      path = join(dir, 'text');
    });

    async function startWith(text: string, file = path): Promise<void> {
      await writeFile(file, text);
      start(file);
      await advanceUntil(clock, () => events.length === 1);
    }

    /** What the coordinator would hold: the servers of the last pool event. */
    const lastPool = (): [string, number, boolean][] => {
      const pools = events.filter((e) => e.type === 'pool');
      const last = pools[pools.length - 1];
      return last?.type === 'pool' ? rows(last.pool) : [];
    };

    it('a source seeded with the last good pool of the one it replaces refuses an empty file, then applies a real one', async () => {
      await writeFile(path, '# nothing yet\n');
      const lastGoodPool = new Map(ROWS3.map(([host, weight, enabled]) => [host, { host, weight, enabled }]));
      source = createFileSource(`file://${path}`, { clock, logger: memory.logger.child({ component: 'pool', service: 'text' }), lastGoodPool });
      source.start((e) => events.push(e));
      await advanceUntil(clock, () => events.length === 1);
      expect(events).toEqual([{ type: 'error', message: `file://${path}: lists no server; refusing to empty the pool (to take every server out, disable each one)` }]);
      expect(rows(source.status().pool)).toEqual(ROWS3);
      await writeFile(path, `${line('mw1', 5)}\n`);
      await advanceUntil(clock, () => events.length === 3);
      expect(summarize(events.slice(1))).toEqual([{ type: 'recovered' }, { type: 'pool', servers: [['mw1', 5, true]], problems: [] }]);
    });

    it('refuses a file whose every line is invalid, keeps the servers, and a clean edit then applies', async () => {
      await startWith(THREE);
      await writeFile(path, THREE.replaceAll('True', 'Tru'));
      await advanceUntil(clock, () => events.length === 2);
      await advanceFor(clock, 3000);
      const message =
        `file://${path}: no valid server: 3 line(s) skipped ` +
        `(first: ${path}:1: syntax error at column 43: unknown name 'Tru' (only literals are allowed here))`;
      expect(events.slice(1)).toEqual([{ type: 'error', message }]);
      expect(lastPool()).toEqual(ROWS3);
      expect(rows(source?.status().pool)).toEqual(ROWS3);
      expect(source?.status().error).toBe(message);
      expect(memory.lines()).toContain(`[text pool] WARN: ${message} (keeping the last good pool of 3 servers)`);

      // A clean edit removes mw3 and changes mw1's weight, for real.
      await writeFile(path, `${line('mw1', 5)}\n${line('mw2', 20)}\n`);
      await advanceUntil(clock, () => events.length === 4);
      expect(summarize(events.slice(2))).toEqual([
        { type: 'recovered' },
        { type: 'pool', servers: [['mw1', 5, true], ['mw2', 20, true]], problems: [] },
      ]);
    });

    it('keeps the later servers of a file cut mid-line, reports it, and removes them once it reads clean', async () => {
      await startWith(THREE);
      // The writer was cut inside `True` on line 2.
      await writeFile(path, THREE.slice(0, THREE.indexOf('True', THREE.indexOf('mw2')) + 2));
      await advanceUntil(clock, () => events.length === 3);
      await advanceFor(clock, 3000);
      const message =
        `file://${path}: 1 line(s) skipped (first: ${path}:2: syntax error at column 43: unknown name 'Tr' (only literals are allowed here)); ` +
        'keeping mw2, mw3 from the last good pool until it reads clean';
      expect(summarize(events.slice(1))).toEqual([
        { type: 'pool', servers: ROWS3, problems: ["2::syntax error at column 43: unknown name 'Tr' (only literals are allowed here)"] },
        { type: 'error', message },
      ]);
      expect(rows(source?.status().pool)).toEqual(ROWS3);
      expect(memory.lines()).toContain(`[text pool] WARN: ${message}`);

      // Written in full with an edit: mw3 removed, mw2's weight changed, the error cleared.
      await writeFile(path, `${line('mw1', 10)}\n${line('mw2', 25)}\n`);
      await advanceUntil(clock, () => events.length === 5);
      expect(summarize(events.slice(3))).toEqual([
        { type: 'recovered' },
        { type: 'pool', servers: [['mw1', 10, true], ['mw2', 25, true]], problems: [] },
      ]);
      expect(source?.status().error).toBeUndefined();
    });

    it('applies the valid lines of a broken file, but removes nothing until it reads clean', async () => {
      await startWith(THREE);
      // mw1's weight changes, mw4 is added, mw2's line is broken and mw3's is gone.
      await writeFile(path, `${line('mw1', 1)}\n{ 'host': 'mw2', 'weight': 'heavy' }\n${line('mw4', 4)}\n`);
      await advanceUntil(clock, () => events.length === 3);
      expect(events[2]).toEqual({
        type: 'error',
        message:
          `file://${path}: 1 line(s) skipped (first: ${path}:2: weight: expected an int >= 0, got str 'heavy'); ` +
          'keeping mw2, mw3 from the last good pool until it reads clean',
      });
      expect(lastPool()).toEqual([['mw1', 1, true], ['mw2', 20, true], ['mw3', 30, true], ['mw4', 4, true]]);
      await advanceFor(clock, 3000);
      expect(events).toHaveLength(3);
    });

    it('refuses an emptied file (zero bytes, or comments only) and recovers when the servers are back', async () => {
      await startWith(THREE);
      await writeFile(path, '');
      await advanceUntil(clock, () => events.length === 2);
      const message = `file://${path}: lists no server; refusing to empty the pool (to take every server out, disable each one)`;
      expect(events.slice(1)).toEqual([{ type: 'error', message }]);
      expect(memory.lines()).toContain(`[text pool] WARN: ${message} (keeping the last good pool of 3 servers)`);

      await writeFile(path, '# emptied for maintenance\n\n');
      await advanceUntil(clock, () => memory.lines().filter((l) => l.includes('changed, reading it')).length === 3);
      await advanceFor(clock, 2000);
      expect(events).toHaveLength(2);
      expect(rows(source?.status().pool)).toEqual(ROWS3);

      await writeFile(path, THREE);
      await advanceUntil(clock, () => events.length === 3);
      await advanceFor(clock, 2000);
      expect(events.slice(2)).toEqual([{ type: 'recovered' }]);
      expect(lastPool()).toEqual(ROWS3);
    });

    it('takes every server out when each line is disabled', async () => {
      await startWith(THREE);
      await writeFile(path, THREE.replaceAll('True', 'False'));
      await advanceUntil(clock, () => events.length === 2);
      expect(summarize(events.slice(1))).toEqual([
        { type: 'pool', servers: [['mw1', 10, false], ['mw2', 20, false], ['mw3', 30, false]], problems: [] },
      ]);
      expect(source?.status().error).toBeUndefined();
    });

    it('may read an empty file first: there is nothing to lose', async () => {
      await startWith('');
      expect(summarize(events)).toEqual([{ type: 'pool', servers: [], problems: [] }]);
      await writeFile(path, THREE);
      await advanceUntil(clock, () => events.length === 2);
      expect(lastPool()).toEqual(ROWS3);
    });

    it('keeps the last pool when a JSON file is cut mid-write', async () => {
      const json = join(dir, 'text.json');
      const full = '{"mw1": {"enabled": true, "weight": 10},\n "mw2": {"enabled": true, "weight": 20}}\n';
      await startWith(full, json);
      await writeFile(json, full.slice(0, 50));
      await advanceUntil(clock, () => events.length === 2);
      expect(events[1]).toEqual({ type: 'error', message: `${json}:2: invalid JSON at column 9: object is never closed` });
      expect(rows(source?.status().pool)).toEqual([['mw1', 10, true], ['mw2', 20, true]]);
      await writeFile(json, '{"mw1": {"enabled": true, "weight": 10}}\n');
      await advanceUntil(clock, () => events.length === 4);
      expect(summarize(events.slice(2))).toEqual([{ type: 'recovered' }, { type: 'pool', servers: [['mw1', 10, true]], problems: [] }]);
    });
  });
});

describe('file pool source logging', () => {
  it('logs at most 50 problems per change, and the event carries them all', async () => {
    const { dir, cleanup } = await tempDir();
    const clock = new ManualClock();
    const memory = createMemoryLogger();
    const path = join(dir, 'junk');
    const source = createFileSource(`file://${path}`, { clock, logger: memory.logger });
    try {
      await writeFile(path, `${A}${'not a dict\n'.repeat(120)}`);
      const events: PoolEvent[] = [];
      source.start((e) => events.push(e));
      await advanceUntil(clock, () => events.length === 2);
      expect(events[0]?.type === 'pool' ? [rows(events[0].pool), events[0].problems.length] : events).toEqual([
        [['mw1', 10, true], ['mw2', 20, false]],
        120,
      ]);
      const first = `${path}:3: syntax error at column 1: unknown name 'not' (only literals are allowed here)`;
      expect(events[1]).toEqual({ type: 'error', message: `file://${path}: 120 line(s) skipped (first: ${first})` });
      const warnings = memory.lines().filter((l) => l.includes('WARN'));
      expect(warnings).toHaveLength(52);
      expect(warnings[0]).toBe(`[pybal] WARN: ${first}`);
      expect(warnings[50]).toBe(`[pybal] WARN: ... and 70 more problems in file://${path}`);
      expect(warnings[51]).toBe(`[pybal] WARN: file://${path}: 120 line(s) skipped (first: ${first})`);
    } finally {
      await source.stop();
      await cleanup();
    }
  });
});

