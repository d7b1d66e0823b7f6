import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findPybalPackage } from '../../src/runtime/package-root.js';

const dir = mkdtempSync(join(tmpdir(), 'pybal-package-root-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('findPybalPackage', () => {
  it("finds the nearest package.json named pybal above a directory, past missing, foreign and broken ones", () => {
    const root = join(dir, 'lib', 'pybal');
    const cli = join(root, 'dist', 'cli');
    mkdirSync(cli, { recursive: true });
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'pybal', version: '1.2.3' }));
    // dist/ holds another package's file and dist/cli/ a broken one: neither is pybal's.
    writeFileSync(join(root, 'dist', 'package.json'), JSON.stringify({ name: 'other', version: '9' }));
    writeFileSync(join(cli, 'package.json'), '{ not json');
    expect(findPybalPackage(cli)).toEqual({ dir: root, version: '1.2.3' });
    expect(findPybalPackage(join(root, 'dist'))).toEqual({ dir: root, version: '1.2.3' });
  });

  it('is undefined with no pybal package.json up to the root, and the answer is kept for the directory', () => {
    const lone = join(dir, 'lone', 'a', 'b');
    mkdirSync(lone, { recursive: true });
    expect(findPybalPackage(lone)).toBeUndefined();
    // A pybal package.json appearing later is not looked for again from there (the running daemon's, read once).
    writeFileSync(join(dir, 'lone', 'package.json'), JSON.stringify({ name: 'pybal', version: '2.0.0' }));
    expect(findPybalPackage(lone)).toBeUndefined();
    expect(findPybalPackage(join(dir, 'lone', 'a'))).toEqual({ dir: join(dir, 'lone'), version: '2.0.0' });
  });
});
