import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bindLogger, createLogger, createMemoryLogger, formatRecord } from '../../src/runtime/logger.js';
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
