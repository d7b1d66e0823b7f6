/**
 * IPVS apply benchmark: 100 services x 100 destinations from an empty table,
 * by the manager and by `ipvsadm -R` fed the same table's commands on its
 * stdin through a pipe, the way PyBal applies changes
 * (`os.popen('/sbin/ipvsadm -R', 'w')`, commands spelt as PyBal spells them),
 * on the same guest in the same run; then a full dump + diff of that table,
 * and one destination changing in it. (Not `ipvsadm-restore`: that bash
 * wrapper also runs grep and an extra `ipvsadm -C`, which PyBal does not.)
 *
 *   npm run bench:ipvs     (boots a lab guest; the last line is `ipvs-apply-speedup X`)
 *   BENCH_ROUNDS=5 (default)
 *
 * On the host it boots a lab guest and runs itself inside; inside, it measures.
 */
import { execFileSync, spawn } from 'node:child_process';
import { release } from 'node:os';
import { createIpvsClient, type IpvsClient } from '../src/ipvs/client.js';
import { diffTables, tableFromDesired, type DesiredService } from '../src/ipvs/diff.js';
import { IpvsManager } from '../src/ipvs/manager.js';
import { createSystemClock } from '../src/runtime/clock.js';
import { createSilentLogger } from '../src/runtime/logger.js';
import { runGuestBench } from './lib/guest.js';
import { median } from './lib/stats.js';
import { dest } from '../test/ipvs/fixtures.js';

const SERVICES = 100;
const DESTS = 100;
/**
 * Rounds alternate the manager and ipvsadm -R, and the speedup is the
 * median of the per-round ratios: the machine is shared, and two runs side by
 * side see about the same load.
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const clock = createSystemClock();

function table(): DesiredService[] {
  return Array.from({ length: SERVICES }, (_, s) => ({
    key: { family: 4, protocol: 'tcp', address: `203.0.113.${s + 1}`, port: 80 },
    scheduler: 'wrr',
    flags: 0,
    timeoutSec: 0,
    netmask: 32,
    peName: '',
    destinations: Array.from({ length: DESTS }, (_, d) => dest(d, { address: `198.51.100.${d + 1}` })),
  }));
}

/**
 * The same table as `ipvsadm -R` commands, one a line, spelt as PyBal's
 * ipvs.py spells them: `-A -t ADDR:PORT -s SCHED` for a service and
 * `-a -t ADDR:PORT -r IP -w N` for a server (no port: ipvsadm takes the
 * service's; no forwarding flag: ipvsadm's default, direct routing).
 */
function pybalCommands(services: readonly DesiredService[]): string {
  const lines: string[] = [];
  for (const s of services) {
    if ('fwmark' in s.key) throw new Error('bench uses address services only');
    const svc = `-t ${s.key.address}:${s.key.port}`;
    lines.push(`-A ${svc} -s ${s.scheduler}`);
    for (const d of s.destinations) {
      if (d.port !== s.key.port || d.fwdMethod !== 'droute' || d.weight === 0) throw new Error('PyBal commands need the service port, direct routing and a weight');
      lines.push(`-a ${svc} -r ${d.address} -w ${d.weight}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** Runs argv, with `stdin` written to its standard input through a pipe; fails on a non-zero exit or any stderr. */
function run(argv: string[], stdin?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] ?? '', argv.slice(1), { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0 && !stderr) resolve();
      else reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr.slice(0, 500)}`));
    });
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

/** `ipvsadm --version`'s line, e.g. `ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)`. */
function ipvsadmVersion(): string {
  try {
    return execFileSync('ipvsadm', ['--version'], { encoding: 'utf8' }).trim();
  } catch (err) {
    return `unknown (ipvsadm --version failed: ${(err as Error).message.split('\n')[0]})`;
  }
}

async function countDests(client: IpvsClient): Promise<number> {
  let n = 0;
  for (const s of await client.listServices()) n += (await client.listDests(s.key)).length;
  return n;
}

async function measure(): Promise<void> {
  const desired = table();
  const commands = pybalCommands(desired);
  const commandCount = commands.split('\n').filter(Boolean).length;
  const client = await createIpvsClient({ clock, timeoutMs: 60_000 });
  const managerMs: number[] = [];
  const restoreMs: number[] = [];
  let applyRequests = 0;
  let applySends = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // Bench only: start each run from an empty table (the manager never flushes).
      await run(['ipvsadm', '-C']);
      const before = { ...client.counters };
      const manager = new IpvsManager({ kernel: client, clock, logger: createSilentLogger(), resyncIntervalMs: 3_600_000 });
      const t0 = performance.now();
      manager.setDesired(desired);
      manager.start();
      await manager.idle();
      managerMs.push(performance.now() - t0);
      await manager.stop();
      applyRequests = client.counters.requests - before.requests;
      applySends = client.counters.sends - before.sends;
      if (manager.stats().failedRequests > 0) throw new Error(`manager: ${manager.stats().lastError}`);
      const n = await countDests(client);
      if (n !== SERVICES * DESTS) throw new Error(`manager left ${n} destinations, expected ${SERVICES * DESTS}`);

      // Bench only, outside the timing: the same empty table for ipvsadm -R.
      await run(['ipvsadm', '-C']);
      const t1 = performance.now();
      await run(['ipvsadm', '-R'], commands);
      restoreMs.push(performance.now() - t1);
      const m = await countDests(client);
      if (m !== SERVICES * DESTS) throw new Error(`ipvsadm -R left ${m} destinations, expected ${SERVICES * DESTS}`);
    }

    // The table is in place (from ipvsadm -R): a full dump + diff of it, and one change.
    const manager = new IpvsManager({ kernel: client, clock, logger: createSilentLogger(), resyncIntervalMs: 3_600_000 });
    manager.setDesired(desired);
    const dumpMs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const t2 = performance.now();
      const services = await client.listServices();
      const kernel = tableFromDesired(
        await Promise.all(services.map(async (s) => ({ ...s, destinations: await client.listDests(s.key) }))),
      );
      const ops = diffTables(tableFromDesired(desired), kernel);
      dumpMs.push(performance.now() - t2);
      if (ops.length !== 0) throw new Error(`dump + diff found ${ops.length} differences, expected none`);
    }
    manager.start(); // adoption: dumps and finds nothing to do
    await manager.idle();
    const adoptionRequests = manager.stats().requests;
    const changed = desired.map((s, i) => (i === 57 ? { ...s, destinations: s.destinations.map((d, j) => (j === 33 ? { ...d, weight: 0 } : d)) } : s));
    const before = { ...client.counters };
    const t3 = performance.now();
    manager.setDesired(changed);
    await manager.idle();
    const changeMs = performance.now() - t3;
    const changeRequests = client.counters.requests - before.requests;
    const changeSends = client.counters.sends - before.sends;
    await manager.stop();

    const mgr = median(managerMs);
    const restore = median(restoreMs);
    const ratios = restoreMs.map((r, i) => r / (managerMs[i] ?? NaN));
    const out = [
      `ipvs-bench: ${SERVICES} services x ${DESTS} destinations (${SERVICES * DESTS} destinations) from an empty table, UML guest kernel ${release()}, node ${process.version}, ${ROUNDS} alternating rounds in this run`,
      `  compares with: ${ipvsadmVersion()}, run as PyBal runs it: \`ipvsadm -R\` in a new process, its ${commandCount} commands written to its stdin through a pipe ` +
        '(PyBal: os.popen("/sbin/ipvsadm -R", "w")), spelt as PyBal spells them (`-A -t VIP:80 -s wrr`, `-a -t VIP:80 -r IP -w 10`); the process start is timed, as it is part of every PyBal apply',
      `  ours: IpvsManager reconciling over generic netlink (socket opened before the timing), from setDesired() until idle`,
      `  each round: \`ipvsadm -C\` (untimed), manager apply, \`ipvsadm -C\` (untimed), ipvsadm -R; both checked to leave ${SERVICES * DESTS} destinations`,
      `manager apply from empty: ${mgr.toFixed(0)} ms median (${applyRequests} requests in ${applySends} sendmsg calls; runs ${managerMs.map((x) => x.toFixed(0)).join(', ')} ms)`,
      `ipvsadm -R of the same table: ${restore.toFixed(0)} ms median (runs ${restoreMs.map((x) => x.toFixed(0)).join(', ')} ms)`,
      `full dump + diff of the table: ${median(dumpMs).toFixed(0)} ms (${SERVICES + 1} dump requests, 0 differences)`,
      `adoption of the table made by ipvsadm -R: ${adoptionRequests} write requests`,
      `one destination changed: ${changeMs.toFixed(1)} ms, ${changeRequests} request(s) in ${changeSends} sendmsg call(s)`,
      `speedup per round (ipvsadm -R / manager): ${ratios.map((r) => r.toFixed(2)).join(', ')}`,
      `ipvs-apply-speedup ${median(ratios).toFixed(2)}`,
    ];
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    await run(['ipvsadm', '-C']).catch(() => undefined);
    client.close();
  }
}

runGuestBench({ name: 'ipvs bench', scriptUrl: import.meta.url, measure });
