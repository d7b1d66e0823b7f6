import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bindLogger, createLogger, createMemoryLogger, formatRecord, quickLine, type Logger } from '../../src/runtime/logger.js';
import { testDir } from '../support/temp-dir.js';

describe('formatRecord', () => {
  it('writes PyBal-style lines with the bound context as the system', () => {
    const line = formatRecord({
      level: 40,
      time: new Date(2026, 10, 22, 5, 13, 52, 7).getTime(),
      service: 'text_80',
      server: 'mw1001',
      monitor: 'ProxyFetch',
      msg: 'Fetch failed',
      url: 'http://en.wikipedia.org/',
      status: 503,
    });
    expect(line).toBe(
      '2026-11-22 05:13:52.007 [text_80 mw1001 ProxyFetch] WARN: Fetch failed url=http://en.wikipedia.org/ status=503\n',
    );
  });

  it('falls back to [pybal], names fatal CRITICAL and folds multi-line text', () => {
    const line = formatRecord({ level: 60, time: 0, msg: 'first\nsecond', note: 'two words' });
    expect(line).toMatch(/ \[pybal\] CRITICAL: first\n\tsecond note="two words"\n$/);
  });

  it('appends error stacks on continuation lines', () => {
    const line = formatRecord({ level: 50, time: 0, component: 'bgp', msg: 'socket', err: { message: 'boom', stack: 'Error: boom\n    at x' } });
    expect(line).toMatch(/\[bgp\] ERROR: socket: Error: boom\n\t    at x\n$/);
  });
});

describe('createMemoryLogger', () => {
  it('keeps the lines of child loggers', () => {
    const mem = createMemoryLogger();
    mem.logger.child({ component: 'pool' }).info({ file: '/etc/pybal/x' }, 'reloaded');
    expect(mem.lines()).toEqual(['[pool] INFO: reloaded file=/etc/pybal/x']);
  });
});

describe('bindLogger', () => {
  it('writes the records a pino child with the same bindings writes', () => {
    const child = createMemoryLogger('debug');
    const bound = createMemoryLogger('debug');
    const bindings = { server: 'mw1001 "x"', monitor: 'ProxyFetch' };
    const loggers = [child.logger.child({ service: 'text_80' }).child(bindings), bindLogger(bound.logger.child({ service: 'text_80' }), bindings)];
    const error = new Error('boom');
    for (const logger of loggers) {
      logger.debug('good check: fine');
      logger.info('up: fine');
      logger.warn('down: HTTP status 503\nsecond line');
      logger.error({ err: error, attempt: 2 }, 'check loop failed; restarting');
    }
    const strip = (records: Record<string, unknown>[]) => records.map(({ time: _time, ...rest }) => rest);
    expect(strip(bound.records())).toEqual(strip(child.records()));
    expect(bound.lines()).toEqual(child.lines());
    expect(bound.lines()[1]).toBe('[text_80 mw1001 "x" ProxyFetch] INFO: up: fine');
  });

  it("follows its parent's level", () => {
    const log = createMemoryLogger('info');
    const bound = bindLogger(log.logger, { server: 'mw1001' });
    expect(bound.isLevelEnabled('debug')).toBe(false);
    expect(bound.isLevelEnabled('info')).toBe(true);
    bound.debug('not written');
    bound.info('written');
    expect(log.lines()).toEqual(['[mw1001] INFO: written']);
  });
});

describe('createLogger', () => {
  it('writes text to a file and reopens it after a rename (logrotate)', async () => {
    const dir = testDir('pybal-log-');
    const file = join(dir, 'sub', 'pybal.log');
    const handle = await createLogger({ file, format: 'text', level: 'info' });
    handle.logger.child({ service: 'text_80' }).info('before rotation');
    handle.logger.debug('hidden at info');
    renameSync(file, `${file}.1`);
    await handle.reopen();
    handle.logger.info('after rotation');
    await handle.close();
    expect(readFileSync(`${file}.1`, 'utf8')).toMatch(/\[text_80\] INFO: before rotation\n$/);
    expect(readFileSync(file, 'utf8')).toMatch(/^\S+ \S+ \[pybal\] INFO: after rotation\n$/);
  });

  it('writes pino JSON when asked', async () => {
    const dir = testDir('pybal-log-');
    const file = join(dir, 'pybal.json.log');
    const handle = await createLogger({ file, format: 'json', level: 'debug' });
    handle.logger.debug({ component: 'ipvs' }, 'dump');
    await handle.close();
    const record = JSON.parse(readFileSync(file, 'utf8').trim()) as Record<string, unknown>;
    expect(record).toMatchObject({ level: 20, component: 'ipvs', msg: 'dump' });
  });
});

describe('quickLine (the text format without the JSON)', () => {
  /** Without the timestamp, which both take from the cached wall clock at the call. */
  const untimed = (line: string): string => line.replace(/^\S+ \S+ /, '');
  /** Each call as quickLine writes it (undefined: not taken) and as pino's record of it is formatted. */
  function both(call: (logger: Logger) => void): { quick: (string | undefined)[]; record: string[] } {
    const mem = createMemoryLogger('debug');
    const quick: (string | undefined)[] = [];
    // pino's records of the calls, and quickLine's lines of the same calls on the same loggers.
    const logger = mem.logger.child({ component: 'fast' });
    const spy = (target: Logger): Logger =>
      new Proxy(target, {
        get(t, key, receiver) {
          const value = Reflect.get(t, key, receiver) as unknown;
          if (key === 'child') return (...a: Parameters<Logger['child']>) => spy(t.child(...a) as unknown as Logger);
          const level = ({ debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as Record<string | symbol, number>)[key];
          if (level === undefined || typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            const line = quickLine(t, args, level);
            quick.push(line === undefined ? undefined : untimed(line));
            (value as (...a: unknown[]) => void).apply(t, args);
          };
        },
      });
    call(spy(logger));
    return { quick, record: mem.records().map((r) => untimed(formatRecord(r))) };
  }

  it('writes the line pino\'s record of the call makes, for the calls it takes', () => {
    const { quick, record } = both((log) => {
      const service = log.child({ service: 'text_80', note: 'two words' });
      service.info('Pooling server mw1001');
      service.warn('down: HTTP status 503\r\nsecond line');
      service.info({ server: 'mw1001', monitor: 'IdleConnection' }, 'up: Connection established');
      service.info({ weight: 7, enabled: false, why: null, url: 'http://x/ "q"' }, 'Merged');
      service.debug({ count: 3 });
      service.child({ server: 'mw1002' }).child({ monitor: 'ProxyFetch', note: 'bound again' }).error('check failed');
      log.fatal({ service: 12 }, 'numbered');
      bindLogger(service, { server: 'mw1003', monitor: 'RunCommand' }).info('up: ran');
      bindLogger(service, { server: 'mw1003' }).warn({ attempt: 2 }, 'retrying');
    });
    expect(quick.every((line) => line !== undefined)).toBe(true);
    expect(quick).toEqual(record);
    expect(quick[0]).toBe('[text_80 fast] INFO: Pooling server mw1001 note="two words"\n');
    expect(quick[1]).toBe('[text_80 fast] WARN: down: HTTP status 503\n\tsecond line note="two words"\n');
    expect(quick[2]).toBe('[text_80 mw1001 IdleConnection fast] INFO: up: Connection established note="two words"\n');
  });

  it('leaves to pino the calls whose line it could write otherwise, and pino writes them as before', () => {
    const error = new Error('boom', { cause: new Error('under') });
    const { quick, record } = both((log) => {
      const service = log.child({ service: 'text_80' });
      service.error({ err: error }, 'failed');
      service.error(error);
      service.info({ peer: { asn: 64512 } }, 'an object');
      service.info({ list: [1, 2] }, 'an array');
      service.info({ rate: Number.NaN }, 'not a number');
      service.info({ service: 'other' }, 'a key also bound');
      service.info({ 404: 3 }, 'an index key');
      service.info({ msg: 'inside' });
      service.info('a %s argument', 'format');
    });
    expect(quick).toEqual(record.map(() => undefined));
    expect(record[0]).toMatch(/^\[text_80 fast\] ERROR: failed: Error: boom\n\t {4}at /);
    expect(record[5]).toBe('[other fast] INFO: a key also bound\n');
  });

  it('writes both kinds to the log file in the order of the calls, as the JSON format\'s records read', async () => {
    const dir = testDir('pybal-log-');
    const text = await createLogger({ file: join(dir, 'pybal.log'), format: 'text', level: 'debug' });
    const json = await createLogger({ file: join(dir, 'pybal.json.log'), format: 'json', level: 'debug' });
    for (const { logger } of [text, json]) {
      const service = logger.child({ service: 'text_80' });
      service.info('Pooling server mw1001');
      service.info({ peer: { asn: 64512 } }, 'long way');
      bindLogger(service, { server: 'mw1001', monitor: 'IdleConnection' }).info('up: Connection established');
      service.error({ err: new Error('boom') }, 'long way again');
      service.debug('last');
    }
    await text.close();
    await json.close();
    const lines = readFileSync(join(dir, 'pybal.log'), 'utf8').split(/\n(?!\t)/).filter((l) => l !== '');
    const records = readFileSync(join(dir, 'pybal.json.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => untimed(l + '\n'))).toEqual(records.map((r) => untimed(formatRecord(r))));
    const said = ['] INFO: Pooling server mw1001', '] INFO: long way peer={"asn":64512}', ' IdleConnection] INFO: up: Connection established', '] ERROR: long way again: Error: boom', '] DEBUG: last'];
    expect(lines).toHaveLength(said.length);
    lines.forEach((line, i) => expect(line).toContain(said[i]));
  });
});
