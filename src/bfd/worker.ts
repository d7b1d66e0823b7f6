/**
 * The BFD thread: the sessions and their sockets run here, on an event loop
 * of their own, so that their timers do not wait behind health checks,
 * pool files or a large IPVS reconcile on the daemon's main thread.
 *
 * The main thread says it is alive four times a second. If it stops saying
 * so for `silenceAfterMs` (stuck, not merely busy), this thread stops
 * sending, so the routers take the director out as if it had died; it
 * sends again as soon as the main thread answers. A director whose whole
 * process stops (SIGSTOP, a crash) stops sending with it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createSystemClock } from '../runtime/clock.js';
import { errorMessage } from '../runtime/errors.js';
import { MainThreadWatch } from '../runtime/main-thread-watch.js';
import { BfdEngine } from './engine.js';
import type { FromBfdThread, ToBfdThread, BfdThreadConfig } from './thread-messages.js';

const port = parentPort;
if (port === null) throw new Error('src/bfd/worker.ts runs as a worker thread');
const config = workerData as BfdThreadConfig;
const post = (message: FromBfdThread): void => port.postMessage(message);

const engine = new BfdEngine({
  clock: createSystemClock(),
  peers: config.peers,
  intervalMs: config.intervalMs,
  detectMult: config.detectMult,
  controlPort: config.controlPort,
  remotePort: config.remotePort,
  onStateChange: (peer, change) => post({ type: 'state', peer, change }),
  onProblem: (message) => post({ type: 'problem', message }),
});

const watch = new MainThreadWatch(config.silenceAfterMs, (on, forMs) => {
  engine.silence(on);
  if (!on) post({ type: 'silenced', forMs });
});

port.on('message', (message: ToBfdThread) => {
  if (message.type === 'alive') {
    watch.alive();
  } else if (message.type === 'status') {
    post({ type: 'status', id: message.id, peers: engine.status(), discards: engine.discards() });
  } else if (message.type === 'stop') {
    watch.stop();
    void engine.stop().then(() => {
      post({ type: 'stopped' });
      port.close();
    });
  }
});

engine.start().then(
  () => post({ type: 'started' }),
  (error: unknown) => {
    watch.stop();
    post({ type: 'error', message: errorMessage(error) });
    void engine.stop().finally(() => port.close());
  },
);
