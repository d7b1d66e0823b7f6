/**
 * net.ipv4.vs.sloppy_tcp and sloppy_sctp kept as pybal.conf says, against a
 * fake /proc/sys/net/ipv4/vs: set only when asked, left alone (with a warning
 * when an mh or sh service depends on it) otherwise. The real kernel's side,
 * and what the value does to connections moved between directors, is in the
 * lab (test/e2e/ecmp.lab.test.ts).
 */
import { describe, expect, it } from 'vitest';
import type { GlobalConfig, ServiceConfig } from '../../src/config/types.js';
import { SloppyKeeper, assessSloppy, type SysctlFiles } from '../../src/ipvs/sloppy.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { globalConfig, serviceConfig } from '../support/config-fixtures.js';

class FakeSysctls implements SysctlFiles {
  readonly values = new Map<string, string>([
    ['sloppy_tcp', '0'],
    ['sloppy_sctp', '0'],
  ]);
  readonly writes: string[] = [];
  readOnly = false;
  async read(name: string): Promise<string> {
    const v = this.values.get(name);
    if (v === undefined) throw new Error(`ENOENT: no such file or directory, open '/proc/sys/net/ipv4/vs/${name}'`);
    return `${v}\n`;
  }
  async write(name: string, value: string): Promise<void> {
    if (this.readOnly) throw new Error(`EROFS: read-only file system, open '/proc/sys/net/ipv4/vs/${name}'`);
    this.writes.push(`${name}=${value}`);
    this.values.set(name, value);
  }
}

const web = (over: Partial<ServiceConfig> = {}): ServiceConfig => serviceConfig('web', '192.0.2.1', { scheduler: 'mh', protocol: 'tcp', ...over });
const g = (over: Partial<GlobalConfig> = {}): GlobalConfig => globalConfig(over);

function keeper(options: { dryRun?: boolean } = {}): { files: FakeSysctls; k: SloppyKeeper; lines: () => string[] } {
  const files = new FakeSysctls();
  const log = createMemoryLogger();
  return { files, k: new SloppyKeeper({ files, logger: log.logger, dryRun: options.dryRun ?? false }), lines: () => log.lines().map((l) => l.replace(/^\[pybal\] /, "")) };
}

describe('assessSloppy', () => {
  it('unset, 0, an mh or sh service of the protocol: connections moved here are reset, a warning', () => {
    const s = assessSloppy(g(), [web(), web({ name: 'dns', scheduler: 'sh', protocol: 'udp' }), web({ name: 'api', scheduler: 'sh' })], 'tcp', 0);
    expect(s).toEqual({
      sysctl: 'net.ipv4.vs.sloppy_tcp',
      key: 'ipvs-sloppy-tcp',
      setting: 'unset',
      value: 0,
      services: ['web', 'api'],
      movedConnectionsReset: true,
      warning: 'net.ipv4.vs.sloppy_tcp = 0: connections moved here from another director are reset (web, api); set ipvs-sloppy-tcp = yes, or = no if meant',
    });
  });

  it('no warning: the value 1, no such service (rr, UDP, another protocol), or the reset said to be meant (= no)', () => {
    expect(assessSloppy(g(), [web()], 'tcp', 1)).toMatchObject({ movedConnectionsReset: false, warning: undefined });
    expect(assessSloppy(g(), [web({ scheduler: 'rr' }), web({ protocol: 'udp' })], 'tcp', 0)).toMatchObject({ movedConnectionsReset: false, warning: undefined });
    expect(assessSloppy(g(), [web()], 'sctp', 0)).toMatchObject({ services: [], warning: undefined });
    expect(assessSloppy(g({ ipvsSloppyTcp: false }), [web()], 'tcp', 0)).toMatchObject({ setting: 'no', movedConnectionsReset: true, warning: undefined });
  });
});

describe('SloppyKeeper', () => {
  it('key absent: reads, never writes; warns at start with the reason, and /status carries the warning', async () => {
    const { files, k, lines } = keeper();
    await k.check(g(), [web()], 'start');
    expect(files.writes).toEqual([]);
    expect(lines()).toEqual([
      'WARN: with net.ipv4.vs.sloppy_tcp = 0, a TCP connection the routers move to this director from another (ECMP: a director added or removed; a failover) is reset, ' +
        'unless a sync daemon brought it here: IPVS schedules only a SYN, although web (an mh or sh service) would send it to the same real server as the other directors. ' +
        'Set ipvs-sloppy-tcp = yes in [global] (pybal sets the sysctl) or net.ipv4.vs.sloppy_tcp=1 yourself; ipvs-sloppy-tcp = no says the resets are meant and ends this warning',
    ]);
    expect(k.status()).toMatchObject([{ sysctl: 'net.ipv4.vs.sloppy_tcp', setting: 'unset', value: 0, movedConnectionsReset: true }]);
    expect(k.status()[0]?.warning).toContain('connections moved here from another director are reset');
  });

  it('key absent: a resync says only what changed (someone set it to 1 by hand, then back to 0)', async () => {
    const { files, k, lines } = keeper();
    await k.check(g(), [web()], 'start');
    await k.check(g(), [web()], 'resync');
    expect(lines()).toHaveLength(1);
    files.values.set('sloppy_tcp', '1');
    await k.check(g(), [web()], 'resync');
    expect(lines()[1]).toBe('INFO: net.ipv4.vs.sloppy_tcp is now 1: connections moved here from another director are no longer reset');
    expect(k.status()).toMatchObject([{ value: 1, movedConnectionsReset: false, warning: undefined }]);
    files.values.set('sloppy_tcp', '0');
    await k.check(g(), [web()], 'resync');
    expect(lines()[2]).toMatch(/^WARN: with net\.ipv4\.vs\.sloppy_tcp = 0, /);
    expect(files.writes).toEqual([]);
  });

  it('= yes: sets 1 and says so; a value changed by hand is put back at the next resync; nothing more while it stays', async () => {
    const { files, k, lines } = keeper();
    await k.check(g({ ipvsSloppyTcp: true }), [web()], 'start');
    expect(files.writes).toEqual(['sloppy_tcp=1']);
    expect(lines()).toEqual(['INFO: Set net.ipv4.vs.sloppy_tcp = 1 (ipvs-sloppy-tcp = yes; it was 0)']);
    expect(k.status()).toEqual([
      { sysctl: 'net.ipv4.vs.sloppy_tcp', key: 'ipvs-sloppy-tcp', setting: 'yes', value: 1, services: ['web'], movedConnectionsReset: false, warning: undefined },
    ]);
    await k.check(g({ ipvsSloppyTcp: true }), [web()], 'resync');
    expect(files.writes).toHaveLength(1);
    files.values.set('sloppy_tcp', '0');
    await k.check(g({ ipvsSloppyTcp: true }), [web()], 'resync');
    expect(files.writes).toEqual(['sloppy_tcp=1', 'sloppy_tcp=1']);
    expect(lines()[1]).toBe("INFO: Set net.ipv4.vs.sloppy_tcp = 1 (ipvs-sloppy-tcp = yes; it was changed to 0 behind pybal's back)");
    await k.check(g({ ipvsSloppyTcp: true }), [web()], 'reload');
    expect(lines()[2]).toBe('INFO: net.ipv4.vs.sloppy_tcp is 1 (ipvs-sloppy-tcp = yes)');
  });

  it('= yes with no mh or sh service: set all the same (asked for), shown in /status', async () => {
    const { files, k } = keeper();
    await k.check(g({ ipvsSloppyTcp: true }), [web({ scheduler: 'wrr' })], 'start');
    expect(files.writes).toEqual(['sloppy_tcp=1']);
    expect(k.status()).toMatchObject([{ setting: 'yes', value: 1, services: [] }]);
  });

  it('= no: sets 0 and says once, as information, what it costs; health is not degraded for it', async () => {
    const { files, k, lines } = keeper();
    files.values.set('sloppy_tcp', '1');
    await k.check(g({ ipvsSloppyTcp: false }), [web()], 'start');
    expect(files.writes).toEqual(['sloppy_tcp=0']);
    expect(lines()[0]).toBe('INFO: Set net.ipv4.vs.sloppy_tcp = 0 (ipvs-sloppy-tcp = no; it was 1)');
    expect(lines()[1]).toMatch(/^INFO: ipvs-sloppy-tcp = no: with net\.ipv4\.vs\.sloppy_tcp = 0, a TCP connection .* is reset/);
    expect(k.status()).toMatchObject([{ setting: 'no', value: 0, movedConnectionsReset: true, warning: undefined }]);
    await k.check(g({ ipvsSloppyTcp: false }), [web()], 'resync');
    expect(lines()).toHaveLength(2);
  });

  it('SCTP: sloppy_sctp for mh and sh SCTP services, with its INIT', async () => {
    const { files, k, lines } = keeper();
    await k.check(g({ ipvsSloppySctp: true }), [web({ protocol: 'sctp' })], 'start');
    expect(files.writes).toEqual(['sloppy_sctp=1']);
    expect(lines()).toEqual(['INFO: Set net.ipv4.vs.sloppy_sctp = 1 (ipvs-sloppy-sctp = yes; it was 0)']);
    const other = keeper();
    await other.k.check(g(), [web({ protocol: 'sctp' })], 'start');
    expect(other.lines()[0]).toContain('IPVS schedules only an INIT');
  });

  it('a write refused (a read-only /proc/sys in a container): an error in the log, a warning in /status; the value read stays', async () => {
    const { files, k, lines } = keeper();
    files.readOnly = true;
    await k.check(g({ ipvsSloppyTcp: true }), [web()], 'start');
    expect(lines()).toEqual([
      "ERROR: Could not set net.ipv4.vs.sloppy_tcp = 1 (ipvs-sloppy-tcp = yes): EROFS: read-only file system, open '/proc/sys/net/ipv4/vs/sloppy_tcp'",
    ]);
    expect(k.status()).toMatchObject([{ value: 0, movedConnectionsReset: true, warning: expect.stringContaining('could not set net.ipv4.vs.sloppy_tcp = 1') }]);
  });

  it('no IPVS (no sysctl file): said when a service needs it; nothing at all when nothing does', async () => {
    const { files, k, lines } = keeper();
    files.values.clear();
    await k.check(g(), [web({ scheduler: 'wrr' })], 'start');
    expect(lines()).toEqual([]);
    expect(k.status()).toEqual([]);
    await k.check(g(), [web()], 'start');
    expect(lines()[0]).toMatch(/^ERROR: Cannot read net\.ipv4\.vs\.sloppy_tcp \(ENOENT: .*; is IPVS loaded\?\)$/);
    expect(k.status()).toMatchObject([{ value: undefined, movedConnectionsReset: false }]);
  });

  it('dry run: says what it would set, writes nothing', async () => {
    const { files, k, lines } = keeper({ dryRun: true });
    await k.check(g({ ipvsSloppyTcp: true }), [web()], 'start');
    expect(files.writes).toEqual([]);
    expect(lines()[0]).toBe('INFO: dry run: would set net.ipv4.vs.sloppy_tcp = 1 (ipvs-sloppy-tcp = yes; it was 0)');
  });
});
