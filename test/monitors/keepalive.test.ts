/**
 * IdleConnection's keepalive timeout needs a peer that goes silent in the
 * middle of a connection, which loopback cannot do. Two private namespaces
 * joined by a veth pair (documentation addresses only) can: the monitor runs
 * in A through a nested vitest (test/monitors/netns/keepalive.netns.ts), the
 * server in B.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runNestedInNetns } from './support/netns.js';

const a = `pybal-ka-a-${process.pid}`;
const b = `pybal-ka-b-${process.pid}`;
const ip = (...args: string[]): void => {
  execFileSync('ip', args, { stdio: 'pipe' });
};

beforeAll(() => {
  ip('netns', 'add', a);
  ip('netns', 'add', b);
  ip('-n', a, 'link', 'set', 'lo', 'up');
  ip('-n', b, 'link', 'set', 'lo', 'up');
  ip('-n', a, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb', 'netns', b);
  ip('-n', a, 'addr', 'add', '192.0.2.1/24', 'dev', 'va');
  ip('-n', b, 'addr', 'add', '192.0.2.2/24', 'dev', 'vb');
  ip('-n', a, 'link', 'set', 'va', 'up');
  ip('-n', b, 'link', 'set', 'vb', 'up');
});

afterAll(() => {
  for (const ns of [a, b]) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
  }
});

it('IdleConnection is down by keepalive timeout when the peer goes silent (nested run in a namespace)', async () => {
  const { code, output } = await runNestedInNetns(a, 'test/monitors/netns/keepalive.netns.ts', { PYBAL_TEST_SERVER_NS: b });
  expect(output).toMatch(/✓ .*a peer that goes silent is down by keepalive timeout/);
  expect(output).toMatch(/Tests\s+1 passed \(1\)/);
  expect(code, output).toBe(0);
}, 120_000);
