/**
 * The BGP thread of the build (BgpThread and its worker from tsc's dist/src/)
 * against a peer in a process of
 * its own, which notes when each message arrives: the sessions' KEEPALIVEs
 * keep their pace while the main thread is busy, stop when it is stuck (so
 * that the routers' hold timers take the director out), and start again when
 * it answers; routes and End-of-RIB reach the peer in order; the shutdown
 * withdraws and says Cease; a thread that dies is started again. The
 * bundle's entry for it is checked in test/cli/module-graph.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, type BgpMessage } from '../../src/bgp/codec.js';
import type { PeerChange } from '../../src/bgp/speaker.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { PEER_OPEN, until } from './raw-peer.js';
import { route, speakerOptions } from './speaker-harness.js';

type ThreadModule = typeof import('../../src/bgp/thread.js');

/**
 * A BGP peer in a child process: it answers our OPEN with `open` and a
 * KEEPALIVE, then prints every message it receives with its arrival time
 * (its own event loop: the test's main thread may be busy meanwhile).
 */
const PEER_SCRIPT = `
const net = require('node:net');
const [openHex, keepaliveHex] = process.argv.slice(1);
const server = net.createServer((socket) => {
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    const t = Date.now();
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 19 && pending.length >= pending.readUInt16BE(16)) {
      const length = pending.readUInt16BE(16);
      const frame = pending.subarray(0, length);
      pending = pending.subarray(length);
      console.log(JSON.stringify({ t, hex: frame.toString('hex') }));
      if (frame[18] === 1) socket.write(Buffer.concat([Buffer.from(openHex, 'hex'), Buffer.from(keepaliveHex, 'hex')]));
    }
  });
  socket.on('error', () => undefined);
  socket.on('close', () => console.log(JSON.stringify({ t: Date.now(), closed: true })));
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
`;

interface Arrival {
  readonly t: number;
  readonly message: BgpMessage | 'closed';
}

interface ProcessPeer {
  readonly port: number;
  readonly arrivals: Arrival[];
  readonly child: ChildProcess;
}

async function startProcessPeer(holdTimeSec: number): Promise<ProcessPeer> {
  const open = Buffer.from(encodeMessage({ ...PEER_OPEN, holdTimeSec }, { fourOctetAs: false })).toString('hex');
  const keepalive = Buffer.from(encodeMessage({ type: 'keepalive' }, { fourOctetAs: false })).toString('hex');
  const child = spawn(process.execPath, ['-e', PEER_SCRIPT, open, keepalive], { stdio: ['ignore', 'pipe', 'inherit'] });
  const arrivals: Arrival[] = [];
  let port = 0;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const m = JSON.parse(line) as { port?: number; t?: number; hex?: string; closed?: boolean };
    if (m.port !== undefined) port = m.port;
    // The peer announces 4-octet AS: so does our OPEN, and the UPDATEs that follow.
    else if (m.hex !== undefined) arrivals.push({ t: m.t!, message: decodeMessage(Buffer.from(m.hex, 'hex'), { fourOctetAs: arrivals.length > 0 }) });
    else if (m.closed) arrivals.push({ t: m.t!, message: 'closed' });
  });
  await until('the peer process', () => port !== 0, 10_000);
  return { port, arrivals, child };
}

function busy(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // The main thread holds the event loop, as a large reconcile or a burst of checks would.
  }
}

const types = (arrivals: readonly Arrival[]): string[] => arrivals.map((a) => (a.message === 'closed' ? 'closed' : a.message.type));
const routeUpdates = (arrivals: readonly Arrival[]): number => arrivals.filter((a) => a.message !== 'closed' && a.message.type === 'update' && a.message.nlri.length > 0).length;
const keepalivesBetween = (arrivals: readonly Arrival[], from: number, to: number): number =>
  arrivals.filter((a) => a.message !== 'closed' && a.message.type === 'keepalive' && a.t > from && a.t < to).length;

describe('the BGP thread (the build, dist/src/)', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(holdTimeSec: number, silenceAfterMs: number) {
    const { BgpThread } = (await import(resolve('dist/src/bgp/thread.js'))) as ThreadModule;
    const peer = await startProcessPeer(holdTimeSec);
    cleanups.push(() => peer.child.kill('SIGKILL'));
    const log = createMemoryLogger('info');
    const changes: PeerChange[] = [];
    const thread = await BgpThread.start({
      speaker: speakerOptions({
        peers: [{ address: '127.0.0.1', port: peer.port }],
        clock: createSystemClock(),
        logger: log.logger.child({ component: 'bgp' }),
        holdTimeSec,
        onPeerChange: (c) => changes.push(c),
      }),
      silenceAfterMs,
      statusEveryMs: 200,
    });
    cleanups.push(() => thread.stop());
    await until('Established', () => thread.status()[0]?.state === 'Established', 10_000);
    return { thread, peer, log, changes };
  }

  it('sends KEEPALIVEs on time while the main thread is busy; a stuck main thread silences them until it answers', async () => {
    // Hold time 3 s: a KEEPALIVE every second.
    const { thread, peer, log, changes } = await start(3, 2_500);
    expect(changes).toEqual([{ peer: '127.0.0.1', up: true }]);
    expect(thread.status()[0]).toMatchObject({ peer: '127.0.0.1', state: 'Established', holdTimeSec: 3 });
    expect(log.lines().some((l) => /\[bgp\] INFO: BGP session established/.test(l))).toBe(true);

    // Busy for 2 s, under silenceAfterMs: the KEEPALIVEs go on meanwhile, one a second.
    const busyFrom = Date.now();
    busy(2_000);
    const busyTo = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    expect(keepalivesBetween(peer.arrivals, busyFrom, busyTo)).toBeGreaterThanOrEqual(1);
    expect(log.lines().filter((l) => l.includes('did not answer'))).toEqual([]);

    // Stuck for 6 s: after 2.5 s no KEEPALIVE leaves (the routers' hold timers would end the session),
    // then they start again and the log says what happened.
    const stuckFrom = Date.now();
    busy(6_000);
    const stuckTo = Date.now();
    await until("the thread's line", () => log.lines().some((l) => l.includes('did not answer the BGP thread')), 5_000);
    expect(keepalivesBetween(peer.arrivals, stuckFrom + 2_500 + 1_000 + 200, stuckTo)).toBe(0);
    expect(log.lines().find((l) => l.includes('did not answer'))).toMatch(
      /ERROR: The main thread did not answer the BGP thread for [5-6]\.\d s: the BGP sessions sent no KEEPALIVE meanwhile/,
    );
    const after = Date.now();
    await until('a KEEPALIVE again', () => keepalivesBetween(peer.arrivals, after, Date.now() + 1) >= 1, 3_000);
  }, 40_000);

  it('hands routes, then End-of-RIB, to the peer; the shutdown withdraws them and says Cease with the reason', async () => {
    const { thread, peer } = await start(90, 60_000);
    thread.setAnnouncements([route('192.0.2.11'), route('192.0.2.12')]);
    thread.setAnnouncements([route('192.0.2.11')]); // the latest set wins
    thread.markReady();
    await until('an UPDATE', () => types(peer.arrivals).includes('update'), 5_000);
    expect(thread.announcements().map((r) => r.prefix.address)).toEqual(['192.0.2.11']);
    await new Promise((r) => setTimeout(r, 300));
    const updates = peer.arrivals.flatMap((a) => (a.message !== 'closed' && a.message.type === 'update' ? [a.message] : []));
    expect(updates.flatMap((u) => u.nlri.map((p) => p.address))).toEqual(['192.0.2.11']);
    await until('the counters', () => (thread.status()[0]?.prefixesSent ?? 0) === 1, 3_000);

    await thread.shutdown('maintenance', 3_000);
    const last = peer.arrivals.map((a) => a.message).filter((m): m is BgpMessage => m !== 'closed');
    const withdrawn = last.flatMap((m) => (m.type === 'update' ? m.withdrawn.map((p) => p.address) : []));
    expect(withdrawn).toEqual(['192.0.2.11']);
    const cease = last.at(-1);
    expect(cease?.type).toBe('notification');
    expect(cease?.type === 'notification' && Buffer.from(cease.data).toString('utf8')).toContain('maintenance');
    expect(thread.status()[0]?.state).not.toBe('Established');
  }, 30_000);

  it('a thread that dies is started again, and the peer gets the routes again', async () => {
    const { thread, peer, log, changes } = await start(90, 60_000);
    thread.setAnnouncements([route('192.0.2.21')]);
    await until('the route', () => routeUpdates(peer.arrivals) === 1, 5_000);
    // The thread dies (as on a bug that throws in it).
    await (thread as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await until('the line', () => log.lines().some((l) => l.includes('The BGP thread exited')), 3_000);
    expect(thread.status()[0]).toMatchObject({ state: 'Idle', lastError: expect.stringMatching(/the BGP thread exited/) });
    await until('Established again', () => thread.status()[0]?.state === 'Established', 15_000);
    await until('the route again', () => routeUpdates(peer.arrivals) === 2, 5_000);
    expect(types(peer.arrivals).filter((t) => t === 'closed')).toEqual(['closed']);
    expect(changes.filter((c) => c.up)).toHaveLength(2);
  }, 40_000);
});
