/**
 * The instrumentation HTTP server: PyBal's read-only API on TCP
 * (`instrumentation_ips` × `instrumentation_port`) and the same API on a
 * Unix socket, which the daemon always serves for `pybal status`. Only the
 * Unix socket (root's, mode 0600) also takes the control requests that
 * change the daemon's state: POST /drain and POST /undrain.
 */
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../runtime/logger.js';
import { errorMessage } from '../runtime/errors.js';
import { renderAlerts } from './alerts.js';
import type { EventHistory } from '../events/history.js';
import { renderEvents } from './events.js';
import { EventStream, type EventStreamOptions } from './event-stream.js';
import { EVENTS_ON_PAGE, HTML_TYPE, pageSecurityPolicy, pageSummary, renderStatusPage } from './status-page.js';
import { createSystemClock, type Clock } from '../runtime/clock.js';
import { sliced, turn } from '../runtime/sliced.js';
import type { PybalMetrics } from './metrics.js';
import { renderPoolNames, renderPoolsPath } from './pools.js';
import { jsonResponse, methodNotAllowed, notFound, textResponse, wantsJson, type ApiResponse } from './response.js';
import type { DaemonSnapshot, DrainAnswer, SnapshotScope } from './types.js';
import { DEFAULT_SOCKET_PATH } from '../runtime/defaults.js';
import { formatHostPort } from '../runtime/ip.js';

export { DEFAULT_SOCKET_PATH, formatHostPort };

export interface ApiServerDeps {
  /**
   * Taken on every request, as narrow as the request allows: `/pools` needs
   * no server, `/pools/<service>` one service (100,000 servers are costly to copy).
   */
  readonly snapshot: (scope?: SnapshotScope) => DaemonSnapshot;
  /**
   * The same snapshot taken in slices, for the requests that copy every
   * server (/metrics, /status, /alerts, /pools/<service>, the page): at
   * 10,000 servers, taken at once, it held the lab guest's event loop for
   * some 500 ms a scrape (a CPU profile, the profiler on). Without it,
   * `snapshot` is taken at once.
   */
  readonly snapshotSliced?: (scope?: SnapshotScope) => Promise<DaemonSnapshot>;
  /**
   * The services' names in configuration order: all `GET /pools` needs.
   * Without it, the list comes from a snapshot without servers, which still
   * makes every service's figures and the daemon's (BGP's routes, IPVS): at
   * 1,000 services, polled every 50 ms through a cold start, a tenth of the
   * main thread's CPU in the lab guest.
   */
  readonly serviceNames?: () => readonly string[];
  readonly metrics: PybalMetrics;
  readonly logger: Logger;
  /** What the control socket may change; never offered on the TCP listeners. */
  readonly control?: ApiControl;
  /** The event history (`/events`, `/events/stream`, the status page's list); without it those paths are 404. */
  readonly events?: EventHistory;
  /** For the event stream's periodic summary; the system clock by default. */
  readonly clock?: Pick<Clock, 'setTimeout'>;
  /** The event stream's limits (tests make them small). */
  readonly stream?: Pick<EventStreamOptions, 'maxClients' | 'maxBufferedBytes' | 'summaryIntervalMs' | 'retryMs'>;
}

/** A request's snapshot: in slices when the daemon offers it. */
function take(deps: Pick<ApiServerDeps, 'snapshot' | 'snapshotSliced'>, scope?: SnapshotScope): Promise<DaemonSnapshot> {
  return deps.snapshotSliced?.(scope) ?? Promise.resolve(deps.snapshot(scope));
}

/** The state changes the control socket takes (`pybal drain`, `pybal undrain`). */
export interface ApiControl {
  /** Drains (true) or undrains (false) the director; answers the state now. */
  setDrained(drained: boolean): DrainAnswer;
}

/** The control socket's POST paths, and what each asks for. */
const CONTROL_PATHS: ReadonlyMap<string, { readonly drained: boolean }> = new Map([
  ['drain', { drained: true }],
  ['undrain', { drained: false }],
]);

/** Where a listener ended up (the port is the kernel's choice when 0 was asked). */
export interface BoundAddress {
  readonly address: string;
  readonly port: number;
}

/** Splits a request path into decoded segments; undefined when it cannot be decoded. */
function pathSegments(url: string): string[] | undefined {
  const path = url.split('?')[0] ?? '';
  try {
    return path
      .split('/')
      .filter((segment) => segment !== '')
      .map((segment) => decodeURIComponent(segment));
  } catch {
    return undefined;
  }
}

/** `/` (every service, the first servers of each) or `/?service=<name>` (all of its servers), in slices. */
async function renderPage(deps: Pick<ApiServerDeps, 'snapshot' | 'snapshotSliced' | 'events'>, query: URLSearchParams): Promise<ApiResponse> {
  const service = query.get('service') ?? undefined;
  const snapshot = await take(deps, service === undefined ? undefined : { service });
  if (service !== undefined && !snapshot.services.some((s) => s.name === service)) return notFound(false);
  const events = deps.events?.latest(EVENTS_ON_PAGE) ?? [];
  const chunks = await sliced(renderStatusPage(snapshot, { service, events, latestSeq: deps.events?.latestSeq ?? 0 }), { background: true });
  return {
    status: 200,
    contentType: HTML_TYPE,
    body: chunks,
    headers: { 'content-security-policy': pageSecurityPolicy(), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' },
  };
}

function queryOf(url: string): URLSearchParams {
  const at = url.indexOf('?');
  return new URLSearchParams(at < 0 ? '' : url.slice(at + 1));
}

/**
 * Answers one request; pure apart from the snapshot and the metrics it reads
 * and, given `control` (the Unix socket), the drain it changes.
 */
export async function handleRequest(
  deps: Pick<ApiServerDeps, 'snapshot' | 'snapshotSliced' | 'serviceNames' | 'metrics' | 'control' | 'events'>,
  method: string,
  url: string,
  accept: string | undefined,
): Promise<ApiResponse> {
  const json = wantsJson(accept);
  const segments = pathSegments(url);
  const control = segments?.length === 1 ? CONTROL_PATHS.get(segments[0] as string) : undefined;
  if (deps.control && control) {
    // Always JSON, as /status: it is for `pybal drain` and scripts.
    if (method === 'POST') return jsonResponse(200, deps.control.setDrained(control.drained));
    return methodNotAllowed(true, 'POST', `Method not allowed: POST /${segments?.[0]} changes the daemon's state`);
  }
  if (method !== 'GET' && method !== 'HEAD') {
    if (deps.control) return methodNotAllowed(json, 'GET, HEAD', 'Method not allowed: only POST /drain and POST /undrain change the daemon; the rest is read-only (GET, HEAD)');
    if (control) return methodNotAllowed(json, 'GET, HEAD', 'Method not allowed: the API is read-only (GET, HEAD); drain and undrain only on the control socket (pybal drain, pybal undrain)');
    return methodNotAllowed(json);
  }
  if (!segments) return notFound(json);
  const [resource, ...rest] = segments;
  switch (resource) {
    case 'pools': {
      const service = rest[0];
      // The list of services: their names, at once.
      if (service === undefined) return renderPoolNames(deps.serviceNames?.() ?? deps.snapshot({ servers: false }).services.map((s) => s.name), json);
      return renderPoolsPath((await take(deps, { service, checks: false })).services, rest, json);
    }
    case 'alerts':
      return rest.length === 0 ? renderAlerts((await take(deps, { checks: false })).services, json) : notFound(json);
    case 'metrics':
      if (rest.length > 0) return notFound(json);
      // In slices, shared by scrapes that come while one runs: 10,000 servers are 4 MB of text.
      return metricsResponse(deps.metrics, await deps.metrics.scrape(() => take(deps, { checks: false })));
    case 'status':
      // Always JSON: it is for `pybal status` and scripts.
      return rest.length === 0 ? jsonResponse(200, await take(deps)) : notFound(json);
    case 'events':
      // Always JSON, as /status.
      if (rest.length > 0 || !deps.events) return notFound(json);
      return renderEvents(deps.events, queryOf(url));
    case undefined:
      // The status page. PyBal answered 404 at `/`: a JSON client still gets that.
      return json ? notFound(json) : renderPage(deps, queryOf(url));
    default:
      return notFound(json);
  }
}

export class ApiServer {
  private readonly deps: ApiServerDeps;
  private readonly log: Logger;
  private readonly servers = new Set<Server>();
  /** The TCP listeners of listen(), which closeTcp() closes (a reload may move them). */
  private readonly tcpServers = new Set<Server>();
  private readonly socketPaths = new Set<string>();
  /** `GET /events/stream`, shared by every listener (its cap counts them all). */
  private readonly stream: EventStream | undefined;

  constructor(deps: ApiServerDeps) {
    this.deps = deps;
    this.log = deps.logger.child({ component: 'api' });
    const events = deps.events;
    if (events) {
      this.stream = new EventStream({
        ...deps.stream,
        history: events,
        summary: async () => pageSummary(await take(deps), events.latestSeq),
        clock: deps.clock ?? createSystemClock(),
        logger: this.log,
      });
    }
  }

  /** Event streams open now. */
  get streams(): number {
    return this.stream?.size ?? 0;
  }

  /**
   * One listener per address. A failure to bind is logged with the address
   * and skipped: instrumentation must never stop the load balancer.
   */
  async listen(options: { readonly ips: readonly string[]; readonly port: number }): Promise<BoundAddress[]> {
    const bound: BoundAddress[] = [];
    for (const ip of options.ips) {
      // Read-only, as PyBal's: no control requests on TCP.
      const server = this.createHttpServer(false);
      try {
        await listenOn(server, (done) => server.listen({ host: ip, port: options.port, ipv6Only: ip.includes(':') }, done));
        const address = server.address();
        const port = typeof address === 'object' && address ? address.port : options.port;
        this.log.info({ address: ip, port }, `Instrumentation API listening on ${formatHostPort(ip, port)}`);
        this.tcpServers.add(server);
        bound.push({ address: ip, port });
      } catch (error) {
        this.servers.delete(server);
        this.log.error({ address: ip, port: options.port }, `Cannot serve the instrumentation API on ${formatHostPort(ip, options.port)}: ${errorMessage(error)}`);
      }
    }
    return bound;
  }

  /**
   * Serves the API on a Unix socket (mode 0600). A stale socket left by a
   * dead daemon is removed; a live one, or any other file, is left alone.
   * Resolves false (logged) when it cannot.
   */
  async listenUnix(path: string = DEFAULT_SOCKET_PATH): Promise<boolean> {
    const server = this.createHttpServer(true);
    try {
      await mkdir(dirname(path), { recursive: true, mode: 0o755 });
      await removeStaleSocket(path);
      await listenOn(server, (done) => server.listen(path, done));
      this.socketPaths.add(path);
      await chmod(path, 0o600);
      this.log.info({ socket: path }, `Status API listening on ${path}`);
      return true;
    } catch (error) {
      this.log.error({ socket: path }, `Cannot serve the status API on ${path}: ${errorMessage(error)}`);
      if (server.listening) await closeServer(server);
      this.servers.delete(server);
      return false;
    }
  }

  /** Closes the TCP listeners of listen() and their connections; the Unix socket stays. */
  async closeTcp(): Promise<void> {
    const servers = [...this.tcpServers];
    this.tcpServers.clear();
    for (const server of servers) this.servers.delete(server);
    await Promise.all(servers.map((server) => closeServer(server)));
  }

  /** Closes every listener and connection (event streams first); removes the Unix sockets. */
  async close(): Promise<void> {
    this.stream?.close();
    const servers = [...this.servers];
    this.servers.clear();
    this.tcpServers.clear();
    await Promise.all(servers.map((server) => closeServer(server)));
    for (const path of this.socketPaths) await unlink(path).catch(() => undefined);
    this.socketPaths.clear();
  }

  /** `control`: this listener takes the control requests (the Unix socket only). */
  private createHttpServer(control: boolean): Server {
    const deps = control
      ? this.deps
      : { snapshot: this.deps.snapshot, snapshotSliced: this.deps.snapshotSliced, serviceNames: this.deps.serviceNames, metrics: this.deps.metrics, events: this.deps.events };
    const server = createServer((request, response) => void this.respond(deps, request, response));
    // After listen() succeeded an error must be logged, never thrown at the daemon.
    server.on('error', (error) => this.log.error(`Instrumentation listener error: ${errorMessage(error)}`));
    this.servers.add(server);
    return server;
  }

  private async respond(deps: Parameters<typeof handleRequest>[0], request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = request.url ?? '/';
    if (this.stream && (request.method === 'GET' || request.method === 'HEAD') && isStreamPath(url)) {
      this.stream.open(request, response, queryOf(url));
      return;
    }
    let answer: ApiResponse;
    try {
      answer = await handleRequest(deps, request.method ?? 'GET', request.url ?? '/', request.headers.accept);
    } catch (error) {
      this.log.error(`Instrumentation request ${request.method} ${request.url} failed: ${errorMessage(error)}`);
      answer = textResponse(500, 'Internal error\n');
    }
    if (typeof answer.body === 'string') {
      const body = Buffer.from(answer.body);
      response.writeHead(answer.status, {
        'content-type': answer.contentType,
        'content-length': body.length,
        ...answer.headers,
      });
      response.end(request.method === 'HEAD' ? undefined : body);
      return;
    }
    let reusable = false;
    try {
      reusable = await writeChunks(request, response, answer, answer.body);
    } finally {
      answer.written?.(reusable);
    }
  }
}

/** A scrape's answer: its blocks go back to `metrics` once written (see PybalMetrics.written). */
function metricsResponse(metrics: ApiServerDeps['metrics'], blocks: readonly Buffer[]): ApiResponse {
  return { status: 200, contentType: metrics.contentType, body: blocks, written: (reusable) => metrics.written(blocks, reusable) };
}

function isStreamPath(url: string): boolean {
  const segments = pathSegments(url);
  return segments?.length === 2 && segments[0] === 'events' && segments[1] === 'stream';
}

/** Bytes written to the socket per turn of the event loop for a chunked body. */
const WRITE_BYTES_PER_TURN = 256 * 1024;
/** Chunks whose length is worked out per turn of the event loop. */
const LENGTHS_PER_TURN = 64;

/**
 * Writes a large body (the metrics of 10,000 servers: some 4 MB) a few
 * hundred KB per turn of the event loop, waiting for the socket to drain,
 * with its Content-Length worked out first, also a few chunks a turn.
 * Encoding it in one go held the lab guest's loop for about 400 ms.
 * Resolves whether the chunks may be reused (see ApiResponse.written): true
 * once the response has finished (every byte written to the socket) or if
 * the client went before any was written, false if it went part-way.
 */
async function writeChunks(request: IncomingMessage, response: ServerResponse, answer: ApiResponse, chunks: readonly (string | Buffer)[]): Promise<boolean> {
  let length = 0;
  for (let i = 0; i < chunks.length; i++) {
    if (i > 0 && i % LENGTHS_PER_TURN === 0) await turn();
    const chunk = chunks[i] as string | Buffer;
    length += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
  }
  if (response.destroyed) return true; // gone before the answer: nothing written
  response.writeHead(answer.status, { 'content-type': answer.contentType, 'content-length': length, ...answer.headers });
  if (request.method === 'HEAD') {
    response.end();
    return true;
  }
  let sinceTurn = 0;
  for (const chunk of chunks) {
    if (response.destroyed) return false; // the client went away
    const flowing = response.write(chunk);
    sinceTurn += chunk.length;
    if (!flowing) await drained(response);
    else if (sinceTurn >= WRITE_BYTES_PER_TURN) {
      sinceTurn = 0;
      await turn();
    }
  }
  if (response.destroyed) return false; // went after the last write
  response.end();
  // 'finish' comes once the socket has written what it was given (node:http
  // waits for its pending writes); 'close' without it when the connection went first.
  if (!response.writableFinished && !response.destroyed) await eventOrClose(response, 'finish');
  return response.writableFinished;
}

/** Resolves once the response can take more, or is closed. */
function drained(response: ServerResponse): Promise<void> {
  return eventOrClose(response, 'drain');
}

/** Resolves at the response's first `event` or 'close', whichever comes first. */
function eventOrClose(response: ServerResponse, event: 'drain' | 'finish'): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      response.off(event, done);
      response.off('close', done);
      resolve();
    };
    response.on(event, done);
    response.on('close', done);
  });
}

export function createApiServer(deps: ApiServerDeps): ApiServer {
  return new ApiServer(deps);
}

function listenOn(server: Server, start: (done: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    start(() => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

async function removeStaleSocket(path: string): Promise<void> {
  const stat = await lstat(path).catch(() => undefined);
  if (!stat) return;
  if (!stat.isSocket()) throw new Error(`${path} exists and is not a socket`);
  if (await socketAnswers(path)) throw new Error(`another process is serving ${path}`);
  await unlink(path);
}

/** Whether a process accepts connections on the Unix socket at `path` (a running pybal, for its control socket). */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
