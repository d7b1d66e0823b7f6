/**
 * Watches the kernel's IPVS table over netlink for the pools benchmark, in
 * its own process (so that dumps do not delay the bench's API client), and
 * prints a progress line whenever it changes:
 *   <wall ms when the poll that saw it returned> <present> <complete> <dests> <weight or ->
 * On SIGTERM it prints `stats <polls> <median poll ms> <worst poll ms>` (of the
 * polls that dumped destinations) and exits.
 *   node table-watch.js <spec.json>     (a WatchSpec: see table-progress.ts)
 *
 * The guest has one CPU, shared with the daemon being measured, so a poll is
 * kept cheap: destinations are counted as dump replies without decoding them,
 * and only replies that contain the watched address's four bytes are decoded.
 * The watcher also waits at least PACE times its last poll's duration before
 * the next one, so that it takes at most 1/(PACE+1) of the CPU however large
 * the table grows (the resolution it costs is printed by the bench). A dump
 * of 20,000 destinations takes about a second in the guest: polled every
 * 20 ms regardless, the watcher took half the CPU from the daemon it timed.
 */
import { readFileSync } from 'node:fs';
import { createIpvsClient } from '../../src/ipvs/client.js';
import { decodeDestReply, ipvsRequests } from '../../src/ipvs/codec.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { median } from './stats.js';
import { formatProgressLine, serviceId, TableProgressTracker, type WatchSpec } from './table-progress.js';

const PACE = 3;

const spec = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as WatchSpec;
const clock = createSystemClock();
const client = await createIpvsClient({ clock, timeoutMs: 60_000 });
const tracker = new TableProgressTracker(spec);
const watched = spec.weightOf;
const watchedBytes = watched === undefined ? undefined : Buffer.from(watched.dest.split('.').map(Number));
const pollMs: number[] = [];
let last: string | undefined;
let stopping = false;
process.on('SIGTERM', () => (stopping = true));

while (!stopping) {
  const t0 = performance.now();
  const keys = new Map<string, { family: 4; protocol: 'tcp'; address: string; port: number }>();
  for (const s of await client.listServices()) {
    if (!('port' in s.key)) continue;
    keys.set(serviceId(s.key.address, s.key.port), { family: 4, protocol: 'tcp', address: s.key.address, port: s.key.port });
  }
  const present = [...keys.keys()];
  const toDump = tracker.toDump(present);
  for (const id of toDump) {
    const key = keys.get(id);
    if (key === undefined) continue;
    try {
      const replies = await client.dump(ipvsRequests.dumpDests(key), id);
      const count = replies.length;
      let weight: number | undefined;
      if (watched !== undefined && watchedBytes !== undefined && id === serviceId(watched.address, watched.port)) {
        for (let reply = replies.take(); reply !== undefined; reply = replies.take()) {
          if (reply.indexOf(watchedBytes) < 0) continue;
          const dest = decodeDestReply(reply, 4);
          if (dest.address === watched.dest) weight = dest.weight;
        }
      }
      tracker.record(id, count, weight);
    } catch {
      // Deleted between the two dumps: it counts as absent next poll.
      tracker.record(id, 0);
    }
  }
  const tookMs = performance.now() - t0;
  // Only polls that dumped destinations: those are what the figures' resolution depends on.
  if (toDump.length > 0) pollMs.push(tookMs);
  const progress = tracker.progress(present);
  const seen = JSON.stringify(progress);
  if (seen !== last) {
    process.stdout.write(`${formatProgressLine(Date.now(), progress)}\n`);
    last = seen;
  }
  await clock.sleep(Math.max(spec.pollMs, PACE * tookMs));
}
process.stdout.write(`stats ${pollMs.length} ${median(pollMs).toFixed(1)} ${pollMs.reduce((a, b) => Math.max(a, b), 0).toFixed(1)}\n`);
client.close();
