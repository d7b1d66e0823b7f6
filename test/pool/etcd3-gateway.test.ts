import { describe, expect, it } from 'vitest';
import { gatewayErrorMessage, prefixRangeEnd, rangeRequest, readRangePage, readWatchMessage, watchRequest } from '../../src/pool/etcd3-gateway.js';
import { etcd3Target } from '../../src/pool/etcd3-source.js';

const b64 = (text: string): string => Buffer.from(text).toString('base64');
const HEADER = '"header":{"cluster_id":"9532430645048476571","member_id":"15815336321374705523","revision":"5","raft_term":"2"}';
/** Lines as etcd 3.4.23's gateway wrote them (key /p/a/mw1, value {"pooled":"yes","weight":3}). */
const KV_MW1 = '{"key":"L3AvYS9tdzE=","create_revision":"2","mod_revision":"2","version":"1","value":"eyJwb29sZWQiOiJ5ZXMiLCJ3ZWlnaHQiOjN9"}';

describe('etcd v3 gateway requests', () => {
  it.each([
    ['/a/', '/a0'],
    ['/pools/text/', '/pools/text0'],
  ])('ends the range of prefix %j at %j', (prefix, end) => {
    expect(prefixRangeEnd(Buffer.from(prefix)).toString()).toBe(end);
  });

  it('ends a prefix of trailing 0xff bytes after them, and one of only 0xff bytes at the end of the keyspace', () => {
    expect([...prefixRangeEnd(Buffer.from([0x61, 0xff, 0xff]))]).toEqual([0x62]);
    expect([...prefixRangeEnd(Buffer.from([0xff]))]).toEqual([0]);
  });

  it('asks for a page, later pages at the first page`s revision, and a watch from a revision', () => {
    const prefix = Buffer.from('/p/');
    expect(JSON.parse(rangeRequest(prefix, 1000))).toEqual({ key: b64('/p/'), range_end: b64('/p0'), limit: 1000 });
    expect(JSON.parse(rangeRequest(prefix, 2, 'L3AvYgA=', 7))).toEqual({ key: 'L3AvYgA=', range_end: b64('/p0'), limit: 2, revision: '7' });
    expect(JSON.parse(watchRequest(prefix, 8))).toEqual({
      create_request: { key: b64('/p/'), range_end: b64('/p0'), start_revision: '8', progress_notify: true, fragment: true },
    });
  });

  it('maps etcd3:// URLs to an https origin and a prefix that ends in a slash', () => {
    const target = etcd3Target('etcd3://conf1001.eqiad.wmnet/conftool/v1/pools/eqiad/text/nginx');
    expect(target?.origin.href).toBe('https://conf1001.eqiad.wmnet:2379/');
    expect(target?.prefix.toString()).toBe('/conftool/v1/pools/eqiad/text/nginx/');
    expect(etcd3Target('etcd3://127.0.0.1:4001/a/b//')?.prefix.toString()).toBe('/a/b/');
    expect(etcd3Target('etcd3://[::1]:4001/a')?.origin.href).toBe('https://[::1]:4001/');
    expect(etcd3Target('etcd3://h/a%20b')?.prefix.toString()).toBe('/a%20b/');
    for (const bad of ['etcd3://host', 'etcd3://host/', 'etcd://host/a', 'etcd3://ho st/a']) expect(etcd3Target(bad)).toBeUndefined();
  });
});

describe('etcd v3 gateway answers', () => {
  it('reads a range page, and where the next page starts', () => {
    const page = readRangePage(JSON.parse(`{${HEADER},"kvs":[${KV_MW1},{"key":"L3AvYS9tdzI=","create_revision":"3","mod_revision":"3","version":"1"}],"more":true,"count":"3"}`));
    expect(page).toEqual({
      header: { clusterId: '9532430645048476571', revision: 5 },
      kvs: [
        { key: '/p/a/mw1', value: '{"pooled":"yes","weight":3}', modRevision: 2 },
        { key: '/p/a/mw2', value: '', modRevision: 3 },
      ],
      nextKey: b64('/p/a/mw2\0'),
    });
    expect(readRangePage(JSON.parse(`{${HEADER}}`))).toEqual({ header: { clusterId: '9532430645048476571', revision: 5 }, kvs: [], nextKey: undefined });
  });

  it.each([
    ['[]', 'the answer is not a JSON object'],
    ['{}', 'the answer has no header'],
    ['{"header":{"revision":"-1"}}', 'the header has a bad revision "-1"'],
    [`{${HEADER},"kvs":{}}`, 'a list of keys or events is not a list'],
    [`{${HEADER},"kvs":[{"value":"eA=="}]}`, 'a key-value has no key'],
    [`{${HEADER},"kvs":[{"key":"eA==","value":1}]}`, 'key x has a value that is not a string'],
    [`{${HEADER},"kvs":[{"key":"eA==","mod_revision":"x"}]}`, 'key x has a bad mod_revision'],
    [`{${HEADER},"more":true}`, 'the answer says there is more but lists no key'],
  ])('refuses the range answer %s', (text, reason) => {
    expect(readRangePage(JSON.parse(text))).toBe(reason);
  });

  it.each([
    [`{"result":{${HEADER},"created":true}}`, { kind: 'created', header: { clusterId: '9532430645048476571', revision: 5 } }],
    [
      `{"result":{${HEADER},"events":[{"kv":${KV_MW1}},{"type":"DELETE","kv":{"key":"L3AvYS9tdzI=","mod_revision":"5"}}]}}`,
      {
        kind: 'events',
        fragment: false,
        events: [
          { type: 'put', kv: { key: '/p/a/mw1', value: '{"pooled":"yes","weight":3}', modRevision: 2 } },
          { type: 'delete', kv: { key: '/p/a/mw2', value: '', modRevision: 5 } },
        ],
      },
    ],
    [
      `{"result":{${HEADER},"fragment":true,"events":[{"kv":${KV_MW1}}]}}`,
      { kind: 'events', fragment: true, events: [{ type: 'put', kv: { key: '/p/a/mw1', value: '{"pooled":"yes","weight":3}', modRevision: 2 } }] },
    ],
    [`{"result":{${HEADER}}}`, { kind: 'progress', revision: 5 }],
    ['{"result":{"header":{"cluster_id":"1","raft_term":"2"},"canceled":true,"compact_revision":"5"}}', { kind: 'compacted', compactRevision: 5 }],
    [`{"result":{${HEADER},"canceled":true,"cancel_reason":"etcdserver: permission denied"}}`, { kind: 'canceled', reason: 'etcdserver: permission denied' }],
    [`{"result":{${HEADER},"canceled":true}}`, { kind: 'canceled', reason: 'no reason given' }],
    ['{"error":"invalid character \'a\'","message":"invalid character \'a\'","code":2}', { kind: 'error', message: "invalid character 'a'" }],
    ['{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing","http_status":"Service Unavailable"}}', { kind: 'error', message: 'transport is closing' }],
  ])('reads the watch message %s', (text, expected) => {
    expect(readWatchMessage(JSON.parse(text))).toEqual(expected);
  });

  it.each([
    ['null', 'the message is not a JSON object'],
    ['{}', 'the message has neither a result nor an error'],
    ['{"result":[]}', 'the result is not an object'],
    ['{"result":{}}', 'the answer has no header'],
    [`{"result":{${HEADER},"compact_revision":true}}`, 'the result has a bad compact_revision'],
    [`{"result":{${HEADER},"events":[{"type":"PATCH","kv":${KV_MW1}}]}}`, 'an event has an unknown type "PATCH"'],
    [`{"result":{${HEADER},"events":[7]}}`, 'an event is not an object'],
  ])('refuses the watch message %s', (text, reason) => {
    expect(readWatchMessage(JSON.parse(text))).toBe(reason);
  });

  it('finds etcd`s message in an error answer', () => {
    expect(gatewayErrorMessage({ error: 'etcdserver: mvcc: required revision has been compacted', message: 'etcdserver: mvcc: required revision has been compacted', code: 11 })).toBe(
      'etcdserver: mvcc: required revision has been compacted',
    );
    expect(gatewayErrorMessage('404 page not found')).toBeUndefined();
  });
});
