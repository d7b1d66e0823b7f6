// decodeDestReply reads a destination's attributes in place (no Map, no
// Buffer view per attribute: a dump of 10,000 destinations made some 400,000
// of them). It must give what the map-based decoder it replaced gave, value
// for value and error for error, on whatever the kernel (or a corrupted
// reply) sends. The reference below is that decoder, written again from the
// framing's exported primitives.
import { describe, expect, it } from 'vitest';
import { decodeAddress, type IpFamily } from '../../src/ipvs/address.js';
import { decodeDestReply, decodeStats } from '../../src/ipvs/codec.js';
import { AF_INET, AF_INET6, IPVS_CMD_ATTR, IPVS_DEST_ATTR, IP_VS_CONN_F, IP_VS_CONN_F_TUNNEL_TYPE } from '../../src/ipvs/constants.js';
import { decodeAttrs, getBe16, getU16, getU32, getU8, NetlinkDecodeError, type AttrMap } from '../../src/ipvs/netlink-framing.js';
import { createRandomInt } from '../support/random.js';

function lookup(table: Readonly<Record<string, number>>, value: number, what: string): string {
  for (const [k, v] of Object.entries(table)) if (v === value) return k;
  throw new NetlinkDecodeError(`${what}: unknown value ${value}`);
}
const FWD = { masq: IP_VS_CONN_F.MASQ, local: IP_VS_CONN_F.LOCALNODE, tunnel: IP_VS_CONN_F.TUNNEL, droute: IP_VS_CONN_F.DROUTE, bypass: IP_VS_CONN_F.BYPASS };
const TUN = { ipip: IP_VS_CONN_F_TUNNEL_TYPE.IPIP, gue: IP_VS_CONN_F_TUNNEL_TYPE.GUE, gre: IP_VS_CONN_F_TUNNEL_TYPE.GRE };

function need(a: AttrMap, type: number, what: string): Buffer {
  const v = a.get(type);
  if (!v) throw new NetlinkDecodeError(`${what} is missing`);
  return v;
}

/** The map-based decoder, as it was. */
function reference(reply: Buffer, serviceFamily: IpFamily): unknown {
  const a = decodeAttrs(need(decodeAttrs(reply), IPVS_CMD_ATTR.DEST, 'IPVS_CMD_ATTR_DEST'));
  const afBuf = a.get(IPVS_DEST_ATTR.ADDR_FAMILY);
  let family = serviceFamily;
  if (afBuf) {
    const af = getU16('dest address family', afBuf);
    if (af === AF_INET) family = 4;
    else if (af === AF_INET6) family = 6;
    else throw new NetlinkDecodeError(`dest address family: unsupported address family ${af}`);
  }
  const u32Or0 = (type: number, what: string): number => {
    const v = a.get(type);
    return v ? getU32(what, v) : 0;
  };
  const tunType = a.get(IPVS_DEST_ATTR.TUN_TYPE);
  const tunPort = a.get(IPVS_DEST_ATTR.TUN_PORT);
  const tunFlags = a.get(IPVS_DEST_ATTR.TUN_FLAGS);
  const stats = (type: number) => {
    const v = a.get(type);
    return v ? decodeStats(v) : undefined;
  };
  return {
    family,
    address: decodeAddress(family, need(a, IPVS_DEST_ATTR.ADDR, 'dest address')),
    port: getBe16('dest port', need(a, IPVS_DEST_ATTR.PORT, 'dest port')),
    fwdMethod: lookup(FWD, getU32('dest forwarding method', need(a, IPVS_DEST_ATTR.FWD_METHOD, 'dest forwarding method')) & IP_VS_CONN_F.FWD_MASK, 'dest forwarding method'),
    weight: getU32('dest weight', need(a, IPVS_DEST_ATTR.WEIGHT, 'dest weight')),
    upperThreshold: u32Or0(IPVS_DEST_ATTR.U_THRESH, 'dest upper threshold'),
    lowerThreshold: u32Or0(IPVS_DEST_ATTR.L_THRESH, 'dest lower threshold'),
    tunnelType: tunType ? lookup(TUN, getU8('dest tunnel type', tunType), 'dest tunnel type') : 'ipip',
    tunnelPort: tunPort ? getBe16('dest tunnel port', tunPort) : 0,
    tunnelFlags: tunFlags ? getU16('dest tunnel flags', tunFlags) : 0,
    activeConns: u32Or0(IPVS_DEST_ATTR.ACTIVE_CONNS, 'dest active connections'),
    inactConns: u32Or0(IPVS_DEST_ATTR.INACT_CONNS, 'dest inactive connections'),
    persistConns: u32Or0(IPVS_DEST_ATTR.PERSIST_CONNS, 'dest persistent connections'),
    stats: stats(IPVS_DEST_ATTR.STATS),
    stats64: stats(IPVS_DEST_ATTR.STATS64),
  };
}

/** One attribute: header (length, type) and payload, padded to 4. */
function attr(type: number, payload: Buffer, lengthDelta = 0): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(Math.max(0, len + lengthDelta), 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

/** What each attribute of a well-formed destination carries (payload length). */
const DEST_SIZES: Record<number, number> = { 1: 16, 2: 2, 3: 4, 4: 4, 5: 4, 6: 4, 7: 4, 8: 4, 9: 4, 11: 2, 13: 1, 14: 2, 15: 2 };

/** A random destination reply: mostly well formed, with every kind of fault now and then. */
function randomReply(rand: (n: number) => number): Buffer {
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => rand(256)));
  const stats = (): Buffer => {
    const parts: Buffer[] = [];
    const wide = rand(2) === 0;
    for (let t = 1; t <= 11; t++) {
      if (rand(6) === 0) continue;
      const size = rand(12) === 0 ? rand(10) : wide || t >= 4 ? 8 : 4;
      parts.push(attr(t, bytes(size), rand(40) === 0 ? 100 : 0));
    }
    return Buffer.concat(parts);
  };
  const parts: Buffer[] = [];
  for (let type = 0; type <= 17; type++) {
    if (rand(8) === 0) continue; // absent (a required one: its "is missing")
    let payload: Buffer;
    if (type === IPVS_DEST_ATTR.STATS || type === IPVS_DEST_ATTR.STATS64) payload = stats();
    else if (type === IPVS_DEST_ATTR.ADDR_FAMILY) {
      const af = rand(10) === 0 ? rand(30) : rand(2) === 0 ? AF_INET : AF_INET6;
      payload = Buffer.alloc(rand(15) === 0 ? 4 : 2);
      payload.writeUInt16LE(af, 0);
    } else if (type === IPVS_DEST_ATTR.FWD_METHOD) {
      payload = Buffer.alloc(rand(15) === 0 ? 2 : 4);
      if (payload.length === 4) payload.writeUInt32LE(rand(10) === 0 ? rand(16) : rand(5), 0);
    } else if (type === IPVS_DEST_ATTR.TUN_TYPE) {
      payload = Buffer.from([rand(10) === 0 ? rand(9) : rand(3)]);
    } else if (type === IPVS_DEST_ATTR.ADDR) {
      payload = bytes([16, 16, 16, 4, 3, 20][rand(6)]!);
    } else {
      const size = DEST_SIZES[type] ?? rand(9);
      payload = bytes(rand(12) === 0 ? rand(9) : size);
    }
    // Now and then a length that runs past the end, or shorter than a header.
    const delta = rand(60) === 0 ? 200 : rand(80) === 0 ? -(4 + payload.length) + rand(4) : 0;
    parts.push(attr(type, payload, delta));
    if (rand(10) === 0) parts.push(attr(type, DEST_SIZES[type] ? bytes(DEST_SIZES[type]!) : bytes(4))); // twice: the last wins
  }
  // The shuffled nest, sometimes cut short, inside IPVS_CMD_ATTR_DEST, sometimes beside other attributes.
  for (let i = parts.length - 1; i > 0; i--) {
    const j = rand(i + 1);
    [parts[i], parts[j]] = [parts[j]!, parts[i]!];
  }
  let nest = Buffer.concat(parts);
  if (rand(30) === 0) nest = nest.subarray(0, rand(nest.length + 1));
  const top = [attr(IPVS_CMD_ATTR.DEST, nest)];
  if (rand(5) === 0) top.unshift(attr(IPVS_CMD_ATTR.SERVICE, bytes(8)));
  if (rand(40) === 0) top.length = 0;
  return Buffer.concat(top);
}

function outcome(decode: () => unknown): unknown {
  try {
    return { value: decode() };
  } catch (error) {
    return { error: `${(error as Error).constructor.name}: ${(error as Error).message}` };
  }
}

describe('decodeDestReply reads in place what the map-based decoder read', () => {
  it('gives the same value or the same error for 20,000 random replies, well formed and not', () => {
    const rand = createRandomInt(20261206);
    let values = 0;
    const errors = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const reply = randomReply(rand);
      const family: IpFamily = rand(2) === 0 ? 4 : 6;
      const want = outcome(() => reference(reply, family));
      const got = outcome(() => decodeDestReply(reply, family));
      expect(got, `reply ${reply.toString('hex')}`).toEqual(want);
      if ('value' in (want as object)) values++;
      else errors.add(String((want as { error: string }).error).replace(/\d+/g, 'N'));
    }
    // Both sides were exercised: values decoded, and many kinds of error.
    expect(values).toBeGreaterThan(300);
    expect(errors.size).toBeGreaterThan(12);
  });
});
