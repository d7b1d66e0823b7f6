// The host's browser agent for a lab guest: a small HTTP server on the host's
// end of the guest's link (host-link.ts) that starts Debian's Chromium on the
// host when the guest asks for one, as a Playwright browser server
// (playwright-core's launchServer) listening on the same address. The guest
// connects to it with chromium.connect (test/browser/browser.ts, `host:
// true`), and the page it loads comes back over the link from a lab node.
//
// Chromium runs on the host because the guest's UML kernel keeps no AVX
// state, which damages what Chromium computes there (test/lab/README.md).
//
//   POST   /browsers        → 200 {"id":"1","wsEndpoint":"ws://100.95.240.1:PORT/GUID"}
//   DELETE /browsers/<id>   → 204, that Chromium ended
//
// Nothing is started until asked; stop() ends every Chromium it started.
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BrowserServer } from 'playwright-core';

/** Debian's chromium package, as in test/browser/browser.ts (no import of it here: it pulls in playwright-core at once). */
const CHROMIUM = process.env.PYBAL_CHROMIUM ?? '/usr/bin/chromium';

export type HostBrowserAgent = {
  /** `http://HOST:PORT`, for the guest. */
  url: string;
  stop(): Promise<void>;
};

export async function startHostBrowserAgent(address: string, logPath: string): Promise<HostBrowserAgent> {
  const log: WriteStream = createWriteStream(logPath, { flags: 'a' });
  const note = (line: string): void => void log.write(`${new Date().toISOString()} ${line}\n`);
  const browsers = new Map<string, BrowserServer>();
  let next = 1;
  let stopping = false;

  const launch = async (): Promise<{ id: string; wsEndpoint: string }> => {
    // Loaded only when a guest asks for a browser.
    const { chromium } = await import('playwright-core');
    const { CHROMIUM_FLAGS } = await import('../browser/browser.js');
    const started = Date.now();
    const server = await chromium.launchServer({
      executablePath: CHROMIUM,
      headless: true,
      // A fresh profile in a temporary directory, which Playwright removes when Chromium ends.
      args: [...CHROMIUM_FLAGS],
      host: address,
      port: 0,
      timeout: 60_000,
    });
    const id = String(next++);
    browsers.set(id, server);
    note(`browser ${id}: Chromium started in ${Date.now() - started} ms, ${server.wsEndpoint()}`);
    server.on('close', () => note(`browser ${id}: closed`));
    if (stopping) await close(id);
    return { id, wsEndpoint: server.wsEndpoint() };
  };

  const close = async (id: string): Promise<boolean> => {
    const b = browsers.get(id);
    if (b === undefined) return false;
    browsers.delete(id);
    await b.close().catch((error: unknown) => note(`browser ${id}: close: ${String(error)}`));
    return true;
  };

  const server: Server = createServer((req, res) => {
    const reply = (status: number, body?: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    note(`${req.method} ${req.url} from ${req.socket.remoteAddress}`);
    const m = /^\/browsers\/(\d+)$/.exec(req.url ?? '');
    if (req.method === 'POST' && req.url === '/browsers') {
      launch().then(
        (b) => reply(200, b),
        (error: unknown) => {
          note(`launch failed: ${String(error)}`);
          reply(500, { error: `the host could not start Chromium (${CHROMIUM}): ${error instanceof Error ? error.message : String(error)}` });
        },
      );
    } else if (req.method === 'DELETE' && m) {
      void close(m[1]!).then((found) => reply(found ? 204 : 404));
    } else reply(404, { error: `no ${req.method} ${req.url}` });
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, address, () => done());
  });
  const url = `http://${address}:${(server.address() as AddressInfo).port}`;
  note(`listening on ${url}`);

  return {
    url,
    async stop() {
      stopping = true;
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
      await Promise.all([...browsers.keys()].map(close));
      await new Promise<void>((done) => log.end(done));
    },
  };
}
