// The IPVS side of data-path checks: each checked server's probe service
// (desired.ts probeServiceFor), the marks they use (DataPathMarks), and the
// manager deleting probe services it owns but no one desires any more.
import { afterEach, describe, expect, it } from 'vitest';
import { DataPathMarks } from '../../src/coordinator/data-path-marks.js';
import { DATAPATH_FWMARK_COUNT } from '../../src/config/types.js';
import { probeServiceFor } from '../../src/ipvs/desired.js';
import { IpvsManager } from '../../src/ipvs/manager.js';
import { ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { serviceConfig } from '../support/config-fixtures.js';
import { FakeIpvsKernel } from './fake-kernel.js';
import { desired, dest, svc } from './fixtures.js';

describe('probeServiceFor', () => {
  it('is a firewall-mark service with the server alone, forwarded as the service forwards, at weight 1', () => {
    const dr = probeServiceFor(serviceConfig('web', '203.0.113.1', { dataPathMonitors: ['TCPConnect'] }), '198.51.100.12', 0x70b00007);
    expect(dr).toEqual({
      key: { family: 4, fwmark: 0x70b00007 },
      scheduler: 'rr',
      flags: 0,
      timeoutSec: 0,
      netmask: 32,
      peName: '',
      destinations: [expect.objectContaining({ family: 4, address: '198.51.100.12', port: 0, weight: 1, fwdMethod: 'droute', upperThreshold: 0, lowerThreshold: 0 })],
    });
    const gue = probeServiceFor(
      serviceConfig('v6', '2001:db8:3::1', { forwardMethod: 'tunnel', tunnel: { type: 'gue', port: 6080, checksum: 'csum' }, upperThreshold: 50 }),
      '2001:DB8:1::12',
      9,
    );
    expect(gue.key).toEqual({ family: 6, fwmark: 9 });
    expect(gue.netmask).toBe(128);
    expect(gue.destinations).toEqual([expect.objectContaining({ address: '2001:db8:1::12', fwdMethod: 'tunnel', tunnelType: 'gue', tunnelPort: 6080, upperThreshold: 0 })]);
  });
});

describe('DataPathMarks', () => {
  it('hands out each mark of its range once, fresh ones before released ones, and knows its range', () => {
    const marks = new DataPathMarks(0x1000);
    const a = marks.acquire();
    const b = marks.acquire();
    expect([a, b]).toEqual([0x1000, 0x1001]);
    marks.release(a!);
    expect(marks.acquire()).toBe(0x1002);
    expect(marks.count()).toBe(2);
    expect(marks.owns(0x1000)).toBe(true);
    expect(marks.owns(0x1000 + DATAPATH_FWMARK_COUNT - 1)).toBe(true);
    expect(marks.owns(0x1000 + DATAPATH_FWMARK_COUNT)).toBe(false);
    expect(marks.owns(0xfff)).toBe(false);
  });

  it('reuses released marks once the range is used up, and says when none is left', () => {
    const marks = new DataPathMarks(1);
    const all = new Set<number>();
    for (let i = 0; i < DATAPATH_FWMARK_COUNT; i++) all.add(marks.acquire()!);
    expect(all.size).toBe(DATAPATH_FWMARK_COUNT);
    expect(marks.acquire()).toBeUndefined();
    marks.release(5);
    marks.release(7);
    expect(marks.acquire()).toBe(5);
    expect(marks.acquire()).toBe(7);
    expect(marks.acquire()).toBeUndefined();
  });
});

describe('IpvsManager: services it owns', () => {
  const managers: IpvsManager[] = [];
  afterEach(async () => {
    for (const m of managers.splice(0)) await m.stop();
  });

  it('deletes an owned probe service no one desires at a full resync, keeps a desired one, and never touches other firewall-mark services', async () => {
    const kernel = new FakeIpvsKernel();
    const clock = new ManualClock();
    const log = createMemoryLogger();
    const marks = new DataPathMarks(0x70b00000);
    const manager = new IpvsManager({ kernel, clock, logger: log.logger, owns: (key) => 'fwmark' in key && marks.owns(key.fwmark) });
    managers.push(manager);
    const config = serviceConfig('web', '203.0.113.1');
    const stale = probeServiceFor(config, '198.51.100.11', 0x70b00001);
    const kept = probeServiceFor(config, '198.51.100.12', 0x70b00002);
    const operators = { ...svc(0), key: { family: 4 as const, fwmark: 7 } };
    kernel.put(stale, stale.destinations);
    kernel.put(kept, kept.destinations);
    kernel.put(operators, [dest(1, { port: 0 })]);
    kernel.put(svc(80), [dest(1)]);
    manager.setDesired([desired(svc(80), [dest(1)]), kept]);
    manager.start();
    await manager.idle();
    expect(kernel.dests(stale.key)).toEqual([]);
    expect(kernel.applied.filter((op) => op.op === 'del-service')).toEqual([expect.objectContaining({ key: stale.key })]);
    expect(kernel.dests(kept.key)).toHaveLength(1);
    expect(kernel.dests(operators.key)).toHaveLength(1);
    expect(log.lines().join('\n')).toContain(`deleting FWM ${0x70b00001}, a data-path probe service`);
    // A probe service no longer desired goes too, as any service pybal stops naming.
    manager.setDesired([desired(svc(80), [dest(1)])]);
    await manager.idle();
    expect(kernel.applied.filter((op) => op.op === 'del-service')).toHaveLength(2);
    expect(kernel.dests(svc(80).key)).toHaveLength(1);
  });
});
