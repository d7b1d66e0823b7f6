/**
 * The checks thread: every monitor of every server runs here, on an event
 * loop and a heap of its own, with the batch pinger, the command limiter, the
 * admission of check starts and the ARP watch they share. At 10,000 servers
 * the checks are most of the daemon's work and most of its garbage; here
 * their collections and their bursts hold neither the API, the pool files,
 * IPVS nor (on its own thread already) BGP.
 *
 * Monitors report as they do in one thread; what they report (transitions,
 * every check's result, their log lines) is gathered in order and sent to the
 * daemon as one message every `sendEveryMs`. A check's timing is the
 * thread's: it is late only when this thread is.
 */
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import type { MonitorConfig } from '../config/types.js';
import { createSystemClock, setTimerSlack, setTurnPause, type Timer } from '../runtime/clock.js';
import { errorMessage } from '../runtime/errors.js';
import { Fifo } from '../runtime/fifo.js';
import { LevelLogger } from '../runtime/line-logger.js';
import type { LineLogger, LogLevel } from '../runtime/logger.js';
import { runSliced, type Job } from '../runtime/sliced.js';
import { startStallWatch } from '../runtime/stall-watch.js';
import { leaveControlPlanePriority } from '../runtime/thread-priority.js';
import { ADMIT_PER_TURN, createAdmission } from './admission.js';
import { createArpTheftWatch } from './arp-theft.js';
import { nativeTcpAvailable } from './native-tcp.js';
import { createFpingPinger } from './pinger.js';
import { prepareMonitor, type MonitorMaker } from './registry.js';
import { createRunLimiter } from './run-limiter.js';
import type { CheckThreadConfig, CheckThreadEvent, FromCheckThread, LogSource, TargetValues, ThreadAction, ToCheckThread } from './thread-messages.js';
import type { CheckResult, DataPathRoute, Monitor, MonitorDeps, MonitorReport, MonitorTarget } from './types.js';

if (parentPort === null) throw new Error('src/monitors/check-worker.ts runs as a worker thread');
const port = parentPort;
const config = workerData as CheckThreadConfig;
const clock = createSystemClock();
setTimerSlack(config.timerSlackMs);
setTurnPause(config.turnPauseMs);

// ------------------------------------------------------------ what goes out

let queue: CheckThreadEvent[] = [];
let sendTimer: Timer | undefined;

function post(message: FromCheckThread): void {
  port.postMessage(message);
}

function send(): void {
  sendTimer?.cancel();
  sendTimer = undefined;
  if (queue.length === 0) return;
  const events = queue;
  queue = [];
  try {
    post({ type: 'events', events });
  } catch {
    // A log record's fields that cannot be copied (a function, a socket): the record goes without them.
    post({ type: 'events', events: events.map((e) => (e.k === 'log' ? { ...e, fields: undefined } : e)) });
  }
}

function emit(event: CheckThreadEvent): void {
  queue.push(event);
  sendTimer ??= clock.setTimeout(send, config.sendEveryMs);
}

const LEVELS: Readonly<Record<LogLevel, number>> = { debug: 20, info: 30, warn: 40, error: 50 };
const threshold = LEVELS[config.logLevel];

/** A logger whose records go to the daemon, which writes them with the source's bindings. */
class SentLogger extends LevelLogger {
  constructor(private readonly source: LogSource) {
    super();
  }
  isLevelEnabled(level: LogLevel): boolean {
    return LEVELS[level] >= threshold;
  }
  protected write(level: LogLevel, msgOrFields: string | Readonly<Record<string, unknown>>, msg?: string): void {
    if (LEVELS[level] < threshold) return;
    if (typeof msgOrFields === 'string') emit({ k: 'log', source: this.source, level, fields: undefined, msg: msgOrFields });
    else emit({ k: 'log', source: this.source, level, fields: msgOrFields, msg: msg ?? '' });
  }
}

// ------------------------------------------------------------ its priority

// Started at a negative nice (an operator's Nice=-5 for the unit), this thread
// (and every command it starts) goes back to nice 0: the checks never share
// the boost of BGP, IPVS and the API.
try {
  const moved = leaveControlPlanePriority();
  if (moved !== undefined) new SentLogger('thread').info(`The checks thread runs at nice ${moved.to}, the daemon's other threads at ${moved.from}: BGP, IPVS, pool files and the API get the CPU first`);
} catch (error) {
  new SentLogger('thread').warn(`The checks thread stays at the daemon's priority, its nice value unchanged: ${errorMessage(error)}`);
}

// ------------------------------------------------------------ what the monitors share

const runLimiter = createRunLimiter(config.runcommandMaxConcurrent);
/**
 * The daemon's control-plane jobs (pool reads, publishes, reconciles) run on
 * the main thread: none ever waits in this one, and each turn admits its
 * full batch. Except while the daemon's pools wait for their first read (a
 * cold start, or services a reload added; the daemon says so, `hold`): then
 * monitors' first checks start one per HELD_ADMIT_MS, so that the reads and
 * the programming have the CPU first. Monitors that have checked before keep
 * their pace (admitLater): a reload adding a service whose pool file hangs
 * never slows the running servers' checks. A check admitted late is late,
 * never failed: its deadline starts after.
 */
const HELD_ADMIT_MS = 10;
let held = false;
const admitFirst = createAdmission(
  ADMIT_PER_TURN,
  (fn) => void (held ? setTimeout(fn, HELD_ADMIT_MS) : setImmediate(fn)),
  () => (held ? 1 : 0),
);
const admitLater = createAdmission(ADMIT_PER_TURN, undefined, () => 0);
const pinger = createFpingPinger({ clock, logger: new SentLogger('ping') });
const arpWatch = createArpTheftWatch({ clock, logger: new SentLogger('arp'), intervalMs: config.arpWatchIntervalMs });
/** A repeating timer of the thread's clock: the stall watch's wakes fall on the timers' grid, with the checks'. */
function every(fn: () => void, ms: number): () => void {
  let timer = clock.setTimeout(function tick() {
    timer = clock.setTimeout(tick, ms);
    fn();
  }, ms);
  return () => timer.cancel();
}
const stallWatch = startStallWatch({
  logger: new SentLogger('thread'),
  loop: { name: "The checks thread's event loop", waited: 'checks started and were read late' },
  every,
});
// Where the tcpcheck addon cannot be loaded, ProxyFetch's http checks still work, over net.Socket: said once.
const nativeTcp = nativeTcpAvailable();
if (nativeTcp !== true) new SentLogger('thread').warn(`ProxyFetch's http checks use net.Socket, at more CPU per check: ${nativeTcp}`);
const loopTimer = setInterval(() => {
  const heap = getHeapStatistics();
  post({ type: 'loop', stats: stallWatch.stats(), heap: { usedBytes: heap.used_heap_size, totalBytes: heap.total_heap_size } });
}, config.loopEveryMs);

/** A config's prepared monitors, kept while a monitor of it runs (the daemon counts alike). */
const makers = new Map<number, { make: MonitorMaker; users: number }>();

/**
 * The MonitorDeps of one monitor: its reports and results go out with its id.
 * What every monitor shares is on the prototype, not in each of 10,000.
 */
class ThreadMonitorDeps implements MonitorDeps {
  private admitted = false;
  constructor(private readonly id: number) {}
  get clock(): typeof clock {
    return clock;
  }
  get runLimiter(): typeof runLimiter {
    return runLimiter;
  }
  get pinger(): typeof pinger {
    return pinger;
  }
  /** Admission of this monitor's next check (or connect): its first goes through admitFirst, the rest through admitLater. */
  admit(): Promise<void> {
    return new Promise((resolve) => this.admitCall(resolve));
  }
  /** admit() in its callback form: nothing but `fn` waits in the queue. */
  admitCall(fn: () => void): void {
    if (this.admitted) return admitLater.call(fn);
    this.admitted = true;
    admitFirst.call(fn);
  }
  get arpWatch(): typeof arpWatch {
    return arpWatch;
  }
  /** Made when asked: most monitors log rarely, and the few that keep one keep their own. */
  get logger(): LineLogger {
    return new SentLogger(this.id);
  }
  /** A method, as onResult: monitors call it on their deps (health.ts), and 10,000 closures would be kept for it. */
  onReport(report: MonitorReport): void {
    if (running.has(this.id)) emit({ k: 'report', id: this.id, up: report.up, reason: report.reason, firstCheck: report.firstCheck });
  }
  onResult(result: CheckResult): void {
    if (running.has(this.id)) emit({ k: 'result', id: this.id, result });
  }
}

/** A running monitor (undefined when it could not be made), its config and, for a data-path one, its readiness. */
interface Running {
  monitor: Monitor | undefined;
  readonly configId: number;
  readonly ready: { value: boolean } | undefined;
}

/** The running monitors by id. */
const running = new Map<number, Running>();

function targetFrom(values: TargetValues, ready: { value: boolean } | undefined): MonitorTarget {
  const { dataPath, ...plain } = values;
  if (dataPath === undefined || ready === undefined) return plain;
  const route: DataPathRoute = { vip: dataPath.vip, mark: dataPath.mark, method: dataPath.method, source: dataPath.source, ready: () => ready.value };
  return { ...plain, dataPath: route };
}

function start(message: Extract<ThreadAction, { type: 'start' }>): void {
  let maker = makers.get(message.configId);
  const ready = message.target.dataPath === undefined ? undefined : { value: message.target.dataPath.ready };
  const entry: Running = { monitor: undefined, configId: message.configId, ready };
  running.set(message.id, entry);
  try {
    if (maker === undefined) {
      if (message.config === undefined) throw new Error(`no config ${message.configId} in the checks thread`);
      maker = { make: prepareMonitor(message.config as MonitorConfig), users: 0 };
      makers.set(message.configId, maker);
    }
    maker.users++;
    entry.monitor = maker.make(targetFrom(message.target, ready), new ThreadMonitorDeps(message.id));
    entry.monitor.start(message.options);
  } catch (error) {
    emit({ k: 'broken', id: message.id, message: errorMessage(error) });
  }
}

function stop(id: number): Promise<void> {
  const entry = running.get(id);
  if (entry === undefined) return Promise.resolve();
  running.delete(id);
  const maker = makers.get(entry.configId);
  if (maker !== undefined && --maker.users <= 0) makers.delete(entry.configId);
  const stopped = entry.monitor === undefined ? Promise.resolve() : entry.monitor.stop();
  return stopped
    .catch((error: unknown) => new SentLogger(id).warn(`stopping failed: ${errorMessage(error)}`))
    .then(() => emit({ k: 'stopped', id }));
}

async function close(): Promise<void> {
  await Promise.all([...running.keys()].map(stop));
  await Promise.all([pinger.stop(), arpWatch.stop()]);
  stallWatch.stop();
  clearInterval(loopTimer);
  send();
  post({ type: 'closed' });
  port.close();
}

// ------------------------------------------------------------ what comes in

/** In the inbox after a batch's messages: once acted on, the thread says so, and the daemon may send another batch. */
const TOOK = Symbol('took');
/**
 * What the daemon sent and this thread has not acted on yet, in order, acted
 * on in slices (runtime/sliced.ts) with the thread's timers and sockets in
 * between: a batch of monitors' starts costs tens of ms in the lab guest.
 * The daemon has at most two batches out, and sends another once this
 * thread reaches a batch's TOOK, so the thread never finds a pile of them
 * waiting (it reads every message waiting in one go: a cold start of 10,000
 * servers that sent them a turn apart held this loop for 0.6 to 1.8 s).
 */
const inbox = new Fifo<ThreadAction | typeof TOOK>();
let actingOnInbox = false;

function* actOnInbox(): Job {
  while (inbox.size > 0) {
    const message = inbox.shift()!;
    if (message === TOOK) post({ type: 'took' });
    else act(message);
    yield;
  }
}

function inboxDone(error?: unknown): void {
  actingOnInbox = false;
  if (error !== undefined) new SentLogger('thread').error(`acting on the daemon's messages failed: ${errorMessage(error)}`);
  if (inbox.size > 0) actOnInboxNow();
}

function actOnInboxNow(): void {
  actingOnInbox = true;
  // Its own work: it holds back no admission of checks.
  runSliced(actOnInbox(), inboxDone, { background: true });
}

port.on('message', receive);

function receive(message: ToCheckThread): void {
  if (message.type === 'close') {
    // What still waits would only be undone: every running monitor stops now.
    inbox.clear();
    void close();
    return;
  }
  for (const one of message.messages) inbox.push(one);
  inbox.push(TOOK);
  if (!actingOnInbox) actOnInboxNow();
}

function act(message: ThreadAction): void {
  switch (message.type) {
    case 'start':
      start(message);
      return;
    case 'stop':
      void stop(message.id);
      return;
    case 'ready':
      for (const [id, value] of message.changes) {
        const ready = running.get(id)?.ready;
        if (ready !== undefined) ready.value = value;
      }
      return;
    case 'limit':
      runLimiter.setMaxConcurrent(message.runcommandMaxConcurrent);
      return;
    case 'hold':
      held = message.on;
      return;
  }
}
