import { describe, expect, it } from 'vitest';
import { describePoolChange, diffPools } from '../../src/coordinator/pool-diff.js';
import type { Pool, PoolServer } from '../../src/pool/types.js';

const server = (host: string, weight = 10, enabled = true): PoolServer => ({ host, weight, enabled });
const pool = (...servers: PoolServer[]): Pool => new Map(servers.map((s) => [s.host, s]));

describe('diffPools', () => {
  it('finds added, removed and changed servers', () => {
    const before = pool(server('mw1'), server('mw2'), server('mw3', 10, true));
    const after = pool(server('mw1'), server('mw3', 5, true), server('mw4', 0, false));
    expect(diffPools(before, after)).toEqual({
      added: [server('mw4', 0, false)],
      removed: [server('mw2')],
      changed: [[server('mw3'), server('mw3', 5, true)]],
    });
  });

  it('finds nothing between equal pools', () => {
    expect(diffPools(pool(server('a')), pool(server('a')))).toEqual({ added: [], removed: [], changed: [] });
  });
});

describe('describePoolChange', () => {
  it("summarises the first pool in PyBal's words", () => {
    expect(describePoolChange(undefined, pool(server('a'), server('b', 10, false), server('c')))).toEqual([
      'Added 3 server(s): 2 enabled server(s) and 1 disabled server(s)',
    ]);
  });

  it('lists each later change', () => {
    expect(describePoolChange(pool(server('a'), server('b')), pool(server('a', 10, false), server('c', 0)))).toEqual([
      'New enabled server c, weight 0',
      'Merged disabled server a, weight 10',
      'Removing server b (no longer found in new configuration)',
    ]);
  });
});
