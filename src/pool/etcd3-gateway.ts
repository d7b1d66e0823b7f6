/**
 * etcd's v3 API as its JSON gateway speaks it (the gRPC gateway every etcd
 * 3.x serves on its client URL): the requests the etcd3 pool source sends and
 * checks of the answers it reads. Keys and values travel in base64, 64-bit
 * numbers as decimal strings, and fields at their default (a PUT event's
 * type, `more: false`, an empty value) are left out. Pure.
 *
 * Shapes, as etcd 3.4 sends them:
 *   POST /v3/kv/range  -> {"header": {"cluster_id": "..", "revision": "7", ..},
 *                          "kvs": [{"key": "<b64>", "value": "<b64>", "mod_revision": "5", ..}],
 *                          "more": true, "count": "2"}
 *   POST /v3/watch     -> one JSON object a line, each {"result": WatchResponse}
 *                         or, when the gateway fails, {"error": ..}:
 *     {"header": {..}, "created": true}                      the watch is set up
 *     {"header": {..}, "events": [{"type": "DELETE", "kv": {..}}, {"kv": {..}}]}
 *     {"header": {..}, "fragment": true, "events": [..]}    more of this revision follows
 *     {"header": {"revision": "9", ..}}                       progress: nothing else up to 9
 *     {"header": {..}, "canceled": true, "compact_revision": "5"}
 */

/** The first key after every key that starts with `prefix` (etcd's range_end for a prefix). */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  // Only 0xff bytes: no key is past them, so the range runs to the end ("\0" says so).
  return Buffer.from([0]);
}

export interface Etcd3Header {
  readonly clusterId: string;
  /** The store's revision when the answer was made (0 when absent). */
  readonly revision: number;
}

export interface Etcd3Kv {
  /** The key as UTF-8 text (an invalid sequence becomes U+FFFD, which a host name may not hold). */
  readonly key: string;
  /** The value as UTF-8 text; "" when etcd left it out. */
  readonly value: string;
  readonly modRevision: number;
}

export interface Etcd3RangePage {
  readonly header: Etcd3Header;
  readonly kvs: readonly Etcd3Kv[];
  /** Where the next page starts (base64) when etcd said there is more. */
  readonly nextKey: string | undefined;
}

export interface Etcd3Event {
  readonly type: 'put' | 'delete';
  readonly kv: Etcd3Kv;
}

export type Etcd3WatchMessage =
  | { readonly kind: 'created'; readonly header: Etcd3Header }
  /** fragment: more events of the same revision follow in the next message. */
  | { readonly kind: 'events'; readonly events: readonly Etcd3Event[]; readonly fragment: boolean }
  | { readonly kind: 'progress'; readonly revision: number }
  /** The start revision is older than etcd's history: a full read is needed. */
  | { readonly kind: 'compacted'; readonly compactRevision: number }
  | { readonly kind: 'canceled'; readonly reason: string }
  | { readonly kind: 'error'; readonly message: string };

const b64 = (bytes: Buffer): string => bytes.toString('base64');

/** One page of the keys under `prefix`: from `from` (base64; the prefix itself at first), at `revision` once the first page fixed it. */
export function rangeRequest(prefix: Buffer, limit: number, from?: string, revision?: number): string {
  const request: Record<string, unknown> = { key: from ?? b64(prefix), range_end: b64(prefixRangeEnd(prefix)), limit };
  if (revision !== undefined) request.revision = String(revision);
  return JSON.stringify(request);
}

/** A watch of every key under `prefix` from `startRevision`, with progress notifications and large revisions in fragments. */
export function watchRequest(prefix: Buffer, startRevision: number): string {
  return JSON.stringify({
    create_request: {
      key: b64(prefix),
      range_end: b64(prefixRangeEnd(prefix)),
      start_revision: String(startRevision),
      progress_notify: true,
      fragment: true,
    },
  });
}

type Fields = Readonly<Record<string, unknown>>;

function isObject(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An int64 as the gateway writes it (a decimal string; a number is taken too); absent is 0. */
function readInt(value: unknown): number | undefined {
  if (value === undefined) return 0;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function readText(value: unknown): string | undefined {
  if (value === undefined) return '';
  return typeof value === 'string' ? Buffer.from(value, 'base64').toString('utf8') : undefined;
}

function readHeader(value: unknown): Etcd3Header | string {
  if (!isObject(value)) return 'the answer has no header';
  const revision = readInt(value.revision);
  if (revision === undefined) return `the header has a bad revision ${JSON.stringify(value.revision)}`;
  const clusterId = value.cluster_id;
  return { clusterId: typeof clusterId === 'string' ? clusterId : String(clusterId ?? ''), revision };
}

function readKv(value: unknown): Etcd3Kv | string {
  if (!isObject(value) || typeof value.key !== 'string') return 'a key-value has no key';
  const key = readText(value.key) as string;
  const text = readText(value.value);
  if (text === undefined) return `key ${key} has a value that is not a string`;
  const modRevision = readInt(value.mod_revision);
  if (modRevision === undefined) return `key ${key} has a bad mod_revision`;
  return { key, value: text, modRevision };
}

function readList<T>(value: unknown, read: (item: unknown) => T | string): T[] | string {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return 'a list of keys or events is not a list';
  const out: T[] = [];
  for (const item of value) {
    const checked = read(item);
    if (typeof checked === 'string') return checked;
    out.push(checked);
  }
  return out;
}

/** etcd's own message in an error answer (`{"error": "..", "message": "..", "code": 11}`), if any. */
export function gatewayErrorMessage(body: unknown): string | undefined {
  if (!isObject(body)) return undefined;
  const inner = isObject(body.error) ? body.error : body;
  const message = inner.message ?? inner.error;
  return typeof message === 'string' ? message : undefined;
}

/** Checks one answer of POST /v3/kv/range; returns it typed, or a reason. */
export function readRangePage(body: unknown): Etcd3RangePage | string {
  if (!isObject(body)) return 'the answer is not a JSON object';
  const header = readHeader(body.header);
  if (typeof header === 'string') return header;
  const kvs = readList(body.kvs, readKv);
  if (typeof kvs === 'string') return kvs;
  const last = (body.kvs as Fields[] | undefined)?.at(-1)?.key as string | undefined;
  if (body.more === true && last === undefined) return 'the answer says there is more but lists no key';
  // The next page starts just after the last key: the same bytes and a zero byte.
  const nextKey = body.more === true ? Buffer.concat([Buffer.from(last as string, 'base64'), Buffer.from([0])]).toString('base64') : undefined;
  return { header, kvs, nextKey };
}

function readEvent(value: unknown): Etcd3Event | string {
  if (!isObject(value)) return 'an event is not an object';
  const type = value.type ?? 'PUT';
  if (type !== 'PUT' && type !== 'DELETE') return `an event has an unknown type ${JSON.stringify(type)}`;
  const kv = readKv(value.kv);
  if (typeof kv === 'string') return kv;
  return { type: type === 'PUT' ? 'put' : 'delete', kv };
}

/** Checks one line of POST /v3/watch (parsed JSON); returns it typed, or a reason. */
export function readWatchMessage(body: unknown): Etcd3WatchMessage | string {
  if (!isObject(body)) return 'the message is not a JSON object';
  if (body.result === undefined) {
    const message = gatewayErrorMessage(body);
    return message === undefined ? 'the message has neither a result nor an error' : { kind: 'error', message };
  }
  const result = body.result;
  if (!isObject(result)) return 'the result is not an object';
  const header = readHeader(result.header);
  if (typeof header === 'string') return header;
  const compactRevision = readInt(result.compact_revision);
  if (compactRevision === undefined) return 'the result has a bad compact_revision';
  if (compactRevision > 0) return { kind: 'compacted', compactRevision };
  if (result.canceled === true) {
    const reason = typeof result.cancel_reason === 'string' && result.cancel_reason !== '' ? result.cancel_reason : 'no reason given';
    return { kind: 'canceled', reason };
  }
  if (result.created === true) return { kind: 'created', header };
  const events = readList(result.events, readEvent);
  if (typeof events === 'string') return events;
  if (events.length === 0) return { kind: 'progress', revision: header.revision };
  return { kind: 'events', events, fragment: result.fragment === true };
}
