/**
 * pybal's Debian package on a clean Debian root under a real systemd (PID 1
 * of a User-Mode Linux guest, see systemd-guest.ts): the package installs on
 * the running system and enables its unit; `systemctl start` returns only once
 * pybal is ready (IPVS programmed, the API and the control socket answering,
 * read right after it returns) and fails on a configuration with errors,
 * `systemctl status` saying why; `systemctl reload` re-reads pybal.conf;
 * `systemctl restart` brings a new process; `systemctl stop` exits 0 and the
 * VIP is withdrawn at the BGP peer (BIRD); the service runs as the pybal user
 * with its three capabilities (and, given Nice=-5 by a drop-in, its control
 * plane at -5 and its checks at 0); `journalctl -u pybal` has pybal's lines.
 *
 * The guest runs systemd-guest.sh (the operator's steps) and powers off; the
 * assertions here read what each step printed and returned.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newScratchDir, repoRoot, tailFile } from '../lab/uml.js';
import { bootSystemd, buildNodejsPackage, cachedDebianRoot, cannotRunReason, prepareRoot, readStep, type Step } from './systemd-guest.js';

const skipReason = cannotRunReason() ?? (process.env.PYBAL_LAB === '0' ? 'PYBAL_LAB=0 leaves out the tests that boot a UML guest' : undefined);
if (skipReason !== undefined) process.stderr.write(`\n[systemd test] SKIPPED, NOT RUN: ${skipReason}\n\n`);

const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
const VIP = '203.0.113.1';

describe.skipIf(skipReason !== undefined)(`pybal's Debian package under a real systemd (clean Debian root, UML guest)`, () => {
  let scratch = '';
  let root = '';
  let failed = false;
  const step = (name: string): Step => readStep(root, name);
  /** A step's output, with what to look at when it is not as expected. */
  const why = (name: string): string => {
    const s = step(name);
    return `step ${name} exited ${s.rc}:\n${s.out}`;
  };

  beforeAll(async () => {
    scratch = newScratchDir(join(repoRoot(), '.lab-scratch'), 'systemd');
    root = join(scratch, 'root');
    const t0 = Date.now();
    const pybalDeb = execFileSync(process.execPath, [resolve('dist/packaging/build-deb.js')], {
      encoding: 'utf8',
      env: { ...process.env, PYBAL_DEB_OUT_DIR: scratch },
    }).trim();
    const t1 = Date.now();
    const cached = cachedDebianRoot();
    const t2 = Date.now();
    prepareRoot(root, cached.root, { pybalDeb, nodejsDeb: buildNodejsPackage(scratch), script: resolve('test/packaging/systemd-guest.sh') });
    const t3 = Date.now();
    const boot = await bootSystemd(root, scratch, { timeoutMs: 600_000 });
    process.stderr.write(
      `[systemd test] .deb ${((t1 - t0) / 1000).toFixed(1)} s, root ${cached.built ? 'debootstrapped' : 'from the cache'} ${((t2 - t1) / 1000).toFixed(1)} s, ` +
        `prepared ${((t3 - t2) / 1000).toFixed(1)} s, guest ${(boot.durationMs / 1000).toFixed(1)} s; ${scratch}\n`,
    );
    if (!existsSync(join(root, 'pybal-test', 'done'))) {
      failed = true;
      const script = join(root, 'pybal-test', 'script.log');
      throw new Error(
        `the guest ${boot.timedOut ? 'was killed at its deadline' : 'powered off'} before its script finished; console ${boot.consolePath}\n` +
          `--- console tail ---\n${tailFile(boot.consolePath, 80)}\n--- script tail ---\n${tailFile(script, 40)}`,
      );
    }
  }, 1_200_000);

  afterEach((context) => {
    if (context.task.result?.state === 'fail') failed = true;
  });

  afterAll(() => {
    if (scratch === '') return;
    // The root is half a gigabyte: only its results stay, and only when something failed.
    for (const name of ['steps', 'script.log']) {
      const from = join(root, 'pybal-test', name);
      if (!existsSync(from)) continue;
      mkdirSync(join(scratch, 'results'), { recursive: true });
      cpSync(from, join(scratch, 'results', name), { recursive: true });
    }
    if (process.env.PYBAL_LAB_KEEP !== '1') rmSync(root, { recursive: true, force: true });
    if (failed || process.env.PYBAL_LAB_KEEP === '1') process.stderr.write(`[systemd test] kept ${scratch} (console.log, results/)\n`);
    else rmSync(scratch, { recursive: true, force: true });
  });

  it('boots the clean root with systemd; the package installs on the running system, creates its user and enables its unit', () => {
    expect(step('boot-state').out.trim(), why('boot-failed')).toBe('running');
    expect(step('dpkg-install').rc, why('dpkg-install')).toBe(0);
    expect(step('dpkg-install').out).toMatch(/Setting up pybal \(/);
    expect(step('is-enabled').out.trim()).toBe('enabled');
    expect(step('user').out).toMatch(/^pybal:x:\d+:\d+:.*:\/nonexistent:\/usr\/sbin\/nologin$/m);
    // Enabled but not configured: the unit's condition keeps it from running.
    expect(step('start-unconfigured').rc, why('start-unconfigured')).toBe(0);
    expect(step('state-unconfigured').out).toMatch(/^ActiveState=inactive$/m);
    expect(step('state-unconfigured').out).toMatch(/^ConditionResult=no$/m);
  });

  it('systemctl start returns only once pybal is ready: right after it, IPVS has the service and the API and the control socket answer', () => {
    expect(step('start').rc, why('start')).toBe(0);
    // Read at once after start returned, no retry.
    const ipvs = step('ipvs-after-start').out;
    expect(ipvs).toMatch(new RegExp(`^TCP  ${VIP}:80 wrr\\s*$`, 'm'));
    expect(ipvs).toMatch(/^ {2}-> 192\.0\.2\.1:80\s+Route\s+10\s/m);
    expect(step('status-after-start').rc, why('status-after-start')).toBe(0);
    expect(step('status-after-start').out).toContain('web');
    expect(step('api-after-start').rc, why('api-after-start')).toBe(0);
    expect(step('api-after-start').out).toContain('web');
    expect(step('active-after-start').out.trim()).toBe('active');
    // The BGP session comes up after readiness (not part of it): BIRD got the VIP.
    expect(step('route-after-start').rc, why('route-after-start')).toBe(0);
    expect(step('route-after-start').out).toMatch(/BGP\.next_hop: 192\.0\.2\.2/);
  });

  it('runs as the pybal user with only CAP_NET_ADMIN, CAP_NET_BIND_SERVICE and CAP_NET_RAW, and no new privileges', () => {
    const uid = /^pybal:x:(\d+):/m.exec(step('user').out)?.[1];
    expect(uid).toBeDefined();
    const status = step('proc-status').out;
    // With the daemon's node options (src/cli/node-options.ts), as /usr/sbin/pybal gives them.
    expect(step('proc-cmdline').out).toContain('/usr/bin/node --max-semi-space-size=2 /usr/lib/pybal/dist/cli/pybal.js --config /etc/pybal/pybal.conf');
    // And its environment, as /usr/sbin/pybal gives it: two malloc arenas.
    expect(step('proc-environ').out.split('\n')).toContain('MALLOC_ARENA_MAX=2');
    expect(/^Uid:\s+(\d+)\s+(\d+)/m.exec(status)?.slice(1), status).toEqual([uid, uid]);
    // CAP_NET_BIND_SERVICE 10, CAP_NET_ADMIN 12, CAP_NET_RAW 13: 0x3400.
    expect(/^CapEff:\s+([0-9a-f]+)/m.exec(status)?.[1]).toBe('0000000000003400');
    expect(/^CapBnd:\s+([0-9a-f]+)/m.exec(status)?.[1]).toBe('0000000000003400');
    expect(/^NoNewPrivs:\s+(\d)/m.exec(status)?.[1]).toBe('1');
  });

  it('with an operator\'s Nice=-5 (a drop-in), runs its main and BGP threads at -5, its checks thread and the commands it runs at 0', () => {
    expect(step('daemon-reload').rc, why('daemon-reload')).toBe(0);
    const pid = Number(step('main-pid').out.trim());
    const threads = step('thread-nice')
      .out.trim()
      .split('\n')
      .map((line) => line.split(' ').map(Number) as [number, number]);
    expect(threads.find(([tid]) => tid === pid)?.[1], why('thread-nice')).toBe(-5);
    // The checks thread (and libuv's pool threads it may have started) at 0, every other thread at -5.
    expect(threads.filter(([, nice]) => nice === 0).length, why('thread-nice')).toBeGreaterThanOrEqual(1);
    expect(threads.filter(([, nice]) => nice !== 0 && nice !== -5), why('thread-nice')).toEqual([]);
    expect(threads.filter(([, nice]) => nice === -5).length, why('thread-nice')).toBeGreaterThanOrEqual(2);
    // The RunCommand check ran, at nice 0.
    expect(step('check-nice').out.trim(), why('check-nice')).toBe('0');
  });

  it('systemctl reload re-reads pybal.conf in the same process: its new pool file\'s weight reaches IPVS', () => {
    expect(step('ipvs-before-reload').out).toMatch(/-> 192\.0\.2\.1:80\s+Route\s+10\s/);
    expect(step('reload').rc, why('reload')).toBe(0);
    expect(step('ipvs-after-reload').out, why('ipvs-after-reload')).toMatch(/-> 192\.0\.2\.1:80\s+Route\s+25\s/);
    expect(step('pid-after-reload').out.trim()).toBe(step('main-pid').out.trim());
  });

  it('systemctl restart brings a new process, ready when it returns (IPVS and the control socket read at once), announcing the VIP again', () => {
    expect(step('restart').rc, why('restart')).toBe(0);
    const pid = step('pid-after-restart').out.trim();
    expect(pid).toMatch(/^[1-9]\d*$/);
    expect(pid).not.toBe(step('main-pid').out.trim());
    expect(step('ipvs-after-restart').out).toMatch(/-> 192\.0\.2\.1:80\s+Route\s+25\s/);
    expect(step('status-after-restart').rc, why('status-after-restart')).toBe(0);
    expect(step('route-after-restart').rc, why('route-after-restart')).toBe(0);
  });

  it('systemctl stop exits 0, leaves the unit inactive and the IPVS table as it was, and the VIP is withdrawn at the router', () => {
    expect(step('stop').rc, why('stop')).toBe(0);
    expect(step('active-after-stop').out.trim()).toBe('inactive');
    const show = step('show-after-stop').out;
    expect(show).toMatch(/^Result=success$/m);
    expect(show).toMatch(/^ExecMainStatus=0$/m);
    expect(step('ipvs-after-stop').out).toMatch(new RegExp(`^TCP  ${VIP}:80 wrr`, 'm'));
    expect(step('route-after-stop').rc, why('route-after-stop')).toBe(0);
    expect(step('route-after-stop').out).not.toContain(`${VIP}/32`);
  });

  it('systemctl start fails on a configuration with an error; systemctl status names check-config, journalctl -u pybal says why', () => {
    expect(step('bad-conf').out).toContain("monitors = [ 'Bogus' ]");
    expect(step('start-bad').rc).not.toBe(0);
    expect(step('start-bad').rc).not.toBeNull();
    // At once, status names the command that failed...
    expect(step('status-bad').out).toMatch(/ExecStartPre=\/usr\/sbin\/pybal check-config --config \/etc\/pybal\/pybal\.conf \(code=exited, status=[1-9]/);
    // ...and the journal, once journald has check-config's lines, what it said.
    expect(step('status-bad-why').out, why('status-bad-why')).toMatch(/pybal\[\d+\]: \/etc\/pybal\/pybal\.conf:\d+: monitors: unknown monitor 'Bogus'/);
    expect(step('show-bad').out).not.toMatch(/^ActiveState=active$/m);
    expect(step('show-bad').out).toMatch(/^Result=exit-code$/m);
    // It does not retry for ever: after StartLimitBurst failed starts the unit is failed.
    expect(step('show-bad-gave-up').out, why('show-bad-gave-up')).toContain('Start request repeated too quickly');
    expect(step('show-bad-gave-up').out).toMatch(/^ActiveState=failed$/m);
    expect(step('show-bad-gave-up').out).toMatch(/^SubState=failed$/m);
    expect(step('stop-bad').rc, why('stop-bad')).toBe(0);
    expect(step('show-bad-stopped').out).toMatch(/^ActiveState=(inactive|failed)$/m);
  });

  it('journalctl -u pybal shows pybal\'s own lines: start, ready, reload, the restart kept the routes, the stop withdrew them', () => {
    const journal = step('journal').out;
    expect(journal).toContain(`pybal ${version} starting with /etc/pybal/pybal.conf: 1 service(s)`);
    expect(journal).toContain('Ready: telling systemd (1 service(s))');
    expect(journal).toContain('SIGHUP: reopened the log file; re-reading /etc/pybal/pybal.conf');
    // bgp-graceful-restart is set: pybal asked systemd whether this SIGTERM was a restart, and got the right answer each time.
    expect(journal).toContain('Graceful restart (systemd is restarting pybal.service)');
    expect(journal).toContain('Not a restart (systemd is not restarting pybal.service): the routes are withdrawn');
    expect(journal).toContain('Stopped');
    expect(step('journal-short').out).toMatch(/ pybal-systemd-test pybal\[\d+\]: /);
  });
});
