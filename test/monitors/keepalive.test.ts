/**
 * IdleConnection's keepalive timeout needs a peer that goes silent in the
 * middle of a connection, which loopback cannot do. Two private namespaces
 * joined by a veth pair (documentation addresses only) can: the monitor runs
 * in A through a nested vitest (test/monitors/netns/keepalive.netns.ts), the
 * server in B.
 */
import { execFileSync, spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';

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
  const child = spawn('ip', ['netns', 'exec', a, 'npx', 'vitest', 'run', '--config', 'test/monitors/netns/vitest.netns.config.ts', 'test/monitors/netns/keepalive.netns.ts'], {
    env: { ...process.env, PYBAL_TEST_SERVER_NS: b, NO_COLOR: '1', FORCE_COLOR: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  // eslint-disable-next-line no-control-regex
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  expect(plain).toMatch(/✓ .*a peer that goes silent is down by keepalive timeout/);
  expect(plain).toMatch(/Tests\s+1 passed \(1\)/);
  expect(code, output).toBe(0);
}, 120_000);
