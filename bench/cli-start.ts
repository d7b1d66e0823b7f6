/**
 * Start-up time of the `pybal` command (issue 14: `pybal status`, `ipvs` and
 * `check-config` start in 150 ms or less on this machine): the wall time of
 * the whole process, spawn to exit, as an operator's shell sees it, for
 *
 * - `node -e 0`: Node itself, the floor no Node program goes below;
 * - the unbundled entry, dist/src/cli/main.js (tsc's output: about 50 ES
 *   modules for yargs and pybal's own), what `pybal` ran before;
 * - the bundled entry, dist/cli/pybal.js (packaging/bundle-cli.ts), what
 *   `pybal` runs now.
 *
 * PyBal's own command line cannot run here (Python 2), so the unbundled
 * entry is the peer. Commands: `--version`; `status` against a dry-run
 * daemon that the bench starts (the real round trip over the control
 * socket, with a real snapshot); `ipvs`, which on a host without IPVS opens
 * generic netlink, is told the family does not exist, and fails (the addon
 * loaded and one netlink request made, as on a director); `check-config` of
 * etc/pybal.conf.example (6 services, BGP).
 *
 * The runs are interleaved (one of each, round after round) so that a
 * shared machine's load falls on all of them alike; best-of-N is the figure
 * (what the program costs when nothing else is in the way), the median says
 * how typical that is. Nothing is asserted.
 *
 *   npm run bench:cli          (last line: cli-start-ms-status N, best of N, bundled)
 *   BENCH_RUNS=21 (default)
 *   BENCH_CLI_BASELINE=/elsewhere/dist/src/cli/main.js   adds a column: another build's
 *     entry (e.g. an older commit's, built with its own node_modules beside it)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './lib/stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RUNS = Number(process.env.BENCH_RUNS ?? 21);
const BUNDLED = join(root, 'dist/cli/pybal.js');
const UNBUNDLED = join(root, 'dist/src/cli/main.js');
const BASELINE = process.env.BENCH_CLI_BASELINE;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** This process's children's CPU time so far (user + system of the reaped ones), in clock ticks: /proc/self/stat's cutime + cstime. */
function childTicks(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 of proc(5); the text after "(comm) " starts at field 3.
  return Number(fields[16 - 3]) + Number(fields[17 - 3]);
}
/** Clock ticks per second (getconf CLK_TCK; 100 on Linux). */
const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** Wall milliseconds of one run of node with `args`, spawn to exit, and its CPU in ticks. */
function timeRun(args: readonly string[]): { ms: number; ticks: number; status: number | null } {
  const ticks = childTicks();
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { stdio: 'ignore', cwd: root });
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, ticks: childTicks() - ticks, status: r.status };
}

/** A dry-run daemon (no BGP, one service of three servers), started with the bundled entry; resolves when `status` answers. */
async function startDaemon(dir: string): Promise<{ socket: string; child: ChildProcess }> {
  const pool = join(dir, 'servers');
  writeFileSync(pool, ['192.0.2.101', '192.0.2.102', '192.0.2.103'].map((ip) => `{ 'host': '${ip}', 'weight': 10, 'enabled': True }\n`).join(''));
  const conf = join(dir, 'pybal.conf');
  writeFileSync(conf, ['[global]', 'bgp = no', '', '[text_80]', 'protocol = tcp', 'ip = 192.0.2.11', 'port = 80', 'scheduler = wrr', `config = file://${pool}`, 'monitors = [ ]', ''].join('\n'));
  const socket = join(dir, 'pybal.sock');
  const child = spawn(process.execPath, [BUNDLED, '--dry-run', '-c', conf, '--log-file', join(dir, 'pybal.log'), '--control-socket', socket], { stdio: 'ignore' });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the dry-run daemon exited (${child.exitCode}); see ${join(dir, 'pybal.log')}`);
    // Exit 0 or 1 (healthy or degraded: no IPVS here) means it answered; 2 is unreachable.
    if (existsSync(socket) && (timeRun([BUNDLED, 'status', '--socket', socket]).status ?? 2) < 2) return { socket, child };
    if (Date.now() > deadline) throw new Error('the dry-run daemon did not answer within 20 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Case {
  readonly name: string;
  readonly args: readonly string[];
}

async function main(): Promise<void> {
  for (const f of [BUNDLED, UNBUNDLED]) if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` first`);
  const dir = mkdtempSync(join(tmpdir(), 'pybal-bench-cli-'));
  const { socket, child } = await startDaemon(dir);
  try {
    const cases: Case[] = [
      { name: 'version', args: ['--version'] },
      { name: 'status', args: ['status', '--socket', socket] },
      { name: 'ipvs', args: ['ipvs'] },
      { name: 'check-config', args: ['check-config', '-c', join(root, 'etc/pybal.conf.example')] },
    ];
    const variants = [
      ...(BASELINE !== undefined ? [{ name: 'baseline', entry: BASELINE }] : []),
      { name: 'unbundled', entry: UNBUNDLED },
      { name: 'bundled', entry: BUNDLED },
    ];
    say(`cli start-up benchmark: node ${process.version}, ${cpus().length} CPU(s), load ${loadavg()[0]!.toFixed(2)}, ${RUNS} runs each, interleaved; wall ms, spawn to exit`);
    if (BASELINE !== undefined) say(`baseline: ${BASELINE}`);
    const floor: number[] = [];
    let floorTicks = 0;
    const samples = new Map<string, number[]>();
    const ticks = new Map<string, number>();
    const statuses = new Map<string, Set<number | null>>();
    // One warm-up round (the page cache), not counted.
    for (let round = -1; round < RUNS; round++) {
      const f = timeRun(['-e', '0']);
      if (round >= 0) floor.push(f.ms);
      if (round >= 0) floorTicks += f.ticks;
      for (const c of cases) {
        for (const v of variants) {
          const r = timeRun([v.entry, ...c.args]);
          if (round < 0) continue;
          const key = `${c.name} ${v.name}`;
          (samples.get(key) ?? samples.set(key, []).get(key)!).push(r.ms);
          ticks.set(key, (ticks.get(key) ?? 0) + r.ticks);
          (statuses.get(key) ?? statuses.set(key, new Set()).get(key)!).add(r.status);
        }
      }
    }
    const fmt = (xs: readonly number[]): string => `${Math.min(...xs).toFixed(0).padStart(4)} ${median(xs).toFixed(0).padStart(4)}`;
    say('');
    const columns = ['node -e 0', ...variants.map((v) => v.name)];
    say(`${'command'.padEnd(14)}${'exit'.padEnd(6)}${columns.map((c) => c.padEnd(12)).join('')}bundled/unbundled (best, median)`);
    say(`${''.padEnd(20)}${columns.map(() => 'best  med'.padEnd(12)).join('')}`);
    const best = new Map<string, number>();
    for (const c of cases) {
      const u = samples.get(`${c.name} unbundled`)!;
      const b = samples.get(`${c.name} bundled`)!;
      best.set(c.name, Math.min(...b));
      const exit = [...statuses.get(`${c.name} bundled`)!].join('/');
      const ratio = `${(Math.min(...b) / Math.min(...u)).toFixed(2)}, ${(median(b) / median(u)).toFixed(2)}`;
      const cells = [floor, ...variants.map((v) => samples.get(`${c.name} ${v.name}`)!)].map((xs) => fmt(xs).padEnd(12)).join('');
      say(`${c.name.padEnd(14)}${exit.padEnd(6)}${cells}${ratio}`);
    }
    // CPU, which other work on a shared machine disturbs less than wall time: the mean over the runs (a tick is 10 ms).
    const cpuMs = (t: number): string => ((t * 1000) / TICKS_PER_SECOND / RUNS).toFixed(0).padStart(4);
    say('');
    say(`${'CPU ms/run'.padEnd(20)}${[cpuMs(floorTicks), ...variants.map(() => '')].map((x) => x.padEnd(12)).join('')}`.trimEnd());
    for (const c of cases) {
      say(`${c.name.padEnd(20)}${['', ...variants.map((v) => cpuMs(ticks.get(`${c.name} ${v.name}`)!))].map((x) => x.padEnd(12)).join('')}`.trimEnd());
    }
    say('');
    say('exit: the bundled runs\' exit statuses (status 1: the dry-run daemon is degraded, no IPVS here; ipvs 1: no IPVS in this kernel).');
    say(`Over the floor (best - node -e 0 best): ${cases.map((c) => `${c.name} ${(best.get(c.name)! - Math.min(...floor)).toFixed(0)}`).join(', ')} ms.`);
    say('');
    for (const c of cases) if (c.name !== 'status') say(`cli-start-ms-${c.name} ${best.get(c.name)!.toFixed(0)}`);
    say(`cli-start-ms-status ${best.get('status')!.toFixed(0)}`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
