/**
 * Lab helper: applies a desired IPVS state (a JSON file of DesiredService[])
 * with the manager, in whatever network namespace it is started in, and
 * prints the manager's counters as JSON. Exit status 1 when a request failed.
 *   ip netns exec <director> node dist/test/ipvs/apply-main.js desired.json
 */
import { readFileSync } from 'node:fs';
import { createIpvsClient } from '../../src/ipvs/client.js';
import type { DesiredService } from '../../src/ipvs/diff.js';
import { IpvsManager } from '../../src/ipvs/manager.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { createLogger } from '../../src/runtime/logger.js';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: apply-main.js desired.json\n');
  process.exit(2);
}
const desired = JSON.parse(readFileSync(file, 'utf8')) as DesiredService[];
const clock = createSystemClock();
const { logger } = await createLogger({ file: '-', format: 'text', level: 'info' });
const client = await createIpvsClient({ clock, logger });
const manager = new IpvsManager({ kernel: client, clock, logger, resyncIntervalMs: 3_600_000 });
manager.setDesired(desired);
manager.start();
await manager.idle();
await manager.stop();
client.close();
const stats = manager.stats();
process.stdout.write(JSON.stringify({ requests: stats.requests, failedRequests: stats.failedRequests }) + '\n');
process.exit(stats.failedRequests > 0 ? 1 : 0);
