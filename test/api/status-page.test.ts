/**
 * The status page as HTML: it shows the state of the snapshot it is given,
 * escapes every string, and carries the hooks the lab's browser uses.
 */
import type { TrafficValue } from '../../src/ipvs/types.js';
import { describe, expect, it } from 'vitest';
import { PybalMetrics } from '../../src/api/metrics.js';
import { handleRequest } from '../../src/api/server.js';
import {
  domIdPart,
  escapeHtml,
  pageSummary,
  pageSecurityPolicy,
  readTraffic,
  renderStatusPage,
  SERVERS_PER_SERVICE_ON_INDEX,
} from '../../src/api/status-page.js';
import type { DaemonSnapshot } from '../../src/api/types.js';
import { EventHistory, type DaemonEvent } from '../../src/events/history.js';
import { finish } from '../../src/runtime/sliced.js';
import { daemon, monitor, NOT_DRAINED, peer, server, service } from './fixtures.js';

function render(snapshot: DaemonSnapshot, events: readonly DaemonEvent[] = [], serviceName?: string): string {
  return finish(renderStatusPage(snapshot, { events, latestSeq: events[0]?.seq ?? 0, service: serviceName })).join('');
}

/** The opening tag of the element with this id. */
function tagWithId(html: string, id: string): string {
  const match = new RegExp(`<[a-z0-9]+ id="${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"[^>]*>`).exec(html);
  if (!match) throw new Error(`no element with id ${id}`);
  return match[0];
}

/** The element's row: from its opening tag to the next </tr>. */
function rowWithId(html: string, id: string): string {
  const start = html.indexOf(tagWithId(html, id));
  return html.slice(start, html.indexOf('</tr>', start));
}

const DATA_PATH_FAILURE =
  'to the VIP 192.0.2.1:443 by direct routing (firewall mark 0x70b00001): TCP connect to 192.0.2.1:443 timed out after 1 s; it answers at its own address 192.0.2.15:443 but not on the VIP (does it hold 192.0.2.1 on lo?)';

const snapshot = daemon(
  [
    service('text-https', [
      server('mw1001', { address: '192.0.2.11', monitors: [monitor({ lastCheck: { ok: true, reason: 'Fetch successful (http://en.wikipedia.org/), 0.012 s', durationMs: 12 } })] }),
      server('mw1002', {
        address: '192.0.2.12',
        up: false,
        pooled: true,
        pooledDown: true,
        monitors: [monitor({ up: false, reason: 'Fetch failed: connect ECONNREFUSED', lastCheck: { ok: false, reason: 'Fetch failed: connect ECONNREFUSED', durationMs: 1.5 } })],
      }),
      server('mw1003', { up: false, pooled: false, monitors: [monitor({ up: false, reason: 'HTTP 503' })] }),
      server('mw1004', { enabled: false, pooled: false, weight: 0 }),

    ], { ip: '2001:db8::1', port: 443, scheduler: 'sh', depoolThreshold: 0.5 }),
    service('dns', [server('dns1')], { protocol: 'udp', port: 53 }),
  ],
  {
    bgp: { enabled: true, localAsn: 64600, peers: [peer('192.0.2.254'), peer('2001:db8::fe', { state: 'Active', establishedAtWallMs: undefined, prefixesSent: 0, lastError: 'connect ECONNREFUSED' })], ...NOT_DRAINED, announced: ['192.0.2.1/32', '2001:db8::1/128'] },
  },
);

describe('the status page', () => {
  it('is a complete document: lang, viewport, headings in order, captions and header cells with scope', () => {
    const html = render(snapshot);
    expect(html.startsWith('<!DOCTYPE html>\n<html lang="en">')).toBe(true);
    expect(html).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
    const headings = [...html.matchAll(/<h([1-6])[ >]/g)].map((m) => Number(m[1]));
    expect(headings[0]).toBe(1);
    for (let i = 1; i < headings.length; i++) expect((headings[i] as number) - (headings[i - 1] as number)).toBeLessThanOrEqual(1);
    const tables = html.match(/<table/g)?.length ?? 0;
    expect(html.match(/<caption/g)?.length).toBe(tables);
    expect(html).not.toMatch(/<th(?=[\s>])(?![^>]*scope=)[^>]*>/);
    expect(html).toContain('aria-live="polite"');
    expect(html.trimEnd().endsWith('</html>')).toBe(true);
    // The inline script parses (it is not run here).
    const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1] ?? '';
    expect(script).toContain('EventSource');
    expect(() => new Function(script)).not.toThrow();
    // No external asset: no src/href to another origin, no stylesheet link.
    expect(html).not.toMatch(/<link |src="|https?:\/\/(?!en\.wikipedia\.org)/);
  });

  it('shows each service with its VIP, protocol, scheduler, pooled count against the depool threshold, and alerts', () => {
    const html = render(snapshot);
    const row = rowWithId(html, `service-${domIdPart('text-https')}`);
    expect(row).toContain('[2001:db8::1]:443');
    expect(row).toContain('<td>tcp</td><td>sh</td>');
    expect(row).toContain('<td data-field="pooled" class="num">2 of 4</td>');
    expect(row).toContain('<td data-field="up" class="num">2 of 4</td>');
    expect(row).toContain('0.5 (keeps at least 2)');
    expect(row).toContain('CRITICAL: text-https: Servers mw1002 are marked down but pooled');
    expect(row).toContain('data-level="critical"');
    expect(rowWithId(html, 'service-dns')).toContain('>OK</td>');
  });

  it('names a data-path monitor as such, with the reason of its last check', () => {
    const failing = server('mw1005', {
      address: '192.0.2.15',
      up: false,
      pooled: false,
      monitors: [{ ...monitor({ kind: 'TCPConnect', up: false, reason: DATA_PATH_FAILURE, lastCheck: { ok: false, reason: DATA_PATH_FAILURE, durationMs: 1000 } }), dataPath: true }],
    });
    const row = rowWithId(render(daemon([service('web', [failing])])), `server-web-${domIdPart('mw1005')}`);
    expect(row).toContain(`TCPConnect (data path): ${DATA_PATH_FAILURE.replace(/'/g, '&#39;')}`);
  });

  it('shows every server as the snapshot has it, state in text and in its data attributes', () => {
    const html = render(snapshot);
    const id = (host: string): string => `server-${domIdPart('text-https')}-${domIdPart(host)}`;
    expect(tagWithId(html, id('mw1001'))).toContain('data-state="up" data-pooled="yes" data-enabled="yes"');
    expect(tagWithId(html, id('mw1002'))).toContain('data-state="down" data-pooled="yes"');
    expect(tagWithId(html, id('mw1003'))).toContain('data-state="down" data-pooled="no"');
    expect(tagWithId(html, id('mw1004'))).toContain('data-enabled="no"');
    const up = rowWithId(html, id('mw1001'));
    expect(up).toContain('<td data-field="up" class="ok">up</td>');
    expect(up).toContain('ProxyFetch: Fetch successful (http://en.wikipedia.org/), 0.012 s');
    expect(up).toContain('<td data-field="latency" class="num">12 ms</td>');
    const held = rowWithId(html, id('mw1002'));
    expect(held).toContain('<td data-field="up" class="bad">down</td>');
    expect(held).toContain('yes (DOWN: kept by the depool threshold)');
    expect(held).toContain('1.5 ms');
    // Before a check result, the last report's reason.
    expect(rowWithId(html, id('mw1003'))).toContain('ProxyFetch: HTTP 503');
  });

  it('shows the BGP peers with their state and what each was sent', () => {
    const html = render(snapshot);
    const up = rowWithId(html, 'peer-192.0.2.254');
    expect(up).toContain('data-state="Established"');
    expect(up).toContain('192.0.2.1/32, 2001:db8::1/128');
    const down = rowWithId(html, `peer-${domIdPart('2001:db8::fe')}`);
    expect(down).toContain('<td data-field="state" class="bad">Active</td>');
    expect(down).toContain('nothing (not Established)');
    expect(down).toContain('connect ECONNREFUSED');
  });

  it('says when BGP waits for the services to be programmed at a start, rather than off', () => {
    const html = render({ ...snapshot, bgp: { enabled: false, wanted: true, starting: true, localAsn: undefined, peers: [], ...NOT_DRAINED, announced: [] } });
    expect(html).toContain('BGP starting, not drained.');
    expect(html).toContain('<p>BGP starts once every service is programmed: no VIP is announced yet.</p>');
    expect(html).not.toContain('BGP is off');
  });

  it('lists the events latest first, each with its seq', () => {
    const history = new EventHistory(10, () => Date.UTC(2026, 10, 22, 5, 0, 0));
    history.emit({ kind: 'monitor-down', level: 'error', service: 'text-https', server: 'mw1002', message: 'Monitoring instance ProxyFetch reports server mw1002 (enabled/up/pooled) down: ECONNREFUSED' });
    history.emit({ kind: 'depool-held', level: 'error', service: 'text-https', server: 'mw1002', message: 'Could not depool server mw1002 because of too many down!' });
    const html = render(snapshot, history.latest());
    expect(tagWithId(html, 'events')).toContain('<ol id="events" reversed');
    expect([...html.matchAll(/<li data-seq="(\d+)"/g)].map((m) => m[1])).toEqual(['2', '1']);
    expect(html).toContain('<time datetime="2026-11-22T05:00:00.000Z">2026-11-22T05:00:00.000Z</time> <span class="kind">depool-held</span> <span class="where">text-https / mw1002</span>');
    expect(html).toContain('<body data-latest-seq="2">');
  });

  it('escapes every string: a hostile service name, host, reason and event cannot inject markup', () => {
    const evil = '<script>alert(1)</script>"\'&';
    const hostile = daemon(
      [service(evil, [server(`${evil}.example`, { monitors: [monitor({ up: false, reason: `<img src=x onerror=alert(2)>` })], up: false, pooled: false })], { poolError: '<b>bad</b>' })],
      { bgp: { enabled: true, localAsn: 1, peers: [peer('192.0.2.9', { lastError: '<svg onload=alert(3)>' })], ...NOT_DRAINED } },
    );
    const events: DaemonEvent[] = [{ seq: 1, atWallMs: 0, kind: 'reload', level: 'info', service: evil, message: '</li><script>alert(4)</script>' }];
    const html = render(hostile, events);
    // Only the page's own script element.
    expect(html.match(/<script/gi)?.length).toBe(1);
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<svg');
    expect(html).not.toContain('<b>bad');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;');
    expect(html).toContain('&lt;img src=x onerror=alert(2)&gt;');
    expect(html).toContain('&lt;/li&gt;&lt;script&gt;alert(4)&lt;/script&gt;');
    // The id is slugged, the data attribute escaped; the link encodes the name.
    expect(html).toContain(`id="service-${domIdPart(evil)}" data-service="${escapeHtml(evil)}"`);
    expect(domIdPart(evil)).toMatch(/^[A-Za-z0-9._]+$/);
    expect(html).toContain(`href="/?service=${escapeHtml(encodeURIComponent(evil))}"`);
  });

  it('makes ids that never collide: letters, digits and dots kept, _ doubled, anything else as _<hex>_', () => {
    expect(domIdPart('mw1001.eqiad.wmnet')).toBe('mw1001.eqiad.wmnet');
    expect(domIdPart('text-https')).toBe('text_2d_https');
    expect(domIdPart('text_https')).toBe('text__https');
    expect(domIdPart('2001:db8::fe')).toBe('2001_3a_db8_3a__3a_fe');
    expect(domIdPart('a-b')).not.toBe(domIdPart('a_2d_b'));
  });

  it('on the index, the first servers of a large service and a link to all; /?service= shows them all', () => {
    const many = Array.from({ length: SERVERS_PER_SERVICE_ON_INDEX + 25 }, (_, i) => server(`mw${i}`));
    const big = daemon([service('big', many)]);
    const index = render(big);
    expect(index.match(/<tr id="server-big-/g)?.length).toBe(SERVERS_PER_SERVICE_ON_INDEX);
    expect(index).toContain(`(the first ${SERVERS_PER_SERVICE_ON_INDEX} of ${many.length}: <a href="/?service=big">all servers of big</a>)`);
    const one = render(big, [], 'big');
    expect(one.match(/<tr id="server-big-/g)?.length).toBe(many.length);
    expect(one).toContain('<a href="/">All services</a>');
  });

  it('shows a traffic column only when the snapshot carries rates, read defensively', () => {
    expect(render(snapshot)).not.toContain('>Traffic</th>');
    const traffic: TrafficValue = {
      connections: 5000,
      inPackets: 70_000,
      outPackets: 60_000,
      inBytes: 9_000_000,
      outBytes: 90_000_000,
      connectionsPerSec: 12,
      inPacketsPerSec: 3400,
      outPacketsPerSec: 3000,
      inBytesPerSec: 1_200_000,
      outBytesPerSec: 15_000_000,
      activeConnections: 7,
      inactiveConnections: 30,
      readAtWallMs: 1_700_000_000_000,
    };
    const withRates = { ...server('mw1'), traffic };
    const html = render(daemon([service('web', [withRates, server('mw2')])]));
    expect(html).toContain('<th scope="col">Traffic</th>');
    expect(rowWithId(html, 'server-web-mw1')).toContain('<td data-field="traffic">12 conn/s; in 3.4 kpkt/s, 1.2 MB/s; out 3.0 kpkt/s, 15 MB/s</td>');
    expect(rowWithId(html, 'server-web-mw2')).toContain('<td data-field="traffic">–</td>');
    expect(readTraffic({})).toBeUndefined();
    expect(readTraffic({ traffic })).toEqual({ cps: 12, inpps: 3400, outpps: 3000, inbps: 1_200_000, outbps: 15_000_000 });
  });

  it('marks a pooled server the quiet-server rule flags, in words and as data-quiet', () => {
    const quiet = { ...server('mw1'), quiet: { reason: 'not-established' as const, detail: '24 new connections, none established', sinceWallMs: 1_700_000_000_000 } };
    const row = rowWithId(render(daemon([service('web', [quiet, server('mw2')])])), 'server-web-mw1');
    expect(row).toContain('data-quiet="not-established"');
    expect(row).toContain('<td data-field="pooled" class="bad">yes (QUIET: 24 new connections, none established)</td>');
    expect(rowWithId(render(daemon([service('web', [quiet, server('mw2')])])), 'server-web-mw2')).not.toContain('data-quiet');
  });

  it('has a small summary for the stream: counts per service and peer states', () => {
    expect(pageSummary(snapshot, 7)).toEqual({
      latestSeq: 7,
      services: [
        expect.objectContaining({ name: 'text-https', pooled: 2, up: 2, enabled: 3, total: 4, level: 'critical' }),
        expect.objectContaining({ name: 'dns', pooled: 1, up: 1, total: 1, level: 'ok', alerts: 'OK' }),
      ],
      peers: [
        { peer: '192.0.2.254', state: 'Established' },
        { peer: '2001:db8::fe', state: 'Active' },
      ],
      drained: false,
    });
  });
});

describe('GET /', () => {
  const deps = { snapshot: () => snapshot, metrics: new PybalMetrics({ processMetrics: false }), events: new EventHistory(10, () => 0) };

  it('answers the page as HTML with a policy that allows only its own style and script', async () => {
    const answer = await handleRequest(deps, 'GET', '/', 'text/html,*/*');
    expect(answer.status).toBe(200);
    expect(answer.contentType).toBe('text/html; charset=utf-8');
    expect(answer.headers?.['content-security-policy']).toBe(pageSecurityPolicy());
    expect(pageSecurityPolicy()).toMatch(/^default-src 'none'; style-src 'sha256-[^']+'; script-src 'sha256-[^']+'; connect-src 'self'/);
    expect((answer.body as string[]).join('')).toContain('id="service-text_2d_https"');
  });

  it('keeps answering 404 to a JSON client, as PyBal did; an unknown ?service= is 404', async () => {
    expect(await handleRequest(deps, 'GET', '/', 'application/json')).toMatchObject({ status: 404, body: '{"error":"The desired url was not found"}' });
    expect((await handleRequest(deps, 'GET', '/?service=nope', undefined)).status).toBe(404);
  });
});
