import { describe, expect, it } from 'vitest';
import { canDepool, decidePool, upServerCount, type PoolTrigger, type ServerFacts } from '../../src/coordinator/decide-pool.js';
import { createRandom } from '../support/random.js';

/**
 * A server written compactly: flags in any order among
 * e (enabled) / d (disabled), u (up) / x (down), p (pooled), D (pooled-down), r (unresolved).
 */
function srv(host: string, flags: string): ServerFacts {
  return {
    host,
    enabled: !flags.includes('d'),
    ready: !flags.includes('r'),
    up: flags.includes('u'),
    pooled: flags.includes('p') || flags.includes('D'),
    pooledDown: flags.includes('D'),
  };
}

/** The outcome as "host:P" (pooled), "host:D" (pooled-down), "host:-" (not pooled). */
function outcome(servers: readonly ServerFacts[]): string {
  return servers.map((s) => `${s.host}:${s.pooledDown ? 'D' : s.pooled ? 'P' : '-'}`).join(' ');
}

describe('canDepool (PyBal test_coordinator cases, §5.4)', () => {
  it.each([
    { name: '2 servers at .5, one down', servers: [srv('a', 'up'), srv('b', 'xp')], threshold: 0.5, up: 1, can: true },
    { name: '2 servers at .5, both down', servers: [srv('a', 'xp'), srv('b', 'xp')], threshold: 0.5, up: 0, can: false },
    { name: '4 with 1 disabled at .5, 3 up', servers: [srv('a', 'up'), srv('b', 'up'), srv('c', 'up'), srv('d', 'du')], threshold: 0.5, up: 3, can: true },
    { name: '4 with 1 disabled at .5, 2 up', servers: [srv('a', 'up'), srv('b', 'up'), srv('c', 'x'), srv('d', 'du')], threshold: 0.5, up: 2, can: true },
    { name: '4 with 1 disabled at .5, 1 up', servers: [srv('a', 'up'), srv('b', 'x'), srv('c', 'x'), srv('d', 'du')], threshold: 0.5, up: 1, can: false },
    { name: 'threshold 0, all down', servers: [srv('a', 'x'), srv('b', 'x')], threshold: 0, up: 0, can: true },
    { name: 'threshold 1, one of two down', servers: [srv('a', 'up'), srv('b', 'x')], threshold: 1, up: 1, can: false },
    { name: 'an unresolved server counts in the total, never as up', servers: [srv('a', 'up'), srv('b', 'ur')], threshold: 0.6, up: 1, can: false },
  ])('$name', ({ servers, threshold, up, can }) => {
    expect(upServerCount(servers)).toBe(up);
    expect(canDepool(servers, threshold)).toBe(can);
  });
});

interface Case {
  readonly name: string;
  readonly servers: readonly ServerFacts[];
  readonly threshold: number;
  readonly trigger: PoolTrigger;
  readonly expected: string;
  readonly couldNotDepool?: number;
  readonly logs?: readonly string[];
}

const refresh: PoolTrigger = { kind: 'refresh', reportShortfall: true };

const cases: readonly Case[] = [
  // A server going down.
  {
    name: '2 at .5: the first failure is depooled',
    servers: [srv('a', 'up'), srv('b', 'xp')],
    threshold: 0.5,
    trigger: { kind: 'down', host: 'b' },
    expected: 'a:P b:-',
    logs: ['info Depooling server b'],
  },
  {
    name: '2 at .5: the second failure stays pooled-down, counted and logged',
    servers: [srv('a', 'xp'), srv('b', 'x')],
    threshold: 0.5,
    trigger: { kind: 'down', host: 'a' },
    expected: 'a:D b:-',
    couldNotDepool: 1,
    logs: ['error Could not depool server a because of too many down!'],
  },
  {
    name: '4 with 1 disabled at .5: the third enabled failure is kept',
    servers: [srv('a', 'up'), srv('b', 'x'), srv('c', 'xp'), srv('d', 'du')],
    threshold: 0.5,
    trigger: { kind: 'down', host: 'c' },
    expected: 'a:P b:- c:D d:-',
    couldNotDepool: 1,
  },
  {
    name: '4 with 1 disabled at .5: the second enabled failure is depooled',
    servers: [srv('a', 'up'), srv('b', 'up'), srv('c', 'xp'), srv('d', 'du')],
    threshold: 0.5,
    trigger: { kind: 'down', host: 'c' },
    expected: 'a:P b:P c:- d:-',
  },
  {
    name: 'threshold 0: every failure is depooled, even the last',
    servers: [srv('a', 'x'), srv('b', 'xp')],
    threshold: 0,
    trigger: { kind: 'down', host: 'b' },
    expected: 'a:- b:-',
  },
  {
    name: 'threshold 1: no failure is ever depooled',
    servers: [srv('a', 'up'), srv('b', 'up'), srv('c', 'xp')],
    threshold: 1,
    trigger: { kind: 'down', host: 'c' },
    expected: 'a:P b:P c:D',
    couldNotDepool: 1,
  },
  {
    name: 'a disabled server going down changes nothing',
    servers: [srv('a', 'up'), srv('b', 'dx')],
    threshold: 0.5,
    trigger: { kind: 'down', host: 'b' },
    expected: 'a:P b:-',
    logs: [],
  },
  // A server coming up.
  {
    name: 'a recovered server is repooled and drains the pooled-down ones the rule allows',
    servers: [srv('a', 'u'), srv('b', 'D'), srv('c', 'D'), srv('d', 'D')],
    threshold: 0.5,
    trigger: { kind: 'up', host: 'a' },
    // After a: up=1 of 4 -> 1 >= 2 false: nothing can be drained yet.
    expected: 'a:P b:D c:D d:D',
    logs: ['info Repooling server a'],
  },
  {
    name: 'the second recovery drains pooled-down servers in pool order while allowed',
    servers: [srv('a', 'up'), srv('b', 'u'), srv('c', 'D'), srv('d', 'D')],
    threshold: 0.5,
    trigger: { kind: 'up', host: 'b' },
    expected: 'a:P b:P c:- d:-',
    logs: ['info Repooling server b', 'info Depooling previously pooled but down server c', 'info Depooling previously pooled but down server d'],
  },
  {
    name: 'a pooled-down server coming back is left pooled',
    servers: [srv('a', 'uD'), srv('b', 'D')],
    threshold: 0.5,
    trigger: { kind: 'up', host: 'a' },
    expected: 'a:P b:-',
    logs: ['info Leaving previously pooled but down server a pooled', 'info Depooling previously pooled but down server b'],
  },
  {
    name: 'first checks completing on a pooled server (master) keeps it and drains',
    servers: [srv('a', 'up'), srv('b', 'up'), srv('c', 'D')],
    threshold: 0.5,
    trigger: { kind: 'up', host: 'b' },
    expected: 'a:P b:P c:-',
    logs: ['info Leaving previously pooled server b pooled', 'info Depooling previously pooled but down server c'],
  },
  {
    name: 'a disabled server coming up is not pooled',
    servers: [srv('a', 'up'), srv('b', 'du')],
    threshold: 0.5,
    trigger: { kind: 'up', host: 'b' },
    expected: 'a:P b:-',
    logs: [],
  },
  // Pool changes (master's refreshPreexistingServer + _ensureDepoolThreshold).
  {
    name: 'startup: every enabled resolved server is pooled before results (optimistic up)',
    servers: [srv('a', 'u'), srv('b', 'u'), srv('c', 'du'), srv('e', 'r')],
    threshold: 0.5,
    trigger: { kind: 'refresh', reportShortfall: false },
    expected: 'a:P b:P c:- e:-',
    logs: ['info Pooling server a', 'info Pooling server b'],
  },
  {
    name: '§10.1: an update before first results depools nothing',
    servers: [srv('a', 'up'), srv('b', 'up'), srv('c', 'u')],
    threshold: 0.5,
    trigger: refresh,
    expected: 'a:P b:P c:P',
  },
  {
    name: '§10.1: re-enabling a healthy disabled server repools it',
    servers: [srv('a', 'up'), srv('b', 'eu')],
    threshold: 0.5,
    trigger: refresh,
    expected: 'a:P b:P',
    logs: ['info Pooling server b'],
  },
  {
    name: 'disabling a pooled server takes it out',
    servers: [srv('a', 'up'), srv('b', 'dup'), srv('c', 'up'), srv('d', 'up')],
    threshold: 0.5,
    trigger: refresh,
    expected: 'a:P b:- c:P d:P',
    logs: ['info Depooling disabled server b'],
  },
  {
    name: 'disabling servers forces enabled down ones in to meet the threshold',
    servers: [srv('a', 'dup'), srv('b', 'dup'), srv('c', 'x'), srv('d', 'up')],
    threshold: 0.5,
    trigger: refresh,
    expected: 'a:- b:- c:D d:P',
    logs: ['info Depooling disabled server a', 'info Depooling disabled server b', 'warn Forcing c to be pooled to meet depool threshold'],
  },
  {
    name: 'a disabled server is never forced; the shortfall is critical',
    servers: [srv('a', 'dx'), srv('b', 'dx'), srv('c', 'x'), srv('d', 'x')],
    threshold: 1,
    trigger: refresh,
    expected: 'a:- b:- c:D d:D',
    logs: [
      'warn Forcing c to be pooled to meet depool threshold',
      'warn Forcing d to be pooled to meet depool threshold',
      'critical Could not ensure depool threshold; insufficient enabled & ready servers.',
    ],
  },
  {
    name: 'the shortfall is not reported while new servers initialize',
    servers: [srv('a', 'x'), srv('b', 'r')],
    threshold: 1,
    trigger: { kind: 'refresh', reportShortfall: false },
    expected: 'a:D b:-',
    logs: ['warn Forcing a to be pooled to meet depool threshold'],
  },
  {
    name: 'a pool change keeps pooled-down servers pooled (no retry, as master)',
    servers: [srv('a', 'up'), srv('b', 'D'), srv('c', 'x')],
    threshold: 0.5,
    trigger: refresh,
    expected: 'a:P b:D c:-',
    logs: [],
  },
  {
    name: 'a pool change that lets the rule depool drains pooled-down servers at once (master waits for a server to come up)',
    // 4 at .5: two up enabled servers (b just enabled) are enough; c was held by the threshold.
    servers: [srv('a', 'up'), srv('b', 'eu'), srv('c', 'D'), srv('d', 'x')],
    threshold: 0.5,
    trigger: refresh,
    expected: 'a:P b:P c:- d:-',
    logs: ['info Pooling server b', 'info Depooling previously pooled but down server c'],
  },
  {
    name: 'a down server that is not pooled-down is not pooled by a pool change when the rule is met',
    servers: [srv('a', 'up'), srv('b', 'up'), srv('c', 'x')],
    threshold: 0.5,
    trigger: refresh,
    expected: 'a:P b:P c:-',
  },
  {
    name: 'adding servers raises the total: down ones are forced in',
    // 4 servers at .5 need 2 pooled; only a is up.
    servers: [srv('a', 'up'), srv('b', 'x'), srv('c', 'x'), srv('n', 'r')],
    threshold: 0.5,
    trigger: refresh,
    expected: 'a:P b:D c:- n:-',
    logs: ['warn Forcing b to be pooled to meet depool threshold'],
  },
  {
    name: 'threshold 0: a pool change forces nothing',
    servers: [srv('a', 'x'), srv('b', 'x')],
    threshold: 0,
    trigger: refresh,
    expected: 'a:- b:-',
    logs: [],
  },
];

describe('decidePool', () => {
  it.each(cases)('$name', ({ servers, threshold, trigger, expected, couldNotDepool = 0, logs }) => {
    const decision = decidePool(servers, threshold, trigger);
    expect(outcome(decision.servers)).toBe(expected);
    expect(decision.couldNotDepool).toBe(couldNotDepool);
    if (logs) expect(decision.logs.map((l) => `${l.level} ${l.message}`)).toEqual(logs);
    // Invariants PyBal documents: P0 pooled => enabled & ready; P2 pooled => up or pooled-down.
    for (const s of decision.servers) {
      if (s.pooled) expect(s.enabled && s.ready, `${s.host} P0`).toBe(true);
      if (s.pooled) expect(s.up || s.pooledDown, `${s.host} P2`).toBe(true);
      if (s.pooledDown) expect(s.pooled && !s.up, `${s.host} pooled-down`).toBe(true);
    }
  });

  it('does not modify its input', () => {
    const servers = [srv('a', 'xp'), srv('b', 'x')];
    const copy = structuredClone(servers);
    decidePool(servers, 0.5, { kind: 'down', host: 'a' });
    expect(servers).toEqual(copy);
  });

  it('a pool change never leaves fewer pooled than the rule demands when enough servers are enabled and resolved', () => {
    // Every combination of 4 servers' enabled/up/pooled-down states at several thresholds.
    const states = ['up', 'x', 'D', 'du', 'dx', 'u', 'r'];
    let checked = 0;
    for (const threshold of [0, 0.25, 0.5, 0.75, 1]) {
      for (let code = 0; code < states.length ** 4; code++) {
        const servers = [0, 1, 2, 3].map((i) => srv(`s${i}`, states[Math.floor(code / states.length ** i) % states.length]!));
        const decision = decidePool(servers, threshold, refresh);
        const pooled = decision.servers.filter((s) => s.pooled).length;
        const eligible = servers.filter((s) => s.enabled && s.ready).length;
        expect(pooled).toBeGreaterThanOrEqual(Math.min(eligible, Math.ceil(servers.length * threshold)));
        checked++;
      }
    }
    expect(checked).toBe(5 * 7 ** 4);
  });
});

describe('decidePool over event sequences (as the coordinator drives it)', () => {
  it.each([0, 0.25, 0.5, 0.75, 1])('threshold %s: never fewer pooled than the rule demands, P0 and P2 always hold', (threshold) => {
    const random = createRandom(Math.round(threshold * 1000) + 7);
    let servers: ServerFacts[] = [];
    let steps = 0;
    const apply = (trigger: PoolTrigger): void => {
      servers = [...decidePool(servers, threshold, trigger).servers];
      const eligible = servers.filter((s) => s.enabled && s.ready).length;
      const pooled = servers.filter((s) => s.pooled).length;
      expect(pooled).toBeGreaterThanOrEqual(Math.min(eligible, Math.ceil(servers.length * threshold - 1e-9)));
      for (const s of servers) {
        expect(!s.pooled || (s.enabled && s.ready)).toBe(true); // P0
        expect(!s.pooled || s.up || s.pooledDown).toBe(true); // P2
        expect(!(s.up && s.enabled && s.ready) || s.pooled).toBe(true); // every healthy enabled server is pooled
      }
      steps++;
    };
    const set = (host: string, change: Partial<ServerFacts>): void => {
      servers = servers.map((s) => (s.host === host ? { ...s, ...change } : s));
    };
    for (let i = 0; i < 2000; i++) {
      const roll = random();
      const pick = servers[Math.floor(random() * servers.length)];
      if (roll < 0.1 || pick === undefined) {
        // Pool change: add a server (resolved or not) or remove one.
        if (random() < 0.6 || servers.length < 2) {
          servers.push({ host: `s${i}`, enabled: random() < 0.8, ready: random() < 0.9, up: true, pooled: false, pooledDown: false });
        } else {
          servers = servers.filter((s) => s !== pick);
        }
        apply({ kind: 'refresh', reportShortfall: true });
      } else if (roll < 0.2) {
        set(pick.host, { enabled: !pick.enabled });
        apply({ kind: 'refresh', reportShortfall: true });
      } else if (roll < 0.3 && !pick.ready) {
        set(pick.host, { ready: true, up: true });
        apply({ kind: 'refresh', reportShortfall: true });
      } else if (pick.ready && pick.up) {
        set(pick.host, { up: false });
        apply({ kind: 'down', host: pick.host });
      } else if (pick.ready) {
        set(pick.host, { up: true });
        apply({ kind: 'up', host: pick.host });
      }
    }
    expect(steps).toBeGreaterThan(1000);
  });
});
