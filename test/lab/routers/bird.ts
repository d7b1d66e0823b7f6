// BIRD 2 as the lab's router. Config writing and the parsing of birdc's text
// output (BIRD 2.0 has no JSON) are pure; BirdDaemon runs bird in the router
// namespace with its control socket on the guest's tmpfs.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LabProcess, exec, execOk, waitFor } from '../exec.js';
import { BgpDaemon, PEER_STATES, familyOfPrefix, type BgpOrigin, type BgpPeer, type BgpRoute } from './bgp-daemon.js';

export type BirdNeighbor = {
  /** Protocol name in BIRD (letters, digits, underscores). */
  name: string;
  address: string;
  asn: number;
  /** Our address for this session (also what BIRD binds to). */
  localAddress: string;
};

export type BirdConfig = {
  asn: number;
  routerId: string;
  neighbors: readonly BirdNeighbor[];
  /** File BIRD logs to. */
  logPath: string;
  /** Wait for the speakers to connect. Default true. */
  passive?: boolean;
  port?: number;
  holdTimeSec?: number;
  /** Install received BGP routes into the namespace's kernel table (so traffic follows BGP). */
  exportToKernel?: boolean;
  /** `graceful restart on` in every bgp protocol (BIRD then keeps a restarting neighbor's routes, RFC 4724). */
  gracefulRestart?: boolean;
  /** Run BFD with every neighbor (`bfd on`), at this pace once up. */
  bfd?: { intervalMs: number; multiplier: number };
  /**
   * The body of a filter for the routes imported from every neighbor (both
   * channels), instead of `import all`; it must end in accept or reject.
   */
  importFilter?: string;
};

export function formatBirdConfig(config: BirdConfig): string {
  const out = [
    '# Written by the pybal lab (test/lab/routers/bird.ts).',
    `log ${JSON.stringify(config.logPath)} all;`,
    `router id ${config.routerId};`,
    '',
    'protocol device { }',
  ];
  if (config.exportToKernel === true) {
    out.push(
      'protocol kernel kernel4 { ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }',
      'protocol kernel kernel6 { ipv6 { import none; export where source = RTS_BGP; }; merge paths on; }',
    );
  }
  if (config.bfd !== undefined) {
    const { intervalMs, multiplier } = config.bfd;
    out.push('', 'protocol bfd {', `  interface "*" { interval ${intervalMs} ms; idle tx interval 1000 ms; multiplier ${multiplier}; };`, '}');
  }
  if (config.importFilter !== undefined) out.push('', 'filter lab_import {', ...config.importFilter.split('\n').map((l) => `  ${l}`), '}');
  const importRule = config.importFilter !== undefined ? 'import filter lab_import;' : 'import all;';
  for (const n of config.neighbors) {
    out.push(
      '',
      `protocol bgp ${n.name} {`,
      `  local ${n.localAddress} port ${config.port ?? 179} as ${config.asn};`,
      `  neighbor ${n.address} as ${n.asn};`,
      `  passive ${config.passive === false ? 'off' : 'on'};`,
      '  strict bind on;',
      `  hold time ${config.holdTimeSec ?? 90};`,
      ...(config.bfd !== undefined ? ['  bfd on;'] : []),
      ...(config.gracefulRestart === true ? ['  graceful restart on;'] : []),
      '  connect retry time 5;',
      // The default (60, 300) locks a peer out for a minute after any error.
      '  error wait time 0, 0;',
      `  ipv4 { ${importRule} export none; };`,
      // Exporting nothing, but BIRD wants an IPv6 next hop for an IPv6 channel over an IPv4 session.
      `  ipv6 { ${importRule} export none;${n.address.includes(':') ? '' : ' next hop address ::1;'} };`,
      '}',
    );
  }
  return out.join('\n') + '\n';
}

export type BirdBfdSession = { address: string; state: string };

/** Parses `birdc show bfd sessions`: a line per session, address, interface, state, ... */
export function parseBirdBfdSessions(text: string): BirdBfdSession[] {
  const out: BirdBfdSession[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\d{4}[- ]/, '');
    const m = /^\s*([0-9a-fA-F.:]+)\s+\S+\s+(Up|Down|Init|AdminDown)\b/.exec(line);
    if (m && m[1]!.length > 1) out.push({ address: m[1]!, state: m[2]! });
  }
  return out;
}

const ORIGIN_NAMES: Record<string, BgpOrigin> = { IGP: 'igp', EGP: 'egp', Incomplete: 'incomplete' };

/**
 * Parses `birdc show route all`. A route starts with "PREFIX  TYPE [PROTO TIME from ADDR] * (PREF) [ASxi]";
 * further paths for the same prefix start with blanks instead of the prefix; attribute lines
 * ("BGP.as_path: 64600") follow, indented.
 */
export function parseBirdRoutes(text: string, peerOfProtocol: Readonly<Record<string, string>> = {}): BgpRoute[] {
  const routes: BgpRoute[] = [];
  let prefix: string | undefined;
  let current: BgpRoute | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\d{4}[- ]/, ''); // birdc reply codes, if any
    if (/^Table \S+:/.test(line) || line.trim() === '') continue;
    const head = /^(\S+)?\s+(?:unicast|unreachable|blackhole|prohibit)\s+\[(\S+)\s+[^\]]*?(?:\s+from\s+(\S+))?\]\s*(\*)?/.exec(line);
    if (head && (head[1] !== undefined || prefix !== undefined) && !/^\s+(BGP\.|Type:|via|dev)/.test(line)) {
      prefix = head[1] ?? prefix!;
      current = {
        prefix,
        family: familyOfPrefix(prefix),
        nextHop: undefined,
        asPath: [],
        med: undefined,
        localPref: undefined,
        communities: [],
        origin: undefined,
        // BIRD prints "from" only when the neighbor is not also the next hop.
        from: head[3] ?? peerOfProtocol[head[2]!],
        best: head[4] === '*',
      };
      routes.push(current);
      continue;
    }
    const attr = /^\s+BGP\.(\w+):\s*(.*)$/.exec(line);
    if (!attr || !current) continue;
    const [, key, value = ''] = attr;
    if (key === 'origin') current.origin = ORIGIN_NAMES[value.trim()];
    else if (key === 'as_path') current.asPath = (value.match(/\d+/g) ?? []).map(Number);
    else if (key === 'next_hop') current.nextHop = value.trim().split(/\s+/)[0];
    else if (key === 'med') current.med = Number(value);
    else if (key === 'local_pref') current.localPref = Number(value);
    else if (key === 'community') current.communities = [...value.matchAll(/\((\d+),\s*(\d+)\)/g)].map((m) => `${m[1]}:${m[2]}`);
  }
  return routes;
}

/** Parses `birdc show protocols all`: the BGP protocols with neighbor address, AS and state. */
export function parseBirdProtocols(text: string): Array<BgpPeer & { name: string }> {
  const peers: Array<BgpPeer & { name: string }> = [];
  let current: (BgpPeer & { name: string }) | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\d{4}[- ]/, '');
    const head = /^(\S+)\s+BGP\s+/.exec(line);
    if (head) {
      current = { name: head[1]!, address: '?', asn: undefined, state: 'idle' };
      peers.push(current);
      continue;
    }
    if (/^\S/.test(line)) current = undefined;
    if (!current) continue;
    const field = /^\s+(BGP state|Neighbor address|Neighbor AS):\s+(\S+)/.exec(line);
    if (!field) continue;
    if (field[1] === 'BGP state') current.state = PEER_STATES.find((s) => s === field[2]!.toLowerCase()) ?? (field[2] === 'Passive' ? 'active' : 'idle');
    else if (field[1] === 'Neighbor address') current.address = field[2]!;
    else current.asn = Number(field[2]);
  }
  return peers;
}

export type BirdDaemonOptions = BirdConfig & {
  namespace: string;
  /** Scratch directory for the config (the log path is in the config). */
  dir: string;
  /** Directory on tmpfs for the control socket and pid file (hostfs has no sockets). */
  runDir: string;
};

export class BirdDaemon extends BgpDaemon {
  readonly kind = 'bird' as const;
  readonly asn: number;
  readonly socketPath: string;
  readonly #options: BirdDaemonOptions;
  readonly #process: LabProcess;

  private constructor(options: BirdDaemonOptions, proc: LabProcess) {
    super();
    this.asn = options.asn;
    this.socketPath = join(options.runDir, 'bird.ctl');
    this.#options = options;
    this.#process = proc;
  }

  static async start(options: BirdDaemonOptions): Promise<BirdDaemon> {
    const configPath = join(options.dir, 'bird.conf');
    writeFileSync(configPath, formatBirdConfig(options));
    await execOk(['bird', '-p', '-c', configPath]);
    const proc = new LabProcess(
      `bird(${options.namespace})`,
      ['ip', 'netns', 'exec', options.namespace, 'bird', '-f', '-c', configPath, '-s', join(options.runDir, 'bird.ctl'), '-P', join(options.runDir, 'bird.pid')],
      { logPath: join(options.dir, 'bird.stdout') },
    );
    const daemon = new BirdDaemon(options, proc);
    try {
      await waitFor(
        async () => {
          if (!proc.running) throw new Error(`bird exited:\n${proc.output()}`);
          return (await daemon.cli(['show', 'status'])).code === 0 ? true : undefined;
        },
        { timeoutMs: 15_000, what: 'bird control socket' },
      );
    } catch (error) {
      await proc.stop();
      throw error;
    }
    return daemon;
  }

  /** Runs birdc against this daemon (the Unix socket needs no namespace). */
  cli(args: readonly string[]): ReturnType<typeof exec> {
    return exec(['birdc', '-s', this.socketPath, ...args]);
  }

  async #cliText(args: readonly string[]): Promise<string> {
    const result = await this.cli(args);
    // birdc exits 1 for "Network not found" and the like; a dead socket shows in stderr/stdout.
    if (result.code !== 0 && !/not found/i.test(result.stdout)) throw new Error(`birdc ${args.join(' ')} failed (exit ${result.code}): ${result.stderr || result.stdout}`);
    return result.stdout;
  }

  async routes(): Promise<BgpRoute[]> {
    const peers = Object.fromEntries(this.#options.neighbors.map((n) => [n.name, n.address]));
    return parseBirdRoutes(await this.#cliText(['show', 'route', 'all']), peers);
  }

  async bfdSessions(): Promise<BirdBfdSession[]> {
    return parseBirdBfdSessions(await this.#cliText(['show', 'bfd', 'sessions']));
  }

  async peers(): Promise<BgpPeer[]> {
    return parseBirdProtocols(await this.#cliText(['show', 'protocols', 'all']));
  }

  /**
   * Rewrites the configuration with `change` and has BIRD load it (`birdc
   * configure`): a changed import filter makes BIRD ask its neighbors for
   * their routes again (ROUTE-REFRESH) and run them through it, the sessions
   * kept.
   */
  async configure(change: Partial<BirdConfig>): Promise<void> {
    const configPath = join(this.#options.dir, 'bird.conf');
    writeFileSync(configPath, formatBirdConfig({ ...this.#options, ...change }));
    const result = await this.cli(['configure', `"${configPath}"`]);
    if (result.code !== 0 || !/Reconfigured|Reconfiguration in progress/.test(result.stdout)) {
      throw new Error(`birdc configure failed (exit ${result.code}): ${result.stdout}${result.stderr}`);
    }
  }

  /** Resets one session (also clears BIRD's error back-off). */
  async restart(protocol: string): Promise<void> {
    await execOk(['birdc', '-s', this.socketPath, 'restart', protocol]);
  }

  /** BIRD's log file and its stdout so far. */
  log(): string {
    const file = existsSync(this.#options.logPath) ? readFileSync(this.#options.logPath, 'utf8') : '';
    return file + this.#process.output();
  }

  /** SIGTERM: peers receive NOTIFICATION Cease (6/2). */
  async stop(): Promise<void> {
    await this.#process.stop();
  }

  get namespace(): string {
    return this.#options.namespace;
  }
}
