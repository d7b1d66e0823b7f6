// GoBGP in a lab namespace: as the router, or as a stand-in speaker that
// announces routes (`gobgp global rib add`). Config writing and JSON parsing
// are pure; GobgpDaemon runs gobgpd and its CLI inside the namespace (the
// API listens on the namespace's own loopback).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LabProcess, exec, execOk, waitFor } from '../exec.js';
import type { Family } from '../topology.js';
import { BgpDaemon, PEER_STATES, familyOfPrefix, formatCommunity, type BgpOrigin, type BgpPeer, type BgpRoute } from './bgp-daemon.js';

export type GobgpNeighbor = {
  address: string;
  asn: number;
  /** Wait for the peer to connect (router side). Default: false (dial out). */
  passive?: boolean;
  /** Source address for the session. */
  localAddress?: string;
  /** Peer's port when dialling out. Default 179. */
  remotePort?: number;
};

export type GobgpConfig = {
  asn: number;
  routerId: string;
  /** Addresses to listen on for BGP; empty = do not listen (port -1). */
  listenAddresses: readonly string[];
  listenPort?: number;
  neighbors: readonly GobgpNeighbor[];
  holdTimeSec?: number;
  connectRetrySec?: number;
  /**
   * RFC 4724 graceful restart with every neighbor
   * (`[neighbors.graceful-restart.config] enabled = true`): as a receiving
   * (helper) speaker GoBGP keeps a restarting neighbor's routes, marked
   * stale, until the neighbor's End-of-RIB or the restart time the neighbor
   * advertised. `restartTimeSec` is the restart time GoBGP advertises for
   * itself (its `restart-time`; GoBGP's default is the hold time). No
   * `mp-graceful-restart` per family: GoBGP then lists no family of its own,
   * which is what a helper that never restarts itself needs.
   */
  gracefulRestart?: { restartTimeSec: number };
};

const q = (s: string): string => JSON.stringify(s);

export function formatGobgpConfig(config: GobgpConfig): string {
  const lines = [
    '# Written by the pybal lab (test/lab/routers/gobgp.ts).',
    '[global.config]',
    `  as = ${config.asn}`,
    `  router-id = ${q(config.routerId)}`,
  ];
  if (config.listenAddresses.length === 0) lines.push('  port = -1');
  else lines.push(`  port = ${config.listenPort ?? 179}`, `  local-address-list = [${config.listenAddresses.map(q).join(', ')}]`);
  for (const n of config.neighbors) {
    lines.push(
      '',
      '[[neighbors]]',
      '  [neighbors.config]',
      `    neighbor-address = ${q(n.address)}`,
      `    peer-as = ${n.asn}`,
      '  [neighbors.transport.config]',
      `    passive-mode = ${n.passive === true}`,
    );
    if (n.localAddress !== undefined) lines.push(`    local-address = ${q(n.localAddress)}`);
    if (n.remotePort !== undefined) lines.push(`    remote-port = ${n.remotePort}`);
    lines.push(
      '  [neighbors.timers.config]',
      `    hold-time = ${config.holdTimeSec ?? 90}`,
      `    keepalive-interval = ${Math.max(1, Math.floor((config.holdTimeSec ?? 90) / 3))}`,
      `    connect-retry = ${config.connectRetrySec ?? 1}`,
    );
    if (config.gracefulRestart !== undefined) {
      lines.push('  [neighbors.graceful-restart.config]', '    enabled = true', `    restart-time = ${config.gracefulRestart.restartTimeSec}`);
    }
    for (const family of ['ipv4-unicast', 'ipv6-unicast']) {
      lines.push('  [[neighbors.afi-safis]]', '    [neighbors.afi-safis.config]', `      afi-safi-name = ${q(family)}`);
    }
  }
  return lines.join('\n') + '\n';
}

type GobgpAttr = {
  type: number;
  value?: number;
  as_paths?: { asns?: number[] }[];
  metric?: number;
  local_pref?: number;
  communities?: number[];
  nexthop?: string;
  nlri?: unknown;
};
type GobgpPath = { nlri?: { prefix?: string }; best?: boolean; stale?: boolean; attrs?: GobgpAttr[]; 'neighbor-ip'?: string };

const ORIGINS: readonly BgpOrigin[] = ['igp', 'egp', 'incomplete'];

/** Parses `gobgp global rib -a ipvX -j` (a JSON object: prefix -> paths; `{}` when empty). */
export function parseGobgpRib(json: string): BgpRoute[] {
  const text = json.trim();
  if (text === '' || text === 'null') return [];
  const rib = JSON.parse(text) as Record<string, GobgpPath[]>;
  const routes: BgpRoute[] = [];
  for (const [prefix, paths] of Object.entries(rib)) {
    for (const path of paths) {
      const attrs = path.attrs ?? [];
      const attr = (type: number): GobgpAttr | undefined => attrs.find((a) => a.type === type);
      const originValue = attr(1)?.value;
      const neighbor = path['neighbor-ip'];
      routes.push({
        prefix,
        family: familyOfPrefix(prefix),
        // IPv4: NEXT_HOP (3); IPv6: MP_REACH_NLRI (14).
        nextHop: attr(3)?.nexthop ?? attr(14)?.nexthop,
        asPath: (attr(2)?.as_paths ?? []).flatMap((segment) => segment.asns ?? []),
        med: attr(4)?.metric,
        localPref: attr(5)?.local_pref,
        communities: (attr(8)?.communities ?? []).map(formatCommunity),
        origin: originValue === undefined ? undefined : ORIGINS[originValue],
        from: neighbor === undefined || neighbor === '<nil>' ? undefined : neighbor,
        best: path.best === true,
      });
    }
  }
  return routes;
}

/** GoBGP's best path for a prefix, with its stale mark (a graceful restart's retained route). */
export type GobgpBestPath = { prefix: string; family: Family; nextHop: string | undefined; from: string | undefined; stale: boolean };

/**
 * The best path of every prefix in `gobgp global rib -a ipvX -j`, with
 * GoBGP's `stale` flag (set on the routes it keeps for a neighbor in
 * graceful restart, cleared when the neighbor sends them again).
 */
export function parseGobgpBest(json: string): GobgpBestPath[] {
  const text = json.trim();
  if (text === '' || text === 'null') return [];
  const rib = JSON.parse(text) as Record<string, GobgpPath[]>;
  const best: GobgpBestPath[] = [];
  for (const [prefix, paths] of Object.entries(rib)) {
    const path = paths.find((p) => p.best === true);
    if (path === undefined) continue;
    const attrs = path.attrs ?? [];
    const neighbor = path['neighbor-ip'];
    best.push({
      prefix,
      family: familyOfPrefix(prefix),
      nextHop: attrs.find((a) => a.type === 3)?.nexthop ?? attrs.find((a) => a.type === 14)?.nexthop,
      from: neighbor === undefined || neighbor === '<nil>' ? undefined : neighbor,
      stale: path.stale === true,
    });
  }
  return best;
}

type GobgpNeighborJson = { conf?: { neighbor_address?: string; peer_asn?: number }; state?: { neighbor_address?: string; peer_asn?: number; session_state?: number } };

/** Parses `gobgp neighbor -j`; session_state follows GoBGP's API enum (1 idle .. 6 established). */
export function parseGobgpNeighbors(json: string): BgpPeer[] {
  const text = json.trim();
  if (text === '' || text === 'null') return [];
  return (JSON.parse(text) as GobgpNeighborJson[]).map((n) => ({
    address: n.state?.neighbor_address ?? n.conf?.neighbor_address ?? '?',
    asn: n.state?.peer_asn ?? n.conf?.peer_asn,
    state: PEER_STATES[(n.state?.session_state ?? 1) - 1] ?? 'idle',
  }));
}

export type Announcement = {
  /** Default igp (what PyBal sends). */
  origin?: BgpOrigin;
  nextHop?: string;
  med?: number;
  localPref?: number;
  /** "asn:value" each. */
  communities?: readonly string[];
  /** AS numbers prepended to the path (our own ASN is added by GoBGP on eBGP). */
  asPath?: readonly number[];
};

export type GobgpDaemonOptions = GobgpConfig & {
  /** Network namespace to run in. */
  namespace: string;
  /** Directory for the config and the log (scratch). */
  dir: string;
  /** API port on the namespace's loopback. Default 50051. */
  apiPort?: number;
};

export class GobgpDaemon extends BgpDaemon {
  readonly kind = 'gobgp' as const;
  readonly asn: number;
  readonly #options: GobgpDaemonOptions;
  readonly #process: LabProcess;

  private constructor(options: GobgpDaemonOptions, proc: LabProcess) {
    super();
    this.asn = options.asn;
    this.#options = options;
    this.#process = proc;
  }

  /** Writes the config, starts gobgpd in the namespace and waits until its API answers. */
  static async start(options: GobgpDaemonOptions): Promise<GobgpDaemon> {
    const configPath = join(options.dir, 'gobgpd.toml');
    writeFileSync(configPath, formatGobgpConfig(options));
    await execOk(['gobgpd', '-f', configPath, '-d']);
    const apiPort = options.apiPort ?? 50051;
    const proc = new LabProcess(
      `gobgpd(${options.namespace})`,
      ['ip', 'netns', 'exec', options.namespace, 'gobgpd', '-f', configPath, '--api-hosts', `127.0.0.1:${apiPort}`, '--pprof-disable', '-p', '-l', 'info'],
      { logPath: join(options.dir, 'gobgpd.log') },
    );
    const daemon = new GobgpDaemon(options, proc);
    try {
      await waitFor(
        async () => {
          if (!proc.running) throw new Error(`gobgpd exited:\n${proc.output()}`);
          return (await daemon.cli(['global'])).code === 0 ? true : undefined;
        },
        { timeoutMs: 15_000, what: 'gobgpd API' },
      );
    } catch (error) {
      await proc.stop();
      throw error;
    }
    return daemon;
  }

  /** Runs the gobgp CLI against this daemon (inside its namespace). */
  cli(args: readonly string[]): ReturnType<typeof exec> {
    return exec(this.cliArgv(args));
  }

  /** The argv of a gobgp CLI call against this daemon, for a long-running one (`monitor ...`). */
  cliArgv(args: readonly string[]): string[] {
    return ['ip', 'netns', 'exec', this.#options.namespace, 'gobgp', '-u', '127.0.0.1', '-p', String(this.#options.apiPort ?? 50051), ...args];
  }

  /** The best path of every prefix of a family, with GoBGP's stale mark. */
  async bestPaths(family: Family): Promise<GobgpBestPath[]> {
    return parseGobgpBest(await this.#cliOk(['global', 'rib', '-a', family === 4 ? 'ipv4' : 'ipv6', '-j']));
  }

  get namespace(): string {
    return this.#options.namespace;
  }

  async #cliOk(args: readonly string[]): Promise<string> {
    const result = await this.cli(args);
    if (result.code !== 0) throw new Error(`gobgp ${args.join(' ')} failed (exit ${result.code}): ${result.stderr || result.stdout}`);
    return result.stdout;
  }

  async routes(): Promise<BgpRoute[]> {
    const [v4, v6] = await Promise.all([this.#cliOk(['global', 'rib', '-a', 'ipv4', '-j']), this.#cliOk(['global', 'rib', '-a', 'ipv6', '-j'])]);
    return [...parseGobgpRib(v4), ...parseGobgpRib(v6)];
  }

  async peers(): Promise<BgpPeer[]> {
    return parseGobgpNeighbors(await this.#cliOk(['neighbor', '-j']));
  }

  /** Originates `prefix` (sent to every established peer). */
  async announce(prefix: string, attrs: Announcement = {}): Promise<void> {
    const args = ['global', 'rib', 'add', prefix, '-a', familyOfPrefix(prefix) === 4 ? 'ipv4' : 'ipv6'];
    args.push('origin', attrs.origin ?? 'igp');
    if (attrs.nextHop !== undefined) args.push('nexthop', attrs.nextHop);
    if (attrs.med !== undefined) args.push('med', String(attrs.med));
    if (attrs.localPref !== undefined) args.push('local-pref', String(attrs.localPref));
    if (attrs.communities?.length) args.push('community', attrs.communities.join(','));
    if (attrs.asPath?.length) args.push('aspath', attrs.asPath.join(','));
    await this.#cliOk(args);
  }

  async withdraw(prefix: string): Promise<void> {
    await this.#cliOk(['global', 'rib', 'del', prefix, '-a', familyOfPrefix(prefix) === 4 ? 'ipv4' : 'ipv6']);
  }

  log(): string {
    return this.#process.output();
  }

  /** SIGTERM: peers receive NOTIFICATION Cease (6/3). */
  async stop(): Promise<void> {
    await this.#process.stop();
  }
}
