/**
 * Marked sockets (src/monitors/marked-socket.ts, the sockmark addon): on
 * loopback, a marked TCP connect and a UDP round trip work and carry their
 * mark; errors come as Node's do; bad arguments throw; nothing leaks. And in
 * a namespace of its own, the kernel routes by the mark (a nested run:
 * test/monitors/netns/marked-socket.netns.ts). Needs root (SO_MARK).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { closeSync, openSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNative } from '../../packaging/build-native.js';
import { connectMarked, createMarkedUdpSocket, markedSocketsAvailable, socketMark, type MarkedEndpoint } from '../../src/monitors/marked-socket.js';
import { startBlackhole, type Blackhole } from './support/blackhole.js';
import { loopbackAddress } from './support/helpers.js';
import { runNestedInNetns } from './support/netns.js';

interface Sockmark {
  openSocket(...args: unknown[]): number;
  getMark(fd: unknown): number;
}

let addonPath = '';
let sockmark: Sockmark;
beforeAll(() => {
  // Compiled here when missing or older than its source (npm run build does the same).
  addonPath = buildNative();
  sockmark = createRequire(import.meta.url)(addonPath) as Sockmark;
});

const openFds = (): number => readdirSync('/proc/self/fd').length;

/** What a connect comes to: 'connect', or the error's code. */
function outcome(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    socket.once('connect', () => resolve('connect'));
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

const closed = (socket: net.Socket | dgram.Socket): Promise<void> => new Promise((resolve) => socket.once('close', () => resolve()));

for (const family of [4, 6] as const) {
  describe(`over IPv${family} on loopback`, () => {
    const host = family === 4 ? loopbackAddress(71) : '::1';
    let server: net.Server;
    let port = 0;
    beforeAll(async () => {
      server = net.createServer((s) => {
        s.on('error', () => undefined);
        s.end('hello');
      });
      await new Promise<void>((resolve) => server.listen(0, host, resolve));
      port = (server.address() as net.AddressInfo).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('a marked connect completes, carries its mark and reads what the server sends', async () => {
      const socket = connectMarked({ host, port, family, mark: 0x12345678 });
      let data = '';
      socket.on('data', (d: Buffer) => (data += d.toString()));
      expect(await outcome(socket)).toBe('connect');
      expect(socketMark(socket)).toBe(0x12345678);
      expect(socket.remotePort).toBe(port);
      await closed(socket);
      expect(data).toBe('hello');
      expect(() => socketMark(socket)).toThrow(/not an open socket/);
    });

    it('the largest mark, and a socket bound to localAddress', async () => {
      const socket = connectMarked({ host, port, family, mark: 2 ** 32 - 1, localAddress: host });
      expect(await outcome(socket)).toBe('connect');
      expect(socketMark(socket)).toBe(2 ** 32 - 1);
      expect(socket.localAddress).toBe(host);
      socket.destroy();
    });

    it('a refused connect is an ECONNREFUSED error, as net.connect has', async () => {
      const socket = connectMarked({ host, port: 1, family, mark: 7 });
      expect(await outcome(socket)).toBe('ECONNREFUSED');
      await closed(socket);
    });

    it('a UDP round trip from a marked socket', async () => {
      const echo = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
      echo.on('message', (msg, from) => echo.send(msg, from.port, from.address));
      await new Promise<void>((resolve) => echo.bind(0, host, resolve));
      const client = await createMarkedUdpSocket(family, 0x77, host);
      try {
        expect(socketMark(client)).toBe(0x77);
        expect(client.address()).toMatchObject({ address: host });
        const reply = new Promise<string>((resolve) => client.once('message', (m: Buffer) => resolve(m.toString())));
        client.send('ping', echo.address().port, host);
        expect(await reply).toBe('ping');
      } finally {
        client.close();
        echo.close();
      }
      expect(() => socketMark(client)).toThrow(/not an open socket/);
    });
  });
}

describe('errors', () => {
  it('a failure to open the socket (bind EADDRNOTAVAIL) is an error event on the next tick, not a throw', async () => {
    const socket = connectMarked({ host: '127.0.0.1', port: 9, family: 4, mark: 1, localAddress: '192.0.2.77' });
    // Listened to after the call returned, as for any connect.
    const close = closed(socket);
    const error = await new Promise<NodeJS.ErrnoException>((resolve) => socket.once('error', resolve));
    expect(error).toMatchObject({ code: 'EADDRNOTAVAIL', message: 'bind() failed: Cannot assign requested address (EADDRNOTAVAIL)' });
    await close;
    await expect(createMarkedUdpSocket(4, 1, '192.0.2.77')).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' });
  });

  it('without CAP_NET_ADMIN the mark is refused: EPERM, naming the step', () => {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', `
      try { require(${JSON.stringify(addonPath)}).openSocket(4, 'tcp', 1); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }
    `], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ code: 'EPERM', message: 'setsockopt(SO_MARK) failed: Operation not permitted (EPERM)' });
  });

  it('bad arguments throw TypeErrors', async () => {
    const ok: MarkedEndpoint = { host: '127.0.0.1', port: 80, family: 4, mark: 1 };
    for (const bad of [
      { mark: -1 },
      { mark: 2 ** 32 },
      { mark: 1.5 },
      { mark: Number.NaN },
      { mark: '1' },
      { family: 5 },
      { family: 6 },
      { host: 'localhost' },
      { port: 0 },
      { port: 65536 },
      { localAddress: '::1' },
      { localAddress: 'nowhere' },
    ]) {
      expect(() => connectMarked({ ...ok, ...bad } as MarkedEndpoint), JSON.stringify(bad)).toThrow(TypeError);
    }
    await expect(createMarkedUdpSocket(4, -1)).rejects.toThrow(TypeError);
    await expect(createMarkedUdpSocket(7 as 4, 1)).rejects.toThrow(TypeError);
    await expect(createMarkedUdpSocket(6, 1, '127.0.0.1')).rejects.toThrow(TypeError);
  });

  it('the addon checks its arguments itself, and getMark reports errno', () => {
    for (const args of [[], [4, 'tcp'], [5, 'tcp', 1], ['4', 'tcp', 1], [4, 'sctp', 1], [4, 'tcp', -1], [4, 'tcp', 2 ** 32], [4, 'tcp', 0.5], [4, 'tcp', 1, '::1'], [6, 'udp', 1, 'x'.repeat(100)], [4, 'tcp', 1, 7]]) {
      expect(() => sockmark.openSocket(...args), JSON.stringify(args)).toThrow(expect.objectContaining({ name: 'TypeError', code: args.length < 3 ? 'ERR_MISSING_ARGS' : 'ERR_INVALID_ARG_VALUE' }));
    }
    expect(() => sockmark.getMark(-1)).toThrow(TypeError);
    const file = openSync('/dev/null', 'r');
    try {
      expect(() => sockmark.getMark(file)).toThrow(expect.objectContaining({ code: 'ENOTSOCK', message: 'getsockopt(SO_MARK) failed: Socket operation on non-socket (ENOTSOCK)' }));
    } finally {
      closeSync(file);
    }
    const fd = sockmark.openSocket(6, 'udp', 0, null);
    expect(sockmark.getMark(fd)).toBe(0);
    closeSync(fd);
  });

  it('a marked socket connects once: connect() again is refused (it would open an unmarked socket)', async () => {
    const socket = connectMarked({ host: '127.0.0.1', port: 1, family: 4, mark: 3 });
    expect(await outcome(socket)).toBe('ECONNREFUSED');
    expect(() => socket.connect(1, '127.0.0.1')).toThrow(/connects once/);
  });

  it('the addon loads here', () => {
    expect(markedSocketsAvailable()).toEqual({ ok: true });
  });
});

describe('no descriptor leaks', () => {
  let blackhole: Blackhole;
  let server: net.Server;
  let port = 0;
  const host = loopbackAddress(72);
  beforeAll(async () => {
    blackhole = await startBlackhole(loopbackAddress(73));
    server = net.createServer((s) => {
      s.on('error', () => undefined);
      s.end();
    });
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    await blackhole.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('200 each of connects, refusals, timeouts and destroys before the connect, creation errors and UDP sockets', async () => {
    const before = openFds();
    for (let i = 0; i < 200; i++) {
      const ok = connectMarked({ host, port, family: 4, mark: i });
      expect(await outcome(ok)).toBe('connect');
      ok.destroy();
      const refused = connectMarked({ host, port: 1, family: 4, mark: i });
      expect(await outcome(refused)).toBe('ECONNREFUSED');
      // Destroyed at once, before its connect was even issued.
      const early = connectMarked({ host, port, family: 4, mark: i });
      early.destroy();
      const failed = connectMarked({ host, port, family: 4, mark: i, localAddress: '192.0.2.77' });
      expect(await outcome(failed)).toBe('EADDRNOTAVAIL');
      const udp = await createMarkedUdpSocket(4, i, host);
      udp.close();
    }
    // A connect that hangs, given up by its timeout as a check's deadline would.
    const hangs = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const socket = connectMarked({ host: blackhole.ip, port: blackhole.port, family: 4, mark: i });
        socket.setTimeout(50, () => socket.destroy());
        return Promise.race([outcome(socket), closed(socket).then(() => 'closed')]);
      }),
    );
    expect(new Set(hangs)).toEqual(new Set(['closed']));
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Equal, give or take a descriptor of vitest's own.
    expect(openFds()).toBeLessThanOrEqual(before + 2);
  });
});

describe('the kernel routes by the mark (a network namespace of its own)', () => {
  const ns = `pybaltest-${randomBytes(4).toString('hex')}`;
  const ip = (...args: string[]): void => {
    execFileSync('ip', args, { stdio: 'pipe' });
  };
  beforeAll(() => {
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    for (const v of ['-4', '-6']) {
      // The local table moves below the mark's rule, so that the mark decides even for loopback.
      ip('-n', ns, v, 'rule', 'add', 'pref', '1000', 'lookup', 'local');
      ip('-n', ns, v, 'rule', 'del', 'pref', '0', 'lookup', 'local');
      ip('-n', ns, v, 'rule', 'add', 'pref', '100', 'fwmark', '0x77', 'lookup', '100');
      ip('-n', ns, v, 'route', 'add', 'unreachable', 'default', 'table', '100');
    }
  });
  afterAll(() => ip('netns', 'del', ns));

  it('a connect marked 0x77 is unreachable where unmarked and otherwise-marked ones connect (nested run in the namespace)', async () => {
    const { code, output } = await runNestedInNetns(ns, 'test/monitors/netns/marked-socket.netns.ts', { PYBAL_TEST_MARK_NS: ns });
    expect(output).toMatch(/Tests\s+2 passed \(2\)/);
    expect(code, output).toBe(0);
  }, 120_000);
});
