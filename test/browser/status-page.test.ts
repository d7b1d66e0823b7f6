/**
 * The status page in a real browser on this machine: the built `pybal` (a dry
 * run, as the host has no IPVS; the lab's status-page.lab.test.ts does the same
 * against the kernel) checks three real HTTP servers on loopback with
 * ProxyFetch, and Debian's Chromium shows its page at `/`. The page must show
 * what the daemon's own /status says, follow a server's failure and recovery
 * live (no reload), keep to its own origin, fit a phone's width, and say the
 * same with no script at all (the HTML as the server renders it).
 *
 * It also keeps a screenshot, .lab-scratch/status-page.png. The README's
 * (docs/images/status-page.png) comes from the lab's test instead, a real
 * director with the kernel's IPVS: `npm run screenshot`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DaemonSnapshot } from '../../src/api/types.js';
import { domIdPart } from '../../src/api/status-page.js';
import { freePort } from '../pool/helpers.js';
import { startRealServer, type RealServer } from '../support/real-server.js';
import { withBrowser, type BrowserSession } from './browser.js';

const PYBAL = resolve('dist/cli/pybal.js');
const HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'] as const;
const SERVICE = 'web';
const SCREENSHOT = resolve('.lab-scratch/status-page.png');

function httpGet(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((done, fail) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => done({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer in 10 s`)));
    req.on('error', fail);
    req.end();
  });
}

/** A server row by id (ids keep the dots of addresses, so an attribute selector rather than `#`). */
const serverRow = (host: string): string => `[id="server-${domIdPart(SERVICE)}-${domIdPart(host)}"]`;

describe('the status page in Chromium, from a running pybal', { timeout: 120_000 }, () => {
  let dir: string;
  let apiPort: number;
  let daemon: ChildProcess | undefined;
  const servers: RealServer[] = [];

  const status = async (): Promise<DaemonSnapshot> => JSON.parse((await httpGet(apiPort, '/status')).body) as DaemonSnapshot;

  async function waitForStatus(what: string, ok: (s: DaemonSnapshot) => boolean): Promise<DaemonSnapshot> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const s = await status().catch(() => undefined);
      if (s && ok(s)) return s;
      if (Date.now() > deadline) throw new Error(`pybal's /status never showed ${what}: ${JSON.stringify(s?.services)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pybal-page-'));
    const first = await startRealServer({ name: 'mw1', host: HOSTS[0], http: 0 });
    servers.push(first);
    const httpPort = first.ports.http as number;
    for (const [i, host] of HOSTS.slice(1).entries()) servers.push(await startRealServer({ name: `mw${i + 2}`, host, http: httpPort }));
    apiPort = await freePort();
    const pool = join(dir, 'web-pool');
    writeFileSync(pool, HOSTS.map((h) => `{ 'host': '${h}', 'weight': 10, 'enabled': True }`).join('\n') + '\n');
    writeFileSync(
      join(dir, 'pybal.conf'),
      [
        '[global]',
        // A dry run speaks no BGP: the lab's test shows the peers.
        'bgp = no',
        'instrumentation = yes',
        `instrumentation_port = ${apiPort}`,
        "instrumentation_ips = [ '127.0.0.1' ]",
        '',
        `[${SERVICE}]`,
        'protocol = tcp',
        'ip = 192.0.2.11',
        // ProxyFetch asks each server on the service's port, as PyBal does.
        `port = ${httpPort}`,
        'scheduler = wrr',
        'depool-threshold = .5',
        `config = file://${pool}`,
        "monitors = [ 'ProxyFetch' ]",
        `proxyfetch.url = [ 'http://localhost:${httpPort}/' ]`,
        'proxyfetch.interval = 1',
        'proxyfetch.timeout = 1',
        'proxyfetch.fall = 2',
        '',
      ].join('\n'),
    );
    daemon = spawn(process.execPath, [PYBAL, '--dry-run', '-c', join(dir, 'pybal.conf'), '--log-file', join(dir, 'pybal.log'), '--control-socket', join(dir, 'pybal.sock')], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    await waitForStatus('three servers up and pooled', (s) => s.services[0]?.servers?.filter((x) => x.up && x.pooled).length === 3);
  }, 60_000);

  afterAll(async () => {
    if (daemon && daemon.exitCode === null) {
      const exited = new Promise((r) => daemon?.once('exit', r));
      daemon.kill('SIGKILL');
      await exited;
    }
    for (const s of servers) await s.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Every server row of the page against the daemon's snapshot. */
  async function expectRowsMatch(b: BrowserSession, snapshot: DaemonSnapshot): Promise<void> {
    const service = snapshot.services.find((s) => s.name === SERVICE);
    expect(service?.servers?.length).toBe(HOSTS.length);
    for (const server of service?.servers ?? []) {
      const row = serverRow(server.host);
      expect(await b.attribute(row, 'data-state'), `${server.host}: state`).toBe(server.up ? 'up' : 'down');
      expect(await b.attribute(row, 'data-pooled'), `${server.host}: pooled`).toBe(server.pooled ? 'yes' : 'no');
      expect(await b.attribute(row, 'data-enabled'), `${server.host}: enabled`).toBe(server.enabled ? 'yes' : 'no');
      // The last check and its latency, from each check (not only from reports).
      expect(server.monitors[0]?.lastCheck, `${server.host}: last check in /status`).toBeDefined();
      expect(await b.text(`${row} [data-field="latency"]`), `${server.host}: latency`).toMatch(/^\d+(\.\d+)? m?s$/);
    }
  }

  it('shows the daemon\'s state, follows a failure and a recovery live, stays on its own origin, and fits a phone', async () => {
    await withBrowser(`http://127.0.0.1:${apiPort}/`, { screenshotOnFailure: resolve('.lab-scratch/status-page-failure.png') }, async (b) => {
      const loadedSeq = Number(await b.attribute('body', 'data-latest-seq'));
      await b.waitForAttribute('#stream-state', 'data-state', 'live');
      await expectRowsMatch(b, await status());
      expect(await b.text(`#service-${domIdPart(SERVICE)} [data-field="pooled"]`)).toBe('3 of 3');
      // mw2 stops answering: the row goes down and out of the pool on the page, with no reload.
      const victim = HOSTS[1];
      await servers[1]?.setBehaviour({ mode: 'down' });
      await b.waitForAttribute(serverRow(victim), 'data-pooled', 'no', { timeoutMs: 20_000 });
      expect(await b.attribute(serverRow(victim), 'data-state')).toBe('down');
      // The daemon agrees, and the event list grew past what the page was rendered with.
      const down = await waitForStatus('mw2 depooled', (s) => s.services[0]?.servers?.find((x) => x.host === victim)?.pooled === false);
      await expectRowsMatch(b, down);
      const seqs = (await b.attributes('#events li', 'data-seq')).map(Number);
      expect(Math.max(...seqs)).toBeGreaterThan(loadedSeq);
      expect((await b.texts('#events li')).some((t) => t.includes(victim))).toBe(true);
      // The service's count follows (the summary after the events).
      expect(await b.waitForText(`#service-${domIdPart(SERVICE)} [data-field="pooled"]`, '2 of 3', { timeoutMs: 10_000 })).toBe('2 of 3');

      // Without a script: the HTML the server renders says the same.
      const html = (await httpGet(apiPort, '/')).body;
      expect(html).toMatch(new RegExp(`id="server-${domIdPart(SERVICE)}-${domIdPart(victim).replaceAll('.', '\\.')}"[^>]*data-state="down"[^>]*data-pooled="no"`));

      mkdirSync(resolve('.lab-scratch'), { recursive: true });
      await b.screenshot(SCREENSHOT);
      expect(existsSync(SCREENSHOT)).toBe(true);

      // Back up: live again.
      await servers[1]?.setBehaviour({ mode: 'ok' });
      await b.waitForAttribute(serverRow(victim), 'data-pooled', 'yes', { timeoutMs: 20_000 });
      expect(await b.attribute(serverRow(victim), 'data-state')).toBe('up');
      await expectRowsMatch(b, await waitForStatus('mw2 pooled again', (s) => s.services[0]?.servers?.every((x) => x.pooled) === true));

      // A phone's width: nothing wider than the screen but what scrolls in its own box.
      await b.page.setViewportSize({ width: 390, height: 844 });
      const overflow = Number(await b.page.evaluate('document.documentElement.scrollWidth - window.innerWidth'));
      expect(overflow).toBeLessThanOrEqual(0);

      b.assertSelfContained();
      expect(b.consoleErrors()).toEqual([]);
    });
    expect(readFileSync(SCREENSHOT).subarray(1, 4).toString()).toBe('PNG');
  });
});
