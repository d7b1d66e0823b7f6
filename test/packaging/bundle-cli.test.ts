/**
 * A plugin of packaging/bundle-cli.ts on its own: prom-client bundled with
 * lazyPushgateway into a small program, which reports what Node loaded
 * before and after the first `new Pushgateway(...)`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { lazyPushgateway } from '../../packaging/bundle-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'pybal-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PROGRAM = `
const client = require('prom-client');
const tlsAndZlib = () => process.moduleLoadList.filter((m) => /^NativeModule (https|tls|zlib)$/.test(m));
const before = tlsAndZlib();
const registry = new client.Registry();
const gateway = new client.Pushgateway('http://127.0.0.1:9', {}, registry);
process.stdout.write(JSON.stringify({ before, after: tlsAndZlib(), pushAdd: typeof gateway.pushAdd, registry: gateway.registry === registry }));
`;

describe('lazyPushgateway', () => {
  it("keeps node:https, node:tls and node:zlib out of prom-client's load, and gives the real Pushgateway at the first new", async () => {
    const outfile = join(dir, 'program.cjs');
    await build({
      stdin: { contents: PROGRAM, resolveDir: resolve('.'), sourcefile: 'program.js', loader: 'js' },
      bundle: true,
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      outfile,
      plugins: [lazyPushgateway],
      logLevel: 'silent',
    });
    const r = spawnSync(process.execPath, [outfile], { encoding: 'utf8', timeout: 15_000 });
    expect(r.stderr).toBe('');
    const seen = JSON.parse(r.stdout) as { before: string[]; after: string[]; pushAdd: string; registry: boolean };
    expect(seen.before).toEqual([]);
    expect(seen.after).toEqual(expect.arrayContaining(['NativeModule https', 'NativeModule tls', 'NativeModule zlib']));
    expect(seen.pushAdd).toBe('function');
    expect(seen.registry).toBe(true);
  });
});
