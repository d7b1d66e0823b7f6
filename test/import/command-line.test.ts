import { describe, expect, it } from 'vitest';

import { needsShell, parseCheckCommand, shellQuote, splitWords } from '../../src/import/command-line.js';

describe('check command lines', () => {
  it('splits words as a shell would, quotes grouping', () => {
    expect(splitWords(`/bin/check 'a b' "c d" e\\ f`)).toEqual(['/bin/check', 'a b', 'c d', 'e f']);
    expect(splitWords(`x ''`)).toEqual(['x', '']);
    expect(splitWords(`x 'open`)).toBeUndefined();
  });

  it('tells lines that need a shell', () => {
    for (const line of ['a | b', 'a > /dev/null', 'a; b', 'a && b', 'echo $HOME', 'echo `id`', 'echo "$X"', '~/check']) expect(needsShell(line), line).toBe(true);
    for (const line of ['a b c', "a 'x|y'", 'a "x;y"', 'a b~c', 'a --x=1']) expect(needsShell(line), line).toBe(false);
  });

  it("replaces the server's own address by server.ip", () => {
    expect(parseCheckCommand('/usr/local/bin/udp-check 198.51.100.11 5001', '198.51.100.11')).toEqual({
      spec: { command: '/usr/local/bin/udp-check', arguments: [{ server: 'ip' }, { literal: '5001' }], shell: false },
    });
    // A longer address that merely starts with it is left alone.
    expect(parseCheckCommand('/bin/check 198.51.100.111', '198.51.100.11')).toEqual({ spec: { command: '/bin/check', arguments: [{ literal: '198.51.100.111' }], shell: false } });
  });

  it('splices an address inside a word, or a shell line, through /bin/sh -c with $1', () => {
    expect(parseCheckCommand('/bin/check --host=192.0.2.7', '192.0.2.7')).toEqual({
      spec: { command: '/bin/sh', arguments: [{ literal: '-c' }, { literal: '/bin/check --host="$1"' }, { literal: 'sh' }, { server: 'ip' }], shell: true },
    });
    expect(parseCheckCommand('nc -z 192.0.2.7 80 >/dev/null', '192.0.2.7')).toMatchObject({ spec: { arguments: [{}, { literal: 'nc -z "$1" 80 >/dev/null' }, {}, {}] } });
    expect(parseCheckCommand('check | grep "up on 192.0.2.7"', '192.0.2.7')).toMatchObject({ spec: { arguments: [{}, { literal: 'check | grep "up on $1"' }, {}, {}] } });
    expect(parseCheckCommand("check | grep 'x 192.0.2.7'", '192.0.2.7')).toEqual({
      problem: "the server's address appears inside single quotes, where it cannot be replaced by each server's own",
    });
    expect(parseCheckCommand('ping -c1 localhost | true')).toEqual({ spec: { command: '/bin/sh', arguments: [{ literal: '-c' }, { literal: 'ping -c1 localhost | true' }], shell: true } });
  });

  it('refuses an empty line or an open quote', () => {
    expect(parseCheckCommand('  ')).toEqual({ problem: 'the command is empty' });
    expect(parseCheckCommand("/bin/x 'a")).toEqual({ problem: 'a quote is left open' });
  });

  it('quotes for sh only when needed', () => {
    expect(shellQuote('/bin/x')).toBe('/bin/x');
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });
});
