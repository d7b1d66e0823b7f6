/**
 * The sync daemons kept as pybal.conf says, against a kernel model that
 * answers as the kernel does: it fills in the defaults it chose, refuses a
 * second daemon of one state (EEXIST) and an interface it does not have
 * (ENODEV). The real kernel's side is in the lab (test/e2e/failover.lab.test.ts).
 */
import { describe, expect, it } from 'vitest';
import type { IpvsSyncConfig } from '../../src/config/types.js';
import { SyncDaemonKeeper, sameDaemon, wantedDaemons, type SyncDaemonKernel } from '../../src/ipvs/sync-daemons.js';
import type { SyncDaemon, SyncState } from '../../src/ipvs/types.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';

class KernelModel implements SyncDaemonKernel {
  readonly running = new Map<SyncState, SyncDaemon>();
  readonly calls: string[] = [];
  interfaces = new Set(['eth0', 'eth1']);
  /** Before Linux 4.3 the kernel reported no group, port or TTL. */
  reportsGroup = true;
  failReads = false;

  async daemons(): Promise<SyncDaemon[]> {
    if (this.failReads) throw new Error('Operation not permitted');
    return [...this.running.values()].map((d) => (this.reportsGroup ? d : { ...d, mcastGroup: '', mcastPort: 0, mcastTtl: 0 }));
  }
  async startDaemon(d: SyncDaemon): Promise<void> {
    this.calls.push(`start ${d.state} ${d.mcastIfn} ${d.syncId}`);
    if (this.running.has(d.state)) throw new Error('File exists');
    if (!this.interfaces.has(d.mcastIfn)) throw new Error('No such device');
    this.running.set(d.state, {
      ...d,
      mcastGroup: d.mcastGroup || '224.0.0.81',
      mcastPort: d.mcastPort || 8848,
      mcastTtl: d.mcastTtl || 1,
      syncMaxLen: d.syncMaxLen || 1472,
    });
  }
  async stopDaemon(state: SyncState): Promise<void> {
    this.calls.push(`stop ${state}`);
    if (!this.running.delete(state)) throw new Error('No such process');
  }
}

const sync = (over: Partial<IpvsSyncConfig> = {}): IpvsSyncConfig => ({
  mode: 'both',
  interface: 'eth1',
  syncId: 3,
  group: undefined,
  port: undefined,
  ttl: undefined,
  ...over,
});

function setup(dryRun = false): { kernel: KernelModel; keeper: SyncDaemonKeeper; lines: () => string[] } {
  const kernel = new KernelModel();
  const log = createMemoryLogger('info');
  return { kernel, keeper: new SyncDaemonKeeper({ kernel, logger: log.logger, dryRun }), lines: log.lines };
}

describe('the IPVS sync daemons pybal keeps', () => {
  it('both: starts a master and a backup as configured, then leaves them be while they are right', async () => {
    const { kernel, keeper, lines } = setup();
    await keeper.set(sync());
    expect(kernel.calls).toEqual(['start master eth1 3', 'start backup eth1 3']);
    expect([...kernel.running.keys()].sort()).toEqual(['backup', 'master']);
    expect(lines()).toEqual([
      '[pybal] INFO: Started the IPVS sync daemon master on eth1, sync id 3, group 224.0.0.81 port 8848 ttl 1',
      '[pybal] INFO: Started the IPVS sync daemon backup on eth1, sync id 3, group 224.0.0.81 port 8848',
    ]);
    // The kernel reports the defaults it chose (and a maximum length pybal never set): still right.
    await keeper.check();
    await keeper.check();
    expect(kernel.calls).toHaveLength(2);
    expect(lines()).toHaveLength(2);
  });

  it('a changed sync id restarts both; master alone stops the backup; none stops the rest', async () => {
    const { kernel, keeper, lines } = setup();
    await keeper.set(sync());
    kernel.calls.length = 0;
    await keeper.set(sync({ syncId: 4 }));
    expect(kernel.calls).toEqual(['stop master', 'start master eth1 4', 'stop backup', 'start backup eth1 4']);
    expect(kernel.running.get('backup')?.syncId).toBe(4);
    kernel.calls.length = 0;
    await keeper.set(sync({ mode: 'master', syncId: 4 }));
    expect(kernel.calls).toEqual(['stop backup']);
    kernel.calls.length = 0;
    await keeper.set(sync({ mode: 'none', interface: '' }));
    expect(kernel.calls).toEqual(['stop master']);
    expect(kernel.running.size).toBe(0);
    expect(lines().at(-1)).toBe('[pybal] INFO: Stopped the IPVS sync daemon master on eth1, sync id 4, group 224.0.0.81 port 8848 ttl 1');
  });

  it('a group, port or TTL the kernel runs with but the file does not ask for is put right', async () => {
    const { kernel, keeper } = setup();
    await kernel.startDaemon({ state: 'master', mcastIfn: 'eth1', syncId: 3, syncMaxLen: 0, mcastGroup: '239.9.9.9', mcastPort: 0, mcastTtl: 0 });
    kernel.calls.length = 0;
    await keeper.set(sync({ mode: 'master' }));
    expect(kernel.calls).toEqual(['stop master', 'start master eth1 3']);
    expect(kernel.running.get('master')?.mcastGroup).toBe('224.0.0.81');
    kernel.calls.length = 0;
    await keeper.set(sync({ mode: 'master', ttl: 4, port: 8850, group: 'FF02::51' }));
    expect(kernel.calls).toEqual(['stop master', 'start master eth1 3']);
    expect(kernel.running.get('master')).toMatchObject({ mcastGroup: 'FF02::51', mcastPort: 8850, mcastTtl: 4 });
  });

  it('a kernel that reports no group, port or TTL matches on interface and id', async () => {
    const { kernel, keeper } = setup();
    kernel.reportsGroup = false;
    await keeper.set(sync());
    await keeper.check();
    expect(kernel.calls).toEqual(['start master eth1 3', 'start backup eth1 3']);
  });

  it('without ipvs-sync-daemon, the daemons an operator started are left alone', async () => {
    const { kernel, keeper, lines } = setup();
    await kernel.startDaemon(wantedDaemons(sync({ mode: 'backup', interface: 'eth0', syncId: 9 }))[0]!);
    kernel.calls.length = 0;
    await keeper.set(undefined);
    await keeper.check();
    expect(kernel.calls).toEqual([]);
    expect(kernel.running.get('backup')?.syncId).toBe(9);
    expect(lines()).toEqual([]);
  });

  it('a daemon stopped behind pybal\'s back is started again at the next check', async () => {
    const { kernel, keeper } = setup();
    await keeper.set(sync());
    kernel.running.delete('backup');
    kernel.calls.length = 0;
    await keeper.check();
    expect(kernel.calls).toEqual(['start backup eth1 3']);
  });

  it('an interface the director lacks: one error, not one per check; a line when it is put right', async () => {
    const { kernel, keeper, lines } = setup();
    kernel.interfaces.delete('eth1');
    await keeper.set(sync({ mode: 'master' }));
    await keeper.check();
    await keeper.check();
    expect(kernel.calls).toEqual(['start master eth1 3', 'start master eth1 3', 'start master eth1 3']);
    expect(lines()).toEqual([
      '[pybal] ERROR: Could not start the IPVS sync daemon master on eth1, sync id 3, group 224.0.0.81 port 8848 ttl 1: No such device (this director has no interface eth1); connections will not be synced until this is fixed (retried at every IPVS resync)',
    ]);
    kernel.interfaces.add('eth1');
    await keeper.check();
    expect(kernel.running.has('master')).toBe(true);
    expect(lines().slice(1)).toEqual([
      '[pybal] INFO: Started the IPVS sync daemon master on eth1, sync id 3, group 224.0.0.81 port 8848 ttl 1',
      '[pybal] INFO: The IPVS sync daemons are as configured again',
    ]);
  });

  it('a kernel that cannot be read changes nothing and says so once', async () => {
    const { kernel, keeper, lines } = setup();
    kernel.failReads = true;
    await keeper.set(sync());
    await keeper.check();
    expect(kernel.calls).toEqual([]);
    expect(lines()).toEqual([
      "[pybal] ERROR: Could not read the kernel's sync daemons: Operation not permitted; connections will not be synced until this is fixed (retried at every IPVS resync)",
    ]);
  });

  it('a dry run says what it would do and does nothing', async () => {
    const { kernel, keeper, lines } = setup(true);
    await keeper.set(sync({ mode: 'backup' }));
    expect(kernel.calls).toEqual([]);
    expect(lines()).toEqual(['[pybal] INFO: Dry run: would start the IPVS sync daemon backup on eth1, sync id 3, group 224.0.0.81 port 8848']);
  });

  it('checks run one at a time: two at once start each daemon once', async () => {
    const { kernel, keeper } = setup();
    await Promise.all([keeper.set(sync()), keeper.check(), keeper.check()]);
    expect(kernel.calls).toEqual(['start master eth1 3', 'start backup eth1 3']);
  });

  it('stop(): no further checks, the daemons keep running', async () => {
    const { kernel, keeper } = setup();
    await keeper.set(sync());
    await keeper.stop();
    kernel.running.delete('master');
    await keeper.check();
    expect(kernel.running.has('master')).toBe(false);
    expect(kernel.running.has('backup')).toBe(true);
  });

  it('sameDaemon: a backup\'s TTL is not compared; interface and id always are', () => {
    const [master, backup] = wantedDaemons(sync());
    expect(sameDaemon({ ...backup!, mcastTtl: 9 }, backup!)).toBe(true);
    expect(sameDaemon({ ...master!, mcastTtl: 9 }, master!)).toBe(false);
    expect(sameDaemon({ ...master!, mcastIfn: 'eth0' }, master!)).toBe(false);
    expect(sameDaemon({ ...master!, syncId: 0 }, master!)).toBe(false);
  });
});
