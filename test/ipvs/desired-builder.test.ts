// DesiredServiceBuilder (issue 11: a weight edit in a pool of 20,000 never
// reached the kernel within a second, because every publish rebuilt,
// normalised and diffed the whole pool). Each publish must equal what a
// rebuild from scratch gives, and its patch must say exactly what changed.
import { describe, expect, it } from 'vitest';
import type { ServiceConfig } from '../../src/config/types.js';
import { destKeyId } from '../../src/ipvs/codec.js';
import { DesiredServiceBuilder, desiredServiceFromConfig, takePooled, type PooledServers } from '../../src/ipvs/desired.js';
import type { DesiredService } from '../../src/ipvs/diff.js';
import type { DestSpec } from '../../src/ipvs/types.js';
import { serviceConfig } from '../support/config-fixtures.js';
import { createRandomInt } from '../support/random.js';

type Server = { host: string; address: string; weight: number };

function config(extra: Partial<ServiceConfig> = {}): ServiceConfig {
  return serviceConfig('text', '192.0.2.11', { scheduler: 'wrr', poolUrl: 'file:///etc/pybal/text', ...extra });
}

const visitAll =
  (servers: readonly Server[]): PooledServers =>
  (visit) => {
    for (const s of servers) visit(s.host, s.address, s.weight);
  };

/** Destinations by id with their weights: what the kernel would be told. */
function byId(dests: readonly DestSpec[]): Map<string, number> {
  return new Map(dests.map((d) => [destKeyId(d), d.weight]));
}

/** The base's destinations with the patch applied, as a manager applies it. */
function patched(d: DesiredService): Map<string, number> {
  const patch = d.patch!;
  const out = byId(patch.base.destinations);
  for (const r of patch.removed) out.delete(destKeyId(r));
  for (const s of patch.set) out.set(destKeyId(s), s.weight);
  return out;
}

function pool(n: number, weight = 10): Server[] {
  return Array.from({ length: n }, (_, i) => ({ host: `mw${i}`, address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, weight }));
}

describe('takePooled', () => {
  it('takes every server visited, in order, however many were expected', () => {
    const servers = pool(300).map((s, i) => ({ ...s, weight: i % 7 }));
    const columns = (t: ReturnType<typeof takePooled>) => ({ hosts: [...t.hosts], addresses: [...t.addresses], weights: [...t.weights] });
    const want = { hosts: servers.map((s) => s.host), addresses: servers.map((s) => s.address), weights: servers.map((s) => s.weight) };
    // Sized for all, for more (a coordinator's servers, some not pooled), for fewer (grown past it), and not at all.
    for (const expected of [300, 10_000, 17, 0]) {
      const taken = takePooled(visitAll(servers), undefined, expected);
      expect(columns(taken), `expected ${expected}`).toEqual(want);
      // No hole left where the columns were sized beyond the servers taken.
      for (const column of [taken.hosts, taken.addresses, taken.weights]) expect(Object.keys(column).length).toBe(300);
    }
    expect(columns(takePooled(visitAll([]), undefined, 50))).toEqual({ hosts: [], addresses: [], weights: [] });
    // ordered: its own length, its order.
    const ordered = [...servers].reverse();
    expect(columns(takePooled(visitAll(servers), ordered)).hosts).toEqual(ordered.map((s) => s.host));
  });
});

describe('DesiredServiceBuilder', () => {
  it('publishes one weight changed in a pool of 20,000 as a patch of one destination, every other object kept', () => {
    const builder = new DesiredServiceBuilder();
    const service = config();
    const servers = pool(20_000);
    const first = builder.build(service, visitAll(servers));
    expect(first.patch).toBeUndefined();
    expect(first.destinations).toHaveLength(20_000);
    servers[12_000] = { ...servers[12_000]!, weight: 7 };
    const second = builder.build(service, visitAll(servers));
    expect(second.patch?.base).toBe(first);
    expect(second.patch?.removed).toEqual([]);
    expect(second.patch?.set).toEqual([expect.objectContaining({ address: '10.0.46.224', weight: 7 })]);
    expect(second.destinations).toHaveLength(20_000);
    // The same place in the list, and the same objects for the others (checked once by the manager).
    expect(second.destinations[12_000]).toMatchObject({ address: '10.0.46.224', weight: 7 });
    expect(second.destinations.filter((d, i) => d !== first.destinations[i])).toHaveLength(1);
    // Nothing changed: the very same object (the manager skips it without looking).
    expect(builder.build(service, visitAll(servers))).toBe(second);
    // The base's own patch is dropped, so that publishes do not chain every pool ever published.
    const third = builder.build(service, visitAll(servers.slice(1)));
    expect(third.patch?.base).toBe(second);
    expect(second.patch).toBeUndefined();
    expect(third.patch?.removed).toEqual([expect.objectContaining({ address: '10.0.0.0' })]);
  });

  it('hands the IPVS manager a map of a rebuild\'s destinations, each checked, which no copy of the service carries', () => {
    const builder = new DesiredServiceBuilder();
    const service = config();
    const servers = pool(1_000);
    const first = builder.build(service, visitAll(servers));
    expect([...first.byId!.keys()]).toEqual(first.destinations.map((d) => destKeyId(d)));
    expect([...first.byId!.values()].every((d, i) => d === first.destinations[i])).toBe(true);
    // Handed over once: not in a copy, nor in a patch's settings taken from it.
    expect(Object.keys(first)).not.toContain('byId');
    expect({ ...first }.byId).toBeUndefined();
    const second = builder.build(service, visitAll(servers.map((s, i) => (i === 3 ? { ...s, weight: 4 } : s))));
    expect(second.patch?.base).toBe(first);
    expect(second.byId).toBeUndefined();
    // A weight the kernel cannot take: no map, so that the manager checks every destination and reports it.
    const bad = new DesiredServiceBuilder().build(service, visitAll(servers.map((s, i) => (i === 3 ? { ...s, weight: 2 ** 31 } : s))));
    expect(bad.destinations).toHaveLength(1_000);
    expect(bad.byId).toBeUndefined();
  });

  it('says a server added, removed and moved to a new address', () => {
    const builder = new DesiredServiceBuilder();
    const service = config();
    const base = builder.build(service, visitAll(pool(3)));
    const next = builder.build(
      service,
      visitAll([
        { host: 'mw0', address: '10.0.0.0', weight: 10 },
        { host: 'mw2', address: '10.9.9.9', weight: 10 },
        { host: 'mw3', address: '10.0.0.3', weight: 5 },
      ]),
    );
    expect(next.patch?.base).toBe(base);
    expect(next.patch?.removed.map((d) => d.address).sort()).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(next.patch?.set.map((d) => `${d.address}/${d.weight}`)).toEqual(['10.9.9.9/10', '10.0.0.3/5']);
    expect(byId(next.destinations)).toEqual(patched(next));
  });

  it('rebuilds when the configuration changed, when the order matters (mh fallback) and while two hosts share an address', () => {
    const builder = new DesiredServiceBuilder();
    const servers = pool(4);
    const a = config();
    builder.build(a, visitAll(servers));
    // A reload: new template (NAT), so every destination is new, and no patch.
    const b = config({ forwardMethod: 'nat' });
    const reloaded = builder.build(b, visitAll(servers));
    expect(reloaded.patch).toBeUndefined();
    expect(reloaded.destinations.every((d) => d.fwdMethod === 'masq')).toBe(true);
    // An ordered list (keepDepooled): a rebuild in that order.
    const ordered = [...servers].reverse();
    const inOrder = builder.build(b, visitAll(servers), ordered);
    expect(inOrder.patch).toBeUndefined();
    expect(inOrder.destinations.map((d) => d.address)).toEqual(ordered.map((s) => s.address));
    // mw9 takes mw1's address: the first in pool order (mw1) keeps it, which a patch cannot follow.
    const shared = [...servers, { host: 'mw9', address: servers[1]!.address, weight: 3 }];
    const withShared = builder.build(b, visitAll(shared));
    expect(withShared.patch).toBeUndefined();
    expect(withShared.destinations.find((d) => d.address === servers[1]!.address)?.weight).toBe(10);
    expect(builder.build(b, visitAll(shared.map((s) => (s.host === 'mw0' ? { ...s, weight: 1 } : s)))).patch).toBeUndefined();
    // Shared no more: patches again.
    const alone = builder.build(b, visitAll(servers));
    expect(alone.patch).toBeUndefined();
    expect(builder.build(b, visitAll(servers.slice(1))).patch).toBeDefined();
  });

  it('equals a rebuild from scratch after every step of 2,000 random pool changes', () => {
    const random = createRandomInt(11);
    const service = config();
    const builder = new DesiredServiceBuilder();
    const servers = new Map<string, Server>();
    let patches = 0;
    let previous: DesiredService | undefined;
    for (let step = 0; step < 2000; step++) {
      const changes = 1 + random(4);
      for (let c = 0; c < changes; c++) {
        const n = random(40);
        const host = `h${n}`;
        const roll = random(40);
        // Each host has addresses of its own; now and then one of a few that any host may take
        // (hosts collide, and only rebuilds follow them), or a name, which is skipped.
        const address = roll === 0 ? 'not-an-ip' : roll < 3 ? `198.51.100.${random(4)}` : `198.51.${101 + n}.${random(3)}`;
        if (roll < 12) servers.delete(host);
        else if (roll < 24 && servers.has(host)) servers.set(host, { ...servers.get(host)!, weight: random(5) });
        else servers.set(host, { host, address, weight: random(5) });
      }
      const list = [...servers.values()];
      const built = builder.build(service, visitAll(list));
      const scratch = desiredServiceFromConfig(service, list);
      expect(byId(built.destinations), `step ${step}`).toEqual(byId(scratch.destinations));
      // Nothing changed: the same object again (its patch is the one it came with).
      if (built !== previous && built.patch !== undefined) {
        patches++;
        expect(built.patch.base).toBe(previous);
        expect(patched(built), `step ${step}`).toEqual(byId(built.destinations));
        // A patch names only what changed (a destination may leave and come back under another host).
        expect(built.patch.set.length + built.patch.removed.length).toBeLessThanOrEqual(2 * changes);
      }
      previous = built;
    }
    // Most steps are patches; rebuilds only while addresses are shared.
    expect(patches).toBeGreaterThan(100);
  });
});
