// The status page in a real browser (issue 15): Debian's Chromium loads `/`
// from a real pybal running in the lab's director1, against the guest's real
// kernel IPVS and BIRD. The page is checked against the daemon's own /status
// (read over the control socket while nothing changes), then a real server
// fails and the open page, never reloaded, shows it go down and be depooled
// (the kernel's IPVS table is the ground truth that it left), then come back.
// A second tab with JavaScript off shows the server-rendered page. The DOM
// and a screenshot are kept in the lab's scratch directory.
//
// Chromium runs on the host, not in the guest: the guest's UML kernel keeps
// no AVX state (test/lab/README.md, "Hosts with AVX-512 or AMX"), which
// damaged Chromium's screenshots there and now and then a DevTools message.
// The test still runs in the guest and drives it: the guest has an eth0 on a
// tap of the host (test/lab/host-link.ts), lab.linkToHost puts director1 on
// that link, pybal also listens on director1's address there, and the host's
// browser agent (test/lab/host-browser.ts) starts Chromium for
// BrowserSession.open(url, { host: true }). The page travels host <- tap <-
// guest bridge <- veth <- director1, with no NAT or proxy on the way.
//
// The screenshot (after rs2 was depooled) is checked byte for byte (every PNG
// chunk's CRC: what the host's Chromium encoded arrived intact), kept as
// .lab-scratch/status-page-lab.png and, with PYBAL_UPDATE_SCREENSHOTS=1
// (`npm run screenshot`), copied to docs/images/status-page.png for the README.
//
// One lab, one daemon, one Chromium: the cases run in order and share them.
// No timing is asserted.
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { domIdPart } from '../../src/api/status-page.js';
import type { DaemonSnapshot } from '../../src/api/types.js';
import { BrowserSession, byId } from '../browser/browser.js';
import { checkPng } from '../browser/png.js';
import { waitFor } from '../lab/exec.js';
import type { Lab } from '../lab/lab.js';
import { repoRoot } from '../lab/uml.js';
import { API_PORT, E2ePybal, birdSession, ipvsDestinations, proxyFetchLines, startWebLab, waitForIpvsDestinations, type E2eConfig, type E2eService } from './pybal-lab.js';

/** director1's address on the link to the host, where pybal's API also listens; set in beforeAll. */
let PAGE = '';
// ProxyFetch checks every second; with three servers and a threshold of .5, one may leave.
const web: E2eService = { name: 'web', extra: [...proxyFetchLines(), 'depool-threshold = .5'] };
// rs3 disabled in its pool: a row with data-enabled="no".
const api: E2eService = { name: 'api', vipIndex: 1, extra: [...proxyFetchLines(), 'depool-threshold = .5'] };

let lab: Lab;
let pybal: E2ePybal;
let rs: { name: string; ip: string }[];
let b: BrowserSession;
/** The body's data-latest-seq when the page was loaded: every later event came over the stream. */
let loadedSeq = 0;

const ipOf = (name: string): string => rs.find((r) => r.name === name)!.ip;
const serverId = (service: string, host: string): string => `server-${domIdPart(service)}-${domIdPart(host)}`;

/** What the page shows of a snapshot: the hooks status-page.ts documents. */
type Shown = {
  services: Record<string, { pooled: string; up: string }>;
  servers: Record<string, { state: string | null; pooled: string | null; enabled: string | null }>;
  peers: Record<string, string | null>;
};

function expected(snapshot: DaemonSnapshot): Shown {
  const shown: Shown = { services: {}, servers: {}, peers: {} };
  for (const s of snapshot.services) {
    const count = (f: (x: (typeof s.servers)[number]) => boolean): string => `${s.servers.filter(f).length} of ${s.servers.length}`;
    shown.services[`service-${domIdPart(s.name)}`] = { pooled: count((x) => x.pooled), up: count((x) => x.up) };
    for (const x of s.servers) {
      shown.servers[serverId(s.name, x.host)] = { state: x.up ? 'up' : 'down', pooled: x.pooled ? 'yes' : 'no', enabled: x.enabled ? 'yes' : 'no' };
    }
  }
  for (const p of snapshot.bgp.peers) shown.peers[`peer-${domIdPart(p.peer)}`] = p.state;
  return shown;
}

/** The same, read from a page (the live one, or the tab without JavaScript), through locators. */
async function shownBy(page: BrowserSession['page']): Promise<Shown> {
  const attrs = async (selector: string, name: string): Promise<(string | null)[]> =>
    Promise.all((await page.locator(selector).all()).map((l) => l.getAttribute(name)));
  const shown: Shown = { services: {}, servers: {}, peers: {} };
  const services = '#services tr[id^="service-"]';
  const [serviceIds, pooled, up] = [await attrs(services, 'id'), await page.locator(`${services} [data-field="pooled"]`).allTextContents(), await page.locator(`${services} [data-field="up"]`).allTextContents()];
  serviceIds.forEach((id, i) => (shown.services[String(id)] = { pooled: pooled[i] ?? '(none)', up: up[i] ?? '(none)' }));
  const servers = 'tr[id^="server-"]';
  const [serverIds, states, pooledFlags, enabled] = [await attrs(servers, 'id'), await attrs(servers, 'data-state'), await attrs(servers, 'data-pooled'), await attrs(servers, 'data-enabled')];
  serverIds.forEach((id, i) => (shown.servers[String(id)] = { state: states[i] ?? null, pooled: pooledFlags[i] ?? null, enabled: enabled[i] ?? null }));
  const peers = 'tr[id^="peer-"]';
  const [peerIds, peerStates] = [await attrs(peers, 'id'), await attrs(peers, 'data-state')];
  peerIds.forEach((id, i) => (shown.peers[String(id)] = peerStates[i] ?? null));
  return shown;
}

/**
 * Keeps the screenshot beyond the run's scratch directory (removed when the
 * run passes), and with PYBAL_UPDATE_SCREENSHOTS=1 makes it the README's.
 */
function keepScreenshot(png: string): void {
  const root = repoRoot();
  mkdirSync(join(root, '.lab-scratch'), { recursive: true });
  copyFileSync(png, join(root, '.lab-scratch', 'status-page-lab.png'));
  if (process.env.PYBAL_UPDATE_SCREENSHOTS === '1') {
    copyFileSync(png, join(root, 'docs', 'images', 'status-page.png'));
    console.log('[status-page] docs/images/status-page.png updated');
  }
}

/** The daemon's state, read until two reads in a row agree (so that it is not caught mid-change). */
async function steadyStatus(): Promise<DaemonSnapshot> {
  return waitFor(
    async () => {
      const a = await pybal.status();
      const z = await pybal.status();
      return isDeepStrictEqual(expected(a), expected(z)) ? z : undefined;
    },
    { timeoutMs: 30_000, what: 'a steady /status' },
  );
}

/** Waits until the page shows exactly what the daemon's /status says (the counts follow the stream's periodic summary). */
async function waitForPageToMatchDaemon(what: string): Promise<Shown> {
  return waitFor(
    async () => {
      const want = expected(await steadyStatus());
      const have = await shownBy(b.page);
      if (isDeepStrictEqual(have, want)) return have;
      throw new Error(`page ${JSON.stringify(have)} vs daemon ${JSON.stringify(want)}`);
    },
    { timeoutMs: 60_000, intervalMs: 500, what },
  );
}

/**
 * An event item the stream added after the page was loaded, for this kind and
 * server; its seq. Read through locators (the items' data-seq and their
 * `.where` text), as the other reads here.
 */
async function waitForStreamedEvent(kind: string, service: string, host: string, after: number): Promise<number> {
  const items = `#events li[data-kind="${kind}"]`;
  return waitFor(
    async () => {
      const seqs = (await b.attributes(items, 'data-seq')).map(Number);
      const wheres = await b.texts(`${items} .where`);
      // Every item of a server's event names its service and server: one .where each.
      if (wheres.length !== seqs.length) throw new Error(`${seqs.length} items, ${wheres.length} with a .where`);
      const i = seqs.findIndex((seq, j) => seq > after && wheres[j] === `${service} / ${host}`);
      if (i >= 0) return seqs[i];
      throw new Error(`the page lists ${JSON.stringify(seqs.map((seq, j) => `#${seq} ${wheres[j]}`))}`);
    },
    { timeoutMs: 60_000, what: `a ${kind} event for ${service} / ${host} after #${after} on the page` },
  );
}

describe("the status page in the host's Chromium, from a pybal in the lab", () => {
  beforeAll(async () => {
    let conf: E2eConfig;
    ({ lab, conf, rs } = await startWebLab(web));
    // Fails here, with the host's reason, when the guest has no link to the host.
    const pageAddress = await lab.linkToHost('director');
    PAGE = `http://${pageAddress}:${API_PORT}/`;
    conf.writePool('api', conf.realServerEntries({ rs3: { enabled: false } }));
    conf.write([web, api], { instrumentationIps: ['127.0.0.1', pageAddress] });
    pybal = E2ePybal.start(lab, conf.file);
    await waitForIpvsDestinations(lab, rs.map((r) => r.ip).sort(), 'web: the three real servers in IPVS', { timeoutMs: 60_000 });
    await waitForIpvsDestinations(lab, [ipOf('rs1'), ipOf('rs2')].sort(), 'api: rs1 and rs2 in IPVS', { timeoutMs: 60_000, vipIndex: 1 });
    await lab.router.waitForPeer(lab.addr.director.v4!, 'established', 60_000);
    await waitFor(async () => ((await pybal.status()).bgp.peers.every((p) => p.state === 'Established') ? true : undefined), { timeoutMs: 60_000, what: "pybal's peer Established" });
    b = await BrowserSession.open(PAGE, { host: true });
    console.log(`[status-page] the host's Chromium started in ${b.timings.launchMs} ms, ${PAGE} loaded in ${b.timings.loadMs} ms`);
  }, 400_000);

  afterAll(async () => {
    await b?.close();
    await lab?.stop();
  });

  /** On a failure, the DOM and a screenshot as they were (kept with the run's scratch, which a failed run keeps). */
  function keepDomOnFailure(name: string): void {
    onTestFailed(async () => {
      await b?.saveHtml(join(lab.dir, `status-page-failed-${name}.html`)).catch(() => undefined);
      await b?.screenshot(join(lab.dir, `status-page-failed-${name}.png`)).catch(() => undefined);
    });
  }

  it("shows the daemon's state: every service's counts, every server's state, the BGP peer; live updates connect", async () => {
    keepDomOnFailure('load');
    loadedSeq = Number(await b.attribute('body', 'data-latest-seq'));
    expect(loadedSeq).toBeGreaterThan(0);
    // Nothing changes meanwhile (every server healthy, the session up): the daemon now is the daemon at render.
    const snapshot = await steadyStatus();
    const want = expected(snapshot);
    expect(await shownBy(b.page)).toEqual(want);
    // What the lab holds, so that the comparison is not vacuous.
    expect(Object.keys(want.services).sort()).toEqual(['service-api', 'service-web']);
    expect(want.services['service-web']).toEqual({ pooled: '3 of 3', up: '3 of 3' });
    expect(want.servers[serverId('api', ipOf('rs3'))]).toEqual({ state: expect.any(String), pooled: 'no', enabled: 'no' });
    expect(Object.keys(want.servers)).toHaveLength(6);
    const peer = `peer-${domIdPart(lab.addr.router.v4!)}`;
    expect(want.peers).toEqual({ [peer]: 'Established' });
    expect((await birdSession(lab, lab.addr.director.v4!))?.info).toBe('Established');
    expect(await b.text(`${byId(peer)} [data-field="state"]`)).toBe('Established');

    await b.waitForAttribute('#stream-state', 'data-state', 'live');
    b.assertSelfContained();
    expect(b.requests()).toEqual(expect.arrayContaining([PAGE, `${PAGE}events/stream?since=${loadedSeq}`]));
    expect(b.consoleErrors()).toEqual([]);
  }, 300_000);

  let depooledSeq = 0;
  it('watches a real server fail and leave IPVS, live, without a reload', async () => {
    keepDomOnFailure('depool');
    const host = ipOf('rs2');
    const row = byId(serverId('web', host));
    expect(await b.attribute(row, 'data-state')).toBe('up');
    await lab.realServer('rs2').setBehaviour({ mode: 'down' });

    await b.waitForAttribute(row, 'data-state', 'down');
    await b.waitForAttribute(row, 'data-pooled', 'no');
    expect(await b.text(`${row} [data-field="pooled"]`)).toBe('no');
    expect(await b.text(`${row} [data-field="check"]`)).toMatch(/Fetch failed/);
    await waitForStreamedEvent('monitor-down', 'web', host, loadedSeq);
    depooledSeq = await waitForStreamedEvent('depooled', 'web', host, loadedSeq);
    // The kernel: rs2 left web's IPVS service.
    await waitForIpvsDestinations(lab, [ipOf('rs1'), ipOf('rs3')].sort(), 'rs2 out of web in IPVS');
    // Still the same document: nothing reloaded it.
    expect(Number(await b.attribute('body', 'data-latest-seq'))).toBe(loadedSeq);
    expect(await b.attribute('#stream-state', 'data-state')).toBe('live');

    // Everything else on the page agrees with the daemon too (api decided about rs2 as well), counts included.
    const shown = await waitForPageToMatchDaemon('the page after rs2 failed');
    expect(shown.services['service-web']).toEqual({ pooled: '2 of 3', up: '2 of 3' });
    expect(shown.servers[serverId('web', host)]).toEqual({ state: 'down', pooled: 'no', enabled: 'yes' });
    console.log(`[status-page] api after rs2 failed: ${JSON.stringify(shown.services['service-api'])}; IPVS api: ${JSON.stringify(await ipvsDestinations(lab, 80, 1))}`);

    const html = readFileSync(await b.saveHtml(join(lab.dir, 'status-page-rs2-down.html')), 'utf8');
    expect(html).toContain(`id="${serverId('web', host)}" data-service="web" data-host="${host}" data-state="down" data-pooled="no" data-enabled="yes"`);

    // The picture of it, from the host's Chromium: intact to the last byte.
    expect(b.screenshotsReliable).toBe(true);
    const png = await b.screenshot(join(lab.dir, 'status-page.png'));
    const info = checkPng(readFileSync(png));
    expect(info.width).toBe(1280);
    keepScreenshot(png);
    console.log(`[status-page] screenshot ${info.width}x${info.height}: ${png}`);
    b.assertSelfContained();
    expect(b.consoleErrors()).toEqual([]);
  }, 300_000);

  it('without JavaScript, the server-rendered page shows the same state', async () => {
    keepDomOnFailure('nojs');
    const started = Date.now();
    const plain = await b.openPage(PAGE, { javaScriptEnabled: false });
    console.log(`[status-page] / loaded with JavaScript off in ${Date.now() - started} ms`);
    try {
      const snapshot = await steadyStatus();
      expect(await shownBy(plain)).toEqual(expected(snapshot));
      const row = plain.locator(byId(serverId('web', ipOf('rs2'))));
      expect(await row.getAttribute('data-state')).toBe('down');
      expect(await row.getAttribute('data-pooled')).toBe('no');
      expect(await plain.locator('[id="service-web"] [data-field="pooled"]').textContent()).toBe('2 of 3');
      // Rendered after the depool: its list has it, with no stream to bring it.
      expect(Number(await plain.locator('body').getAttribute('data-latest-seq'))).toBeGreaterThanOrEqual(depooledSeq);
      expect(await plain.locator(`#events li[data-seq="${depooledSeq}"]`).getAttribute('data-kind')).toBe('depooled');
      // Its script never ran: the stream state is as the server wrote it.
      expect(await plain.locator('#stream-state').getAttribute('data-state')).toBe('off');
    } finally {
      await plain.close();
    }
    b.assertSelfContained();
    expect(b.consoleErrors()).toEqual([]);
  }, 300_000);

  it('watches it recover and be pooled again, live', async () => {
    keepDomOnFailure('repool');
    const host = ipOf('rs2');
    const row = byId(serverId('web', host));
    await lab.realServer('rs2').setBehaviour({ mode: 'ok' });
    await b.waitForAttribute(row, 'data-state', 'up');
    await b.waitForAttribute(row, 'data-pooled', 'yes');
    expect(await b.text(`${row} [data-field="pooled"]`)).toBe('yes');
    await waitForStreamedEvent('monitor-up', 'web', host, depooledSeq);
    await waitForStreamedEvent('pooled', 'web', host, depooledSeq);
    await waitForIpvsDestinations(lab, rs.map((r) => r.ip).sort(), 'rs2 back in web in IPVS');
    expect(Number(await b.attribute('body', 'data-latest-seq'))).toBe(loadedSeq);

    const shown = await waitForPageToMatchDaemon('the page after rs2 recovered');
    expect(shown.services['service-web']).toEqual({ pooled: '3 of 3', up: '3 of 3' });
    await b.saveHtml(join(lab.dir, 'status-page-rs2-recovered.html'));
    console.log(`[status-page] pages saved in ${lab.dir}: status-page-rs2-down.html, status-page.png, status-page-rs2-recovered.html`);
    b.assertSelfContained();
    expect(b.consoleErrors()).toEqual([]);
  }, 300_000);
});
