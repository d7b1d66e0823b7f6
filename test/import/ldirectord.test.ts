import { describe, expect, it } from 'vitest';

import { parseLdirectord } from '../../src/import/ldirectord.js';
import type { LvsImport, LvsService } from '../../src/import/model.js';
import { formatProblem } from '../../src/runtime/errors.js';
import { noteLines, onlyService } from './helpers.js';

const FILE = 'ldirectord.cf';

function read(text: string, fwmarkIp?: (mark: number) => string | undefined): LvsImport {
  return parseLdirectord(text, FILE, fwmarkIp === undefined ? {} : { fwmarkIp });
}

const only = (text: string): LvsService => onlyService(read(text));
const notes = noteLines;

/** A virtual section with indented `lines`. */
function virtual(head: string, ...lines: string[]): string {
  return [`virtual=${head}`, ...lines.map((l) => `\t${l}`)].join('\n') + '\n';
}

describe('ldirectord.cf', () => {
  it('reads a virtual section: reals with forwarding and weights, scheduler, protocol, persistence, ops', () => {
    const s = only(
      virtual(
        '192.0.2.1:53',
        'real=192.0.2.7:53 gate 5',
        'real=192.0.2.8 gate',
        'scheduler=sh',
        'persistent=300',
        'netmask=255.255.255.0',
        'ops=yes',
        'checktype=on',
      ),
    );
    expect(s).toMatchObject({ ip: '192.0.2.1', port: 53, protocol: 'udp', scheduler: 'sh', forwarding: 'dr', ops: true, persistence: { timeoutSec: 300, netmask: '255.255.255.0' } });
    expect(s.servers.map((x) => [x.host, x.port, x.weight, x.enabled])).toEqual([
      ['192.0.2.7', 53, 5, true],
      ['192.0.2.8', undefined, 1, true],
    ]);
    expect(s.checks).toEqual([]);
  });

  it('defaults: wrr, tcp, negotiate http on port 80 with request "/", checkinterval 10, negotiatetimeout 30, failurecount 1', () => {
    const s = only(virtual('192.0.2.1:80', 'real=192.0.2.7:80 gate'));
    expect(s.scheduler).toBe('wrr');
    expect(s.protocol).toBe('tcp');
    expect(s.checks).toEqual([{ kind: 'http', at: { file: FILE, line: 2 }, intervalSec: 10, timeoutSec: 30, fall: 1, urls: ['http://192.0.2.1/'] }]);
  });

  it('takes global timing, failurecount and the timeout fallbacks between checktimeout and negotiatetimeout', () => {
    const s = only(['checkinterval=3', 'checktimeout=4', 'failurecount=2', '', virtual('192.0.2.1:80', 'real=192.0.2.7:80 gate', 'negotiatetimeout=7', 'checktype=connect')].join('\n'));
    expect(s.checks).toMatchObject([{ kind: 'tcp', intervalSec: 3, timeoutSec: 7, fall: 2 }]);
    const t = only(['negotiatetimeout=6', virtual('192.0.2.1:80', 'real=192.0.2.7:80 gate')].join('\n'));
    expect(t.checks).toMatchObject([{ kind: 'http', timeoutSec: 6 }]);
  });

  it('negotiate http: request becomes the URL path, receive the expected text (a regex when it is one), virtualhost the Host', () => {
    const s = only(virtual('192.0.2.1:8080', 'real=192.0.2.7:8080 masq', 'service=http', 'request="alive.html"', 'receive="I\'m alive!"', 'virtualhost=www.example.org'));
    expect(s.checks).toMatchObject([{ kind: 'http', urls: ['http://www.example.org:8080/alive.html'], expectBody: "I'm alive!" }]);
    expect(s.forwarding).toBe('nat');
    const r = only(virtual('192.0.2.1:443', 'real=192.0.2.7:443 gate', 'request="/status"', 'receive="^(OK|WARN)"'));
    expect(r.checks).toMatchObject([{ kind: 'http', urls: ['https://192.0.2.1/status'], expectBodyRegex: '^(OK|WARN)' }]);
  });

  it("a real server's own request and receive override the virtual's: pybal takes the first server's, with a note", () => {
    const s = only(virtual('192.0.2.1:80', 'real=192.0.2.7:80 gate 1 "a.html", "A"', 'real=192.0.2.8:80 gate 1 "b.html", "B"', 'receive="X"'));
    expect(s.checks).toMatchObject([{ urls: ['http://192.0.2.1/a.html'], expectBody: 'A' }]);
    expect(notes(s)).toEqual([
      "3: the checks of 192.0.2.8 (HTTP http://192.0.2.1/b.html) differ from those of 192.0.2.7; pybal runs the same monitors on every server of a service, so 192.0.2.8 gets 192.0.2.7's (HTTP http://192.0.2.1/a.html)",
    ]);
  });

  it('checktype connect, ping and external; connect on UDP pings', () => {
    expect(only(virtual('192.0.2.1:25', 'real=192.0.2.7:25 gate', 'checktype=connect')).checks).toMatchObject([{ kind: 'tcp', timeoutSec: 5 }]);
    const udp = read(virtual('192.0.2.1:5001', 'real=192.0.2.7:5001 gate', 'protocol=udp', 'checktype=connect'));
    expect(udp.services[0]?.checks).toMatchObject([{ kind: 'ping' }]);
    expect(notes(udp.services[0]!)).toEqual(['4: checktype connect on a UDP service: ldirectord pings the servers, and so does pybal (Ping)']);
    expect(only(virtual('192.0.2.1:80', 'real=192.0.2.7:80 gate', 'checktype=ping', 'checkcount=3')).checks).toMatchObject([{ kind: 'ping', count: 3 }]);
    const external = only(virtual('192.0.2.1:5001', 'real=192.0.2.7:5002 masq', 'protocol=udp', 'checktype=external', 'checkcommand="/usr/local/bin/check --quiet"', 'checktimeout=2'));
    expect(external.checks).toEqual([
      {
        kind: 'command',
        at: { file: FILE, line: 4 },
        intervalSec: 10,
        timeoutSec: 2,
        fall: 1,
        command: '/usr/local/bin/check',
        arguments: [{ literal: '--quiet' }, { literal: '192.0.2.1' }, { literal: '5001' }, { server: 'ip' }, { literal: '5002' }],
      },
    ]);
    expect(external.realPort).toBe(5002);
  });

  it('external through a shell gets its four arguments as "$@"', () => {
    const s = only(virtual('192.0.2.1:80', 'real=192.0.2.7:80 gate', 'checktype=external', 'checkcommand="check $EXTRA | grep -q up"'));
    expect(s.checks[0]).toMatchObject({
      command: '/bin/sh',
      arguments: [{ literal: '-c' }, { literal: 'check $EXTRA | grep -q up "$@"' }, { literal: 'sh' }, { literal: '192.0.2.1' }, { literal: '80' }, { server: 'ip' }, { literal: '80' }],
    });
  });

  it('other negotiated services are checked as open ports; dns asks the request name; none and on check nothing; off disables', () => {
    const smtp = only(virtual('192.0.2.1:25', 'real=192.0.2.7:25 gate', 'login="x"'));
    expect(smtp.checks).toMatchObject([{ kind: 'tcp', timeoutSec: 30 }]);
    expect(notes(smtp)).toEqual([
      '3: login is not carried over: pybal does not log in to check a service',
      '1: service smtp: pybal cannot speak smtp; TCPConnect checks only that the port is open (request, receive and logins are not checked)',
    ]);
    expect(only(virtual('192.0.2.1:53', 'real=192.0.2.7:53 gate', 'request="www.example.org"', 'receive="192.0.2.80"')).checks).toMatchObject([{ kind: 'dns', hostnames: ['www.example.org'] }]);
    expect(only(virtual('192.0.2.1:9999', 'real=192.0.2.7:9999 gate')).checks).toEqual([]);
    const off = only(virtual('192.0.2.1:80', 'real=192.0.2.7:80 gate', 'checktype=off'));
    expect(off.servers[0]?.enabled).toBe(false);
    expect(notes(off)).toEqual(["3: checktype off: ldirectord never activates the real servers; they are written disabled ('enabled': False) in the pool file"]);
  });

  it('checktype N: a connect check at the interval and the negotiate check N times slower', () => {
    const s = only(virtual('192.0.2.1:80', 'real=192.0.2.7:80 gate', 'checktype=5', 'checkinterval=2'));
    expect(s.checks.map((c) => [c.kind, c.intervalSec])).toEqual([
      ['tcp', 10],
      ['http', 50],
    ]);
    expect(notes(s)).toContain('4: checkinterval in a virtual section is not carried over: ldirectord ignores it unless fork = yes, and so does this import');
    const forked = only(['fork=yes', virtual('192.0.2.1:80', 'real=192.0.2.7:80 gate', 'checkinterval=2')].join('\n'));
    expect(forked.checks[0]?.intervalSec).toBe(2);
  });

  it('expands an address range of reals', () => {
    const s = only(virtual('192.0.2.1:80', 'real=192.0.2.7->192.0.2.9:80 gate 3'));
    expect(s.servers.map((x) => [x.host, x.weight])).toEqual([
      ['192.0.2.7', 3],
      ['192.0.2.8', 3],
      ['192.0.2.9', 3],
    ]);
  });

  it('a firewall-mark virtual: the port from checkport, the address from the caller', () => {
    const text = virtual('7', 'real=192.0.2.7 gate', 'checktype=connect', 'checkport=443', 'protocol=fwm');
    expect(read(text).services[0]).toMatchObject({ fwmark: 7, ip: undefined, port: 443 });
    expect(read(text, () => '192.0.2.50').services[0]).toMatchObject({ fwmark: 7, ip: '192.0.2.50', port: 443 });
  });

  it('IPv6: virtual6 and real6', () => {
    const s = only('virtual6=[2001:db8::1]:80\n\treal6=[2001:db8::7]:80 gate\n\tchecktype=connect\n');
    expect(s).toMatchObject({ ip: '2001:db8::1', family: 6, servers: [{ host: '2001:db8::7' }] });
  });

  it('notes every global setting it does not carry, at its line', () => {
    const r = read(
      [
        '# comment',
        'autoreload=yes',
        'callback="/bin/cb"',
        'logfile="local0"',
        'emailalert="ops@example.org"',
        'quiescent=yes',
        'quiescent=no',
        'cleanstop=no',
        'maintenancedir=/etc/ha.d/maint',
        'fallback=127.0.0.1:80',
        'frobnicate=1',
        virtual('192.0.2.1:80', 'real=192.0.2.7:80 gate'),
      ].join('\n'),
    );
    expect(notes(r).map((n) => n.split(':').slice(0, 2).join(':'))).toEqual([
      '2: autoreload is not carried over',
      '3: callback is not carried over',
      '4: logfile is not carried over',
      '5: emailalert is not carried over',
      '6: quiescent = yes is not carried over',
      '9: maintenancedir is not carried over',
      '10: fallback is not carried over',
      '11: frobnicate is not an ldirectord setting pybal import knows (or belongs in a virtual section); not carried over',
    ]);
  });

  it('names file:line for malformed lines', () => {
    const r = read(
      [
        'checktimeout=soon',
        '\treal=192.0.2.7:80 gate',
        'just words',
        'virtual=host.example:80',
        'virtual=192.0.2.1:80',
        '\treal=192.0.2.7:80 tunnel',
        '\treal=192.0.2.8:nosuchport gate',
        '\treal=192.0.2.9:80 gate 1 "x" junk',
        '\tchecktype=sometimes',
        '\tprotocol=sctp',
        '\treal6=[2001:db8::7]:80 gate',
        'virtual=7',
        '\tprotocol=tcp',
      ].join('\n'),
    );
    expect(r.errors.map(formatProblem)).toEqual([
      'ldirectord.cf:1: checktimeout: expected a positive integer, got "soon"',
      'ldirectord.cf:2: real: an indented line belongs to a virtual section, and none is open',
      'ldirectord.cf:3: expected key = value, got "just words"',
      'ldirectord.cf:4: virtual: "host.example" is not an IP address (pybal needs the VIP\'s address, not a host name)',
      'ldirectord.cf:6: real: the forwarding method must be gate, masq or ipip, got "tunnel"',
      'ldirectord.cf:7: real: unknown port "nosuchport"; write the port number',
      'ldirectord.cf:8: real: unexpected "\\"x\\" junk"',
      'ldirectord.cf:9: checktype: expected connect, negotiate, ping, external, external-perl, on, off or a number, got "sometimes"',
      'ldirectord.cf:10: protocol: expected tcp or udp, got "sctp"',
      'ldirectord.cf:11: real6 cannot be used in a virtual section (use real)',
      'ldirectord.cf:13: protocol must be fwm for a firewall-mark virtual, got "tcp"',
    ]);
  });
});
