import { describe, expect, it, vi } from 'vitest';
import { PybalMetrics } from '../../src/api/metrics.js';
import { createApiServer, handleRequest } from '../../src/api/server.js';
import { request, ServerResponse } from 'node:http';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import type { DaemonSnapshot } from '../../src/api/types.js';
import type { CheckResult, MonitorReport } from '../../src/monitors/types.js';
import { daemon, monitor, server, service } from './fixtures.js';

const report = (up: boolean): MonitorReport => ({ kind: 'ProxyFetch', up, reason: up ? 'ok' : 'bad', firstCheck: false, atMs: 1 });
const result: CheckResult = { kind: 'ProxyFetch', ok: true, reason: 'ok', durationMs: 3, urls: [{ url: 'http://x/"q"', ok: true, reason: 'ok', durationMs: 3 }] };

const hostOf = (i: number): string => `10.0.${i >> 8}.${i & 255}`;

/** A daemon with `n` servers in one service, each with one ProxyFetch monitor that has reported. */
function fleet(n: number): { metrics: PybalMetrics; snapshot: DaemonSnapshot } {
  const metrics = new PybalMetrics({ processMetrics: false });
  const servers = Array.from({ length: n }, (_, i) => server(hostOf(i), { up: i % 10 !== 0, pooled: i % 10 !== 0 }));
  for (const s of servers) {
    metrics.recordResult('web', s.host, result);
    metrics.recordReport('web', s.host, report(true));
  }
  return { metrics, snapshot: daemon([service('web', servers)]) };
}

function line(text: string, name: string, host: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith(`${name}{service="web",host="${host}",`));
}

describe('PybalMetrics.scrape', () => {
  it('renders what prom-client renders, for awkward hosts and URLs too', async () => {
    const metrics = new PybalMetrics({ processMetrics: false });
    const host = 'a "quoted" \\ host\nwith a newline';
    metrics.recordResult('web', host, result);
    metrics.recordReport('web', host, report(false));
    const text = (await metrics.scrape(() => daemon([service('web', [server(host, { monitors: [monitor({ up: false })] })])]))).join('');
    expect(text).toBe(await metrics.registry.metrics());
    expect(text).toContain('pybal_monitor_status{service="web",host="a \\"quoted\\" \\\\ host\\nwith a newline",monitor="ProxyFetch"} 0\n');
  });

  it('gives the event loop turns while it scrapes 10,000 servers, and writes what prom-client writes', async () => {
    const { metrics, snapshot } = fleet(10_000);
    let firings = 0;
    let running = true;
    const timer = setInterval(() => {
      if (running) firings++;
    }, 1);
    try {
      const text = await handleRequest({ snapshot: () => snapshot, metrics }, 'GET', '/metrics', undefined).then((r) => (typeof r.body === 'string' ? r.body : r.body.join('')));
      running = false;
      // Timers ran while the scrape was under way: it never held the loop from start to end.
      expect(firings).toBeGreaterThanOrEqual(2);
      expect(text).toBe(await metrics.registry.metrics());
      expect(text).toContain('pybal_service_servers{service="web"} 10000\n');
      expect(text).toContain('pybal_service_servers_up{service="web"} 9000\n');
      expect(text.split('\n').filter((l) => l.startsWith('pybal_monitor_status{'))).toHaveLength(10_000);
    } finally {
      clearInterval(timer);
    }
  });

  it('shares one scrape between requests that come while it runs', async () => {
    const { metrics, snapshot } = fleet(300);
    let snapshots = 0;
    const take = (): DaemonSnapshot => {
      snapshots++;
      return snapshot;
    };
    const [a, b, c] = await Promise.all([metrics.scrape(take), metrics.scrape(take), metrics.scrape(take)]);
    expect(snapshots).toBe(1);
    expect(b).toBe(a);
    expect(c).toBe(a);
    // Once it is done, the next scrape is a new one.
    await metrics.scrape(take);
    expect(snapshots).toBe(2);
  });

  it("reuses a scrape's blocks only once every request that shared it wrote them out whole", async () => {
    const { metrics, snapshot } = fleet(2000);
    const stores = (blocks: readonly Buffer[]): Set<ArrayBufferLike> => new Set(blocks.map((b) => b.buffer));
    const overlap = (blocks: readonly Buffer[], of: Set<ArrayBufferLike>): number => blocks.filter((b) => of.has(b.buffer)).length;
    const [a, b, c] = await Promise.all([metrics.scrape(() => snapshot), metrics.scrape(() => snapshot), metrics.scrape(() => snapshot)]);
    expect(b).toBe(a);
    expect(c).toBe(a);
    const aText = Buffer.concat(a).toString('utf8');
    expect(a.length).toBeGreaterThan(1);
    const aStores = stores(a);
    // Two of the three are done: the blocks are still someone's, the next scrape has its own.
    metrics.written(a, true);
    metrics.written(a, true);
    const d = await metrics.scrape(() => snapshot);
    expect(overlap(d, aStores)).toBe(0);
    expect(Buffer.concat(a).toString('utf8')).toBe(aText);
    // The third is done: the next scrape writes over them, and its text is the registry's.
    metrics.written(a, true);
    metrics.recordReport('web', hostOf(1), report(false));
    const e = await metrics.scrape(() => snapshot);
    expect(overlap(e, aStores)).toBe(a.length);
    const eText = Buffer.concat(e).toString('utf8');
    expect(eText).toBe(await metrics.registry.metrics());
    expect(line(eText, 'pybal_monitor_down_transitions_total', hostOf(1))).toMatch(/ 1$/);
    metrics.written(e, true);
    // One request abandoned its writing (a write of the blocks may still be under way): never reused.
    const [f, g] = await Promise.all([metrics.scrape(() => snapshot), metrics.scrape(() => snapshot)]);
    expect(g).toBe(f);
    const fStores = stores(f);
    metrics.written(f, false);
    metrics.written(f, true);
    expect(overlap(await metrics.scrape(() => snapshot), fStores)).toBe(0);
  });

  it('recovers from a snapshot that throws', async () => {
    const { metrics, snapshot } = fleet(3);
    await expect(
      metrics.scrape(() => {
        throw new Error('no snapshot');
      }),
    ).rejects.toThrow('no snapshot');
    expect((await metrics.scrape(() => snapshot)).join('')).toContain('pybal_service_servers{service="web"} 3\n');
  });

  it('keeps what the daemon recorded while a sliced update ran, and drops what it forgot', async () => {
    const { metrics, snapshot } = fleet(300);
    metrics.recordResult('web', 'gone', result); // not in the snapshot: its series go
    let injected = false;
    const later = (fn: () => void): void => {
      if (!injected) {
        // The first slice of the update job has ended: the snapshot is older than what follows.
        injected = true;
        metrics.forgetServer('web', hostOf(250)); // left the pool: the snapshot must not bring it back
        metrics.recordReport('web', hostOf(200), report(false)); // newer than the snapshot, which says up
        metrics.recordResult('web', 'late', result); // joined after the snapshot
      }
      setImmediate(fn);
    };
    const text = (await metrics.scrape(() => snapshot, { budgetMs: 0, later })).join('');
    expect(injected).toBe(true);
    expect(text).toBe(await metrics.registry.metrics());
    expect(line(text, 'pybal_monitor_up_results_total', 'gone')).toBeUndefined();
    expect(line(text, 'pybal_monitor_status', hostOf(250))).toBeUndefined();
    expect(line(text, 'pybal_monitor_up_results_total', hostOf(250))).toBeUndefined();
    expect(line(text, 'pybal_monitor_status', hostOf(200))).toMatch(/ 0$/);
    expect(line(text, 'pybal_monitor_up_results_total', 'late')).toMatch(/ 1$/);
    expect(line(text, 'pybal_monitor_status', hostOf(1))).toMatch(/ 1$/);

    // The next scrape follows its snapshot again: 'late' is not in it, hostOf(250) is.
    const next = (await metrics.scrape(() => snapshot)).join('');
    expect(line(next, 'pybal_monitor_up_results_total', 'late')).toBeUndefined();
    expect(line(next, 'pybal_monitor_status', hostOf(250))).toMatch(/ 1$/);
    expect(line(next, 'pybal_monitor_status', hostOf(200))).toMatch(/ 1$/);
  });
});

describe('PybalMetrics.scrape with a snapshot taken in slices', () => {
  it('keeps a report that came while the snapshot was being taken, which the snapshot does not have', async () => {
    const { metrics, snapshot } = fleet(20);
    // The snapshot began before the report: it still says hostOf(5) is up.
    let report5: () => void = () => undefined;
    const taken = new Promise<DaemonSnapshot>((resolve) => {
      report5 = () => {
        metrics.recordReport('web', hostOf(5), report(false));
        resolve(snapshot);
      };
    });
    const scraping = metrics.scrape(() => taken);
    await new Promise((resolve) => setImmediate(resolve));
    report5();
    const text = (await scraping).join('');
    expect(line(text, 'pybal_monitor_status', hostOf(5))).toMatch(/ 0$/);
    expect(line(text, 'pybal_monitor_status', hostOf(6))).toMatch(/ 1$/);
    expect(line(text, 'pybal_monitor_down_transitions_total', hostOf(5))).toMatch(/ 1$/);
    // A later snapshot that has it down too agrees; one that has it up again (a newer report) wins.
    const up = daemon([service('web', snapshot.services[0]!.servers.map((s) => (s.host === hostOf(5) ? { ...s, monitors: [monitor({ up: true })] } : s)))]);
    expect(line((await metrics.scrape(() => Promise.resolve(up))).join(''), 'pybal_monitor_status', hostOf(5))).toMatch(/ 1$/);
  });

  it('recovers from a sliced snapshot that fails, and a server forgotten meanwhile stays forgotten', async () => {
    const { metrics, snapshot } = fleet(5);
    await expect(metrics.scrape(() => Promise.reject(new Error('no snapshot')))).rejects.toThrow('no snapshot');
    const scraping = metrics.scrape(async () => {
      await new Promise((resolve) => setImmediate(resolve));
      metrics.forgetServer('web', hostOf(2)); // left its pool while the snapshot, which still has it, was taken
      return snapshot;
    });
    const text = (await scraping).join('');
    expect(line(text, 'pybal_monitor_status', hostOf(2))).toBeUndefined();
    expect(line(text, 'pybal_monitor_status', hostOf(3))).toMatch(/ 1$/);
    expect(text).toContain('pybal_service_servers{service="web"} 5\n');
  });
});

describe('GET /metrics over HTTP at 10,000 servers', () => {
  it('sends the whole text in many writes, with its Content-Length; HEAD sends the length alone', async () => {
    const { metrics, snapshot } = fleet(10_000);
    const api = createApiServer({ snapshot: () => snapshot, metrics, logger: createMemoryLogger().logger });
    const [bound] = await api.listen({ ips: ['127.0.0.1'], port: 0 });
    try {
      const get = (method: string): Promise<{ headers: Record<string, unknown>; body: Buffer }> =>
        new Promise((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port: bound!.port, path: '/metrics', method }, (res) => {
            const parts: Buffer[] = [];
            res.on('data', (d: Buffer) => parts.push(d));
            res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(parts) }));
          });
          req.on('error', reject);
          req.end();
        });
      const write = vi.spyOn(ServerResponse.prototype, 'write');
      const full = await get('GET');
      const writes = write.mock.calls.length;
      write.mockRestore();
      // The scrape updated the registry from the snapshot; it now renders what was sent.
      const expected = await metrics.registry.metrics();
      expect(full.body.toString()).toBe(expected);
      expect(Number(full.headers['content-length'])).toBe(Buffer.byteLength(expected));
      expect(full.body.length).toBeGreaterThan(1_000_000);
      // The body went out in many writes (one encoding of 4 MB held the lab guest's loop for 400 ms).
      expect(writes).toBeGreaterThan(10);
      const head = await get('HEAD');
      expect(head.body.length).toBe(0);
      expect(Number(head.headers['content-length'])).toBe(Buffer.byteLength(expected));
    } finally {
      await api.close();
    }
  });

  it("reuses a scrape's blocks only once no response can still be writing them: a slow reader gets its own text whole, one that leaves part-way spoils none", async () => {
    const { metrics, snapshot } = fleet(10_000);
    const api = createApiServer({ snapshot: () => snapshot, metrics, logger: createMemoryLogger().logger });
    const [bound] = await api.listen({ ips: ['127.0.0.1'], port: 0 });
    const written = vi.spyOn(metrics, 'written');
    /** A GET /metrics whose reading waits for `go` (the socket's buffers fill, the daemon's writes wait), or is given up after `leaveAfter` bytes. */
    const scrape = (options: { go?: Promise<void>; leaveAfter?: number; answered?: () => void } = {}): Promise<string> =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: bound!.port, path: '/metrics', agent: false }, (res) => {
          const parts: Buffer[] = [];
          let got = 0;
          res.on('data', (d: Buffer) => {
            parts.push(d);
            got += d.length;
            if (options.leaveAfter !== undefined && got >= options.leaveAfter) {
              req.destroy();
              resolve(Buffer.concat(parts).toString());
            }
          });
          res.on('end', () => resolve(Buffer.concat(parts).toString()));
          options.answered?.();
          if (options.go) {
            res.pause();
            void options.go.then(() => res.resume());
          }
        });
        req.on('error', (error) => (options.leaveAfter === undefined ? reject(error) : undefined));
        req.end();
      });
    const settled = async (calls: number): Promise<void> => {
      for (let i = 0; i < 500 && written.mock.calls.length < calls; i++) await new Promise((r) => setTimeout(r, 10));
    };
    try {
      let go: () => void = () => undefined;
      let answered: () => void = () => undefined;
      const answer = new Promise<void>((r) => (answered = r));
      const slow = scrape({ go: new Promise<void>((r) => (go = r)), answered });
      // The slow reader's scrape is done (its headers came) and being written: its text is what the registry says now.
      await answer;
      await new Promise((r) => setTimeout(r, 100));
      const slowExpected = await metrics.registry.metrics();
      expect(written).not.toHaveBeenCalled();
      // Two more scrapes, each after a change: the second writes over the first's blocks, never the slow one's.
      metrics.recordReport('web', hostOf(1), report(false));
      const second = await scrape();
      await settled(1);
      expect(written.mock.calls.at(-1)?.[1]).toBe(true);
      metrics.recordReport('web', hostOf(2), report(false));
      const third = await scrape();
      await settled(2);
      const thirdExpected = await metrics.registry.metrics();
      expect(third).toBe(thirdExpected);
      expect(line(third, 'pybal_monitor_down_transitions_total', hostOf(2))).toMatch(/ 1$/);
      expect(line(second, 'pybal_monitor_down_transitions_total', hostOf(2))).toBeUndefined();
      expect(line(second, 'pybal_monitor_down_transitions_total', hostOf(1))).toMatch(/ 1$/);
      // A reader that leaves mid-way: its blocks are given up, not reused.
      metrics.recordReport('web', hostOf(3), report(false));
      await scrape({ leaveAfter: 200_000 });
      await settled(3);
      expect(written.mock.calls.at(-1)?.[1]).toBe(false);
      // A reader gone before the answer (a scraper's timeout): nothing was written, the blocks are reused.
      await new Promise<void>((resolve) => {
        const req = request({ host: '127.0.0.1', port: bound!.port, path: '/metrics', agent: false });
        req.on('error', () => resolve());
        req.end(() => setTimeout(() => req.destroy(), 5));
        req.on('close', () => resolve());
      });
      await settled(4);
      expect(written.mock.calls.at(-1)?.[1]).toBe(true);
      const fourth = await scrape();
      expect(fourth).toBe(await metrics.registry.metrics());
      // The slow reader reads on: every byte of its own scrape, none of the later ones.
      go();
      const slowText = await slow;
      expect(slowText).toBe(slowExpected);
      expect(line(slowText, 'pybal_monitor_down_transitions_total', hostOf(1))).toBeUndefined();
      expect(slowText.length).toBeGreaterThan(1_000_000);
      await settled(6);
      expect(written.mock.calls.map((c) => c[1])).toEqual([true, true, false, true, true, true]);
    } finally {
      written.mockRestore();
      await api.close();
    }
  });
});

