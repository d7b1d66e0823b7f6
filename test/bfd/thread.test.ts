/**
 * BFD over real UDP on loopback: two engines (127.0.0.1 and 127.0.0.2, each
 * on a Control port of its own) come up, go down on AdminDown, and discard
 * what is not theirs; then the BFD thread of the build (BfdThread and its
 * worker from tsc's dist/src/), whose sessions keep their pace while the main
 * thread is busy and fall silent, so that the peer takes the director out,
 * when it is stuck; and the thread's worker as `pybal` starts it, from the
 * bundle (dist/cli/).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { BfdEngine } from '../../src/bfd/engine.js';
import { encodeControl } from '../../src/bfd/packet.js';
import type { BfdStateChange } from '../../src/bfd/session.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import type { BfdThreadConfig, FromBfdThread } from '../../src/bfd/thread-messages.js';
import { assertFreshBundle } from '../support/fresh-build.js';

const PORT_A = 23784;
const PORT_B = 33784;

async function until<T>(probe: () => T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('BFD engines over loopback UDP', () => {
  const engines: BfdEngine[] = [];
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.stop()));
  });

  function engine(local: string, peer: string, port: number, remotePort: number, changes: BfdStateChange[]): BfdEngine {
    const e = new BfdEngine({
      clock: createSystemClock(),
      peers: [{ address: peer, localAddress: local }],
      intervalMs: 50,
      detectMult: 3,
      controlPort: port,
      remotePort,
      onStateChange: (_peer, c) => changes.push(c),
      onProblem: (m) => {
        throw new Error(m);
      },
    });
    engines.push(e);
    return e;
  }

  it('come up, and an AdminDown takes the other down as Neighbor Signaled Session Down; strangers are discarded', async () => {
    const aChanges: BfdStateChange[] = [];
    const bChanges: BfdStateChange[] = [];
    const a = engine('127.0.0.1', '127.0.0.2', PORT_A, PORT_B, aChanges);
    const b = engine('127.0.0.2', '127.0.0.1', PORT_B, PORT_A, bChanges);
    await Promise.all([a.start(), b.start()]);
    await until(() => (a.status()[0]?.state === 'Up' && b.status()[0]?.state === 'Up' ? true : undefined), 5_000, 'both up');
    // Once up, at the configured 50 ms (after the Poll Sequence).
    await until(() => (a.status()[0]?.txIntervalMs === 50 ? true : undefined), 2_000, 'the fast pace');
    expect(a.status()[0]).toMatchObject({ peer: '127.0.0.2', remoteState: 'Up', detectionTimeMs: 150 });

    // A stranger, and a packet from the peer's address with a discriminator that is nobody's.
    const stranger = dgram.createSocket('udp4');
    await new Promise<void>((r) => stranger.bind(0, '127.0.0.3', () => r()));
    const packet = {
      diag: 0, state: 'Down' as const, poll: false, final: false, cpi: false, auth: false, demand: false, multipoint: false,
      detectMult: 3, myDiscriminator: 77, yourDiscriminator: 0, desiredMinTxUs: 1_000_000, requiredMinRxUs: 50_000, requiredMinEchoRxUs: 0,
    };
    await new Promise((r) => stranger.send(encodeControl(packet), PORT_A, '127.0.0.1', r));
    await new Promise((r) => stranger.send(encodeControl({ ...packet, state: 'Up', yourDiscriminator: 12345 }), PORT_A, '127.0.0.1', r));
    await new Promise((r) => stranger.send(Buffer.from('junk'), PORT_A, '127.0.0.1', r));
    stranger.close();
    await until(() => (Object.values(a.discards()).reduce((x, y) => x + y, 0) >= 3 ? true : undefined), 2_000, 'three discards');
    expect(a.discards()).toEqual({ 'not from a BGP peer': 1, 'unknown Your Discriminator': 1, '4 bytes, shorter than a Control packet': 1 });
    expect(a.status()[0]?.state).toBe('Up');

    await a.stop();
    engines.splice(engines.indexOf(a), 1);
    const down = await until(() => bChanges.find((c) => c.state === 'Down'), 2_000, 'b down');
    expect(down).toEqual({ previous: 'Up', state: 'Down', diag: 3, remoteDiag: 7 });
  });
});

describe('the BFD thread (the build, dist/src/)', () => {
  it('keeps its sessions up while the main thread is busy for less than silenceAfterMs; a stuck main thread silences it until it answers', async () => {
    const { BfdThread } = (await import(resolve('dist/src/bfd/bfd.js'))) as typeof import('../../src/bfd/bfd.js');
    const clock = createSystemClock();
    const logA = createMemoryLogger('info');
    const logB = createMemoryLogger('info');
    const common = { clock, intervalMs: 100, detectMult: 5 };
    const a = await BfdThread.start({ ...common, logger: logA.logger, peers: [{ address: '127.0.0.2', localAddress: '127.0.0.1' }], controlPort: PORT_A + 1, remotePort: PORT_B + 1, silenceAfterMs: 1_500 });
    const b = await BfdThread.start({ ...common, logger: logB.logger, peers: [{ address: '127.0.0.1', localAddress: '127.0.0.2' }], controlPort: PORT_B + 1, remotePort: PORT_A + 1, silenceAfterMs: 60_000 });
    try {
      await until(() => (a.status()[0]?.state === 'Up' && b.status()[0]?.state === 'Up' ? true : undefined), 5_000, 'both up');
      await new Promise((r) => setTimeout(r, 500));
      const busy = (ms: number): void => {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          // The main thread holds the event loop, as a large reconcile would.
        }
      };
      // A second of work (10 intervals, 2 detection times): the threads run on.
      busy(1_000);
      await new Promise((r) => setTimeout(r, 300));
      expect(logB.lines().filter((l) => l.includes('is down'))).toEqual([]);
      expect((await b.details())[0]).toMatchObject({ state: 'Up' });

      // Stuck for 3 s: after 1.5 s a stops sending, and b, on its own thread, takes the session down.
      busy(3_000);
      await until(() => (logA.lines().some((l) => l.includes('did not answer the BFD thread')) ? true : undefined), 2_000, "a's line");
      expect(logB.lines().filter((l) => l.includes('is down'))).toEqual(['[pybal] WARN: BFD session with 127.0.0.1 is down: Control Detection Time Expired']);
      expect(logA.lines().find((l) => l.includes('did not answer'))).toMatch(
        /ERROR: The main thread did not answer the BFD thread for 3\.\d s: BFD stopped sending meanwhile, so the routers will have taken this director out; it is sending again/,
      );
      await until(() => (b.status()[0]?.state === 'Up' ? true : undefined), 5_000, 'b up again');
      const details = (await a.details())[0];
      expect(details?.packetsOut).toBeGreaterThan(20);
    } finally {
      await a.stop();
      await b.stop();
    }
    // a told b it was going: b's last word on it is AdminDown, not a time-out.
    expect(logB.lines().filter((l) => l.includes('is down')).at(-1)).toBe(
      '[pybal] WARN: BFD session with 127.0.0.1 is down: Neighbor Signaled Session Down (the peer says: Administratively Down)',
    );
  }, 30_000);
});

describe('the BFD thread in the bundle (dist/cli/, as `pybal` starts it)', () => {
  it('starts from the URL that the bundled daemon gives it, and brings a session up', async () => {
    assertFreshBundle();
    // The file of dist/cli/ that holds bfd.ts (packaging/bundle-cli.ts rewrites its worker's URL).
    const meta = JSON.parse(readFileSync('dist/cli/meta.json', 'utf8')) as { outputs: Record<string, { inputs: Record<string, unknown> }> };
    const chunk = Object.keys(meta.outputs).find((file) => 'dist/src/bfd/bfd.js' in meta.outputs[file]!.inputs);
    expect(chunk).toBeDefined();
    // The chunk starts the BGP thread too (esbuild may call Worker Worker2 there).
    const urls = [...readFileSync(chunk!, 'utf8').matchAll(/new Worker\d*\(new URL\("([^"]+)", import\.meta\.url\)/g)].map((m) => m[1]!);
    expect(urls.filter((u) => u.includes('bfd'))).toEqual(['./bfd-worker.js']);
    const workerUrl = new URL('./bfd-worker.js', pathToFileURL(resolve(chunk!)));

    const changes: BfdStateChange[] = [];
    const peer = new BfdEngine({
      clock: createSystemClock(),
      peers: [{ address: '127.0.0.1', localAddress: '127.0.0.2' }],
      intervalMs: 50,
      detectMult: 3,
      controlPort: PORT_B + 2,
      remotePort: PORT_A + 2,
      onStateChange: (_peer, c) => changes.push(c),
      onProblem: (m) => {
        throw new Error(m);
      },
    });
    await peer.start();
    const config: BfdThreadConfig = {
      peers: [{ address: '127.0.0.2', localAddress: '127.0.0.1' }],
      intervalMs: 50,
      detectMult: 3,
      silenceAfterMs: 60_000,
      controlPort: PORT_A + 2,
      remotePort: PORT_B + 2,
    };
    const worker = new Worker(workerUrl, { workerData: config, name: 'pybal-bfd' });
    const messages: FromBfdThread[] = [];
    const exited = new Promise<number>((r) => worker.once('exit', r));
    worker.on('message', (m: FromBfdThread) => messages.push(m));
    try {
      await until(() => (messages.some((m) => m.type === 'started') ? true : undefined), 5_000, 'started');
      await until(() => (messages.some((m) => m.type === 'state' && m.change.state === 'Up') ? true : undefined), 5_000, "the bundled thread's session up");
      await until(() => (changes.some((c) => c.state === 'Up') ? true : undefined), 5_000, "the peer's session up");
      worker.postMessage({ type: 'stop' });
      await until(() => (messages.some((m) => m.type === 'stopped') ? true : undefined), 5_000, 'stopped');
      expect(await exited).toBe(0);
      expect(messages.filter((m) => m.type === 'error' || m.type === 'problem')).toEqual([]);
    } finally {
      await worker.terminate();
      await peer.stop();
    }
  }, 20_000);
});
