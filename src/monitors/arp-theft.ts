/**
 * Who answers ARP for a VIP on the segment: the watcher behind the direct
 * routing data-path check. In LVS-DR every real server holds the VIP on `lo`
 * and must not answer ARP for it (`arp_ignore=1`, `arp_announce=2`); one that
 * does steals the VIP's traffic from the director, and no ordinary health
 * check can see it.
 *
 * Every interval, one round: /proc/net/arp is read once (the neighbour entry
 * the kernel made while pybal talked to a server gives that server's MAC and
 * device); the watched (VIP, server) pairs are grouped by (device, VIP); each
 * group runs one iputils `arping` (a few at a time), and a server's verdict
 * is whether its MAC was among those that answered.
 *
 * arping is run as `arping -b -w <sec> -I <device> [-s <source>] <vip>`:
 * - `-b` keeps broadcasting: after a first reply arping would otherwise
 *   unicast its next probes to that MAC, and a second thief would go unheard.
 * - `-w` without `-c`: with both, iputils arping (20221126) exits as soon as
 *   it has received `-c` replies, so two answerers could hide a third; with
 *   `-w` alone it probes once a second and listens until the deadline.
 * - `-s`: a director usually holds the VIP itself, and arping would then take
 *   the VIP as its source address; a real server holding the VIP drops a
 *   request whose sender is one of its own addresses (a martian source), so
 *   a thief would stay silent. The source is the director's own address on
 *   that device (the one whose subnet holds the server; never a watched VIP).
 * Its exit status says 0 (replies), 1 (none) or 2 (error: no such device,
 * source not local); the replies are read from its output either way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import type { Clock, Timer } from '../runtime/clock.js';
import { LogLimiter } from '../runtime/log-limiter.js';
import type { LineLogger } from '../runtime/logger.js';
import { parseIpv4Octets } from '../runtime/ip.js';
import { createRunLimiter } from './run-limiter.js';

export interface ArpAnswer {
  readonly answered: boolean;
  readonly mac: string;
  readonly device: string;
}

export interface ArpTheftWatch {
  /** Starts (or joins, refcounted) watching whether serverIp's MAC answers ARP for vip (IPv4 only). Returns the function that ends this interest. */
  watch(vip: string, serverIp: string): () => void;
  /** The latest round's verdict for this server: undefined while unknown (no round finished yet, or the server's MAC is not in the neighbour table yet); else whether its MAC answered ARP for the VIP, with its MAC and the device. */
  answers(vip: string, serverIp: string): ArpAnswer | undefined;
  /** Ends every probe (kills arping children, clears timers); resolves when nothing is left. */
  stop(): Promise<void>;
}

export interface ArpTheftDeps {
  readonly clock: Clock;
  readonly logger: LineLogger;
  /** Time from the start of one round to the start of the next (a round that runs longer is followed at once). */
  readonly intervalMs: number;
  /** for tests */
  readonly arpingPath?: string;
  readonly procNetArpPath?: string;
  /** How long one arping probes and listens, in whole seconds (default 2: probes at 0, 1 and 2 s). */
  readonly waitSec?: number;
  /** How many arping processes run at once (default 16). */
  readonly maxConcurrent?: number;
  /** The director's addresses by device (default os.networkInterfaces), read once a round. */
  readonly interfaceAddresses?: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
}

export const ARPING_MISSING = 'arping not found: install iputils-arping; the data-path check cannot see ARP theft';

/**
 * The MACs that answered, from arping's output, lower-case and de-duplicated,
 * in order of first reply. arping prints one line per answer:
 * `Unicast reply from 203.0.113.7 [26:4B:92:94:CF:40]  0.562ms` (a request
 * from the target, or a broadcast, shows the same way). Pure.
 */
export function parseArpingReplies(stdout: string): string[] {
  const macs = new Set<string>();
  const line = /^(?:Unicast|Broadcast) (?:reply|request) from \S+ \[([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})\]/gm;
  for (let m = line.exec(stdout); m; m = line.exec(stdout)) macs.add(m[1]!.toLowerCase());
  return [...macs];
}

/** ATF_COM: the entry has a link-layer address. */
const ATF_COM = 0x2;
const NO_MAC = '00:00:00:00:00:00';

/**
 * /proc/net/arp as IP -> { mac, device }, complete entries only (incomplete
 * and failed ones carry flags 0x0 and an all-zero address). An address that
 * has entries on two devices keeps the first. Pure.
 */
export function parseProcNetArp(text: string): Map<string, { mac: string; device: string }> {
  const out = new Map<string, { mac: string; device: string }>();
  // IP address, HW type, Flags, HW address, Mask, Device; one regex over the whole text
  // (10,000 entries in about 4 ms on the host, half the time of splitting each line).
  const entry = /^(\S+) +\S+ +(\S+) +(\S+) +\S+ +(\S+)$/gm;
  entry.lastIndex = text.indexOf('\n') + 1; // past the header
  if (entry.lastIndex === 0) return out;
  for (let m = entry.exec(text); m; m = entry.exec(text)) {
    const ip = m[1]!;
    const mac = m[3]!;
    if ((Number.parseInt(m[2]!, 16) & ATF_COM) === 0 || mac === NO_MAC || out.has(ip)) continue;
    out.set(ip, { mac: mac.toLowerCase(), device: m[4]! });
  }
  return out;
}

function ipv4ToUint(text: string): number | undefined {
  const o = parseIpv4Octets(text);
  return o ? ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0 : undefined;
}

/**
 * The source address for an ARP probe out of `device` (see the top of this
 * file): the director's IPv4 address on that device whose subnet holds the
 * server, else any that is not a /32; never one of `vips`. Undefined lets
 * arping choose. Pure.
 */
export function pickArpSource(addresses: readonly NetworkInterfaceInfo[] | undefined, serverIp: string, vips: ReadonlySet<string>): string | undefined {
  const server = ipv4ToUint(serverIp);
  let fallback: string | undefined;
  for (const a of addresses ?? []) {
    if (a.family !== 'IPv4' || vips.has(a.address)) continue;
    const mask = ipv4ToUint(a.netmask);
    const own = ipv4ToUint(a.address);
    if (mask === undefined || own === undefined || mask === 0xffffffff) continue;
    if (server !== undefined && ((server & mask) >>> 0) === ((own & mask) >>> 0)) return a.address;
    fallback ??= a.address;
  }
  return fallback;
}

interface Pair {
  readonly key: string;
  readonly vip: string;
  readonly serverIp: string;
  refs: number;
}

interface Group {
  readonly device: string;
  readonly vip: string;
  readonly members: { readonly pair: Pair; readonly mac: string }[];
}

/** Output kept from one arping (its replies are a few lines; anything past this is not arping). */
const MAX_OUTPUT_CHARS = 64 * 1024;
/** arping gets this long past its own deadline before it is killed. */
const KILL_GRACE_MS = 3000;
const WARN_EVERY_MS = 60_000;

const pairKey = (vip: string, serverIp: string): string => `${vip} ${serverIp}`;

export function createArpTheftWatch(deps: ArpTheftDeps): ArpTheftWatch {
  const { clock, logger, intervalMs } = deps;
  const arpingPath = deps.arpingPath ?? 'arping';
  const procNetArpPath = deps.procNetArpPath ?? '/proc/net/arp';
  const waitSec = Math.max(1, Math.round(deps.waitSec ?? 2));
  const interfaceAddresses = deps.interfaceAddresses ?? networkInterfaces;
  const limiter = createRunLimiter(deps.maxConcurrent ?? 16);
  const warnings = new LogLimiter(WARN_EVERY_MS);
  const pairs = new Map<string, Pair>();
  const verdicts = new Map<string, ArpAnswer>();
  /** Every arping not yet reaped, so that stop() can wait for all of them. */
  const live = new Map<ChildProcess, Promise<void>>();
  let timer: Timer | undefined;
  let round: { readonly abort: AbortController; readonly done: Promise<void> } | undefined;
  let stopped = false;
  let missingLogged = false;

  const warn = (kind: string, message: string): void => {
    const admission = warnings.admit(kind, clock.now());
    if (admission.log) logger.warn(admission.suppressed > 0 ? `${message} (${admission.suppressed} more since the last such line)` : message);
  };

  const killAll = (): void => {
    for (const child of live.keys()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };

  /** One arping for one (device, VIP): the MACs that answered, undefined when arping could not tell, 'missing' when there is no arping. */
  const arping = (group: Group, source: string | undefined, signal: AbortSignal): Promise<ReadonlySet<string> | undefined | 'missing'> =>
    new Promise((resolve) => {
      const args = ['-b', '-w', String(waitSec), '-I', group.device, ...(source === undefined ? [] : ['-s', source]), group.vip];
      const child = spawn(arpingPath, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
      });
      let stdout = '';
      let stderr = '';
      let killedByUs: string | undefined;
      let missing = false;
      const exited = new Promise<void>((done) => child.once('close', () => done()));
      live.set(child, exited);
      const kill = (why: string): void => {
        killedByUs ??= why;
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      };
      const deadline = clock.setTimeout(() => kill(`still running after ${waitSec * 1000 + KILL_GRACE_MS} ms`), waitSec * 1000 + KILL_GRACE_MS);
      const onAbort = (): void => kill('stopped');
      signal.addEventListener('abort', onAbort, { once: true });
      child.stdout.setEncoding('latin1');
      child.stderr.setEncoding('latin1');
      child.stdout.on('data', (chunk: string) => {
        if (stdout.length < MAX_OUTPUT_CHARS) stdout += chunk;
      });
      child.stderr.on('data', (chunk: string) => {
        if (stderr.length < MAX_OUTPUT_CHARS) stderr += chunk;
      });
      child.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') missing = true;
        else warn(`spawn ${error.code ?? ''}`, `could not run ${arpingPath}: ${error.message}`);
      });
      child.once('close', (code, sig) => {
        live.delete(child);
        deadline.cancel();
        signal.removeEventListener('abort', onAbort);
        if (missing) {
          if (!missingLogged) logger.error(ARPING_MISSING);
          missingLogged = true;
          resolve('missing');
          return;
        }
        missingLogged = false;
        if (killedByUs !== undefined || (code !== 0 && code !== 1)) {
          if (killedByUs !== 'stopped') {
            const said = (stderr.trim() || stdout.trim()).split('\n').slice(-1)[0] ?? '';
            const how = killedByUs ?? (code === null ? `killed by ${sig ?? 'a signal'}` : `exit ${code}`);
            warn(`arping ${group.device}`, `arping for ${group.vip} on ${group.device} failed (${how})${said ? `: ${said}` : ''}; its servers' ARP verdicts are unknown`);
          }
          resolve(undefined);
          return;
        }
        resolve(new Set(parseArpingReplies(stdout)));
      });
    });

  /** Runs one group's arping under the concurrency cap; undefined when stopped before its turn, when arping failed or is missing. */
  const probe = async (group: Group, source: string | undefined, signal: AbortSignal, found: { missing: boolean }): Promise<ReadonlySet<string> | undefined> => {
    let release: () => void;
    try {
      release = await limiter.acquire(signal);
    } catch {
      return undefined;
    }
    try {
      // Once arping is known missing, the rest of the round need not try (the next round does).
      if (signal.aborted || found.missing) return undefined;
      const replies = await arping(group, source, signal);
      if (replies !== 'missing') return replies;
      found.missing = true;
      return undefined;
    } finally {
      release();
    }
  };

  const record = (group: Group, replies: ReadonlySet<string> | undefined): void => {
    for (const { pair, mac } of group.members) {
      if (pairs.get(pair.key) !== pair) continue; // unwatched meanwhile
      if (replies === undefined) verdicts.delete(pair.key);
      else verdicts.set(pair.key, { answered: replies.has(mac), mac, device: group.device });
    }
  };

  const runRound = async (signal: AbortSignal): Promise<void> => {
    let text: string;
    try {
      text = await readFile(procNetArpPath, 'latin1');
    } catch (error) {
      warn('proc', `could not read ${procNetArpPath}: ${(error as Error).message}; ARP verdicts are unknown`);
      verdicts.clear();
      return;
    }
    if (signal.aborted) return;
    const neighbours = parseProcNetArp(text);
    const groups = new Map<string, Group>();
    const vips = new Set<string>();
    for (const pair of pairs.values()) {
      vips.add(pair.vip);
      const entry = neighbours.get(pair.serverIp);
      if (!entry) {
        verdicts.delete(pair.key);
        continue;
      }
      const key = `${entry.device} ${pair.vip}`;
      let group = groups.get(key);
      if (!group) {
        group = { device: entry.device, vip: pair.vip, members: [] };
        groups.set(key, group);
      }
      group.members.push({ pair, mac: entry.mac });
    }
    if (groups.size === 0) return;
    let addresses: NodeJS.Dict<NetworkInterfaceInfo[]> = {};
    try {
      addresses = interfaceAddresses();
    } catch (error) {
      warn('interfaces', `could not list the director's addresses: ${(error as Error).message}; arping chooses its source`);
    }
    const found = { missing: false };
    await Promise.all(
      [...groups.values()].map(async (group) => {
        const source = pickArpSource(addresses[group.device], group.members[0]!.pair.serverIp, vips);
        record(group, await probe(group, source, signal, found));
      }),
    );
  };

  const schedule = (delayMs: number): void => {
    if (stopped || timer || round || pairs.size === 0) return;
    timer = clock.setTimeout(() => {
      timer = undefined;
      const startedMs = clock.now();
      const abort = new AbortController();
      const done = runRound(abort.signal)
        .catch((error: unknown) => logger.error(`ARP theft round failed: ${(error as Error).message}`))
        .finally(() => {
          round = undefined;
          schedule(Math.max(0, intervalMs - (clock.now() - startedMs)));
        });
      round = { abort, done };
    }, delayMs);
  };

  /** Nothing is watched any more, or stop(): no timer, no round, no arping. */
  const halt = (): Promise<void> => {
    timer?.cancel();
    timer = undefined;
    round?.abort.abort();
    killAll();
    return Promise.all([round?.done, ...live.values()]).then(() => undefined);
  };

  return {
    watch(vip, serverIp) {
      // ARP is IPv4's: an IPv6 pair is never probed and its verdict stays unknown.
      if (!parseIpv4Octets(vip) || !parseIpv4Octets(serverIp)) return () => undefined;
      const key = pairKey(vip, serverIp);
      let pair = pairs.get(key);
      if (!pair) {
        pair = { key, vip, serverIp, refs: 0 };
        pairs.set(key, pair);
      }
      const p = pair;
      p.refs += 1;
      // The first verdict as soon as possible: watches made in the same turn share the round.
      schedule(0);
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        p.refs -= 1;
        if (p.refs > 0 || pairs.get(key) !== p) return;
        pairs.delete(key);
        verdicts.delete(key);
        if (pairs.size === 0) void halt();
      };
    },
    answers(vip, serverIp) {
      return verdicts.get(pairKey(vip, serverIp));
    },
    async stop() {
      stopped = true;
      pairs.clear();
      verdicts.clear();
      await halt();
    },
  };
}
