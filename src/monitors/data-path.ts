/**
 * Data-path checks (`datapath-check`): a server is checked the way client
 * traffic reaches it, not at its own address. The check connects to the VIP
 * and the service port from a socket carrying the server's firewall mark; the
 * kernel's IPVS gives that connection to the mark's probe service, whose one
 * destination is the server, forwarded by the service's method (direct
 * routing to its MAC, or its tunnel). A server that answers at its address
 * but lacks the VIP on lo, or whose tunnel device is down, fails; so does
 * (IPv4 direct routing) a server that answers ARP for the VIP, seen by the
 * shared ARP watch.
 *
 * Until the probe service is in the kernel (at start, after a reload), a
 * check goes to the server's address as before, and says so. After a failed
 * data-path check the server's own address is tried too (explain), so that
 * the reason says whether the server answers there ("answers at its own
 * address, not on the VIP").
 */
import net from 'node:net';
import { errorMessage } from '../runtime/errors.js';
import type { CheckSignal } from './deadline.js';
import { serverAddress } from './dns-query.js';
import { connectMarked, kernelSource } from './marked-socket.js';
import type { PeriodicCheck } from './periodic.js';
import type { ArpWatchLike, CheckOutcome, DataPathRoute, MonitorTarget } from './types.js';

/** Options of a check's TCP connection that net.connect and net.Socket share. */
export interface CheckSocketOptions {
  readonly allowHalfOpen?: boolean;
  readonly onread?: net.OnReadOpts;
}

/**
 * The options net.Socket sets on its own copy of the options it is given
 * (Node 20: `options = { ...options }`, then these), with the values it
 * sets. V8 gives a spread copy that then gains a property a hidden class of
 * its own: without these, every check's socket made three new ones (1,000
 * checks a second made 3,000 a second, each kept until a full collection).
 * Given, the copy has them already and Node's assignments add nothing.
 */
export function socketOptions(options: CheckSocketOptions): CheckSocketOptions & { readonly emitClose: false; readonly autoDestroy: true; readonly decodeStrings: false } {
  return { allowHalfOpen: options.allowHalfOpen === true, onread: options.onread, emitClose: false, autoDestroy: true, decodeStrings: false };
}

/**
 * A check's TCP connection to its target: to `target.ip`, or for a data-path
 * target (its ip is then the VIP) from a socket carrying the server's mark,
 * bound to the route's source. Errors arrive as 'error' events, as with
 * net.connect.
 */
export function connectCheck(target: MonitorTarget, options: CheckSocketOptions = {}): net.Socket {
  const route = target.dataPath;
  if (route === undefined) return net.connect({ host: target.ip, port: target.port, family: target.family, ...socketOptions(options) });
  return connectMarked({ host: target.ip, port: target.port, family: target.family, mark: route.mark, localAddress: route.source }, socketOptions(options));
}

/** A connect that found no local port or address: the director's own shortage, never the server's failure. */
const NO_LOCAL_PORT = /\bEADDRNOTAVAIL\b/;

const METHOD_WORDS: Readonly<Record<DataPathRoute['method'], string>> = { dr: 'direct routing', tunnel: 'its tunnel' };

/** How a reason names the data path: "to the VIP 203.0.113.1:80 by direct routing (firewall mark 0x70b00003)". */
export function describeRoute(route: DataPathRoute, port: number): string {
  return `to the VIP ${serverAddress(route.vip, port)} by ${METHOD_WORDS[route.method]} (firewall mark 0x${route.mark.toString(16)})`;
}

/** What to look at on a server that answers at its address but not on the VIP. */
function hint(route: DataPathRoute): string {
  return route.method === 'dr' ? `does it hold ${route.vip} on lo?` : `is its tunnel device up, and does it hold ${route.vip}?`;
}

/** What a check at the server's own address says about a data-path failure. */
export function ownAddressWords(route: DataPathRoute, server: MonitorTarget, own: CheckOutcome): string {
  const address = serverAddress(server.ip, server.port);
  return own.ok ? `it answers at its own address ${address} but not on the VIP (${hint(route)})` : `it fails at its own address ${address} too: ${own.reason}`;
}

/**
 * The data-path target of a server's monitor: the same server, reached at
 * the VIP, with the source address filled in (the configured one, else the
 * kernel's choice towards the server); undefined when that cannot be worked
 * out, with why.
 */
export function dataPathTarget(target: MonitorTarget): { target: MonitorTarget } | { problem: string } {
  const route = target.dataPath!;
  let source = route.source;
  if (source === undefined) {
    try {
      source = kernelSource(target.family, target.ip);
    } catch (error) {
      return { problem: `no source address towards ${target.ip}: ${errorMessage(error)}` };
    }
  }
  return { target: { host: target.host, ip: route.vip, port: target.port, family: target.family, dataPath: { ...route, source } } };
}

/** The server's own address: `target` without its data path. */
export function withoutDataPath(target: MonitorTarget): MonitorTarget {
  return target.dataPath === undefined ? target : { host: target.host, ip: target.ip, port: target.port, family: target.family };
}

/**
 * A periodic check made a data-path one: `viaVip` checks the VIP target,
 * `plain` the server's address (used until the probe service is in the
 * kernel, and to explain a failure).
 */
export class DataPathCheck implements PeriodicCheck {
  private readonly route: DataPathRoute;
  private readonly prefix: string;
  /** The last check went through the data path (a failure of the plain fallback needs no second look). */
  private lastViaVip = false;
  /** The last check failed on the server's ARP answers (its own address would say nothing about them). */
  private lastStolen = false;
  private unwatch: (() => void) | undefined;

  constructor(
    private readonly viaVip: PeriodicCheck,
    private readonly plain: PeriodicCheck,
    private readonly server: MonitorTarget,
    route: DataPathRoute,
    private readonly arp: ArpWatchLike | undefined,
  ) {
    this.route = route;
    this.prefix = `${describeRoute(route, server.port)}: `;
    // Only IPv4 direct routing can lose a VIP to a server's ARP answers.
    if (arp !== undefined && route.method === 'dr' && server.family === 4) this.unwatch = arp.watch(route.vip, server.ip);
  }

  async run(signal: CheckSignal, startMs: number): Promise<CheckOutcome> {
    this.lastStolen = false;
    if (!this.route.ready()) {
      this.lastViaVip = false;
      const outcome = await this.plain.run(signal, startMs);
      return { ...outcome, reason: `${outcome.reason} (at its own address: its data-path probe service is not in IPVS yet)` };
    }
    this.lastViaVip = true;
    const outcome = await this.viaVip.run(signal, startMs);
    if (!outcome.ok && NO_LOCAL_PORT.test(outcome.reason) && !signal.aborted) {
      // This director's fault, not the server's: its checks to the VIP used every local port (TIME_WAIT). Checked at its address instead.
      this.lastViaVip = false;
      const own = await this.plain.run(signal, startMs);
      return { ...own, reason: `${own.reason} (at its own address: ${this.prefix}${outcome.reason}: this director has no local port left towards the VIP; see docs/data-path-checks.md)` };
    }
    if (!outcome.ok) return { ...outcome, reason: this.prefix + outcome.reason };
    const stolen = this.unwatch === undefined ? undefined : this.arp?.answers(this.route.vip, this.server.ip);
    if (stolen?.answered) {
      this.lastStolen = true;
      return {
        ...outcome,
        ok: false,
        reason:
          `${this.prefix}${outcome.reason}, but it answers ARP requests for ${this.route.vip} on ${stolen.device} (MAC ${stolen.mac}): ` +
          'it takes client traffic meant for the director; give it arp_ignore = 1 and arp_announce = 2',
      };
    }
    return { ...outcome, reason: this.prefix + outcome.reason };
  }

  timeoutReason(message: string): string {
    const check = this.lastViaVip ? this.viaVip : this.plain;
    const words = check.timeoutReason?.(message) ?? message;
    return this.lastViaVip ? this.prefix + words : words;
  }

  /** A data-path failure: does the server answer at its own address? */
  async explain(failure: CheckOutcome, signal: CheckSignal): Promise<CheckOutcome> {
    if (!this.lastViaVip || this.lastStolen) return failure;
    const own = await this.plain.run(signal, 0).catch((error: unknown) => ({ ok: false, reason: errorMessage(error) }) as CheckOutcome);
    return { ...failure, reason: `${failure.reason}; ${ownAddressWords(this.route, this.server, own)}` };
  }

  async close(): Promise<void> {
    this.unwatch?.();
    this.unwatch = undefined;
    await Promise.all([this.viaVip.close?.(), this.plain.close?.()]);
  }
}

/**
 * The check a monitor runs for `target`: `make(target)` itself, or for a
 * data-path target a DataPathCheck over `make` of the VIP target and of the
 * server's own address.
 */
export function withDataPath(target: MonitorTarget, make: (target: MonitorTarget) => PeriodicCheck, arp: ArpWatchLike | undefined): PeriodicCheck {
  const route = target.dataPath;
  if (route === undefined) return make(target);
  const plain = make(withoutDataPath(target));
  const via = dataPathTarget(target);
  if ('problem' in via) return new BrokenDataPath(plain, via.problem);
  return new DataPathCheck(make(via.target), plain, target, via.target.dataPath!, arp);
}

/** A data-path check that cannot run (no source address): the server is checked at its address, and every reason says why. */
class BrokenDataPath implements PeriodicCheck {
  constructor(
    private readonly plain: PeriodicCheck,
    private readonly problem: string,
  ) {}

  async run(signal: CheckSignal, startMs: number): Promise<CheckOutcome> {
    const outcome = await this.plain.run(signal, startMs);
    return { ...outcome, reason: `${outcome.reason} (at its own address: no data path, ${this.problem})` };
  }

  timeoutReason(message: string): string {
    return this.plain.timeoutReason?.(message) ?? message;
  }

  close(): Promise<void> | void {
    return this.plain.close?.();
  }
}
