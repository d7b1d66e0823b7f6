import { describe, expect, it } from 'vitest';
import { applyOp, applyOps, describeOp, diffTables, tableFromDesired, type IpvsOp, type TableEntry } from '../../src/ipvs/diff.js';
import { IP_VS_SVC_F } from '../../src/ipvs/constants.js';
import { desired, dest, svc } from './fixtures.js';

function ops(want: Parameters<typeof tableFromDesired>[0], have: Parameters<typeof tableFromDesired>[0], remove = [] as Parameters<typeof diffTables>[2]): string[] {
  return diffTables(tableFromDesired(want), tableFromDesired(have), remove).map(describeOp);
}

describe('diffTables', () => {
  const cases: { name: string; want: Parameters<typeof ops>[0]; have: Parameters<typeof ops>[1]; expected: string[] }[] = [
    { name: 'identical tables', want: [desired(svc(80), [dest(1)])], have: [desired(svc(80), [dest(1)])], expected: [] },
    {
      name: 'a new service with its servers',
      want: [desired(svc(80), [dest(1), dest(2)])],
      have: [],
      expected: ['add service TCP 192.0.2.1:80 scheduler wrr', 'add server TCP 192.0.2.1:80 -> 198.51.100.2:80 route weight 10', 'add server TCP 192.0.2.1:80 -> 198.51.100.3:80 route weight 10'],
    },
    {
      name: 'a weight change is an edit, not delete + add',
      want: [desired(svc(80), [dest(1, { weight: 0 })])],
      have: [desired(svc(80), [dest(1)])],
      expected: ['edit server TCP 192.0.2.1:80 -> 198.51.100.2:80: route weight 10 => route weight 0'],
    },
    {
      name: 'servers removed, changed and added, in that order',
      want: [desired(svc(80), [dest(2, { fwdMethod: 'masq' }), dest(3)])],
      have: [desired(svc(80), [dest(1), dest(2)])],
      expected: [
        'delete server TCP 192.0.2.1:80 -> 198.51.100.2:80',
        'edit server TCP 192.0.2.1:80 -> 198.51.100.3:80: route weight 10 => masq weight 10',
        'add server TCP 192.0.2.1:80 -> 198.51.100.4:80 route weight 10',
      ],
    },
    {
      name: 'scheduler change edits the service in place',
      want: [desired(svc(80, { scheduler: 'mh', flags: IP_VS_SVC_F.SCHED1 }), [])],
      have: [desired(svc(80), [])],
      expected: ['edit service TCP 192.0.2.1:80: scheduler wrr => scheduler mh flags 0x8'],
    },
    {
      name: 'HASHED and the netmask of a non-persistent service are ignored',
      want: [desired(svc(80, { netmask: 32 }), [])],
      have: [desired(svc(80, { flags: IP_VS_SVC_F.HASHED, netmask: 0 }), [])],
      expected: [],
    },
    {
      name: 'persistence timeout and netmask count when persistent',
      want: [desired(svc(80, { flags: 1, timeoutSec: 300, netmask: 24 }), [])],
      have: [desired(svc(80, { flags: 1, timeoutSec: 300, netmask: 32 }), [])],
      expected: ['edit service TCP 192.0.2.1:80: scheduler wrr persistent 300s mask /32 => scheduler wrr persistent 300s mask /24'],
    },
    {
      name: 'tunnel settings count only for tunnel destinations',
      want: [desired(svc(80), [dest(1, { tunnelPort: 99 }), dest(2, { fwdMethod: 'tunnel', tunnelType: 'gue', tunnelPort: 6080 })])],
      have: [desired(svc(80), [dest(1), dest(2, { fwdMethod: 'tunnel', tunnelType: 'gue', tunnelPort: 5555 })])],
      expected: ['edit server TCP 192.0.2.1:80 -> 198.51.100.3:80: tunnel weight 10 gue port 5555 => tunnel weight 10 gue port 6080'],
    },
    {
      name: 'services the desired table does not name are left alone',
      want: [desired(svc(80), [])],
      have: [desired(svc(80), []), desired(svc(443), [dest(1)])],
      expected: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(ops(c.want, c.have)).toEqual(c.expected);
    });
  }

  it('deletes a removed service only when the kernel has it', () => {
    expect(ops([], [desired(svc(443), [dest(1)])], [svc(443).key, svc(8080).key])).toEqual(['delete service TCP 192.0.2.1:443']);
  });

  it('applyOp turns the kernel model into the desired one', () => {
    const want = tableFromDesired([desired(svc(80), [dest(2, { weight: 3 }), dest(3)]), desired(svc(81), [dest(1)])]);
    let have = tableFromDesired([desired(svc(80), [dest(1), dest(2)]), desired(svc(82), [])]);
    const list: IpvsOp[] = diffTables(want, have, [svc(82).key]);
    for (const op of list) have = applyOp(have, op);
    expect(diffTables(want, have)).toEqual([]);
    expect([...have.keys()].sort()).toEqual([...want.keys()].sort());
  });

  it('applyOps gives what applyOp one at a time gives, leaves its input alone, and handles 20,000 servers of one service at once', () => {
    const before = tableFromDesired([desired(svc(80), [dest(1), dest(2)]), desired(svc(82), [dest(5)])]);
    const snapshot = JSON.stringify([...before].map(([id, e]) => [id, [...e.dests.keys()]]));
    const list: IpvsOp[] = [
      ...diffTables(tableFromDesired([desired(svc(80), [dest(2, { weight: 3 }), dest(3)]), desired(svc(81), [dest(1)])]), before, [svc(82).key]),
      // A service deleted, then created again in the same batch.
      { op: 'new-service', service: svc(82) },
      { op: 'new-dest', key: svc(82).key, dest: dest(9) },
    ];
    let oneByOne = before;
    for (const op of list) oneByOne = applyOp(oneByOne, op);
    const all = applyOps(before, list);
    const shape = (t: ReadonlyMap<string, TableEntry>) => [...t].map(([id, e]) => [id, e.service, [...e.dests]]).sort();
    expect(shape(all)).toEqual(shape(oneByOne));
    expect(JSON.stringify([...before].map(([id, e]) => [id, [...e.dests.keys()]]))).toBe(snapshot);

    const many: IpvsOp[] = [{ op: 'new-service', service: svc(90) }];
    for (let i = 0; i < 20_000; i++) many.push({ op: 'new-dest', key: svc(90).key, dest: { ...dest(1), address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` } });
    const big = applyOps(new Map(), many);
    expect(big.get([...big.keys()][0]!)?.dests.size).toBe(20_000);
  });
});
