import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSystemClock, flushAsync, ManualClock } from '../../src/runtime/clock.js';
import { createRunCommandMonitor, escapeOutput, substituteArguments } from '../../src/monitors/run-command.js';
import { createRunLimiter } from '../../src/monitors/run-limiter.js';
import type { RunCommandConfig } from '../../src/config/types.js';
import { runCommandConfig } from './support/configs.js';
import { recorder, target, waitFor } from './support/helpers.js';

const SH = '/bin/sh';
const sh = (script: string, ...rest: RunCommandConfig['arguments']): Pick<RunCommandConfig, 'command' | 'arguments'> => ({
  command: SH,
  arguments: [{ literal: '-c' }, { literal: script }, { literal: 'check' }, ...rest],
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('RunCommand pieces (pure)', () => {
  it('substitutes server.host and server.ip', () => {
    expect(substituteArguments([{ literal: '/etc/pybal/check' }, { server: 'host' }, { server: 'ip' }, { literal: '' }], target('10.0.0.1', 80, 'mw1001.eqiad.wmnet'))).toEqual([
      '/etc/pybal/check',
      'mw1001.eqiad.wmnet',
      '10.0.0.1',
      '',
    ]);
  });
  it("escapes output as PyBal's log does", () => {
    expect(escapeOutput('a\nb\tc\r\\')).toBe('a\\nb\\tc\\r\\\\');
  });
});

describe('run limiter', () => {
  it('caps concurrency, serves waiters in order, and drops aborted waiters', async () => {
    const limiter = createRunLimiter(2);
    const a = await limiter.acquire();
    const b = await limiter.acquire();
    const order: string[] = [];
    const controller = new AbortController();
    const c = limiter.acquire().then((release) => (order.push('c'), release));
    const d = limiter.acquire(controller.signal).then(
      () => order.push('d'),
      () => order.push('d aborted'),
    );
    const e = limiter.acquire().then((release) => (order.push('e'), release));
    expect([limiter.running(), limiter.waiting()]).toEqual([2, 3]);
    controller.abort(new Error('stop'));
    await flushAsync();
    a();
    a(); // a second release is harmless
    await flushAsync();
    expect(order).toEqual(['d aborted', 'c']);
    b();
    await flushAsync();
    expect(order).toEqual(['d aborted', 'c', 'e']);
    (await c)();
    (await e)();
    await d;
    expect([limiter.running(), limiter.waiting()]).toEqual([0, 0]);
  });
  it('rejects a bad cap', () => {
    expect(() => createRunLimiter(0)).toThrow(/positive integer/);
    expect(() => createRunLimiter(1).setMaxConcurrent(0)).toThrow(/positive integer/);
  });
  it('takes a new cap at run time: a higher one starts waiters at once, a lower one lets running ones finish first', async () => {
    const limiter = createRunLimiter(1);
    const a = await limiter.acquire();
    const started: string[] = [];
    const waiter = (name: string) => limiter.acquire().then((release) => (started.push(name), release));
    const b = waiter('b');
    const c = waiter('c');
    const d = waiter('d');
    limiter.setMaxConcurrent(3);
    await flushAsync();
    expect(started).toEqual(['b', 'c']);
    expect([limiter.running(), limiter.waiting()]).toEqual([3, 1]);
    limiter.setMaxConcurrent(1);
    a();
    (await b)();
    await flushAsync();
    // Two released, one still running: over the cap of 1 until c ends, so d waits.
    expect(started).toEqual(['b', 'c']);
    expect([limiter.running(), limiter.waiting()]).toEqual([1, 1]);
    (await c)();
    await flushAsync();
    expect(started).toEqual(['b', 'c', 'd']);
    (await d)();
    expect([limiter.running(), limiter.waiting()]).toEqual([0, 0]);
  });
});

describe('RunCommand with real processes', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'pybal-runcommand-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exit 0 is up, non-zero is down, and it recovers; arguments get server.host and server.ip', async () => {
    const flag = path.join(dir, 'broken');
    const argsFile = path.join(dir, 'args');
    const clock = new ManualClock();
    const rec = recorder();
    const config = runCommandConfig(
      sh(`printf '%s\\n' "$@" > ${argsFile}; test ! -e ${flag}`, { server: 'host' }, { server: 'ip' }, { literal: 'one two' }),
    );
    const monitor = createRunCommandMonitor(config, target('127.0.0.1', 80, 'mw1001'), rec.deps(clock, { random: () => 0.5 }));
    monitor.start();
    await waitFor(() => rec.reports.length === 1, 'the first report');
    expect(rec.reports[0]).toMatchObject({ up: true, firstCheck: true });
    expect(rec.results[0]).toMatchObject({ ok: true, exitCode: 0 });
    expect(await readFile(argsFile, 'utf8')).toBe('mw1001\n127.0.0.1\none two\n');
    await rm(argsFile);
    await import('node:fs/promises').then((fs) => fs.writeFile(flag, ''));
    await clock.advanceAsync(60_000);
    await waitFor(() => rec.reports.length === 2, 'the down report');
    expect(rec.reports[1]).toMatchObject({ up: false, reason: '/bin/sh: process ended with exit code 1' });
    expect(rec.results[1]).toMatchObject({ ok: false, exitCode: 1 });
    await rm(flag);
    await clock.advanceAsync(60_000);
    await waitFor(() => rec.reports.length === 3, 'the recovery');
    expect(rec.states()).toEqual(['up', 'down', 'up']);
    await monitor.stop();
  });

  it('runs without a shell and with an empty environment, and logs output at debug', async () => {
    const marker = path.join(dir, 'injected');
    const rec = recorder();
    const monitor = createRunCommandMonitor(
      runCommandConfig({ command: '/usr/bin/env', arguments: [] }),
      target('127.0.0.1', 80),
      rec.deps(createSystemClock()),
    );
    monitor.start();
    await waitFor(() => rec.reports.length === 1, 'a report');
    await monitor.stop();
    expect(rec.reports[0]?.up).toBe(true);
    // env printed nothing: the environment is empty.
    expect(rec.log.lines().filter((l) => l.includes('Cmd stdout'))).toEqual([]);

    const rec2 = recorder();
    const echo = createRunCommandMonitor(
      runCommandConfig({ command: '/bin/echo', arguments: [{ literal: `$(touch ${marker})` }, { literal: 'a\tb' }] }),
      target('127.0.0.1', 80),
      rec2.deps(createSystemClock()),
    );
    echo.start();
    await waitFor(() => rec2.reports.length === 1, 'a report');
    await echo.stop();
    expect(existsSync(marker)).toBe(false);
    expect(rec2.log.lines()).toContain(`[pybal] DEBUG: Cmd stdout: $(touch ${marker}) a\\tb\\n`);
  });

  it('runs the command in its own process group (session leader)', async () => {
    const out = path.join(dir, 'pgid');
    const rec = recorder();
    const monitor = createRunCommandMonitor(
      runCommandConfig(sh(`/bin/ps -o pid=,pgid=,sid= -p $$ > ${out}`)),
      target('127.0.0.1', 80),
      rec.deps(createSystemClock()),
    );
    monitor.start();
    await waitFor(() => rec.reports.length === 1, 'a report');
    await monitor.stop();
    const [pid, pgid, sid] = (await readFile(out, 'utf8')).trim().split(/\s+/).map(Number);
    expect(pgid).toBe(pid);
    expect(sid).toBe(pid);
    expect(pid).not.toBe(process.pid);
  });

  it('kills the whole process group at the deadline: a hanging command and its children', async () => {
    const pids = path.join(dir, 'hang-pids');
    const clock = new ManualClock();
    const rec = recorder();
    const monitor = createRunCommandMonitor(
      runCommandConfig({ ...sh(`/bin/sleep 1000 & echo $$ $! > ${pids}.tmp; mv ${pids}.tmp ${pids}; wait`), timeoutMs: 20_000 }),
      target('127.0.0.1', 80),
      rec.deps(clock),
    );
    monitor.start();
    await waitFor(() => existsSync(pids), 'the command to start');
    const [shell, child] = (await readFile(pids, 'utf8')).trim().split(' ').map(Number) as [number, number];
    expect(alive(shell) && alive(child)).toBe(true);
    await clock.advanceAsync(19_999);
    expect(rec.reports).toEqual([]);
    await clock.advanceAsync(1);
    await waitFor(() => rec.reports.length === 1, 'the timeout report');
    expect(rec.reports[0]).toMatchObject({ up: false, reason: '/bin/sh: timed out after 20 s; process group killed' });
    await waitFor(() => !alive(shell) && !alive(child), 'both processes to die');
    await monitor.stop();
  });

  it('kills children left behind after the command exits, and warns', async () => {
    const pidFile = path.join(dir, 'leftover');
    const rec = recorder();
    const monitor = createRunCommandMonitor(
      runCommandConfig(sh(`/bin/sleep 1000 > /dev/null 2>&1 & echo $! > ${pidFile}; exit 0`)),
      target('127.0.0.1', 80),
      rec.deps(createSystemClock()),
    );
    monitor.start();
    await waitFor(() => rec.reports.length === 1, 'a report');
    await monitor.stop();
    expect(rec.reports[0]?.up).toBe(true);
    const child = Number((await readFile(pidFile, 'utf8')).trim());
    await waitFor(() => !alive(child), 'the leftover child to die');
    expect(rec.log.lines().some((l) => l.startsWith('[pybal] WARN: Command /bin/sh -c') && l.endsWith('left child processes behind, which have been killed!'))).toBe(true);
  });

  it('stop() kills a running command', async () => {
    const pidFile = path.join(dir, 'stopped');
    const rec = recorder();
    const monitor = createRunCommandMonitor(runCommandConfig(sh(`echo $$ > ${pidFile}; exec /bin/sleep 1000`)), target('127.0.0.1', 80), rec.deps(createSystemClock()));
    monitor.start();
    await waitFor(() => existsSync(pidFile), 'the command to start');
    const pid = Number((await readFile(pidFile, 'utf8')).trim() || '0');
    await monitor.stop();
    expect(pid > 0 && alive(pid)).toBe(false);
    expect(rec.reports).toEqual([]);
  });

  it('a missing executable is down with a clear reason', async () => {
    const rec = recorder();
    const monitor = createRunCommandMonitor(runCommandConfig({ command: '/nonexistent/check' }), target('127.0.0.1', 80), rec.deps(createSystemClock()));
    monitor.start();
    await waitFor(() => rec.reports.length === 1, 'a report');
    await monitor.stop();
    expect(rec.reports[0]).toMatchObject({ up: false, reason: expect.stringMatching(/^could not run \/nonexistent\/check: .*ENOENT/) });
  });

  it('the shared limiter keeps commands from running at once', async () => {
    const lock = path.join(dir, 'lock');
    const limiter = createRunLimiter(1);
    const recs = [recorder(), recorder(), recorder(), recorder()];
    let peak = 0;
    const monitors = recs.map((rec) =>
      createRunCommandMonitor(
        // Fails if another command holds the lock at the same time.
        runCommandConfig(sh(`/bin/mkdir ${lock} || exit 3; /bin/sleep 0.1; /bin/rmdir ${lock}`)),
        target('127.0.0.1', 80),
        rec.deps(createSystemClock(), {
          runLimiter: {
            acquire: async (signal) => {
              const release = await limiter.acquire(signal);
              peak = Math.max(peak, limiter.running());
              return release;
            },
            running: limiter.running,
            waiting: limiter.waiting,
            setMaxConcurrent: limiter.setMaxConcurrent,
          },
        }),
      ),
    );
    for (const m of monitors) m.start();
    await waitFor(() => recs.every((r) => r.reports.length === 1), 'all reports');
    await Promise.all(monitors.map((m) => m.stop()));
    expect(recs.map((r) => r.states()[0])).toEqual(['up', 'up', 'up', 'up']);
    expect(peak).toBe(1);
  });
});
