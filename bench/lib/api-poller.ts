/**
 * A client that GETs one URL every `periodMs`, one request at a time on a
 * kept-alive connection, and times every request from when it was due until
 * its answer has been read in full (see LatencyTracker).
 */
import { Agent, get } from 'node:http';
import { LatencyTracker, type LatencySummary } from './latency-tracker.js';

export interface ApiPoller {
  /** The figures so far (a request in flight counted with its age). */
  summary(): LatencySummary;
  /** Why requests failed, with counts (`ECONNREFUSED x12`), the daemon's start included. */
  errors(): string[];
  /** Stops after the request in flight (if any) answers; the final figures. */
  stop(): Promise<LatencySummary>;
}

/** No request is abandoned before this: a stall is measured, not cut short. */
const REQUEST_TIMEOUT_MS = 120_000;

/** Resolves with undefined when the answer was read in full with a status below 400, else why not. */
function fetchOnce(url: string, agent: Agent, socketPath: string | undefined): Promise<string | undefined> {
  return new Promise((resolve) => {
    const request = get(url, { agent, timeout: REQUEST_TIMEOUT_MS, ...(socketPath === undefined ? {} : { socketPath }) }, (response) => {
      response.on('data', () => undefined);
      response.on('end', () => resolve((response.statusCode ?? 500) < 400 ? undefined : `HTTP ${response.statusCode}`));
      response.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

/** `socketPath`: ask over this Unix socket (the daemon's control socket) rather than TCP; the URL then only gives the path. */
export function startApiPoller(url: string, periodMs: number, socketPath?: string): ApiPoller {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const tracker = new LatencyTracker(periodMs, performance.now());
  const why = new Map<string, number>();
  let stopping = false;
  const loop = (async (): Promise<void> => {
    while (!stopping) {
      const wait = tracker.nextDue - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (stopping) break;
      tracker.send();
      const error = await fetchOnce(url, agent, socketPath);
      tracker.done(performance.now(), error === undefined);
      if (error !== undefined) why.set(error, (why.get(error) ?? 0) + 1);
    }
  })();
  return {
    summary: () => tracker.summary(performance.now()),
    errors: () => [...why].map(([e, n]) => `${e} x${n}`),
    stop: async () => {
      stopping = true;
      await loop;
      agent.destroy();
      return tracker.summary(performance.now());
    },
  };
}

/** One GET of `path` on a Unix socket (the daemon's control socket): the body, or undefined on any failure or a status of 400 and above. */
export function getOverSocket(socketPath: string, path: string, timeoutMs = 30_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const request = get({ socketPath, path, timeout: timeoutMs }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve((response.statusCode ?? 500) < 400 ? text : undefined));
      response.on('error', () => resolve(undefined));
    });
    request.on('error', () => resolve(undefined));
    request.on('timeout', () => request.destroy());
  });
}
