// Golden conversions of the four guide setups, for keepalived and for
// ldirectord: the whole pybal.conf and pool files, then each carried-over
// value and each note (with its file:line) spelled out. UPDATE_GOLDEN=1
// rewrites the expected files; read the diff before committing it.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { readIni } from '../../src/config/ini-reader.js';
import { parseLegacyPool } from '../../src/pool/legacy-format.js';
import { convertGuide, EXPECTED_DIR, GUIDE_REAL_SERVERS, GUIDE_VIP, GUIDES, type Guide } from './guides.js';

const UPDATE = process.env.UPDATE_GOLDEN === '1';

function golden(path: string, actual: string): void {
  if (UPDATE) {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, actual);
  }
  expect(existsSync(path), `${path} is missing (run with UPDATE_GOLDEN=1)`).toBe(true);
  expect(actual).toBe(readFileSync(path, 'utf8'));
}

/** The sections of a pybal.conf as key -> raw value maps. */
function sections(conf: string): Map<string, Map<string, string>> {
  const { document, errors } = readIni(conf, 'pybal.conf');
  expect(errors).toEqual([]);
  return new Map(document.sections.map((s) => [s.name, new Map([...s.entries.values()].map((e) => [e.key, e.value]))]));
}

function guide(file: string): Guide {
  const found = GUIDES.find((g) => g.file === file);
  if (found === undefined) throw new Error(`no guide ${file}`);
  return found;
}

/** The service section's keys and its pool, for a guide with one service. */
function converted(file: string): { keys: Record<string, string>; pool: [string, number, boolean][]; comments: string[]; name: string } {
  const c = convertGuide(guide(file));
  const all = sections(c.conf);
  expect([...all.keys()]).toEqual(['global', c.services[0]?.name]);
  expect(Object.fromEntries(all.get('global') ?? [])).toEqual({ bgp: 'no' });
  const name = c.services[0]?.name as string;
  const pool = parseLegacyPool(c.pools[0]?.text ?? '', name);
  expect(pool.problems).toEqual([]);
  return {
    name,
    keys: Object.fromEntries(all.get(name) ?? []),
    pool: [...pool.pool.values()].map((s) => [s.host, s.weight, s.enabled]),
    comments: c.conf.split('\n').filter((l) => /^# \S+:\d/.test(l)),
  };
}

const [RS1, RS2, RS3] = GUIDE_REAL_SERVERS;

/** A note comment as `file:lines: its first three words`. */
const head = (comment: string): string => /^# (\S+: \S+(?: \S+){0,2})/.exec(comment)?.[1] ?? comment;
const everyServer = (weight = 1): [string, number, boolean][] => GUIDE_REAL_SERVERS.map((h) => [h, weight, true]);

describe('golden conversions of the guide setups', () => {
  for (const g of GUIDES) {
    it(`${g.file}`, () => {
      const c = convertGuide(g);
      golden(join(EXPECTED_DIR, g.file, 'pybal.conf'), c.conf);
      for (const pool of c.pools) golden(join(EXPECTED_DIR, g.file, 'pools', pool.service), pool.text);
      const poolDir = join(EXPECTED_DIR, g.file, 'pools');
      expect(readdirSync(poolDir).sort()).toEqual(c.pools.map((p) => p.service).sort());
    });
  }
});

describe('guide 1: a DR web service whose alive.html must say "I\'m alive!"', () => {
  const common = {
    protocol: 'tcp',
    ip: GUIDE_VIP,
    port: '80',
    scheduler: 'rr',
    'forward-method': 'dr',
    config: 'file:///etc/pybal/pools/http_80',
    'depool-threshold': '.5',
    monitors: "[ 'ProxyFetch' ]",
    'proxyfetch.url': `[ 'http://${GUIDE_VIP}/alive.html' ]`,
    'proxyfetch.expect-body': "I'm alive!",
  };

  it('keepalived: HTTP_GET with a regex; delay_loop 6, connect_timeout 3, nb_get_retry 3', () => {
    const c = converted('web-dr.keepalived.conf');
    expect(c.name).toBe('http_80');
    expect(c.keys).toEqual({ ...common, 'proxyfetch.interval': '6', 'proxyfetch.timeout': '3', 'proxyfetch.fall': '4' });
    expect(c.pool).toEqual(everyServer());
    expect(c.comments.map(head)).toEqual([
      'web-dr.keepalived.conf:5-13: global_defs: global settings',
      'web-dr.keepalived.conf:15-28: vrrp_instance VI_1: VRRP',
      'web-dr.keepalived.conf:39-43,52-56,65-69: no virtualhost: keepalived',
      'web-dr.keepalived.conf:41,54,67: status_code 200: ProxyFetch',
      'web-dr.keepalived.conf:46,59,72: delay_before_retry 3 is',
    ]);
  });

  it('ldirectord: negotiate http, request "alive.html", receive "I\'m alive!"; checkinterval 2, checktimeout 10', () => {
    const c = converted('web-dr.ldirectord.cf');
    expect(c.keys).toEqual({ ...common, 'proxyfetch.interval': '2', 'proxyfetch.timeout': '10', 'proxyfetch.fall': '1' });
    expect(c.pool).toEqual(everyServer());
    expect(c.comments.map(head)).toEqual([
      'web-dr.ldirectord.cf:4: autoreload is not',
      'web-dr.ldirectord.cf:5: logfile is not',
      'web-dr.ldirectord.cf:6: quiescent = yes',
      'web-dr.ldirectord.cf:14: fallback is not',
    ]);
  });
});

describe('guide 2: TCP port 22136, weights 1000/500/800, checked by connecting', () => {
  const common = { protocol: 'tcp', ip: GUIDE_VIP, port: '22136', scheduler: 'wrr', 'forward-method': 'dr', config: 'file:///etc/pybal/pools/tcp_22136', 'depool-threshold': '.5', monitors: "[ 'TCPConnect' ]" };
  const weights: [string, number, boolean][] = [
    [RS1, 1000, true],
    [RS2, 500, true],
    [RS3, 800, true],
  ];

  it('keepalived: TCP_CHECK on 22136, connect_timeout 3, retry 1 by default', () => {
    const c = converted('tcp-weights.keepalived.conf');
    expect(c.keys).toEqual({ ...common, 'tcpconnect.interval': '10', 'tcpconnect.timeout': '3', 'tcpconnect.fall': '2' });
    expect(c.pool).toEqual(weights);
    expect(c.comments).toEqual([]);
  });

  it('ldirectord: checktype connect', () => {
    const c = converted('tcp-weights.ldirectord.cf');
    expect(c.keys).toEqual({ ...common, 'tcpconnect.interval': '10', 'tcpconnect.timeout': '3', 'tcpconnect.fall': '1' });
    expect(c.pool).toEqual(weights);
    expect(c.comments.map(head)).toEqual(['tcp-weights.ldirectord.cf:3: autoreload is not']);
  });
});

describe('guide 3: firewall mark 1 with persistence 600', () => {
  const common = {
    protocol: 'tcp',
    ip: GUIDE_VIP,
    port: '80',
    fwmark: '1',
    scheduler: 'wlc',
    'forward-method': 'dr',
    'persistence-timeout': '600',
    config: 'file:///etc/pybal/pools/fwmark_1',
    'depool-threshold': '.5',
    monitors: "[ 'TCPConnect' ]",
    'tcpconnect.interval': '10',
    'tcpconnect.timeout': '3',
  };

  it('keepalived: the address from the VRRP instance, the port from TCP_CHECK', () => {
    const c = converted('fwmark.keepalived.conf');
    expect(c.keys).toEqual({ ...common, 'tcpconnect.fall': '2' });
    expect(c.pool).toEqual(everyServer());
    expect(c.comments.map(head)).toEqual([
      'fwmark.keepalived.conf:5-14: vrrp_instance VI_1: VRRP',
      'fwmark.keepalived.conf:16-44: firewall mark 1',
    ]);
  });

  it('ldirectord: virtual=1 with checkport 80, the address given on the command line', () => {
    const c = converted('fwmark.ldirectord.cf');
    expect(c.keys).toEqual({ ...common, 'tcpconnect.fall': '1' });
    expect(c.pool).toEqual(everyServer());
    expect(c.comments).toEqual([]);
  });
});

describe('guide 4: a UDP service checked by a command', () => {
  const common = {
    protocol: 'udp',
    ip: GUIDE_VIP,
    port: '5001',
    scheduler: 'rr',
    'forward-method': 'dr',
    config: 'file:///etc/pybal/pools/udp_5001',
    'depool-threshold': '.5',
    monitors: "[ 'RunCommand' ]",
    'runcommand.command': '/usr/local/bin/udp-check',
    'runcommand.interval': '5',
    'runcommand.timeout': '3',
    'runcommand.fall': '1',
  };

  it("keepalived: MISC_CHECK's misc_path with each server's own address becomes one command with server.ip", () => {
    const c = converted('udp-command.keepalived.conf');
    expect(c.keys).toEqual({ ...common, 'runcommand.arguments': "[ server.ip, '5001' ]" });
    expect(c.pool).toEqual(everyServer());
    expect(c.comments).toEqual([]);
  });

  it("ldirectord: checktype external with ldirectord's four arguments", () => {
    const c = converted('udp-command.ldirectord.cf');
    expect(c.keys).toEqual({ ...common, 'runcommand.arguments': `[ '${GUIDE_VIP}', '5001', server.ip, '5001' ]` });
    expect(c.pool).toEqual(everyServer());
    expect(c.comments).toEqual([]);
  });
});
