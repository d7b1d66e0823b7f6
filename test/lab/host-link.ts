// A network path between a lab guest and the host: one tap device on the
// host per guest, seen in the guest as eth0 (UML's tuntap transport), with a
// private /29 of its own. Through it the host's Chromium loads a page served
// by a daemon inside a lab namespace (test/e2e/status-page.lab.test.ts), and
// the guest reaches the host's browser agent (host-browser.ts).
//
//   host                       guest root namespace            lab node (director1)
//   pybal-tapN  ── tap ──  eth0 ─ bridge hostbr              ┌ hostlink (veth)
//   100.95.240.8N+1/29            100.95.240.8N+2/29 ─ hlK ──┘ 100.95.240.8N+3+K/29
//
// The guest bridges eth0 with one veth per linked lab node, so the host
// reaches a node's address directly on its one connected /29: no NAT, no
// forwarding, no route on the host but the tap's own. Nothing on the host
// changes beyond that device, its address and its /29; removing the device
// removes them all.
//
// Each guest takes the first free index N (0..31): the kernel refuses a
// second tap of the same name, and a machine-wide lock (flock) covers the
// cleaning of stale taps and the allocation. A tap records its owner (pid and
// process start time) in its alias; a tap whose owner is gone (a host
// process killed before it could remove it) is removed by the next guest to
// start.
//
// This file has a pure part (plans, addresses, command lines; unit-tested in
// host-link.test.ts), the host part (createHostLink / HostLink.remove) and
// the guest part (hostLinkFromEnv).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { exec, execOk } from './exec.js';

/** The range the links come from: 32 /29s of the shared address space (RFC 6598), one per guest. */
export const HOST_LINK_BASE = '100.95.240.0';
export const HOST_LINK_PREFIX_LENGTH = 29;
export const HOST_LINK_SLOTS = 32;
/** Host device names: pybal-tap0 .. pybal-tap31. */
export const HOST_LINK_DEVICE_PREFIX = 'pybal-tap';
/** The alias that marks a tap as ours and names its owner. */
const ALIAS_PREFIX = 'pybal-lab host link';
/** Held while stale taps are cleaned and a slot is taken, by every guest start on this machine. */
export const HOST_LINK_LOCK = '/run/lock/pybal-lab-host-link.lock';
/** The bridge in the guest's root namespace that holds eth0. */
export const GUEST_BRIDGE = 'hostbr';

/** One guest's link: everything derived from its slot. */
export type HostLinkPlan = {
  slot: number;
  /** The tap on the host. */
  device: string;
  /** The /29, as `a.b.c.d/29`. */
  subnet: string;
  prefixLength: number;
  /** The host's address on the tap. */
  host: string;
  /** The guest root namespace's address (on its bridge). */
  guest: string;
  /** Addresses for lab nodes linked to the host (lab.linkToHost), in order. */
  nodes: string[];
  /** eth0's MAC in the guest (locally administered, by slot). */
  guestMac: string;
};

/** What the guest is told (PYBAL_LAB_HOST_LINK, JSON), plus where the host's browser agent listens. */
export type GuestHostLink = HostLinkPlan & { agent?: string };

export function ipv4ToInt(address: string): number {
  const parts = address.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new Error(`not an IPv4 address: ${address}`);
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/** The first and last address of a prefix (`a.b.c.d/len`, or a bare address: a /32). */
export function prefixRange(cidr: string): { first: number; last: number } {
  const [address, lengthText] = cidr.split('/');
  const length = lengthText === undefined ? 32 : Number(lengthText);
  if (!Number.isInteger(length) || length < 0 || length > 32) throw new Error(`bad prefix length in ${cidr}`);
  const size = 2 ** (32 - length);
  const first = Math.floor(ipv4ToInt(address ?? '') / size) * size;
  return { first, last: first + size - 1 };
}

/** True when two IPv4 prefixes share an address. */
export function prefixesOverlap(a: string, b: string): boolean {
  const x = prefixRange(a);
  const y = prefixRange(b);
  return x.first <= y.last && y.first <= x.last;
}

export function hostLinkPlan(slot: number): HostLinkPlan {
  if (!Number.isInteger(slot) || slot < 0 || slot >= HOST_LINK_SLOTS) throw new Error(`host link: slot ${slot} is not in 0..${HOST_LINK_SLOTS - 1}`);
  const size = 2 ** (32 - HOST_LINK_PREFIX_LENGTH);
  const first = ipv4ToInt(HOST_LINK_BASE) + slot * size;
  return {
    slot,
    device: `${HOST_LINK_DEVICE_PREFIX}${slot}`,
    subnet: `${intToIpv4(first)}/${HOST_LINK_PREFIX_LENGTH}`,
    prefixLength: HOST_LINK_PREFIX_LENGTH,
    host: intToIpv4(first + 1),
    guest: intToIpv4(first + 2),
    // .3 up to the last address before the broadcast.
    nodes: Array.from({ length: size - 4 }, (_, i) => intToIpv4(first + 3 + i)),
    guestMac: `02:70:62:6c:${slot.toString(16).padStart(2, '0')}:02`,
  };
}

/** The UML command-line word that gives the guest its eth0 on the tap. */
export function umlNetArgument(plan: HostLinkPlan): string {
  return `eth0=tuntap,${plan.device},${plan.guestMac}`;
}

/** The slot of one of our device names, or undefined. */
export function slotOfDevice(name: string): number | undefined {
  const m = new RegExp(`^${HOST_LINK_DEVICE_PREFIX}(\\d+)$`).exec(name);
  const slot = m ? Number(m[1]) : NaN;
  return Number.isInteger(slot) && slot < HOST_LINK_SLOTS ? slot : undefined;
}

export type Owner = { pid: number; start: string };

export function ownerAlias(owner: Owner): string {
  return `${ALIAS_PREFIX} pid=${owner.pid} start=${owner.start}`;
}

export function parseOwnerAlias(alias: string | undefined): Owner | undefined {
  const m = /^pybal-lab host link pid=(\d+) start=(\d+)$/.exec(alias ?? '');
  return m ? { pid: Number(m[1]), start: m[2] ?? '' } : undefined;
}

/** A link as `ip -j link` lists it. */
export type LinkInfo = { ifname: string; ifalias?: string };

/**
 * Which of our taps are stale: their alias names an owner that is no longer
 * running (`alive` says whether one is). Taps without our alias are left
 * alone (they are not ours, or their owner is still setting them up).
 */
export function staleDevices(links: readonly LinkInfo[], alive: (owner: Owner) => boolean): string[] {
  return links
    .filter((l) => slotOfDevice(l.ifname) !== undefined)
    .filter((l) => {
      const owner = parseOwnerAlias(l.ifalias);
      return owner !== undefined && !alive(owner);
    })
    .map((l) => l.ifname);
}

/**
 * The first slot whose device name is unused and whose /29 overlaps none of
 * the host's addresses and routes (`prefixes`, IPv4, ours left out), or
 * undefined when every slot is taken.
 */
export function freeSlot(links: readonly LinkInfo[], prefixes: readonly string[]): number | undefined {
  const taken = new Set(links.map((l) => l.ifname));
  for (let slot = 0; slot < HOST_LINK_SLOTS; slot++) {
    const plan = hostLinkPlan(slot);
    if (taken.has(plan.device)) continue;
    if (prefixes.some((p) => prefixesOverlap(p, plan.subnet))) continue;
    return slot;
  }
  return undefined;
}

/** The host's IPv4 prefixes in use (routes of every table and addresses), not counting our taps'; `default` left out. */
export function hostPrefixes(routes: ReadonlyArray<{ dst?: string; dev?: string }>, addresses: ReadonlyArray<{ ifname?: string; addr_info?: ReadonlyArray<{ family?: string; local?: string; prefixlen?: number }> }>): string[] {
  const ours = (dev: string | undefined): boolean => dev !== undefined && slotOfDevice(dev) !== undefined;
  const out: string[] = [];
  for (const r of routes) {
    if (r.dst === undefined || r.dst === 'default' || ours(r.dev)) continue;
    if (/^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(r.dst)) out.push(r.dst);
  }
  for (const link of addresses) {
    if (ours(link.ifname)) continue;
    for (const a of link.addr_info ?? []) if (a.family === 'inet' && a.local !== undefined) out.push(`${a.local}/${a.prefixlen ?? 32}`);
  }
  return out;
}

/** The commands that set a planned tap up on the host, in order. */
export function hostSetupCommands(plan: HostLinkPlan, owner: Owner): string[][] {
  return [
    ['ip', 'tuntap', 'add', 'dev', plan.device, 'mode', 'tap'],
    ['ip', 'link', 'set', 'dev', plan.device, 'alias', ownerAlias(owner)],
    ['ip', 'addr', 'add', `${plan.host}/${plan.prefixLength}`, 'dev', plan.device],
    ['ip', 'link', 'set', 'dev', plan.device, 'up'],
  ];
}

/** The guest root namespace's side (sh, run by guest-init.sh after the modules load). */
export function guestSetupScript(plan: HostLinkPlan): string {
  return [
    `ip link add ${GUEST_BRIDGE} type bridge`,
    `ip link set eth0 master ${GUEST_BRIDGE}`,
    `echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6`,
    `echo 1 > /proc/sys/net/ipv6/conf/${GUEST_BRIDGE}/disable_ipv6`,
    `ip addr add ${plan.guest}/${plan.prefixLength} dev ${GUEST_BRIDGE}`,
    `ip link set eth0 up`,
    `ip link set ${GUEST_BRIDGE} up`,
  ].join(' && ');
}

// ---- host side ----

/**
 * A running process's start time from its /proc/PID/stat (field 22), or
 * undefined when it is gone, a zombie included (a process killed a moment ago
 * may not be reaped yet).
 */
export function startTimeFromStat(stat: string): string | undefined {
  // The name (field 2) may hold spaces and parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19];
}

function processStart(pid: number): string | undefined {
  try {
    return startTimeFromStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

function ownerAlive(owner: Owner): boolean {
  return processStart(owner.pid) === owner.start;
}

/** Runs `fn` holding the machine-wide lock (flock(1) holds it for us and lets go when we do, or die). */
async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  if (!existsSync(HOST_LINK_LOCK)) writeFileSync(HOST_LINK_LOCK, '', { flag: 'a' });
  const holder = spawn('flock', ['-x', '-w', '60', HOST_LINK_LOCK, '-c', 'echo locked; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((done, fail) => {
      let out = '';
      let err = '';
      holder.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('locked')) done();
      });
      holder.stderr.on('data', (d: Buffer) => (err += d.toString()));
      holder.once('error', fail);
      holder.once('exit', (code) => fail(new Error(`flock ${HOST_LINK_LOCK} exited ${code}: ${err.trim()}`)));
    });
    return await fn();
  } finally {
    holder.stdin.end();
  }
}

async function listLinks(): Promise<LinkInfo[]> {
  return JSON.parse((await execOk(['ip', '-j', 'link', 'show'])).stdout) as LinkInfo[];
}

export class HostLink {
  readonly plan: HostLinkPlan;
  #removed: Promise<void> | undefined;
  constructor(plan: HostLinkPlan) {
    this.plan = plan;
  }

  /** Deletes the tap (its address and its /29 route go with it); safe to call twice. */
  remove(): Promise<void> {
    this.#removed ??= exec(['ip', 'link', 'del', 'dev', this.plan.device]).then(() => undefined);
    return this.#removed;
  }

  /** The same, synchronously (for the process's 'exit', when a run is cut short). */
  removeSync(): void {
    if (this.#removed !== undefined) return;
    this.#removed = Promise.resolve();
    try {
      execFileSync('ip', ['link', 'del', 'dev', this.plan.device], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
}

/**
 * Creates this process's tap: cleans stale ones, takes the first free slot,
 * sets the device up. Throws with the reason when it cannot (not root, no
 * /dev/net/tun, every slot taken).
 */
export async function createHostLink(): Promise<HostLink> {
  if (!existsSync('/dev/net/tun')) throw new Error('host link: /dev/net/tun is missing (no tun/tap support on this host)');
  const start = processStart(process.pid);
  if (start === undefined) throw new Error('host link: cannot read /proc/self/stat');
  const owner = { pid: process.pid, start };
  return withLock(async () => {
    const stale = staleDevices(await listLinks(), ownerAlive);
    for (const device of stale) await exec(['ip', 'link', 'del', 'dev', device]);
    const links = await listLinks();
    const routes = JSON.parse((await execOk(['ip', '-j', '-4', 'route', 'show', 'table', 'all'])).stdout) as Array<{ dst?: string; dev?: string }>;
    const addresses = JSON.parse((await execOk(['ip', '-j', '-4', 'addr', 'show'])).stdout) as Parameters<typeof hostPrefixes>[1];
    const slot = freeSlot(links, hostPrefixes(routes, addresses));
    if (slot === undefined) throw new Error(`host link: all ${HOST_LINK_SLOTS} slots (${HOST_LINK_DEVICE_PREFIX}0..${HOST_LINK_SLOTS - 1} in ${HOST_LINK_BASE}/24) are taken or overlap the host's networks`);
    const plan = hostLinkPlan(slot);
    const link = new HostLink(plan);
    try {
      for (const argv of hostSetupCommands(plan, owner)) {
        await execOk(argv);
        // No IPv6 on the link: nothing but the /29 (written as soon as the device exists).
        if (argv[1] === 'tuntap') writeFileSync(`/proc/sys/net/ipv6/conf/${plan.device}/disable_ipv6`, '1');
      }
    } catch (error) {
      await link.remove();
      throw new Error(`host link: cannot set up ${plan.device}: ${error instanceof Error ? error.message : String(error)}`);
    }
    return link;
  });
}

// ---- guest side ----

/** The guest's link to the host, as uml.ts described it; throws, with the host's reason, when there is none. */
export function hostLinkFromEnv(env: NodeJS.ProcessEnv = process.env): GuestHostLink {
  const json = env.PYBAL_LAB_HOST_LINK;
  if (json !== undefined && json.startsWith('{')) return JSON.parse(json) as GuestHostLink;
  const why = env.PYBAL_LAB_HOST_LINK_ERROR;
  throw new Error(
    why !== undefined && why !== ''
      ? `this lab guest has no network link to the host: ${why}`
      : 'this lab guest has no network link to the host (run lab tests with `bash test/lab/run.sh` or `npm test`, which give the guest one; PYBAL_LAB_HOST_LINK=0 turns it off)',
  );
}
