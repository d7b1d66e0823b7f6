/**
 * Watches one IPVS service's destinations over netlink (run it in the
 * director's namespace) and prints a line whenever the set changes:
 *   <wall ms when the dump that saw it returned> <address,address,...>
 * Usage: node ipvs-watch.js <vip> <port> <poll ms>
 * One dump request per poll: far cheaper than spawning ipvsadm.
 */
import net from 'node:net';
import { createIpvsClient } from '../../src/ipvs/client.js';
import { createSystemClock } from '../../src/runtime/clock.js';

const [address = '', portText = '', pollText = '20'] = process.argv.slice(2);
const family = net.isIP(address);
if (family !== 4 && family !== 6) throw new Error(`ipvs-watch: bad address ${JSON.stringify(address)}`);
const pollMs = Number(pollText);
const key = { family, protocol: 'tcp', address, port: Number(portText) } as const;
const clock = createSystemClock();
const client = await createIpvsClient({ clock, timeoutMs: 5000 });
let last: string | undefined;
let stopping = false;
process.on('SIGTERM', () => (stopping = true));
while (!stopping) {
  let seen: string;
  try {
    seen = (await client.listDests(key)).map((d) => d.address).sort().join(',');
  } catch {
    seen = '(no service)';
  }
  if (seen !== last) {
    process.stdout.write(`${Date.now()} ${seen || '(none)'}\n`);
    last = seen;
  }
  await clock.sleep(pollMs);
}
client.close();
