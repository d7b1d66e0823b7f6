import { spawnSync } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdtemp, open, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { decode } from 'ini';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCheckConfig } from '../../src/cli/check-config.js';
import { effectiveSections, formatConfig } from '../../src/config/format-config.js';
import { GLOBAL_KEYS, MONITOR_KEYS, SERVICE_KEYS } from '../../src/config/keys.js';
import { loadConfig, MAX_CONFIG_BYTES } from '../../src/config/load-config.js';
import { parseConfig } from '../../src/config/parse-config.js';

const EXAMPLE = fileURLToPath(new URL('../../etc/pybal.conf.example', import.meta.url));

async function run(file: string, print = false): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await runCheckConfig({ file, print }, (line) => lines.push(line));
  return { code, lines };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pybal-check-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

describe('etc/pybal.conf.example', () => {
  it('checks clean: exit 0 and one summary line', async () => {
    const { code, lines } = await run(EXAMPLE);
    expect(lines).toEqual([
      `${EXAMPLE}: OK: 6 services (text_80 tcp 192.0.2.11:80 wlc, dns_53_udp udp 192.0.2.22:53 wrr, ssh_22_v6 tcp [2001:db8::22]:22 sh, ` +
        'tunnel_443 tcp 192.0.2.43:443 wrr, web_fwmark_3 fwmark 3 (tcp 192.0.2.80:80) mh, sip_5060_udp udp 192.0.2.50:5060 rr), BGP on (AS 64496, 2 peers)',
    ]);
    expect(code).toBe(0);
  });

  it('sets every key pybal knows, each first appearance under a comment', async () => {
    const text = await readFile(EXAMPLE, 'utf8');
    const lines = text.split('\n');
    const globalStart = lines.indexOf('[global]');
    const globalEnd = lines.findIndex((l, i) => i > globalStart && l.startsWith('['));
    const keyAt = (l: string): string | undefined => /^([^#;[\s][^=:]*?)\s*[=:]/.exec(l)?.[1]?.toLowerCase();
    const globalKeys = lines.slice(0, globalEnd).map(keyAt);
    const serviceKeys = lines.slice(globalEnd).map(keyAt);
    for (const key of GLOBAL_KEYS) expect(globalKeys, key).toContain(key);
    for (const key of [...SERVICE_KEYS, ...MONITOR_KEYS]) expect(serviceKeys, key).toContain(key);
    const seen = new Set<string>();
    lines.forEach((line, i) => {
      const key = keyAt(line);
      const scope = i < globalEnd ? 'g' : 's';
      if (key === undefined || seen.has(scope + key)) return;
      seen.add(scope + key);
      expect(lines[i - 1], `comment above ${key} (line ${i + 1})`).toMatch(/^# /);
    });
  });

  it('parses with neither errors nor warnings, using documentation addresses only', async () => {
    const r = await loadConfig(EXAMPLE);
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    const config = r.config;
    if (!config) throw new Error('no config');
    const addresses = [
      ...config.services.map((s) => s.ip),
      ...config.global.bgpPeerAddresses,
      config.global.bgpNexthopIpv4 ?? '',
      config.global.bgpNexthopIpv6 ?? '',
    ];
    for (const a of addresses) expect(a, a).toMatch(/^(192\.0\.2\.\d+|2001:db8:.*)$/);
    for (const s of config.services) expect(s.poolUrl).toMatch(/^file:\/\/\/etc\/pybal\/pools\//);
  });
});

/** Resolves with what the promise gave, or rejects when it takes longer than ms. */
async function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('loadConfig reads only regular files', () => {
  const cannot = (path: string, why: string): unknown => ({ errors: [{ file: path, message: `cannot read the configuration: ${why}` }], warnings: [] });

  it('refuses a FIFO at once, without waiting for a writer', async () => {
    const fifo = join(dir, 'fifo.conf');
    const made = spawnSync('mkfifo', [fifo]);
    expect(made.status).toBe(0);
    try {
      expect(await within(2000, loadConfig(fifo))).toEqual(cannot(fifo, 'not a regular file (a FIFO)'));
    } finally {
      // A reader stuck in open() (the defect) is released by a writer coming and going.
      const writer = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined);
      await writer?.close();
    }
  });

  it('refuses a Unix socket', async () => {
    const path = join(dir, 'socket.conf');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      expect(await within(2000, loadConfig(path))).toEqual(cannot(path, 'not a regular file (a socket)'));
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('refuses a character device', async () => {
    expect(await loadConfig('/dev/null')).toEqual(cannot('/dev/null', 'not a regular file (a character device)'));
    expect(await within(2000, loadConfig('/dev/zero'))).toEqual(cannot('/dev/zero', 'not a regular file (a character device)'));
  });

  it(`refuses a file larger than ${MAX_CONFIG_BYTES} bytes, and reads one of exactly that size`, async () => {
    expect(MAX_CONFIG_BYTES).toBe(16 * 1024 * 1024);
    const big = join(dir, 'big.conf');
    await writeFile(big, '[global]\n');
    await truncate(big, MAX_CONFIG_BYTES + 1); // sparse: cheap to make
    expect(await loadConfig(big)).toEqual(cannot(big, `larger than the ${MAX_CONFIG_BYTES}-byte limit (${MAX_CONFIG_BYTES + 1} bytes)`));
    await truncate(big, MAX_CONFIG_BYTES);
    const r = await loadConfig(big);
    expect(r.errors.map((e) => e.message)).not.toContainEqual(expect.stringMatching(/larger than/));
  });

  it('follows a symbolic link to a regular file', async () => {
    const link = join(dir, 'link.conf');
    await symlink(EXAMPLE, link);
    const r = await loadConfig(link);
    expect(r.errors).toEqual([]);
    expect(r.config?.services).toHaveLength(6);
  });
});

describe('runCheckConfig', () => {
  it('prints every error with its line, then a count, and exits 1', async () => {
    const file = await write(
      'several.conf',
      `[global]
bgp = yes
bgp-local-asn = 4294967296
bgp-peer-address = 192.0.2.254
bgp-nexthop-ipv4 = 192.0.2.100

[text_80]
protocol = tcp
ip = 192.0.2.11
port = 80a
scheduler = wcl
config = file:///etc/pybal/pools/text_80
monitors = [ 'ProxyFetch' ]
proxyfetch.url = [ 'http://en.example.org/' ]
proxyfetch.timout = 3
`,
    );
    const { code, lines } = await run(file);
    expect(lines).toEqual([
      `${file}:3: bgp-local-asn: expected an AS number between 1 and 4294967295, got '4294967296'`,
      `${file}:10: port: expected an integer, got '80a'`,
      `${file}:11: scheduler: unknown scheduler 'wcl'; expected one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos`,
      `${file}:15: proxyfetch.timout: warning: unknown ProxyFetch option; did you mean 'proxyfetch.timeout'?`,
      `${file}: 3 errors, 1 warning`,
    ]);
    expect(code).toBe(1);
  });

  it('prints warnings of a valid file, marked, before the summary, and exits 0', async () => {
    const file = await write('warn.conf', '[dns]\nprotocol = udp\nip = 2001:DB8::53\nport = 53\nscheduler = rr\nconfig = file:///etc/pybal/pools/dns\ndryrun = yes\n');
    const { code, lines } = await run(file);
    expect(lines).toEqual([
      `${file}:1: monitors: warning: LVS service dns does not have a 'monitors' configuration option set; its servers will never be health-checked`,
      `${file}:7: dryrun: warning: ignored: PyBal's command line always overrides it (use -n)`,
      `${file}: OK: 1 service (dns udp [2001:db8::53]:53 rr), BGP off, 2 warnings`,
    ]);
    expect(code).toBe(0);
  });

  it('fails on a missing file, naming it (PyBal would silently run with nothing)', async () => {
    const file = join(dir, 'absent.conf');
    expect(await run(file)).toEqual({ code: 1, lines: [`${file}: cannot read the configuration: no such file`, `${file}: 1 error`] });
  });

  it('fails on a directory', async () => {
    expect(await run(dir)).toEqual({ code: 1, lines: [`${dir}: cannot read the configuration: not a regular file (a directory)`, `${dir}: 1 error`] });
  });

  it.each([
    ['empty', ''],
    ['only comments', '# to do\n'],
    ['only [global]', '[global]\nbgp = no\n'],
    ['CR-only line endings', '[global]\rbgp = no\r[s]\rprotocol = tcp\rip = 192.0.2.1\rport = 80\rscheduler = wlc\rconfig = file:///p\r'],
  ])('fails on a file with no services: %s', async (name, text) => {
    const file = await write(`none-${name.replace(/\W+/g, '-')}.conf`, text);
    const { code, lines } = await run(file);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^${file}: .*(no services are defined|CR-only line endings)`));
    expect(lines[1]).toBe(`${file}: 1 error`);
    expect(code).toBe(1);
  });

  it('fails on a file without sections', async () => {
    const file = await write('empty-ish.conf', 'bgp = yes\n');
    const { code, lines } = await run(file);
    expect(lines).toEqual([
      `${file}: no services are defined (every section other than [global] is a service); pybal refuses to run without one`,
      `${file}:1: no section header before this line (every key belongs to a [section]): "bgp = yes"`,
      `${file}: 2 errors`,
    ]);
    expect(code).toBe(1);
  });

  it('with --print, keeps everything else as INI comments and prints the effective configuration', async () => {
    const { code, lines } = await run(EXAMPLE, true);
    expect(code).toBe(0);
    expect(lines[0]).toMatch(/^; .*: OK: 6 services/);
    const ini = lines.filter((l) => !l.startsWith(';')).join('\n');
    const config = (await loadConfig(EXAMPLE)).config;
    if (!config) throw new Error('no config');
    expect(ini).toBe(formatConfig(config).replace(/\n$/, ''));
    expect({ ...decode(ini) }).toEqual(effectiveSections(config));
  });
});

describe('formatConfig', () => {
  it('fills in every default and renders PyBal key spellings', () => {
    const r = parseConfig(
      "[s]\nprotocol = tcp\nip = 192.0.2.1\nport = 80\nscheduler = wlc\nconfig = file:///p\nmonitors = [ 'RunCommand' ]\nruncommand.command = /bin/check\nruncommand.arguments = [ server.host, 'x' ]\n",
      't.conf',
    );
    if (!r.config) throw new Error('no config');
    const sections = effectiveSections(r.config);
    expect(sections.global).toEqual({
      bgp: 'no',
      'bgp-peer-address': '[]',
      'bgp-as-path': '',
      'bgp-med': '0',
      'bgp-local-ips': "['']",
      'bgp-local-port': '179',
      'bgp-hold-time': '180',
      'bgp-communities': '',
      'bgp-connect-retry': '5',
      'bgp-graceful-restart': '0',
      'bgp-drain': 'no',
      'bgp-drain-med': '4294967295',
      'bgp-bfd': 'no',
      'bgp-bfd-interval': '0.3',
      'bgp-bfd-multiplier': '3',
      instrumentation: 'no',
      instrumentation_port: '9090',
      instrumentation_ips: "['127.0.0.1', '::1']",
      'runcommand-max-concurrent': '32',
      'ipvs-resync-interval': '60',
      'event-history-size': '1000',
      'ipvs-stats-interval': '10',
      'dry-run': 'no',
      advertised_instrumentation_ips: '[]',
      'datapath-fwmark-base': '0x70b00000',
      'memory-saving': 'no',
    });
    expect(sections.s).toEqual({
      protocol: 'tcp',
      ip: '192.0.2.1',
      port: '80',
      scheduler: 'wlc',
      'scheduler-flags': '',
      ops: 'no',
      config: 'file:///p',
      monitors: "['RunCommand']",
      'depool-threshold': '0.5',
      bgp: 'yes',
      'bgp-communities': '',
      'bgp-withdraw-when-down': 'no',
      'forward-method': 'dr',
      'persistence-timeout': '0',
      'upper-threshold': '0',
      'lower-threshold': '0',
      'runcommand.command': '/bin/check',
      'runcommand.arguments': "[server.host, 'x']",
      'runcommand.interval': '60',
      'runcommand.timeout': '20',
      'runcommand.rise': '1',
      'runcommand.fall': '1',
      'runcommand.log-output': 'yes',
    });
    // The rendered values read back into the same configuration.
    const again = parseConfig(
      Object.entries(sections)
        .map(([name, values]) => `[${name}]\n${Object.entries(values).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`)
        .join(''),
      't.conf',
    );
    expect(again.errors).toEqual([]);
    expect(again.config?.services).toEqual(r.config.services.map((s) => ({ ...s, source: { file: 't.conf', line: 28 } })));
    expect(again.config?.global).toEqual(r.config.global);
  });
});
