/**
 * runDaemon in this process, with its signals from an emitter: what it does
 * with signals that arrive before it is ready to act on them.
 */
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runDaemon } from '../src/main.js';
import { assertFreshBuild } from './support/fresh-build.js';
import { freePort } from './pool/helpers.js';
import { getJson } from '../src/cli/control-client.js';
import type { DaemonSnapshot } from '../src/api/types.js';

async function waitForText(file: string, pattern: RegExp, deadlineMs: number): Promise<void> {
  const start = Date.now();
  while (!(existsSync(file) && pattern.test(readFileSync(file, 'utf8')))) {
    if (Date.now() - start > deadlineMs) throw new Error(`no ${pattern} in ${file} within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('runDaemon signals', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds a SIGHUP and a SIGUSR1 sent while it starts, and acts on each once running', async () => {
    dir = mkdtempSync(join(tmpdir(), 'pybal-main-'));
    const conf = join(dir, 'pybal.conf');
    const pool = join(dir, 'pool');
    const log = join(dir, 'pybal.log');
    writeFileSync(pool, "{ 'host': '127.0.0.1', 'weight': 10, 'enabled': True }\n");
    writeFileSync(conf, `[global]\nbgp = no\n\n[web]\nprotocol = tcp\nip = 192.0.2.11\nport = 80\nscheduler = wrr\nconfig = file://${pool}\n`);
    const signals = new EventEmitter();
    const run = runDaemon(
      { configFile: conf, dryRun: true, debug: false, logFile: log, logFormat: 'text', controlSocket: join(dir, 'pybal.sock') },
      signals,
    );
    // At once, before the daemon has even opened its log: a process with no
    // handler yet would die of the SIGHUP (and open node's inspector on SIGUSR1).
    expect(signals.emit('SIGHUP')).toBe(true);
    expect(signals.emit('SIGUSR1')).toBe(true);
    await waitForText(log, /Configuration reloaded: 0 added, 0 removed, 0 changed, 1 unchanged/, 10_000);
    await waitForText(log, /SIGUSR1: reopened the log file/, 5_000);
    signals.emit('SIGTERM');
    // A second one during shutdown is caught and ignored.
    expect(signals.emit('SIGTERM')).toBe(true);
    expect(await run).toBe(0);
    expect(readFileSync(log, 'utf8')).toMatch(/INFO: Stopped\n$/);
    expect(readFileSync(log, 'utf8').match(/shutting down/g)).toHaveLength(1);
    for (const signal of ['SIGHUP', 'SIGUSR1', 'SIGTERM', 'SIGINT']) expect(signals.listenerCount(signal)).toBe(0);
  });

  it('keeps the API where it was when a reload names an address it cannot bind', async () => {
    dir = mkdtempSync(join(tmpdir(), 'pybal-main-'));
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const busyPort = (busy.address() as { port: number }).port;
    const port = await freePort();
    const conf = join(dir, 'pybal.conf');
    const pool = join(dir, 'pool');
    const log = join(dir, 'pybal.log');
    writeFileSync(pool, "{ 'host': '127.0.0.1', 'weight': 10, 'enabled': True }\n");
    const write = (apiPort: number): void =>
      writeFileSync(
        conf,
        `[global]\nbgp = no\ninstrumentation = yes\ninstrumentation_ips = [ '127.0.0.1' ]\ninstrumentation_port = ${apiPort}\n\n` +
          `[web]\nprotocol = tcp\nip = 192.0.2.11\nport = 80\nscheduler = wrr\nconfig = file://${pool}\n`,
      );
    write(port);
    const signals = new EventEmitter();
    const run = runDaemon({ configFile: conf, dryRun: true, debug: false, logFile: log, logFormat: 'text', controlSocket: join(dir, 'pybal.sock') }, signals);
    const alerts = async (): Promise<number> => (await fetch(`http://127.0.0.1:${port}/alerts`)).status;
    try {
      await waitForText(log, /starting with/, 10_000);
      await expect.poll(alerts, { timeout: 5_000 }).toBe(200);
      write(busyPort);
      signals.emit('SIGHUP');
      await waitForText(log, /instrumentation API cannot listen as configured \(see above\); it keeps its previous address/, 5_000);
      // Polled: fetch may first reuse its kept-alive connection to the listener the reload closed.
      await expect.poll(alerts, { timeout: 5_000 }).toBe(200);
      expect(readFileSync(log, "utf8")).not.toMatch(/Reload failed/);
    } catch (error) {
      throw new Error(`${String(error)}\n${readFileSync(log, 'utf8')}`);
    } finally {
      signals.emit('SIGTERM');
      expect(await run).toBe(0);
      await new Promise((r) => busy.close(r));
    }
  });
});

/**
 * runDaemon as it runs (not a dry run) with BGP on and a TCP listener on
 * 127.0.0.3:179 standing in for the router (pybal connects to port 179, so
 * root). This host has no IPVS: no service is ever programmed, so start-up
 * never completes and BGP starts after BGP_START_WAIT_MAX_MS (10 s). The
 * lab's tests prove the other way (start-up complete, then BGP) and the VIP
 * at a real router.
 */
const ROOT_WITHOUT_IPVS = process.getuid?.() === 0 && !existsSync('/proc/net/ip_vs');

describe.runIf(ROOT_WITHOUT_IPVS)('runDaemon: the BGP thread at a start (the build, dist/src/: the thread is its worker.js)', () => {
  let runBuilt: typeof runDaemon;
  beforeAll(async () => {
    assertFreshBuild(['src', 'src/bgp', 'src/runtime']);
    ({ runDaemon: runBuilt } = (await import(resolve('dist/src/main.js'))) as { runDaemon: typeof runDaemon });
  });
  let dir: string | undefined;
  let router: Server | undefined;
  afterEach(async () => {
    if (router) await new Promise((r) => router!.close(r));
    router = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The router stand-in: when each connection came, and whether its first bytes were a BGP OPEN. */
  async function listenAsRouter(): Promise<{ at: number; open: boolean }[]> {
    const connections: { at: number; open: boolean }[] = [];
    router = createServer((socket) => {
      const connection = { at: Date.now(), open: false };
      connections.push(connection);
      socket.once('data', (bytes: Buffer) => {
        // 16 bytes of marker, length, type 1 (OPEN).
        connection.open = bytes.length >= 19 && bytes.subarray(0, 16).every((b) => b === 0xff) && bytes[18] === 1;
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => router!.listen(179, '127.0.0.3', r));
    return connections;
  }

  /** pybal.conf with BGP to 127.0.0.3, listening on 127.0.0.1 only, and one service. */
  async function setUp(): Promise<{ conf: string; log: string; socket: string }> {
    dir = mkdtempSync(join(tmpdir(), 'pybal-main-bgp-'));
    const bgpPort = await freePort();
    const conf = join(dir, 'pybal.conf');
    const pool = join(dir, 'pool');
    writeFileSync(pool, "{ 'host': '127.0.0.1', 'weight': 10, 'enabled': True }\n");
    writeFileSync(
      conf,
      '[global]\nbgp = yes\nbgp-local-asn = 64600\nbgp-peer-address = 127.0.0.3\nbgp-nexthop-ipv4 = 192.0.2.100\nbgp-router-id = 192.0.2.100\n' +
        `bgp-local-ips = [ '127.0.0.1' ]\nbgp-local-port = ${bgpPort}\n\n` +
        `[web]\nprotocol = tcp\nip = 192.0.2.11\nport = 80\nscheduler = wrr\nconfig = file://${pool}\nmonitors = [ ]\n`,
    );
    return { conf, log: join(dir, 'pybal.log'), socket: join(dir, 'pybal.sock') };
  }

  it('with a service not programmed, waits 10 s (starting, no session), then connects and opens', async () => {
    const connections = await listenAsRouter();
    const { conf, log, socket } = await setUp();
    const signals = new EventEmitter();
    const run = runBuilt({ configFile: conf, dryRun: false, debug: false, logFile: log, logFormat: 'text', controlSocket: socket }, signals);
    try {
      await waitForText(log, /\[bgp\] INFO: BGP starts once every service is programmed \(at most 10 s\)/, 10_000);
      // The pool is read and the server pooled, but nothing is programmed: BGP is starting, and no connection came.
      await waitForText(log, /\[web\] INFO: Pooling server 127\.0\.0\.1/, 5_000);
      const status = await getJson<DaemonSnapshot>({ socket, timeoutMs: 5_000 }, '/status');
      expect(status.bgp).toMatchObject({ starting: true, enabled: false, wanted: true });
      expect(connections).toEqual([]);
      await waitForText(log, /\[bgp\] INFO: BGP starts: 0 of 1 service\(s\) programmed after 10\.0 s/, 15_000);
      await expect.poll(() => connections.length, { timeout: 10_000 }).toBeGreaterThan(0);
      await expect.poll(() => connections[0]!.open, { timeout: 5_000 }).toBe(true);
      const after = await getJson<DaemonSnapshot>({ socket, timeoutMs: 5_000 }, '/status');
      expect(after.bgp).toMatchObject({ starting: false, enabled: true });
      expect(after.bgp.peers.map((p) => p.peer)).toEqual(['127.0.0.3']);
    } catch (error) {
      throw new Error(`${String(error)}\n${existsSync(log) ? readFileSync(log, 'utf8') : ''}`);
    } finally {
      signals.emit('SIGTERM');
      expect(await run).toBe(0);
    }
  }, 40_000);

  it('a SIGTERM while BGP waits stops at once and starts no speaker', async () => {
    const connections = await listenAsRouter();
    const { conf, log, socket } = await setUp();
    const signals = new EventEmitter();
    const run = runBuilt({ configFile: conf, dryRun: false, debug: false, logFile: log, logFormat: 'text', controlSocket: socket }, signals);
    await waitForText(log, /BGP starts once every service is programmed/, 10_000);
    const termAt = Date.now();
    signals.emit('SIGTERM');
    expect(await run).toBe(0);
    // Not held for the wait, nor for the one a reload in progress gets (RELOAD_WAIT_ON_STOP_MS, 1 s): a behaviour, not a speed.
    expect(Date.now() - termAt).toBeLessThan(1_000);
    const text = readFileSync(log, 'utf8');
    expect(text).toMatch(/INFO: Stopped\n$/);
    expect(text).not.toMatch(/BGP starts:/);
    expect(connections).toEqual([]);
  });
});
