/**
 * A plugin of packaging/bundle-cli.ts on its own: prom-client bundled with
 * lazyPushgateway into a small program, which reports what Node loaded
 * before and after the first `new Pushgateway(...)`.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { lazyAssertOfSonicBoom, lazyAssertOfYargs, lazyOpenTelemetry, lazyPushgateway, lazyThreadStream } from '../../packaging/bundle-cli.js';

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

/**
 * The other lazy loads, on stand-in packages in a node_modules of their own
 * (the plugins act on imports from files of the package they name): each
 * import gets its stand-in, which loads the real module at its first use.
 */
describe('the lazy stand-ins of assert, thread-stream and @opentelemetry/api', () => {
  const root = join(dir, 'stand-ins');
  const write = (path: string, text: string): void => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  write('node_modules/yargs/shim.mjs', "import { notStrictEqual, strictEqual } from 'assert';\nexport const assert = { notStrictEqual, strictEqual };\n");
  write('node_modules/sonic-boom/index.js', "const assert = require('assert');\nmodule.exports = (...args) => assert(...args);\n");
  write('node_modules/pino/index.js', "const ThreadStream = require('thread-stream');\nmodule.exports = (options) => new ThreadStream(options);\n");
  write('node_modules/thread-stream/index.js', 'globalThis.threadStreamLoaded = true;\nmodule.exports = class ThreadStream { constructor(options) { this.options = options; } };\n');
  write('node_modules/prom-client/index.js', "const OtelApi = require('@opentelemetry/api');\nmodule.exports = () => OtelApi.trace.name;\n");
  write('node_modules/@opentelemetry/api/index.js', "globalThis.otelLoaded = true;\nmodule.exports = { trace: { name: 'the real trace' } };\n");

  const PROGRAM = `
import { assert as yargsAssert } from 'yargs/shim.mjs';
import sonicAssert from 'sonic-boom';
import makeThreadStream from 'pino';
import traceName from 'prom-client';
const assertLoaded = () => process.moduleLoadList.includes('NativeModule assert');
const thrown = (fn) => { try { fn(); return undefined; } catch (e) { return { code: e.code, message: e.message }; } };
const seen = {};
yargsAssert.strictEqual(1, 1);
yargsAssert.notStrictEqual(1, 2);
sonicAssert(true, 'never');
seen.assertAfterPasses = assertLoaded();
seen.strictEqual = thrown(() => yargsAssert.strictEqual(1, 2, 'one is not two'));
seen.notStrictEqual = thrown(() => yargsAssert.notStrictEqual(NaN, NaN, 'NaN is NaN'));
seen.sonic = thrown(() => sonicAssert(false, 'sonic.fd must be a number'));
seen.assertAfterFailures = assertLoaded();
seen.threadStreamBefore = globalThis.threadStreamLoaded === true;
const stream = makeThreadStream({ dest: 1 });
seen.threadStream = { loaded: globalThis.threadStreamLoaded === true, name: stream.constructor.name, options: stream.options };
seen.otelBefore = globalThis.otelLoaded === true;
seen.trace = traceName();
seen.otelAfter = globalThis.otelLoaded === true;
process.stdout.write(JSON.stringify(seen));
`;

  it('pass what holds without loading it, and give the real module (its errors, its class, its exports) at the first use', async () => {
    const outfile = join(root, 'bundled.mjs');
    await build({
      stdin: { contents: PROGRAM, resolveDir: root, sourcefile: 'program.mjs', loader: 'js' },
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      outfile,
      banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
      plugins: [lazyAssertOfSonicBoom, lazyAssertOfYargs, lazyThreadStream, lazyOpenTelemetry],
      logLevel: 'silent',
    });
    const r = spawnSync(process.execPath, [outfile], { encoding: 'utf8', timeout: 15_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      assertAfterPasses: false,
      strictEqual: { code: 'ERR_ASSERTION', message: expect.stringMatching(/^one is not two/) },
      notStrictEqual: { code: 'ERR_ASSERTION', message: 'NaN is NaN' },
      sonic: { code: 'ERR_ASSERTION', message: 'sonic.fd must be a number' },
      assertAfterFailures: true,
      threadStreamBefore: false,
      threadStream: { loaded: true, name: 'ThreadStream', options: { dest: 1 } },
      otelBefore: false,
      trace: 'the real trace',
      otelAfter: true,
    });
  });
});
