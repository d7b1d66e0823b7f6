/**
 * The daemon as operators run it: the built `pybal` executable with a real
 * config, real pool files edited on disk, and its log file read back.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const PYBAL = resolve('dist/cli/pybal.js');

/** Waits until the file's text from `offset` on matches, or fails after deadlineMs. */
async function waitForLog(file: string, pattern: RegExp, deadlineMs: number, offset = 0): Promise<string> {
  const start = Date.now();
  for (;;) {
    const text = existsSync(file) ? readFileSync(file, 'utf8').slice(offset) : '';
    if (pattern.test(text)) return text;
    if (Date.now() - start > deadlineMs) throw new Error(`no ${pattern} in ${file} within ${deadlineMs} ms; log so far:\n${text}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function logSize(file: string): number {
  return existsSync(file) ? readFileSync(file, 'utf8').length : 0;
}

describe('pybal daemon (foundation)', () => {
  let dir: string;
  let conf: string;
  let pool: string;
  let log: string;
  let child: ChildProcess | undefined;

  /** pybal.conf: no BGP, one service [text_80] of the pool file, with these monitor lines (and these [global] ones). */
  function writeServiceConf(monitorLines: readonly string[], globalLines: readonly string[] = []): void {
    const service = ['[text_80]', 'protocol = tcp', 'ip = 192.0.2.11', 'port = 80', 'scheduler = wrr', `config = file://${pool}`];
    writeFileSync(conf, ['[global]', 'bgp = no', ...globalLines, '', ...service, ...monitorLines, ''].join('\n'));
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pybal-daemon-'));
    conf = join(dir, 'pybal.conf');
    pool = join(dir, 'text-servers');
    log = join(dir, 'pybal.log');
    writeServiceConf(["monitors = [ 'IdleConnection' ]"]);
    writeFileSync(pool, "{ 'host': 'mw1', 'weight': 10, 'enabled': True }\n{ 'host': 'mw2', 'weight': 10, 'enabled': False }\n");
  });

  afterEach(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child?.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  function start(...extra: string[]): ChildProcess {
    child = spawn(process.execPath, [PYBAL, '-c', conf, '--log-file', log, '--control-socket', join(dir, 'pybal.sock'), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    return child;
  }

  it('tells systemd it is ready (Type=notify) once its configuration, API and the kernel\'s table are in', { timeout: 40_000 }, async () => {
    // systemd's notification socket, played by python (Node has no Unix datagram socket).
    // As systemd does, it also takes the BARRIER=1 that systemd-notify sends after its
    // message, and closes the descriptor that comes with it, which ends systemd-notify's
    // wait (a receiver gone before the barrier makes systemd-notify fail).
    const notify = join(dir, 'notify.sock');
    const script = [
      'import os, socket',
      'ARRAY = __import__("array")',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      `s.bind(${JSON.stringify(notify)})`,
      "print('bound', flush=True)",
      's.settimeout(20)',
      'while True:',
      '    data, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))',
      '    for level, kind, payload in anc:',
      '        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:',
      '            fds = ARRAY.array("i"); fds.frombytes(payload[: len(payload) - len(payload) % 4])',
      '            for fd in fds: os.close(fd)',
      '    print(data.decode(), flush=True)',
      "    if data.startswith(b'BARRIER=1'): break",
    ].join('\n');
    const receiver = spawn('python3', ['-c', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    receiver.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise<void>((resolve) => receiver.stdout?.once('data', () => resolve()));
    // A dry run: this machine has no IPVS, and readiness waits for every
    // service to be programmed (a dry run's services are, once desired).
    child = spawn(process.execPath, [PYBAL, '--dry-run', '-c', conf, '--log-file', log, '--control-socket', join(dir, 'pybal.sock')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NOTIFY_SOCKET: notify },
    });
    const text = await waitForLog(log, /Ready: telling systemd \(1 service\(s\), dry run\)/, 15_000);
    // By then the API listened and the service was desired (the pool read and applied).
    expect(text.indexOf('Status API listening')).toBeLessThan(text.indexOf('Ready: telling systemd'));
    expect(text.search(/Added \d+ server\(s\)/)).toBeGreaterThan(-1);
    expect(text.search(/Added \d+ server\(s\)/)).toBeLessThan(text.indexOf('Ready: telling systemd'));
    // The log says start-up is over, with how long it took, right before telling systemd.
    expect(text).toMatch(/INFO: Start-up complete: 1 service\(s\) desired \(dry run\), \d+\.\d s after the process started\n.*Ready: telling systemd/);
    if (receiver.exitCode === null) await new Promise((r) => receiver.once('exit', r));
    expect(out).toContain('READY=1');
    expect(out).toContain(`MAINPID=${child.pid}`);
    expect(out).toContain('STATUS=1 service(s), dry run');
    expect(readFileSync(log, 'utf8')).not.toContain('Could not tell systemd');
    // V8 keeps sizing the heap by its defaults (memory-saving is off): the line would be logged with the ready one.
    expect(readFileSync(log, 'utf8')).not.toContain('memory-saving');
  });

  it('with memory-saving = yes, sizes its main thread\'s heap for memory once started (the bundle finds the v8heap addon)', { timeout: 40_000 }, async () => {
    writeServiceConf(["monitors = [ 'IdleConnection' ]"], ['memory-saving = yes']);
    child = spawn(process.execPath, [PYBAL, '--dry-run', '-c', conf, '--log-file', log, '--control-socket', join(dir, 'pybal.sock')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const text = await waitForLog(log, /memory-saving: the main thread's JS heap (is sized for memory|stays sized by V8's defaults)/, 15_000);
    expect(text).toMatch(/Start-up complete[^\n]*\n.*INFO: memory-saving: the main thread's JS heap is sized for memory from now on \(V8's memory savings mode\)\n/);
  });

  it('one daemon at a time: a second on the same control socket refuses to start, and the first serves on', async () => {
    start();
    await waitForLog(log, /Status API listening on/, 10_000);
    const secondLog = join(dir, 'second.log');
    const second = spawnSync(process.execPath, [PYBAL, '-c', conf, '--log-file', secondLog, '--control-socket', join(dir, 'pybal.sock')], { encoding: 'utf8', timeout: 15_000 });
    expect(second.status).toBe(1);
    expect(readFileSync(secondLog, 'utf8')).toMatch(
      new RegExp(`CRITICAL: Another pybal is running: it answers on ${join(dir, 'pybal.sock').replace(/[.]/g, '\\.')}\\. Not starting a second one`),
    );
    // The first still answers, and its socket is still there.
    const status = spawnSync(process.execPath, [PYBAL, 'status', '--socket', join(dir, 'pybal.sock')], { encoding: 'utf8', timeout: 15_000 });
    expect(status.stdout).toContain('text_80');
  });

  it('follows pool edits within 2 s, survives the file vanishing, reopens its log and stops cleanly', async () => {
    const proc = start();
    await waitForLog(log, /\[text_80\] INFO: Added 2 server\(s\): 1 enabled server\(s\) and 1 disabled server\(s\)/, 10_000);

    // An edit: one server added, one enabled, and a line with a mistake.
    let offset = logSize(log);
    writeFileSync(
      pool,
      "{ 'host': 'mw1', 'weight': 10, 'enabled': True }\n" +
        "{ 'host': 'mw2', 'weight': 10, 'enabled': True }\n" +
        "{ 'host': 'mw3', 'weight': '10', 'enabled': True }\n" +
        "{ 'host': 'mw4', 'weight': 0, 'enabled': True }  # drained\n",
    );
    const afterEdit = await waitForLog(log, /New enabled server mw4, weight 0/, 2_000, offset);
    expect(afterEdit).toMatch(/Merged enabled server mw2, weight 10/);
    expect(afterEdit).toContain(`[text_80 pool] WARN: ${pool}:3: weight: expected an int >= 0, got str '10'`);
    expect(afterEdit).not.toMatch(/mw3, weight/);

    // The file vanishes: the error is logged once and nothing is removed.
    offset = logSize(log);
    unlinkSync(pool);
    await waitForLog(log, /\[text_80 pool\] WARN: .*keeping the last good pool of 3 servers/, 3_000, offset);
    await new Promise((r) => setTimeout(r, 2_500));
    const whileMissing = readFileSync(log, 'utf8').slice(offset);
    expect(whileMissing.match(/keeping the last good pool/g)).toHaveLength(1);
    expect(whileMissing).not.toMatch(/Removing server/);

    // It comes back with the same servers and the bad line fixed away:
    // recovery is logged and no server changes.
    offset = logSize(log);
    writeFileSync(
      pool,
      "{ 'host': 'mw1', 'weight': 10, 'enabled': True }\n" +
        "{ 'host': 'mw2', 'weight': 10, 'enabled': True }\n" +
        "{ 'host': 'mw4', 'weight': 0, 'enabled': True }  # drained\n",
    );
    const recovered = await waitForLog(log, /\[text_80 pool\] INFO: .* reads fine again/, 3_000, offset);
    expect(recovered).not.toMatch(/New |Merged |Removing /);

    // logrotate: move the file away, SIGUSR1, and new lines go to a new
    // file; the configuration is not re-read.
    renameSync(log, `${log}.1`);
    proc.kill('SIGUSR1');
    await waitForLog(log, /INFO: SIGUSR1: reopened the log file/, 3_000);
    expect(readFileSync(log, 'utf8')).not.toMatch(/re-reading/);
    // SIGHUP reopens too, and reloads.
    renameSync(log, `${log}.2`);
    proc.kill('SIGHUP');
    await waitForLog(log, /INFO: SIGHUP: reopened the log file; re-reading/, 3_000);
    await waitForLog(log, /Configuration reloaded: 0 added, 0 removed, 0 changed, 1 unchanged/, 3_000);

    proc.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => proc.once('exit', r));
    expect(code).toBe(0);
    expect(readFileSync(log, 'utf8')).toMatch(/INFO: Stopped\n$/);
  });

  it.each([
    ['-n on the command line', ['-n'], []],
    ["dry-run = yes in [global], as Wikimedia's templates render it", [], ['dry-run = yes']],
  ])('in dry run (%s) starts no BGP and says once what it would announce', async (_how, args, keys) => {
    writeFileSync(
      conf,
      [
        '[global]',
        ...keys,
        'bgp = yes',
        'bgp-local-asn = 64600',
        'bgp-peer-address = 127.0.0.1',
        'bgp-nexthop-ipv4 = 192.0.2.100',
        '',
        '[text_80]',
        'protocol = tcp',
        'ip = 192.0.2.11',
        'port = 80',
        'scheduler = wrr',
        `config = file://${pool}`,
        '',
      ].join('\n'),
    );
    const proc = start(...args);
    await waitForLog(log, /starting with .*\(dry run: nothing will be changed in the kernel\)/, 10_000);
    await waitForLog(log, /\[bgp\] INFO: Dry run: would announce 192\.0\.2\.11\/32\n/, 10_000);
    await waitForLog(log, /Added 2 server\(s\)/, 10_000);
    // A pool change publishes again; the routes are the same, so nothing more is said.
    writeFileSync(pool, "{ 'host': 'mw1', 'weight': 10, 'enabled': True }\n{ 'host': 'mw3', 'weight': 10, 'enabled': True }\n");
    await waitForLog(log, /New enabled server mw3, weight 10/, 5_000);
    const text = readFileSync(log, 'utf8');
    expect(text.match(/Dry run: would announce/g)).toHaveLength(1);
    expect(text).not.toMatch(/BGP session/);
    proc.kill('SIGTERM');
    expect(await new Promise<number | null>((r) => proc.once('exit', r))).toBe(0);
  });

  it('keeps its configuration on a SIGHUP with no service, and SIGTERM right after a SIGHUP still stops it at once', async () => {
    const proc = start();
    await waitForLog(log, /\[text_80\] INFO: Added 2 server\(s\)/, 10_000);
    writeFileSync(conf, '[global]\nbgp = no\n');
    proc.kill('SIGHUP');
    const refused = await waitForLog(log, /keeping the running configuration/, 3_000);
    expect(refused).toMatch(/no services are defined/);
    expect(refused).not.toMatch(/Configuration reloaded/);
    // The service is still there and still follows its pool.
    writeFileSync(pool, "{ 'host': 'mw1', 'weight': 10, 'enabled': True }\n{ 'host': 'mw2', 'weight': 10, 'enabled': True }\n");
    await waitForLog(log, /Merged enabled server mw2, weight 10/, 3_000);

    // A changed service, then SIGTERM in the same moment.
    writeFileSync(conf, `[global]\nbgp = no\n\n[text_80]\nprotocol = tcp\nip = 192.0.2.11\nport = 80\nscheduler = rr\nconfig = file://${pool}\n`);
    const t0 = Date.now();
    proc.kill('SIGHUP');
    proc.kill('SIGTERM');
    expect(await new Promise<number | null>((r) => proc.once('exit', r))).toBe(0);
    // Shutdown waits at most a second for a reload; 5 s leaves the slow machine room.
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(readFileSync(log, 'utf8')).toMatch(/INFO: Stopped\n$/);
  });

  // An operator's Nice=-5 for pybal.service; a nice value below 0 needs root (as the suite runs).
  it.skipIf(process.getuid?.() !== 0)('under a negative nice, its checks thread and the commands it runs go back to 0 while the other threads keep it; the checks still pool the server', { timeout: 20_000 }, async () => {
    const niceFile = join(dir, 'command-nice');
    writeFileSync(pool, "{ 'host': '127.0.0.1', 'weight': 10, 'enabled': True }\n");
    writeServiceConf([
      "monitors = [ 'RunCommand' ]",
      'runcommand.command = /bin/sh',
      // Field 19 of /proc/self/stat: the command's own nice value.
      `runcommand.arguments = [ '-c', 'cut -d" " -f19 /proc/self/stat > ${niceFile}' ]`,
      'runcommand.interval = 1',
    ]);
    child = spawn('nice', ['-n', '-5', process.execPath, PYBAL, '-n', '-c', conf, '--log-file', log, '--control-socket', join(dir, 'pybal.sock')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = child.pid!;
    const text = await waitForLog(log, /\[text_80 127\.0\.0\.1 RunCommand\] INFO: up: \/bin\/sh exited with code 0/, 15_000);
    expect(text).toContain("The checks thread runs at nice 0, the daemon's other threads at -5");
    // The check still decides: its server is up and pooled.
    expect(text).toMatch(/\[text_80\] INFO: Server 127\.0\.0\.1 \(enabled\/up\/pooled\) is up/);
    expect(readFileSync(niceFile, 'utf8').trim()).toBe('0');
    // Every thread's nice value (field 19 of its stat; the name in parentheses may hold spaces).
    const threads = readdirSync(`/proc/${pid}/task`).map((tid) => {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      return { tid: Number(tid), nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) };
    });
    expect(threads.find((t) => t.tid === pid)?.nice).toBe(-5);
    expect(threads.filter((t) => t.nice === 0).length).toBeGreaterThanOrEqual(1);
    expect(threads.filter((t) => t.nice !== 0 && t.nice !== -5), JSON.stringify(threads)).toEqual([]);
  });

  it('refuses to start on an invalid configuration and logs every error', async () => {
    writeFileSync(conf, ['[text_80]', 'protocol = tcpp', 'ip = 192.0.2.300', 'port = 80', 'scheduler = wrr', `config = file://${pool}`, ''].join('\n'));
    const proc = start();
    const code = await new Promise<number | null>((r) => proc.once('exit', r));
    expect(code).toBe(1);
    const text = readFileSync(log, 'utf8');
    expect(text).toContain(`${conf}:2: protocol: `);
    expect(text).toContain(`${conf}:3: ip: `);
    expect(text).toMatch(/CRITICAL: .*2 error\(s\); not starting/);
  });
});
