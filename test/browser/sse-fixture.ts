// A tiny stand-in for pybal's status page, for the browser harness's own
// tests: node:http serving a page with the status page's hooks
// (`id="service-<name>"`, rows `id="server-<service>-<host>"` with
// `data-state` and `data-pooled`, `id="events"` items with `data-seq`) that
// follows a server-sent events stream. POST /push (JSON {host, state?,
// pooled?}) changes a server and sends the change to every open stream, so a
// test outside the process (curl in a lab namespace) can drive it too.
//   /            the live page (under a Content-Security-Policy as strict as the status page's)
//   /events      the event stream (a `snapshot` event first, then one `change` per push)
//   /external    a page that loads an image from another origin (not self-contained)
//   /broken      a page that logs a console error and throws
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FixtureServerRow = { host: string; state: 'up' | 'down'; pooled: 'yes' | 'no' };
export type FixtureChange = Partial<FixtureServerRow> & { host: string };
export type FixtureEvent = FixtureServerRow & { seq: number };

export const FIXTURE_SERVICE = 'web';

const PAGE_SCRIPT = `
const rows = (data) => {
  for (const s of data) {
    const row = document.getElementById('server-${FIXTURE_SERVICE}-' + s.host);
    row.dataset.state = s.state;
    row.dataset.pooled = s.pooled;
    row.querySelector('.state').textContent = s.state + (s.pooled === 'yes' ? ', pooled' : ', not pooled');
  }
};
const stream = new EventSource('/events');
stream.addEventListener('open', () => { document.body.dataset.live = 'yes'; });
stream.addEventListener('error', () => { document.body.dataset.live = 'no'; });
stream.addEventListener('snapshot', (e) => rows(JSON.parse(e.data)));
stream.addEventListener('change', (e) => {
  const ev = JSON.parse(e.data);
  rows([ev]);
  const li = document.createElement('li');
  li.dataset.seq = String(ev.seq);
  li.textContent = '#' + ev.seq + ' ' + ev.host + ' ' + ev.state + (ev.pooled === 'yes' ? ' (pooled)' : ' (not pooled)');
  document.getElementById('events').prepend(li);
});
`;

const PAGE_STYLE = `
body { font: 15px/1.4 sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; } td, th { border: 1px solid #999; padding: .3em .8em; text-align: left; }
tr[data-state="up"] td.state { background: #c8f0c8; } tr[data-state="down"] td.state { background: #f4c0c0; }
#events li { font-family: monospace; }
`;

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/**
 * The live page's policy, as strict as the status page's: only its own style
 * and script (by hash), connections back to this server, no eval(). A
 * harness that evaluates strings inside the page fails here as it would on pybal's.
 */
export const FIXTURE_SECURITY_POLICY = `default-src 'none'; style-src ${sha256(PAGE_STYLE)}; script-src ${sha256(PAGE_SCRIPT)}; img-src data:; connect-src 'self'`;

function page(title: string, body: string, script = ''): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<link rel="icon" href="data:,">
<style>${PAGE_STYLE}</style></head>
<body data-live="no">${body}${script ? `<script>${script}</script>` : ''}</body></html>
`;
}

export class SseFixtureServer {
  readonly #server: Server;
  readonly #streams = new Set<ServerResponse>();
  readonly #rows = new Map<string, FixtureServerRow>();
  #seq = 0;

  constructor(rows: readonly FixtureServerRow[] = [
    { host: 'rs1', state: 'down', pooled: 'no' },
    { host: 'rs2', state: 'up', pooled: 'yes' },
  ]) {
    for (const r of rows) this.#rows.set(r.host, { ...r });
    this.#server = createServer((req, res) => this.#handle(req, res));
  }

  /** Listens on host:port (port 0: any); returns the page's base URL. */
  async listen(host = '127.0.0.1', port = 0): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host, port }, () => resolve());
    });
    return this.url;
  }

  get url(): string {
    const a = this.#server.address() as AddressInfo;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** Open event streams (browsers connected). */
  get streams(): number {
    return this.#streams.size;
  }

  /** Applies a change and sends it to every stream; returns the event. */
  push(change: FixtureChange): FixtureEvent {
    const row = this.#rows.get(change.host);
    if (row === undefined) throw new Error(`fixture: no server ${change.host}`);
    if (change.state !== undefined) row.state = change.state;
    if (change.pooled !== undefined) row.pooled = change.pooled;
    const event = { ...row, seq: ++this.#seq };
    for (const s of this.#streams) s.write(`event: change\ndata: ${JSON.stringify(event)}\n\n`);
    return event;
  }

  async close(): Promise<void> {
    for (const s of this.#streams) s.end();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method === 'POST' && path === '/push') {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d));
      req.on('end', () => {
        try {
          const event = this.push(JSON.parse(body) as FixtureChange);
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(event) + '\n');
        } catch (error) {
          res.writeHead(400, { 'content-type': 'text/plain' }).end(`${error instanceof Error ? error.message : String(error)}\n`);
        }
      });
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    switch (path) {
      case '/': {
        const rows = [...this.#rows.values()]
          .map((r) => `<tr id="server-${FIXTURE_SERVICE}-${r.host}" data-state="${r.state}" data-pooled="${r.pooled}"><td>${r.host}</td><td class="state">${r.state}</td></tr>`)
          .join('\n');
        const body = `<h1>fixture status</h1>
<section id="service-${FIXTURE_SERVICE}"><h2>${FIXTURE_SERVICE}</h2><table><tr><th>server</th><th>state</th></tr>
${rows}
</table></section>
<h2>events</h2><ol id="events"></ol>`;
        this.#html(res, page('fixture status', body, PAGE_SCRIPT), FIXTURE_SECURITY_POLICY);
        return;
      }
      case '/events': {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
        res.write(`event: snapshot\ndata: ${JSON.stringify([...this.#rows.values()])}\n\n`);
        this.#streams.add(res);
        res.on('close', () => this.#streams.delete(res));
        return;
      }
      case '/external':
        // 192.0.2.0/24 is documentation space: never a real host, and the harness aborts the request anyway.
        this.#html(res, page('external', '<h1>external</h1><img alt="logo" src="http://192.0.2.77:8080/logo.png">'));
        return;
      case '/broken':
        this.#html(res, page('broken', '<h1>broken</h1>', "console.error('broken page: missing data'); throw new Error('boom from the page');"));
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  }

  #html(res: ServerResponse, html: string, policy?: string): void {
    const headers: Record<string, string> = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' };
    if (policy !== undefined) headers['content-security-policy'] = policy;
    res.writeHead(200, headers).end(html);
  }
}
