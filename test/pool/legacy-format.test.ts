import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { formatProblem } from '../../src/runtime/errors.js';
import { LegacyLineMemo, legacyPoolSteps, MAX_LINE_LENGTH, parseLegacyPool, readUsualLine, readUsualServer } from '../../src/pool/legacy-format.js';
import { parsePythonLiteral } from '../../src/config/python-literal.js';
import type { PoolParseResult } from '../../src/pool/pool-builder.js';
import { finish } from '../../src/runtime/sliced.js';
import { ownCopy } from '../../src/runtime/interner.js';
import type { Pool } from '../../src/pool/types.js';
import { createRandomInt } from '../support/random.js';

const FILE = '/etc/pybal/pools/text';

function parse(text: string): { servers: [string, number, boolean][]; problems: string[] } {
  const { pool, problems } = parseLegacyPool(text, FILE);
  return { servers: entries(pool), problems: problems.map(formatProblem) };
}

function entries(pool: Pool): [string, number, boolean][] {
  return [...pool.values()].map((s) => [s.host, s.weight, s.enabled]);
}

describe('parseLegacyPool', () => {
  it("reads PyBal's shipped example, defaulting the keys its lines leave out", () => {
    // debian/text-servers as shipped: PyBal loses the last three lines (no weight/enabled).
    const text = [
      "{ 'host': 'server1.example.com', 'weight': 20, 'enabled': True }",
      "{ 'host': 'server2.example.com', 'weight': 15, 'enabled': False }",
      "{ 'host': 'server3.example.com' }",
      "{ 'host': 'server4.example.com' }",
      "{ 'host': 'server5.example.com' }",
      '',
    ].join('\n');
    expect(parse(text)).toEqual({
      servers: [
        ['server1.example.com', 20, true],
        ['server2.example.com', 15, false],
        ['server3.example.com', 10, true],
        ['server4.example.com', 10, true],
        ['server5.example.com', 10, true],
      ],
      problems: [],
    });
  });

  it('skips blank and comment lines, allows trailing comments, indentation, CRLF and a BOM', () => {
    const text =
      '\ufeff# pool for text\r\n' +
      '\r\n' +
      "   { 'host': 'mw1', 'weight': 10, 'enabled': True }   # rack A2\r\n" +
      "\t{'host':'mw2','weight':0,'enabled':False}\r\n" +
      '    # indented comment\n' +
      "{ u'host': u'mw3', 'weight': 0x10, 'enabled': True, }\n";
    expect(parse(text)).toEqual({
      servers: [
        ['mw1', 10, true],
        ['mw2', 0, false],
        ['mw3', 16, true],
      ],
      problems: [],
    });
  });

  it('accepts invalid UTF-8 in a trailing comment', () => {
    expect(parse("{ 'host': 'mw1', 'weight': 1 }  # caf\ufffd")).toEqual({ servers: [['mw1', 1, true]], problems: [] });
  });

  it('keeps weight 0 as 0 (PyBal turns it into 1)', () => {
    expect(parse("{ 'host': 'mw1', 'weight': 0, 'enabled': True }").servers).toEqual([['mw1', 0, true]]);
  });

  it('ignores extra keys as PyBal does, but notes them', () => {
    expect(parse("{ 'host': 'mw1', 'weight': 5, 'enabled': True, 'rack': 'A2', 1: 2 }")).toEqual({
      servers: [['mw1', 5, true]],
      problems: [
        `${FILE}:1: rack: unknown key, ignored (known keys: host, weight, enabled)`,
        `${FILE}:1: 1: unknown key, ignored (known keys: host, weight, enabled)`,
      ],
    });
  });

  // Every rule, with the exact message; the line is skipped and the others apply.
  const badLines: [string, string, string[]][] = [
    ['weight as a str', "{ 'host': 'mw9', 'weight': '10', 'enabled': True }", ["weight: expected an int >= 0, got str '10'"]],
    ['weight as a float', "{ 'host': 'mw9', 'weight': 7.0, 'enabled': True }", ['weight: expected an int >= 0, got float 7.0']],
    ['weight as a fractional float', "{ 'host': 'mw9', 'weight': 7.5 }", ['weight: expected an int >= 0, got float 7.5']],
    ['weight as a bool', "{ 'host': 'mw9', 'weight': True }", ['weight: expected an int >= 0, got bool True']],
    ['negative weight', "{ 'host': 'mw9', 'weight': -1 }", ['weight: expected an int >= 0, got int -1']],
    ['weight too large', "{ 'host': 'mw9', 'weight': 2147483648 }", ['weight: expected an int <= 2147483647, got int 2147483648']],
    ['weight None', "{ 'host': 'mw9', 'weight': None }", ['weight: expected an int >= 0, got NoneType None']],
    ['enabled as a str', "{ 'host': 'mw9', 'weight': 1, 'enabled': 'no' }", ["enabled: expected True or False, got str 'no'"]],
    ['enabled as an int', "{ 'host': 'mw9', 'enabled': 1 }", ['enabled: expected True or False, got int 1']],
    ['enabled as a list', "{ 'host': 'mw9', 'enabled': [True] }", ['enabled: expected True or False, got list [True]']],
    ['no host', "{ 'weight': 1, 'enabled': True }", ['host: missing: every line needs a host']],
    ['empty host', "{ 'host': '', 'weight': 1 }", ["host: expected a non-empty str, got str ''"]],
    ['host not a str', "{ 'host': 1001 }", ['host: expected a non-empty str, got int 1001']],
    ['host with a space', "{ 'host': 'mw 9' }", ["host: expected a host name (no spaces, control characters or invalid UTF-8), got str 'mw 9'"]],
    ['a key twice', "{ 'host': 'mw9', 'weight': 1, 'weight': 2 }", ['weight: given more than once']],
    ['host twice', "{ 'host': 'mw9', 'host': 'mw8' }", ['host: given more than once']],
    ['two errors at once', "{ 'host': 'mw9', 'weight': '1', 'enabled': 'yes' }", ["weight: expected an int >= 0, got str '1'", "enabled: expected True or False, got str 'yes'"]],
    ['not a dict', "[ 'mw9', 10, True ]", ["expected a dict like { 'host': 'mw1', 'weight': 10, 'enabled': True }, got list ['mw9', 10, True]"]],
    ['a bare word', 'mw9', ["syntax error at column 1: unknown name 'mw9' (only literals are allowed here)"]],
    ['unclosed dict', "  { 'host': 'mw9', 'weight': 1", ["syntax error at column 3: '{' is never closed"]],
    ['missing comma', "{ 'host': 'mw9' 'weight': 1 }", ['syntax error at column 25: expected \',\' or \'}\', found ":"']],
    ['two dicts', "{ 'host': 'mw9' } { 'host': 'mw8' }", ['syntax error at column 19: unexpected "{" after the value']],
    ['JSON booleans', '{ "host": "mw9", "weight": 1, "enabled": true }', ["syntax error at column 42: unknown name 'true' (only literals are allowed here)"]],
    ['a call', "{ 'host': __import__('os').system('true') }", ["syntax error at column 11: unknown name '__import__' (only literals are allowed here)"]],
    ['binary junk', "{ 'host': 'mw9'\u0000 }", ['binary data (character "\\u0000" at column 16)']],
    ['invalid UTF-8 in the host', "{ 'host': 'mw\ufffd' }", ["host: expected a host name (no spaces, control characters or invalid UTF-8), got str 'mw\ufffd'"]],
  ];

  it.each(badLines)('reports and skips a line with %s', (_name, line, messages) => {
    const text = `{ 'host': 'mw1', 'weight': 10, 'enabled': True }\n${line}\n{ 'host': 'mw2', 'weight': 20, 'enabled': False }\n`;
    expect(parse(text)).toEqual({
      servers: [
        ['mw1', 10, true],
        ['mw2', 20, false],
      ],
      problems: messages.map((m) => `${FILE}:2: ${m}`),
    });
  });

  it('reports a long value shortened', () => {
    const { problems } = parse(`{ 'host': 'mw1', 'weight': '${'9'.repeat(200)}' }`);
    expect(problems).toEqual([`${FILE}:1: weight: expected an int >= 0, got str '${'9'.repeat(56)}...`]);
  });

  it('refuses overlong lines without parsing them', () => {
    const line = `{ 'host': 'mw1', 'x': '${'a'.repeat(MAX_LINE_LENGTH)}' }`;
    expect(parse(`${line}\n{ 'host': 'mw2' }`)).toEqual({
      servers: [['mw2', 10, true]],
      problems: [`${FILE}:1: line too long (${line.length} characters; the limit is ${MAX_LINE_LENGTH})`],
    });
  });

  it('lets the last line for a host win and names both lines', () => {
    const text = "{ 'host': 'mw1', 'weight': 1 }\n{ 'host': 'mw2' }\n\n{ 'host': 'mw1', 'weight': 3, 'enabled': False }\n";
    expect(parse(text)).toEqual({
      servers: [
        ['mw2', 10, true],
        ['mw1', 3, false],
      ],
      problems: [`${FILE}:4: host: "mw1" is also on line 1; this line wins`],
    });
  });

  it('names the line each duplicate repeats, the last one before it, for hosts repeated before and after the first duplicate', () => {
    const text = [
      "{ 'host': 'mw1', 'weight': 1 }",
      "{ 'host': 'mw2', 'weight': 2 }",
      "{ 'host': 'mw3', 'weight': 3 }",
      "{ 'host': 'mw1', 'weight': 4 }",
      "{ 'host': 'mw2', 'weight': 5 }",
      "{ 'host': 'mw1', 'weight': 6 }",
      "{ 'host': 'mw4', 'weight': 7 }",
      "{ 'host': 'mw4', 'weight': 8 }",
    ].join('\n');
    expect(parse(text)).toEqual({
      servers: [
        ['mw3', 3, true],
        ['mw2', 5, true],
        ['mw1', 6, true],
        ['mw4', 8, true],
      ],
      problems: [
        `${FILE}:4: host: "mw1" is also on line 1; this line wins`,
        `${FILE}:5: host: "mw2" is also on line 2; this line wins`,
        `${FILE}:6: host: "mw1" is also on line 4; this line wins`,
        `${FILE}:8: host: "mw4" is also on line 7; this line wins`,
      ],
    });
  });

  it('cuts the lines as split would: a last line without a newline, empty lines, a carriage return kept in its line', () => {
    expect(parse("{ 'host': 'mw1' }\n\n\n{ 'host': 'mw2' }")).toEqual({ servers: [['mw1', 10, true], ['mw2', 10, true]], problems: [] });
    expect(parse("\n{ 'host': 'mw1' }\r\n{ 'host': 'mw2' }\r\n")).toEqual({ servers: [['mw1', 10, true], ['mw2', 10, true]], problems: [] });
  });

  it('gives an empty pool for an empty file or only comments', () => {
    expect(parse('')).toEqual({ servers: [], problems: [] });
    expect(parse('# nothing here\n\n')).toEqual({ servers: [], problems: [] });
  });

  it('survives random binary input', () => {
    let seed = 42;
    const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const bytes = Array.from({ length: 5000 }, () => String.fromCharCode(Math.floor(random() * 256))).join('');
    const { pool, problems } = parseLegacyPool(bytes, FILE);
    expect(pool.size).toBe(0);
    expect(problems.length).toBeGreaterThan(0);
    for (const p of problems) expect(p.line).toBeGreaterThan(0);
  });
});

describe('parseLegacyPool: a file caught mid-write', () => {
  const first = "{ 'host': 'mw1', 'weight': 10, 'enabled': True }\n";
  const skippedOf = (text: string): string[] => parseLegacyPool(text, FILE).skipped.map(formatProblem);

  it.each([
    ['cut inside True', `${first}{ 'host': 'mw2', 'weight': 20, 'enabled': Tr`, "2: syntax error at column 43: unknown name 'Tr' (only literals are allowed here)"],
    ['cut before the closing brace', `${first}{ 'host': 'mw2', 'weight': 20, 'enabled': True`, "2: syntax error at column 1: '{' is never closed"],
    ['cut inside a number', `${first}{ 'host': 'mw2', 'weight': 2`, "2: syntax error at column 1: '{' is never closed"],
    ['cut inside a key', `${first}{ 'host': 'mw2', 'wei`, '2: syntax error at column 18: string is never closed'],
  ])('%s: the last line is a skipped line, the lines before it apply', (_name, text, problem) => {
    expect(parseLegacyPool(text, FILE).pool.size).toBe(1);
    expect(skippedOf(text)).toEqual([`${FILE}:${problem}`]);
  });

  it('a cut inside a trailing comment loses nothing', () => {
    const text = `${first}{ 'host': 'mw2', 'weight': 20, 'enabled': True }  # ra`;
    expect(parse(text).servers).toEqual([['mw1', 10, true], ['mw2', 20, true]]);
    expect(skippedOf(text)).toEqual([]);
  });

  it('counts skipped lines apart from notes (unknown keys, duplicates), one per line', () => {
    const text = [
      "{ 'host': 'mw1', 'weight': 10, 'rack': 'A2' }",
      "{ 'host': 'mw2', 'weight': 'x', 'enabled': 'no' }",
      "{ 'host': 'mw1', 'weight': 11 }",
      'not a dict',
      '',
    ].join('\n');
    const result = parseLegacyPool(text, FILE);
    expect(result.problems).toHaveLength(5);
    expect(result.skipped.map(formatProblem)).toEqual([
      `${FILE}:2: weight: expected an int >= 0, got str 'x'`,
      `${FILE}:4: syntax error at column 1: unknown name 'not' (only literals are allowed here)`,
    ]);
  });
});

describe('legacy pool lines remembered between reads (LegacyLineMemo)', () => {
  const read = (text: string, memo?: LegacyLineMemo): PoolParseResult => finish(legacyPoolSteps(text, 'pool', memo));
  const shown = (r: PoolParseResult): unknown => ({ pool: [...r.pool.values()], problems: r.problems.map(formatProblem), skipped: r.skipped.map(formatProblem) });

  // Each document is read after the one before it with the same memo, and must read exactly as it does fresh.
  const documents = [
    "{ 'host': 'a', 'weight': 10, 'enabled': True }\n{ 'host': 'b', 'weight': 10, 'enabled': True }\n{ 'host': 'c', 'weight': 10, 'enabled': True }\n",
    // one weight edited
    "{ 'host': 'a', 'weight': 10, 'enabled': True }\n{ 'host': 'b', 'weight': 7, 'enabled': True }\n{ 'host': 'c', 'weight': 10, 'enabled': True }\n",
    // lines moved down by a comment, a line with a note (unknown key) and a bad line: their line numbers are the new ones
    "# moved\n\n{ 'host': 'c', 'weight': 10, 'enabled': True }\n{ 'host': 'a', 'weight': 10, 'enabled': True, 'rack': 'A2' }\n{ 'host': 'b', 'weight': 7, 'enabled': True }\n{ 'host': 'd', 'weight': ten }\n",
    // a duplicate of a remembered line: reported naming both lines, the later wins
    "{ 'host': 'a', 'weight': 10, 'enabled': True }\n{ 'host': 'c', 'weight': 10, 'enabled': True }\n{ 'host': 'a', 'weight': 10, 'enabled': True }\n",
    // the same note again, on another line
    "{ 'host': 'a', 'weight': 10, 'enabled': True, 'rack': 'A2' }\n",
    '',
    "{ 'host': 'a', 'weight': 10, 'enabled': True }\n",
  ];

  it('every read gives what a fresh read of the same text gives, lines moved, noted, bad or duplicated', () => {
    const memo = new LegacyLineMemo();
    for (const text of documents) expect(shown(read(text, memo))).toEqual(shown(read(text)));
  });

  it('an unchanged line gives the same server object again, an edited one a new one; lines gone are forgotten', () => {
    const memo = new LegacyLineMemo();
    const first = read(documents[0]!, memo);
    expect(memo.size).toBe(3);
    const second = read(documents[1]!, memo);
    expect(second.pool.get('a')).toBe(first.pool.get('a'));
    expect(second.pool.get('c')).toBe(first.pool.get('c'));
    expect(second.pool.get('b')).not.toBe(first.pool.get('b'));
    expect(second.pool.get('b')?.weight).toBe(7);
    read("{ 'host': 'a', 'weight': 10, 'enabled': True }\n", memo);
    expect(memo.size).toBe(1);
  });

  it('a clean re-read of the same hosts in the same order says which hosts changed, from the pool read before', () => {
    const memo = new LegacyLineMemo();
    const first = read(documents[0]!, memo);
    expect(first.changedFrom).toBeUndefined();
    const second = read(documents[1]!, memo);
    expect(second.changedFrom).toEqual({ base: first.pool, hosts: ['b'] });
    expect(second.changedFrom?.base).toBe(first.pool);
    // Read again unchanged: a delta of nothing.
    expect(read(documents[1]!, memo).changedFrom).toEqual({ base: second.pool, hosts: [] });
    // Hosts moved, added or removed, or a problem: no delta (the pool is complete anyway).
    const abc = "{ 'host': 'a', 'weight': 10, 'enabled': True }\n{ 'host': 'b', 'weight': 7, 'enabled': True }\n{ 'host': 'c', 'weight': 10, 'enabled': True }\n";
    read(abc, memo);
    expect(read("{ 'host': 'b', 'weight': 7, 'enabled': True }\n{ 'host': 'a', 'weight': 10, 'enabled': True }\n{ 'host': 'c', 'weight': 10, 'enabled': True }\n", memo).changedFrom).toBeUndefined();
    read(abc, memo);
    expect(read(`${abc}{ 'host': 'd', 'weight': 10, 'enabled': True }\n`, memo).changedFrom).toBeUndefined();
    read(abc, memo);
    expect(read("{ 'host': 'a', 'weight': 10, 'enabled': True }\n{ 'host': 'a', 'weight': 7, 'enabled': True }\n{ 'host': 'c', 'weight': 10, 'enabled': True }\n", memo).changedFrom).toBeUndefined();
    // Without a memo there is nothing to compare with.
    expect(read(abc).changedFrom).toBeUndefined();
  });

  it('over 400 random clean edits, a delta is given exactly when the hosts and their order stay, and names every host whose settings changed', () => {
    const random = createRandomInt(7);
    const entry = (host: number): string => `{ 'host': 'h${host}', 'weight': ${random(4)}, 'enabled': ${random(5) === 0 ? 'False' : 'True'} }`;
    let hosts = Array.from({ length: 50 }, (_, i) => i);
    let lines = hosts.map(entry);
    const memo = new LegacyLineMemo();
    let before = read(lines.join('\n'), memo);
    let deltas = 0;
    for (let step = 0; step < 400; step++) {
      const at = random(lines.length);
      const roll = random(8);
      if (roll === 0) {
        hosts.splice(at, 0, 1000 + step);
        lines.splice(at, 0, entry(1000 + step));
      } else if (roll === 1 && lines.length > 2) {
        hosts.splice(at, 1);
        lines.splice(at, 1);
      } else if (roll === 2) {
        hosts = [...hosts.slice(at), ...hosts.slice(0, at)];
        lines = [...lines.slice(at), ...lines.slice(0, at)];
      } else {
        lines[at] = entry(hosts[at]!);
      }
      const after = read(lines.join('\n'), memo);
      const sameHosts = JSON.stringify([...after.pool.keys()]) === JSON.stringify([...before.pool.keys()]);
      expect(after.changedFrom !== undefined, `step ${step}`).toBe(sameHosts);
      if (after.changedFrom !== undefined) {
        deltas++;
        expect(after.changedFrom.base).toBe(before.pool);
        for (const [host, server] of after.pool) {
          const was = before.pool.get(host)!;
          const differs = was.weight !== server.weight || was.enabled !== server.enabled;
          if (differs) expect(after.changedFrom.hosts, `step ${step}`).toContain(host);
          if (!after.changedFrom.hosts.includes(host)) expect(server).toBe(was);
        }
      }
      before = after;
    }
    expect(deltas).toBeGreaterThan(200);
  });

  it('a line with a note is parsed every time (its note names its line), never remembered', () => {
    const memo = new LegacyLineMemo();
    read(documents[4]!, memo);
    expect(memo.size).toBe(0);
    const moved = read(`\n${documents[4]!}`, memo);
    expect(moved.problems.map(formatProblem).join('\n')).toContain('pool:2');
  });

  it('reads as fresh after each of 400 random edits: lines changed, inserted, removed, duplicated, moved or broken', () => {
    const random = createRandomInt(3);
    const line = (): string => {
      const roll = random(20);
      if (roll === 0) return '# a comment';
      if (roll === 1) return '';
      if (roll === 2) return `{ 'host': 'h${random(60)}', 'weight': ten }`;
      if (roll === 3) return `{ 'host': 'h${random(60)}', 'weight': 1, 'enabled': True, 'rack': 'A${random(3)}' }`;
      return `{ 'host': 'h${random(60)}', 'weight': ${random(4)}, 'enabled': ${random(5) === 0 ? 'False' : 'True'} }`;
    };
    let lines = Array.from({ length: 80 }, line);
    const memo = new LegacyLineMemo();
    let before = read(lines.join('\n'), memo);
    for (let step = 0; step < 400; step++) {
      const at = random(lines.length + 1);
      const roll = random(6);
      if (roll === 0) lines.splice(at, 0, line());
      else if (roll === 1) lines.splice(at, 1);
      else if (roll === 2) lines.splice(at, 1, line());
      else if (roll === 3) lines.splice(at, 0, lines[random(lines.length)] ?? line());
      else if (roll === 4) lines = [...lines.slice(at), ...lines.slice(0, at)];
      else lines.splice(at, 2, line(), line());
      const text = lines.join('\n') + (random(2) === 0 ? '\n' : '');
      const after = read(text, memo);
      expect(shown(after), `step ${step}`).toEqual(shown(read(text)));
      // A server whose line is still there, unchanged and clean, is the very same object.
      for (const [host, server] of after.pool) {
        const was = before.pool.get(host);
        if (was !== undefined && was.weight === server.weight && was.enabled === server.enabled && after.problems.length === 0 && before.problems.length === 0) {
          expect(server).toBe(was);
        }
      }
      before = after;
    }
  });

  it('an edit in a pool of 20,000 lines gives every other line its server object of the last read (before and after the edit)', () => {
    const doc = (weight: number): string =>
      Array.from({ length: 20_000 }, (_, i) => `{ 'host': 'h${i}', 'weight': ${i === 12_000 ? weight : 10}, 'enabled': True }`).join('\n');
    const memo = new LegacyLineMemo();
    const first = read(doc(10), memo);
    const second = read(doc(7), memo);
    expect(second.pool.get('h12000')?.weight).toBe(7);
    const renewed = [...second.pool].filter(([host, server]) => server !== first.pool.get(host)).map(([host]) => host);
    expect(renewed).toEqual(['h12000']);
    expect(shown(second)).toEqual(shown(read(doc(7))));
  });

  it('a read abandoned half way leaves the memo of the last whole read', () => {
    const memo = new LegacyLineMemo();
    read(documents[0]!, memo);
    const long = Array.from({ length: 600 }, (_, i) => `{ 'host': 'h${i}', 'weight': 1, 'enabled': True }`).join('\n');
    const steps = legacyPoolSteps(long, 'pool', memo);
    steps.next(); // the first slice only; the read is dropped
    expect(memo.size).toBe(3);
    expect(shown(read(documents[1]!, memo))).toEqual(shown(read(documents[1]!)));
  });
});

/** Usual lines that are also clean: each reader of the usual line reads them. */
const CLEAN_USUAL_LINES = [
  "{ 'host': 'mw1001.eqiad.wmnet', 'weight': 10, 'enabled': True }",
  "{'host':'mw1','weight':0,'enabled':False}",
  "{ 'enabled': True, 'weight': 7, 'host': '10.0.0.1' }  # rack A2",
  "{ 'host': 'mw1' }",
];

describe('readUsualLine (the usual line, read without the general literal reader)', () => {
  /** The general reader's answer, or undefined where it refuses the line. */
  const general = (line: string) => {
    try {
      return parsePythonLiteral(line);
    } catch {
      return undefined;
    }
  };

  it('reads the usual lines, and gives exactly what the general reader gives', () => {
    const usual = [
      ...CLEAN_USUAL_LINES,
      "{ 'host': 'mw1', 'weight': 123456789012345 }",
      "{\t'host' :\t'h\u00e9',  'comment': 'free text, with: colons' }#",
      "{ 'host': '', 'weight': 10, 'enabled': True }",
      "{ 'host': 'a', 'host': 'b' }",
    ];
    for (const line of usual) {
      const fast = readUsualLine(line);
      expect(fast, line).toBeDefined();
      expect(fast, line).toEqual(general(line));
    }
  });

  it('leaves every other line to the general reader, valid or not', () => {
    const others = [
      '{ "host": "mw1", "weight": 10 }',
      "{ 'host': 'mw1', }",
      '{}',
      "{ 'host': 'mw\\1' }",
      "{ 'host': 'mw1', 'weight': 010 }",
      "{ 'host': 'mw1', 'weight': -1 }",
      "{ 'host': 'mw1', 'weight': 1_0 }",
      "{ 'host': 'mw1', 'weight': 10.5 }",
      "{ 'host': 'mw1', 'weight': 1234567890123456 }",
      "{ 'host': 'mw1', 'enabled': true }",
      "{ 'host': 'mw1', 'enabled': Truely }",
      "{ 'host': 'mw1' 'x' }",
      "{ 'host': u'mw1' }",
      "{ 'host': 'mw1' } extra",
      "{ 'host': 'mw1' }}",
      "{ 'host': 'mw1', 'weight': None }",
      "{ 'host': 'mw1', 'weight': [10] }",
      "{ 'host': 'mw1' # cut",
      "{ 'host': 'mw1'",
      "[ 'host', 'mw1' ]",
      "{ 1: 'mw1' }",
    ];
    for (const line of others) expect(readUsualLine(line), line).toBeUndefined();
  });

  it('agrees with the general reader on 20,000 generated lines, usual and mangled', () => {
    const random = createRandomInt(11);
    const pick = <T>(xs: readonly T[]): T => xs[random(xs.length)]!;
    const keys = ["'host'", "'weight'", "'enabled'", "'x'", '"host"', '1'];
    const values = ["'mw1'", "'10.0.0.1'", '10', '0', '007', '-3', '1.5', 'True', 'False', 'None', "'a\\'b'", "u'x'", "'a' 'b'", '[1]', '99999999999999999'];
    const spaces = ['', ' ', '  ', '\t'];
    let read = 0;
    for (let i = 0; i < 20_000; i++) {
      const n = 1 + random(3);
      const parts: string[] = [];
      for (let k = 0; k < n; k++) parts.push(`${pick(spaces)}${pick(keys)}${pick(spaces)}:${pick(spaces)}${pick(values)}${pick(spaces)}`);
      let line = `{${parts.join(pick([',', ',', ',', ', ', ' ']))}${pick(['', ',', ''])}}${pick(['', '', ' # c', 'x', '}'])}`;
      if (random(10) === 0) line = line.slice(0, random(line.length));
      const fast = readUsualLine(line);
      if (fast === undefined) continue;
      read++;
      expect(fast, line).toEqual(general(line));
    }
    // Enough of them took the fast way for the comparison to mean something.
    expect(read).toBeGreaterThan(500);
  });
});

describe('readUsualServer (a clean usual line, read straight into its server)', () => {
  /**
   * The general way's reading of the same line: its single quotes made
   * double (the same Python values for strings with neither quote nor
   * backslash, at the same columns), which the usual readers leave alone.
   */
  const general = (line: string): PoolParseResult => parseLegacyPool(line.replaceAll("'", '"'), 'pool');
  const outcome = (r: PoolParseResult) => ({ servers: [...r.pool.values()], problems: r.problems.map((p) => formatProblem(p)) });

  it('reads the clean usual lines into the server the general way gives, with nothing to report', () => {
    const clean = [
      ...CLEAN_USUAL_LINES,
      "{ 'weight': 2147483647, 'host': 'mw1' }",
      "{\t'host' :\t'h\u00e9' }#",
      "{ 'host': 'a-very-long-host-name.example.org', 'enabled': False }",
    ];
    for (const line of clean) {
      const fast = readUsualServer(line);
      expect(fast, line).toBeDefined();
      const reference = general(line);
      expect(reference.problems, line).toEqual([]);
      expect([fast], line).toEqual([...reference.pool.values()]);
      // And a document of it reads the same either way.
      expect(outcome(parseLegacyPool(line, 'pool')), line).toEqual(outcome(reference));
    }
  });

  it('leaves every line with something to report, or unusual, to the general way, whose messages stay', () => {
    const others = [
      "{ 'host': 'mw1', 'x': 1 }",
      "{ 'host': 'mw1', 'weight': 1, 'weight': 2 }",
      "{ 'host': 'a', 'host': 'b' }",
      "{ 'host': '' }",
      "{ 'host': 'mw 1' }",
      "{ 'host': 'mw1', 'weight': 2147483648 }",
      "{ 'host': 'mw1', 'weight': 123456789012345 }",
      "{ 'host': 'mw1', 'weight': -1 }",
      "{ 'host': 'mw1', 'enabled': 1 }",
      "{ 'host': 'mw1', 'weight': True }",
      "{ 'host': 10 }",
      "{ 'weight': 10 }",
      "{ 'host': 'mw1' }  # \x01 junk",
      "{ 'host': 'mw1\x7f' }",
      '{ "host": "mw1" }',
      "{ 'host': 'mw1', }",
    ];
    for (const line of others) {
      expect(readUsualServer(line), line).toBeUndefined();
      const read = outcome(parseLegacyPool(line, 'pool'));
      expect(read.servers.length + read.problems.length, line).toBeGreaterThan(0);
      if (line.includes("'")) expect(read, line).toEqual(outcome(general(line)));
    }
  });

  it('agrees with the general way on 20,000 generated lines, usual and mangled: what it reads, the general way reads clean, to the same server', () => {
    const random = createRandomInt(12);
    const pick = <T>(xs: readonly T[]): T => xs[random(xs.length)]!;
    const keys = ["'host'", "'host'", "'weight'", "'enabled'", "'x'", "'Host'", '1'];
    const values = ["'mw1'", "'10.0.0.1'", "''", "'a b'", '10', '0', '007', '-3', '1.5', 'True', 'False', 'None', '[1]', '2147483647', '2147483648', '99999999999999999'];
    const spaces = ['', ' ', '  ', '\t'];
    let fastOnes = 0;
    for (let i = 0; i < 20_000; i++) {
      const n = 1 + random(3);
      const parts: string[] = [];
      for (let k = 0; k < n; k++) {
        // Mostly a known key with a value of its type (the usual line), else anything.
        const key = k === 0 && random(4) > 0 ? "'host'" : pick(keys);
        const typed = key === "'host'" ? pick(["'mw1'", "'10.0.0.1'", "'a b'", "''"]) : key === "'weight'" ? pick(['10', '0', '2147483647', '2147483648']) : pick(['True', 'False']);
        parts.push(`${pick(spaces)}${key}${pick(spaces)}:${pick(spaces)}${random(4) > 0 ? typed : pick(values)}${pick(spaces)}`);
      }
      let line = `{${parts.join(pick([',', ',', ',', ', ', ' ']))}${pick(['', ',', ''])}}${pick(['', '', ' # c', 'x', '}', ' # \x02'])}`;
      if (random(10) === 0) line = line.slice(0, random(line.length));
      const fast = readUsualServer(line);
      const reference = general(line);
      // Any other line goes the general way, as before (whose own tests are above).
      if (fast === undefined) continue;
      fastOnes++;
      expect(reference.problems, line).toEqual([]);
      expect([fast], line).toEqual([...reference.pool.values()]);
      expect(outcome(parseLegacyPool(line, 'pool')), line).toEqual(outcome(reference));
    }
    // Enough of them took the fast way for the comparison to mean something.
    expect(fastOnes).toBeGreaterThan(500);
  });
});

describe('what a read keeps of its document', () => {
  const read = (text: string, memo?: LegacyLineMemo): PoolParseResult => finish(legacyPoolSteps(text, 'pool', memo));

  it('its servers hold no view into the text: 20 edits of a pool of 20,000 lines leave no old texts on the heap', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const settle = (): number => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    // Host names of 13 characters or more, which V8 would keep as views into the text (1.3 MB a read).
    const lines = Array.from({ length: 20_000 }, (_, i) => `{ 'host': 'mw${1000 + i}.eqiad.wmnet', 'weight': 10, 'enabled': True }`);
    const memo = new LegacyLineMemo();
    let result = read(lines.join('\n') + '\n', memo);
    const before = settle();
    for (let k = 0; k < 20; k++) {
      // One weight edited a read, a different line each time, as conftool does.
      const i = (k * 997) % lines.length;
      lines[i] = lines[i]!.replace(/'weight': \d+/, `'weight': ${k % 2 === 0 ? 7 : 10}`);
      result = read(lines.join('\n') + '\n', memo);
    }
    const grown = settle() - before;
    expect(result.pool.size).toBe(20_000);
    expect([result.pool.get("mw1000.eqiad.wmnet")?.weight, result.pool.get(`mw${1000 + 997}.eqiad.wmnet`)?.weight]).toEqual([7, 10]);
    // Before hosts were copied out of the text, the texts kept by them came to 15 MB here (0.75 MB an edit).
    expect(grown).toBeLessThan(5e6);
  });

  it('ownCopy gives the same string, every code unit of it (lone surrogates too)', () => {
    for (const s of ['', 'mw1', 'mw1001.eqiad.wmnet', 'ünïcödé-hôst.example.org', 'lone \ud800 surrogate and more', 'x'.repeat(300)]) expect(ownCopy(s)).toBe(s);
  });
});
