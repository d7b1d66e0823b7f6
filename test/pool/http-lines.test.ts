import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSystemClock } from '../../src/runtime/clock.js';
import { HttpDeadlineError } from '../../src/pool/http-get.js';
import { LineTooLongError, openLineStream, type LineStream } from '../../src/pool/http-lines.js';
import { waitReal } from './helpers.js';

describe('openLineStream', () => {
  let server: Server;
  let url: URL;
  let answer: ServerResponse | undefined;
  let received: string;
  let streams: LineStream[];

  beforeEach(async () => {
    answer = undefined;
    received = '';
    streams = [];
    server = createServer((req, res) => {
      req.setEncoding('utf8');
      req.on('data', (c: string) => (received += c));
      req.on('end', () => {
        if (req.url === '/silent') return;
        res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'application/json' });
        res.flushHeaders();
        answer = res;
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/watch`);
  });

  afterEach(async () => {
    for (const stream of streams) stream.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const open = async (path = '/watch', maxLineLength = 100, signal = new AbortController().signal): Promise<LineStream> => {
    const stream = await openLineStream(new URL(path, url), { clock: createSystemClock(), timeoutMs: 2000, signal, json: '{"create_request":{}}', maxLineLength });
    streams.push(stream);
    return stream;
  };

  it('POSTs the JSON document and hands out lines in batches, however the bytes were split', async () => {
    const stream = await open();
    expect(received).toBe('{"create_request":{}}');
    expect(stream.status).toBe(200);
    answer?.write('{"a":');
    answer?.write('1}\n\n{"b":2}\n{"c"');
    const lines: string[] = [];
    while (lines.length < 2) lines.push(...((await stream.next()) ?? []));
    expect(lines).toEqual(['{"a":1}', '{"b":2}']);
    answer?.write(':3}\n');
    expect(await stream.next()).toEqual(['{"c":3}']);
    answer?.end('{"last":true}');
    expect(await stream.next()).toEqual(['{"last":true}']);
    expect(await stream.next()).toBeUndefined();
  });

  it('gives the lines that came before a break, then the break', async () => {
    const stream = await open();
    answer?.write('{"a":1}\n{"b":');
    const first = await stream.next();
    answer?.destroy();
    expect(first).toEqual(['{"a":1}']);
    await expect(stream.next()).rejects.toThrow();
  });

  it('ends with LineTooLongError on a line longer than allowed, even one that never ends', async () => {
    const stream = await open('/watch', 10);
    answer?.write('{"ok":1}\n');
    answer?.write('x'.repeat(6));
    answer?.write('x'.repeat(6));
    const lines: string[] = [];
    const error = await (async () => {
      try {
        for (let batch = await stream.next(); batch !== undefined; batch = await stream.next()) lines.push(...batch);
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    expect(lines).toEqual(['{"ok":1}']);
    expect(error).toBeInstanceOf(LineTooLongError);
  });

  it('reads the whole answer of an error status as text', async () => {
    const stream = await open('/missing');
    answer?.end('{"error":"nope",\n"code":5}');
    expect(stream.status).toBe(404);
    expect(await stream.text()).toBe('{"error":"nope",\n"code":5}');
  });

  it('hands out everything that arrived at once, pausing the socket meanwhile, and reads on when the reader comes', async () => {
    const stream = await open('/watch', 20);
    for (let i = 0; i < 50; i++) answer?.write(`{"n":${String(i).padStart(5, '0')}}\n`);
    await waitReal(() => answer?.writableLength === 0, 2000);
    const batches: string[][] = [];
    while (batches.flat().length < 50) batches.push((await stream.next()) ?? []);
    expect(batches.flat()).toEqual(Array.from({ length: 50 }, (_, i) => `{"n":${String(i).padStart(5, '0')}}`));
    expect(batches.length).toBeLessThan(50);
  });

  it('stops waiting for the headers at the deadline, or when aborted', async () => {
    const clock = createSystemClock();
    const json = '{}';
    const silent = new URL('/silent', url);
    await expect(openLineStream(silent, { clock, timeoutMs: 50, signal: new AbortController().signal, json, maxLineLength: 10 })).rejects.toBeInstanceOf(HttpDeadlineError);
    const abort = new AbortController();
    const opening = openLineStream(silent, { clock, timeoutMs: 5000, signal: abort.signal, json, maxLineLength: 10 });
    abort.abort(new Error('stopped'));
    await expect(opening).rejects.toThrow();
  });
});
