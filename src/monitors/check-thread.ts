/**
 * The daemon's side of the checks thread (check-worker.ts): monitors made
 * here are run there. A monitor here is a handle: start() sends the thread
 * its config (once per config) and its target, stop() resolves when the
 * thread says the monitor is gone. What the thread's monitors report comes
 * back in order, a batch every few milliseconds, and reaches the coordinator,
 * the metrics and pybal's log as it would from a monitor on this thread.
 *
 * The thread starts with the first monitor, or at a cold start once the pools
 * are read (SPAWN_WAIT_MAX_MS). A data-path monitor's route says
 * whether its probe service is in the kernel; that is read here when a
 * monitor starts and again each time the daemon says the kernel's services
 * may have changed (readinessChanged: a reconcile programmed some, or the
 * desired set changed; at most READY_AFTER_MS late), and sent to the thread
 * when it differs (until then the check goes to the server's own address,
 * as before the probe service is in). Nothing is read while nothing changes:
 * at 10,000 data-path monitors, a look every 250 ms was 40,000 reads a second.
 *
 * A thread that dies is logged and started again after RESTART_AFTER_MS with
 * every monitor: one whose server was up starts from up (it reports down only
 * after `fall` failures), as for a server the kernel had pooled at start.
 * Meanwhile the coordinators keep what the monitors last said.
 */
import { Worker } from 'node:worker_threads';
import type { MonitorConfig, MonitorKind } from '../config/types.js';
import type { Clock, Timer } from '../runtime/clock.js';
import { firstReadsWaiting } from '../runtime/sliced.js';
import { bindLogger, type LineLogger, type Logger } from '../runtime/logger.js';
import type { StallStats } from '../runtime/stall-watch.js';
import type { CheckThreadConfig, CheckThreadEvent, FromCheckThread, LogSource, TargetValues, ThreadAction, ThreadHeap, ToCheckThread } from './thread-messages.js';
import type { CheckResult, MonitorReport, MonitorTarget, StartOptions } from './types.js';

/**
 * How long after the daemon says the kernel's services may have changed the
 * data-path monitors' readiness is read: the calls of a burst (each publish,
 * each reconcile of a cold start) share one look, at most four a second, as
 * when it was read every 250 ms whatever happened.
 */
const READY_AFTER_MS = 250;

/**
 * While pools wait for their first read (a cold start), the thread is told
 * to start monitors' first checks slower (check-worker.ts, HELD_ADMIT_MS;
 * servers checked before keep their pace), and this side
 * looks this often whether they still do. On one CPU the checks thread's
 * first connects took half of it from the reads and the programming: a cold
 * start of 1,000 services x 10 took 13.7 s in the lab guest where the same
 * daemon with its checks on the main thread, held back meanwhile, took 9.3 s.
 */
const HOLD_EVERY_MS = 50;
/**
 * How late the thread's timers may fire: those due within one 10 ms step
 * fire together. Checks due at their own millisecond each woke the thread's
 * loop (each wake some system calls, dear in a guest without vDSO); grouped,
 * their connections and answers come in together too. A check is then up to
 * 10 ms late, in intervals of seconds.
 */
const TIMER_SLACK_MS = 10;
/**
 * How long the thread sleeps after a short turn of its loop that did
 * something soon after the last, so that the sockets that connect or answer
 * meanwhile are taken in one poll (runtime/clock.ts, setTurnPause, has the
 * rules). On the host, 10,000 servers checked every 10 s: its clock reads
 * per check fell from 2.96 to 1.32 and the daemon's epoll_pwait from 0.81
 * to 0.34. An answer is then taken up to 10 ms late, and a check's
 * duration reads up to 20 ms longer (connected, then answered); its timeout
 * fires up to 20 ms late (the timer grid and this), in timeouts of seconds.
 */
const TURN_PAUSE_MS = 10;
/** How long after an unexpected exit the thread is started again. */
const RESTART_AFTER_MS = 1_000;
/**
 * At a cold start the thread is started once no pool waits for its first
 * read, or this long after the first monitor asked for it, whichever comes
 * first. A thread's start is Node's own bootstrap of it (in Node 20 a worker
 * has no start-up snapshot: it compiles Node's internal modules again), 1.5
 * to 2.5 s of CPU in the lab guest, which on one CPU came out of the
 * programming of the services. Its monitors' first checks wait for it; while
 * pools wait they would have been held back to one per 10 ms anyway.
 */
const SPAWN_WAIT_MAX_MS = 10_000;
/**
 * Messages to the thread (monitors' starts, stops, readiness) go in batches
 * of at most this many, and at most BATCHES_OUT batches the thread has not
 * yet acted on (it says `took` for each). The thread reads every message
 * waiting for it in one go: at a cold start of 10,000 servers in the lab
 * guest, the batches sent a turn apart while the thread was still loading
 * held its loop for 0.6 to 1.8 s when it read them (a batch of 500 cost it
 * some 55 ms to read, most of it garbage collection).
 */
const MESSAGES_PER_BATCH = 250;
/**
 * Two, not one: what comes up while the first batch waits for a thread
 * still loading (a probe service's readiness, seconds before the thread can
 * act) goes with it, not after its first checks.
 */
const BATCHES_OUT = 2;
/**
 * A thread silent this long is stuck (a check's regular expression that
 * backtracks for ever, a bug): it is ended and started again. It says how
 * its event loop is doing every second; its collections held it 2 s at most
 * in a saturated lab guest. The silence is counted in ticks of a sixth of
 * this, each of which must have heard nothing, so that the main thread's own
 * stall (messages waiting behind the tick) never counts as the thread's.
 */
const STUCK_AFTER_MS = 30_000;
const SILENT_TICKS = 6;
/** How long close() waits for the thread to stop its monitors before it is terminated. */
const CLOSE_GRACE_MS = 5_000;

export interface CheckThreadOptions {
  readonly clock: Clock;
  /** pybal's logger: monitors' records get their service, server and monitor; shared parts their component. */
  readonly logger: Logger;
  readonly runcommandMaxConcurrent: number;
  readonly arpWatchIntervalMs: number;
  readonly sendEveryMs?: number;
  readonly loopEveryMs?: number;
  /** See TIMER_SLACK_MS. */
  readonly timerSlackMs?: number;
  /** See STUCK_AFTER_MS (tests). */
  readonly stuckAfterMs?: number;
  /** Pools waiting for their first read (see HOLD_EVERY_MS); runtime/sliced.ts's count by default (tests give their own). */
  readonly firstReadsWaiting?: () => number;
  /** See SPAWN_WAIT_MAX_MS (tests). */
  readonly spawnWaitMaxMs?: number;
}

/** What a service's monitors need besides their config and target (as createMonitorFactory's). */
export interface ThreadMonitorSink {
  /** Bound to the service; each monitor's lines get its server and kind. */
  readonly logger: Logger;
  /** Every check result, for the per-check metrics. */
  readonly onResult?: (target: MonitorTarget, result: CheckResult) => void;
  /**
   * Every report, before the monitor's own onReport: the service's hook,
   * here rather than wrapped around each monitor's (a closure per server).
   */
  readonly onReport?: (target: MonitorTarget, report: MonitorReport) => void;
}

type ReportFn = (report: MonitorReport) => void;

/** A monitor's start options once they no longer matter (one object, not one per server). */
const NO_OPTIONS: StartOptions = Object.freeze({});

/** A monitor run by the checks thread. */
class ThreadMonitor {
  /** new: not started; running: the thread has it; stopping: stop() sent, not yet confirmed. */
  state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  /** What it last reported (a restarted thread starts it from up when true). */
  lastUp: boolean | undefined;
  /** The data-path readiness the thread was last told. */
  readySent = false;
  /** How it was started: what a thread started again gives it until it has reported (then lastUp says). */
  options: StartOptions = NO_OPTIONS;
  /** The current thread has it (false while it waits for a thread, or in the queue of one just started). */
  sent = false;
  private stopped: Promise<void> | undefined;
  resolveStopped: (() => void) | undefined;

  constructor(
    private readonly thread: CheckThread,
    readonly id: number,
    readonly config: MonitorConfig,
    readonly target: MonitorTarget,
    readonly sink: ThreadMonitorSink,
    readonly onReport: ReportFn,
    readonly onCheck: ((result: CheckResult) => void) | undefined,
  ) {}

  /** Its lines' logger, made when it logs (rarely): one per server would be kept for nothing. */
  get logger(): LineLogger {
    return bindLogger(this.sink.logger, { server: this.target.host, monitor: this.config.kind });
  }

  get kind(): MonitorKind {
    return this.config.kind;
  }

  start(options: StartOptions = {}): void {
    if (this.state !== 'new') return;
    this.state = 'running';
    this.options = options;
    this.thread.startMonitor(this);
  }

  stop(): Promise<void> {
    if (this.state === 'new' || this.state === 'stopped') {
      this.state = 'stopped';
      return Promise.resolve();
    }
    if (this.stopped === undefined) {
      this.state = 'stopping';
      this.stopped = new Promise((resolve) => {
        this.resolveStopped = resolve;
      });
      this.thread.stopMonitor(this);
    }
    return this.stopped;
  }

  /** The thread said it is gone (or the thread is). */
  gone(): void {
    this.state = 'stopped';
    this.resolveStopped?.();
    this.resolveStopped = undefined;
  }
}

export class CheckThread {
  private worker: Worker | undefined;
  /** A thread was started and has not exited since (false after close()). */
  private running = false;
  private closing = false;
  private nextId = 1;
  private nextConfigId = 1;
  /** Every monitor the thread has, from start until it says it stopped. */
  private readonly monitors = new Map<number, ThreadMonitor>();
  /** The configs the current thread holds, with how many of its monitors use each. */
  private configs = new Map<MonitorConfig, { readonly id: number; users: number }>();
  private readonly dataPath = new Set<ThreadMonitor>();
  private readyTimer: Timer | undefined;
  /** Whether the current thread was told to hold (pools wait for their first read), and the timer that looks again. */
  private holdSent = false;
  private holdTimer: Timer | undefined;
  private restartTimer: Timer | undefined;
  /** Looks whether the first thread may start (SPAWN_WAIT_MAX_MS). */
  private spawnTimer: Timer | undefined;
  /** Messages for the thread not yet sent (sendBatch), in order. */
  private outbox: ThreadAction[] = [];
  /** The monitors a thread just started has yet to be sent (after the outbox's messages). */
  private queued: ThreadMonitor[] = [];
  private queuedAt = 0;
  /** Batches sent that the thread has not yet said it took. */
  private batchesOut = 0;
  /** The turn in which the next batch goes (sendSoon). */
  private sendTurn: NodeJS.Immediate | undefined;
  private watchTimer: Timer | undefined;
  /** The thread said something since the last watch tick; how many ticks in a row heard nothing. */
  private heard = false;
  private silentTicks = 0;
  private loop: StallStats = { stalls: 0, longestMs: 0 };
  private heap: ThreadHeap | undefined;
  private closed: Promise<void> = Promise.resolve();
  private readonly components = new Map<LogSource, Logger>();
  /** What the next thread starts with (a reload's runcommand-max-concurrent included). */
  private config: CheckThreadConfig;

  constructor(private readonly options: CheckThreadOptions) {
    this.config = {
      logLevel: options.logger.level as CheckThreadConfig['logLevel'],
      runcommandMaxConcurrent: options.runcommandMaxConcurrent,
      arpWatchIntervalMs: options.arpWatchIntervalMs,
      sendEveryMs: options.sendEveryMs ?? 10,
      loopEveryMs: options.loopEveryMs ?? 1_000,
      timerSlackMs: options.timerSlackMs ?? TIMER_SLACK_MS,
      turnPauseMs: TURN_PAUSE_MS,
    };
  }

  /**
   * A service's monitors, made to run in the thread: the same signature as
   * createMonitorFactory's (coordinator/types.ts CreateMonitorFn). A monitor
   * that cannot be made in the thread reports down, `cannot start <kind>: …`,
   * where on one thread the call threw and the coordinator said the same (no
   * kind throws today: a bad ProxyFetch config fails every check instead).
   */
  factory(sink: ThreadMonitorSink) {
    return (
      config: MonitorConfig,
      target: MonitorTarget,
      onReport: ReportFn,
      onCheck?: (result: CheckResult) => void,
    ): { start(options?: StartOptions): void; stop(): Promise<void> } => {
      return new ThreadMonitor(this, this.nextId++, config, target, sink, onReport, onCheck);
    };
  }

  /** The thread's event loop, as it last said (stalls over 100 ms, the longest). */
  loopStats(): StallStats {
    return this.loop;
  }

  /** The thread's JS heap, as it last said; undefined until it has. */
  heapStats(): ThreadHeap | undefined {
    return this.heap;
  }

  /** How many commands RunCommand monitors may run at once (a reload's runcommand-max-concurrent). */
  setRuncommandMaxConcurrent(value: number): void {
    if (this.config.runcommandMaxConcurrent === value) return;
    this.config = { ...this.config, runcommandMaxConcurrent: value };
    if (this.running) this.post({ type: 'limit', runcommandMaxConcurrent: value });
  }

  /** Stops every monitor left and ends the thread. */
  close(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    this.restartTimer?.cancel();
    this.watchTimer?.cancel();
    this.readyTimer?.cancel();
    this.holdTimer?.cancel();
    this.spawnTimer?.cancel();
    // What still waits would only be undone: the thread stops every monitor it runs.
    this.dropQueue();
    const worker = this.worker;
    if (worker === undefined || !this.running) {
      this.forgetAll();
      return this.closed;
    }
    this.closed = new Promise<void>((resolve) => {
      const forced = setTimeout(() => void worker.terminate(), CLOSE_GRACE_MS);
      worker.once('exit', () => {
        clearTimeout(forced);
        this.forgetAll();
        resolve();
      });
    });
    worker.postMessage({ type: 'close' } satisfies ToCheckThread);
    return this.closed;
  }

  // ------------------------------------------------------------ for ThreadMonitor

  startMonitor(monitor: ThreadMonitor): void {
    if (this.closing) {
      // Too late: nothing runs it, and its stop() resolves at once.
      monitor.gone();
      return;
    }
    this.monitors.set(monitor.id, monitor);
    if (monitor.target.dataPath !== undefined) this.watchReady(monitor);
    if (this.worker === undefined) this.spawnWhenRead();
    else if (this.running) this.send(monitor, monitor.options);
    // Else the thread is being started again: it gets every monitor then.
  }

  stopMonitor(monitor: ThreadMonitor): void {
    this.dataPath.delete(monitor);
    if (!this.running || !this.monitors.has(monitor.id) || !monitor.sent) {
      // No thread to stop it in, or not yet sent to it: nothing of it runs.
      this.monitors.delete(monitor.id);
      monitor.gone();
      return;
    }
    this.post({ type: 'stop', id: monitor.id });
    this.release(monitor.config);
  }

  // ------------------------------------------------------------ internals

  private send(monitor: ThreadMonitor, options: StartOptions): void {
    // The hold first: the thread admits the monitor's first check as it stands when the start comes.
    this.syncHold();
    this.post(this.startMessage(monitor, options));
  }

  /** The thread's start of a monitor; from now the thread has it (its config counted as used). */
  private startMessage(monitor: ThreadMonitor, options: StartOptions): ThreadAction {
    monitor.sent = true;
    let held = this.configs.get(monitor.config);
    const first = held === undefined;
    if (held === undefined) {
      held = { id: this.nextConfigId++, users: 0 };
      this.configs.set(monitor.config, held);
    }
    held.users++;
    const { dataPath, host, ip, port, family } = monitor.target;
    const target: TargetValues =
      dataPath === undefined
        ? { host, ip, port, family }
        : { host, ip, port, family, dataPath: { vip: dataPath.vip, mark: dataPath.mark, method: dataPath.method, source: dataPath.source, ready: monitor.readySent } };
    return { type: 'start', id: monitor.id, configId: held.id, ...(first ? { config: monitor.config } : {}), target, options };
  }

  /** Some pool waits for its first read (the options' count, or runtime/sliced.ts's). */
  private poolsWaiting(): boolean {
    return (this.options.firstReadsWaiting ?? firstReadsWaiting)() > 0;
  }

  /** Starts the first thread now, or once no pool waits for its first read (SPAWN_WAIT_MAX_MS). */
  private spawnWhenRead(): void {
    if (this.spawnTimer !== undefined) return;
    const until = this.options.clock.now() + (this.options.spawnWaitMaxMs ?? SPAWN_WAIT_MAX_MS);
    const look = (): void => {
      this.spawnTimer = undefined;
      if (this.closing || this.worker !== undefined) return;
      if (this.poolsWaiting() && this.options.clock.now() < until) {
        this.spawnTimer = this.options.clock.setTimeout(look, HOLD_EVERY_MS);
        return;
      }
      this.spawn();
    };
    look();
  }

  /** Sends the next batch in a turn of its own (the messages of this turn go together), unless BATCHES_OUT are out. */
  private sendSoon(): void {
    if (this.batchesOut >= BATCHES_OUT || this.sendTurn !== undefined || !this.running) return;
    this.sendTurn = setImmediate(() => this.sendBatch());
  }

  /** Sends the outbox's next messages, then the queue's next monitors (still running, not yet sent), in one message. */
  private sendBatch(): void {
    this.sendTurn = undefined;
    if (!this.running || this.batchesOut >= BATCHES_OUT) return;
    // The hold first (into the outbox): the thread admits the first checks as it stands when their starts come.
    this.syncHold();
    const messages = this.outbox.length <= MESSAGES_PER_BATCH ? this.outbox : this.outbox.slice(0, MESSAGES_PER_BATCH);
    this.outbox = messages === this.outbox ? [] : this.outbox.slice(MESSAGES_PER_BATCH);
    while (this.queuedAt < this.queued.length && messages.length < MESSAGES_PER_BATCH) {
      const monitor = this.queued[this.queuedAt++]!;
      // One stopped meanwhile is no longer running (and no longer in this.monitors).
      if (monitor.state !== 'running' || monitor.sent) continue;
      // Again after a restart: a server last reported up leaves only after `fall` failures.
      messages.push(this.startMessage(monitor, monitor.lastUp === undefined ? monitor.options : { assumeUp: monitor.lastUp }));
    }
    if (this.queuedAt >= this.queued.length) {
      this.queued = [];
      this.queuedAt = 0;
    }
    if (messages.length === 0) return;
    this.worker?.postMessage({ type: 'batch', messages } satisfies ToCheckThread);
    this.batchesOut++;
    if (this.pending()) this.sendSoon();
  }

  /** Messages or monitors wait to be sent. */
  private pending(): boolean {
    return this.outbox.length > 0 || this.queuedAt < this.queued.length;
  }

  /** The thread acted on a batch: another may go. */
  private took(): void {
    this.batchesOut = Math.max(0, this.batchesOut - 1);
    if (this.pending()) this.sendSoon();
  }

  private dropQueue(): void {
    if (this.sendTurn !== undefined) clearImmediate(this.sendTurn);
    this.sendTurn = undefined;
    this.outbox = [];
    this.queued = [];
    this.queuedAt = 0;
    this.batchesOut = 0;
  }

  /** Tells the thread when pools start or stop waiting for their first read; looks again while they do. */
  private syncHold(): void {
    const on = this.poolsWaiting();
    if (on !== this.holdSent && this.running) {
      this.holdSent = on;
      this.post({ type: 'hold', on });
    }
    if (on && !this.closing) {
      this.holdTimer ??= this.options.clock.setTimeout(() => {
        this.holdTimer = undefined;
        this.syncHold();
      }, HOLD_EVERY_MS);
    }
  }

  /** The thread forgets a config with its last monitor, and so does this side. */
  private release(config: MonitorConfig): void {
    const held = this.configs.get(config);
    if (held !== undefined && --held.users <= 0) this.configs.delete(config);
  }

  /**
   * The kernel's services may have changed (a reconcile programmed some, or
   * the desired set changed): the data-path monitors' readiness is read
   * again READY_AFTER_MS later, once for the calls meanwhile, and what
   * differs goes to the thread.
   */
  readinessChanged(): void {
    if (this.dataPath.size === 0 || this.closing) return;
    this.readyTimer ??= this.options.clock.setTimeout(() => this.checkReady(), READY_AFTER_MS);
  }

  private watchReady(monitor: ThreadMonitor): void {
    monitor.readySent = monitor.target.dataPath?.ready() ?? false;
    this.dataPath.add(monitor);
  }

  private checkReady(): void {
    this.readyTimer = undefined;
    if (this.closing) return;
    const changes: [number, boolean][] = [];
    for (const monitor of this.dataPath) {
      const ready = monitor.target.dataPath?.ready() ?? false;
      if (ready === monitor.readySent) continue;
      monitor.readySent = ready;
      changes.push([monitor.id, ready]);
    }
    if (changes.length > 0 && this.running) this.post({ type: 'ready', changes });
  }

  /** Sends a message to the thread, in order with the others (in the next batch). */
  private post(message: ThreadAction): void {
    this.outbox.push(message);
    this.sendSoon();
  }

  private spawn(): void {
    // Bundled, the thread's entry has the same name beside the chunk (packaging/bundle-cli.ts).
    const worker = new Worker(new URL('./check-worker.js', import.meta.url), { workerData: this.config, name: 'pybal-checks' });
    this.worker = worker;
    this.running = true;
    this.holdSent = false;
    this.configs = new Map();
    worker.on('message', (message: FromCheckThread) => this.onMessage(message));
    worker.on('error', (error) => this.log('thread').error(`the checks thread failed: ${error.message}`));
    worker.once('exit', (code) => this.onExit(worker, code));
    this.heard = true;
    this.silentTicks = 0;
    this.watchTimer ??= this.options.clock.setTimeout(() => this.watch(), this.watchEveryMs());
    // Messages posted before the thread runs wait for it. Every monitor is
    // sent again, a slice a turn; one added meanwhile is sent at once.
    this.dropQueue();
    for (const monitor of this.monitors.values()) {
      monitor.sent = false;
      if (monitor.state === 'running') this.queued.push(monitor);
    }
    this.sendBatch();
  }

  private onExit(worker: Worker, code: number): void {
    if (worker !== this.worker) return;
    this.running = false;
    // The monitors being stopped are gone with it; the others start again with the next thread.
    for (const monitor of this.monitors.values()) {
      if (monitor.state === 'running') continue;
      this.monitors.delete(monitor.id);
      monitor.gone();
    }
    if (this.closing) return;
    this.log('thread').error(
      `The checks thread exited (${code}): no server is checked; the servers keep their last state, and it starts again in ${RESTART_AFTER_MS / 1000} s`,
    );
    this.restartTimer = this.options.clock.setTimeout(() => {
      if (this.closing) return;
      this.spawn();
      this.log('thread').info(`The checks thread started again with ${this.monitors.size} monitors`);
    }, RESTART_AFTER_MS);
  }

  private watchEveryMs(): number {
    return (this.options.stuckAfterMs ?? STUCK_AFTER_MS) / SILENT_TICKS;
  }

  /** Ends a thread that stopped answering; onExit starts it again. */
  private watch(): void {
    this.watchTimer = undefined;
    if (this.closing) return;
    this.watchTimer = this.options.clock.setTimeout(() => this.watch(), this.watchEveryMs());
    const worker = this.worker;
    if (!this.running || worker === undefined) return;
    if (this.heard) {
      this.heard = false;
      this.silentTicks = 0;
      return;
    }
    if (++this.silentTicks < SILENT_TICKS) return;
    this.silentTicks = 0;
    const silentSec = (this.watchEveryMs() * SILENT_TICKS) / 1000;
    this.log('thread').error(`The checks thread has said nothing for ${silentSec} s: it is stuck (a check that never yields?); ending it`);
    void worker.terminate();
  }

  private forgetAll(): void {
    this.running = false;
    for (const monitor of this.monitors.values()) monitor.gone();
    this.monitors.clear();
    this.dataPath.clear();
  }

  private onMessage(message: FromCheckThread): void {
    this.heard = true;
    switch (message.type) {
      case 'events':
        for (const event of message.events) this.dispatch(event);
        return;
      case 'loop':
        this.loop = message.stats;
        this.heap = message.heap;
        return;
      case 'took':
        this.took();
        return;
      case 'closed':
        return;
    }
  }

  private dispatch(event: CheckThreadEvent): void {
    if (event.k === 'log') {
      const logger = typeof event.source === 'number' ? this.monitors.get(event.source)?.logger : this.log(event.source);
      if (logger === undefined) return;
      if (event.fields === undefined) logger[event.level](event.msg);
      else logger[event.level](event.fields, event.msg);
      return;
    }
    const monitor = this.monitors.get(event.id);
    if (monitor === undefined) return;
    switch (event.k) {
      case 'stopped':
        this.monitors.delete(event.id);
        monitor.gone();
        return;
      case 'result':
        if (monitor.state !== 'running') return;
        monitor.sink.onResult?.(monitor.target, event.result);
        monitor.onCheck?.(event.result);
        return;
      case 'report':
        if (monitor.state !== 'running') return;
        monitor.lastUp = event.up;
        this.report(monitor, { kind: monitor.kind, up: event.up, reason: event.reason, firstCheck: event.firstCheck, atMs: this.options.clock.now() });
        return;
      case 'broken': {
        if (monitor.state !== 'running') return;
        const reason = `cannot start ${monitor.kind}: ${event.message}`;
        monitor.logger.error(`Monitoring instance ${monitor.kind} for server ${monitor.target.host} ${reason}`);
        monitor.lastUp = false;
        this.report(monitor, { kind: monitor.kind, up: false, reason, firstCheck: true, atMs: this.options.clock.now() });
        return;
      }
    }
  }

  private report(monitor: ThreadMonitor, report: MonitorReport): void {
    monitor.options = NO_OPTIONS;
    monitor.sink.onReport?.(monitor.target, report);
    monitor.onReport(report);
  }

  private log(source: Exclude<LogSource, number>): Logger {
    let logger = this.components.get(source);
    if (logger === undefined) {
      logger = this.options.logger.child({ component: source === 'thread' ? 'checks' : source });
      this.components.set(source, logger);
    }
    return logger;
  }
}
