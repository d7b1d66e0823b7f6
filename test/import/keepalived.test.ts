import { describe, expect, it } from 'vitest';

import { parseKeepalivedSyntax, tokenizeKeepalivedLine, type IncludeResolver, type KaNode } from '../../src/import/keepalived-syntax.js';
import { parseKeepalived } from '../../src/import/keepalived.js';
import type { LvsImport, LvsService } from '../../src/import/model.js';
import { formatProblem } from '../../src/runtime/errors.js';
import { noteLines, onlyService } from './helpers.js';

const FILE = 'keepalived.conf';

/** The statements as `keyword args` lines, children indented, for compact expectations. */
function outline(nodes: readonly KaNode[], depth = 0): string[] {
  return nodes.flatMap((n) => [
    `${'  '.repeat(depth)}${[n.keyword, ...n.args].join(' ')} @${n.at.line}${n.at.endLine !== undefined ? `-${n.at.endLine}` : ''}`,
    ...outline(n.children ?? [], depth + 1),
  ]);
}

function read(text: string, resolve?: IncludeResolver): LvsImport {
  return parseKeepalived(text, FILE, resolve);
}

const only = (text: string): LvsService => onlyService(read(text));
const notes = noteLines;

/** One DR service on 192.0.2.1:80 with `body` inside it. */
function vs(body: string, head = 'virtual_server 192.0.2.1 80'): string {
  return `${head} {\n    lb_algo rr\n    lb_kind DR\n${body}\n}\n`;
}

describe('keepalived syntax', () => {
  it('splits words on white space, keeps quoted parts together and drops comments', () => {
    const words = (line: string): string[] => tokenizeKeepalivedLine(line).tokens.flatMap((t) => (t.kind === 'word' ? [t.text] : [`<${t.kind}>`]));
    expect(words('  path /alive.html   # the page')).toEqual(['path', '/alive.html']);
    expect(words('misc_path "/bin/check a b" ! comment')).toEqual(['misc_path', '/bin/check a b']);
    expect(words(`regex "I'm alive!"`)).toEqual(['regex', "I'm alive!"]);
    expect(words(`abcd" efg h "ijk x`)).toEqual(['abcd efg h ijk', 'x']);
    expect(words(`'single "quoted"' two`)).toEqual(['single "quoted"', 'two']);
    expect(words('real_server 192.0.2.7 80{')).toEqual(['real_server', '192.0.2.7', '80', '<open>']);
    expect(words('url { path / }')).toEqual(['url', '<open>', 'path', '/', '<close>']);
    expect(words('a "tab\\there \\x41\\101 \\"q\\""')).toEqual(['a', 'tab\there AA "q"']);
  });

  it('reports an unterminated quote with its line', () => {
    const r = parseKeepalivedSyntax('global_defs {\n  router_id "lvs1\n}\n', FILE);
    expect(r.errors.map(formatProblem)).toEqual(['keepalived.conf:2: unterminated double quote (opened at column 13)']);
  });

  it('builds blocks, with `{` on the keyword line or alone on the next one', () => {
    const r = parseKeepalivedSyntax(['virtual_server 192.0.2.1 80', '{', '  real_server 192.0.2.7 80 {', '    weight 2', '  }', '}', 'global_defs { router_id x }'].join('\n'), FILE);
    expect(r.errors).toEqual([]);
    expect(outline(r.nodes)).toEqual(['virtual_server 192.0.2.1 80 @1-6', '  real_server 192.0.2.7 80 @3-5', '    weight 2 @4', 'global_defs @7-7', '  router_id x @7']);
  });

  it('names the line of an unmatched brace and of a block never closed', () => {
    expect(parseKeepalivedSyntax('}\n', FILE).errors.map(formatProblem)).toEqual(["keepalived.conf:1: '}' with no open block"]);
    expect(parseKeepalivedSyntax('a\nb {\n c {\n', FILE).errors.map(formatProblem)).toEqual([
      "keepalived.conf:3: the block of c is never closed (missing '}')",
      "keepalived.conf:2: the block of b is never closed (missing '}')",
    ]);
    expect(parseKeepalivedSyntax('a {\n}\n{\n', FILE).errors.map(formatProblem)).toEqual(["keepalived.conf:3: '{' with no keyword before it"]);
  });

  it('substitutes $PARAMETERS and leaves conditional lines out with a note', () => {
    const r = parseKeepalivedSyntax(['$VIP=192.0.2.1', '$PORT=80', 'virtual_server $VIP ${PORT} {', '@lvs1 lb_algo rr', '@^lvs1 lb_algo wrr', '}'].join('\n'), FILE);
    expect(r.errors).toEqual([]);
    expect(outline(r.nodes)).toEqual(['virtual_server 192.0.2.1 80 @3-6']);
    expect(notes(r)).toEqual([
      "4: conditional line (@lvs1) left out: pybal import does not know this host's config-id, and pybal.conf has no conditional lines",
      "5: conditional line (@^lvs1) left out: pybal import does not know this host's config-id, and pybal.conf has no conditional lines",
    ]);
  });

  it('reads includes in place, relative to the including file, through the resolver', () => {
    const files: Record<string, string> = {
      'conf.d/web.conf': 'real_server 192.0.2.7 80 {\n  weight 3\n}\ninclude nested.conf\n',
      'conf.d/nested.conf': 'real_server 192.0.2.8 80\n',
    };
    const asked: string[] = [];
    const resolve: IncludeResolver = (pattern, from) => {
      asked.push(`${from} -> ${pattern}`);
      const path = from.includes('/') ? `${from.slice(0, from.lastIndexOf('/'))}/${pattern}` : pattern;
      const text = files[path];
      return text === undefined ? { error: 'no such file' } : { files: [{ file: path, text }] };
    };
    const r = parseKeepalivedSyntax('virtual_server 192.0.2.1 80 {\n  include conf.d/web.conf\n  include missing.conf\n}\n', FILE, resolve);
    expect(asked).toEqual(['keepalived.conf -> conf.d/web.conf', 'conf.d/web.conf -> nested.conf', 'keepalived.conf -> missing.conf']);
    expect(outline(r.nodes)).toEqual(['virtual_server 192.0.2.1 80 @1-4', '  real_server 192.0.2.7 80 @1-3', '    weight 3 @2', '  real_server 192.0.2.8 80 @1']);
    expect(r.nodes[0]?.children?.map((c) => c.at.file)).toEqual(['conf.d/web.conf', 'conf.d/nested.conf']);
    expect(r.errors.map(formatProblem)).toEqual(['keepalived.conf:3: include missing.conf: no such file']);
  });

  it('refuses an include cycle, naming the chain', () => {
    const resolve: IncludeResolver = (pattern) => ({ files: [{ file: pattern, text: `include ${pattern === 'a.conf' ? 'b.conf' : 'a.conf'}\n` }] });
    const r = parseKeepalivedSyntax('include a.conf\n', FILE, resolve);
    expect(r.errors.map(formatProblem)).toEqual(['b.conf:1: include a.conf: a.conf would include itself (keepalived.conf -> a.conf -> b.conf -> a.conf)']);
  });

  it('without a resolver, an include is an error', () => {
    expect(parseKeepalivedSyntax('include x.conf\n', FILE).errors.map(formatProblem)).toEqual(['keepalived.conf:1: include x.conf: includes cannot be read here']);
  });
});

describe('keepalived: virtual servers', () => {
  it('carries an address service with keepalived defaults: weight 1, delay_loop 60, connect_timeout 5, retry 1', () => {
    const s = only(vs('    real_server 192.0.2.7 80 {\n        TCP_CHECK {\n        }\n    }'));
    expect(s).toMatchObject({ ip: '192.0.2.1', family: 4, port: 80, protocol: 'tcp', scheduler: 'rr', forwarding: 'dr', ops: false, schedulerFlags: [] });
    expect(s.servers).toEqual([{ at: { file: FILE, line: 4, endLine: 7 }, host: '192.0.2.7', port: 80, weight: 1, enabled: true }]);
    expect(s.checks).toEqual([{ kind: 'tcp', at: { file: FILE, line: 5, endLine: 6 }, intervalSec: 60, timeoutSec: 5, fall: 2 }]);
  });

  it('forwards by NAT when lb_kind is missing, as keepalived does, and says so', () => {
    const r = read('virtual_server 192.0.2.1 80 {\n  lvs_sched wlc\n}\n');
    expect(r.services[0]?.forwarding).toBe('nat');
    expect(notes(r.services[0]!)).toContain('1: no lvs_method (lb_kind): keepalived forwards by NAT then, and so does this service (forward-method = nat)');
  });

  it('reads lvs_sched, lvs_method, protocol, ops, persistence and scheduler flags', () => {
    const s = only(
      [
        'virtual_server 2001:db8::1 53 {',
        '  lvs_sched sh',
        '  sh-port',
        '  flag-1',
        '  lvs_method TUN type gue port 6080 csum',
        '  protocol UDP',
        '  ops',
        '  persistence_timeout',
        '  persistence_granularity 64',
        '  persistence_engine sip',
        '}',
      ].join('\n'),
    );
    expect(s).toMatchObject({
      ip: '2001:db8::1',
      family: 6,
      scheduler: 'sh',
      schedulerFlags: ['sh-port', 'sh-fallback'],
      forwarding: 'tunnel',
      tunnel: { type: 'gue', port: 6080, checksum: 'csum' },
      protocol: 'udp',
      ops: true,
      persistence: { timeoutSec: 360, netmask: '64', engine: 'sip' },
    });
  });

  it('drops flags for another scheduler and ops on TCP, with notes', () => {
    const r = read(vs('  mh-port\n  flag-3\n  ops'));
    const s = r.services[0]!;
    expect(s.schedulerFlags).toEqual([]);
    expect(s.ops).toBe(false);
    expect(notes(s)).toEqual([
      '4: mh-port is not carried over: it applies to the mh scheduler, and this service uses rr',
      '5: flag-3 is not carried over: no scheduler pybal knows uses it',
      '1: ops is not carried over: one-packet scheduling is for UDP services only',
      '1: virtual_server 192.0.2.1 80 has no real server: pybal will run it with an empty pool',
    ]);
  });

  it('carries weights, a NAT real port, and the lowest of differing thresholds', () => {
    const s = only(
      [
        'virtual_server 192.0.2.1 80 {',
        '  lb_algo wrr',
        '  lb_kind NAT',
        '  real_server 10.0.0.7 8080 {',
        '    weight 1000',
        '    uthreshold 500',
        '    lthreshold 100',
        '  }',
        '  real_server 10.0.0.8 8080 {',
        '    weight 0',
        '    uthreshold 300',
        '    lthreshold 100',
        '  }',
        '}',
      ].join('\n'),
    );
    expect(s.servers.map((x) => [x.host, x.weight])).toEqual([
      ['10.0.0.7', 1000],
      ['10.0.0.8', 0],
    ]);
    expect(s.realPort).toBe(8080);
    expect(s.upperThreshold).toBe(300);
    expect(s.lowerThreshold).toBe(100);
    expect(notes(s)).toEqual(['4: uthreshold differs between the real servers (10.0.0.7: 500, 10.0.0.8: 300); pybal has one per service, the lowest: 300']);
  });

  it('cannot change ports with direct routing: a note, and no real-port', () => {
    const r = read(vs('  real_server 192.0.2.7 8080 {\n  }'));
    expect(r.services[0]?.realPort).toBeUndefined();
    expect(notes(r.services[0]!)).toContain(
      "4: the real servers' port 8080 differs from the virtual port 80, which only NAT can translate (dr delivers packets to the virtual port): not carried over",
    );
  });

  it('notes the keywords pybal has no counterpart for, each at its line', () => {
    const r = read(
      vs(
        [
          '  quorum 2',
          '  hysteresis 1',
          '  quorum_up /bin/up',
          '  sorry_server 192.0.2.99 80',
          '  inhibit_on_failure',
          '  alpha',
          '  omega',
          '  ha_suspend',
          '  smtp_alert',
          '  virtualhost www.example.org',
          '  bogus_keyword 1',
          '  real_server 192.0.2.7 80 {',
          '    notify_down /bin/down',
          '    inhibit_on_failure',
          '    BFD_CHECK {',
          '      name x',
          '    }',
          '  }',
        ].join('\n'),
      ),
    );
    expect(notes(r.services[0]!).map((n) => n.split(':').slice(0, 2).join(':'))).toEqual([
      '4: quorum is not carried over',
      '5: hysteresis is not carried over',
      '6: quorum_up is not carried over',
      '7: sorry_server is not carried over',
      '8: inhibit_on_failure is not carried over',
      '9: alpha is not carried over',
      '10: omega is not carried over',
      '11: ha_suspend is not carried over',
      '12: smtp_alert is not carried over',
      '14: bogus_keyword is not a virtual_server keyword pybal import knows; not carried over',
      '16: notify_down is not carried over',
      '17: inhibit_on_failure is not carried over',
      '18: BFD_CHECK is not carried over',
      '13: virtualhost is not carried over',
    ]);
  });

  it('notes global_defs, VRRP and unknown top-level blocks with their line ranges', () => {
    const r = read('global_defs {\n  router_id a\n}\nvrrp_instance VI_1 {\n  state MASTER\n}\nvrrp_script chk {\n}\nsomething_else\n' + vs(''));
    expect(r.notes.map((n) => `${n.at.line}-${n.at.endLine ?? ''}: ${n.message.slice(0, 40)}`)).toEqual([
      '1-3: global_defs: global settings (notificati',
      '4-6: vrrp_instance VI_1: VRRP is not carried ',
      '7-8: vrrp_script chk: VRRP tracking scripts a',
      '9-: something_else is not a keepalived keywo',
    ]);
  });

  it('says that virtual_server group is not carried over', () => {
    const r = read('virtual_server_group G {\n  192.0.2.1 80\n}\nvirtual_server group G {\n  lb_algo rr\n}\n');
    expect(r.services).toEqual([]);
    expect(r.notes.map((n) => n.message.slice(0, 60))).toEqual([
      'virtual_server_group G: virtual_server_group is not carried ',
      'virtual_server group G is not carried over: pybal has no vir',
    ]);
    expect(r.errors.map(formatProblem)).toEqual(['keepalived.conf: no virtual_server to convert']);
  });

  it('takes the address of a firewall-mark service from the one VRRP VIP, or from the caller', () => {
    const text = 'vrrp_instance V {\n  virtual_ipaddress {\n    192.0.2.9/32 dev eth0\n  }\n}\n' + vs('  real_server 192.0.2.7 443 {\n  }', 'virtual_server fwmark 7');
    const inferred = read(text).services[0]!;
    expect(inferred).toMatchObject({ fwmark: 7, ip: '192.0.2.9', port: 443 });
    expect(notes(inferred)).toContain('6: firewall mark 7 has no address of its own: pybal announces and checks it as 192.0.2.9, the one VIP of vrrp_instance (keepalived.conf:3)');
    expect(parseKeepalived(text, FILE, undefined, { fwmarkIp: (m) => (m === 7 ? '192.0.2.50' : undefined) }).services[0]?.ip).toBe('192.0.2.50');
    expect(read(vs('', 'virtual_server fwmark 7')).services[0]?.ip).toBeUndefined();
  });

  it('names file:line for malformed addresses, ports and values', () => {
    const r = read(
      [
        'virtual_server 192.0.2.300 80 {\n}',
        'virtual_server 192.0.2.1 http {\n}',
        'virtual_server fwmark x {\n}',
        'virtual_server 192.0.2.2 80 {',
        '  delay_loop soon',
        '  protocol ICMP',
        '  lb_kind MAGIC',
        '  real_server host.example 80 {\n  }',
        '  real_server 192.0.2.7 99999 {\n  }',
        '  real_server 192.0.2.8 80 {\n    weight -1\n    MISC_CHECK {\n    }\n  }',
        '}',
      ].join('\n'),
    );
    expect(r.errors.map(formatProblem)).toEqual([
      'keepalived.conf:1: virtual_server: expected an IP address, fwmark N or group NAME, got "192.0.2.300"',
      'keepalived.conf:3: virtual_server: expected a port, got "http"',
      'keepalived.conf:5: virtual_server fwmark: expected a mark from 1 to 4294967295, got "x"',
      'keepalived.conf:8: delay_loop: expected a number, got "soon"',
      'keepalived.conf:9: protocol: expected TCP, UDP or SCTP, got "ICMP"',
      'keepalived.conf:10: lb_kind: expected NAT, DR or TUN, got "MAGIC"',
      'keepalived.conf:11: real_server: expected an IP address, got "host.example"',
      'keepalived.conf:13: real_server: expected a port, got "99999"',
      'keepalived.conf:16: weight: expected an integer from 0 to 2147483647, got "-1"',
      'keepalived.conf:17: MISC_CHECK without misc_path',
    ]);
  });
});

describe('keepalived: checkers', () => {
  const server = (checker: string, inherit = ''): string => vs(`${inherit}  real_server 192.0.2.7 80 {\n${checker}\n  }`);

  it('maps delay_loop to interval, connect_timeout to timeout, retry and nb_get_retry to fall = retry + 1, inherited down the levels', () => {
    const s = only(server('    delay_loop 4\n    TCP_CHECK {\n      retry 2\n    }\n    HTTP_GET {\n      url {\n        path /\n      }\n    }', '  delay_loop 9\n  connect_timeout 2\n  nb_get_retry 4\n'));
    expect(s.checks.map((c) => [c.kind, c.intervalSec, c.timeoutSec, c.fall])).toEqual([
      ['tcp', 4, 2, 3],
      ['http', 4, 2, 5],
    ]);
  });

  it('notes delay_before_retry with the detection time before and after', () => {
    const s = only(server('    TCP_CHECK {\n      delay_loop 10\n      retry 2\n      delay_before_retry 1\n    }'));
    expect(notes(s)).toEqual([
      "8: delay_before_retry 1 is not carried over: pybal retries at the check interval (10 s), so a failing server is down after about 30 s (fall 3 x interval) rather than keepalived's 12 s",
    ]);
  });

  it('HTTP_GET: URL from the VIP (or virtualhost), path, regex, status codes; SSL_GET is https', () => {
    const s = only(
      server(
        [
          '    HTTP_GET {',
          '      url {',
          '        path /alive.html',
          '        status_code 200-299',
          '        regex "^OK [0-9]+"',
          '      }',
          '    }',
          '    SSL_GET {',
          '      virtualhost www.example.org',
          '      connect_port 443',
          '      url {',
          '        path /health',
          '        status_code 301 302',
          '        digest 0123456789abcdef0123456789abcdef',
          '      }',
          '    }',
        ].join('\n'),
      ),
    );
    expect(s.checks).toMatchObject([
      { kind: 'http', urls: ['http://192.0.2.1/alive.html'], expectBodyRegex: '^OK [0-9]+' },
      { kind: 'http', urls: ['https://www.example.org/health'], redirectStatus: 301 },
    ]);
    expect(notes(s)).toEqual([
      '6: no virtualhost: keepalived sent each server its own address as Host; ProxyFetch sends one Host for all, the VIP (192.0.2.1)',
      '17: status_code 301 302: ProxyFetch, told to expect a redirect, accepts any of 301, 302 and 303',
      '18: digest (MD5 of the page) has no pybal equivalent; the page is still fetched and its status checked',
      "12: this check connects to port 443; pybal's monitors connect to the service's port (80), so it is carried over on that port",
    ]);
  });

  it('HTTP_GET: several urls, other status codes, regex_no_match and a regex JavaScript cannot read', () => {
    const s = only(
      server(
        [
          '    HTTP_GET {',
          '      virtualhost h',
          '      url {\n        path /a\n        status_code 503\n      }',
          '      url {\n        path /b\n        regex "x"\n        regex_no_match\n      }',
          '      url {\n        path /c\n        regex "(?i)ok"\n      }',
          '      url {\n        digest abc\n      }',
          '    }',
        ].join('\n'),
      ),
    );
    expect(s.checks).toMatchObject([{ kind: 'http', urls: ['http://h/a', 'http://h/b', 'http://h/c'] }]);
    expect(s.checks[0]).not.toHaveProperty('expectBodyRegex');
    expect(notes(s).map((n) => n.slice(0, 70))).toEqual([
      '9: status_code 503 is not carried over: ProxyFetch accepts a 2xx statu',
      '14: regex_no_match is not carried over: proxyfetch.expect-body-regex c',
      '18: regex is not carried over: JavaScript does not read it (Invalid re',
      '21: digest (MD5 of the page) has no pybal equivalent; the page is stil',
      '20: a url block without path is ignored (as keepalived does)',
    ]);
  });

  it('MISC_CHECK: the command for every server, its own address as server.ip; misc_timeout; retry 0 by default', () => {
    const text = vs(
      ['192.0.2.7', '192.0.2.8']
        .map((ip) => `  real_server ${ip} 5001 {\n    MISC_CHECK {\n      misc_path "/usr/local/bin/check --port 5001 ${ip}"\n      misc_timeout 3\n      misc_dynamic\n    }\n  }`)
        .join('\n'),
      'virtual_server 192.0.2.1 5001',
    );
    const s = only(text);
    expect(s.checks).toEqual([
      {
        kind: 'command',
        at: { file: FILE, line: 5, endLine: 9 },
        intervalSec: 60,
        timeoutSec: 3,
        fall: 1,
        command: '/usr/local/bin/check',
        arguments: [{ literal: '--port' }, { literal: '5001' }, { server: 'ip' }],
      },
    ]);
    expect(notes(s)).toEqual([
      '8: misc_dynamic is not carried over: pybal does not set weights from check results; the exit status only says up (0) or down',
      '15: misc_dynamic is not carried over: pybal does not set weights from check results; the exit status only says up (0) or down',
    ]);
  });

  it('MISC_CHECK with a shell line runs it with /bin/sh -c, the address as $1', () => {
    const s = only(server('    MISC_CHECK {\n      misc_path "curl -s http://192.0.2.7/ | grep -q ok"\n    }'));
    expect(s.checks[0]).toMatchObject({
      command: '/bin/sh',
      arguments: [{ literal: '-c' }, { literal: 'curl -s http://"$1"/ | grep -q ok' }, { literal: 'sh' }, { server: 'ip' }],
    });
    expect(notes(s)).toEqual(['6: misc_path needs a shell (pipes, redirections or variables): RunCommand runs it with /bin/sh -c']);
  });

  it("notes checks that differ between real servers: pybal uses the first server's", () => {
    const s = only(vs('  real_server 192.0.2.7 80 {\n    TCP_CHECK {\n    }\n  }\n  real_server 192.0.2.8 80 {\n    PING_CHECK {\n    }\n  }'));
    expect(s.checks.map((c) => c.kind)).toEqual(['tcp']);
    expect(notes(s)).toEqual([
      "8: the checks of 192.0.2.8 (ping) differ from those of 192.0.2.7; pybal runs the same monitors on every server of a service, so 192.0.2.8 gets 192.0.2.7's (TCP connect)",
    ]);
  });

  it('SMTP_CHECK, DNS_CHECK, UDP_CHECK and PING_CHECK map to the closest monitor, with notes', () => {
    const s = only(
      server('    SMTP_CHECK {\n      helo_name x\n    }\n    DNS_CHECK {\n      type MX\n      name example.org\n    }\n    UDP_CHECK {\n      require_reply\n    }\n    PING_CHECK {\n    }'),
    );
    expect(s.checks.map((c) => c.kind)).toEqual(['tcp', 'dns', 'udp', 'ping']);
    expect(s.checks[1]).toMatchObject({ hostnames: ['example.org'], fall: 4 });
    expect(notes(s).map((n) => n.slice(0, 40))).toEqual([
      '6: helo_name is not carried over: pybal ',
      '5: SMTP_CHECK becomes TCPConnect: pybal ',
      '9: type is not carried over: DNSQuery as',
      '13: require_reply is not carried over: p',
    ]);
  });
});
