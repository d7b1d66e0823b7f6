/**
 * Picks the pool source for a service's `config` URL by its scheme, from a
 * static map. An unknown scheme or an unusable URL gives a source that
 * reports the error when started: a bad pool URL never crashes the daemon
 * (config checking should reject it first, with poolUrlProblem).
 */
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { createEtcdSource } from './etcd-source.js';
import { createEtcd3Source } from './etcd3-source.js';
import { createFileSource } from './file-source.js';
import { createHttpSource } from './http-source.js';
import type { ReporterSeed } from './source-reporter.js';
import type { PoolEvent, PoolSource, PoolSourceStatus } from './types.js';

export interface PoolSourceOptions extends ReporterSeed {
  readonly clock: Clock;
  /** Bound by the caller, e.g. log.child({ component: 'pool', service }). */
  readonly logger: Logger;
  /** Poll interval of file and http(s) sources (default 1000 ms). */
  readonly pollIntervalMs?: number;
  /** Deadline of one http(s) request, etcd full read or etcd3 page (default 5000 ms). */
  readonly timeoutMs?: number;
  /** Largest document accepted (default 8 MiB). */
  readonly maxBytes?: number;
  /** Certificates trusted for https and etcd (PEM); default: Node's list plus the system's CAs. */
  readonly ca?: readonly string[];
}

type Factory = (url: string, options: PoolSourceOptions) => PoolSource;

/**
 * A file:// pool on a local filesystem is read as soon as inotify says it
 * changed; its poll is then only a safety net, every 10 s rather than every
 * second (1,000 pool files polled every second were 1,000 stat calls a second).
 */
export const WATCHED_FILE_POLL_MS = 10_000;

const FACTORIES: Readonly<Record<string, Factory>> = {
  file: (url, options) => createFileSource(url, { watchedPollIntervalMs: WATCHED_FILE_POLL_MS, ...options }),
  http: createHttpSource,
  https: createHttpSource,
  etcd: createEtcdSource,
  etcd3: createEtcd3Source,
};

export const POOL_URL_SCHEMES = Object.keys(FACTORIES);

function schemeOf(url: string): string | undefined {
  const match = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  return match?.[1]?.toLowerCase();
}

/** Why a pool URL cannot be used, or undefined when its scheme is known. */
export function poolUrlProblem(url: string): string | undefined {
  const scheme = schemeOf(url);
  if (scheme !== undefined && Object.hasOwn(FACTORIES, scheme)) return undefined;
  return `no pool source for ${JSON.stringify(url)} (known schemes: ${POOL_URL_SCHEMES.map((s) => `${s}://`).join(', ')})`;
}

export function createPoolSource(url: string, options: PoolSourceOptions): PoolSource {
  const problem = poolUrlProblem(url);
  const factory = FACTORIES[schemeOf(url) ?? ''];
  if (problem !== undefined || factory === undefined) return createFailedSource(url, options.logger, problem ?? url);
  return factory(url, options);
}

/** A source that can only report why it cannot work. */
export function createFailedSource(url: string, logger: Logger, message: string): PoolSource {
  const status: PoolSourceStatus = { url, pool: undefined, error: message };
  return {
    url,
    start(listener: (event: PoolEvent) => void): void {
      logger.error(message);
      listener({ type: 'error', message });
    },
    stop: () => Promise.resolve(),
    status: () => status,
  };
}
