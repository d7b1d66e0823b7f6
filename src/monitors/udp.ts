/**
 * UDP, PyBal's semantics: a connected UDP socket sends a zero-length datagram
 * each interval; an ICMP port-unreachable (ECONNREFUSED) is a down result at
 * once, and the server stays down until no such error was seen for
 * `icmp-timeout`. Unlike PyBal, each check waits briefly after sending so
 * that the answer to its own probe counts (PyBal's first check is always up).
 */
import dgram from 'node:dgram';
import type { UdpConfig } from '../config/types.js';
import { formatSeconds } from './deadline.js';
import { withDataPath } from './data-path.js';
import { createMarkedUdpSocket } from './marked-socket.js';
import { createPeriodicMonitor, type PeriodicCheck } from './periodic.js';
import type { Monitor, MonitorDeps, MonitorTarget } from './types.js';

/** How long a check waits for the ICMP answer to its own probe, at most. */
export const UDP_SETTLE_MS = 500;

export function createUdpMonitor(config: UdpConfig, target: MonitorTarget, deps: MonitorDeps): Monitor {
  return createPeriodicMonitor(
    config.kind,
    { intervalMs: config.intervalMs, timeoutMs: 0, rise: config.rise, fall: config.fall },
    withDataPath(target, (t) => udpCheck(config, t, deps), deps.arpWatch),
    deps,
  );
}

/**
 * One server's probes (a data-path target's socket carries its mark and
 * sends to the VIP: an ICMP port unreachable then comes from the server
 * behind the VIP).
 */
function udpCheck(config: UdpConfig, target: MonitorTarget, deps: MonitorDeps): PeriodicCheck {
  const { clock, logger } = deps;
  let socket: dgram.Socket | undefined;
  let ready: Promise<dgram.Socket> | undefined;
  let lastRefusedMs: number | undefined;
  let lastError: string | undefined;
  let pokeCheck: (() => void) | undefined;

  /** The socket connected to the target, once it is; its errors are the check's news. */
  const connect = (sock: dgram.Socket): Promise<dgram.Socket> =>
    new Promise<dgram.Socket>((resolve, reject) => {
      socket = sock;
      sock.on('message', () => undefined);
      sock.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ECONNREFUSED') {
          lastRefusedMs = clock.now();
          pokeCheck?.();
        } else {
          lastError = error.message;
          logger.debug(`UDP socket error: ${error.message}`);
        }
      });
      sock.connect(target.port, target.ip, (error?: Error) => (error ? reject(error) : resolve(sock)));
    });

  const open = (): Promise<dgram.Socket> => {
    if (ready) return ready;
    const route = target.dataPath;
    const created =
      route === undefined ? Promise.resolve(dgram.createSocket(target.family === 6 ? 'udp6' : 'udp4')) : createMarkedUdpSocket(target.family, route.mark, route.source);
    const opening = created.then(connect).catch((error: unknown) => {
      // Try afresh at the next check.
      socket?.close();
      socket = undefined;
      ready = undefined;
      throw error;
    });
    ready = opening;
    return opening;
  };

  const settleMs = Math.min(UDP_SETTLE_MS, config.intervalMs / 2);
  return {
    async run(signal) {
      const sock = await open();
      lastError = undefined;
      const sentMs = clock.now();
      await new Promise<void>((resolve, reject) => sock.send(Buffer.alloc(0), (error) => (error ? reject(error) : resolve())));
      // Wait for an ICMP answer to this probe, or the settle time.
      await new Promise<void>((resolve) => {
        const timer = clock.setTimeout(done, settleMs);
        function done(): void {
          timer.cancel();
          pokeCheck = undefined;
          signal.removeEventListener('abort', done);
          resolve();
        }
        pokeCheck = () => {
          if (lastRefusedMs !== undefined && lastRefusedMs >= sentMs) done();
        };
        signal.addEventListener('abort', done, { once: true });
      });
      const now = clock.now();
      if (lastRefusedMs !== undefined && now - lastRefusedMs <= config.icmpTimeoutMs) {
        return { ok: false, reason: `ICMP port unreachable received ${formatSeconds(now - lastRefusedMs)} ago (within icmp-timeout ${formatSeconds(config.icmpTimeoutMs)})` };
      }
      if (lastError !== undefined) return { ok: false, reason: `UDP send failed: ${lastError}` };
      return { ok: true, reason: `no ICMP port unreachable within ${formatSeconds(config.icmpTimeoutMs)}` };
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (!socket) return resolve();
        socket.close(() => resolve());
        socket = undefined;
      }),
  };
}
