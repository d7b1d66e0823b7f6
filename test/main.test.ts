/**
 * runDaemon in this process, with its signals from an emitter: what it does
 * with signals that arrive before it is ready to act on them.
 */
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runDaemon } from '../src/main.js';

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
    const free: Server = createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const port = (free.address() as { port: number }).port;
    await new Promise((r) => free.close(r));
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
      expect(await alerts()).toBe(200);
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
