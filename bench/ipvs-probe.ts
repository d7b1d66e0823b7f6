/**
 * Probes how the real kernel handles batched IPVS requests: failures in the
 * middle of a send, errors-only vs ACK-per-request, send sizes. Prints what it
 * sees; the findings are written up in the IPVS notes. Run in a lab guest:
 *   npx tsc -p . && node dist/test/lab/run-in-guest.js -- node dist/bench/ipvs-probe.js
 */
import { createIpvsClient, type BatchItem } from '../src/ipvs/client.js';
import { ipvsRequests } from '../src/ipvs/codec.js';
import type { DestSpec, ServiceSpec } from '../src/ipvs/types.js';
import { createSystemClock } from '../src/runtime/clock.js';

const clock = createSystemClock();

function dest(i: number, weight = 1): DestSpec {
  return {
    family: 4,
    address: `198.51.${100 + Math.floor(i / 250)}.${(i % 250) + 1}`,
    port: 80,
    fwdMethod: 'masq',
    weight,
    upperThreshold: 0,
    lowerThreshold: 0,
    tunnelType: 'ipip',
    tunnelPort: 0,
    tunnelFlags: 0,
  };
}

function service(n: number): ServiceSpec {
  return { key: { family: 4, protocol: 'tcp', address: '192.0.2.1', port: n }, scheduler: 'wrr', flags: 0, timeoutSec: 0, netmask: 32, peName: '' };
}

async function trial(label: string, ackEach: boolean, count: number, badAt: number[], maxRequestsPerSend?: number, maxBatchBytes?: number): Promise<void> {
  const client = await createIpvsClient({ clock, ackEach, timeoutMs: 10000, ...(maxRequestsPerSend ? { maxRequestsPerSend } : {}), ...(maxBatchBytes ? { maxBatchBytes } : {}) });
  const svc = service(1000 + Math.floor(Math.random() * 60000));
  await client.batch([{ request: ipvsRequests.newService(svc), object: 'svc' }]);
  const items: BatchItem[] = [];
  for (let i = 0; i < count; i++) {
    // A bad item: a lower threshold above the upper one (the kernel says ERANGE).
    const d = badAt.includes(i) ? { ...dest(i), upperThreshold: 1, lowerThreshold: 5 } : dest(i);
    items.push({ request: ipvsRequests.newDest(svc.key, d), object: `dest ${i}` });
  }
  const before = { ...client.counters };
  const t0 = performance.now();
  const results = await client.batch(items);
  const ms = performance.now() - t0;
  const failed = results.map((r, i) => (r ? `${i}:${r.code}` : '')).filter(Boolean);
  const sends = client.counters.sends - before.sends;
  const receives = client.counters.receives - before.receives;
  const dests = await client.listDests(svc.key);
  console.log(
    `${label}: ${count} NEW_DEST in ${ms.toFixed(1)} ms, sends ${sends}, receives ${receives}, ` +
      `failed [${failed.slice(0, 6).join(' ')}${failed.length > 6 ? ` ... ${failed.length}` : ''}], kernel has ${dests.length} dests`,
  );
  await client.batch([{ request: ipvsRequests.delService(svc.key), object: 'svc' }]);
  client.close();
}

const info = await (await createIpvsClient({ clock })).info();
console.log(`IPVS ${info.version} conn table ${info.connTabSize}`);
await trial('errors-only, none bad', false, 1000, []);
await trial('errors-only, 2 bad', false, 1000, [10, 500]);
await trial('errors-only, last bad', false, 300, [299]);
await trial('errors-only, all bad', false, 2000, Array.from({ length: 2000 }, (_, i) => i));
await trial('ack-each', true, 1000, [10, 500]);
await trial('errors-only 1 MiB sends', false, 5000, [], undefined, 1 << 20);
await trial('errors-only 64 KiB sends, 10000', false, 10000, [3]);
await trial('ack-each 10000', true, 10000, [3]);
process.exit(0);
