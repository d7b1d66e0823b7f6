/**
 * A real OpenSSH server on a loopback address for tests: temporary host key,
 * client key, authorized_keys and config; started in the foreground and
 * stopped (with its directory removed) by stop().
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './helpers.js';

export interface TestSshd {
  readonly ip: string;
  readonly port: number;
  readonly dir: string;
  /** Private key accepted by the server (root). */
  readonly clientKey: string;
  /** A private key the server does not accept. */
  readonly strangerKey: string;
  /** The host's public key line (`ssh-ed25519 AAAA...`). */
  readonly hostPublicKey: string;
  stop(): Promise<void>;
}

async function freePort(ip: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, ip, resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function keygen(file: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'pybal-test', '-f', file], { stdio: 'pipe' });
}

export async function startSshd(ip: string): Promise<TestSshd> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pybal-sshd-'));
  let child: ChildProcess | undefined;
  try {
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation directory
    for (const k of ['host_key', 'client_key', 'stranger_key']) keygen(path.join(dir, k));
    await writeFile(path.join(dir, 'authorized_keys'), await readFile(path.join(dir, 'client_key.pub')));
    const port = await freePort(ip);
    const config = [
      `Port ${port}`,
      `ListenAddress ${ip}`,
      `HostKey ${dir}/host_key`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      `PidFile ${dir}/sshd.pid`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'LogLevel ERROR',
    ].join('\n');
    await writeFile(path.join(dir, 'sshd_config'), config + '\n');
    child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const proc = child;
    const accepting = async (): Promise<boolean> =>
      new Promise((resolve) => {
        const s = net.connect({ host: ip, port }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
    let ready = false;
    await waitFor(() => {
      if (proc.exitCode !== null) throw new Error(`sshd exited: ${stderr}`);
      void accepting().then((ok) => (ready = ok));
      return ready;
    }, 'sshd to accept connections');
    const hostPublicKey = (await readFile(path.join(dir, 'host_key.pub'), 'utf8')).trim().split(' ').slice(0, 2).join(' ');
    return {
      ip,
      port,
      dir,
      clientKey: path.join(dir, 'client_key'),
      strangerKey: path.join(dir, 'stranger_key'),
      hostPublicKey,
      async stop() {
        const closed = new Promise((resolve) => proc.once('close', resolve));
        // -D: sshd stays in our process group's child; its session children die with the listener.
        proc.kill('SIGTERM');
        await closed;
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    child?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
