/**
 * The coordinator's events for the history: monitor transitions with their
 * reason, pooling decisions (pooled, depooled, held in by the depool
 * threshold), pools applied. Each is emitted where the log says the same.
 */
import { describe, expect, it } from 'vitest';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import { EventHistory } from '../../src/events/history.js';
import { flushAsync, ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { proxyFetchConfig } from '../monitors/support/configs.js';
import { fakeMonitors, fakeResolver, poolEvent, serviceConfig } from './support/fakes.js';

function setup(depoolThreshold = 0.5) {
  const clock = new ManualClock();
  const log = createMemoryLogger('debug');
  const fakes = fakeMonitors();
  const resolver = fakeResolver();
  for (let i = 1; i <= 9; i++) resolver.answers.set(`mw${i}`, [`192.0.2.${i}`]);
  const events = new EventHistory(1000, () => 1_700_000_000_000);
  const coordinator = new Coordinator(serviceConfig({ monitors: [proxyFetchConfig()], depoolThreshold }), {
    clock,
    logger: log.logger.child({ service: 'text_80' }),
    createMonitor: fakes.create,
    resolve: resolver.resolve,
    onChange: () => undefined,
    random: () => 0.5,
    events,
  });
  /** The events since the last call, as `kind server up/pooled: message`. */
  let seen = 0;
  const fresh = () => {
    const list = events.since(seen);
    seen = events.latestSeq;
    return list;
  };
  return { coordinator, fakes, events, fresh, log };
}

describe('Coordinator events', () => {
  it('a depool: the monitor going down with its reason, then the server leaving the pool, in that order and in the log wording', async () => {
    const t = setup();
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3', 'mw4'));
    await flushAsync();
    expect(t.fresh()).toEqual([
      expect.objectContaining({ kind: 'pool-applied', service: 'text_80', message: 'First pool applied: Added 4 server(s): 4 enabled server(s) and 0 disabled server(s)' }),
      ...['mw1', 'mw2', 'mw3', 'mw4'].map((host) => expect.objectContaining({ kind: 'pooled', server: host, pooled: true, message: `Pooling server ${host}` })),
    ]);
    t.fakes.report('mw2', false, 'HTTP 503');
    const events = t.fresh();
    expect(events.map((e) => [e.kind, e.service, e.server, e.level, e.up, e.pooled])).toEqual([
      ['monitor-down', 'text_80', 'mw2', 'error', false, undefined],
      ['depooled', 'text_80', 'mw2', 'info', undefined, false],
    ]);
    expect(events[0]?.message).toBe('Monitoring instance ProxyFetch reports server mw2 (enabled/up/pooled) down: HTTP 503');
    expect(events[1]?.message).toBe('Depooling server mw2');
    // Each is what the log says.
    for (const e of events) expect(t.log.lines().some((line) => line.endsWith(e.message))).toBe(true);
    // A monitor reporting down again while down is no transition: no event.
    t.fakes.report('mw2', false, 'HTTP 503 again');
    expect(t.fresh()).toEqual([]);
    // Back up: the monitor's transition, then the repool.
    t.fakes.report('mw2', true, 'Fetch successful');
    expect(t.fresh().map((e) => [e.kind, e.server, e.up, e.pooled])).toEqual([
      ['monitor-up', 'mw2', true, undefined],
      ['pooled', 'mw2', undefined, true],
    ]);
  });

  it('a server held in by the depool threshold is a depool-held event, down and pooled', async () => {
    const t = setup(0.5);
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2'));
    await flushAsync();
    t.fresh();
    t.fakes.reportAll(['mw1', 'mw2'], false, 'connect ECONNREFUSED');
    const held = t.fresh().filter((e) => e.kind === 'depool-held');
    expect(held).toEqual([
      expect.objectContaining({ server: 'mw2', level: 'error', up: false, pooled: true, message: 'Could not depool server mw2 because of too many down!' }),
    ]);
    expect(t.coordinator.snapshot().servers.find((s) => s.host === 'mw2')).toMatchObject({ pooled: true, pooledDown: true });
  });

  it('a later pool says what it added, removed and changed', async () => {
    const t = setup();
    t.coordinator.onPoolEvent(poolEvent('mw1', 'mw2', 'mw3'));
    await flushAsync();
    t.fresh();
    t.coordinator.onPoolEvent(poolEvent('mw1:5', 'mw3', 'mw4'));
    await flushAsync();
    const applied = t.fresh().filter((e) => e.kind === 'pool-applied');
    expect(applied).toEqual([
      expect.objectContaining({ service: 'text_80', message: 'Pool applied: 1 added, 1 removed, 1 changed: New enabled server mw4, weight 10 (and 2 more)' }),
    ]);
    // The same pool again changes nothing: no event.
    t.coordinator.onPoolEvent(poolEvent('mw1:5', 'mw3', 'mw4'));
    await flushAsync();
    expect(t.fresh().filter((e) => e.kind === 'pool-applied')).toEqual([]);
  });

  it('records the last check of each monitor, with its duration, for the status page', async () => {
    const clock = new ManualClock();
    const resolver = fakeResolver();
    resolver.answers.set('mw1', ['192.0.2.1']);
    let check: ((r: { ok: boolean; reason: string; durationMs: number }) => void) | undefined;
    const coordinator = new Coordinator(serviceConfig({ monitors: [proxyFetchConfig()] }), {
      clock,
      logger: createMemoryLogger().logger,
      createMonitor: (_config, _target, _onReport, onCheck) => {
        check = onCheck;
        return { start: () => undefined, stop: async () => undefined };
      },
      resolve: resolver.resolve,
      onChange: () => undefined,
    });
    coordinator.onPoolEvent(poolEvent('mw1'));
    await flushAsync();
    expect(coordinator.snapshot().servers[0]?.monitors[0]?.lastCheck).toBeUndefined();
    check?.({ ok: true, reason: 'Fetch successful (http://x/), 0.012 s', durationMs: 12 });
    const first = coordinator.snapshot();
    expect(first.servers[0]?.monitors[0]?.lastCheck).toEqual({ ok: true, reason: 'Fetch successful (http://x/), 0.012 s', durationMs: 12 });
    // The next check replaces it; a snapshot taken before keeps what it had (a value, not a reference).
    check?.({ ok: false, reason: 'Fetch failed (http://x/): timeout', durationMs: 5000 });
    expect(coordinator.snapshot().servers[0]?.monitors[0]?.lastCheck).toEqual({ ok: false, reason: 'Fetch failed (http://x/): timeout', durationMs: 5000 });
    expect(first.servers[0]?.monitors[0]?.lastCheck).toEqual({ ok: true, reason: 'Fetch successful (http://x/), 0.012 s', durationMs: 12 });
    // A snapshot that does not ask for the checks has the rest alike, and no check.
    const { lastCheck, ...rest } = coordinator.snapshot().servers[0]!.monitors[0]!;
    expect(lastCheck).toBeDefined();
    const light = coordinator.snapshot({ checks: false }).servers[0]!.monitors[0]!;
    expect('lastCheck' in light).toBe(false);
    expect(light).toEqual(rest);
  });
});
