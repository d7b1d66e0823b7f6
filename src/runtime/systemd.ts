/**
 * What systemd is doing to this process, for the one decision that depends
 * on it: a SIGTERM from `systemctl restart` (pybal comes straight back, so
 * with BGP graceful restart the routers may keep its routes) or from
 * anything else (`systemctl stop`, a shutdown of the host, kill: the routes
 * must go). Anything uncertain counts as a stop.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** The systemd service this process runs in, from its cgroup (`0::/system.slice/pybal.service`); undefined outside one. */
export function unitFromCgroup(cgroupText: string): string | undefined {
  for (const line of cgroupText.split('\n')) {
    // hierarchy-ID:controllers:path; cgroup v1 has a name=systemd line, v2 one 0:: line.
    const path = line.split(':').slice(2).join(':');
    const unit = /\/([^/]+\.service)(?:\/|$)/.exec(path)?.[1];
    if (unit !== undefined && (line.startsWith('0::') || line.includes(':name=systemd:'))) return unit;
  }
  return undefined;
}

/** Whether `systemctl list-jobs --no-legend` shows a restart job for `unit` (the jobs systemd runs now). */
export function restartJobFor(listJobs: string, unit: string): boolean {
  for (const line of listJobs.split('\n')) {
    const [, name, type] = line.trim().split(/\s+/);
    if (name === unit && (type === 'restart' || type === 'try-restart' || type === 'reload-or-restart')) return true;
  }
  return false;
}

export interface SystemdProbe {
  readCgroup(): Promise<string>;
  listJobs(): Promise<string>;
}

const realProbe: SystemdProbe = {
  readCgroup: () => readFile('/proc/self/cgroup', 'utf8'),
  listJobs: () =>
    new Promise((resolve, reject) => {
      execFile('systemctl', ['list-jobs', '--no-legend', '--no-pager'], { timeout: 2_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
    }),
};

/**
 * Tells systemd (Type=notify) that pybal is ready, with a status line, when
 * it was started so (NOTIFY_SOCKET). Node has no Unix datagram socket, so
 * systemd-notify sends it, naming pybal's pid (the unit has NotifyAccess=all).
 * Resolves false when there was nothing to tell or it could not be told.
 */
export function notifyReady(status: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (env.NOTIFY_SOCKET === undefined || env.NOTIFY_SOCKET === '') return Promise.resolve(false);
  return new Promise((resolve) => {
    execFile('systemd-notify', ['--ready', `--pid=${process.pid}`, `--status=${status}`], { timeout: 10_000, env }, (error) => resolve(error === null));
  });
}

/** True only when systemd is restarting this very service now; false when unsure. */
export async function systemdIsRestartingUs(probe: SystemdProbe = realProbe): Promise<{ restarting: boolean; why: string }> {
  let unit: string | undefined;
  try {
    unit = unitFromCgroup(await probe.readCgroup());
  } catch (error) {
    return { restarting: false, why: `cannot read this process's cgroup (${String(error)})` };
  }
  if (unit === undefined) return { restarting: false, why: 'not running as a systemd service' };
  try {
    return restartJobFor(await probe.listJobs(), unit)
      ? { restarting: true, why: `systemd is restarting ${unit}` }
      : { restarting: false, why: `systemd is not restarting ${unit}` };
  } catch (error) {
    return { restarting: false, why: `systemctl list-jobs failed (${error instanceof Error ? error.message : String(error)})` };
  }
}
