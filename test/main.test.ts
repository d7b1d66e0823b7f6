/**
 * runDaemon in this process, with its signals from an emitter: what it does
 * with signals that arrive before it is ready to act on them.
 */
import { EventEmitter } from 'node:events';
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
});
