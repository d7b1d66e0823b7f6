// The browser harness on the host: Debian's Chromium against the SSE fixture
// page served by node:http on loopback.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserSession, byId, withBrowser } from './browser.js';
import { SseFixtureServer } from './sse-fixture.js';

let fixture: SseFixtureServer;
let base: string;
let out: string;

beforeAll(async () => {
  fixture = new SseFixtureServer();
  base = await fixture.listen('127.0.0.1', 0);
  out = mkdtempSync(join(tmpdir(), 'pybal-browser-test-'));
});

afterAll(async () => {
  await fixture?.close();
  if (out) rmSync(out, { recursive: true, force: true });
});

/** Processes whose command line names `text` (the profile directory is unique to one session). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

describe('browser harness (Debian chromium via playwright-core)', () => {
  it('follows a page that updates live over server-sent events', async () => {
    const shot = join(out, 'live.png');
    let dir = '';
    await withBrowser(base + '/', {}, async (b) => {
      dir = b.dir;
      expect(processesMentioning(dir).length).toBeGreaterThan(0);
      expect(await b.attribute('#server-web-rs1', 'data-state')).toBe('down');
      // The page's policy forbids eval() as pybal's status page does: the waits below must not need it.
      await b.waitForAttribute('body', 'data-live', 'yes');
      const first = fixture.push({ host: 'rs1', state: 'up', pooled: 'yes' });
      expect(await b.waitForAttribute('#server-web-rs1', 'data-state', 'up')).toBe('up');
      expect(await b.attribute('#server-web-rs1', 'data-pooled')).toBe('yes');
      await b.waitForSelector(`#events li[data-seq="${first.seq}"]`);
      // A RegExp match, and the row's text as the user sees it.
      const second = fixture.push({ host: 'rs2', state: 'down', pooled: 'no' });
      expect(await b.waitForAttribute('#server-web-rs2', 'data-state', /^do/)).toBe('down');
      expect(await b.waitForText('#server-web-rs2', 'not pooled')).toContain('rs2');
      await b.waitForSelector(`#events li[data-seq="${second.seq}"]`);
      expect(await b.attributes('#events li', 'data-seq')).toEqual([String(second.seq), String(first.seq)]);
      expect(await b.count('#service-web tr[id^="server-web-"]')).toBe(2);
      await b.screenshot(shot);
      // The DOM as it is now, after the live updates (the server sent rs1 down).
      const html = readFileSync(await b.saveHtml(join(out, 'live.html')), 'utf8');
      expect(html).toMatch(/<tr id="server-web-rs1" data-state="up" data-pooled="yes">/);
      b.assertSelfContained();
      expect(b.requests()).toEqual(expect.arrayContaining([base + '/', base + '/events']));
      expect(b.consoleErrors()).toEqual([]);
      expect(b.timings.launchMs).toBeGreaterThan(0);
    });
    const png = readFileSync(shot);
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    // Full page, 1280 wide (the viewport).
    expect(png.readUInt32BE(16)).toBe(1280);
    // Closed: Chromium gone, profile removed.
    expect(existsSync(dir)).toBe(false);
    expect(processesMentioning(dir)).toEqual([]);
  });

  it('waits for a change that comes while it polls, on a page whose policy forbids eval()', async () => {
    await withBrowser(base + '/', {}, async (b) => {
      await b.waitForAttribute('body', 'data-live', 'yes');
      const before = await b.attribute('#server-web-rs1', 'data-state');
      const want = before === 'up' ? 'down' : 'up';
      // The change comes only once the wait has polled a while (Playwright's
      // waitForFunction, which evals its predicate in the page, failed at once here).
      const waiting = b.waitForAttribute('#server-web-rs1', 'data-state', want);
      const pushed = new Promise<void>((resolve) => setTimeout(() => resolve(void fixture.push({ host: 'rs1', state: want, pooled: want === 'up' ? 'yes' : 'no' })), 500));
      expect(await waiting).toBe(want);
      await pushed;
      expect(b.consoleErrors()).toEqual([]);
    });
  });

  it('opens a second tab with JavaScript off: the page as the server rendered it', async () => {
    await withBrowser(base + '/', {}, async (b) => {
      await b.waitForAttribute('body', 'data-live', 'yes');
      const event = fixture.push({ host: 'rs2', state: 'down', pooled: 'no' });
      await b.waitForAttribute(byId('server-web-rs2'), 'data-state', 'down');
      const plain = await b.openPage(base + '/', { javaScriptEnabled: false });
      // Rendered after the change; its script never ran: no stream of its own, never live.
      expect(await plain.locator(byId('server-web-rs2')).getAttribute('data-pooled')).toBe('no');
      expect(await plain.locator('body').getAttribute('data-live')).toBe('no');
      expect(fixture.streams).toBe(1);
      const later = fixture.push({ host: 'rs2', state: 'up', pooled: 'yes' });
      expect(later.seq).toBe(event.seq + 1);
      await b.waitForAttribute(byId('server-web-rs2'), 'data-state', 'up');
      expect(await plain.locator(byId('server-web-rs2')).getAttribute('data-state')).toBe('down');
      expect(await plain.locator('#events li').count()).toBe(0);
      await plain.close();
      b.assertSelfContained();
      expect(b.consoleErrors()).toEqual([]);
    });
  });

  it('byId: a selector for an id as it is, dots included', () => {
    expect(byId('server-web-198.51.100.11')).toBe('[id="server-web-198.51.100.11"]');
    expect(byId('a"b\\c')).toBe('[id="a\\"b\\\\c"]');
  });

  it('says what the attribute was when it never reaches the wanted value', async () => {
    await withBrowser(base + '/', {}, async (b) => {
      const err = await b.waitForAttribute('#server-web-rs1', 'data-state', 'draining', { timeoutMs: 1_000 }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/#server-web-rs1 \[data-state\] never became draining within 1000 ms \(it is "(up|down)"\)/);
      const missing = await b.waitForAttribute('#server-web-nope', 'data-state', 'up', { timeoutMs: 500 }).catch((e: Error) => e);
      expect((missing as Error).message).toContain('no such element');
    });
  });

  it('fails the self-containment check of a page that loads an asset from another origin', async () => {
    await withBrowser(base + '/external', {}, async (b) => {
      expect(b.foreignRequests()).toEqual(['http://192.0.2.77:8080/logo.png']);
      expect(() => b.assertSelfContained()).toThrow(/not self-contained: it requested http:\/\/192\.0\.2\.77:8080\/logo\.png/);
      // The request was aborted in the browser, never sent.
      expect(b.consoleErrors().join('\n')).toMatch(/ERR_BLOCKED_BY_CLIENT/);
    });
  });

  it('collects console errors and uncaught exceptions', async () => {
    await withBrowser(base + '/broken', {}, async (b) => {
      const errors = b.consoleErrors();
      expect(errors).toEqual(expect.arrayContaining([expect.stringContaining('broken page: missing data'), 'uncaught: boom from the page']));
      b.assertSelfContained();
      // A new page starts a new record.
      await b.goto(base + '/');
      expect(b.consoleErrors()).toEqual([]);
    });
  });

  it('closes Chromium and removes its profile when the test body fails, after a screenshot', async () => {
    const shot = join(out, 'failure.png');
    let dir = '';
    const err = await withBrowser(base + '/', { screenshotOnFailure: shot }, async (b) => {
      dir = b.dir;
      throw new Error('assertion in the test body');
    }).catch((e: Error) => e);
    expect((err as Error).message).toBe('assertion in the test body');
    expect(existsSync(shot)).toBe(true);
    expect(readFileSync(join(out, 'failure.html'), 'utf8')).toContain('id="service-web"');
    expect(dir).not.toBe('');
    expect(existsSync(dir)).toBe(false);
    expect(processesMentioning(dir)).toEqual([]);
  });

  it('cleans up when the page cannot be opened at all', async () => {
    const before = new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('pybal-browser-') && !n.startsWith('pybal-browser-test-')));
    // A port nobody listens on: the fixture's, once closed.
    const gone = new SseFixtureServer();
    const url = await gone.listen('127.0.0.1', 0);
    await gone.close();
    const err = await BrowserSession.open(url + '/').catch((e: Error) => e);
    expect((err as Error).message).toMatch(/ERR_CONNECTION_REFUSED/);
    const after = readdirSync(tmpdir()).filter((n) => n.startsWith('pybal-browser-') && !n.startsWith('pybal-browser-test-') && !before.has(n));
    expect(after).toEqual([]);
    // A 404 is a failure to open too.
    await expect(BrowserSession.open(base + '/no-such-page')).rejects.toThrow(/answered 404/);
  });
});
