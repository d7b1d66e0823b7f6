/**
 * The status page at `/` (instrumentation port and Unix socket): complete
 * HTML rendered on the server, so it works with JavaScript off; a small
 * inline script then follows `GET /events/stream` and patches it in place.
 * No framework, no external asset: the CSS and the script are inline, and
 * the Content-Security-Policy allows exactly those two (by hash) and
 * connections back to this server, nothing else.
 *
 * Size: `/` shows every service with its counts, and the first
 * SERVERS_PER_SERVICE_ON_INDEX servers of each, at most SERVER_ROWS_ON_INDEX
 * server rows in all; a service with more links to `/?service=<name>`, which
 * shows all of its servers. Either is rendered by a sliced job (chunks of
 * rows, runtime/sliced.ts) and written a chunk at a time, as /metrics is, so
 * 10,000 servers never hold the event loop for long.
 *
 * Stable hooks (for scripts and the lab's headless browser):
 * - `<body data-latest-seq="N">`: the latest event in the history when rendered.
 * - `id="service-<S>"` on each service's row in the services table
 *   (`data-service` holds the name as it is), with cells `data-field="pooled"`,
 *   `"up"`, `"alerts"`; `id="servers-<S>"` on the section of its servers.
 * - `id="server-<S>-<H>"` on each server row, with `data-service`, `data-host`,
 *   `data-state="up|down"`, `data-pooled="yes|no"`, `data-enabled="yes|no"`,
 *   `data-quiet="<reason>"` when the quiet-server rule flags it
 *   (ipvs/quiet-servers.ts), and cells `data-field="up"`, `"pooled"`,
 *   `"check"`, `"latency"` (`"traffic"` when counters are read).
 * - `id="peer-<P>"` on each BGP peer row (`data-state` = the FSM state).
 * - `id="events"`: the event list, latest first; each `<li data-seq="N"
 *   data-kind="...">`.
 * - `id="live"`: the polite live region; `id="stream-state"`: whether live
 *   updates are connected (`data-state="off|connecting|live|lost"`).
 * <S>, <H>, <P> are domIdPart() of the name: letters, digits and dots as
 * they are, `_` doubled, any other character `_<hex code point>_`
 * (`text-https` -> `text_2d_https`), so that ids never collide.
 */
import type { ServerSnapshot, ServiceSnapshot } from '../coordinator/types.js';
import type { DaemonEvent } from '../events/history.js';
import { formatHostPort } from '../runtime/ip.js';
import { computeAlerts } from './alerts.js';
import type { TrafficValue } from '../ipvs/types.js';
import type { BgpPeerValue, DaemonSnapshot } from './types.js';

export const HTML_TYPE = 'text/html; charset=utf-8';
/** Servers of one service shown on `/` (all of them on `/?service=<name>`). */
export const SERVERS_PER_SERVICE_ON_INDEX = 50;
/** Server rows on `/` in all: past it, services show their counts and a link. */
export const SERVER_ROWS_ON_INDEX = 2000;
/** Events listed on the page (the script keeps the list at this length too). */
export const EVENTS_ON_PAGE = 500;
/** Rows joined into one chunk between two chances to end a slice. */
const ROWS_PER_CHUNK = 64;

/** One part of an element id: see the hooks above. */
export function domIdPart(name: string): string {
  let out = '';
  for (const ch of name) {
    if (/^[A-Za-z0-9.]$/.test(ch)) out += ch;
    else if (ch === '_') out += '__';
    else out += `_${(ch.codePointAt(0) as number).toString(16)}_`;
  }
  return out;
}

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text for an element's content or a quoted attribute. */
export function escapeHtml(text: string): string {
  return /[&<>"']/.test(text) ? text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string) : text;
}

/** Traffic rates of a service or server, per second (the kernel's estimates, as `ipvsadm -Ln --rate`). */
export interface TrafficRates {
  readonly cps: number;
  readonly inpps: number;
  readonly outpps: number;
  /** Bytes per second. */
  readonly inbps: number;
  readonly outbps: number;
}

/**
 * The rates of a service's or server's `traffic` (ipvs-stats-interval):
 * undefined when counters are not read (0, or not yet), and the page then
 * has no traffic column.
 */
export function readTraffic(holder: { readonly traffic?: TrafficValue | undefined }): TrafficRates | undefined {
  const t = holder.traffic;
  if (t === undefined) return undefined;
  return { cps: t.connectionsPerSec, inpps: t.inPacketsPerSec, outpps: t.outPacketsPerSec, inbps: t.inBytesPerSec, outbps: t.outBytesPerSec };
}

function formatRate(value: number, unit: string): string {
  const [scaled, prefix] = value >= 1e9 ? [value / 1e9, 'G'] : value >= 1e6 ? [value / 1e6, 'M'] : value >= 1e3 ? [value / 1e3, 'k'] : [value, ''];
  return `${scaled >= 10 || prefix === '' ? Math.round(scaled) : scaled.toFixed(1)} ${prefix}${unit}`;
}

export function formatTraffic(t: TrafficRates): string {
  return (
    `${formatRate(t.cps, 'conn/s')}; in ${formatRate(t.inpps, 'pkt/s')}, ${formatRate(t.inbps, 'B/s')}; ` +
    `out ${formatRate(t.outpps, 'pkt/s')}, ${formatRate(t.outbps, 'B/s')}`
  );
}

function formatWall(ms: number | undefined): string {
  return ms === undefined ? '–' : new Date(ms).toISOString();
}

function formatMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** The VIP as `pybal status` shows it: `[2001:db8::1]:443`, or the firewall mark. */
function formatVip(service: ServiceSnapshot): string {
  const vip = formatHostPort(service.ip, service.port);
  return service.fwmark === undefined ? vip : `fwmark ${service.fwmark} (${vip})`;
}

/** A state cell: the text always says it; the class adds colour. */
function stateCell(field: string, text: string, good: boolean | undefined): string {
  const cls = good === undefined ? 'muted' : good ? 'ok' : 'bad';
  return `<td data-field="${field}" class="${cls}">${escapeHtml(text)}</td>`;
}

function pooledText(s: Pick<ServerSnapshot, 'pooled' | 'up' | 'quiet'>): string {
  if (!s.pooled) return 'no';
  if (!s.up) return 'yes (DOWN: kept by the depool threshold)';
  // Pooled and up, but its traffic says clients are not served (ipvs/quiet-servers.ts).
  return s.quiet === undefined ? 'yes' : `yes (QUIET: ${s.quiet.detail})`;
}

/**
 * The server's last check as one line: each monitor's latest result (or,
 * before its first, its last report), and the longest duration.
 */
function lastCheck(server: ServerSnapshot): { text: string; latency: string; ok: boolean | undefined } {
  if (server.address === undefined) return { text: `unresolved: ${server.resolveError ?? 'resolving'}`, latency: '–', ok: false };
  if (server.monitors.length === 0) return { text: 'no monitor', latency: '–', ok: undefined };
  const parts: string[] = [];
  let latency: number | undefined;
  let ok: boolean | undefined = true;
  for (const m of server.monitors) {
    const check = m.lastCheck;
    // A data-path monitor says so: its reason is about the VIP, not the server's address.
    const kind = m.dataPath ? `${m.kind} (data path)` : m.kind;
    if (check !== undefined) {
      parts.push(`${kind}: ${check.reason}`);
      latency = Math.max(latency ?? 0, check.durationMs);
      if (!check.ok) ok = false;
    } else {
      parts.push(`${kind}: ${m.reason === '' ? 'not checked yet' : m.reason}`);
      if (m.up === false) ok = false;
      else if (m.up === undefined && ok === true) ok = undefined;
    }
  }
  return { text: parts.join('; '), latency: latency === undefined ? '–' : formatMs(latency), ok };
}

interface ServiceCounts {
  readonly total: number;
  readonly enabled: number;
  readonly up: number;
  readonly pooled: number;
}

function countServers(service: ServiceSnapshot): ServiceCounts {
  let enabled = 0;
  let up = 0;
  let pooled = 0;
  for (const s of service.servers) {
    if (s.enabled) enabled++;
    if (s.up) up++;
    if (s.pooled) pooled++;
  }
  return { total: service.servers.length, enabled, up, pooled };
}

/** The alerts of one service, as /alerts words them, plus a pool still awaited. */
function serviceAlerts(service: ServiceSnapshot): { text: string; level: 'ok' | 'warning' | 'critical' } {
  const alerts = computeAlerts([service]);
  const texts = alerts.status === 'ok' ? [] : [`${alerts.status.toUpperCase()}: ${alerts.msg.trim()}`];
  if (service.awaitingPool) texts.push('WARNING: waiting for its first pool');
  const level = alerts.status === 'critical' ? 'critical' : texts.length > 0 ? 'warning' : 'ok';
  return { text: texts.length === 0 ? 'OK' : texts.join('; '), level };
}

/** The periodic summary the event stream sends: small at any pool size. */
export interface PageSummary {
  readonly latestSeq: number;
  readonly services: readonly { readonly name: string; readonly pooled: number; readonly up: number; readonly enabled: number; readonly total: number; readonly alerts: string; readonly level: string }[];
  readonly peers: readonly { readonly peer: string; readonly state: string }[];
  readonly drained: boolean;
}

export function pageSummary(snapshot: DaemonSnapshot, latestSeq: number): PageSummary {
  return {
    latestSeq,
    services: snapshot.services.map((service) => {
      const alerts = serviceAlerts(service);
      return { name: service.name, ...countServers(service), alerts: alerts.text, level: alerts.level };
    }),
    peers: snapshot.bgp.peers.map((p) => ({ peer: p.peer, state: p.state })),
    drained: snapshot.bgp.drained,
  };
}

/** One event as a list item (the script builds the same from the stream). */
export function renderEventItem(event: DaemonEvent): string {
  const where = [event.service, event.server, event.peer].filter((part) => part !== undefined).join(' / ');
  return (
    `<li data-seq="${event.seq}" data-kind="${escapeHtml(event.kind)}" class="lvl-${escapeHtml(event.level)}">` +
    `<time datetime="${formatWall(event.atWallMs)}">${formatWall(event.atWallMs)}</time> ` +
    `<span class="kind">${escapeHtml(event.kind)}</span> ` +
    (where === '' ? '' : `<span class="where">${escapeHtml(where)}</span> `) +
    `<span class="msg">${escapeHtml(event.message)}</span></li>`
  );
}

function serverRow(service: ServiceSnapshot, s: ServerSnapshot, withTraffic: boolean): string {
  const check = lastCheck(s);
  const traffic = readTraffic(s);
  const id = `server-${domIdPart(service.name)}-${domIdPart(s.host)}`;
  return (
    `<tr id="${id}" data-service="${escapeHtml(service.name)}" data-host="${escapeHtml(s.host)}" ` +
    `data-state="${s.up ? 'up' : 'down'}" data-pooled="${s.pooled ? 'yes' : 'no'}" data-enabled="${s.enabled ? 'yes' : 'no'}"` +
    `${s.quiet === undefined ? '' : ` data-quiet="${s.quiet.reason}"`}>` +
    `<th scope="row">${escapeHtml(s.host)}</th>` +
    `<td>${escapeHtml(s.address ?? '–')}</td>` +
    `<td class="num">${s.weight}</td>` +
    stateCell('enabled', s.enabled ? 'yes' : 'no', s.enabled ? true : undefined) +
    stateCell('up', s.up ? 'up' : 'down', s.up) +
    stateCell('pooled', pooledText(s), s.pooled ? s.up && s.quiet === undefined : undefined) +
    stateCell('check', check.text, check.ok) +
    `<td data-field="latency" class="num">${escapeHtml(check.latency)}</td>` +
    (withTraffic ? `<td data-field="traffic">${escapeHtml(traffic === undefined ? '–' : formatTraffic(traffic))}</td>` : '') +
    '</tr>'
  );
}

export interface PageOptions {
  /** One service with all of its servers (`/?service=<name>`); otherwise the index. */
  readonly service?: string;
  /** The latest events, newest first. */
  readonly events: readonly DaemonEvent[];
  readonly latestSeq: number;
}

/**
 * The page as chunks of HTML, in order, as a job to run in slices (or with
 * finish()). Every string from the snapshot or an event is escaped.
 */
export function* renderStatusPage(snapshot: DaemonSnapshot, options: PageOptions): Generator<unknown, string[], undefined> {
  const out: string[] = [];
  const one = options.service;
  const title = one === undefined ? 'pybal status' : `pybal status: ${one}`;
  const drained = snapshot.bgp.drained ? `drained since ${formatWall(snapshot.bgp.drainedSinceWallMs)}` : 'not drained';
  out.push(
    `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">` +
      `<meta name="viewport" content="width=device-width, initial-scale=1">` +
      `<title>${escapeHtml(title)}</title><style>${PAGE_STYLE}</style></head>` +
      `<body data-latest-seq="${options.latestSeq}">` +
      `<header><h1>${escapeHtml(title)}</h1>` +
      `<p>pybal ${escapeHtml(snapshot.version)}, started ${formatWall(snapshot.startedAtWallMs)}` +
      `${snapshot.dryRun ? ' <strong>(dry run: the kernel is not changed)</strong>' : ''}; BGP ${snapshot.bgp.enabled ? 'on' : snapshot.bgp.starting === true ? 'starting' : 'off'}, ${drained}. ` +
      `<span id="stream-state" data-state="off">Live updates: off (this page is as it was when loaded).</span></p>` +
      `<p id="live" role="status" aria-live="polite" aria-atomic="true"></p>` +
      (one === undefined ? '' : '<p><a href="/">All services</a></p>') +
      `</header><main>`,
  );
  const services = one === undefined ? snapshot.services : snapshot.services.filter((s) => s.name === one);
  const serviceTraffic = services.some((s) => readTraffic(s) !== undefined);

  // The services, one row each.
  out.push(
    `<section aria-labelledby="h-services"><h2 id="h-services">Services</h2>` +
      `<div class="scroll" role="region" aria-labelledby="c-services" tabindex="0"><table id="services">` +
      `<caption id="c-services">Each service: its VIP, pooled servers against its depool threshold, and its alerts</caption>` +
      `<thead><tr><th scope="col">Service</th><th scope="col">VIP</th><th scope="col">Protocol</th><th scope="col">Scheduler</th>` +
      `<th scope="col">Pooled</th><th scope="col">Up</th><th scope="col">Depool threshold</th><th scope="col">Alerts</th>` +
      `${serviceTraffic ? '<th scope="col">Traffic</th>' : ''}</tr></thead><tbody>`,
  );
  let rows: string[] = [];
  for (const service of services) {
    const counts = countServers(service);
    const alerts = serviceAlerts(service);
    const traffic = readTraffic(service);
    const name = escapeHtml(service.name);
    const minimum = Math.ceil(counts.total * service.depoolThreshold);
    rows.push(
      `<tr id="service-${domIdPart(service.name)}" data-service="${name}" data-level="${alerts.level}">` +
        `<th scope="row"><a href="/?service=${escapeHtml(encodeURIComponent(service.name))}">${name}</a></th>` +
        `<td>${escapeHtml(formatVip(service))}</td><td>${escapeHtml(service.protocol)}</td><td>${escapeHtml(service.scheduler)}</td>` +
        `<td data-field="pooled" class="num">${counts.pooled} of ${counts.total}</td>` +
        `<td data-field="up" class="num">${counts.up} of ${counts.total}</td>` +
        `<td class="num">${service.depoolThreshold} (keeps at least ${minimum})</td>` +
        `<td data-field="alerts" class="${alerts.level === 'ok' ? 'ok' : alerts.level === 'critical' ? 'bad' : 'warn'}">${escapeHtml(alerts.text)}</td>` +
        (serviceTraffic ? `<td data-field="traffic">${escapeHtml(traffic === undefined ? '–' : formatTraffic(traffic))}</td>` : '') +
        '</tr>',
    );
    if (rows.length >= ROWS_PER_CHUNK) {
      out.push(rows.join(''));
      rows = [];
      yield;
    }
  }
  out.push(`${rows.join('')}</tbody></table></div></section>`);

  // The servers, a table per service.
  out.push(`<section aria-labelledby="h-servers"><h2 id="h-servers">Servers</h2>`);
  let budget = one === undefined ? SERVER_ROWS_ON_INDEX : Number.POSITIVE_INFINITY;
  for (const service of services) {
    const sid = domIdPart(service.name);
    const name = escapeHtml(service.name);
    const link = `/?service=${escapeHtml(encodeURIComponent(service.name))}`;
    const shown = Math.max(0, Math.min(service.servers.length, one === undefined ? SERVERS_PER_SERVICE_ON_INDEX : Infinity, budget));
    budget -= shown;
    const withTraffic = service.servers.some((s) => readTraffic(s) !== undefined);
    const partial = shown < service.servers.length ? ` (the first ${shown} of ${service.servers.length}: <a href="${link}">all servers of ${name}</a>)` : '';
    out.push(
      `<section id="servers-${sid}" aria-labelledby="h-servers-${sid}"><h3 id="h-servers-${sid}">${name} <span class="muted">${escapeHtml(formatVip(service))}</span></h3>`,
    );
    if (service.servers.length === 0) {
      out.push(`<p>${service.awaitingPool ? 'Waiting for its first pool.' : 'No server in its pool.'}</p></section>`);
      continue;
    }
    if (shown === 0) {
      out.push(`<p>${service.servers.length} servers: <a href="${link}">all servers of ${name}</a>.</p></section>`);
      continue;
    }
    out.push(
      `<div class="scroll" role="region" aria-labelledby="c-servers-${sid}" tabindex="0"><table>` +
        `<caption id="c-servers-${sid}">Servers of ${name}${partial}</caption>` +
        `<thead><tr><th scope="col">Server</th><th scope="col">Address</th><th scope="col">Weight</th><th scope="col">Enabled</th>` +
        `<th scope="col">Up</th><th scope="col">Pooled</th><th scope="col">Last check</th><th scope="col">Latency</th>` +
        `${withTraffic ? '<th scope="col">Traffic</th>' : ''}</tr></thead><tbody>`,
    );
    rows = [];
    for (let i = 0; i < shown; i++) {
      rows.push(serverRow(service, service.servers[i] as ServerSnapshot, withTraffic));
      if (rows.length >= ROWS_PER_CHUNK) {
        out.push(rows.join(''));
        rows = [];
        yield;
      }
    }
    out.push(`${rows.join('')}</tbody></table></div></section>`);
    yield;
  }
  out.push('</section>');

  out.push(renderBgp(snapshot.bgp.peers, snapshot.bgp.enabled, snapshot.bgp.announced, snapshot.bgp.starting === true));

  // The events, latest first.
  out.push(
    `<section aria-labelledby="h-events"><h2 id="h-events">Events</h2>` +
      `<p>The latest state changes, newest first (<a href="/events">as JSON</a>).</p>` +
      `<ol id="events" reversed data-max="${EVENTS_ON_PAGE}">`,
  );
  rows = [];
  for (const event of options.events.slice(0, EVENTS_ON_PAGE)) {
    rows.push(renderEventItem(event));
    if (rows.length >= ROWS_PER_CHUNK) {
      out.push(rows.join(''));
      rows = [];
      yield;
    }
  }
  out.push(`${rows.join('')}</ol></section></main><script>${PAGE_SCRIPT}</script></body></html>\n`);
  return out;
}

function renderBgp(peers: readonly BgpPeerValue[], enabled: boolean, announced: readonly string[] | undefined, starting: boolean): string {
  const offered = announced === undefined ? undefined : announced.length === 0 ? 'nothing' : announced.join(', ');
  let html = `<section aria-labelledby="h-bgp"><h2 id="h-bgp">BGP</h2>`;
  if (starting) return `${html}<p>BGP starts once every service is programmed: no VIP is announced yet.</p></section>`;
  if (!enabled && peers.length === 0) return `${html}<p>BGP is off: no VIP is announced.</p></section>`;
  if (offered !== undefined) html += `<p>Offered to every Established peer: ${escapeHtml(offered)}.</p>`;
  html +=
    `<div class="scroll" role="region" aria-labelledby="c-bgp" tabindex="0"><table id="peers"><caption id="c-bgp">BGP peers: session state and what each was sent</caption>` +
    `<thead><tr><th scope="col">Peer</th><th scope="col">State</th><th scope="col">Established since</th><th scope="col">Prefixes sent</th>` +
    `<th scope="col">Announced</th><th scope="col">Last error</th></tr></thead><tbody>`;
  for (const p of peers) {
    const up = p.state === 'Established';
    html +=
      `<tr id="peer-${domIdPart(p.peer)}" data-peer="${escapeHtml(p.peer)}" data-state="${escapeHtml(p.state)}">` +
      `<th scope="row">${escapeHtml(p.peer)}</th>` +
      stateCell('state', p.state, up) +
      `<td>${formatWall(p.establishedAtWallMs)}</td><td class="num">${p.prefixesSent}</td>` +
      `<td>${escapeHtml(up ? (offered ?? `${p.prefixesSent} prefix(es)`) : 'nothing (not Established)')}</td>` +
      `<td>${escapeHtml(p.lastError ?? '')}</td></tr>`;
  }
  return `${html}</tbody></table></div></section>`;
}

/** Readable on a phone, colours with a text equivalent always, contrast at least 4.5:1. */
const PAGE_STYLE = [
  'body{font-family:system-ui,sans-serif;margin:0 auto;padding:0 1rem 2rem;max-width:100rem;color:#111;background:#fff;line-height:1.4}',
  'h1{font-size:1.5rem}h2{font-size:1.25rem;margin-top:2rem}h3{font-size:1.05rem}',
  '.scroll{overflow-x:auto;max-width:100%}',
  '.scroll:focus{outline:2px solid #0645ad}',
  'table{border-collapse:collapse;font-size:.9rem;min-width:100%}',
  'caption{text-align:left;font-weight:600;padding:.25rem 0}',
  'th,td{border:1px solid #999;padding:.2rem .4rem;text-align:left;vertical-align:top}',
  'thead th{background:#eee}',
  '.num{text-align:right;white-space:nowrap}',
  '.ok{background:#d8f0dc;color:#0b3d17}',
  '.bad{background:#fbdada;color:#5c0a0a;font-weight:600}',
  '.warn{background:#fff0c2;color:#4a3500}',
  '.muted{color:#444}',
  'a{color:#0645ad}',
  '#events{font-size:.9rem;padding-left:2.5rem}',
  '#events .kind{font-weight:600}',
  '#events .lvl-error .kind{color:#8a0000}',
  '#events .lvl-warn .kind{color:#6b4d00}',
  '#live{min-height:1.4em}',
  '@media (prefers-color-scheme:dark){body{color:#eee;background:#121212}thead th{background:#2a2a2a}a{color:#8ab4f8}',
  '.ok{background:#123d1e;color:#d8f5dd}.bad{background:#4d1010;color:#ffe0e0}.warn{background:#4a3a00;color:#fff3c4}.muted{color:#bbb}',
  '#events .lvl-error .kind{color:#ff9d9d}#events .lvl-warn .kind{color:#ffd666}}',
].join('');

/**
 * Follows /events/stream: each event is listed, and the row of its server
 * patched (state, pooled, last check); each summary updates the services'
 * counts and the peers' states. The live region says what changed, at most
 * once a second (a mass depool is one announcement, not 10,000).
 */
const PAGE_SCRIPT = `(function(){'use strict';
if(!window.EventSource)return;
var body=document.body,list=document.getElementById('events'),live=document.getElementById('live'),conn=document.getElementById('stream-state');
var max=Number(list&&list.getAttribute('data-max'))||500,latest=Number(body.getAttribute('data-latest-seq'))||0;
function idPart(s){var o='';for(var c of String(s)){if(/^[A-Za-z0-9.]$/.test(c))o+=c;else if(c==='_')o+='__';else o+='_'+c.codePointAt(0).toString(16)+'_';}return o;}
function cell(row,f){return row?row.querySelector('[data-field="'+f+'"]'):null;}
function set(row,f,text,cls){var c=cell(row,f);if(!c)return;c.textContent=text;if(cls!==undefined)c.className=cls;}
function state(s,text){conn.setAttribute('data-state',s);conn.textContent=text;}
function patch(e){if(!e.service||!e.server)return;var row=document.getElementById('server-'+idPart(e.service)+'-'+idPart(e.server));if(!row)return;
if(typeof e.up==='boolean'){row.setAttribute('data-state',e.up?'up':'down');set(row,'up',e.up?'up':'down',e.up?'ok':'bad');}
if(typeof e.pooled==='boolean')row.setAttribute('data-pooled',e.pooled?'yes':'no');
var pooled=row.getAttribute('data-pooled')==='yes',up=row.getAttribute('data-state')==='up';
set(row,'pooled',pooled?(up?'yes':'yes (DOWN: kept by the depool threshold)'):'no',pooled?(up?'ok':'bad'):'muted');
if(e.kind==='monitor-down'||e.kind==='monitor-up')set(row,'check',e.message,e.kind==='monitor-up'?'ok':'bad');}
function item(e){var li=document.createElement('li');li.setAttribute('data-seq',String(e.seq));li.setAttribute('data-kind',e.kind);li.className='lvl-'+e.level;
var t=document.createElement('time'),iso=new Date(e.atWallMs).toISOString();t.setAttribute('datetime',iso);t.textContent=iso;li.appendChild(t);li.appendChild(document.createTextNode(' '));
var k=document.createElement('span');k.className='kind';k.textContent=e.kind;li.appendChild(k);li.appendChild(document.createTextNode(' '));
var where=[e.service,e.server,e.peer].filter(function(x){return x!==undefined;}).join(' / ');
if(where){var w=document.createElement('span');w.className='where';w.textContent=where;li.appendChild(w);li.appendChild(document.createTextNode(' '));}
var m=document.createElement('span');m.className='msg';m.textContent=e.message;li.appendChild(m);return li;}
var said=0,lastText='',timer=0;
function say(){timer=0;if(said===0)return;live.textContent=said===1?lastText:said+' changes; latest: '+lastText;said=0;}
function onEvent(e){if(e.seq<=latest)return;latest=e.seq;if(list){list.insertBefore(item(e),list.firstChild);while(list.children.length>max)list.removeChild(list.lastChild);}
patch(e);said++;lastText=e.message;if(!timer)timer=setTimeout(say,1000);}
function onSummary(s){s.services.forEach(function(v){var row=document.getElementById('service-'+idPart(v.name));if(!row)return;
set(row,'pooled',v.pooled+' of '+v.total);set(row,'up',v.up+' of '+v.total);set(row,'alerts',v.alerts,v.level==='ok'?'ok':v.level==='critical'?'bad':'warn');row.setAttribute('data-level',v.level);});
s.peers.forEach(function(p){var row=document.getElementById('peer-'+idPart(p.peer));if(!row)return;row.setAttribute('data-state',p.state);set(row,'state',p.state,p.state==='Established'?'ok':'bad');});}
state('connecting','Live updates: connecting.');
var source=new EventSource('/events/stream?since='+latest);
source.onopen=function(){state('live','Live updates: on.');};
source.onerror=function(){state('lost','Live updates: connection lost; retrying (the page may be out of date).');};
source.addEventListener('change',function(m){try{onEvent(JSON.parse(m.data));}catch(x){}});
source.addEventListener('summary',function(m){try{onSummary(JSON.parse(m.data));}catch(x){}});
source.addEventListener('reset',function(){live.textContent='Some events were missed: reload the page for the full state.';});
})();`;

/** A CSP hash source; node:crypto is loaded here, at the first page, not with the daemon (see pageSecurityPolicy). */
function sha256(text: string): string {
  return `'sha256-${process.getBuiltinModule('node:crypto').createHash('sha256').update(text).digest('base64')}'`;
}

let securityPolicy: string | undefined;

/**
 * Only the page's own style and script run, and the script talks only to
 * this server. Hashed at the first page asked for, not as the daemon starts
 * (the first hash sets OpenSSL up: 70 ms in a CPU profile of a start in the
 * lab guest).
 */
export function pageSecurityPolicy(): string {
  securityPolicy ??=
    `default-src 'none'; style-src ${sha256(PAGE_STYLE)}; script-src ${sha256(PAGE_SCRIPT)}; connect-src 'self'; ` +
    `base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
  return securityPolicy;
}
