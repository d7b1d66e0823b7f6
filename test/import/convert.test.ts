import { describe, expect, it } from 'vitest';

import { readIni, resolveSection } from '../../src/config/ini-reader.js';
import { parsePythonLiteral } from '../../src/config/python-literal.js';
import { convertToPybal, iniValue } from '../../src/import/convert.js';
import type { LvsCheck, LvsImport, LvsService } from '../../src/import/model.js';
import { parseLegacyPool } from '../../src/pool/legacy-format.js';

const at = (line: number): { file: string; line: number } => ({ file: 'src.conf', line });

function service(over: Partial<LvsService> = {}): LvsService {
  return {
    at: at(1),
    label: 'virtual_server 192.0.2.1 80',
    ip: '192.0.2.1',
    family: 4,
    port: 80,
    protocol: 'tcp',
    scheduler: 'wlc',
    schedulerFlags: [],
    ops: false,
    forwarding: 'dr',
    servers: [{ at: at(2), host: '192.0.2.7', port: 80, weight: 1, enabled: true }],
    checks: [],
    notes: [],
    ...over,
  };
}

function imported(services: LvsService[], notes: LvsImport['notes'] = []): LvsImport {
  return { format: 'keepalived', file: 'src.conf', services, notes, errors: [] };
}

/** Every section's values as pybal's INI reader resolves them (interpolation done). */
function values(conf: string): Record<string, Record<string, string>> {
  const { document, errors } = readIni(conf, 'pybal.conf');
  expect(errors).toEqual([]);
  return Object.fromEntries(
    document.sections.map((s) => {
      const r = resolveSection(document, s);
      expect(r.errors).toEqual([]);
      return [s.name, Object.fromEntries([...r.entries.values()].map((e) => [e.key, e.value]))];
    }),
  );
}

const http = (over: Partial<Extract<LvsCheck, { kind: 'http' }>> = {}): LvsCheck => ({ kind: 'http', at: at(3), intervalSec: 6, timeoutSec: 3, fall: 2, urls: ['http://192.0.2.1/'], ...over });

describe('convertToPybal', () => {
  it('names sections after the port (or the mark, or snmp_name), keeping names unique', () => {
    const c = convertToPybal(
      imported([
        service(),
        service({ ip: '192.0.2.2' }),
        service({ ip: '192.0.2.3' }),
        service({ port: 53, protocol: 'udp' }),
        service({ port: 53 }),
        service({ port: 9999 }),
        service({ fwmark: 7 }),
        service({ nameHint: 'web front/end' }),
      ]),
    );
    expect(c.services.map((s) => s.name)).toEqual(['http_80', 'http_80_tcp', 'http_80_2', 'dns_53', 'dns_53_tcp', 'tcp_9999', 'fwmark_7', 'web_front_end']);
    expect(c.pools.map((p) => p.service)).toEqual(c.services.map((s) => s.name));
  });

  it('puts the pool directory in config, and writes pool lines PyBal reads', () => {
    const c = convertToPybal(
      imported([
        service({
          servers: [
            { at: at(2), host: '192.0.2.7', port: 80, weight: 1000, enabled: true },
            { at: at(3), host: "odd'host", port: 80, weight: 0, enabled: false },
            { at: at(4), host: '192.0.2.7', port: 8080, weight: 5, enabled: true },
          ],
        }),
      ]),
      { poolDir: '/srv/pools/' },
    );
    expect(values(c.conf).http_80?.config).toBe('file:///srv/pools/http_80');
    const pool = parseLegacyPool(c.pools[0]?.text ?? '', 'http_80');
    expect(pool.problems).toEqual([]);
    expect([...pool.pool.values()]).toEqual([
      { host: '192.0.2.7', weight: 1000, enabled: true },
      { host: "odd'host", weight: 0, enabled: false },
    ]);
    expect(c.conf).toContain('# src.conf:4: 192.0.2.7 is listed again (first at src.conf:2); a pool has one entry per host: the first one is kept');
    expect(c.services[0]).toMatchObject({ servers: 2, comments: 2 }); // and: no health check
  });

  it('writes every carried-over key', () => {
    const c = convertToPybal(
      imported([
        service({
          protocol: 'udp',
          scheduler: 'mh',
          schedulerFlags: ['mh-port', 'mh-fallback'],
          ops: true,
          forwarding: 'tunnel',
          tunnel: { type: 'gue', port: 6080, checksum: 'remcsum' },
          realPort: 8080,
          persistence: { timeoutSec: 300, netmask: '255.255.255.0', engine: 'sip' },
          upperThreshold: 100,
          lowerThreshold: 10,
          fwmark: 3,
        }),
      ]),
    );
    expect(values(c.conf).fwmark_3).toEqual({
      protocol: 'udp',
      ip: '192.0.2.1',
      port: '80',
      fwmark: '3',
      scheduler: 'mh',
      'scheduler-flags': "[ 'mh-port', 'mh-fallback' ]",
      ops: 'true',
      'forward-method': 'tunnel',
      'tunnel-type': 'gue',
      'tunnel-port': '6080',
      'tunnel-checksum': 'remcsum',
      'real-port': '8080',
      'persistence-timeout': '300',
      'persistence-netmask': '255.255.255.0',
      'persistence-engine': 'sip',
      'upper-threshold': '100',
      'lower-threshold': '10',
      config: 'file:///etc/pybal/pools/fwmark_3',
      'depool-threshold': '.5',
      monitors: '[ ]',
    });
  });

  it('writes each monitor with its options; a second check of one kind is left out with a note', () => {
    const checks: LvsCheck[] = [
      http({ urls: ['http://h/a', 'https://h/b'], redirectStatus: 302, expectBodyRegex: '^OK' }),
      { kind: 'tcp', at: at(4), intervalSec: 1.5, timeoutSec: 0.25, fall: 3 },
      { kind: 'command', at: at(5), intervalSec: 5, timeoutSec: 3, fall: 1, command: '/bin/check', arguments: [{ literal: "it's" }, { server: 'ip' }] },
      { kind: 'ping', at: at(6), intervalSec: 1, timeoutSec: 1, fall: 1, count: 3 },
      { kind: 'udp', at: at(7), intervalSec: 10, timeoutSec: 5, fall: 2 },
      { kind: 'dns', at: at(8), intervalSec: 10, timeoutSec: 5, fall: 4, hostnames: ['example.org'] },
      { kind: 'tcp', at: at(9), intervalSec: 1, timeoutSec: 1, fall: 1 },
    ];
    const c = convertToPybal(imported([service({ checks })]));
    const v = values(c.conf).http_80 ?? {};
    expect(Object.fromEntries(Object.entries(v).filter(([k]) => k.includes('.') || k === 'monitors'))).toEqual({
      monitors: "[ 'ProxyFetch', 'TCPConnect', 'RunCommand', 'Ping', 'UDP', 'DNSQuery' ]",
      'proxyfetch.url': "[ 'http://h/a', 'https://h/b' ]",
      'proxyfetch.check_all': 'yes',
      'proxyfetch.http_status': '302',
      'proxyfetch.expect-body-regex': '^OK',
      'proxyfetch.interval': '6',
      'proxyfetch.timeout': '3',
      'proxyfetch.fall': '2',
      'tcpconnect.interval': '1.5',
      'tcpconnect.timeout': '0.25',
      'tcpconnect.fall': '3',
      'runcommand.command': '/bin/check',
      'runcommand.arguments': "[ 'it\\'s', server.ip ]",
      'runcommand.interval': '5',
      'runcommand.timeout': '3',
      'runcommand.fall': '1',
      'ping.count': '3',
      'ping.interval': '1',
      'ping.timeout': '1',
      'ping.fall': '1',
      'udp.interval': '10',
      'udp.fall': '2',
      'dnsquery.hostnames': "[ 'example.org' ]",
      'dnsquery.interval': '10',
      'dnsquery.timeout': '5',
      'dnsquery.fall': '4',
    });
    expect(c.conf).toContain('# src.conf:9: a second TCPConnect check is not carried over: a pybal service runs each monitor once');
  });

  it('keeps %, ; and end spaces through ConfigParser', () => {
    const c = convertToPybal(
      imported([
        service({ checks: [http({ urls: ['http://h/?a=1;b=100%'], expectBody: ' 100% ; done ' })] }),
        service({ ip: '192.0.2.2', checks: [http({ expectBody: 'x;y 50%' })] }),
        service({ ip: '192.0.2.3', checks: [http({ expectBodyRegex: 'a ;b' })] }),
      ]),
    );
    const v = values(c.conf);
    expect(parsePythonLiteral(v.http_80?.['proxyfetch.url'] ?? '')).toEqual({ type: 'list', items: [{ type: 'str', value: 'http://h/?a=1;b=100%' }] });
    const regex = new RegExp(v.http_80?.['proxyfetch.expect-body-regex'] ?? 'x');
    expect(regex.test('got 100% ; done here')).toBe(true);
    expect(regex.test('100% ; done')).toBe(false);
    expect(v.http_80_tcp?.['proxyfetch.expect-body']).toBe('x;y 50%');
    expect(new RegExp(v.http_80_2?.['proxyfetch.expect-body-regex'] ?? 'x').source).toBe('a \\x3bb');
  });

  it('iniValue refuses what ConfigParser would change', () => {
    expect(iniValue('a%b')).toBe('a%%b');
    expect(iniValue(' a')).toBeUndefined();
    expect(iniValue('a ;b')).toBeUndefined();
    expect(iniValue('a\nb')).toBeUndefined();
    expect(iniValue('a;b')).toBe('a;b');
  });

  it('leaves an unknown firewall-mark address and port for the operator, saying so', () => {
    const c = convertToPybal(imported([service({ ip: undefined, port: undefined, fwmark: 9 })]));
    expect(c.conf).toContain('# ip = (the VIP announced for firewall mark 9: fill it in, or import again with --fwmark-ip 9=ADDRESS)');
    expect(c.conf).toContain('# port = (the port health checks connect to: fill it in)');
    expect(c.services[0]?.missing).toEqual(['ip', 'port']);
  });

  it('writes global notes before [global] and service notes in their section, grouped by message with every line', () => {
    const note = (line: number, message: string): { at: { file: string; line: number }; message: string } => ({ at: at(line), message });
    const c = convertToPybal(imported([service({ notes: [note(30, 'b'), note(10, 'a'), note(20, 'b')] })], [note(1, 'g')]));
    const lines = c.conf.split('\n');
    expect(lines.indexOf('# src.conf:1: g')).toBeLessThan(lines.indexOf('[global]'));
    expect(lines.filter((l) => /^# src\.conf:[\d,]+: [ab]$/.test(l))).toEqual(['# src.conf:10: a', '# src.conf:20,30: b']);
    expect(lines.indexOf('# src.conf:10: a')).toBeGreaterThan(lines.indexOf('[http_80]'));
    expect(c.comments).toBe(4); // and: no health check
  });

  it('notes a service whose servers end up with no monitor', () => {
    expect(convertToPybal(imported([service()])).conf).toContain(
      '# src.conf:1: no health check carried over: every server stays pooled whatever its state (pybal warns about a service without monitors)',
    );
  });
});
