/**
 * `pybal drain` and `pybal undrain`: planned maintenance of a director.
 *
 * Drain asks the running daemon (POST /drain on its control socket) to
 * announce every VIP with GRACEFUL_SHUTDOWN and `bgp-drain-med`, so that the
 * routers move the traffic to the other directors while this one still
 * forwards whatever reaches it. With `--wait S` it then watches for S
 * seconds and says what happened: the daemon still drained, its BGP
 * sessions, and the packets and new connections the kernel's IPVS counted
 * for pybal's services on this director, so that an operator (or a script:
 * see the exit statuses) knows when the director can be stopped.
 */
import { normalizeAddress } from '../bgp/address.js';
import { DEFAULT_SOCKET_PATH } from '../api/server.js';
import type { DaemonSnapshot, DrainAnswer } from '../api/types.js';
import type { ServiceSnapshot } from '../coordinator/types.js';
import { createIpvsClient } from '../ipvs/client.js';
import type { KernelService, ServiceKey } from '../ipvs/types.js';
import { createSystemClock, type Clock } from '../runtime/clock.js';
import { errorMessage } from '../runtime/errors.js';
import { requestJson } from './control-client.js';
import { formatDrain } from './status.js';

/** Exit status of `pybal drain --wait` when the director is drained but its VIPs still receive packets. */
export const STILL_RECEIVING = 3;

/** Packets and new connections the kernel counted, summed over pybal's services. */
export interface Traffic {
  readonly conns: bigint;
  readonly inPkts: bigint;
  /** How many of pybal's services the kernel has (0: nothing to count). */
  readonly services: number;
}

/** Where `--wait` reads the director's traffic; the kernel's IPVS over netlink by default. */
export interface TrafficSource {
  read(services: readonly ServiceSnapshot[]): Promise<Traffic>;
  close(): void;
}

export interface DrainCommandOptions {
  /** The daemon's control socket (drain and undrain are refused on the TCP API). */
  readonly socket?: string | undefined;
  /** Drain only: seconds to watch after draining. */
  readonly waitSec?: number | undefined;
  /** Seconds between progress lines while waiting (default 5). */
  readonly stepSec?: number;
  /** How long to wait for each answer of the daemon (default 5 s). */
  readonly timeoutMs?: number;
  readonly clock?: Clock;
  readonly openTraffic?: () => Promise<TrafficSource>;
}

export interface CommandOutput {
  write(text: string): unknown;
}

const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_STEP_SEC = 5;

/** Whether a kernel service is the one a service of the daemon's snapshot programs. */
export function isKernelServiceOf(key: ServiceKey, service: Pick<ServiceSnapshot, 'protocol' | 'ip' | 'port' | 'fwmark'>): boolean {
  const family = service.ip.includes(':') ? 6 : 4;
  if (key.family !== family) return false;
  if ('fwmark' in key) return service.fwmark === key.fwmark;
  if (service.fwmark !== undefined) return false;
  return key.protocol === service.protocol && key.port === service.port && normalizeAddress(key.address) === normalizeAddress(service.ip);
}

/** Sums the counters of the kernel services that are the daemon's. */
export function sumTraffic(kernel: readonly KernelService[], services: readonly ServiceSnapshot[]): Traffic {
  let conns = 0n;
  let inPkts = 0n;
  let count = 0;
  for (const k of kernel) {
    if (!services.some((s) => isKernelServiceOf(k.key, s))) continue;
    const stats = k.stats64 ?? k.stats;
    if (stats === undefined) continue;
    conns += stats.conns;
    inPkts += stats.inPkts;
    count++;
  }
  return { conns, inPkts, services: count };
}

/** The kernel's IPVS counters over generic netlink (root, on the director itself). */
async function openKernelTraffic(clock: Clock): Promise<TrafficSource> {
  const client = await createIpvsClient({ clock, timeoutMs: DEFAULT_TIMEOUT_MS });
  return {
    read: async (services) => sumTraffic(await client.listServices(), services),
    close: () => client.close(),
  };
}

const plural = (n: number | bigint, one: string, many = `${one}s`): string => `${n} ${n === 1 || n === 1n ? one : many}`;

function established(snapshot: DaemonSnapshot | undefined): string[] {
  return (snapshot?.bgp.peers ?? []).filter((p) => p.state === 'Established').map((p) => p.peer);
}

/** What the daemon did, in a sentence or two. */
export function describeDrainAnswer(drained: boolean, answer: DrainAnswer, snapshot: DaemonSnapshot | undefined): string {
  const vips = plural(answer.announced, 'VIP');
  const peers = established(snapshot);
  const toPeers = snapshot === undefined ? '' : ` to ${plural(peers.length, 'established BGP peer')}${peers.length > 0 ? ` (${peers.join(', ')})` : ''}`;
  let text: string;
  if (drained && answer.changed) {
    text = `Drained: ${vips} now announced with GRACEFUL_SHUTDOWN (65535:0) and MED ${answer.drainMed}${toPeers}; the routers will move traffic to the other directors.\n`;
  } else if (drained) {
    text = `Already ${formatDrain(answer).replace(/^drained: yes/, 'drained')}: ${vips} announced${toPeers}.\n`;
  } else if (answer.changed) {
    text = `Undrained: ${vips} announced with their configured MED and communities again${toPeers}; the routers may move traffic back to this director.\n`;
  } else {
    text = 'Not drained: nothing to do.\n';
  }
  if (snapshot !== undefined && !snapshot.bgp.enabled) {
    text += snapshot.bgp.starting === true
      ? 'BGP has not started yet in this daemon (it starts once every service is programmed): the routers hear the drain when it does.\n'
      : `BGP is not running in this daemon (bgp = no, a dry run, or it could not start): no router is told.\n`;
  }
  return text;
}

type Sample = { readonly ok: true; readonly traffic: Traffic } | { readonly ok: false; readonly error: string };

async function sample(source: TrafficSource | undefined, openError: string, services: readonly ServiceSnapshot[]): Promise<Sample> {
  if (source === undefined) return { ok: false, error: openError };
  try {
    const traffic = await source.read(services);
    if (traffic.services === 0) return { ok: false, error: "none of pybal's services is in the kernel's IPVS table" };
    return { ok: true, traffic };
  } catch (error) {
    return { ok: false, error: errorMessage(error) };
  }
}

/** Packets and new connections between two samples; undefined when either could not be read. */
function delta(before: Sample, after: Sample): { conns: bigint; inPkts: bigint } | undefined {
  if (!before.ok || !after.ok) return undefined;
  // A counter that went backwards (a service re-created) counts from zero.
  const diff = (a: bigint, b: bigint): bigint => (b >= a ? b - a : b);
  return { conns: diff(before.traffic.conns, after.traffic.conns), inPkts: diff(before.traffic.inPkts, after.traffic.inPkts) };
}

/** The wait cut into progress intervals, the odd one first, so that the last one (the verdict's) is a full step. */
export function waitIntervals(waitSec: number, stepSec: number): number[] {
  if (waitSec <= 0) return [];
  const full = Math.floor(waitSec / stepSec);
  const rest = Math.round((waitSec - full * stepSec) * 1000) / 1000;
  return [...(rest > 0 ? [rest] : []), ...Array.from({ length: full }, () => stepSec)];
}

/**
 * Drains (or undrains) the daemon at `options.socket` and, given `waitSec`,
 * watches. Exit status: 0 drained (or undrained) and, after a wait, no
 * packet in its last interval (or no way to count them); 1 the daemon could
 * not be asked, stopped answering, or was undrained during the wait;
 * STILL_RECEIVING (3) drained, but the VIPs still receive packets at the end.
 */
export async function runDrainCommand(drained: boolean, options: DrainCommandOptions, out: CommandOutput, err: CommandOutput = out): Promise<number> {
  const name = drained ? 'pybal drain' : 'pybal undrain';
  const address = { socket: options.socket ?? DEFAULT_SOCKET_PATH };
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let answer: DrainAnswer;
  try {
    answer = await requestJson<DrainAnswer>({ ...address, timeoutMs }, drained ? 'drain' : 'undrain', { method: 'POST' });
  } catch (error) {
    err.write(`${name}: cannot ask the daemon at ${address.socket}: ${errorMessage(error)}\n`);
    err.write('Is pybal running? (Use --socket to point at its control socket.)\n');
    return 1;
  }
  const status = (): Promise<DaemonSnapshot> => requestJson<DaemonSnapshot>({ ...address, timeoutMs }, 'status');
  const snapshot = await status().catch(() => undefined);
  out.write(describeDrainAnswer(drained, answer, snapshot));
  if (!drained || options.waitSec === undefined || options.waitSec <= 0) return 0;

  const clock = options.clock ?? createSystemClock();
  const services = snapshot?.services ?? [];
  let source: TrafficSource | undefined;
  let openError = '';
  try {
    source = await (options.openTraffic ?? (() => openKernelTraffic(clock)))();
  } catch (error) {
    openError = `cannot open IPVS over generic netlink: ${errorMessage(error)}`;
  }
  try {
    return await watch(options.waitSec, options.stepSec ?? DEFAULT_STEP_SEC);
  } finally {
    source?.close();
  }

  async function watch(waitSec: number, stepSec: number): Promise<number> {
    out.write(`Waiting ${waitSec} s for the routers to move the traffic away (the director stays drained if this is interrupted).\n`);
    let previous = await sample(source, openError, services);
    let elapsedSec = 0;
    let last: { conns: bigint; inPkts: bigint } | undefined;
    let lastSec = 0;
    let now: DaemonSnapshot | undefined;
    for (const intervalSec of waitIntervals(waitSec, stepSec)) {
      await clock.sleep(intervalSec * 1000);
      elapsedSec += intervalSec;
      try {
        now = await status();
      } catch (error) {
        err.write(`${name}: the daemon stopped answering after ${elapsedSec} s: ${errorMessage(error)}\n`);
        return 1;
      }
      if (!now.bgp.drained) {
        err.write(`${name}: the director was undrained after ${elapsedSec} s (pybal undrain, or a reload with bgp-drain = no)\n`);
        return 1;
      }
      const current = await sample(source, openError, services);
      last = delta(previous, current);
      lastSec = intervalSec;
      const failed = !current.ok ? current : !previous.ok ? previous : undefined;
      const traffic = last === undefined ? `traffic unknown (${failed?.error ?? 'no counters'})` : `${plural(last.inPkts, 'packet')}, ${plural(last.conns, 'new connection')} in the last ${intervalSec} s`;
      const peers = now.bgp.enabled ? `BGP ${established(now).length}/${now.bgp.peers.length} peer(s) established` : 'BGP not running';
      out.write(`  +${elapsedSec} s: drained; ${peers}; ${traffic}\n`);
      previous = current;
    }
    const since = formatDrain(now?.bgp ?? answer).replace(/^drained: yes/, 'drained');
    if (last === undefined) {
      const why = previous.ok ? '' : ` (${previous.error})`;
      out.write(
        `After ${waitSec} s: ${since}. The kernel's IPVS counters could not be read${why}, so whether traffic still arrives is not known: ` +
          'check the routers, or ipvsadm -Ln --rate.\n',
      );
      return 0;
    }
    if (last.inPkts === 0n) {
      out.write(
        `After ${waitSec} s: ${since}. No packet reached pybal's VIPs on this director in the last ${lastSec} s: ` +
          'the routers have moved the traffic away; the director can be stopped (systemctl stop pybal).\n',
      );
      return 0;
    }
    out.write(
      `After ${waitSec} s: ${since}. pybal's VIPs on this director still received ${plural(last.inPkts, 'packet')} ` +
        `(${plural(last.conns, 'new connection')}) in the last ${lastSec} s: the routers still send traffic here. ` +
        'Wait longer, or check that the routers prefer the other directors (a lower MED there, or GRACEFUL_SHUTDOWN honoured).\n',
    );
    return STILL_RECEIVING;
  }
}
