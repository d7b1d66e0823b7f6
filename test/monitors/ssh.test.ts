import { createHmac, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSystemClock, ManualClock } from '../../src/runtime/clock.js';
import { entryMatches, knownHostNames, parseKnownHosts, verifyHostKey } from '../../src/monitors/known-hosts.js';
import { createRunCommandMonitor } from '../../src/monitors/run-command.js';
import { createSshMonitor } from '../../src/monitors/ssh.js';
import { startRealServer, type RealServer } from '../support/real-server.js';
import { runCommandConfig, sshConfig } from './support/configs.js';
import { establishedTo, loopbackAddress, recorder, target, waitFor } from './support/helpers.js';
import { startSshd, type TestSshd } from './support/sshd.js';

const KEY_A = Buffer.from('key-a').toString('base64');
const KEY_B = Buffer.from('key-b').toString('base64');

function hashed(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

describe('known_hosts (pure)', () => {
  const text = [
    '# comment',
    `mw1001.eqiad.wmnet,10.0.0.1 ssh-ed25519 ${KEY_A}`,
    `[10.0.0.2]:2222 ssh-ed25519 ${KEY_A}`,
    `${hashed('10.0.0.3')} ssh-ed25519 ${KEY_B}`,
    `*.codfw.wmnet,!bad.codfw.wmnet ssh-ed25519 ${KEY_A}`,
    `@revoked 10.0.0.3 ssh-ed25519 ${KEY_B}`,
    `@cert-authority *.wmnet ssh-ed25519 ${KEY_B}`,
  ].join('\n');
  const entries = parseKnownHosts(text);
  const a = Buffer.from('key-a');
  const b = Buffer.from('key-b');

  it('reads entries, skipping comments and CA lines', () => {
    expect(entries).toHaveLength(5);
    expect(entries[4]?.marker).toBe('revoked');
  });
  it('names carry the port unless it is 22', () => {
    expect(knownHostNames(['h', '10.0.0.2'], 22)).toEqual(['h', '10.0.0.2']);
    expect(knownHostNames(['10.0.0.2'], 2222)).toEqual(['[10.0.0.2]:2222']);
  });
  it('matches plain, bracketed, hashed and wildcard entries; negation excludes', () => {
    expect(verifyHostKey(entries, ['10.0.0.1'], a)).toEqual({ ok: true, reason: 'host key matches known_hosts' });
    expect(verifyHostKey(entries, knownHostNames(['10.0.0.2'], 2222), a).ok).toBe(true);
    expect(verifyHostKey(entries, ['10.0.0.2'], a)).toMatchObject({ ok: false, reason: 'no known_hosts entry for 10.0.0.2' });
    expect(entryMatches(entries[2]!, ['10.0.0.3'])).toBe(true);
    expect(entryMatches(entries[2]!, ['10.0.0.4'])).toBe(false);
    expect(verifyHostKey(entries, ['mw2001.codfw.wmnet'], a).ok).toBe(true);
    expect(entryMatches(entries[3]!, ['bad.codfw.wmnet'])).toBe(false);
  });
  it('a wrong key or a revoked key fails', () => {
    expect(verifyHostKey(entries, ['10.0.0.1'], Buffer.from('key-c'))).toEqual({ ok: false, reason: 'host key does not match known_hosts' });
    expect(verifyHostKey(entries, ['10.0.0.3'], b)).toEqual({ ok: false, reason: 'host key is revoked in known_hosts' });
  });
});

describe('SSH against a real sshd on loopback', () => {
  let sshd: TestSshd;
  const ip = loopbackAddress(61);
  beforeAll(async () => {
    sshd = await startSshd(ip);
  }, 30_000);
  afterAll(async () => {
    await sshd?.stop();
  });

  async function firstReport(config: Partial<Parameters<typeof sshConfig>[0]>) {
    const rec = recorder();
    const monitor = createSshMonitor(sshConfig({ privateKeyFile: sshd.clientKey, port: sshd.port, ...config }), target(ip, 22, ip), rec.deps(createSystemClock()));
    monitor.start();
    try {
      await waitFor(() => rec.reports.length > 0, 'a report');
    } finally {
      await monitor.stop();
    }
    return rec.reports[0]!;
  }

  it('native: a command that exits 0 is up, non-zero is down', async () => {
    expect(await firstReport({ command: 'true' })).toMatchObject({ up: true, reason: 'SSH command "true" exited with 0' });
    expect(await firstReport({ command: 'exit 3' })).toMatchObject({ up: false, reason: 'SSH command "exit 3" exited with 3' });
    expect(establishedTo(ip, sshd.port)).toBe(0);
  });

  it('native: a key the server does not accept is down', async () => {
    const report = await firstReport({ privateKeyFile: sshd.strangerKey });
    expect(report.up).toBe(false);
    expect(report.reason).toMatch(/^SSH failed: client-authentication: All configured authentication methods failed/);
  });

  it('native: verifies the host key against known_hosts when configured', async () => {
    const good = path.join(sshd.dir, 'known_hosts_good');
    const bad = path.join(sshd.dir, 'known_hosts_bad');
    await writeFile(good, `[${ip}]:${sshd.port} ${sshd.hostPublicKey}\n`);
    await writeFile(bad, `[${ip}]:${sshd.port} ssh-ed25519 ${KEY_A}\n`);
    expect(await firstReport({ knownHostsFile: good })).toMatchObject({ up: true });
    expect(await firstReport({ knownHostsFile: bad })).toMatchObject({ up: false, reason: 'SSH failed: host key does not match known_hosts' });
  });

  it('native: down and recovery', async () => {
    const flag = path.join(sshd.dir, 'broken-disk');
    const clock = new ManualClock();
    const rec = recorder();
    const monitor = createSshMonitor(
      sshConfig({ privateKeyFile: sshd.clientKey, port: sshd.port, command: `test ! -e ${flag}` }),
      target(ip, 22),
      rec.deps(clock, { random: () => 0.5 }),
    );
    try {
      monitor.start();
      await waitFor(() => rec.reports.length === 1, 'the first report');
      await writeFile(flag, '');
      await clock.advanceAsync(60_000);
      await waitFor(() => rec.reports.length === 2, 'down');
      const { rm } = await import('node:fs/promises');
      await rm(flag);
      await clock.advanceAsync(60_000);
      await waitFor(() => rec.reports.length === 3, 'up again');
      expect(rec.states()).toEqual(['up', 'down', 'up']);
    } finally {
      await monitor.stop();
    }
  });

  it('RunCommand with /usr/bin/ssh, the way PyBal users do it', async () => {
    const rec = recorder();
    const monitor = createRunCommandMonitor(
      runCommandConfig({
        command: '/usr/bin/ssh',
        arguments: [
          { literal: '-i' }, { literal: sshd.clientKey },
          { literal: '-p' }, { literal: String(sshd.port) },
          { literal: '-o' }, { literal: 'BatchMode=yes' },
          { literal: '-o' }, { literal: 'StrictHostKeyChecking=no' },
          { literal: '-o' }, { literal: 'UserKnownHostsFile=/dev/null' },
          { literal: '-l' }, { literal: 'root' },
          { server: 'host' },
          { literal: 'test -d /' },
        ],
        timeoutMs: 10_000,
      }),
      target(ip, 80, ip),
      rec.deps(createSystemClock()),
    );
    monitor.start();
    try {
      await waitFor(() => rec.reports.length === 1, 'a report');
    } finally {
      await monitor.stop();
    }
    expect(rec.reports[0]).toMatchObject({ up: true, reason: '/usr/bin/ssh exited with code 0' });
  });
});

describe('SSH against servers that refuse or hang', () => {
  let server: RealServer;
  const ip = loopbackAddress(62);
  let keyDir: TestSshd;
  beforeAll(async () => {
    server = await startRealServer({ name: 'rs1', host: ip, tcp: 0 });
    keyDir = await startSshd(loopbackAddress(63)); // only for its keys
  }, 30_000);
  afterAll(async () => {
    await server.stop();
    await keyDir?.stop();
  });

  it('a server that accepts and never answers is down at the deadline', async () => {
    const clock = new ManualClock();
    const rec = recorder();
    const monitor = createSshMonitor(sshConfig({ privateKeyFile: keyDir.clientKey, port: server.ports.tcp!, timeoutMs: 10_000 }), target(ip, 22), rec.deps(clock));
    monitor.start();
    await waitFor(() => establishedTo(ip, server.ports.tcp!) === 1, 'the connection');
    await clock.advanceAsync(9_999);
    expect(rec.reports).toEqual([]);
    await clock.advanceAsync(1);
    await waitFor(() => rec.reports.length === 1, 'a report');
    expect(rec.reports[0]).toMatchObject({ up: false, reason: 'SSH timed out after 10 s' });
    expect(establishedTo(ip, server.ports.tcp!)).toBe(0);
    await monitor.stop();
  });

  it('a refused connection is down', async () => {
    await server.setBehaviour({ mode: 'down' });
    const rec = recorder();
    const monitor = createSshMonitor(sshConfig({ privateKeyFile: keyDir.clientKey, port: server.ports.tcp! }), target(ip, 22), rec.deps(createSystemClock()));
    monitor.start();
    try {
      await waitFor(() => rec.reports.length === 1, 'a report');
    } finally {
      await monitor.stop();
      await server.setBehaviour({ mode: 'ok' });
    }
    expect(rec.reports[0]).toMatchObject({ up: false, reason: expect.stringContaining('ECONNREFUSED') });
  });
});
