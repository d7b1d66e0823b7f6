// Host test of the e2e helpers: the pybal.conf and pool files they write for
// the lab are what pybal's own parsers accept, with the lab's addresses.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.js';
import { parseLegacyPool } from '../../src/pool/legacy-format.js';
import type { Lab } from '../lab/lab.js';
import { planTopology } from '../lab/topology.js';
import { DEPOOL_BOUND_MS, E2eConfig, poolLine } from './pybal-lab.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** What E2eConfig reads of a lab, from the same pure topology plan startLab uses. */
function fakeLab(): Lab {
  const dir = mkdtempSync(join(tmpdir(), 'pybal-e2e-'));
  dirs.push(dir);
  const topology = planTopology('t1', { realServers: 3, families: [4], vips: 2, forwarding: 'dr' });
  return { dir, addr: topology.addr, options: {}, topology } as unknown as Lab;
}

describe('e2e helpers', () => {
  it('write a pybal.conf that pybal accepts: BGP to the router, the API, one service per VIP with ProxyFetch', async () => {
    const lab = fakeLab();
    const conf = new E2eConfig(lab);
    conf.writePool('web', conf.realServerEntries());
    conf.writePool('api', conf.realServerEntries());
    conf.write([{ name: 'web', extra: ["monitors = [ 'ProxyFetch' ]", "proxyfetch.url = [ 'http://localhost/' ]", 'bgp-withdraw-when-down = yes'] }, { name: 'api', vipIndex: 1 }]);
    const loaded = await loadConfig(conf.file);
    expect(loaded.errors).toEqual([]);
    const config = loaded.config!;
    expect(config.global).toMatchObject({ bgp: true, bgpLocalAsn: 64600, instrumentation: true, instrumentationPort: 9090 });
    expect(config.services.map((s) => [s.name, s.ip, s.port, s.poolUrl])).toEqual([
      ['web', lab.addr.vips[0]!.v4, 80, `file://${conf.poolFile('web')}`],
      ['api', lab.addr.vips[1]!.v4, 80, `file://${conf.poolFile('api')}`],
    ]);
    expect(config.services[0]).toMatchObject({ bgpWithdrawWhenDown: true });
  });

  it('write an IPv6 service: its VIP, IPv6 pool hosts, peers over both families and the IPv6 next hop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pybal-e2e-'));
    dirs.push(dir);
    const topology = planTopology('t2', { realServers: 2, families: [4, 6], forwarding: 'dr' });
    const lab = { dir, addr: topology.addr, options: {}, topology } as unknown as Lab;
    const conf = new E2eConfig(lab);
    conf.writePool('web6', conf.realServerEntries({}, 6));
    conf.write([{ name: 'web6', family: 6 }]);
    const loaded = await loadConfig(conf.file);
    expect(loaded.errors).toEqual([]);
    const config = loaded.config!;
    expect(config.global).toMatchObject({ bgpPeerAddresses: ['198.51.100.1', '2001:db8:1::1'], bgpNexthopIpv4: '198.51.100.2', bgpNexthopIpv6: '2001:db8:1::2' });
    expect(config.services.map((s) => [s.name, s.ip, s.family])).toEqual([['web6', '2001:db8:3::1', 6]]);
    const pool = parseLegacyPool(readFileSync(conf.poolFile('web6'), 'utf8'), conf.poolFile('web6'));
    expect([...pool.pool.keys()]).toEqual(['2001:db8:1::11', '2001:db8:1::12']);
  });

  it('write a pybal.conf for director2 of a two-director lab: its own address as next hop, its own MED', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pybal-e2e-'));
    dirs.push(dir);
    const topology = planTopology('t3', { realServers: 2, directors: 2, families: [4], forwarding: 'dr' });
    const lab = { dir, addr: topology.addr, options: {}, topology } as unknown as Lab;
    const conf = new E2eConfig(lab, 'pybal-d2');
    conf.writePool('web', conf.realServerEntries());
    conf.write([{ name: 'web' }], { director: 'director2', globalExtra: ['bgp-med = 20'] });
    const loaded = await loadConfig(conf.file);
    expect(loaded.errors).toEqual([]);
    expect(loaded.config!.global).toMatchObject({ bgpNexthopIpv4: '198.51.100.3', bgpMed: 20 });
    expect(() => conf.write([{ name: 'web' }], { director: 'director3' })).toThrow(/no director3/);
  });

  it('write pool files in PyBal legacy format, disabled servers included', () => {
    const lab = fakeLab();
    const conf = new E2eConfig(lab);
    conf.writePool('web', conf.realServerEntries({ rs2: { enabled: false, weight: 5 } }));
    const parsed = parseLegacyPool(readFileSync(conf.poolFile('web'), 'utf8'), conf.poolFile('web'));
    expect(parsed.problems).toEqual([]);
    expect([...parsed.pool.values()]).toEqual([
      { host: '198.51.100.11', weight: 10, enabled: true },
      { host: '198.51.100.12', weight: 5, enabled: false },
      { host: '198.51.100.13', weight: 10, enabled: true },
    ]);
    expect(poolLine({ host: 'rs1' })).toBe("{ 'host': 'rs1', 'weight': 10, 'enabled': True }");
  });

  it('state the depool bound as the issue does: interval × fall + timeout + 1 s', () => {
    expect(DEPOOL_BOUND_MS).toBe((1 * 2 + 1 + 1) * 1000);
  });
});
