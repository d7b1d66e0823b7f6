import { describe, expect, it } from 'vitest';
import { PybalMetrics } from '../../src/api/metrics.js';
import { handleRequest } from '../../src/api/server.js';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { flushAsync, ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { fakeMonitors, poolEvent, serviceConfig } from '../coordinator/support/fakes.js';
import { proxyFetchConfig } from '../monitors/support/configs.js';
import { daemon, server, service } from './fixtures.js';

describe('snapshots as narrow as the request', () => {
  it('/pools asks for no server, /pools/<service> for that service only, /alerts and /metrics for everything; only /status for the checks', async () => {
    const asked: unknown[] = [];
    const web = service('web', [server('mw1')]);
    const api = service('api', [server('mw2')]);
    const deps = {
      metrics: new PybalMetrics({ processMetrics: false }),
      snapshot: (scope?: { service?: string; servers?: boolean; checks?: boolean }) => {
        asked.push(scope);
        const all = [web, api].filter((s) => scope?.service === undefined || s.name === scope.service);
        return daemon(scope?.servers === false ? all.map((s) => ({ ...s, servers: [] })) : all);
      },
    };
    expect((await handleRequest(deps, 'GET', '/pools', 'application/json')).body).toBe(JSON.stringify(['web', 'api']));
    expect((await handleRequest(deps, 'GET', '/pools/api', 'text/plain')).body).toBe('mw2:\tenabled/up/pooled\n');
    expect((await handleRequest(deps, 'GET', '/pools/nope', 'application/json')).status).toBe(404);
    await handleRequest(deps, 'GET', '/alerts', 'application/json');
    await handleRequest(deps, 'GET', '/metrics', 'text/plain');
    await handleRequest(deps, 'GET', '/status', 'application/json');
    expect(asked).toEqual([{ servers: false }, { service: 'api', checks: false }, { service: 'nope', checks: false }, { checks: false }, { checks: false }, undefined]);
  });

  it("a coordinator's snapshot without servers says what the full one says of the service", async () => {
    const fakes = fakeMonitors();
    const coordinator = new Coordinator(serviceConfig({ depoolThreshold: 0.7, monitors: [proxyFetchConfig()] }), {
      clock: new ManualClock(),
      logger: createMemoryLogger('info').logger,
      createMonitor: fakes.create,
      resolve: async (host) => [`192.0.2.${host.slice(2)}`],
      onChange: () => undefined,
    });
    coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3'));
    await flushAsync();
    for (const host of ['mw1', 'mw2']) fakes.report(host, false);
    const { servers, ...full } = coordinator.snapshot();
    const { servers: none, ...light } = coordinator.snapshot({ servers: false });
    expect(servers).toHaveLength(3);
    expect(none).toEqual([]);
    expect(light).toEqual(full);
    expect(light.canDepool).toBe(false);
    await coordinator.stop();
  });
});
