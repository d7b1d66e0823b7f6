/**
 * The BGP thread: the speaker, its sessions and their sockets run here, on an
 * event loop of their own, so that KEEPALIVEs and the hold timers do not wait
 * behind health checks, pool files or a large IPVS reconcile on the daemon's
 * main thread (with a hold time of 3 s, a KEEPALIVE is due every second).
 *
 * The main thread says it is alive four times a second. If it stops saying so
 * for `silenceAfterMs` (stuck, not merely busy), the sessions stop sending
 * KEEPALIVEs: the routers' hold timers then take the director out, as they
 * would have if the sessions ran on the stuck thread. They send again as soon
 * as the main thread answers. A process that stops as a whole (SIGSTOP, a
 * crash) stops sending with it.
 *
 * Log records go to the main thread, which writes them to pybal's log.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import type { AddressFamily } from '../config/types.js';
import { createSystemClock } from '../runtime/clock.js';
import { errorMessage } from '../runtime/errors.js';
import { MainThreadWatch } from '../runtime/main-thread-watch.js';
import { BgpSpeaker } from './speaker.js';
import type { BgpThreadConfig, FromBgpThread, ToBgpThread } from './thread-messages.js';

if (parentPort === null) throw new Error('src/bgp/worker.ts runs as a worker thread');
const port = parentPort;
const config = workerData as BgpThreadConfig;
const post = (message: FromBgpThread): void => port.postMessage(message);

// No time, pid or hostname: the main thread's logger adds its own.
const logger = pino({ level: config.logLevel, base: null, timestamp: false }, { write: (line: string) => post({ type: 'log', line }) });

let forwarding: readonly AddressFamily[] = config.forwarding;
let statusTimer: NodeJS.Timeout | undefined;
const { gracefulRestart, ...values } = config.speaker;
const speaker = new BgpSpeaker({
  ...values,
  clock: createSystemClock(),
  logger,
  ...(gracefulRestart === undefined ? {} : { gracefulRestart: { restartTimeSec: gracefulRestart.restartTimeSec, forwarding: () => forwarding } }),
  onPeerChange: (change) => {
    post({ type: 'peer', change });
    sendStatus();
  },
});

function sendStatus(): void {
  post({ type: 'status', peers: speaker.status() });
}

const watch = new MainThreadWatch(config.silenceAfterMs, (on, forMs) => {
  speaker.silenceKeepalives(on);
  if (!on) post({ type: 'silenced', forMs });
});

function close(): void {
  watch.stop();
  clearInterval(statusTimer);
  sendStatus();
  post({ type: 'closed' });
  port.close();
}

port.on('message', (message: ToBgpThread) => {
  switch (message.type) {
    case 'alive':
      forwarding = message.forwarding;
      watch.alive();
      return;
    case 'announce':
      speaker.setAnnouncements(message.routes);
      return;
    case 'ready':
      speaker.markReady();
      return;
    case 'shutdown':
      void speaker.shutdown(message.reason, message.timeoutMs).finally(close);
      return;
    case 'abandon':
      speaker.abandon();
      close();
      return;
    case 'stop':
      speaker.stop();
      close();
      return;
  }
});

speaker.start().then(
  () => {
    statusTimer = setInterval(sendStatus, config.statusEveryMs);
    // The status first: the daemon has one to show as soon as it hears the thread started.
    sendStatus();
    post({ type: 'started', port: speaker.listeningPort() });
  },
  (error: unknown) => {
    watch.stop();
    post({ type: 'error', message: errorMessage(error) });
    speaker.stop();
    port.close();
  },
);
