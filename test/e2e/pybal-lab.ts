// Running the built pybal daemon in a lab's director: its pybal.conf and
// pool file, the process, and the ways to ask it things (the control socket
// that `pybal status` reads, the instrumentation API, its log).
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { expect } from 'vitest';
import { daemonCommand } from '../../src/cli/node-options.js';
import type { DaemonSnapshot } from '../../src/api/types.js';
import { waitFor, type LabProcess } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import type { Family, NamedAddress } from '../lab/topology.js';

export type PoolEntry = { host: string; weight?: number; enabled?: boolean };

export type E2eService = {
  name: string;
  /** Default 80. */
  port?: number;
  /** Index into lab.addr.vips. Default 0. */
  vipIndex?: number;
  /** The VIP's address family. Default 4. */
  family?: Family;
  /** Default tcp. */
  protocol?: 'tcp' | 'udp';
  /** Default rr. */
  scheduler?: string;
  /** `forward-method`: default the lab's forwarding; null leaves the key out (for `tunneling = yes`). */
  forwardMethod?: 'dr' | 'nat' | 'tunnel' | null;
  /** Lines added to the service section (monitors, thresholds...). */
  extra?: readonly string[];
};

/** Health check settings every e2e service uses: fast, so failures show within seconds. */
export const CHECK = { intervalSec: 1, timeoutSec: 1, fall: 2, rise: 1 } as const;

/** The bound the issue states for a depool: interval × fall + timeout, plus a second. */
export const DEPOOL_BOUND_MS = (CHECK.intervalSec * CHECK.fall + CHECK.timeoutSec + 1) * 1000;

/** Time the lab needs to observe a change (a probe every 100 ms, each a process in a slow guest). */
export const LAB_SLACK_MS = 1_000;

/** Time to tell a real server to fail (one request over its Unix control socket). */
export const CONTROL_SLACK_MS = 300;

export const API_PORT = 9090;

/** The ProxyFetch monitor lines of a service on `port`. */
export function proxyFetchLines(port = 80): string[] {
  return [
    "monitors = [ 'ProxyFetch' ]",
    `proxyfetch.url = [ 'http://localhost:${port}/' ]`,
    `proxyfetch.interval = ${CHECK.intervalSec}`,
    `proxyfetch.timeout = ${CHECK.timeoutSec}`,
    `proxyfetch.fall = ${CHECK.fall}`,
    `proxyfetch.rise = ${CHECK.rise}`,
  ];
}

/** One pool line in PyBal's legacy format. */
export function poolLine(entry: PoolEntry): string {
  return `{ 'host': '${entry.host}', 'weight': ${entry.weight ?? 10}, 'enabled': ${entry.enabled === false ? 'False' : 'True'} }`;
}

/**
 * A pybal.conf and its pool files for a lab: BGP to the lab's router with
 * director1 as next hop, the API on 127.0.0.1 (and any other
 * `instrumentationIps`), one section per service. With
 * an IPv6 service, pybal peers with the router over both families and
 * announces IPv6 VIPs with director1's IPv6 address as next hop.
 */
export class E2eConfig {
  readonly file: string;
  readonly lab: Lab;
  constructor(lab: Lab, readonly name = 'pybal') {
    this.lab = lab;
    this.file = join(lab.dir, `${name}.conf`);
  }

  poolFile(service: string): string {
    return join(this.lab.dir, `${this.name}-pool-${service}`);
  }

  /** The lab's real servers as pool entries, by address of `family`. */
  realServerEntries(overrides: Record<string, Partial<PoolEntry>> = {}, family: Family = 4): PoolEntry[] {
    return this.lab.addr.realServers.map((rs) => ({ host: (family === 4 ? rs.v4 : rs.v6) ?? '', ...overrides[rs.name] }));
  }

  writePool(service: string, entries: readonly PoolEntry[]): void {
    writeFileSync(this.poolFile(service), entries.map(poolLine).join('\n') + '\n');
  }

  /**
   * Writes pybal.conf (pool files are written separately, with writePool).
   * `director` (default director1) is the director the daemon runs in: its
   * addresses are the BGP next hops.
   */
  write(services: readonly E2eService[], options: { bgp?: boolean; holdTimeSec?: number; globalExtra?: readonly string[]; director?: string; instrumentationIps?: readonly string[] } = {}): string {
    const { router } = this.lab.addr;
    const director = directorAddress(this.lab, options.director);
    const ips = (options.instrumentationIps ?? ['127.0.0.1']).map((ip) => `'${ip}'`).join(', ');
    const global = ['[global]', `instrumentation = yes`, `instrumentation_port = ${API_PORT}`, `instrumentation_ips = [ ${ips} ]`];
    const ipv6 = services.some((s) => s.family === 6);
    if (options.bgp !== false && director.v4 !== undefined && router.v4 !== undefined) {
      const peers = ipv6 && router.v6 !== undefined ? `[ '${router.v4}', '${router.v6}' ]` : router.v4;
      global.push('bgp = yes', `bgp-local-asn = ${this.lab.options.directorAsn ?? 64600}`, `bgp-peer-address = ${peers}`, `bgp-nexthop-ipv4 = ${director.v4}`);
      if (ipv6 && director.v6 !== undefined) global.push(`bgp-nexthop-ipv6 = ${director.v6}`);
      global.push(`bgp-hold-time = ${options.holdTimeSec ?? 9}`, 'bgp-connect-retry = 1');
    }
    global.push(...(options.globalExtra ?? []));
    const sections = services.map((s) => {
      const family = s.family ?? 4;
      const vips = this.lab.addr.vips[s.vipIndex ?? 0];
      const vip = family === 4 ? vips?.v4 : vips?.v6;
      if (vip === undefined) throw new Error(`e2e: no IPv${family} VIP #${s.vipIndex ?? 0}`);
      return [
        `[${s.name}]`,
        `protocol = ${s.protocol ?? 'tcp'}`,
        `ip = ${vip}`,
        `port = ${s.port ?? 80}`,
        `scheduler = ${s.scheduler ?? 'rr'}`,
        `config = file://${this.poolFile(s.name)}`,
        ...(s.forwardMethod === null ? [] : [`forward-method = ${s.forwardMethod ?? this.lab.topology.forwarding}`]),
        ...(s.extra ?? proxyFetchLines(s.port ?? 80)),
      ].join('\n');
    });
    writeFileSync(this.file, [global.join('\n'), ...sections].join('\n\n') + '\n');
    return this.file;
  }
}

/** The addresses of a lab's director by node name ('director' or undefined: director1). */
function directorAddress(lab: Lab, node: string | undefined): NamedAddress {
  const name = node === undefined || node === 'director' ? 'director1' : node;
  const found = lab.addr.directors.find((d) => d.name === name);
  if (found === undefined) throw new Error(`e2e: no ${name} in this lab`);
  return found;
}

/** The daemon, started in a director (director1 by default) with `--log-file -` and a control socket under lab.runDir. */
export class E2ePybal {
  readonly process: LabProcess;
  readonly socket: string;
  /** The lab node it runs in. */
  readonly director: string;
  readonly #lab: Lab;

  private constructor(lab: Lab, process: LabProcess, socket: string, director: string) {
    this.#lab = lab;
    this.process = process;
    this.socket = socket;
    this.director = director;
  }

  /** `runAs`: a command that runs the daemon with fewer privileges (e.g. setpriv ...), put in front of node. */
  static start(
    lab: Lab,
    configFile: string,
    options: { dryRun?: boolean; name?: string; extraArgs?: readonly string[]; director?: string; runAs?: readonly string[]; socketDir?: string } = {},
  ): E2ePybal {
    const name = options.name ?? 'pybal';
    const director = options.director ?? 'director';
    const socket = join(options.socketDir ?? lab.runDir, `${name}.sock`);
    const argv = [...(options.runAs ?? []), ...daemonCommand('node'), 'dist/cli/pybal.js', '-c', configFile, '--log-file', '-', '--control-socket', socket, ...(options.dryRun ? ['-n'] : []), ...(options.extraArgs ?? [])];
    return new E2ePybal(lab, lab.spawn(director, argv, { name }), socket, director);
  }

  log(): string {
    return this.process.output();
  }

  /** Log lines printed after `from` characters of output (use log().length as a mark). */
  logSince(from: number): string[] {
    return this.log().slice(from).split('\n').filter((l) => l.length > 0);
  }

  /**
   * When the daemon logged the first line containing `text` (its own local
   * timestamp, in ms since the epoch), so that a bound is measured on the
   * daemon's clock rather than on a slow probe's; undefined when not logged.
   */
  loggedAtMs(text: string, fromChar = 0): number | undefined {
    const line = this.logSince(fromChar).find((l) => l.includes(text));
    const m = line === undefined ? null : /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{3}) /.exec(line);
    if (m === null) return undefined;
    const [y, mo, d, h, mi, sec, ms] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
    return new Date(y, mo - 1, d, h, mi, sec, ms).getTime();
  }

  /**
   * loggedAtMs, waited for: the kernel shows a change as soon as it made it,
   * while the daemon logs it once it has the kernel's answer, and the line
   * then comes down a pipe, so a probe that saw the change may read the log
   * a moment before the line is in it (a CI run read it 2 ms early).
   */
  async waitLoggedAtMs(text: string, fromChar = 0, timeoutMs = 5_000): Promise<number> {
    return waitFor(async () => this.loggedAtMs(text, fromChar), { timeoutMs, what: `"${text}" in pybal's log` }).catch((error: unknown) => {
      throw new Error(`${String(error)}\npybal's log since the mark:\n${this.logSince(fromChar).slice(-40).join('\n')}`);
    });
  }

  /** GET /status on the control socket, as `pybal status` does. */
  status(): Promise<DaemonSnapshot> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socket, path: '/status', headers: { accept: 'application/json' }, agent: false, timeout: 5_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as DaemonSnapshot);
          } catch (error) {
            reject(error instanceof Error ? error : new Error(String(error)));
          }
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('status: timed out')));
      req.on('error', reject);
      req.end();
    });
  }

  /** The IPVS write requests this process has sent so far. */
  async ipvsRequests(): Promise<number> {
    const s = await this.status();
    if (s.ipvs === undefined) throw new Error('status has no ipvs statistics');
    return s.ipvs.requests;
  }

  /** GET on the instrumentation API, from inside its director. */
  async api(path: string, accept = 'application/json'): Promise<{ status: number; contentType: string; body: string }> {
    const r = await this.#lab.exec(this.director, ['curl', '-sS', '-m', '5', '-H', `Accept: ${accept}`, '-w', '\n%{http_code} %{content_type}', `http://127.0.0.1:${API_PORT}${path}`]);
    if (r.code !== 0) throw new Error(`curl ${path}: exit ${r.code} ${r.stderr.trim()}`);
    const cut = r.stdout.lastIndexOf('\n');
    const [code, ...type] = r.stdout.slice(cut + 1).split(' ');
    return { status: Number(code), contentType: type.join(' '), body: r.stdout.slice(0, cut) };
  }

  async apiJson<T>(path: string): Promise<T> {
    return JSON.parse((await this.api(path)).body) as T;
  }

  /** One sample of /metrics (the first series whose line starts with `series`). */
  async metric(series: string): Promise<number | undefined> {
    const text = (await this.api('/metrics', 'text/plain')).body;
    const line = text.split('\n').find((l) => l.startsWith(`${series} `) || l.startsWith(`${series}{`));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  }

  /** `pybal status --socket`, the operator's command, run in its director: its report, healthy (exit 0) or degraded (1). */
  async statusCommand(): Promise<string> {
    const argv = ['node', 'dist/cli/pybal.js', 'status', '--socket', this.socket];
    const r = await this.#lab.exec(this.director, argv);
    if (r.code !== 0 && r.code !== 1) throw new Error(`command failed (exit ${r.code}): ${argv.join(' ')}\n${r.stderr || r.stdout}`.trimEnd());
    return r.stdout;
  }

  /** SIGTERM and wait; returns the exit code. */
  async terminate(): Promise<number | null> {
    this.process.signal('SIGTERM');
    return (await this.process.exited).code;
  }
}

/** The addresses director1's IPVS has for the service on a VIP of the lab (the first IPv4 one by default) and `port`. */
export async function ipvsDestinations(lab: Lab, port = 80, vipIndex = 0, family: Family = 4): Promise<string[] | undefined> {
  const vips = lab.addr.vips[vipIndex];
  const vip = family === 4 ? vips?.v4 : vips?.v6;
  const service = (await lab.ipvsTable()).find((s) => s.address === vip && s.port === port);
  return service?.destinations.map((d) => d.address).sort();
}

/** Waits until that service has exactly the destinations `want` (sorted); a timeout says what it had. */
export function waitForIpvsDestinations(
  lab: Lab,
  want: readonly string[],
  what: string,
  options: { timeoutMs?: number; vipIndex?: number; family?: Family } = {},
): Promise<boolean> {
  return waitFor(async () => {
    const have = await ipvsDestinations(lab, 80, options.vipIndex, options.family);
    if (JSON.stringify(have) === JSON.stringify(want)) return true;
    throw new Error(`IPVS has ${JSON.stringify(have)}`);
  }, { timeoutMs: options.timeoutMs ?? 20_000, what });
}

/** One BGP session as BIRD reports it in `birdc show protocols all`. */
export type BirdSession = { protocol: string; state: string; since: string; info: string };

/**
 * BIRD's session with the neighbor at `address` (the lab's router must be
 * BIRD): its protocol state, when that state began (BIRD's "Since" column,
 * which a session reset changes) and its info (Established, Active...).
 */
export async function birdSession(lab: Lab, address: string): Promise<BirdSession | undefined> {
  const router = lab.router;
  if (router.kind !== 'bird') throw new Error('birdSession: the lab router is not BIRD');
  const text = (await router.cli(['show', 'protocols', 'all'])).stdout;
  let head: BirdSession | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\d{4}[- ]/, '');
    const m = /^(\S+)\s+BGP\s+\S+\s+(\S+)\s+(.+?)\s{2,}(\S.*?)\s*$/.exec(line);
    if (m) {
      head = { protocol: m[1]!, state: m[2]!, since: m[3]!, info: m[4]! };
      continue;
    }
    if (/^\S/.test(line)) head = undefined;
    const neighbor = /^\s+Neighbor address:\s+(\S+)/.exec(line);
    if (head && neighbor?.[1] === address) return head;
  }
  return undefined;
}

/**
 * Reads BIRD's session with `address` until birdc answers (it can fail to in a
 * loaded guest) and expects it to be `before`'s: the same session, not a reset
 * (a reset shows in `since`). Compared as JSON text, so that both readings show
 * on a mismatch, control characters escaped.
 */
export async function expectSameBirdSession(lab: Lab, address: string, before: BirdSession | undefined, context = ''): Promise<void> {
  const after = await waitFor(async () => birdSession(lab, address), { timeoutMs: 15_000, what: "BIRD's session" });
  // BIRD prints `since` from its monotonic clock turned into the time of day
  // at each `show`: the same instant can read 1 ms apart. A reset moves it by
  // seconds (a new session takes BIRD's connect retry at least).
  const same = (x: BirdSession | undefined): unknown => x && { ...x, since: undefined };
  const drift = before && after ? Math.abs(timeOfDayMs(after.since) - timeOfDayMs(before.since)) : Infinity;
  expect(JSON.stringify(same(after)), `BIRD's session with ${address} before: ${JSON.stringify(before)}, after: ${JSON.stringify(after)}${context}`).toBe(JSON.stringify(same(before)));
  expect(drift, `BIRD's session with ${address}: since ${before?.since} before, ${after?.since} after (a reset?)${context}`).toBeLessThanOrEqual(50);
}

/** `HH:MM:SS.mmm` (BIRD's `since` today) in ms; NaN for another form (which then compares unequal). */
function timeOfDayMs(text: string): number {
  const m = /^(\d\d):(\d\d):(\d\d)(?:\.(\d{1,3}))?$/.exec(text);
  return m ? ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number((m[4] ?? '0').padEnd(3, '0')) : Number.NaN;
}

/** The lab of the IPv4 daemon e2e files: three real servers, DR, BIRD, two VIPs. */
export type WebLab = {
  lab: Lab;
  conf: E2eConfig;
  rs: { name: string; ip: string }[];
  vip: string;
  vip2: string;
};

/** Starts that lab and writes a pybal.conf with `web` over every real server (pybal not started). */
export async function startWebLab(web: E2eService): Promise<WebLab> {
  const lab = await startLab({ realServers: 3, forwarding: 'dr', router: 'bird', families: [4], vips: 2 });
  const conf = new E2eConfig(lab);
  conf.writePool('web', conf.realServerEntries());
  conf.write([web]);
  return {
    lab,
    conf,
    rs: lab.addr.realServers.map((r) => ({ name: r.name, ip: r.v4! })),
    vip: lab.addr.vips[0]!.v4!,
    vip2: lab.addr.vips[1]!.v4!,
  };
}
