import { describe, expect, it } from 'vitest';
import { formatProblem, ProblemsError } from '../../src/runtime/errors.js';
import { parseJsonPool } from '../../src/pool/json-format.js';
import { JsonSyntaxError, parseJson } from '../../src/pool/json-reader.js';

const FILE = '/etc/pybal/pools/text.json';

function parse(text: string): { servers: [string, number, boolean][]; problems: string[] } {
  const { pool, problems } = parseJsonPool(text, FILE);
  return { servers: [...pool.values()].map((s) => [s.host, s.weight, s.enabled]), problems: problems.map(formatProblem) };
}

function wholeFileError(text: string): string {
  try {
    parseJsonPool(text, FILE);
  } catch (e) {
    if (e instanceof ProblemsError) return e.message;
    throw e;
  }
  throw new Error('no error');
}

describe('parseJson', () => {
  it('tells integers from other numbers and keeps offsets', () => {
    expect(parseJson('{"a": 10, "b": 10.0, "c": 1e1, "d": -0}')).toEqual({
      type: 'object',
      offset: 0,
      entries: [
        { key: 'a', keyOffset: 1, value: { type: 'number', offset: 6, value: 10, integer: true, raw: '10' } },
        { key: 'b', keyOffset: 10, value: { type: 'number', offset: 15, value: 10, integer: false, raw: '10.0' } },
        { key: 'c', keyOffset: 21, value: { type: 'number', offset: 26, value: 10, integer: false, raw: '1e1' } },
        { key: 'd', keyOffset: 31, value: { type: 'number', offset: 36, value: -0, integer: true, raw: '-0' } },
      ],
    });
  });

  it('reads strings, escapes, arrays and literals', () => {
    expect(parseJson(String.raw`["a\"\\\/\b\f\n\r\t\u00e9", true, false, null, []]`)).toEqual({
      type: 'array',
      offset: 0,
      items: [
        { type: 'string', offset: 1, value: 'a"\\/\b\f\n\r\té' },
        { type: 'boolean', offset: 28, value: true },
        { type: 'boolean', offset: 34, value: false },
        { type: 'null', offset: 41 },
        { type: 'array', offset: 47, items: [] },
      ],
    });
  });

  const errors: [string, string, number][] = [
    ['', 'the document is empty', 0],
    ['{', 'object is never closed', 0],
    ['{"a": 1,}', 'expected a string key, found "}"', 8],
    ['{"a" 1}', "expected ':' after an object key", 5],
    ['{"a": 1 "b": 2}', 'expected \',\' or \'}\', found "\\""', 8],
    ['[1, 2', 'array is never closed', 0],
    ['{"a": 01}', 'malformed number', 6],
    ['{"a": 1.}', 'malformed number', 6],
    ['{"a": NaN}', 'unexpected "N"', 6],
    ["{'a': 1}", 'expected a string key, found "\'"', 1],
    ['"abc', 'string is never closed', 0],
    ['"a\tb"', 'control character "\\t" in a string', 2],
    ['"\\x41"', 'bad escape \\x', 1],
    ['{} {}', 'unexpected "{" after the document', 3],
    ['['.repeat(100), 'nested more than 64 levels deep', 65],
  ];
  it.each(errors)('rejects %j: %s', (text, message, offset) => {
    let caught: unknown;
    try {
      parseJson(text);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(JsonSyntaxError);
    expect(caught).toMatchObject({ message, offset });
  });
});

describe('parseJsonPool', () => {
  it('reads the format of conftool and PyBal', () => {
    const text = `{
  "pybal-test2002.codfw.wmnet": {
    "enabled": false,
    "weight": 10
  },
  "pybal-test2003.codfw.wmnet": {"enabled": true, "weight": 5},
  "mw3": {"weight": 0},
  "mw4": {}
}`;
    expect(parse(text)).toEqual({
      servers: [
        ['pybal-test2002.codfw.wmnet', 10, false],
        ['pybal-test2003.codfw.wmnet', 5, true],
        ['mw3', 0, true],
        ['mw4', 10, true],
      ],
      problems: [],
    });
  });

  it('reports a bad entry with the line of the bad key and applies the rest', () => {
    const text = `{
  "mw1": {"enabled": true, "weight": 10},
  "mw2": {
    "enabled": "no",
    "weight": 10
  },
  "mw3": {"enabled": true,
          "weight": 7.0},
  "mw4": {"enabled": 1, "weight": -3},
  "mw5": 10,
  "": {"weight": 1},
  "mw 6": {},
  "mw7": {"weight": true, "enabled": null},
  "mw8": {"weight": "10", "pooled": "yes"},
  "mw9": {"weight": 1, "weight": 2},
  "mw10": {"weight": 4294967296},
  "mw11": {"enabled": false, "weight": 3, "host": "x"}
}`;
    expect(parse(text)).toEqual({
      servers: [
        ['mw1', 10, true],
        ['mw11', 3, false],
      ],
      problems: [
        `${FILE}:4: enabled: expected true or false, got string "no"`,
        `${FILE}:8: weight: expected an integer >= 0, got number 7.0`,
        `${FILE}:9: enabled: expected true or false, got number 1`,
        `${FILE}:9: weight: expected an integer >= 0, got number -3`,
        `${FILE}:10: mw5: expected an object like {"enabled": true, "weight": 10}, got number 10`,
        `${FILE}:11: host: expected a non-empty string, got string ""`,
        `${FILE}:12: host: expected a host name (no spaces, control characters or invalid UTF-8), got string "mw 6"`,
        `${FILE}:13: weight: expected an integer >= 0, got boolean true`,
        `${FILE}:13: enabled: expected true or false, got null`,
        `${FILE}:14: weight: expected an integer >= 0, got string "10"`,
        `${FILE}:15: weight: given more than once`,
        `${FILE}:16: weight: expected an integer <= 2147483647, got number 4294967296`,
        `${FILE}:17: host: unknown key, ignored (known keys: weight, enabled)`,
      ],
    });
  });

  it('lets a repeated host win and names both lines', () => {
    expect(parse('{"mw1": {"weight": 1},\n"mw2": {},\n"mw1": {"weight": 2}}')).toEqual({
      servers: [
        ['mw2', 10, true],
        ['mw1', 2, true],
      ],
      problems: [`${FILE}:3: host: "mw1" is also on line 1; this line wins`],
    });
  });

  it('accepts an empty object as an empty pool', () => {
    expect(parse(' {} \n')).toEqual({ servers: [], problems: [] });
  });

  it('rejects a document that is not JSON or not an object, as a whole', () => {
    expect(wholeFileError('{"mw1": {"weight": 1},\n  "mw2": {"weight": 2,}}')).toBe(
      `${FILE}:2: invalid JSON at column 23: expected a string key, found "}"`,
    );
    expect(wholeFileError('')).toBe(`${FILE}:1: invalid JSON at column 1: the document is empty`);
    expect(wholeFileError("{ 'host': 'mw1', 'weight': 10, 'enabled': True }")).toBe(
      `${FILE}:1: invalid JSON at column 3: expected a string key, found "'"`,
    );
    expect(wholeFileError('\n["mw1", "mw2"]')).toBe(
      `${FILE}:2: expected an object of hosts like {"mw1": {"enabled": true, "weight": 10}}, got array`,
    );
  });
});

describe('parseJsonPool: skipped entries and a cut document', () => {
  it('counts skipped entries apart from notes', () => {
    const result = parseJsonPool('{"mw1": {"weight": 1, "rack": "A"},\n "mw2": 3,\n "mw3": {"weight": -1}}', FILE);
    expect([...result.pool.keys()]).toEqual(['mw1']);
    expect(result.skipped.map(formatProblem)).toEqual([
      `${FILE}:2: mw2: expected an object like {"enabled": true, "weight": 10}, got number 3`,
      `${FILE}:3: weight: expected an integer >= 0, got number -1`,
    ]);
  });

  it('a document cut mid-write is an error for the whole file (the source keeps the last pool)', () => {
    expect(() => parseJsonPool('{"mw1": {"enabled": true, "weight": 10},\n "mw2": {"enab', FILE)).toThrow(
      `${FILE}:2: invalid JSON at column 10: string is never closed`,
    );
  });
});
