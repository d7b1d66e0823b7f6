/**
 * Configuration text for the checks benchmark (bench/checks.ts): the same
 * real servers and interval written as a keepalived.conf and as a pybal.conf
 * with its pool file. Pure: no file is written here.
 */

/** The bench's real servers: `count` distinct loopback addresses, 127.10.0.1 onwards (all of 127/8 is local on Linux). */
export function checkServerAddresses(count: number): string[] {
  if (count > 250 * 250) throw new Error(`at most ${250 * 250} servers, not ${count}`);
  return Array.from({ length: count }, (_, i) => `127.10.${Math.floor(i / 250)}.${(i % 250) + 1}`);
}

export interface CheckedService {
  /** The virtual server's address (a VIP on the director). */
  readonly vip: string;
  /** Port of the virtual server and of every real server (PyBal checks the service port). */
  readonly port: number;
  readonly realServers: readonly string[];
  /** Between checks of one server (keepalived's delay_loop, pybal's proxyfetch.interval). */
  readonly intervalSec: number;
  /** keepalived's connect_timeout, pybal's proxyfetch.timeout. */
  readonly timeoutSec: number;
  readonly weight: number;
  /** IPVS scheduler. */
  readonly scheduler: string;
  /**
   * pybal's monitor (default ProxyFetch). IdleConnection holds one connection
   * per server (PyBal's defaults: connect timeout 5 s, keepalive on); it has no
   * interval and no keepalived counterpart, so only pybal runs it.
   * TCPConnect (pybal alone) connects and closes at the interval.
   */
  readonly monitor?: 'ProxyFetch' | 'IdleConnection' | 'TCPConnect';
  /** More lines of pybal's service section (`forward-method = dr`, `datapath-check = yes`). */
  readonly pybalServiceLines?: readonly string[];
}

/**
 * keepalived.conf as an operator writes it for an LVS director: one
 * virtual_server (NAT) whose real servers each have an HTTP_GET checker on `/`
 * expecting 200; every other setting is keepalived's default (retry,
 * delay_before_retry, warmup, no alpha).
 */
export function formatKeepalivedConf(service: CheckedService): string {
  const realServer = (address: string): string =>
    [
      `    real_server ${address} ${service.port} {`,
      `        weight ${service.weight}`,
      '        HTTP_GET {',
      '            url {',
      '                path /',
      '                status_code 200',
      '            }',
      `            connect_timeout ${service.timeoutSec}`,
      '        }',
      '    }',
    ].join('\n');
  return [
    'global_defs {',
    '    router_id pybal-bench',
    '}',
    '',
    `virtual_server ${service.vip} ${service.port} {`,
    `    delay_loop ${service.intervalSec}`,
    `    lvs_sched ${service.scheduler}`,
    '    lvs_method NAT',
    '    protocol TCP',
    ...service.realServers.map(realServer),
    '}',
    '',
  ].join('\n');
}

/**
 * pybal's BGP session to the bench's measuring peer (bench/lib/bgp-keepalive-peer.ts),
 * which listens on port 179 of `peerAddress` (pybal always dials port 179).
 */
export interface PybalBgp {
  readonly localAsn: number;
  readonly routerId: string;
  readonly peerAddress: string;
  /** pybal's own address: the source of its connection, where it listens, and the VIP's next hop. */
  readonly localIp: string;
  readonly holdTimeSec: number;
}

/**
 * pybal.conf for the same service: ProxyFetch on `/` at the same interval and
 * timeout, the servers from a file:// pool, no instrumentation server
 * (keepalived runs none either), and no BGP unless `bgp` is given: then one
 * session to that peer, announcing the VIP.
 */
export function formatPybalConf(service: CheckedService, poolPath: string, bgp?: PybalBgp): string {
  const periodic = (prefix: string): string[] => [`${prefix}.interval = ${service.intervalSec}`, `${prefix}.timeout = ${service.timeoutSec}`];
  const monitor =
    service.monitor === 'IdleConnection'
      ? ["monitors = [ 'IdleConnection' ]"]
      : service.monitor === 'TCPConnect'
        ? ["monitors = [ 'TCPConnect' ]", ...periodic('tcpconnect')]
        : ["monitors = [ 'ProxyFetch' ]", "proxyfetch.url = [ 'http://www.example.org/' ]", ...periodic('proxyfetch')];
  return [
    '[global]',
    ...(bgp === undefined
      ? ['bgp = no']
      : [
          'bgp = yes',
          `bgp-local-asn = ${bgp.localAsn}`,
          `bgp-router-id = ${bgp.routerId}`,
          `bgp-peer-address = [ '${bgp.peerAddress}' ]`,
          `bgp-local-ips = [ '${bgp.localIp}' ]`,
          `bgp-nexthop-ipv4 = ${bgp.localIp}`,
          `bgp-hold-time = ${bgp.holdTimeSec}`,
        ]),
    'instrumentation = no',
    '',
    `[checks_${service.port}]`,
    'protocol = tcp',
    `ip = ${service.vip}`,
    `port = ${service.port}`,
    `scheduler = ${service.scheduler}`,
    `config = file://${poolPath}`,
    ...monitor,
    ...(service.pybalServiceLines ?? []),
    '',
  ].join('\n');
}

/** The pool file in PyBal's legacy format, one server a line. */
export function formatLegacyPool(hosts: readonly string[], weight: number): string {
  return hosts.map((host) => `{ 'host': '${host}', 'weight': ${weight}, 'enabled': True }\n`).join('');
}
