/**
 * Runs inside network namespace A (see keepalive.test.ts): an IdleConnection
 * to a server in namespace B goes down by keepalive timeout once B goes
 * silent in the middle of the connection.
 */
import { execFileSync, spawn } from 'node:child_process';
import { expect, it } from 'vitest';
import { createSystemClock } from '../../../src/runtime/clock.js';
import { createIdleConnectionMonitor } from '../../../src/monitors/idle-connection.js';
import { idleConnectionConfig } from '../support/configs.js';
import { recorder, target, waitFor } from '../support/helpers.js';

const serverNs = process.env.PYBAL_TEST_SERVER_NS ?? '';
const serverIp = '192.0.2.2';

it('a peer that goes silent is down by keepalive timeout', async () => {
  expect(serverNs).not.toBe('');
  const server = spawn('ip', ['netns', 'exec', serverNs, process.execPath, '-e', `
    const net = require('node:net');
    net.createServer((s) => { s.on('error', () => {}); }).listen(7000, '${serverIp}', () => console.log('listening'));
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  const rec = recorder();
  const monitor = createIdleConnectionMonitor(idleConnectionConfig({ keepaliveIdleMs: 1000 }), target(serverIp, 7000), rec.deps(createSystemClock()));
  try {
    await new Promise((resolve) => server.stdout.once('data', resolve));
    monitor.start();
    await waitFor(() => rec.reports.length === 1, 'the up report');
    expect(rec.reports[0]).toMatchObject({ up: true });
    // The server's frames now go to a MAC nobody has: B neither answers nor resets.
    execFileSync('ip', ['neigh', 'replace', serverIp, 'lladdr', '02:00:00:00:00:99', 'dev', 'va', 'nud', 'permanent']);
    await waitFor(() => rec.reports.length === 2, 'the keepalive timeout', 45_000);
    expect(rec.reports[1]).toMatchObject({ up: false, reason: 'Connection lost: read ETIMEDOUT' });
    expect(rec.results[1]).toMatchObject({ event: 'connection-lost', errorCode: 'ETIMEDOUT' });
  } finally {
    await monitor.stop();
    server.kill('SIGKILL');
  }
});
