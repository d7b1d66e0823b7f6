/**
 * Runs inside a namespace prepared by test/monitors/marked-socket.test.ts:
 * rule 100 sends packets marked 0x77 to table 100 (`unreachable default`),
 * above the local table. A connect marked 0x77 to loopback is unreachable;
 * unmarked, or marked otherwise, it connects. Were the mark not set on the
 * socket, the 0x77 connect would connect too.
 */
import net from 'node:net';
import { expect, it } from 'vitest';
import { connectMarked, createMarkedUdpSocket, socketMark } from '../../../src/monitors/marked-socket.js';

const inNamespace = process.env.PYBAL_TEST_MARK_NS !== undefined;

/** What a connect comes to: 'connect', or the error's code. */
function outcome(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    socket.once('connect', () => {
      resolve('connect');
      socket.destroy();
    });
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

for (const [host, family] of [['127.0.0.1', 4], ['::1', 6]] as const) {
  it.runIf(inNamespace)(`IPv${family}: TCP and UDP marked 0x77 are unreachable; unmarked or marked otherwise, they get through`, async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      expect(await outcome(net.connect(port, host))).toBe('connect');
      const marked = connectMarked({ host, port, family, mark: 0x77 });
      expect(socketMark(marked)).toBe(0x77);
      expect(await outcome(marked)).toBe('EHOSTUNREACH');
      for (const mark of [0, 0x76, 0x177]) expect(await outcome(connectMarked({ host, port, family, mark })), String(mark)).toBe('connect');
      for (const [mark, expected] of [[0x77, 'EHOSTUNREACH'], [0x78, 'sent']] as const) {
        const udp = await createMarkedUdpSocket(family, mark);
        const sent = await new Promise<string>((resolve) => udp.send('x', port, host, (e) => resolve((e as NodeJS.ErrnoException | null)?.code ?? 'sent')));
        udp.close();
        expect(sent, String(mark)).toBe(expected);
      }
    } finally {
      server.close();
    }
  });
}
