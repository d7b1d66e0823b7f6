import { describe, expect, it } from 'vitest';
import type { Problem } from '../../src/runtime/errors.js';
import { createMemoryLogger } from '../../src/runtime/logger.js';
import type { PoolParseResult } from '../../src/pool/pool-builder.js';
import { createSourceReporter } from '../../src/pool/source-reporter.js';
import type { Pool, PoolEvent, PoolServer } from '../../src/pool/types.js';

const FILE = '/etc/pybal/pools/text';
const URL = `file://${FILE}`;
const CUT = "syntax error at column 43: unknown name 'Tr' (only literals are allowed here)";

/** `a`, `a/5` (weight 5), `a/5/off` (disabled): one server. */
function server(spec: string): PoolServer {
  const [host = '', weight = '10', state = 'on'] = spec.split('/');
  return { host, weight: Number(weight), enabled: state !== 'off' };
}

function pool(specs: string): Pool {
  return new Map(
    specs
      .split(' ')
      .filter((s) => s !== '')
      .map((s) => [server(s).host, server(s)]),
  );
}

function show(p: Pool | undefined): string {
  if (p === undefined) return 'none';
  return [...p.values()].map((s) => `${s.host}/${s.weight}${s.enabled ? '' : '/off'}`).join(' ');
}

/** A parsed document: its valid servers and the lines that were skipped. */
function doc(specs: string, skippedLines: readonly number[] = []): PoolParseResult {
  const skipped: Problem[] = skippedLines.map((line) => ({ file: FILE, line, message: CUT }));
  return { pool: pool(specs), problems: skipped, skipped };
}

type Step = { readonly good: PoolParseResult } | { readonly fail: string } | 'unchanged';

function summarize(event: PoolEvent): string {
  if (event.type === 'pool') return `pool ${show(event.pool)}`;
  if (event.type === 'error') return `error ${event.message}`;
  return 'recovered';
}

function run(steps: readonly Step[]): { events: string[][]; log: string[]; status: { pool: string; error: string | undefined } } {
  const memory = createMemoryLogger();
  const reporter = createSourceReporter(URL, memory.logger);
  let batch: string[] = [];
  reporter.listen((e) => batch.push(summarize(e)));
  const events: string[][] = [];
  for (const step of steps) {
    batch = [];
    if (step === 'unchanged') reporter.unchanged();
    else if ('good' in step) reporter.good(step.good);
    else reporter.fail(step.fail);
    events.push(batch);
  }
  const status = reporter.status();
  return { events, log: memory.lines(), status: { pool: show(status.pool), error: status.error } };
}

const refusedEmpty = `${URL}: lists no server; refusing to empty the pool (to take every server out, disable each one)`;
const refusedInvalid = (n: number, line: number): string => `${URL}: no valid server: ${n} line(s) skipped (first: ${FILE}:${line}: ${CUT})`;
const held = (n: number, line: number, kept?: string): string =>
  `${URL}: ${n} line(s) skipped (first: ${FILE}:${line}: ${CUT})` +
  (kept === undefined ? '' : `; keeping ${kept} from the last good pool until it reads clean`);

describe('source reporter: the pool safety rules', () => {
  // Each row: the steps, then the events each step sent, then the pool and error it is left with.
  const rows: [string, Step[], string[][], string, string | undefined][] = [
    ['a first read is delivered', [{ good: doc('a b') }], [['pool a/10 b/10']], 'a/10 b/10', undefined],
    ['a first read may be empty: nothing to lose', [{ good: doc('') }], [['pool ']], '', undefined],
    [
      'a first read where every line is invalid delivers the empty pool and reports the lines',
      [{ good: doc('', [1, 2]) }],
      [['pool ', `error ${held(2, 1)}`]],
      '',
      held(2, 1),
    ],
    // Rule 1: nothing valid where the last good pool had servers is refused like an unreadable file.
    [
      'every line invalid: refused, the last good pool stays',
      [{ good: doc('a b') }, { good: doc('', [1, 2, 3]) }],
      [['pool a/10 b/10'], [`error ${refusedInvalid(3, 1)}`]],
      'a/10 b/10',
      refusedInvalid(3, 1),
    ],
    [
      'an emptied document: refused, the last good pool stays',
      [{ good: doc('a b') }, { good: doc('') }],
      [['pool a/10 b/10'], [`error ${refusedEmpty}`]],
      'a/10 b/10',
      refusedEmpty,
    ],
    [
      'an empty document after an empty pool is no loss',
      [{ good: doc('') }, { good: doc('') }, { good: doc('a') }],
      [['pool '], [], ['pool a/10']],
      'a/10',
      undefined,
    ],
    [
      'a pool of disabled servers is a pool: emptying it is refused too',
      [{ good: doc('a/10/off') }, { good: doc('') }],
      [['pool a/10/off'], [`error ${refusedEmpty}`]],
      'a/10/off',
      refusedEmpty,
    ],
    [
      'a refusal is reported once while the document stays the same',
      [{ good: doc('a b') }, { good: doc('') }, { good: doc('') }, 'unchanged'],
      [['pool a/10 b/10'], [`error ${refusedEmpty}`], [], []],
      'a/10 b/10',
      refusedEmpty,
    ],
    [
      'the same servers back after a refusal: recovered, and no pool event',
      [{ good: doc('a b') }, { good: doc('') }, { good: doc('a b') }],
      [['pool a/10 b/10'], [`error ${refusedEmpty}`], ['recovered']],
      'a/10 b/10',
      undefined,
    ],
    [
      'a clean edit after a refusal applies, removals included',
      [{ good: doc('a b c') }, { good: doc('', [1]) }, { good: doc('a/30 c') }],
      [['pool a/10 b/10 c/10'], [`error ${refusedInvalid(1, 1)}`], ['recovered', 'pool a/30 c/10']],
      'a/30 c/10',
      undefined,
    ],
    // Rule 2: skipped lines never remove a server; additions and changes apply; the error follows the pool.
    [
      'servers missing from a document with skipped lines are kept at their old place',
      [{ good: doc('a b c d') }, { good: doc('a c/5 e', [2]) }],
      [['pool a/10 b/10 c/10 d/10'], ['pool a/10 b/10 c/5 d/10 e/10', `error ${held(1, 2, 'b, d')}`]],
      'a/10 b/10 c/5 d/10 e/10',
      held(1, 2, 'b, d'),
    ],
    [
      'a file cut in its second line keeps the later servers with their last good entries',
      [{ good: doc('a b/20/off c/7') }, { good: doc('a', [2]) }],
      [['pool a/10 b/20/off c/7'], ['pool a/10 b/20/off c/7', `error ${held(1, 2, 'b, c')}`]],
      'a/10 b/20/off c/7',
      held(1, 2, 'b, c'),
    ],
    [
      'a skipped line that loses nothing still reports the error',
      [{ good: doc('a') }, { good: doc('a b', [3]) }],
      [['pool a/10'], ['pool a/10 b/10', `error ${held(1, 3)}`]],
      'a/10 b/10',
      held(1, 3),
    ],
    [
      'the same held document read again sends nothing',
      [{ good: doc('a b c') }, { good: doc('a', [2]) }, { good: doc('a', [2]) }, 'unchanged'],
      [['pool a/10 b/10 c/10'], ['pool a/10 b/10 c/10', `error ${held(1, 2, 'b, c')}`], [], []],
      'a/10 b/10 c/10',
      held(1, 2, 'b, c'),
    ],
    [
      'a change on a valid line while others are skipped: the pool, then the same error again (the pool cleared it)',
      [{ good: doc('a b') }, { good: doc('a', [2]) }, { good: doc('a/3', [2]) }],
      [['pool a/10 b/10'], ['pool a/10 b/10', `error ${held(1, 2, 'b')}`], ['pool a/3 b/10', `error ${held(1, 2, 'b')}`]],
      'a/3 b/10',
      held(1, 2, 'b'),
    ],
    [
      'a held server stays held through later broken documents (the last delivered pool is the reference)',
      [{ good: doc('a b') }, { good: doc('a c', [2]) }, { good: doc('a', [2, 3]) }],
      [
        ['pool a/10 b/10'],
        ['pool a/10 b/10 c/10', `error ${held(1, 2, 'b')}`],
        ['pool a/10 b/10 c/10', `error ${held(2, 2, 'b, c')}`],
      ],
      'a/10 b/10 c/10',
      held(2, 2, 'b, c'),
    ],
    [
      'once the document reads clean the removal happens and the error clears',
      [{ good: doc('a b c') }, { good: doc('a', [2]) }, { good: doc('a c/4') }],
      [['pool a/10 b/10 c/10'], ['pool a/10 b/10 c/10', `error ${held(1, 2, 'b, c')}`], ['recovered', 'pool a/10 c/4']],
      'a/10 c/4',
      undefined,
    ],
    [
      'a read error while held, then the held document again: its error comes back',
      [{ good: doc('a b') }, { good: doc('a', [2]) }, { fail: `${FILE}: no such file` }, { good: doc('a', [2]) }],
      [['pool a/10 b/10'], ['pool a/10 b/10', `error ${held(1, 2, 'b')}`], [`error ${FILE}: no such file`], [`error ${held(1, 2, 'b')}`]],
      'a/10 b/10',
      held(1, 2, 'b'),
    ],
    [
      'HTTP 304 after an error stands for the last document read, not for a clean one',
      [{ good: doc('a b') }, { good: doc('a', [2]) }, { fail: `${URL}: HTTP 503` }, 'unchanged'],
      [['pool a/10 b/10'], ['pool a/10 b/10', `error ${held(1, 2, 'b')}`], [`error ${URL}: HTTP 503`], [`error ${held(1, 2, 'b')}`]],
      'a/10 b/10',
      held(1, 2, 'b'),
    ],
    [
      'HTTP 304 after an error on a clean document recovers',
      [{ good: doc('a') }, { fail: `${URL}: HTTP 503` }, 'unchanged'],
      [['pool a/10'], [`error ${URL}: HTTP 503`], ['recovered']],
      'a/10',
      undefined,
    ],
  ];

  it.each(rows)('%s', (_name, steps, events, finalPool, finalError) => {
    const result = run(steps);
    expect(result.events).toEqual(events);
    expect(result.status).toEqual({ pool: finalPool, error: finalError });
  });

  it('names more than ten kept servers by count', () => {
    const hosts = Array.from({ length: 12 }, (_, i) => `mw${i + 1}`);
    const { events } = run([{ good: doc(hosts.join(' ')) }, { good: doc('mw1', [2]) }]);
    expect(events[1]?.[1]).toBe(`error ${held(1, 2, 'mw2, mw3, mw4, mw5, mw6, mw7, mw8, mw9, mw10, mw11 and 1 more (11 servers)')}`);
  });

  it('logs a refusal with file, line, skipped count and how many servers are kept', () => {
    const { log } = run([{ good: doc('a b') }, { good: doc('', [1, 2, 3]) }]);
    expect(log).toContain(`[pybal] WARN: ${FILE}:1: ${CUT}`);
    expect(log).toContain(`[pybal] WARN: ${refusedInvalid(3, 1)} (keeping the last good pool of 2 servers)`);
  });

  it('logs an emptied document as refused, keeping the last good pool', () => {
    const { log } = run([{ good: doc('a b c') }, { good: doc('') }]);
    expect(log).toContain(`[pybal] WARN: ${refusedEmpty} (keeping the last good pool of 3 servers)`);
  });

  it('logs the held servers, then that the source reads clean again', () => {
    const { log } = run([{ good: doc('a b') }, { good: doc('a', [2]) }, { good: doc('a') }]);
    expect(log).toContain(`[pybal] WARN: ${FILE}:2: ${CUT}`);
    expect(log).toContain(`[pybal] WARN: ${held(1, 2, 'b')}`);
    expect(log).toContain(`[pybal] INFO: ${URL} reads fine again`);
    expect(log).toContain(`[pybal] DEBUG: pool from ${URL}: 1 servers; removed b`);
  });
});

describe('source reporter seeded with the last good pool of the source it replaces', () => {
  function seeded(last: string): { reporter: ReturnType<typeof createSourceReporter>; events: string[] } {
    const events: string[] = [];
    const reporter = createSourceReporter(URL, createMemoryLogger().logger, { lastGoodPool: pool(last) });
    reporter.listen((e) => events.push(summarize(e)));
    return { reporter, events };
  }

  it('refuses an empty first read: the listener keeps the pool it has', () => {
    const { reporter, events } = seeded('a b');
    reporter.good(doc(''));
    expect(events).toEqual([`error ${refusedEmpty}`]);
    expect(show(reporter.status().pool)).toBe('a/10 b/10');
  });

  it('keeps servers that a first read with skipped lines lacks', () => {
    const { reporter, events } = seeded('a b');
    reporter.good(doc('a', [2]));
    expect(events).toEqual(['pool a/10 b/10', `error ${held(1, 2, 'b')}`]);
  });

  it('delivers nothing for a first read equal to it, and a different one as usual', () => {
    const { reporter, events } = seeded('a b');
    reporter.good(doc('a b'));
    expect(events).toEqual([]);
    reporter.good(doc('a c'));
    expect(events).toEqual(['pool a/10 c/10']);
  });
});

describe('source reporter: pools read as a delta of the last one', () => {
  /** `base` with `changes` (host -> spec) replaced, as a clean read that says so. */
  function edit(base: Pool, changes: Record<string, string>, deltaBase: Pool = base): PoolParseResult {
    const next = new Map<string, PoolServer>();
    for (const [host, s] of base) next.set(host, changes[host] === undefined ? s : server(changes[host]!));
    return { pool: next, problems: [], skipped: [], changedFrom: { base: deltaBase, hosts: Object.keys(changes) } };
  }

  it('passes the delta on when it is from the pool last delivered, and sends nothing when the changed hosts are as they were', () => {
    const reporter = createSourceReporter(URL, createMemoryLogger().logger);
    const events: PoolEvent[] = [];
    reporter.listen((e) => events.push(e));
    const first = doc('a b c');
    reporter.good(first);
    const second = edit(first.pool, { b: 'b/7' });
    reporter.good(second);
    expect(events.map((e) => (e.type === 'pool' ? show(e.pool) : e.type))).toEqual(['a/10 b/10 c/10', 'a/10 b/7 c/10']);
    expect(events[1]).toMatchObject({ changedFrom: { base: first.pool, hosts: ['b'] } });
    // A re-read whose changed line says the same as before (rewritten, not edited): nothing to send.
    reporter.good(edit(second.pool, { b: 'b/7' }));
    expect(events).toHaveLength(2);
  });

  it('drops a delta from another pool and compares the whole pool instead', () => {
    const reporter = createSourceReporter(URL, createMemoryLogger().logger);
    const events: PoolEvent[] = [];
    reporter.listen((e) => events.push(e));
    const first = doc('a b');
    reporter.good(first);
    // The delta names only a, from a pool that was never delivered; b changed too.
    const stale = { ...edit(first.pool, { a: 'a/10', b: 'b/3' }), changedFrom: { base: pool('a b'), hosts: ['a'] } };
    reporter.good(stale);
    expect(events.map((e) => (e.type === 'pool' ? show(e.pool) : e.type))).toEqual(['a/10 b/10', 'a/10 b/3']);
    expect(events[1]).not.toHaveProperty('changedFrom');
  });
});
