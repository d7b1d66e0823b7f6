// The browser harness inside the lab guest: Debian's Chromium, started in
// director1's network namespace, follows a live SSE page served there on
// 127.0.0.1 and loads a real pybal daemon's /status from its instrumentation
// port (also on director1's 127.0.0.1). A status-page test swaps the URL and
// the assertions. What the page showed lands in the lab's scratch directory
// as HTML (the DOM after the live updates); the screenshots saved beside it
// come out damaged in the guest (SCREENSHOTS_RELIABLE in browser.ts), so
// nothing is asserted on them.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DaemonSnapshot } from '../../src/api/types.js';
import { withBrowser } from '../browser/browser.js';
import { waitFor, type LabProcess } from '../lab/exec.js';
import { startLab, type Lab } from '../lab/lab.js';
import { API_PORT, E2eConfig, E2ePybal } from './pybal-lab.js';

const FIXTURE_PORT = 9191;

let lab: Lab;
let pybal: E2ePybal;
let fixture: LabProcess;

beforeAll(async () => {
  lab = await startLab({ realServers: 2, forwarding: 'dr', router: 'none', families: [4] });
  const conf = new E2eConfig(lab);
  conf.writePool('web', conf.realServerEntries());
  conf.write([{ name: 'web' }], { bgp: false });
  pybal = E2ePybal.start(lab, conf.file);
  fixture = lab.spawn('director', ['node', 'dist/test/browser/sse-fixture-main.js', '127.0.0.1', String(FIXTURE_PORT)], { name: 'sse-fixture' });
  await fixture.waitForLine(/^listening /, 30_000);
  await waitFor(async () => ((await pybal.api('/pools')).status === 200 ? true : undefined), { timeoutMs: 60_000, what: "pybal's instrumentation API" });
}, 180_000);

afterAll(async () => {
  await lab?.stop();
});

/** POST /push to the fixture, from inside director1 (as a daemon's change would come). */
async function push(change: object): Promise<{ seq: number }> {
  const r = await lab.execOk('director', ['curl', '-sS', '-m', '10', '-X', 'POST', '--data', JSON.stringify(change), `http://127.0.0.1:${FIXTURE_PORT}/push`]);
  return JSON.parse(r.stdout) as { seq: number };
}

it('drives Chromium in the director namespace against a page that updates over server-sent events', async () => {
  const shot = join(lab.dir, 'browser-sse.guest.png');
  await withBrowser(`http://127.0.0.1:${FIXTURE_PORT}/`, { netns: lab.ns('director'), screenshotOnFailure: join(lab.dir, 'browser-sse-failure.png') }, async (b) => {
    console.log(`[browser-harness] guest: Chromium started in ${b.timings.launchMs} ms, page loaded in ${b.timings.loadMs} ms`);
    expect(await b.attribute('#server-web-rs1', 'data-state')).toBe('down');
    await b.waitForAttribute('body', 'data-live', 'yes');
    const event = await push({ host: 'rs1', state: 'up', pooled: 'yes' });
    expect(await b.waitForAttribute('#server-web-rs1', 'data-state', 'up')).toBe('up');
    expect(await b.attribute('#server-web-rs1', 'data-pooled')).toBe('yes');
    await b.waitForSelector(`#events li[data-seq="${event.seq}"]`);
    const html = readFileSync(await b.saveHtml(join(lab.dir, 'browser-sse.html')), 'utf8');
    expect(html).toMatch(/<tr id="server-web-rs1" data-state="up" data-pooled="yes">/);
    await b.screenshot(shot);
    expect(existsSync(shot)).toBe(true);
    b.assertSelfContained();
    expect(b.consoleErrors()).toEqual([]);
  });
}, 300_000);

it("loads a real pybal's /status from its instrumentation port", async () => {
  await withBrowser(`http://127.0.0.1:${API_PORT}/status`, { netns: lab.ns('director') }, async (b) => {
    console.log(`[browser-harness] guest: Chromium started in ${b.timings.launchMs} ms, /status loaded in ${b.timings.loadMs} ms`);
    // Chromium shows JSON as text: the daemon's snapshot, with the configured service.
    const snapshot = JSON.parse(await b.text('body')) as DaemonSnapshot;
    expect(snapshot.services.map((s) => s.name)).toContain('web');
    await b.saveHtml(join(lab.dir, 'browser-status.html'));
    b.assertSelfContained();
  });
}, 300_000);
