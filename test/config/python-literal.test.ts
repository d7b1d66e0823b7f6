import { describe, expect, it } from 'vitest';
import { formatPyValue, parsePythonLiteral, PythonLiteralError, type PyValue } from '../../src/config/python-literal.js';

const str = (value: string): PyValue => ({ type: 'str', value });
const int = (value: number): PyValue => ({ type: 'int', value });

function errorOf(text: string, names?: string[]): PythonLiteralError {
  try {
    parsePythonLiteral(text, names ? { names } : {});
  } catch (e) {
    if (e instanceof PythonLiteralError) return e;
    throw e;
  }
  throw new Error(`no error for ${text}`);
}

describe('parsePythonLiteral', () => {
  it('reads the list values of pybal.conf', () => {
    expect(parsePythonLiteral(`[ 'ProxyFetch', "IdleConnection" ]`)).toEqual({
      type: 'list',
      items: [str('ProxyFetch'), str('IdleConnection')],
    });
    expect(parsePythonLiteral(`[u'http://en.wikipedia.org/wiki/Main_Page', U"x",]`)).toEqual({
      type: 'list',
      items: [str('http://en.wikipedia.org/wiki/Main_Page'), str('x')],
    });
    expect(parsePythonLiteral('[]')).toEqual({ type: 'list', items: [] });
  });

  it('allows server.host and server.ip only where names are allowed', () => {
    const names = ['server.host', 'server.ip'];
    expect(parsePythonLiteral(`[ '/etc/pybal/check', server.host, 'one', '2', server.ip ]`, { names })).toEqual({
      type: 'list',
      items: [str('/etc/pybal/check'), { type: 'name', name: 'server.host' }, str('one'), str('2'), { type: 'name', name: 'server.ip' }],
    });
    const e = errorOf(`[ server.host ]`);
    expect(e.message).toBe("unknown name 'server.host' (only literals are allowed here)");
    expect(e.offset).toBe(2);
    expect(errorOf(`[ __import__('os') ]`, names).message).toMatch(/unknown name '__import__'/);
    expect(errorOf(`[ server.port ]`, names).message).toMatch(/unknown name 'server.port'/);
  });

  it('reads legacy pool dicts with trailing comments', () => {
    expect(parsePythonLiteral(`{ 'host': 'mw1001.eqiad.wmnet', 'weight': 10, 'enabled': True } # rack A2`)).toEqual({
      type: 'dict',
      entries: [
        [str('host'), str('mw1001.eqiad.wmnet')],
        [str('weight'), int(10)],
        [str('enabled'), { type: 'bool', value: true }],
      ],
    });
  });

  it('tells ints, floats, bools and None apart', () => {
    expect(parsePythonLiteral('7')).toEqual(int(7));
    expect(parsePythonLiteral('-3')).toEqual(int(-3));
    expect(parsePythonLiteral('10L')).toEqual(int(10));
    expect(parsePythonLiteral('0x1f')).toEqual(int(31));
    expect(parsePythonLiteral('0o17')).toEqual(int(15));
    expect(parsePythonLiteral('0b101')).toEqual(int(5));
    expect(parsePythonLiteral('0')).toEqual(int(0));
    expect(parsePythonLiteral('7.0')).toEqual({ type: 'float', value: 7 });
    expect(parsePythonLiteral('.5')).toEqual({ type: 'float', value: 0.5 });
    expect(parsePythonLiteral('1e3')).toEqual({ type: 'float', value: 1000 });
    expect(parsePythonLiteral('False')).toEqual({ type: 'bool', value: false });
    expect(parsePythonLiteral('None')).toEqual({ type: 'none' });
    expect(errorOf('010').message).toMatch(/leading zero/);
    expect(errorOf('true').message).toMatch(/unknown name 'true'/);
    expect(errorOf('99999999999999999999').message).toMatch(/out of range/);
  });

  it('decodes escapes, raw strings, triple quotes and adjacent strings', () => {
    expect(parsePythonLiteral(String.raw`'a\'b\n\t\\\x41\u00e9\101'`)).toEqual(str("a'b\n\t\\Aé" + 'A'));
    expect(parsePythonLiteral(String.raw`r'\d+\.'`)).toEqual(str(String.raw`\d+\.`));
    expect(parsePythonLiteral(`'''it's'''`)).toEqual(str("it's"));
    expect(parsePythonLiteral(`'ab' "cd" u'ef'`)).toEqual(str('abcdef'));
    expect(parsePythonLiteral(String.raw`'\q'`)).toEqual(str('\\q'));
  });

  it('reads tuples and parenthesised values', () => {
    expect(parsePythonLiteral('(1,)')).toEqual({ type: 'tuple', items: [int(1)] });
    expect(parsePythonLiteral('()')).toEqual({ type: 'tuple', items: [] });
    expect(parsePythonLiteral('(1)')).toEqual(int(1));
  });

  it('reports malformed input with the offset of the problem', () => {
    expect(errorOf(`[ 'a', 'b'`)).toMatchObject({ message: "'[' is never closed", offset: 0 });
    expect(errorOf(`[ 'a' 'b' 1 ]`)).toMatchObject({ message: `expected ',' or ']', found "1"`, offset: 10 });
    expect(errorOf(`{ 'host' 'mw1' }`)).toMatchObject({ message: "expected ':' after a dict key" });
    expect(errorOf(`{ 'host': 'mw1', }x`)).toMatchObject({ message: 'unexpected "x" after the value', offset: 18 });
    expect(errorOf(`'abc`)).toMatchObject({ message: 'string is never closed', offset: 0 });
    expect(errorOf(`b'x'`).message).toBe('bytes literals are not supported');
    expect(errorOf('').message).toBe('empty value');
    expect(errorOf(`{ [1]: 2 }`).message).toBe('a list cannot be a dict key');
    expect(errorOf(String.raw`'\x4'`).message).toBe('bad \\x escape');
  });

  it('formats values the way Python prints them', () => {
    expect(formatPyValue(parsePythonLiteral(`{'enabled': 'no', 'weight': 7.5, 'x': [None, (1,)]}`))).toBe(
      "{'enabled': 'no', 'weight': 7.5, 'x': [None, (1,)]}",
    );
  });
});
