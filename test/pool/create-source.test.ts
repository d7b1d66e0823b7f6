import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/runtime/clock.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import { createPoolSource, poolUrlProblem, POOL_URL_SCHEMES } from '../../src/pool/create-source.js';
import { EtcdPoolSource } from '../../src/pool/etcd-source.js';
import { Etcd3PoolSource } from '../../src/pool/etcd3-source.js';
import { FilePoolSource } from '../../src/pool/file-source.js';
import { HttpPoolSource } from '../../src/pool/http-source.js';
import { parsePool, poolFormatForUrl } from '../../src/pool/pool-format.js';
import type { PoolEvent } from '../../src/pool/types.js';
import { advanceUntil, rows, tempDir } from './helpers.js';

describe('createPoolSource', () => {
  const options = { clock: new ManualClock(), logger: createMemoryLogger().logger };

  it('picks the source by scheme', () => {
    expect(createPoolSource('file:///etc/pybal/pools/text', options)).toBeInstanceOf(FilePoolSource);
    expect(createPoolSource('http://config-master/pybal/eqiad/text', options)).toBeInstanceOf(HttpPoolSource);
    expect(createPoolSource('https://config-master/pybal/eqiad/text.json', options)).toBeInstanceOf(HttpPoolSource);
    expect(createPoolSource('etcd://conf1001:2379/conftool/v1/pools/eqiad/text/nginx', options)).toBeInstanceOf(EtcdPoolSource);
    expect(createPoolSource('etcd3://conf1001:2379/conftool/v1/pools/eqiad/text/nginx', options)).toBeInstanceOf(Etcd3PoolSource);
    expect(POOL_URL_SCHEMES).toEqual(['file', 'http', 'https', 'etcd', 'etcd3']);
  });

  it.each(['k8s://token@host', 'ftp://host/pool', '/etc/pybal/pools/text', 'constructor://x', ''])(
    'turns the unusable URL %j into an error event, not a crash',
    (url) => {
      const problem = `no pool source for ${JSON.stringify(url)} (known schemes: file://, http://, https://, etcd://, etcd3://)`;
      expect(poolUrlProblem(url)).toBe(problem);
      const memory = createMemoryLogger();
      const source = createPoolSource(url, { ...options, logger: memory.logger });
      const events: PoolEvent[] = [];
      source.start((e) => events.push(e));
      expect(events).toEqual([{ type: 'error', message: problem }]);
      expect(source.status()).toEqual({ url, pool: undefined, error: problem });
      expect(memory.lines()).toEqual([`[pybal] ERROR: ${problem}`]);
    },
  );

  it('chooses JSON by a .json suffix, as PyBal', () => {
    expect(poolFormatForUrl('file:///etc/pybal/pools/text.json')).toBe('json');
    expect(poolFormatForUrl('http://h/pools/text.json')).toBe('json');
    expect(poolFormatForUrl('file:///etc/pybal/pools/text')).toBe('legacy');
    expect(poolFormatForUrl('http://h/pools/text.json?x=1')).toBe('legacy');
  });

  it('reads a file given by a file:// URL end to end', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const clock = new ManualClock();
      const path = join(dir, 'pool.json');
      await writeFile(path, '{"mw1": {"enabled": true, "weight": 3}}');
      const source = createPoolSource(`file://${path}`, { clock, logger: createMemoryLogger().logger });
      const events: PoolEvent[] = [];
      source.start((e) => events.push(e));
      await advanceUntil(clock, () => events.length === 1);
      expect(events[0]?.type === 'pool' ? rows(events[0].pool) : events).toEqual([['mw1', 3, true]]);
      await source.stop();
    } finally {
      await cleanup();
    }
  });
});

describe('the example pool files', () => {
  it('parse to the same pool without problems in both formats', async () => {
    const legacy = parsePool(await readFile('etc/pools/text-servers', 'utf8'), 'text-servers', 'legacy');
    const json = parsePool(await readFile('etc/pools/text-servers.json', 'utf8'), 'text-servers.json', 'json');
    expect(legacy.problems).toEqual([]);
    expect(json.problems).toEqual([]);
    expect(rows(legacy.pool)).toEqual([
      ['server1.example.com', 20, true],
      ['server2.example.com', 15, false],
      ['server3.example.com', 10, true],
      ['server4.example.com', 10, true],
      ['server5.example.com', 0, true],
    ]);
    expect(rows(json.pool)).toEqual(rows(legacy.pool));
  });
});
