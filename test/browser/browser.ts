// Browser tests: Debian's Chromium (/usr/bin/chromium) driven by playwright-core
// over the DevTools protocol, headless, with a fresh profile in a temporary
// directory. Nothing is downloaded: playwright-core ships no browser and is
// never asked for one. Works on the host (pages on loopback) and from a lab
// guest: with `host: true` the guest drives a Chromium on the host over the
// guest's link to the host (test/lab/host-link.ts, host-browser.ts), which
// loads a page from a lab node put on that link (lab.linkToHost); `netns`
// starts Chromium inside the guest instead, in a lab node's namespace (not
// reliable there: see SCREENSHOTS_RELIABLE).
//
//   await withBrowser('http://127.0.0.1:9090/', { netns: lab.ns('director') }, async (b) => {
//     await b.waitForAttribute(byId('server-web-198.51.100.11'), 'data-state', 'down');
//     await b.saveHtml(join(lab.dir, 'status.html'));   // a screenshot, on the host only
//     b.assertSelfContained();
//     expect(b.consoleErrors()).toEqual([]);
//   });
//
// The session records every request the page makes; requests to any origin
// but the page's own are aborted before they leave (and reported by
// foreignRequests / assertSelfContained), since a status page must work on a
// director with no way out. close() (withBrowser calls it) ends Chromium and
// removes the profile, whatever happened before.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { hostLinkFromEnv } from '../lab/host-link.js';

/** Debian's chromium package; PYBAL_CHROMIUM overrides it. */
export const CHROMIUM = process.env.PYBAL_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Flags for a closed network: without the background-networking ones,
 * Chromium keeps trying Google's hosts. As root it needs --no-sandbox.
 */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
] as const;

const IN_LAB_GUEST = process.env.PYBAL_LAB_GUEST === '1';

/**
 * In a lab guest, Chromium runs and its DOM, scripts, event streams and
 * network behave, but its screenshots come out damaged (pixels wrong, often
 * an undecodable PNG) and differ from one capture to the next. The guest's
 * UML kernel keeps only the FXSAVE part of a process's FPU state (uml.ts,
 * GUEST_NO_AVX_ENV), so AVX/AVX-512 registers do not survive a switch
 * between threads of one process; Chromium's Skia and zlib pick AVX code
 * from CPUID and have no switch to avoid it (V8's --no-enable-avx and one
 * raster thread were tried: still damaged). Take screenshots on the host:
 * from a guest, with a session opened with `host: true` (its
 * screenshotsReliable says so).
 */
export const SCREENSHOTS_RELIABLE = !IN_LAB_GUEST;

/**
 * A CSS selector for the element with this id, as it is. The status page's
 * ids keep dots (`server-web-198.51.100.11`), which `#...` would read as
 * classes (and `.11` is no valid class name: the selector does not even
 * parse); `[id="..."]` does not.
 */
export function byId(id: string): string {
  return `[id="${id.replace(/["\\]/g, (c) => `\\${c}`)}"]`;
}

export type BrowserOptions = {
  /** Start Chromium in this network namespace (`ip netns exec`), e.g. lab.ns('director'). */
  netns?: string;
  /**
   * In a lab guest: drive a Chromium that runs on the host, started for this
   * session by the host's browser agent (test/lab/host-browser.ts) and
   * reached over the guest's link to the host (test/lab/host-link.ts). Its
   * pages load over that link, so the page's URL must be an address the
   * host reaches (lab.linkToHost). What Chromium computes on the host is
   * sound, screenshots included.
   */
  host?: boolean;
  /** Default CHROMIUM. */
  executablePath?: string;
  /** Chromium's start. Default 30 s on the host, 180 s in a lab guest (UML syscalls are slow). */
  launchTimeoutMs?: number;
  /** Default for navigation and every wait. Default 10 s on the host, 60 s in a lab guest. */
  timeoutMs?: number;
  /** Default 1280 × 800 (a full-page screenshot grows to the page's height). */
  viewport?: { width: number; height: number };
  /** When the function given to withBrowser throws, a full-page screenshot is saved here first (and the DOM, as .html beside it). */
  screenshotOnFailure?: string;
};

export type WaitOptions = { timeoutMs?: number };

/** Protocols that never leave the page (inline data, the page's own blobs). */
const LOCAL_PROTOCOLS = new Set(['data:', 'blob:', 'about:', 'javascript:']);

export class BrowserSession {
  readonly page: Page;
  /** The temporary directory holding the profile (and the netns launcher); gone after close(). */
  readonly dir: string;
  /** Milliseconds Chromium took to start, and the first page to load (goto: to its load event). */
  readonly timings: { launchMs: number; loadMs: number };
  #context: BrowserContext;
  #origin: string;
  #requests: string[] = [];
  #consoleErrors: string[] = [];
  #timeoutMs: number;
  #closed: Promise<void> | undefined;

  /** False for a Chromium inside a lab guest (see SCREENSHOTS_RELIABLE); true on the host, also when driven from a guest (`host: true`). */
  readonly screenshotsReliable: boolean;
  #release: () => Promise<void>;

  private constructor(context: BrowserContext, page: Page, dir: string, timeoutMs: number, launchMs: number, screenshotsReliable: boolean, release: () => Promise<void>) {
    this.#context = context;
    this.screenshotsReliable = screenshotsReliable;
    this.#release = release;
    this.page = page;
    this.dir = dir;
    this.#timeoutMs = timeoutMs;
    this.#origin = '';
    this.timings = { launchMs, loadMs: 0 };
    context.on('request', (request) => this.#requests.push(request.url()));
    page.on('websocket', (ws) => this.#requests.push(ws.url()));
    page.on('console', (message) => {
      if (message.type() === 'error') {
        const where = message.location().url;
        this.#consoleErrors.push(`console.error: ${message.text()}${where ? ` (${where})` : ''}`);
      }
    });
    page.on('pageerror', (error) => this.#consoleErrors.push(`uncaught: ${error.message}`));
  }

  /** Starts Chromium and opens `url`; on any failure Chromium is ended and its profile removed before the error is thrown. */
  static async open(url: string, options: BrowserOptions = {}): Promise<BrowserSession> {
    const dir = mkdtempSync(join(tmpdir(), 'pybal-browser-'));
    let context: BrowserContext | undefined;
    let release = async (): Promise<void> => undefined;
    try {
      const started = Date.now();
      const launchTimeoutMs = options.launchTimeoutMs ?? (IN_LAB_GUEST ? 180_000 : 30_000);
      const contextOptions = {
        viewport: options.viewport ?? { width: 1280, height: 800 },
        // Never let Chromium keep a download or a service worker around.
        acceptDownloads: false,
        serviceWorkers: 'block' as const,
      };
      if (options.host === true) {
        const remote = await connectToHostBrowser(launchTimeoutMs);
        release = remote.release;
        context = await remote.browser.newContext(contextOptions);
      } else {
        context = await chromium.launchPersistentContext(join(dir, 'profile'), {
          executablePath: launcher(dir, options),
          headless: true,
          args: [...CHROMIUM_FLAGS],
          timeout: launchTimeoutMs,
          ...contextOptions,
        });
      }
      const launchMs = Date.now() - started;
      const timeoutMs = options.timeoutMs ?? (IN_LAB_GUEST ? 60_000 : 10_000);
      context.setDefaultTimeout(timeoutMs);
      const page = context.pages()[0] ?? (await context.newPage());
      const session = new BrowserSession(context, page, dir, timeoutMs, launchMs, options.host === true || !IN_LAB_GUEST, release);
      // Abort whatever is not the page's own before it leaves; it stays recorded.
      await context.route((u) => !session.#isOwn(u.href), (route) => route.abort('blockedbyclient'));
      await session.goto(url);
      return session;
    } catch (error) {
      await context?.close().catch(() => undefined);
      await release().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** Navigates to `url` (waits for its load event); what is recorded starts over with that page's origin. */
  async goto(url: string): Promise<void> {
    this.#origin = new URL(url).origin;
    this.#requests = [];
    this.#consoleErrors = [];
    const started = Date.now();
    const response = await gotoThroughNetworkChanges(this.page, url, this.#timeoutMs);
    this.timings.loadMs = Date.now() - started;
    if (response !== null && response.status() >= 400) throw new Error(`browser: GET ${url} answered ${response.status()}`);
  }

  /**
   * Opens `url` in another tab of this browser and waits for its load event:
   * with `javaScriptEnabled: false`, what a user with scripts off sees (only
   * the server-rendered page). Its requests and console errors are recorded
   * with the session's, its origin must be the page's (anything else is
   * aborted); close it with its close(), or let close() end it with the rest.
   */
  async openPage(url: string, options: { javaScriptEnabled?: boolean } = {}): Promise<Page> {
    const page = await this.#context.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error') this.#consoleErrors.push(`console.error (${url}): ${message.text()}`);
    });
    page.on('pageerror', (error) => this.#consoleErrors.push(`uncaught (${url}): ${error.message}`));
    if (options.javaScriptEnabled === false) {
      // What Playwright's javaScriptEnabled does for a new context, for one tab of
      // this persistent one; the setting lasts as long as this session stays attached.
      const cdp = await this.#context.newCDPSession(page);
      await cdp.send('Emulation.setScriptExecutionDisabled', { value: true });
    }
    const response = await gotoThroughNetworkChanges(page, url, this.#timeoutMs);
    if (response !== null && response.status() >= 400) throw new Error(`browser: GET ${url} answered ${response.status()}`);
    return page;
  }

  /** The page's origin (scheme, host, port). */
  get origin(): string {
    return this.#origin;
  }

  #isOwn(url: string): boolean {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return false;
    }
    return LOCAL_PROTOCOLS.has(parsed.protocol) || parsed.origin === this.#origin;
  }

  /** Every URL the page asked for since the last goto (documents, assets, fetches, event streams, web sockets). */
  requests(): string[] {
    return [...this.#requests];
  }

  /** Requests to anything but the page's origin (aborted, never sent). */
  foreignRequests(): string[] {
    return this.#requests.filter((u) => !this.#isOwn(u));
  }

  /** Throws, listing them, when the page asked for anything outside its own origin. */
  assertSelfContained(): void {
    const foreign = [...new Set(this.foreignRequests())];
    if (foreign.length > 0) throw new Error(`page ${this.#origin} is not self-contained: it requested ${foreign.join(', ')}`);
  }

  /** console.error messages and uncaught exceptions since the last goto. */
  consoleErrors(): string[] {
    return [...this.#consoleErrors];
  }

  /** Waits until `selector` matches an element attached to the document. */
  async waitForSelector(selector: string, options: WaitOptions = {}): Promise<void> {
    await this.page.locator(selector).first().waitFor({ state: 'attached', timeout: options.timeoutMs ?? this.#timeoutMs });
  }

  /**
   * Waits until the first element matching `selector` has attribute `name`
   * equal to `want` (or matching it, for a RegExp), and returns the value.
   * A timeout says what the attribute was at the end.
   *
   * Polled from here with page.evaluate (the DevTools protocol's evaluate,
   * which a page's Content-Security-Policy does not govern) rather than with
   * page.waitForFunction: Playwright evaluates a waitForFunction predicate
   * with eval() inside the page, which a policy without 'unsafe-eval' (the
   * status page's) refuses, so that every wait failed at once.
   */
  async waitForAttribute(selector: string, name: string, want: string | RegExp, options: WaitOptions = {}): Promise<string> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const deadline = Date.now() + timeoutMs;
    // A string expression: no DOM types needed here, nothing a TypeScript transform could add to a serialized function.
    const read = `(() => { const e = document.querySelector(${JSON.stringify(selector)}); return e === null ? { found: false } : { found: true, value: e.getAttribute(${JSON.stringify(name)}) }; })()`;
    let last: { found: boolean; value?: string | null } = { found: false };
    for (;;) {
      // A selector the browser cannot parse throws here, at once: waiting would not mend it.
      last = (await this.page.evaluate(read)) as typeof last;
      const v = last.value;
      if (typeof v === 'string' && (typeof want === 'string' ? v === want : new RegExp(want.source, want.flags.replace(/[gy]/g, '')).test(v))) return v;
      if (Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const now = last.found ? JSON.stringify(last.value ?? null) : 'no such element';
    const errors = this.#consoleErrors.length > 0 ? `; console errors: ${this.#consoleErrors.join(' | ')}` : '';
    throw new Error(`browser: ${selector} [${name}] never became ${String(want)} within ${timeoutMs} ms (it is ${now})${errors}`);
  }

  /** Waits until the text of the first match of `selector` contains `want` (or matches it); returns the text. */
  async waitForText(selector: string, want: string | RegExp, options: WaitOptions = {}): Promise<string> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      last = await this.text(selector, { timeoutMs: Math.max(1, deadline - Date.now()) }).catch((e: Error) => `(${e.message.split('\n')[0]})`);
      if (typeof want === 'string' ? last.includes(want) : want.test(last)) return last;
      if (Date.now() >= deadline) throw new Error(`browser: text of ${selector} never matched ${String(want)} within ${timeoutMs} ms (it is ${JSON.stringify(last)})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The rendered text (innerText) of the first match of `selector`, waiting for it to exist. */
  async text(selector: string, options: WaitOptions = {}): Promise<string> {
    return this.page.locator(selector).first().innerText({ timeout: options.timeoutMs ?? this.#timeoutMs });
  }

  /** The rendered texts of every match, now (no waiting). */
  async texts(selector: string): Promise<string[]> {
    return this.page.locator(selector).allInnerTexts();
  }

  /** Attribute `name` of the first match of `selector` (null when absent), waiting for the element to exist. */
  async attribute(selector: string, name: string, options: WaitOptions = {}): Promise<string | null> {
    return this.page.locator(selector).first().getAttribute(name, { timeout: options.timeoutMs ?? this.#timeoutMs });
  }

  /** Attribute `name` of every match, now, in document order. */
  async attributes(selector: string, name: string): Promise<(string | null)[]> {
    const all = await this.page.locator(selector).all();
    return Promise.all(all.map((l) => l.getAttribute(name)));
  }

  /** How many elements match `selector` now. */
  async count(selector: string): Promise<number> {
    return this.page.locator(selector).count();
  }

  /** A full-page PNG screenshot at `path` (its directory is created). From a Chromium on the host only: see SCREENSHOTS_RELIABLE and screenshotsReliable. */
  async screenshot(path: string): Promise<string> {
    mkdirSync(dirname(path), { recursive: true });
    await this.page.screenshot({ path, fullPage: true, timeout: this.#timeoutMs });
    return path;
  }

  /**
   * The page's DOM as HTML now (after every live update), at `path`. A status
   * page is self-contained, so the file opens in any browser as the page
   * looked: the record to keep from a lab guest, whose screenshots are not
   * trustworthy (see SCREENSHOTS_RELIABLE).
   */
  async saveHtml(path: string): Promise<string> {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, await this.page.content());
    return path;
  }

  /** Ends Chromium and removes the profile; safe to call more than once. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      try {
        await this.#context.close();
      } finally {
        await this.#release().catch(() => undefined);
        rmSync(this.dir, { recursive: true, force: true });
      }
    })();
    return this.#closed;
  }
}

/**
 * Opens `url` in a new Chromium, runs `fn` and always closes it (profile
 * removed), returning what `fn` returned or throwing what it threw.
 */
export async function withBrowser<T>(url: string, options: BrowserOptions, fn: (browser: BrowserSession) => Promise<T>): Promise<T> {
  const session = await BrowserSession.open(url, options);
  try {
    return await fn(session);
  } catch (error) {
    if (options.screenshotOnFailure !== undefined) {
      // Plus the DOM beside it, which a guest keeps intact (SCREENSHOTS_RELIABLE).
      await session.saveHtml(options.screenshotOnFailure.replace(/(\.png)?$/, '.html')).catch(() => undefined);
      await session.screenshot(options.screenshotOnFailure).catch(() => undefined);
    }
    throw error;
  } finally {
    await session.close();
  }
}

/**
 * A Chromium on the host for a lab guest: the host's browser agent starts one
 * (a Playwright browser server) and this connects to it over the host link.
 * `release` disconnects and has the agent end it.
 */
async function connectToHostBrowser(timeoutMs: number): Promise<{ browser: Browser; release: () => Promise<void> }> {
  const link = hostLinkFromEnv();
  if (link.agent === undefined) throw new Error('browser: the host link has no browser agent');
  const answer = await fetch(`${link.agent}/browsers`, { method: 'POST', signal: AbortSignal.timeout(timeoutMs) });
  const body = (await answer.json()) as { id?: string; wsEndpoint?: string; error?: string };
  if (!answer.ok || body.id === undefined || body.wsEndpoint === undefined) throw new Error(`browser: the host's browser agent (${link.agent}) answered ${answer.status}: ${body.error ?? JSON.stringify(body)}`);
  const end = async (): Promise<void> => {
    await fetch(`${link.agent}/browsers/${body.id}`, { method: 'DELETE', signal: AbortSignal.timeout(30_000) });
  };
  try {
    const browser = await chromium.connect(body.wsEndpoint, { timeout: timeoutMs });
    return {
      browser,
      release: async () => {
        try {
          await browser.close();
        } finally {
          await end();
        }
      },
    };
  } catch (error) {
    await end().catch(() => undefined);
    throw error;
  }
}

/**
 * The program playwright-core starts: Chromium itself, or, for a network
 * namespace, a script in `dir` that execs it through `ip netns exec` (one
 * process, so the DevTools pipe and Playwright's kill still reach Chromium).
 */
function launcher(dir: string, options: BrowserOptions): string {
  const chromiumPath = options.executablePath ?? CHROMIUM;
  if (!existsSync(chromiumPath)) throw new Error(`browser: ${chromiumPath} not found; install Debian's chromium package (test/debian-packages.txt)`);
  if (options.netns === undefined) return chromiumPath;
  if (!/^[\w.-]+$/.test(options.netns)) throw new Error(`browser: bad network namespace name ${JSON.stringify(options.netns)}`);
  const script = join(dir, 'chromium-in-netns');
  writeFileSync(script, `#!/bin/sh\nexec ip netns exec ${options.netns} '${chromiumPath.replaceAll("'", `'\\''`)}' "$@"\n`, { mode: 0o755 });
  return script;
}

/**
 * page.goto, tried again (up to three times in all) when Chromium gives up
 * with net::ERR_NETWORK_CHANGED: it drops a navigation in flight whenever the
 * host's interfaces change, which the lab does as it starts and stops a guest's
 * network beside this one (a fresh-clone CI run lost one this way). Any other
 * failure is the test's.
 */
async function gotoThroughNetworkChanges(page: Page, url: string, timeoutMs: number): Promise<Awaited<ReturnType<Page['goto']>>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await page.goto(url, { waitUntil: 'load', timeout: timeoutMs });
    } catch (error) {
      if (attempt >= 3 || !/net::ERR_NETWORK_CHANGED/.test(String(error))) throw error;
    }
  }
}
