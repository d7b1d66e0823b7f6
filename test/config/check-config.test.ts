import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { decode } from 'ini';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCheckConfig } from '../../src/cli/check-config.js';
import { effectiveSections, formatConfig } from '../../src/config/format-config.js';
import { GLOBAL_KEYS, MONITOR_KEYS, SERVICE_KEYS } from '../../src/config/keys.js';
import { loadConfig } from '../../src/config/load-config.js';
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
      `${EXAMPLE}: OK: 3 services (text_80 tcp 192.0.2.11:80 wlc, dns_53_udp udp 192.0.2.22:53 wrr, ssh_22_v6 tcp [2001:db8::22]:22 sh), BGP on (AS 64496, 2 peers)`,
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
    expect(await run(dir)).toEqual({ code: 1, lines: [`${dir}: cannot read the configuration: is a directory`, `${dir}: 1 error`] });
  });

  it('fails on a file without sections', async () => {
    const file = await write('empty-ish.conf', 'bgp = yes\n');
    const { code, lines } = await run(file);
    expect(lines).toEqual([
      `${file}:1: no section header before this line (every key belongs to a [section]): "bgp = yes"`,
      `${file}: 1 error`,
    ]);
    expect(code).toBe(1);
  });

  it('with --print, keeps everything else as INI comments and prints the effective configuration', async () => {
    const { code, lines } = await run(EXAMPLE, true);
    expect(code).toBe(0);
    expect(lines[0]).toMatch(/^; .*: OK: 3 services/);
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
      instrumentation: 'no',
      instrumentation_port: '9090',
      instrumentation_ips: "['127.0.0.1', '::1']",
      'runcommand-max-concurrent': '32',
      'ipvs-resync-interval': '60',
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
    expect(again.config?.services).toEqual(r.config.services.map((s) => ({ ...s, source: { file: 't.conf', line: 16 } })));
    expect(again.config?.global).toEqual(r.config.global);
  });
});
