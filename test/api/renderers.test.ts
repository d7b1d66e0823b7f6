import { describe, expect, it } from 'vitest';
import { computeAlerts, renderAlerts } from '../../src/api/alerts.js';
import { renderPoolsPath, serverTextStatus } from '../../src/api/pools.js';
import { wantsJson } from '../../src/api/response.js';
import { monitor, server, service } from './fixtures.js';

const text = service('text', [
  server('mw1001'),
  server('mw1002', { weight: 5, up: false, pooled: false, monitors: [monitor({ up: false, reason: 'timeout' })] }),
]);
const dns = service('dns', [server('dns1'), server('dns2'), server('dns3')]);

describe('/pools renderers (PyBal §8.1 shapes)', () => {
  it.each([
    [[], true, '["text","dns"]'],
    [[], false, 'text\ndns\n'],
    [['text'], true, '{"mw1001":{"pooled":true,"weight":10,"up":true,"enabled":true},"mw1002":{"pooled":false,"weight":5,"up":false,"enabled":true}}'],
    [['text'], false, 'mw1001:\tenabled/up/pooled\nmw1002:\tenabled/down/not pooled\n'],
    [['text', 'mw1002'], true, '{"pooled":false,"weight":5,"up":false,"enabled":true}'],
    [['text', 'mw1001'], false, 'enabled/up/pooled\n'],
  ] as const)('%j json=%s', (segments, json, body) => {
    const response = renderPoolsPath([text, dns], segments, json);
    expect(response).toEqual({ status: 200, contentType: json ? 'application/json' : 'text/plain', body });
  });

  it.each([[['nope']], [['text', 'nope']], [['text', 'mw1001', 'extra']]] as const)('404 for %j', (segments) => {
    expect(renderPoolsPath([text, dns], segments, true)).toEqual({
      status: 404,
      contentType: 'application/json',
      body: '{"error":"The desired url was not found"}',
    });
    expect(renderPoolsPath([text, dns], segments, false).body).toBe('The desired url was not found');
  });

  it.each([
    [server('a'), 'enabled/up/pooled'],
    [server('a', { enabled: false, pooled: false }), 'disabled/up/not pooled'],
    // Not up, but one of its monitors is: PyBal's calcPartialStatus.
    [server('a', { up: false, monitors: [monitor({ up: false }), monitor({ kind: 'IdleConnection', up: true })] }), 'enabled/partially up/pooled'],
    [server('a', { up: false, monitors: [monitor({ up: false }), monitor({ kind: 'IdleConnection', up: undefined })] }), 'enabled/down/pooled'],
    [server('a', { up: false, monitors: [] }), 'enabled/partially up/pooled'],
  ])('text status of %j is %s', (value, expected) => {
    expect(serverTextStatus(value)).toBe(expected);
  });
});

describe('/alerts', () => {
  it.each([
    [[text, dns], 'ok', 'All pools are healthy'],
    [[], 'ok', 'All pools are healthy'],
    // One server: never "too small" (T177815).
    [[service('one', [server('a')], { depoolThreshold: 1 })], 'ok', 'All pools are healthy'],
    // 2 servers at .5: 2 < 2 is false, one can be depooled.
    [[service('two', [server('a'), server('b')])], 'ok', 'All pools are healthy'],
    // 2 servers at .6: 2 < 2.2, none can be depooled.
    [
      [service('two', [server('a'), server('b')], { depoolThreshold: 0.6 }), service('three', [server('a'), server('b'), server('c')], { depoolThreshold: 0.7 })],
      'warning',
      'Pool two is too small to allow depooling. Pool three is too small to allow depooling. ',
    ],
    [
      [
        service('text', [server('mw1', { up: false, pooledDown: true }), server('mw2'), server('mw3', { up: false, pooledDown: true })]),
        service('two', [server('a'), server('b')], { depoolThreshold: 0.6 }),
        service('dns', [server('dns1', { up: false, pooledDown: true }), server('dns2')]),
      ],
      'critical',
      'text: Servers mw1, mw3 are marked down but pooled; dns: Servers dns1 are marked down but pooled',
    ],
  ] as const)('%#: %s - %s', (services, status, msg) => {
    expect(computeAlerts(services)).toEqual({ status, msg });
    expect(renderAlerts(services, false)).toEqual({ status: 200, contentType: 'text/plain', body: `${status.toUpperCase()} - ${msg}` });
    expect(JSON.parse(renderAlerts(services, true).body as string)).toEqual({ status, msg });
  });

  it.each([
    [
      [service('text', [server('a'), server('b')], { poolError: 'file:///p/text: lists no server; refusing to empty the pool' })],
      'warning',
      'Pool text keeps its last good pool: file:///p/text: lists no server; refusing to empty the pool. ',
    ],
    [
      [
        service('two', [server('a'), server('b')], { depoolThreshold: 0.6, poolError: '/p/two: no such file' }),
        service('dns', [server('d')], { poolError: 'etcd://e/dns: HTTP 503' }),
      ],
      'warning',
      'Pool two is too small to allow depooling. Pool two keeps its last good pool: /p/two: no such file. ' +
        'Pool dns keeps its last good pool: etcd://e/dns: HTTP 503. ',
    ],
    // Critical still wins.
    [
      [
        service('text', [server('a', { up: false, pooledDown: true }), server('b')]),
        service('dns', [server('d')], { poolError: '/p/dns: 1 line(s) skipped (first: /p/dns:2: bad)' }),
      ],
      'critical',
      'text: Servers a are marked down but pooled',
    ],
  ] as const)('a pool source error, case %#', (services, status, msg) => {
    expect(computeAlerts(services)).toEqual({ status, msg });
    expect(renderAlerts(services, false).body).toBe(`${status.toUpperCase()} - ${msg}`);
    expect(JSON.parse(renderAlerts(services, true).body as string)).toEqual({ status, msg });
  });

  it('warns of servers failing a data-path check, with each reason; a plain monitor down says nothing more', () => {
    const why = 'to the VIP 192.0.2.1:80 by direct routing (firewall mark 0x70b00001): TCP connect to 192.0.2.1:80 timed out after 1 s; it answers at its own address 192.0.2.12:80 but not on the VIP (does it hold 192.0.2.1 on lo?)';
    const dataPathDown = { ...monitor({ kind: 'TCPConnect', up: false, reason: why }), dataPath: true as const };
    const web = service('web', [server('a'), server('b', { up: false, pooled: false, monitors: [dataPathDown] }), server('c', { up: false, pooled: false, monitors: [monitor({ up: false, reason: 'HTTP 503' })] })]);
    expect(computeAlerts([web])).toEqual({ status: 'warning', msg: `Pool web has servers failing their data-path checks: b (TCPConnect: ${why}). ` });
    const upAgain = service('web', [server('a'), server('b', { monitors: [{ ...dataPathDown, up: true }] })]);
    expect(computeAlerts([upAgain]).status).toBe('ok');
  });

  it('a pool with pooled-down servers is critical, not also too small', () => {
    const small = service('small', [server('a', { pooledDown: true, up: false }), server('b')], { depoolThreshold: 1 });
    expect(renderAlerts([small], false).body).toBe('CRITICAL - small: Servers a are marked down but pooled');
  });
});

describe('Accept negotiation', () => {
  it.each([
    ['application/json', true],
    ['Application/JSON', true],
    ['text/plain, application/json', true],
    ['application/json, text/plain', true],
    ['application/json; charset=utf-8', true],
    ['text/html;q=0.9, application/json;q=0.8', true],
    ['application/json;q=0', false],
    ['application/jsonx', false],
    ['application/*', false],
    ['*/*', false],
    ['text/plain', false],
    ['', false],
    [undefined, false],
  ])('%j -> json %s', (accept, json) => {
    expect(wantsJson(accept)).toBe(json);
  });
});
