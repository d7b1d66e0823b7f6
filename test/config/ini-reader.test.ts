import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { locateInValue, readIni, resolveSection, type IniSection } from '../../src/config/ini-reader.js';
import { formatProblem } from '../../src/runtime/errors.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

function sectionOf(text: string, name: string): IniSection {
  const section = readIni(text, 't.conf').document.sections.find((s) => s.name === name);
  if (!section) throw new Error(`no section ${name}`);
  return section;
}

/** Every section's values as ConfigParser.items() gives them. */
function values(text: string): Record<string, Record<string, string>> {
  const { document } = readIni(text, 't.conf');
  return Object.fromEntries(
    document.sections.map((s) => [s.name, Object.fromEntries([...resolveSection(document, s).entries].map(([k, e]) => [k, e.value]))]),
  );
}

function problems(text: string): { errors: string[]; warnings: string[] } {
  const { document, errors, warnings } = readIni(text, 't.conf');
  const all = [...errors];
  for (const s of document.sections) all.push(...resolveSection(document, s).errors);
  return { errors: all.map(formatProblem), warnings: warnings.map(formatProblem) };
}

describe('readIni: the semantics of Python 2 SafeConfigParser', () => {
  // The .py2.json files were written by fixtures/dump-py2.py under Python 2.7.18.
  it.each(['configparser-edge', 'pybal-debian-example'])('reads %s.conf exactly as python2.7 SafeConfigParser does', (name) => {
    const expected = JSON.parse(readFileSync(fixture(`${name}.py2.json`), 'utf8')) as unknown;
    expect(values(readFileSync(fixture(`${name}.conf`), 'utf8'))).toEqual(expected);
  });

  it('takes the first = or : as the delimiter and lower-cases option names', () => {
    expect(values('[s]\nURL = http://x/?a=b\nKey: a = b\nmixed=a:b\n')).toEqual({
      s: { url: 'http://x/?a=b', key: 'a = b', mixed: 'a:b' },
    });
  });

  it('treats ; as an inline comment only after white space, and # never', () => {
    expect(values('[s]\na = x ; note\nb = x;y\nc = x # y\nd = x\t;tab\n')).toEqual({ s: { a: 'x', b: 'x;y', c: 'x # y', d: 'x' } });
  });

  it('skips comment lines, blank lines and rem lines in column 1', () => {
    expect(values('# c\n; c\n\n   \n[s]\nrem a remark\nREM = 1\nremote = 2\n# k = v\n; k = v\n')).toEqual({ s: { remote: '2' } });
  });

  it('joins continuation lines with \\n and records the line of each part', () => {
    const text = '[s]\nurls = [ "a",\n        "b" ]\n\n  ]\nnext = 1\n';
    expect(values(text)).toEqual({ s: { urls: '[ "a",\n"b" ]\n]', next: '1' } });
    const entry = sectionOf(text, 's').entries.get('urls');
    expect(entry?.line).toBe(2);
    expect(entry?.partLines).toEqual([2, 3, 5]);
    expect(sectionOf(text, 's').entries.get('next')?.line).toBe(6);
  });

  it('maps an offset in a multi-line value back to its file line and column', () => {
    const text = '[s]\nurls = [ "a",\n        "b" x\n';
    const { document } = readIni(text, 't.conf');
    const entry = resolveSection(document, document.sections[0] as IniSection).entries.get('urls');
    if (!entry) throw new Error('no urls');
    // The value is `[ "a",\n"b" x`: its x is column 13 of line 3, its first " column 10 of line 2.
    expect(locateInValue(entry, entry.value.indexOf('x'))).toEqual({ line: 3, column: 13 });
    expect(locateInValue(entry, 2)).toEqual({ line: 2, column: 10 });
  });

  it('reads "" as the empty string and an empty value as empty', () => {
    expect(values('[s]\na = ""\nb =\nc = "x"\n')).toEqual({ s: { a: '', b: '', c: '"x"' } });
  });

  it('accepts CRLF line endings and a byte order mark', () => {
    expect(values('[s]\r\na = 1\r\nb: two \r\n  three\r\n')).toEqual({ s: { a: '1', b: 'two\nthree' } });
    expect(values('\ufeff[s]\na = 1\n')).toEqual({ s: { a: '1' } });
  });

  it('treats only ASCII white space as white space, as py2 does', () => {
    // A no-break space is part of the value and of the key, not space to strip.
    expect(values('[s]\na = \u00a0x\u00a0\n\u00a0b = 1\n')).toEqual({ s: { a: '\u00a0x\u00a0', '\u00a0b': '1' } });
  });

  it('merges [DEFAULT] into every section, under the section own keys', () => {
    expect(values('[DEFAULT]\nport = 80\nscheduler = wlc\n[a]\nport = 443\n[b]\n')).toEqual({
      a: { port: '443', scheduler: 'wlc' },
      b: { port: '80', scheduler: 'wlc' },
    });
  });

  it('interpolates %(name)s from the section, [DEFAULT] and __name__, with %% for a literal %', () => {
    expect(values('[DEFAULT]\ndir = /etc/pybal\nurl = file://%(dir)s/pools/%(__name__)s\n[text]\npct = 50%%\n[dns]\ndir = /srv\n')).toEqual({
      text: { dir: '/etc/pybal', url: 'file:///etc/pybal/pools/text', pct: '50%' },
      dns: { dir: '/srv', url: 'file:///srv/pools/dns' },
    });
  });

  it('reports interpolation mistakes at the value, naming the key', () => {
    expect(problems('[s]\na = %(missing)s\nb = 50%\nc = %(unclosed\nd = %(d)s\n').errors).toEqual([
      "t.conf:2: a: %(missing)s refers to 'missing', which is not set in this section or [DEFAULT]",
      `t.conf:3: b: '%' must be followed by '%' or '(', found "%" (write %% for a literal %)`,
      't.conf:4: c: bad interpolation reference "%(unclosed" (expected %(name)s; write %% for a literal %)',
      't.conf:5: d: interpolation nested more than 10 levels deep (a reference loop?)',
    ]);
  });

  it('reports a key before any section, a line without a delimiter, and an indented line with nothing to continue', () => {
    expect(problems('early = 1\n[s]\n  indented\njust words\na = 1\n').errors).toEqual([
      't.conf:1: no section header before this line (every key belongs to a [section]): "early = 1"',
      't.conf:3: indented line with no value to continue: "indented"',
      `t.conf:4: expected 'key = value', 'key: value' or '[section]', got "just words"`,
    ]);
  });

  it('warns about repeated sections and keys, keeping the last value and the first position', () => {
    const text = '[s]\na = 1\nb = 2\n[t]\n[s]\na = 3\n';
    expect(values(text)).toEqual({ s: { a: '3', b: '2' }, t: {} });
    expect(problems(text).warnings).toEqual([
      't.conf:5: section [s] is repeated (first at line 1); the two are merged and later keys win',
      "t.conf:6: a: 'a' is set again (first at line 2); the value here wins",
    ]);
    expect(sectionOf(text, 's').line).toBe(1);
    expect([...sectionOf(text, 's').entries.keys()]).toEqual(['a', 'b']);
  });

  it('warns that an indented comment continues a value and that text after a header is ignored', () => {
    const text = '[s] # services\na = 1\n    # still a\n';
    expect(values(text)).toEqual({ s: { a: '1\n# still a' } });
    expect(problems(text).warnings).toEqual([
      't.conf:1: text after the section header [s] is ignored: "# services"',
      "t.conf:3: a: this indented line is not a comment: it continues the value of 'a' (line 2); start comments in column 1",
    ]);
  });

  it('keeps section names case-sensitive and does not treat [default] as [DEFAULT]', () => {
    const { document } = readIni('[default]\na = 1\n[Text]\n', 't.conf');
    expect(document.defaults).toBeUndefined();
    expect(document.sections.map((s) => s.name)).toEqual(['default', 'Text']);
  });
});
