/**
 * How many failing requests fit in one send before the error replies overflow
 * the receive buffer (ENOBUFS, which aborts the netlink addon). Argument: N.
 * Run in a guest: node dist/bench/ipvs-probe-overflow.js N
 */
import { RawNetlinkSocket } from 'netlink';
import { createIpvsClient } from '../src/ipvs/client.js';
import { encodeIpvsMessage, ipvsRequests } from '../src/ipvs/codec.js';
import { createSystemClock } from '../src/runtime/clock.js';

const n = Number(process.argv[2] ?? 100);
const ack = process.argv[3] === 'ack';
const client = await createIpvsClient({ clock: createSystemClock() });
const family = client.family;
client.close();
const sock = new RawNetlinkSocket(16, { recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
const key = { family: 4 as const, protocol: 'tcp' as const, address: '192.0.2.77', port: 1 };
const msgs: Buffer[] = [];
for (let i = 0; i < n; i++) {
  // The service does not exist: every request fails with ESRCH/ENOENT unless ack mode (DEL of a missing service fails too).
  msgs.push(encodeIpvsMessage(family, i + 1, 0, ack ? ipvsRequests.zero() : ipvsRequests.delService(key), ack));
}
let got = 0;
sock.on('message', (b) => {
  got += b.length > 0 ? 1 : 0;
});
sock.on('error', (e) => console.log('error', e.message));
sock.send(Buffer.concat(msgs), undefined, (e) => {
  if (e) console.log('send error', e.message);
});
setTimeout(() => {
  console.log(`rcvbuf ${sock.getRecvBufferSize()} N=${n} ${ack ? 'acks' : 'errors'} received ${got} datagrams`);
  sock.close();
}, 300);
