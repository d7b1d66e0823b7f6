// Golden bytes written by hand from linux/ip_vs.h and linux/netlink.h, for a
// little-endian host (netlink integers are host order; ports and the IPv4
// netmask are network order).
import { endianness } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  decodeDaemonReply,
  decodeDestReply,
  decodeInfoReply,
  decodeServiceReply,
  decodeStats,
  decodeTimeoutsReply,
  encodeIpvsMessage,
  formatDestKey,
  formatServiceKey,
  ipvsRequests,
  requestAttrs,
} from '../../src/ipvs/codec.js';
import { IP_VS_SVC_F } from '../../src/ipvs/constants.js';
import type { DestSpec, ServiceSpec } from '../../src/ipvs/types.js';
import { hex } from './hex.js';

const FAMILY = 0x23;

const tcpSvc: ServiceSpec = {
  key: { family: 4, protocol: 'tcp', address: '192.0.2.1', port: 80 },
  scheduler: 'wrr',
  flags: 0,
  timeoutSec: 0,
  netmask: 32,
  peName: '',
};

const SVC_TCP_KEY = `
  06 00 01 00 02 00 00 00      # AF = AF_INET (u16) + pad
  06 00 02 00 06 00 00 00      # PROTOCOL = 6 (u16) + pad
  08 00 03 00 c0 00 02 01      # ADDR 192.0.2.1
  06 00 04 00 00 50 00 00      # PORT 80, big endian + pad
`;

describe('IPVS codec: encode', () => {
  it('is tested on a little-endian host', () => {
    expect(endianness()).toBe('LE');
  });

  it('frames NEW_SERVICE for a TCP IPv4 service with every full-entry attribute', () => {
    const msg = encodeIpvsMessage(FAMILY, 7, 0, ipvsRequests.newService(tcpSvc), true);
    expect(msg.toString('hex')).toBe(
      hex(`
        5c 00 00 00  23 00  05 00  07 00 00 00  00 00 00 00   # nlmsghdr: len 92, type, REQUEST|ACK, seq 7, pid 0
        01 01 00 00                                           # genl: IPVS_CMD_NEW_SERVICE, version 1
        48 00 01 00                                           # IPVS_CMD_ATTR_SERVICE, len 72
        ${SVC_TCP_KEY}
        08 00 06 00 77 72 72 00                               # SCHED_NAME "wrr\\0"
        0c 00 07 00 00 00 00 00 ff ff ff ff                   # FLAGS {flags 0, mask ~0}
        08 00 08 00 00 00 00 00                               # TIMEOUT 0
        08 00 09 00 ff ff ff ff                               # NETMASK 255.255.255.255 (be32)
      `).toString('hex'),
    );
  });

  it('encodes an IPv6 fwmark service with persistence, mh flags and a persistence engine', () => {
    const req = ipvsRequests.setService({
      key: { family: 6, fwmark: 0x1234 },
      scheduler: 'mh',
      flags: IP_VS_SVC_F.PERSISTENT | IP_VS_SVC_F.SCHED1 | IP_VS_SVC_F.SCHED2 | IP_VS_SVC_F.HASHED,
      timeoutSec: 300,
      netmask: 64,
      peName: 'sip',
    });
    expect(req.cmd).toBe(2);
    expect(requestAttrs(req).toString('hex')).toBe(
      hex(`
        40 00 01 00                   # SERVICE, len 64
        06 00 01 00 0a 00 00 00       # AF_INET6
        08 00 05 00 34 12 00 00       # FWMARK 0x1234 (host order)
        07 00 06 00 6d 68 00 00       # SCHED_NAME "mh\\0" + pad
        0c 00 07 00 19 00 00 00 ff ff ff ff   # FLAGS 0x19 (HASHED never sent), mask ~0
        08 00 08 00 2c 01 00 00       # TIMEOUT 300
        08 00 09 00 40 00 00 00       # NETMASK: IPv6 prefix length 64, host order
        08 00 0b 00 73 69 70 00       # PE_NAME "sip\\0"
      `).toString('hex'),
    );
  });

  it('encodes NEW_DEST with an IPv6 tunnel (GUE) destination under an IPv4 service and a u32 weight', () => {
    const dest: DestSpec = {
      family: 6,
      address: '2001:db8::6',
      port: 8080,
      fwdMethod: 'tunnel',
      weight: 70000,
      upperThreshold: 1000,
      lowerThreshold: 10,
      tunnelType: 'gue',
      tunnelPort: 6080,
      tunnelFlags: 1,
    };
    const req = ipvsRequests.newDest(tcpSvc.key, dest);
    expect(req.cmd).toBe(5);
    expect(requestAttrs(req).toString('hex')).toBe(
      hex(`
        24 00 01 00 ${SVC_TCP_KEY}    # SERVICE key, len 36
        60 00 02 00                   # DEST, len 96
        14 00 01 00 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 06   # ADDR 2001:db8::6
        06 00 02 00 1f 90 00 00       # PORT 8080 (be16)
        06 00 0b 00 0a 00 00 00       # ADDR_FAMILY AF_INET6
        08 00 03 00 02 00 00 00       # FWD_METHOD TUNNEL
        08 00 04 00 70 11 01 00       # WEIGHT 70000 (u32)
        08 00 05 00 e8 03 00 00       # U_THRESH 1000
        08 00 06 00 0a 00 00 00       # L_THRESH 10
        05 00 0d 00 01 00 00 00       # TUN_TYPE GUE (u8) + pad
        06 00 0e 00 17 c0 00 00       # TUN_PORT 6080 (be16)
        06 00 0f 00 01 00 00 00       # TUN_FLAGS CSUM
      `).toString('hex'),
    );
  });

  it('encodes DEL_DEST with the keys only, and SCTP, UDP and DR', () => {
    const key = { family: 4 as const, protocol: 'sctp' as const, address: '203.0.113.9', port: 9 };
    const del = ipvsRequests.delDest(key, { family: 4, address: '198.51.100.6', port: 0 });
    expect(requestAttrs(del).toString('hex')).toBe(
      hex(`
        24 00 01 00
          06 00 01 00 02 00 00 00  06 00 02 00 84 00 00 00   # AF_INET, SCTP 132
          08 00 03 00 cb 00 71 09  06 00 04 00 00 09 00 00   # 203.0.113.9 port 9
        1c 00 02 00
          08 00 01 00 c6 33 64 06                             # ADDR 198.51.100.6
          06 00 02 00 00 00 00 00                             # PORT 0
          06 00 0b 00 02 00 00 00                             # ADDR_FAMILY AF_INET
      `).toString('hex'),
    );
    const dr = ipvsRequests.setDest(
      { family: 4, protocol: 'udp', address: '192.0.2.2', port: 53 },
      { family: 4, address: '192.0.2.3', port: 53, fwdMethod: 'droute', weight: 0, upperThreshold: 0, lowerThreshold: 0, tunnelType: 'ipip', tunnelPort: 0, tunnelFlags: 0 },
    );
    expect(dr.cmd).toBe(6);
    // Protocol UDP (17) in the key; FWD_METHOD DROUTE 3 and no tunnel attributes for non-tunnel methods.
    expect(requestAttrs(dr).subarray(16, 20).toString('hex')).toBe('11000000');
    expect(requestAttrs(dr).toString('hex')).toContain(hex('08 00 03 00 03 00 00 00').toString('hex'));
    expect(requestAttrs(dr).toString('hex')).not.toContain(hex('05 00 0d 00').toString('hex'));
  });

  it('frames dumps with NLM_F_DUMP and no ACK, and GET_DEST with the service key', () => {
    const msg = encodeIpvsMessage(FAMILY, 1, 99, ipvsRequests.dumpServices(), true);
    expect(msg.toString('hex')).toBe(hex('14000000 2300 0103 01000000 63000000  04 01 00 00').toString('hex'));
    const dests = encodeIpvsMessage(FAMILY, 2, 0, ipvsRequests.dumpDests(tcpSvc.key), true);
    expect(dests.readUInt16LE(6)).toBe(0x301);
    expect(dests[16]).toBe(8);
    expect(dests.subarray(20).toString('hex')).toBe(hex(`24 00 01 00 ${SVC_TCP_KEY}`).toString('hex'));
  });

  it('encodes the sync daemon, timeouts, zero and info requests', () => {
    const d = ipvsRequests.newDaemon({
      state: 'backup',
      mcastIfn: 'eth0',
      syncId: 5,
      syncMaxLen: 1400,
      mcastGroup: '224.0.0.81',
      mcastPort: 8848,
      mcastTtl: 2,
    });
    expect(d.cmd).toBe(9);
    expect(requestAttrs(d).toString('hex')).toBe(
      hex(`
        40 00 03 00                   # DAEMON, len 64
        08 00 01 00 02 00 00 00       # STATE BACKUP
        09 00 02 00 65 74 68 30 00 00 00 00   # MCAST_IFN "eth0\\0" + pad
        08 00 03 00 05 00 00 00       # SYNC_ID 5
        06 00 04 00 78 05 00 00       # SYNC_MAXLEN 1400
        08 00 05 00 e0 00 00 51       # MCAST_GROUP 224.0.0.81 (be32)
        06 00 07 00 90 22 00 00       # MCAST_PORT 8848: host order in practice, whatever the header says
        05 00 08 00 02 00 00 00       # MCAST_TTL 2
      `).toString('hex'),
    );
    expect(requestAttrs(ipvsRequests.delDaemon('master')).toString('hex')).toBe(hex('0c 00 03 00 08 00 01 00 01 00 00 00').toString('hex'));
    expect(requestAttrs(ipvsRequests.setTimeouts({ tcpSec: 900, tcpFinSec: 120, udpSec: 300 })).toString('hex')).toBe(
      hex('08 00 04 00 84 03 00 00  08 00 05 00 78 00 00 00  08 00 06 00 2c 01 00 00').toString('hex'),
    );
    expect(requestAttrs(ipvsRequests.zero()).length).toBe(0);
    expect(ipvsRequests.zero(tcpSvc.key).cmd).toBe(16);
    expect(ipvsRequests.getInfo().cmd).toBe(15);
  });

  it('rejects names longer than the kernel takes and addresses of the wrong family', () => {
    expect(() => requestAttrs(ipvsRequests.newService({ ...tcpSvc, scheduler: 'a-very-long-scheduler' }))).toThrow(/scheduler.*longer than 15/);
    expect(() => requestAttrs(ipvsRequests.newService({ ...tcpSvc, key: { ...tcpSvc.key, address: '2001:db8::1' } }))).toThrow(/not an IPv4 address/);
  });
});

describe('IPVS codec: decode kernel replies', () => {
  it('decodes a dumped IPv4 service: 16-byte address, HASHED masked, 32- and 64-bit stats', () => {
    const attrs = hex(`
      c8 00 01 00                                         # SERVICE len 200
        06 00 01 00 02 00 00 00                           # AF_INET
        06 00 02 00 11 00 00 00                           # UDP
        14 00 03 00 cb 00 71 01 00 00 00 00 00 00 00 00 00 00 00 00   # ADDR, 16 bytes, IPv4 first
        06 00 04 00 00 35 00 00                           # PORT 53
        08 00 06 00 73 68 00 00                           # SCHED "sh"
        0c 00 07 00 17 00 00 00 ff ff ff ff               # FLAGS PERSISTENT|HASHED|ONEPACKET|SH_FALLBACK
        08 00 08 00 b4 00 00 00                           # TIMEOUT 180
        08 00 09 00 ff ff ff 00                           # NETMASK 255.255.255.0
        34 00 0a 00                                       # STATS (len 52)
          08 00 01 00 05 00 00 00                         # CONNS 5
          08 00 02 00 07 00 00 00                         # INPKTS 7
          0c 00 04 00 00 10 00 00 01 00 00 00             # INBYTES 0x100001000 (u64)
          08 00 06 00 02 00 00 00                         # CPS 2
          0c 00 05 00 09 00 00 00 00 00 00 00             # OUTBYTES 9 (u64)
        40 00 0c 00                                       # STATS64 (len 64)
          0c 00 01 00 00 00 00 00 01 00 00 00             # CONNS 2^32
          0c 00 02 00 07 00 00 00 00 00 00 00
          0c 00 03 00 00 00 00 00 00 00 00 00
          0c 00 04 00 00 10 00 00 01 00 00 00
          0c 00 0a 00 03 00 00 00 00 00 00 00             # OUTBPS 3
    `);
    const svc = decodeServiceReply(attrs);
    expect(svc.key).toEqual({ family: 4, protocol: 'udp', address: '203.0.113.1', port: 53 });
    expect(svc.scheduler).toBe('sh');
    expect(svc.rawFlags).toBe(0x17);
    expect(svc.flags).toBe(0x15);
    expect(svc.timeoutSec).toBe(180);
    expect(svc.netmask).toBe(24);
    expect(svc.peName).toBe('');
    expect(svc.stats).toMatchObject({ conns: 5n, inPkts: 7n, inBytes: 0x100001000n, outBytes: 9n, cps: 2n, outPkts: 0n });
    expect(svc.stats64).toMatchObject({ conns: 0x100000000n, inPkts: 7n, outBps: 3n });
    expect(formatServiceKey(svc.key)).toBe('UDP 203.0.113.1:53');
  });

  it('reads counters in place: missing ones are 0, unknown ones skipped, one of a length neither u32 nor u64 is named', () => {
    const stats = decodeStats(
      hex(`
        08 00 0b 00 01 00 00 00                           # type 11: not a counter
        0c 00 0a 00 ff ff ff ff ff ff ff ff               # OUTBPS 2^64-1
        08 00 03 00 2a 00 00 00                           # OUTPKTS 42
      `),
    );
    expect(stats).toEqual({ conns: 0n, inPkts: 0n, outPkts: 42n, inBytes: 0n, outBytes: 0n, cps: 0n, inPps: 0n, outPps: 0n, inBps: 0n, outBps: 0xffffffffffffffffn });
    expect(() => decodeStats(hex('06 00 04 00 01 00 00 00'))).toThrow('stats inbytes: expected 4 bytes, got 2');
    expect(() => decodeStats(hex('0c 00 01 00 01 00 00 00'))).toThrow(/attribute at offset 0 has bad length 12/);
  });

  it('decodes an IPv6 service with a persistence engine, and a fwmark service', () => {
    const v6 = decodeServiceReply(
      hex(`
        5c 00 01 00
          06 00 01 00 0a 00 00 00
          06 00 02 00 06 00 00 00
          14 00 03 00 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01
          06 00 04 00 01 bb 00 00             # 443
          08 00 06 00 77 6c 63 00             # wlc
          0c 00 07 00 03 00 00 00 ff ff ff ff
          08 00 08 00 2c 01 00 00
          08 00 09 00 40 00 00 00             # prefix 64
          08 00 0b 00 73 69 70 00             # sip
      `),
    );
    expect(v6.key).toEqual({ family: 6, protocol: 'tcp', address: '2001:db8::1', port: 443 });
    expect(formatServiceKey(v6.key)).toBe('TCP [2001:db8::1]:443');
    expect(v6.netmask).toBe(64);
    expect(v6.peName).toBe('sip');
    expect(v6.flags).toBe(1);
    const fwm = decodeServiceReply(
      hex(`
        54 00 01 00
          06 00 01 00 02 00 00 00
          06 00 02 00 00 00 00 00             # protocol 0 for fwmark services
          14 00 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
          06 00 04 00 00 00 00 00
          08 00 05 00 01 00 00 00             # FWMARK 1
          07 00 06 00 72 72 00 00             # rr
          0c 00 07 00 02 00 00 00 ff ff ff ff
          08 00 08 00 00 00 00 00
      `),
    );
    expect(fwm.key).toEqual({ family: 4, fwmark: 1 });
    expect(fwm.netmask).toBe(32);
  });

  it('decodes a destination with a u32 weight, its own family, tunnel settings and counters', () => {
    const dest = decodeDestReply(
      hex(`
        94 00 02 00                                       # DEST len 148
          14 00 01 00 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 0a
          06 00 02 00 00 50 00 00                         # PORT 80
          08 00 03 00 02 00 00 00                         # TUNNEL
          08 00 04 00 a0 86 01 00                         # WEIGHT 100000
          08 00 05 00 64 00 00 00                         # U_THRESH 100
          08 00 06 00 32 00 00 00                         # L_THRESH 50
          08 00 07 00 04 00 00 00                         # ACTIVE 4
          08 00 08 00 03 00 00 00                         # INACT 3
          08 00 09 00 02 00 00 00                         # PERSIST 2
          0c 00 0a 00 08 00 01 00 01 00 00 00             # STATS: CONNS 1
          06 00 0b 00 0a 00 00 00                         # ADDR_FAMILY AF_INET6
          10 00 0c 00 0c 00 01 00 01 00 00 00 00 00 00 00 # STATS64: CONNS 1
          05 00 0d 00 02 00 00 00                         # TUN_TYPE GRE
          06 00 0e 00 00 00 00 00                         # TUN_PORT 0
          06 00 0f 00 02 00 00 00                         # TUN_FLAGS REMCSUM
      `),
      4,
    );
    expect(dest).toMatchObject({
      family: 6,
      address: '2001:db8::a',
      port: 80,
      fwdMethod: 'tunnel',
      weight: 100000,
      upperThreshold: 100,
      lowerThreshold: 50,
      activeConns: 4,
      inactConns: 3,
      persistConns: 2,
      tunnelType: 'gre',
      tunnelPort: 0,
      tunnelFlags: 2,
    });
    expect(dest.stats?.conns).toBe(1n);
    expect(dest.stats64?.conns).toBe(1n);
    expect(formatDestKey(dest)).toBe('[2001:db8::a]:80');
  });

  it('defaults a destination without ADDR_FAMILY to the service family (pre-3.18 kernels)', () => {
    const dest = decodeDestReply(
      hex(`
        30 00 02 00
          14 00 01 00 c6 33 64 06 00 00 00 00 00 00 00 00 00 00 00 00
          06 00 02 00 00 50 00 00
          08 00 03 00 00 00 00 00             # MASQ
          08 00 04 00 01 00 00 00
      `),
      4,
    );
    expect(dest).toMatchObject({ family: 4, address: '198.51.100.6', fwdMethod: 'masq', weight: 1, tunnelType: 'ipip' });
  });

  it('decodes info, timeouts and the sync daemon', () => {
    expect(decodeInfoReply(hex('08 00 01 00 01 02 01 00  08 00 02 00 00 10 00 00'))).toEqual({
      versionCode: 0x010201,
      version: '1.2.1',
      connTabSize: 4096,
    });
    expect(decodeTimeoutsReply(hex('08 00 04 00 84 03 00 00 08 00 05 00 78 00 00 00 08 00 06 00 2c 01 00 00'))).toEqual({
      tcpSec: 900,
      tcpFinSec: 120,
      udpSec: 300,
    });
    const daemon = decodeDaemonReply(
      hex(`
        54 00 03 00
          08 00 01 00 01 00 00 00             # MASTER
          09 00 02 00 65 74 68 31 00 00 00 00 # eth1
          08 00 03 00 07 00 00 00             # sync id 7
          06 00 04 00 dc 05 00 00             # maxlen 1500
          08 00 05 00 00 00 00 00             # group unset
          14 00 06 00 ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 51   # ff02::51
          06 00 07 00 90 22 00 00             # port 8848, host order
          05 00 08 00 01 00 00 00
      `),
    );
    expect(daemon).toEqual({ state: 'master', mcastIfn: 'eth1', syncId: 7, syncMaxLen: 1500, mcastGroup: 'ff02::51', mcastPort: 8848, mcastTtl: 1 });
  });

  it('rejects malformed replies with an error naming what is wrong', () => {
    // Attribute length runs past the buffer.
    expect(() => decodeServiceReply(hex('10 00 01 00 06 00 01 00'))).toThrow(/bad length 16/);
    // No AF.
    expect(() => decodeServiceReply(hex('0c 00 01 00 06 00 02 00 06 00 00 00'))).toThrow(/service af is missing/);
    // AF of the wrong size.
    expect(() => decodeServiceReply(hex('0c 00 01 00 08 00 01 00 02 00 00 00'))).toThrow(/service af: expected 2 bytes, got 4/);
    // Unknown protocol 99.
    expect(() =>
      decodeServiceReply(hex('1c 00 01 00 06 00 01 00 02 00 00 00 06 00 02 00 63 00 00 00 08 00 03 00 c0 00 02 01')),
    ).toThrow(/service protocol: unknown value 99/);
    // Scheduler name without NUL.
    expect(() =>
      decodeServiceReply(
        hex(`38 00 01 00 06 00 01 00 02 00 00 00 06 00 02 00 06 00 00 00 08 00 03 00 c0 00 02 01
             06 00 04 00 00 50 00 00 07 00 06 00 72 72 72 00 0c 00 07 00 00 00 00 00 ff ff ff ff`),
      ),
    ).toThrow(/scheduler: string is not NUL-terminated/);
    // No DEST attribute at all.
    expect(() => decodeDestReply(Buffer.alloc(0), 4)).toThrow(/IPVS_CMD_ATTR_DEST is missing/);
  });
});

describe('IPVS codec: round trips (what we encode decodes back to the same value)', () => {
  const services: ServiceSpec[] = [
    tcpSvc,
    { key: { family: 4, protocol: 'udp', address: '203.0.113.1', port: 53 }, scheduler: 'sh', flags: 0x1c, timeoutSec: 0, netmask: 32, peName: '' },
    { key: { family: 4, protocol: 'sctp', address: '203.0.113.2', port: 9 }, scheduler: 'rr', flags: 1, timeoutSec: 60, netmask: 24, peName: 'sip' },
    { key: { family: 6, protocol: 'tcp', address: '2001:db8::1', port: 443 }, scheduler: 'mh', flags: 0x19, timeoutSec: 300, netmask: 64, peName: '' },
    { key: { family: 4, fwmark: 7 }, scheduler: 'wlc', flags: 1, timeoutSec: 600, netmask: 16, peName: '' },
    { key: { family: 6, fwmark: 0xffffffff }, scheduler: 'lblcr', flags: 0, timeoutSec: 0, netmask: 128, peName: '' },
  ];
  it.each(services.map((s) => [formatServiceKey(s.key), s] as const))('service %s', (_name, spec) => {
    const { rawFlags, stats, stats64, ...back } = decodeServiceReply(requestAttrs(ipvsRequests.newService(spec)));
    expect(back).toEqual(spec);
    expect(rawFlags).toBe(spec.flags);
    expect(stats ?? stats64).toBeUndefined();
  });

  const dests: DestSpec[] = [
    { family: 4, address: '198.51.100.6', port: 80, fwdMethod: 'droute', weight: 0, upperThreshold: 0, lowerThreshold: 0, tunnelType: 'ipip', tunnelPort: 0, tunnelFlags: 0 },
    { family: 4, address: '198.51.100.7', port: 8080, fwdMethod: 'masq', weight: 0x7fffffff, upperThreshold: 100, lowerThreshold: 10, tunnelType: 'ipip', tunnelPort: 0, tunnelFlags: 0 },
    { family: 6, address: '2001:db8::7', port: 443, fwdMethod: 'tunnel', weight: 3, upperThreshold: 0, lowerThreshold: 0, tunnelType: 'gue', tunnelPort: 6080, tunnelFlags: 3 },
    { family: 4, address: '198.51.100.9', port: 0, fwdMethod: 'tunnel', weight: 1, upperThreshold: 0, lowerThreshold: 0, tunnelType: 'gre', tunnelPort: 0, tunnelFlags: 1 },
    { family: 4, address: '198.51.100.10', port: 1, fwdMethod: 'local', weight: 1, upperThreshold: 0, lowerThreshold: 0, tunnelType: 'ipip', tunnelPort: 0, tunnelFlags: 0 },
  ];
  it.each(dests.map((d) => [formatDestKey(d), d] as const))('destination %s', (_name, spec) => {
    const { activeConns, inactConns, persistConns, stats, stats64, ...back } = decodeDestReply(requestAttrs(ipvsRequests.newDest(tcpSvc.key, spec)), 6);
    expect(back).toEqual(spec);
    expect([activeConns, inactConns, persistConns, stats, stats64]).toEqual([0, 0, 0, undefined, undefined]);
  });

  it('sync daemon and timeouts', () => {
    const d = { state: 'backup', mcastIfn: 'eth1', syncId: 255, syncMaxLen: 1400, mcastGroup: 'ff02::51', mcastPort: 8849, mcastTtl: 3 } as const;
    expect(decodeDaemonReply(requestAttrs(ipvsRequests.newDaemon(d)))).toEqual(d);
    const t = { tcpSec: 7200, tcpFinSec: 30, udpSec: 45 };
    expect(decodeTimeoutsReply(requestAttrs(ipvsRequests.setTimeouts(t)))).toEqual(t);
  });
});
