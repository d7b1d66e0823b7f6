/**
 * Lab helper: SIP requests over UDP to HOST:PORT, one after another, each
 * from a socket of its own (so from a new source port) bound to the source
 * address given with it. Prints one JSON line: for each request, the real
 * server that answered (the lab's UDP echo prefixes its answer with its
 * name), or null after a second without an answer.
 *   node dist/test/e2e/sip-client.js HOST PORT SOURCE/CALL-ID...
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';

export type SipAnswer = { from: string; callId: string; servedBy: string | null };

function invite(host: string, from: string, localPort: number, callId: string): Buffer {
  const lines = [
    `INVITE sip:service@${host} SIP/2.0`,
    `Via: SIP/2.0/UDP ${from}:${localPort};branch=z9hG4bK-${callId}`,
    `From: <sip:client@${from}>;tag=${localPort}`,
    `To: <sip:service@${host}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    'Content-Length: 0',
  ];
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n');
}

function ask(host: string, port: number, from: string, callId: string): Promise<SipAnswer> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(isIPv6(from) ? 'udp6' : 'udp4');
    const done = (servedBy: string | null): void => {
      clearTimeout(timer);
      socket.close();
      resolve({ from, callId, servedBy });
    };
    const timer = setTimeout(() => done(null), 1_000);
    socket.on('error', () => done(null));
    socket.on('message', (reply) => done(reply.toString('utf8').split(' ', 1)[0] ?? null));
    socket.bind(0, from, () => socket.send(invite(host, from, socket.address().port, callId), port, host));
  });
}

const [host = '', port = '5060', ...requests] = process.argv.slice(2);
const answers: SipAnswer[] = [];
for (const request of requests) {
  const slash = request.indexOf('/');
  answers.push(await ask(host, Number(port), request.slice(0, slash), request.slice(slash + 1)));
}
process.stdout.write(JSON.stringify(answers) + '\n');
