/** Whether a SIGTERM comes from `systemctl restart`: the cgroup and job list as systemd writes them, and every doubt counted as a stop. */
import { describe, expect, it } from 'vitest';
import { restartJobFor, systemdIsRestartingUs, unitFromCgroup } from '../../src/runtime/systemd.js';

// `systemctl list-jobs --no-legend --no-pager` while `systemctl restart pybal` runs, and while the host shuts down.
const RESTARTING = '  4521 pybal.service restart running\n';
const SHUTTING_DOWN = '  4600 pybal.service   stop  running\n  4598 shutdown.target start waiting\n  4599 umount.target  start waiting\n';

describe('systemd', () => {
  it('reads the unit from a cgroup v2 or v1 file; none outside a service', () => {
    expect(unitFromCgroup('0::/system.slice/pybal.service\n')).toBe('pybal.service');
    expect(unitFromCgroup('12:pids:/system.slice/pybal.service\n1:name=systemd:/system.slice/pybal.service\n0::/\n')).toBe('pybal.service');
    expect(unitFromCgroup('0::/user.slice/user-0.slice/session-3.scope\n')).toBeUndefined();
    expect(unitFromCgroup('')).toBeUndefined();
  });

  it('finds a restart job for the unit, and only for it', () => {
    expect(restartJobFor(RESTARTING, 'pybal.service')).toBe(true);
    expect(restartJobFor('  77 pybal.service try-restart running\n', 'pybal.service')).toBe(true);
    expect(restartJobFor(SHUTTING_DOWN, 'pybal.service')).toBe(false);
    expect(restartJobFor('  12 nginx.service restart running\n', 'pybal.service')).toBe(false);
    expect(restartJobFor('', 'pybal.service')).toBe(false);
  });

  const probe = (cgroup: string | Error, jobs: string | Error) => ({
    readCgroup: async () => {
      if (cgroup instanceof Error) throw cgroup;
      return cgroup;
    },
    listJobs: async () => {
      if (jobs instanceof Error) throw jobs;
      return jobs;
    },
  });

  it('a restart only when systemd restarts this very service; every doubt is a stop, said why', async () => {
    expect(await systemdIsRestartingUs(probe('0::/system.slice/pybal.service', RESTARTING))).toEqual({ restarting: true, why: 'systemd is restarting pybal.service' });
    expect(await systemdIsRestartingUs(probe('0::/system.slice/pybal.service', SHUTTING_DOWN))).toEqual({ restarting: false, why: 'systemd is not restarting pybal.service' });
    expect(await systemdIsRestartingUs(probe('0::/user.slice/session-3.scope', RESTARTING))).toEqual({ restarting: false, why: 'not running as a systemd service' });
    expect((await systemdIsRestartingUs(probe('0::/system.slice/pybal.service', new Error('systemctl: not found')))).restarting).toBe(false);
    expect((await systemdIsRestartingUs(probe(new Error('ENOENT'), RESTARTING))).restarting).toBe(false);
  });
});
