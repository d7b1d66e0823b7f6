/**
 * An IpvsKernel that opens its netlink client on first use and opens it
 * again after a failure to open, so that a director whose ip_vs module is
 * loaded late (or not at all yet) gets errors the manager retries with
 * backoff, never a daemon that cannot start.
 */
import type { IpvsKernel } from './client.js';
import type { IpvsCountersKernel } from './stats-reader.js';
import type { SyncDaemonKernel } from './sync-daemons.js';

export interface ClosableIpvsKernel extends IpvsKernel, IpvsCountersKernel, SyncDaemonKernel {
  close(): void;
}

export function createLazyIpvsKernel(open: () => Promise<ClosableIpvsKernel>): ClosableIpvsKernel {
  let client: Promise<ClosableIpvsKernel> | undefined;
  let closed = false;
  const get = (): Promise<ClosableIpvsKernel> => {
    if (closed) return Promise.reject(new Error('the IPVS client is closed'));
    if (!client) {
      const opening = open();
      client = opening;
      opening.catch(() => {
        if (client === opening) client = undefined;
      });
    }
    return client;
  };
  return {
    listServices: async () => (await get()).listServices(),
    listDests: async (key) => (await get()).listDests(key),
    mapDests: async (key, each) => (await get()).mapDests(key, each),
    apply: async (ops) => (await get()).apply(ops),
    daemons: async () => (await get()).daemons(),
    startDaemon: async (d) => (await get()).startDaemon(d),
    stopDaemon: async (state) => (await get()).stopDaemon(state),
    close: () => {
      closed = true;
      void client?.then(
        (c) => c.close(),
        () => undefined,
      );
    },
  };
}
