// Which interfaces send ICMP redirects, read from a /proc/sys/net/ipv4/conf
// laid out in a temporary directory, and the warning for NAT services.
// test/e2e/nat-redirects.lab.test.ts reads the real /proc in a lab director.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { interfacesSendingRedirects, natRedirectWarning } from '../../src/ipvs/redirects.js';
import { serviceConfig } from '../support/config-fixtures.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function confDir(values: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'pybal-conf-'));
  dirs.push(dir);
  for (const [name, value] of Object.entries(values)) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'send_redirects'), `${value}\n`);
  }
  return dir;
}

describe('interfacesSendingRedirects', () => {
  it('lists the interfaces whose own send_redirects is on when all is off, never lo', async () => {
    expect(await interfacesSendingRedirects(confDir({ all: '0', default: '1', lo: '1', eth0: '1', eth1: '0', 'eth0.100': '1' }))).toEqual(['eth0', 'eth0.100']);
  });

  it('lists every interface but lo when all is on', async () => {
    expect(await interfacesSendingRedirects(confDir({ all: '1', default: '0', lo: '0', eth0: '0', eth1: '0' }))).toEqual(['eth0', 'eth1']);
  });

  it('lists none when everything is off', async () => {
    expect(await interfacesSendingRedirects(confDir({ all: '0', default: '0', lo: '1', eth0: '0' }))).toEqual([]);
  });

  it('cannot tell without /proc', async () => {
    expect(await interfacesSendingRedirects(join(tmpdir(), 'pybal-no-such-dir'))).toBeUndefined();
  });
});

describe('natRedirectWarning', () => {
  const nat4 = serviceConfig('web', '192.0.2.1', { forwardMethod: 'nat' });
  const nat6 = serviceConfig('web6', '2001:db8::1', { forwardMethod: 'nat', family: 6 });
  const dr4 = serviceConfig('api', '192.0.2.2', { forwardMethod: 'dr' });

  it('warns for IPv4 NAT services on a host that sends redirects, naming services, interfaces and the sysctls to set', () => {
    expect(natRedirectWarning([nat4, dr4, nat6], ['eth0', 'eth0.100'])).toBe(
      'forward-method = nat (web) on a host that sends ICMP redirects (eth0, eth0.100): if the real servers share a network with the router, ' +
        'replies they are redirected to send around the director bypass IPVS and clients lose them; set net.ipv4.conf.all.send_redirects=0 and ' +
        'net.ipv4.conf.eth0.send_redirects=0, net.ipv4.conf.eth0/100.send_redirects=0',
    );
  });

  it('says nothing without an IPv4 NAT service, without redirects, or when /proc cannot tell', () => {
    expect(natRedirectWarning([dr4, nat6], ['eth0'])).toBeUndefined();
    expect(natRedirectWarning([nat4], [])).toBeUndefined();
    expect(natRedirectWarning([nat4], undefined)).toBeUndefined();
  });
});
