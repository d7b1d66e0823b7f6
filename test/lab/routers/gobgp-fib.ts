// The lab's stand-in for a FIB when GoBGP is the router. GoBGP keeps its
// RIB to itself: it installs nothing into the kernel unless it talks to a
// zebra (FRR), which the lab does not run. So that the client's traffic
// follows BGP as it does with BIRD's `protocol kernel`, this mirror copies
// GoBGP's best path of every prefix into the router namespace's kernel
// (`ip route replace PREFIX via NEXTHOP proto bgp`) and removes a prefix
// GoBGP no longer has (`ip route del`).
//
// It reacts to GoBGP's own change stream (`gobgp monitor global rib`, one
// line per best-path change), then reads the whole RIB
// (`gobgp global rib -j`) and applies the difference, so what it installs
// never depends on the monitor's format; it also reads the RIB every
// `pollMs` in case a change slipped by. A change reaches the kernel a CLI
// call and an `ip` call after GoBGP made it (tens of ms in the UML guest).
// A replace is atomic: a route that changes next hop, or that GoBGP
// refreshes in place (a graceful restart's stale route sent again), is
// never missing from the kernel, unlike BIRD 2.0's kernel protocol, which
// deletes and adds.
import { appendFileSync } from 'node:fs';
import { LabProcess, exec } from '../exec.js';
import type { Family } from '../topology.js';
import type { GobgpBestPath, GobgpDaemon } from './gobgp.js';

/** `proto bgp` (186 in iproute2's rt_protos): how the mirror's routes show in `ip route`. */
export const MIRROR_PROTO = 'bgp';

/**
 * The `ip -batch` lines that make the kernel hold `best` (prefix -> next
 * hop), given what the mirror installed before; and what is installed
 * after. Pure.
 */
export function planKernelRoutes(
  best: readonly GobgpBestPath[],
  installed: ReadonlyMap<string, string>,
): { lines: string[]; next: Map<string, string> } {
  const next = new Map<string, string>();
  for (const path of best) if (path.nextHop !== undefined) next.set(path.prefix, path.nextHop);
  const lines: string[] = [];
  for (const [prefix, nextHop] of next) {
    if (installed.get(prefix) !== nextHop) lines.push(`route replace ${prefix} via ${nextHop} proto ${MIRROR_PROTO}`);
  }
  for (const prefix of installed.keys()) if (!next.has(prefix)) lines.push(`route del ${prefix} proto ${MIRROR_PROTO}`);
  return { lines, next };
}

export type KernelMirrorOptions = {
  router: GobgpDaemon;
  families: readonly Family[];
  /** File that gets a line per kernel change (kept with the lab's scratch). */
  logPath: string;
  /** Full RIB read at least this often. Default 1000 ms. */
  pollMs?: number;
};

/** A change the mirror applied: when, and the `ip` lines. */
export type MirrorChange = { atMs: number; lines: string[] };

export class GobgpKernelMirror {
  readonly changes: MirrorChange[] = [];
  readonly #options: KernelMirrorOptions;
  readonly #monitors: LabProcess[];
  readonly #loop: Promise<void>;
  #installed = new Map<string, string>();
  #running = true;
  #errors = 0;
  #lastError = '';

  private constructor(options: KernelMirrorOptions) {
    this.#options = options;
    this.#monitors = options.families.map(
      (f) =>
        new LabProcess(`gobgp-monitor-ipv${f}`, options.router.cliArgv(['monitor', 'global', 'rib', '-a', f === 4 ? 'ipv4' : 'ipv6', '-j']), {
          logPath: options.logPath.replace(/(\.log)?$/, `-monitor-ipv${f}.log`),
        }),
    );
    this.#loop = this.#run();
  }

  /** Starts mirroring GoBGP's best paths into its namespace's kernel. */
  static start(options: KernelMirrorOptions): GobgpKernelMirror {
    return new GobgpKernelMirror(options);
  }

  /** What the mirror has installed: prefix -> next hop. */
  get installed(): ReadonlyMap<string, string> {
    return this.#installed;
  }

  async #run(): Promise<void> {
    const pollMs = this.#options.pollMs ?? 1_000;
    const seen = this.#monitors.map(() => 0);
    let lastSync = 0;
    while (this.#running) {
      // Output from a monitor (a best path changed) or the poll interval: read the RIB and apply.
      const moved = this.#monitors.some((m, i) => m.output().length !== seen[i]);
      if (moved || Date.now() - lastSync >= pollMs) {
        this.#monitors.forEach((m, i) => (seen[i] = m.output().length));
        lastSync = Date.now();
        await this.#sync().catch((error: unknown) => {
          this.#errors++;
          this.#lastError = error instanceof Error ? error.message : String(error);
        });
        continue;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async #sync(): Promise<void> {
    const best = (await Promise.all(this.#options.families.map((f) => this.#options.router.bestPaths(f)))).flat();
    if (!this.#running) return;
    const { lines, next } = planKernelRoutes(best, this.#installed);
    if (lines.length === 0) return;
    const result = await exec(['ip', '-n', this.#options.router.namespace, '-force', '-batch', '-'], { input: lines.map((l) => `${l}\n`).join('') });
    const atMs = Date.now();
    appendFileSync(this.#options.logPath, `${new Date(atMs).toISOString()} ${lines.join('; ')}${result.code === 0 ? '' : ` -> exit ${result.code}: ${result.stderr.trim()}`}\n`);
    // With -force, ip applied every line it could: what GoBGP has is what the kernel has now, but for the error.
    this.#installed = next;
    this.changes.push({ atMs, lines });
    if (result.code !== 0) throw new Error(`ip -batch: ${result.stderr.trim()}`);
  }

  /**
   * What `gobgp monitor global rib -j` printed so far for a family: one JSON
   * line per best-path change GoBGP made (a withdrawn best path has
   * "withdrawal": true).
   */
  monitorOutput(family: Family = 4): string {
    return this.#monitors[this.#options.families.indexOf(family)]?.output() ?? '';
  }

  /** Failed reads or applies so far (GoBGP not answering, say), and the last one's message. */
  errors(): { count: number; last: string } {
    return { count: this.#errors, last: this.#lastError };
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
    await Promise.all(this.#monitors.map((m) => m.stop()));
  }
}
