/**
 * Change notifications for pool files (inotify, through fs.watch), so that an
 * edit is read at once rather than at the next poll: with PyBal's 1 s poll an
 * edit waited up to a second before anything looked at it.
 *
 * The directory is watched, not the file: deployment tools replace a pool
 * file by renaming a new one over it, which a watch on the old file would
 * miss. One watch serves every pool file of a directory (a director with
 * 1,000 pool files in /etc/pybal/pools has one). A notification only says
 * "look now": the source still decides from stat() what changed, and keeps
 * polling, because some filesystems never notify (NFS edits made on another
 * host, UML's hostfs edits made by the host).
 */
import { watch, type FSWatcher } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

interface Watched {
  readonly watcher: FSWatcher;
  /** Listeners by file name in the directory. */
  readonly files: Map<string, Set<() => void>>;
  dead: boolean;
  /** Whether the directory is on a local filesystem, asked once per watch. */
  local?: Promise<boolean>;
}

/**
 * A watch on one file; `alive` turns false when its directory's watch failed
 * (subscribe again later). A directory removed under a watch does not always
 * fail it: the source also drops its watch when the file is gone.
 */
export interface FileWatch {
  readonly alive: boolean;
  /** Whether its directory is on a local filesystem (LOCAL_FILESYSTEMS), asked once for every file watched there. */
  local(): Promise<boolean>;
  stop(): void;
}

/**
 * statfs types of local filesystems, whose changes inotify always reports:
 * ext2/3/4, xfs, btrfs, tmpfs, ramfs, zfs, f2fs, overlayfs.
 */
const LOCAL_FILESYSTEMS = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0x858458f6, 0x2fc12fc1, 0xf2f52010, 0x794c7630]);

async function isLocal(dir: string): Promise<boolean> {
  try {
    return LOCAL_FILESYSTEMS.has(Number((await statfs(dir)).type));
  } catch {
    return false;
  }
}

const directories = new Map<string, Watched>();

function notify(files: ReadonlyMap<string, ReadonlySet<() => void>>, name: string | null): void {
  // Without a name (the platform did not say which file), everyone looks.
  const targets = name === null ? [...files.values()] : [files.get(name)];
  for (const listeners of targets) for (const listener of listeners ?? []) listener();
}

/**
 * Calls `onChange` whenever something happens to `path` (written, replaced,
 * removed), or undefined when its directory cannot be watched (missing, not
 * allowed, no inotify): the caller polls as before and may try again later.
 */
export function watchFile(path: string, onChange: () => void): FileWatch | undefined {
  const dir = dirname(path);
  const name = basename(path);
  let watched = directories.get(dir);
  if (!watched) {
    let watcher: FSWatcher;
    try {
      // persistent: false, so that a watch never keeps the process alive.
      watcher = watch(dir, { persistent: false });
    } catch {
      return undefined;
    }
    const entry: Watched = { watcher, files: new Map(), dead: false };
    watcher.on('change', (_event, filename) => notify(entry.files, filename === null ? null : String(filename)));
    // The directory went away, or inotify gave up: the watch is dropped, and its files are looked at once more.
    watcher.on('error', () => {
      entry.dead = true;
      watcher.close();
      if (directories.get(dir) === entry) directories.delete(dir);
      notify(entry.files, null);
    });
    watched = entry;
    directories.set(dir, watched);
  }
  const entry = watched;
  let listeners = entry.files.get(name);
  if (!listeners) {
    listeners = new Set();
    entry.files.set(name, listeners);
  }
  const mine = listeners;
  const listener = (): void => onChange();
  mine.add(listener);
  return {
    get alive() {
      return !entry.dead;
    },
    local() {
      entry.local ??= isLocal(dir);
      return entry.local;
    },
    stop() {
      mine.delete(listener);
      if (mine.size === 0 && entry.files.get(name) === mine) entry.files.delete(name);
      if (entry.files.size === 0 && directories.get(dir) === entry) {
        directories.delete(dir);
        entry.watcher.close();
      }
    },
  };
}

/** How many directories are watched now (one per directory, however many pool files it holds). */
export function watchedDirectories(): number {
  return directories.size;
}
