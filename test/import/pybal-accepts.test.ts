// What `pybal import` writes must be what pybal itself reads: each guide's
// pybal.conf goes through pybal's own parser (src/config/parse-config.ts)
// with no error and no warning, and the typed configuration holds the values
// the guide meant. Keys that other work adds to pybal (fwmark, the TCPConnect
// monitor...) are checked through the effective configuration that
// `pybal check-config --print` prints, by their names in the file.
import { describe, expect, it } from 'vitest';

import { formatConfig } from '../../src/config/format-config.js';
import { parseConfig } from '../../src/config/parse-config.js';
import type { Config, MonitorConfig, ServiceConfig } from '../../src/config/types.js';
import { formatProblem } from '../../src/runtime/errors.js';
import { convertGuide, GUIDE_VIP, GUIDES, type Guide } from './guides.js';

function accepted(g: Guide): { config: Config; service: ServiceConfig; monitor: MonitorConfig | undefined; printed: string[] } {
  const { conf } = convertGuide(g);
  const r = parseConfig(conf, 'pybal.conf');
  expect(r.errors.map(formatProblem)).toEqual([]);
  expect(r.warnings.map(formatProblem)).toEqual([]);
  const config = r.config as Config;
  expect(config.global.bgp).toBe(false);
  expect(config.services).toHaveLength(1);
  const service = config.services[0] as ServiceConfig;
  expect(service).toMatchObject({ ip: GUIDE_VIP, family: 4, depoolThreshold: 0.5, bgp: true });
  expect(service.poolUrl).toBe(`file:///etc/pybal/pools/${service.name}`);
  return { config, service, monitor: service.monitors[0], printed: formatConfig(config).split('\n') };
}

const byGuide = (file: string): Guide => GUIDES.find((g) => g.file === file) as Guide;

describe("pybal's parser accepts every converted guide", () => {
  for (const file of ['web-dr.keepalived.conf', 'web-dr.ldirectord.cf']) {
    it(`${file}: a DR service with a ProxyFetch that expects "I'm alive!"`, () => {
      const { service, monitor } = accepted(byGuide(file));
      expect(service).toMatchObject({ protocol: 'tcp', port: 80, scheduler: 'rr', forwardMethod: 'dr', persistenceTimeoutSec: 0 });
      expect(service.monitors).toHaveLength(1);
      expect(monitor).toMatchObject({ kind: 'ProxyFetch', urls: [`http://${GUIDE_VIP}/alive.html`], expectBody: "I'm alive!", expectBodyRegex: undefined, httpStatus: 200, checkAll: false });
      expect(monitor).toMatchObject(file.includes('keepalived') ? { intervalMs: 6000, timeoutMs: 3000, fall: 4 } : { intervalMs: 2000, timeoutMs: 10000, fall: 1 });
    });
  }

  for (const file of ['tcp-weights.keepalived.conf', 'tcp-weights.ldirectord.cf']) {
    it(`${file}: wrr on port 22136 with a TCPConnect monitor`, () => {
      const { service, printed } = accepted(byGuide(file));
      expect(service).toMatchObject({ protocol: 'tcp', port: 22136, scheduler: 'wrr', forwardMethod: 'dr' });
      expect(service.monitors.map((m) => m.kind)).toEqual(['TCPConnect']);
      expect(printed).toEqual(expect.arrayContaining(['tcpconnect.interval = 10', 'tcpconnect.timeout = 3', `tcpconnect.fall = ${file.includes('keepalived') ? 2 : 1}`]));
    });
  }

  for (const file of ['fwmark.keepalived.conf', 'fwmark.ldirectord.cf']) {
    it(`${file}: firewall mark 1 announced as the VIP, checked on port 80, persistent for 600 s`, () => {
      const { service, printed } = accepted(byGuide(file));
      expect(service).toMatchObject({ port: 80, scheduler: 'wlc', forwardMethod: 'dr', persistenceTimeoutSec: 600 });
      expect(service.monitors.map((m) => m.kind)).toEqual(['TCPConnect']);
      expect(printed).toEqual(expect.arrayContaining(['fwmark = 1', 'tcpconnect.timeout = 3']));
    });
  }

  for (const file of ['udp-command.keepalived.conf', 'udp-command.ldirectord.cf']) {
    it(`${file}: UDP with a RunCommand monitor passing the server's address`, () => {
      const { service, monitor } = accepted(byGuide(file));
      expect(service).toMatchObject({ protocol: 'udp', port: 5001, scheduler: 'rr', forwardMethod: 'dr', ops: false });
      const args = file.includes('keepalived')
        ? [{ server: 'ip' }, { literal: '5001' }]
        : [{ literal: GUIDE_VIP }, { literal: '5001' }, { server: 'ip' }, { literal: '5001' }];
      expect(monitor).toEqual({ kind: 'RunCommand', command: '/usr/local/bin/udp-check', arguments: args, intervalMs: 5000, timeoutMs: 3000, rise: 1, fall: 1, logOutput: true });
    });
  }
});
