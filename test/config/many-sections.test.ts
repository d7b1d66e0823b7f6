/**
 * A file of many services reads as its services do one by one. The reader
 * keeps some results for the whole file (Python literals by text, what to say
 * of an unknown key, each monitor's option keys), so that a thousand services
 * do not each repeat them: these tests pin that nothing kept for one section
 * changes what another one gets, and that checks across sections (duplicates)
 * still see every one of them.
 */
import { describe, expect, it } from 'vitest';

import { readIniSteps } from '../../src/config/ini-reader.js';
import { parseConfig, parseConfigSteps } from '../../src/config/parse-config.js';
import type { Config, ServiceConfig } from '../../src/config/types.js';
import { formatProblem } from '../../src/runtime/errors.js';

const FILE = 'many.conf';
const GLOBAL = '[global]\nbgp = no\n';

function check(text: string): { config: Config | undefined; errors: string[]; warnings: string[] } {
  const r = parseConfig(text, FILE);
  return { config: r.config, errors: r.errors.map(formatProblem), warnings: r.warnings.map(formatProblem) };
}

/** Service i of a varied file: the shapes cycle, so that neighbours differ. */
function section(i: number): string {
  const name = `svc_${String(i).padStart(4, '0')}`;
  const ip = i % 7 === 3 ? `2001:db8::${(i + 1).toString(16)}` : `10.${i >> 8}.${i & 255}.1`;
  const lines = [`[${name}]`, 'protocol = tcp', `ip = ${ip}`, `port = ${80 + (i % 3)}`];
  switch (i % 5) {
    case 0:
      lines.push('scheduler = wrr', `config = file:///etc/pybal/pools/${name}`, "monitors = [ 'IdleConnection' ]");
      break;
    case 1:
      lines.push(
        'scheduler = sh',
        'scheduler-flags = sh-port',
        `config = etcd://conf.example.org:4001/pools/${name}/`,
        'monitors = ["IdleConnection", "ProxyFetch"]',
        `proxyfetch.url = [ 'http://${name}.example.org/health' ]`,
        'idleconnection.max-delay = 30',
      );
      break;
    case 2:
      lines.push(
        'scheduler = wlc',
        'config = file:///etc/pybal/pools/%(__name__)s',
        "monitors = [ 'RunCommand' ]",
        'runcommand.command = /usr/local/bin/check',
        `runcommand.arguments = [ server.host, '--id', '${i}' ]`,
        'persistence-timeout = 300',
      );
      break;
    case 3:
      lines.push('scheduler = mh', 'tunneling = yes', `config = file:///etc/pybal/pools/${name}`, 'monitors = []', 'depool-threshold = .25');
      break;
    default:
      lines.push(
        'scheduler = rr',
        'forward-method = nat',
        `real-port = ${8000 + i}`,
        `config = http://pools.example.org/${name}`,
        "monitors = [ 'ProxyFetch' ]",
        "proxyfetch.url = [ 'http://localhost/' ]",
        `proxyfetch.timeout = ${1 + (i % 4)}`,
      );
  }
  return `${lines.join('\n')}\n`;
}

/** The service as read from the whole file, without the line of its header. */
function withoutSource(s: ServiceConfig): Omit<ServiceConfig, 'source'> {
  const { source: _, ...rest } = s;
  return rest;
}

describe('a file of many services', () => {
  it('reads 1,000 services as it reads each of them alone', () => {
    const count = 1000;
    const all = check(GLOBAL + Array.from({ length: count }, (_, i) => section(i)).join('\n'));
    expect(all.errors).toEqual([]);
    const services = all.config?.services ?? [];
    expect(services).toHaveLength(count);
    for (let i = 0; i < count; i++) {
      const alone = check(GLOBAL + section(i));
      expect(alone.errors).toEqual([]);
      expect(withoutSource(services[i] as ServiceConfig)).toEqual(withoutSource(alone.config?.services[0] as ServiceConfig));
    }
    // The same warnings, in the file's order: each service's own, none lost or shared.
    const warned = all.warnings.map((w) => w.replace(/^many\.conf:\d+: /, ''));
    const alone = Array.from({ length: count }, (_, i) => check(GLOBAL + section(i)).warnings.map((w) => w.replace(/^many\.conf:\d+: /, ''))).flat();
    expect(warned).toEqual(alone);
  });

  it('reads 1,000 services as a job that yields at each service and every few hundred lines, to the same result', () => {
    const count = 1000;
    const text = GLOBAL + Array.from({ length: count }, (_, i) => section(i)).join('\n');
    const steps = <T>(job: Generator<unknown, T, undefined>): { steps: number; value: T } => {
      let n = 0;
      for (;;) {
        const next = job.next();
        if (next.done) return { steps: n, value: next.value };
        n++;
      }
    };
    // A SIGHUP parses in slices: the reading of the lines alone yields every 512 of them...
    const lines = text.split('\n').length;
    const ini = steps(readIniSteps(text, FILE));
    expect(ini.steps).toBe(Math.floor((lines - 2) / 512));
    expect(ini.value.document.sections).toHaveLength(count + 1);
    // ...and the whole parse at each service besides.
    const parsed = steps(parseConfigSteps(text, FILE));
    expect(parsed.steps).toBe(ini.steps + count);
    expect(parsed.value).toEqual(parseConfig(text, FILE));
    expect(parsed.value.config?.services).toHaveLength(count);
  });

  it('reports a malformed value that many services share in each of them, at its own line and column', () => {
    // The same text in every section, indented differently.
    const text = GLOBAL + Array.from({ length: 50 }, (_, i) => `[s${i}]\nprotocol = tcp\nip = 10.0.0.${i}\nport = 80\nscheduler = wrr\nconfig = file:///p\nmonitors =${' '.repeat(1 + (i % 3))}[ 'ProxyFetch'\n`).join('');
    const { errors } = check(text);
    expect(errors).toEqual(
      Array.from({ length: 50 }, (_, i) => `many.conf:${3 + 7 * i + 6}: monitors: malformed Python literal at column ${12 + (i % 3)}: '[' is never closed`),
    );
  });

  it('keeps names allowed in one key out of another key with the same text', () => {
    const runCommand = "[s1]\nprotocol = tcp\nip = 10.0.0.1\nport = 80\nscheduler = wrr\nconfig = file:///p\nmonitors = [ 'RunCommand' ]\nruncommand.command = /bin/true\nruncommand.arguments = [ server.host ]\n";
    const listed = "[s2]\nprotocol = tcp\nip = 10.0.0.2\nport = 80\nscheduler = wrr\nconfig = file:///p\nmonitors = [ server.host ]\n";
    for (const text of [GLOBAL + runCommand + listed, GLOBAL + listed + runCommand]) {
      const { errors } = check(text);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/monitors: malformed Python literal at column 14: unknown name 'server\.host'/);
    }
    const { config } = check(GLOBAL + runCommand);
    expect(config?.services[0]?.monitors[0]).toMatchObject({ kind: 'RunCommand', arguments: [{ server: 'host' }] });
  });

  it('reports an unknown key in every service that has it, each at its own line', () => {
    const count = 300;
    const text =
      GLOBAL +
      Array.from({ length: count }, (_, i) => `[s${i}]\nprotocol = tcp\nip = 10.0.${i >> 8}.${i & 255}\nport = 80\nscheduler = wrr\nconfig = file:///p\nmonitors = []\ncolour = blue\nvip = 10.9.9.9\n`).join('');
    const { errors, warnings } = check(text);
    const keyLine = (i: number, offset: number): number => 3 + 9 * i + offset;
    expect(warnings.filter((w) => w.includes('colour'))).toEqual(Array.from({ length: count }, (_, i) => `many.conf:${keyLine(i, 7)}: colour: unknown key; ignored`));
    expect(errors).toEqual(
      Array.from(
        { length: count },
        (_, i) =>
          `many.conf:${keyLine(i, 8)}: vip: unknown key: pybal cannot honour it, and ignoring it could change how traffic is forwarded, addressed, pooled or announced; did you mean 'ip'?`,
      ),
    );
  });

  it('finds duplicates among 1,000 services, each named at its own line with the first one it repeats', () => {
    const count = 1000;
    // Every tenth service repeats service 0's protocol, ip and port.
    const text =
      GLOBAL +
      Array.from({ length: count }, (_, i) => `[s${i}]\nprotocol = tcp\nip = ${i % 10 === 0 ? '10.0.0.1' : `10.1.${i >> 8}.${i & 255}`}\nport = 80\nscheduler = wrr\nconfig = file:///p\nmonitors = []\n`).join('');
    const { errors } = check(text);
    const ipLine = (i: number): number => 3 + 7 * i + 2;
    expect(errors).toEqual(
      Array.from({ length: count / 10 - 1 }, (_, k) => {
        const i = 10 * (k + 1);
        return `many.conf:${ipLine(i)}: ip: [s${i}] has the same protocol, ip and port (tcp 10.0.0.1:80) as [s0] (line 3)`;
      }),
    );
  });
});
