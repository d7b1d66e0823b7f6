/**
 * DNSQuery: an A or AAAA query for one of `hostnames`, sent only to the real
 * server (never /etc/hosts, never the system resolver: PyBal's Twisted
 * resolver chain could fall back to them and pass a dead server), over the
 * server's own address family, one try. Any answer is up; NXDOMAIN is up
 * unless fail-on-nxdomain; SERVFAIL, REFUSED, timeouts and other errors are
 * down.
 */
import type { DnsQueryConfig } from '../config/types.js';
import { errorMessage } from '../runtime/errors.js';
import { DeadlineError } from './deadline.js';
import { createPeriodicMonitor } from './periodic.js';
import type { CheckOutcome, Monitor, MonitorDeps, MonitorTarget } from './types.js';

export type RecordType = 'A' | 'AAAA';

/** c-ares error codes as PyBal's messages name them. */
const RCODE_NAMES: Record<string, string> = {
  ENOTFOUND: 'NXDOMAIN',
  ESERVFAIL: 'SERVFAIL',
  EREFUSED: 'REFUSED',
  EFORMERR: 'FORMERR',
  ENOTIMP: 'NOTIMP',
  ETIMEOUT: 'timeout',
  ECONNREFUSED: 'connection refused',
  EBADRESP: 'bad response',
};

/** The verdict for a query's error code (pure). */
export function judgeDnsError(code: string, failOnNxdomain: boolean, query: string): CheckOutcome {
  // NOERROR without records of this type is still an answer from a working server.
  if (code === 'ENODATA') return { ok: true, reason: `DNS query answered (no records), query: ${query}` };
  if (code === 'ENOTFOUND' && !failOnNxdomain) return { ok: true, reason: `DNS query answered NXDOMAIN, query: ${query}` };
  return { ok: false, reason: `DNS query ${RCODE_NAMES[code] ?? code}, query: ${query}` };
}

/** `ip:port` as c-ares server lists spell it. */
export function serverAddress(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export function createDnsQueryMonitor(config: DnsQueryConfig, target: MonitorTarget, deps: MonitorDeps): Monitor {
  const random = deps.random ?? Math.random;
  // One try with c-ares's own timeout at the deadline; the wrapper's deadline also cancels.
  // node:dns/promises with the first DNSQuery monitor, not with the checks thread.
  const resolver = new (process.getBuiltinModule('node:dns/promises').Resolver)({ timeout: Math.max(1, config.timeoutMs), tries: 1 });
  let problem: string | undefined;
  try {
    resolver.setServers([serverAddress(target.ip, target.port)]);
  } catch (error) {
    problem = `DNS query cannot be sent to ${target.ip}: ${errorMessage(error)}`;
  }
  let query = '';
  return createPeriodicMonitor(
    config.kind,
    config,
    {
      timeoutReason: (message) => `DNS query ${message}, query: ${query}`,
      async run(signal) {
        if (problem !== undefined) return { ok: false, reason: problem };
        const hostname = config.hostnames[Math.floor(random() * config.hostnames.length)] ?? config.hostnames[0] ?? '';
        const type: RecordType = random() < 0.5 ? 'A' : 'AAAA';
        query = `${hostname} ${type}`;
        const onAbort = (): void => resolver.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
        try {
          const answers = type === 'A' ? await resolver.resolve4(hostname) : await resolver.resolve6(hostname);
          return { ok: true, reason: `DNS query answered (${answers.join(', ')}), query: ${query}` };
        } catch (error) {
          if (signal.reason instanceof DeadlineError) return { ok: false, reason: `DNS query ${signal.reason.message}, query: ${query}` };
          return judgeDnsError((error as NodeJS.ErrnoException).code ?? 'unknown error', config.failOnNxdomain, query);
        } finally {
          signal.removeEventListener('abort', onAbort);
        }
      },
      close: () => resolver.cancel(),
    },
    deps,
  );
}
