/**
 * IPVS apply benchmark: 100 services x 100 destinations from an empty table,
 * by the manager and by `ipvsadm-restore` (ipvsadm -R) from an equivalent
 * file, on the same guest in the same run; then a full dump + diff of that
 * table, and one destination changing in it.
 *
 *   npm run bench:ipvs     (boots a lab guest; the last line is `ipvs-apply-speedup X`)
 *
 * On the host it boots a lab guest and runs itself inside; inside, it measures.
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync, writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
 * Rounds alternate the manager and ipvsadm-restore, and the speedup is the
 * median of the per-round ratios: the machine is shared, and two runs side by
 * side see about the same load.
 */
const ROUNDS = 5;
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

/** The same table as ipvsadm-restore input. */
function restoreFile(services: readonly DesiredService[]): string {
  const lines: string[] = [];
  for (const s of services) {
    if ('fwmark' in s.key) throw new Error('bench uses address services only');
    const svc = `-t ${s.key.address}:${s.key.port}`;
    lines.push(`-A ${svc} -s ${s.scheduler}`);
    for (const d of s.destinations) lines.push(`-a ${svc} -r ${d.address}:${d.port} -g -w ${d.weight}`);
  }
  return lines.join('\n') + '\n';
}

function run(argv: string[], stdinPath?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fd = stdinPath ? openSync(stdinPath, 'r') : 'ignore';
    const child = spawn(argv[0] ?? '', argv.slice(1), { stdio: [fd, 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (typeof fd === 'number') closeSync(fd);
      if (code === 0 && !stderr) resolve();
      else reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr.slice(0, 500)}`));
    });
  });
}

async function countDests(client: IpvsClient): Promise<number> {
  let n = 0;
  for (const s of await client.listServices()) n += (await client.listDests(s.key)).length;
  return n;
}

async function measure(): Promise<void> {
  const desired = table();
  const dir = mkdtempSync(join(tmpdir(), 'pybal-ipvs-bench-'));
  const rulesPath = join(dir, 'rules');
  writeFileSync(rulesPath, restoreFile(desired));
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

      await run(['ipvsadm', '-C']);
      const t1 = performance.now();
      await run(['ipvsadm-restore'], rulesPath);
      restoreMs.push(performance.now() - t1);
      const m = await countDests(client);
      if (m !== SERVICES * DESTS) throw new Error(`ipvsadm-restore left ${m} destinations, expected ${SERVICES * DESTS}`);
    }

    // The table is in place (from ipvsadm-restore): a full dump + diff of it, and one change.
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
      `ipvs-bench: ${SERVICES} services x ${DESTS} destinations (${SERVICES * DESTS} destinations), UML guest kernel, median of ${ROUNDS} rounds`,
      `manager apply from empty: ${mgr.toFixed(0)} ms (${applyRequests} requests in ${applySends} sendmsg calls; runs ${managerMs.map((x) => x.toFixed(0)).join(', ')} ms)`,
      `ipvsadm-restore of the same table: ${restore.toFixed(0)} ms (runs ${restoreMs.map((x) => x.toFixed(0)).join(', ')} ms)`,
      `full dump + diff of the table: ${median(dumpMs).toFixed(0)} ms (${SERVICES + 1} dump requests, 0 differences)`,
      `adoption of the table made by ipvsadm-restore: ${adoptionRequests} write requests`,
      `one destination changed: ${changeMs.toFixed(1)} ms, ${changeRequests} request(s) in ${changeSends} sendmsg call(s)`,
      `speedup per round (ipvsadm-restore / manager): ${ratios.map((r) => r.toFixed(2)).join(', ')}`,
      `ipvs-apply-speedup ${median(ratios).toFixed(2)}`,
    ];
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    await run(['ipvsadm', '-C']).catch(() => undefined);
    client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

runGuestBench({ name: 'ipvs bench', scriptUrl: import.meta.url, measure });
