// pybal.conf keys of data-path checks: which monitors check through the data
// path, where NAT makes it meaningless, and the firewall marks they use.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/parse-config.js';

const service = (lines: readonly string[], name = 'web'): string =>
  [`[${name}]`, 'protocol = tcp', 'ip = 192.0.2.1', 'port = 80', 'scheduler = wrr', 'config = file:///p', ...lines, ''].join('\n');

describe('data-path check keys', () => {
  it('is off by default, and datapath-check = yes turns it on for every monitor that can', () => {
    const off = parseConfig(service(["monitors = [ 'ProxyFetch', 'RunCommand' ]", "proxyfetch.url = [ 'http://x/' ]", 'runcommand.command = /bin/true']), 'p.conf');
    expect(off.config?.services[0]?.dataPathMonitors).toEqual([]);
    const on = parseConfig(
      service(["monitors = [ 'ProxyFetch', 'IdleConnection', 'RunCommand', 'TCPConnect' ]", "proxyfetch.url = [ 'http://x/' ]", 'runcommand.command = /bin/true', 'datapath-check = yes']),
      'p.conf',
    );
    expect(on.errors).toEqual([]);
    expect(on.config?.services[0]?.dataPathMonitors).toEqual(['ProxyFetch', 'IdleConnection', 'TCPConnect']);
  });

  it('takes each monitor’s own datapath key over the service’s', () => {
    const r = parseConfig(service(["monitors = [ 'IdleConnection', 'TCPConnect' ]", 'datapath-check = yes', 'tcpconnect.datapath = no']), 'p.conf');
    expect(r.config?.services[0]?.dataPathMonitors).toEqual(['IdleConnection']);
    const one = parseConfig(service(["monitors = [ 'IdleConnection', 'TCPConnect' ]", 'tcpconnect.datapath = yes']), 'p.conf');
    expect(one.config?.services[0]?.dataPathMonitors).toEqual(['TCPConnect']);
  });

  it('warns, with file, line and key, that NAT has no other data path, and checks as before', () => {
    const r = parseConfig(service(["monitors = [ 'TCPConnect' ]", 'forward-method = nat', 'datapath-check = yes']), 'p.conf');
    expect(r.errors).toEqual([]);
    expect(r.config?.services[0]?.dataPathMonitors).toEqual([]);
    expect(r.warnings).toEqual([expect.objectContaining({ file: 'p.conf', line: 9, key: 'datapath-check', message: expect.stringContaining('forward-method = nat') })]);
  });

  it('warns when none of the monitors can check through the data path', () => {
    const r = parseConfig(service(["monitors = [ 'RunCommand' ]", 'runcommand.command = /bin/true', 'datapath-check = yes']), 'p.conf');
    expect(r.config?.services[0]?.dataPathMonitors).toEqual([]);
    expect(r.warnings.map((w) => w.message)).toEqual([expect.stringContaining('ProxyFetch, IdleConnection, TCPConnect, UDP')]);
  });

  it('refuses a service fwmark inside the data-path range, and a base whose range would pass 2^32', () => {
    const clash = parseConfig(`[global]\ndatapath-fwmark-base = 0x1000\n${service(['fwmark = 0x1005', "monitors = [ 'TCPConnect' ]"])}`, 'p.conf');
    expect(clash.errors).toEqual([expect.objectContaining({ line: 9, key: 'fwmark', message: expect.stringContaining('0x1000-0x100fff') })]);
    const clear = parseConfig(`[global]\ndatapath-fwmark-base = 0x1000\n${service(['fwmark = 0xfff', "monitors = [ 'TCPConnect' ]"])}`, 'p.conf');
    expect(clear.errors).toEqual([]);
    expect(clear.config?.global.dataPathFwmarkBase).toBe(0x1000);
    const high = parseConfig(`[global]\ndatapath-fwmark-base = 0xfff00001\n${service(["monitors = [ 'TCPConnect' ]"])}`, 'p.conf');
    expect(high.errors).toEqual([expect.objectContaining({ line: 2, key: 'datapath-fwmark-base' })]);
    expect(parseConfig(service(["monitors = [ 'TCPConnect' ]"]), 'p.conf').config?.global.dataPathFwmarkBase).toBe(0x70b00000);
  });

  it('reads the source addresses by family and refuses the wrong family', () => {
    const r = parseConfig(`[global]\ndatapath-source-ipv4 = 198.51.100.2\ndatapath-source-ipv6 = 2001:DB8::2\n${service([])}`, 'p.conf');
    expect(r.config?.global).toMatchObject({ dataPathSourceIpv4: '198.51.100.2', dataPathSourceIpv6: '2001:db8::2' });
    const wrong = parseConfig(`[global]\ndatapath-source-ipv4 = 2001:db8::2\n${service([])}`, 'p.conf');
    expect(wrong.errors).toEqual([expect.objectContaining({ line: 2, key: 'datapath-source-ipv4' })]);
  });
});
