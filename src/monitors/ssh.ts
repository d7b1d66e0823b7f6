/**
 * SSH (new): connect to the server, authenticate with a key, run a command
 * and take its exit status, natively (ssh2), so that a check costs no
 * process. Broken disks break SSH logins while Apache still serves from
 * memory, which is what this catches. Host keys are verified against
 * `known-hosts` when configured.
 */
import { readFile } from 'node:fs/promises';
import type { Client as SshClient } from 'ssh2';
import type { SshConfig } from '../config/types.js';
import { errorMessage } from '../runtime/errors.js';
import { DeadlineError, type CheckSignal } from './deadline.js';
import { knownHostNames, parseKnownHosts, verifyHostKey } from './known-hosts.js';
import { createPeriodicMonitor } from './periodic.js';
import type { CheckOutcome, Monitor, MonitorDeps, MonitorTarget } from './types.js';

export function createSshMonitor(config: SshConfig, target: MonitorTarget, deps: MonitorDeps): Monitor {
  const names = knownHostNames([...new Set([target.host, target.ip])], config.port);
  return createPeriodicMonitor(
    config.kind,
    config,
    {
      async run(signal) {
        // Read at each check: keys can be rotated, and a missing file is a failed check, not a crash.
        let privateKey: Buffer;
        let knownHosts: ReturnType<typeof parseKnownHosts> | undefined;
        try {
          privateKey = await readFile(config.privateKeyFile);
          if (config.knownHostsFile !== undefined) knownHosts = parseKnownHosts(await readFile(config.knownHostsFile, 'utf8'));
        } catch (error) {
          return { ok: false, reason: `SSH: ${errorMessage(error)}` };
        }
        return sshCheck(await loadSshClient(), config, target, privateKey, knownHosts, names, signal);
      },
      timeoutReason: (message) => `SSH ${message}`,
    },
    deps,
  );
}

/**
 * ssh2 is loaded on the first SSH check, not at start: it brings a
 * WebAssembly crypto module of about 17 MB that a director without SSH
 * monitors never needs.
 */
let ssh2Client: Promise<typeof SshClient> | undefined;
function loadSshClient(): Promise<typeof SshClient> {
  ssh2Client ??= import('ssh2').then((m) => m.Client);
  return ssh2Client;
}

function sshCheck(
  Client: typeof SshClient,
  config: SshConfig,
  target: MonitorTarget,
  privateKey: Buffer,
  knownHosts: ReturnType<typeof parseKnownHosts> | undefined,
  names: readonly string[],
  signal: CheckSignal,
): Promise<CheckOutcome> {
  return new Promise((resolve) => {
    const client = new Client();
    let hostKeyProblem: string | undefined;
    let settled = false;
    const finish = (outcome: CheckOutcome): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      client.removeAllListeners('ready');
      client.on('error', () => undefined);
      client.destroy();
      resolve(outcome);
    };
    const onAbort = (): void => {
      const why = signal.reason instanceof DeadlineError ? signal.reason.message : 'cancelled';
      finish({ ok: false, reason: `SSH ${why}` });
    };
    signal.addEventListener('abort', onAbort, { once: true });
    client.on('error', (error: Error & { level?: string }) => {
      const reason = hostKeyProblem ?? `${error.level ? `${error.level}: ` : ''}${errorMessage(error)}`;
      finish({ ok: false, reason: `SSH failed: ${reason}` });
    });
    client.on('close', () => finish({ ok: false, reason: 'SSH connection closed before the command finished' }));
    client.on('ready', () => {
      client.exec(config.command, (error, stream) => {
        if (error) {
          finish({ ok: false, reason: `SSH exec failed: ${error.message}` });
          return;
        }
        stream.on('data', () => undefined);
        stream.stderr.on('data', () => undefined);
        stream.on('close', (code: number | null | undefined, sig?: string) => {
          if (code === 0) finish({ ok: true, reason: `SSH command ${JSON.stringify(config.command)} exited with 0` });
          else if (typeof code === 'number') finish({ ok: false, reason: `SSH command ${JSON.stringify(config.command)} exited with ${code}`, exitCode: code });
          else finish({ ok: false, reason: `SSH command ${JSON.stringify(config.command)} ended by signal ${sig ?? 'unknown'}`, exitCode: null });
        });
      });
    });
    if (signal.aborted) return;
    client.connect({
      host: target.ip,
      port: config.port,
      username: config.user,
      privateKey,
      readyTimeout: Math.max(1, config.timeoutMs),
      keepaliveInterval: 0,
      hostVerifier: (key: Buffer): boolean => {
        if (!knownHosts) return true;
        const verdict = verifyHostKey(knownHosts, names, key);
        if (!verdict.ok) hostKeyProblem = verdict.reason;
        return verdict.ok;
      },
    });
  });
}
