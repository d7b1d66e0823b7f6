/**
 * IPVS generic netlink codec (pure): requests as attribute bytes, replies as
 * plain values. Layouts and byte order follow linux/ip_vs.h: every integer
 * is host order except ports, the IPv4 netmask and the IPv4 multicast group.
 */
import { decodeAddress, familyOf, prefixToMask, writeAddress, type IpFamily } from './address.js';
import {
  AF_INET,
  AF_INET6,
  IPPROTO,
  IPVS_CMD,
  IPVS_CMD_ATTR,
  IPVS_DAEMON_ATTR,
  IPVS_DEST_ATTR,
  IPVS_GENL_VERSION,
  IPVS_INFO_ATTR,
  IPVS_STATS_ATTR,
  IPVS_SVC_ATTR,
  IP_VS_CONN_F,
  IP_VS_CONN_F_TUNNEL_TYPE,
  IP_VS_IFNAME_MAXLEN,
  IP_VS_PENAME_MAXLEN,
  IP_VS_SCHEDNAME_MAXLEN,
  IP_VS_STATE,
  IP_VS_SVC_F,
} from './constants.js';
import {
  NLM_F,
  NetlinkDecodeError,
  beginNested,
  beginMessage,
  createAttrWriter,
  decodeAttrs,
  forEachAttr,
  forEachAttrIn,
  endMessage,
  endNested,
  getBe16,
  getBe16At,
  getBe32,
  getCString,
  getU16,
  getU16At,
  getU32,
  getU32At,
  getUintAt,
  getU8,
  getU8At,
  putBe16,
  putBe32,
  putCString,
  putRaw,
  putU16,
  putU32,
  putU32Pair,
  putU8,
  writtenBytes,
  type AttrMap,
  type AttrWriter,
} from './netlink-framing.js';
import type {
  DestKey,
  DestSpec,
  FwdMethod,
  IpvsInfo,
  IpvsProtocol,
  IpvsTimeouts,
  KernelDest,
  KernelService,
  ServiceKey,
  ServiceSpec,
  Stats,
  SyncDaemon,
  SyncState,
  TunnelType,
} from './types.js';

/** One IPVS request before framing: the command, and how to write its attributes. */
export interface IpvsRequest {
  readonly cmd: number;
  /** A dump (NLM_F_DUMP) rather than a do request. */
  readonly dump: boolean;
  readonly writeAttrs: (w: AttrWriter) => void;
}

// ---- value <-> number mappings ----

const FWD_METHODS: Readonly<Record<FwdMethod, number>> = {
  masq: IP_VS_CONN_F.MASQ,
  local: IP_VS_CONN_F.LOCALNODE,
  tunnel: IP_VS_CONN_F.TUNNEL,
  droute: IP_VS_CONN_F.DROUTE,
  bypass: IP_VS_CONN_F.BYPASS,
};
const TUNNEL_TYPES: Readonly<Record<TunnelType, number>> = {
  ipip: IP_VS_CONN_F_TUNNEL_TYPE.IPIP,
  gue: IP_VS_CONN_F_TUNNEL_TYPE.GUE,
  gre: IP_VS_CONN_F_TUNNEL_TYPE.GRE,
};
const SYNC_STATES: Readonly<Record<SyncState, number>> = { master: IP_VS_STATE.MASTER, backup: IP_VS_STATE.BACKUP };

function reverseLookup<K extends string>(table: Readonly<Record<K, number>>, value: number, what: string): K {
  for (const [k, v] of Object.entries(table) as [K, number][]) if (v === value) return k;
  throw new NetlinkDecodeError(`${what}: unknown value ${value}`);
}

function afNumber(family: IpFamily): number {
  return family === 4 ? AF_INET : AF_INET6;
}
function afFamily(af: number, what: string): IpFamily {
  if (af === AF_INET) return 4;
  if (af === AF_INET6) return 6;
  throw new NetlinkDecodeError(`${what}: unsupported address family ${af}`);
}

function checkName(what: string, name: string, max: number): void {
  if (Buffer.byteLength(name) + 1 > max) throw new TypeError(`${what} ${JSON.stringify(name)} is longer than ${max - 1} bytes`);
}

// ---- encode ----

function putAddress(w: AttrWriter, type: number, family: IpFamily, address: string): void {
  if (familyOf(address) !== family) throw new TypeError(`not an IPv${family} address: ${JSON.stringify(address)}`);
  const off = putRaw(w, type, family === 4 ? 4 : 16);
  writeAddress(family, address, w.buf, off);
}

function putServiceKey(w: AttrWriter, key: ServiceKey): void {
  putU16(w, IPVS_SVC_ATTR.AF, afNumber(key.family));
  if ('fwmark' in key) {
    putU32(w, IPVS_SVC_ATTR.FWMARK, key.fwmark);
  } else {
    putU16(w, IPVS_SVC_ATTR.PROTOCOL, IPPROTO[key.protocol]);
    putAddress(w, IPVS_SVC_ATTR.ADDR, key.family, key.address);
    putBe16(w, IPVS_SVC_ATTR.PORT, key.port);
  }
}

function putServiceKeyAttr(w: AttrWriter, key: ServiceKey): void {
  const nest = beginNested(w, IPVS_CMD_ATTR.SERVICE);
  putServiceKey(w, key);
  endNested(w, nest);
}

function putServiceAttr(w: AttrWriter, svc: ServiceSpec): void {
  checkName('scheduler', svc.scheduler, IP_VS_SCHEDNAME_MAXLEN);
  checkName('persistence engine', svc.peName, IP_VS_PENAME_MAXLEN);
  const nest = beginNested(w, IPVS_CMD_ATTR.SERVICE);
  putServiceKey(w, svc.key);
  putCString(w, IPVS_SVC_ATTR.SCHED_NAME, svc.scheduler);
  // struct ip_vs_flags {flags, mask}: a full mask sets every bit as given. HASHED is the kernel's.
  putU32Pair(w, IPVS_SVC_ATTR.FLAGS, svc.flags & ~IP_VS_SVC_F.HASHED, 0xffffffff);
  putU32(w, IPVS_SVC_ATTR.TIMEOUT, svc.timeoutSec);
  // The netmask: an IPv4 mask in network order, an IPv6 prefix length in host order.
  if (svc.key.family === 4) putBe32(w, IPVS_SVC_ATTR.NETMASK, prefixToMask(svc.netmask));
  else putU32(w, IPVS_SVC_ATTR.NETMASK, svc.netmask);
  if (svc.peName) putCString(w, IPVS_SVC_ATTR.PE_NAME, svc.peName);
  endNested(w, nest);
}

function putDestKey(w: AttrWriter, dest: DestKey): void {
  putAddress(w, IPVS_DEST_ATTR.ADDR, dest.family, dest.address);
  putBe16(w, IPVS_DEST_ATTR.PORT, dest.port);
  putU16(w, IPVS_DEST_ATTR.ADDR_FAMILY, afNumber(dest.family));
}

function putDestKeyAttr(w: AttrWriter, dest: DestKey): void {
  const nest = beginNested(w, IPVS_CMD_ATTR.DEST);
  putDestKey(w, dest);
  endNested(w, nest);
}

function putDestAttr(w: AttrWriter, dest: DestSpec): void {
  const nest = beginNested(w, IPVS_CMD_ATTR.DEST);
  putDestKey(w, dest);
  putU32(w, IPVS_DEST_ATTR.FWD_METHOD, FWD_METHODS[dest.fwdMethod]);
  putU32(w, IPVS_DEST_ATTR.WEIGHT, dest.weight);
  putU32(w, IPVS_DEST_ATTR.U_THRESH, dest.upperThreshold);
  putU32(w, IPVS_DEST_ATTR.L_THRESH, dest.lowerThreshold);
  if (dest.fwdMethod === 'tunnel') {
    putU8(w, IPVS_DEST_ATTR.TUN_TYPE, TUNNEL_TYPES[dest.tunnelType]);
    putBe16(w, IPVS_DEST_ATTR.TUN_PORT, dest.tunnelPort);
    putU16(w, IPVS_DEST_ATTR.TUN_FLAGS, dest.tunnelFlags);
  }
  endNested(w, nest);
}

function putDaemonAttr(w: AttrWriter, d: SyncDaemon): void {
  checkName('multicast interface', d.mcastIfn, IP_VS_IFNAME_MAXLEN);
  const nest = beginNested(w, IPVS_CMD_ATTR.DAEMON);
  putU32(w, IPVS_DAEMON_ATTR.STATE, SYNC_STATES[d.state]);
  putCString(w, IPVS_DAEMON_ATTR.MCAST_IFN, d.mcastIfn);
  putU32(w, IPVS_DAEMON_ATTR.SYNC_ID, d.syncId);
  if (d.syncMaxLen) putU16(w, IPVS_DAEMON_ATTR.SYNC_MAXLEN, d.syncMaxLen);
  if (d.mcastGroup) {
    const fam = familyOf(d.mcastGroup);
    if (fam === undefined) throw new TypeError(`multicast group ${JSON.stringify(d.mcastGroup)} is not an address`);
    putAddress(w, fam === 4 ? IPVS_DAEMON_ATTR.MCAST_GROUP : IPVS_DAEMON_ATTR.MCAST_GROUP6, fam, d.mcastGroup);
  }
  // The uapi header calls MCAST_PORT be16, but the kernel keeps it in host order (its
  // default reads back as 8848 only in host order, and ipvsadm sends host order): verified in the lab.
  if (d.mcastPort) putU16(w, IPVS_DAEMON_ATTR.MCAST_PORT, d.mcastPort);
  if (d.mcastTtl) putU8(w, IPVS_DAEMON_ATTR.MCAST_TTL, d.mcastTtl);
  endNested(w, nest);
}

type AttrsWriter = (w: AttrWriter) => void;

const NO_ATTRS: AttrsWriter = () => undefined;

function doRequest(cmd: number, writeAttrs: AttrsWriter): IpvsRequest {
  return { cmd, dump: false, writeAttrs };
}

function dumpRequest(cmd: number, writeAttrs: AttrsWriter): IpvsRequest {
  return { cmd, dump: true, writeAttrs };
}

/**
 * Builders for every request a director sends. FLUSH is deliberately absent:
 * we never flush. Attributes are written when the request is framed (straight
 * into the batch's buffer); a bad name or address throws a TypeError then.
 */
export const ipvsRequests = {
  newService: (svc: ServiceSpec): IpvsRequest => doRequest(IPVS_CMD.NEW_SERVICE, (w) => putServiceAttr(w, svc)),
  setService: (svc: ServiceSpec): IpvsRequest => doRequest(IPVS_CMD.SET_SERVICE, (w) => putServiceAttr(w, svc)),
  delService: (key: ServiceKey): IpvsRequest => doRequest(IPVS_CMD.DEL_SERVICE, (w) => putServiceKeyAttr(w, key)),
  getService: (key: ServiceKey): IpvsRequest => doRequest(IPVS_CMD.GET_SERVICE, (w) => putServiceKeyAttr(w, key)),
  dumpServices: (): IpvsRequest => dumpRequest(IPVS_CMD.GET_SERVICE, NO_ATTRS),
  newDest: (key: ServiceKey, dest: DestSpec): IpvsRequest =>
    doRequest(IPVS_CMD.NEW_DEST, (w) => {
      putServiceKeyAttr(w, key);
      putDestAttr(w, dest);
    }),
  setDest: (key: ServiceKey, dest: DestSpec): IpvsRequest =>
    doRequest(IPVS_CMD.SET_DEST, (w) => {
      putServiceKeyAttr(w, key);
      putDestAttr(w, dest);
    }),
  delDest: (key: ServiceKey, dest: DestKey): IpvsRequest =>
    doRequest(IPVS_CMD.DEL_DEST, (w) => {
      putServiceKeyAttr(w, key);
      putDestKeyAttr(w, dest);
    }),
  dumpDests: (key: ServiceKey): IpvsRequest => dumpRequest(IPVS_CMD.GET_DEST, (w) => putServiceKeyAttr(w, key)),
  newDaemon: (d: SyncDaemon): IpvsRequest => doRequest(IPVS_CMD.NEW_DAEMON, (w) => putDaemonAttr(w, d)),
  delDaemon: (state: SyncState): IpvsRequest =>
    doRequest(IPVS_CMD.DEL_DAEMON, (w) => {
      const nest = beginNested(w, IPVS_CMD_ATTR.DAEMON);
      putU32(w, IPVS_DAEMON_ATTR.STATE, SYNC_STATES[state]);
      endNested(w, nest);
    }),
  dumpDaemons: (): IpvsRequest => dumpRequest(IPVS_CMD.GET_DAEMON, NO_ATTRS),
  setTimeouts: (t: IpvsTimeouts): IpvsRequest =>
    doRequest(IPVS_CMD.SET_CONFIG, (w) => {
      putU32(w, IPVS_CMD_ATTR.TIMEOUT_TCP, t.tcpSec);
      putU32(w, IPVS_CMD_ATTR.TIMEOUT_TCP_FIN, t.tcpFinSec);
      putU32(w, IPVS_CMD_ATTR.TIMEOUT_UDP, t.udpSec);
    }),
  getTimeouts: (): IpvsRequest => doRequest(IPVS_CMD.GET_CONFIG, NO_ATTRS),
  getInfo: (): IpvsRequest => doRequest(IPVS_CMD.GET_INFO, NO_ATTRS),
  /** Zeroes the counters of one service, or of all when no key is given. */
  zero: (key?: ServiceKey): IpvsRequest => doRequest(IPVS_CMD.ZERO, key ? (w) => putServiceKeyAttr(w, key) : NO_ATTRS),
} as const;

/** A request's attributes on their own (tests, decoding what we send). */
export function requestAttrs(req: IpvsRequest): Buffer {
  const w = createAttrWriter();
  req.writeAttrs(w);
  return Buffer.from(writtenBytes(w));
}

function requestFlags(req: IpvsRequest, ack: boolean): number {
  if (req.dump) return NLM_F.REQUEST | NLM_F.DUMP;
  return ack ? NLM_F.REQUEST | NLM_F.ACK : NLM_F.REQUEST;
}

/**
 * Appends a complete netlink message for a request to `w` (batches encode
 * every message into one buffer: no allocation per request). Returns the
 * message's offset.
 */
export function appendIpvsMessage(w: AttrWriter, familyId: number, seq: number, pid: number, req: IpvsRequest, ack: boolean): number {
  const start = beginMessage(w, familyId, requestFlags(req, ack), seq, pid, { cmd: req.cmd, version: IPVS_GENL_VERSION });
  req.writeAttrs(w);
  endMessage(w, start);
  return start;
}

/** A complete netlink message for a request. */
export function encodeIpvsMessage(familyId: number, seq: number, pid: number, req: IpvsRequest, ack: boolean): Buffer {
  const w = createAttrWriter();
  appendIpvsMessage(w, familyId, seq, pid, req, ack);
  return Buffer.from(writtenBytes(w));
}

// ---- decode ----

function need(attrs: AttrMap, type: number, what: string): Buffer {
  const v = attrs.get(type);
  if (!v) throw new NetlinkDecodeError(`${what} is missing`);
  return v;
}

function protocolName(n: number): IpvsProtocol {
  return reverseLookup(IPPROTO, n, 'service protocol');
}

/** How errors name the counters, by IPVS_STATS_ATTR type (CONNS, 1, first). */
const STATS_NAMES = ['conns', 'inpkts', 'outpkts', 'inbytes', 'outbytes', 'cps', 'inpps', 'outpps', 'inbps', 'outbps'].map((name) => `stats ${name}`);

/**
 * Stats from STATS (u32, bytes u64) or STATS64 (all u64): the length tells.
 * Read in place (forEachAttr), not through decodeAttrs' map of slices: a
 * reading of 10,000 destinations decodes 20,000 of these.
 */
export function decodeStats(buf: Buffer): Stats {
  return decodeStatsIn(buf, 0, buf.length);
}

/** decodeStats of the attributes from `start` to `end` of `buf` (a destination's nested STATS, read in place). */
function decodeStatsIn(buf: Buffer, start: number, end: number): Stats {
  const v = [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n];
  forEachAttrIn(buf, start, end, (type, offset, length) => {
    const name = STATS_NAMES[type - IPVS_STATS_ATTR.CONNS];
    if (name !== undefined) v[type - IPVS_STATS_ATTR.CONNS] = getUintAt(name, buf, offset, length);
  });
  return { conns: v[0]!, inPkts: v[1]!, outPkts: v[2]!, inBytes: v[3]!, outBytes: v[4]!, cps: v[5]!, inPps: v[6]!, outPps: v[7]!, inBps: v[8]!, outBps: v[9]! };
}

function optionalStats(attrs: AttrMap, type: number): Stats | undefined {
  const v = attrs.get(type);
  return v ? decodeStats(v) : undefined;
}

/** Decodes the attributes inside IPVS_CMD_ATTR_SERVICE. */
export function decodeService(buf: Buffer): KernelService {
  const a = decodeAttrs(buf);
  const family = afFamily(getU16('service af', need(a, IPVS_SVC_ATTR.AF, 'service af')), 'service af');
  const fwmark = a.get(IPVS_SVC_ATTR.FWMARK);
  const fwmarkValue = fwmark ? getU32('service fwmark', fwmark) : 0;
  const key: ServiceKey =
    fwmarkValue !== 0
      ? { family, fwmark: fwmarkValue }
      : {
          family,
          protocol: protocolName(getU16('service protocol', need(a, IPVS_SVC_ATTR.PROTOCOL, 'service protocol'))),
          address: decodeAddress(family, need(a, IPVS_SVC_ATTR.ADDR, 'service address')),
          port: getBe16('service port', need(a, IPVS_SVC_ATTR.PORT, 'service port')),
        };
  const flagsBuf = need(a, IPVS_SVC_ATTR.FLAGS, 'service flags');
  if (flagsBuf.length !== 8) throw new NetlinkDecodeError(`service flags: expected 8 bytes, got ${flagsBuf.length}`);
  const rawFlags = getU32('service flags', flagsBuf.subarray(0, 4));
  const netmaskBuf = a.get(IPVS_SVC_ATTR.NETMASK);
  let netmask = family === 4 ? 32 : 128;
  if (netmaskBuf) {
    // IPv4: the leading ones of the mask (a non-contiguous mask, which ipvsadm accepts, is read as its leading ones).
    netmask = family === 4 ? Math.clz32(~getBe32('service netmask', netmaskBuf)) : getU32('service netmask', netmaskBuf);
  }
  const pe = a.get(IPVS_SVC_ATTR.PE_NAME);
  return {
    key,
    scheduler: getCString('service scheduler', need(a, IPVS_SVC_ATTR.SCHED_NAME, 'service scheduler')),
    flags: rawFlags & ~IP_VS_SVC_F.HASHED,
    rawFlags,
    timeoutSec: getU32('service timeout', need(a, IPVS_SVC_ATTR.TIMEOUT, 'service timeout')),
    netmask,
    peName: pe ? getCString('service pe name', pe) : '',
    stats: optionalStats(a, IPVS_SVC_ATTR.STATS),
    stats64: optionalStats(a, IPVS_SVC_ATTR.STATS64),
  };
}

/** Decodes the attributes inside IPVS_CMD_ATTR_DEST; serviceFamily is the default address family. */
export function decodeDest(buf: Buffer, serviceFamily: IpFamily): KernelDest {
  return decodeDestIn(buf, 0, buf.length, serviceFamily);
}

/**
 * Where the destination being decoded has each attribute, by type: its
 * payload's offset in the buffer (-1: absent) and length. The last
 * occurrence wins and unknown types are passed over, as in decodeAttrs.
 */
const DEST_AT = new Int32Array(IPVS_DEST_ATTR.TUN_FLAGS + 1);
const DEST_LEN = new Int32Array(IPVS_DEST_ATTR.TUN_FLAGS + 1);
function noteDestAttr(type: number, offset: number, length: number): void {
  if (type >= DEST_AT.length) return;
  DEST_AT[type] = offset;
  DEST_LEN[type] = length;
}

/** The offset of a destination attribute that must be there. */
function destNeed(type: number, what: string): number {
  const at = DEST_AT[type]!;
  if (at < 0) throw new NetlinkDecodeError(`${what} is missing`);
  return at;
}

/** One of netlink-framing's in-place scalar readers (getU32At and kin). */
type ScalarAt = (what: string, buf: Buffer, offset: number, length: number) => number;

/** A scalar destination attribute that must be there. */
function destScalar(buf: Buffer, type: number, what: string, read: ScalarAt): number {
  return read(what, buf, destNeed(type, what), DEST_LEN[type]!);
}

/** A scalar destination attribute that may be absent (undefined then). */
function destOptional(buf: Buffer, type: number, what: string, read: ScalarAt): number | undefined {
  const at = DEST_AT[type]!;
  return at < 0 ? undefined : read(what, buf, at, DEST_LEN[type]!);
}

function destAddress(buf: Buffer, family: IpFamily): string {
  const at = destNeed(IPVS_DEST_ATTR.ADDR, 'dest address');
  const length = DEST_LEN[IPVS_DEST_ATTR.ADDR]!;
  if (family === 4 && length >= 4) return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
  return decodeAddress(family, buf.subarray(at, at + length));
}

function destStats(buf: Buffer, type: number): Stats | undefined {
  const at = DEST_AT[type]!;
  return at < 0 ? undefined : decodeStatsIn(buf, at, at + DEST_LEN[type]!);
}

/**
 * A destination's attributes from `start` to `end` of `buf`, read in place.
 * A dump of 10,000 destinations (each resync, each counters reading) made a
 * Map and some forty Buffer views per destination through decodeAttrs: in
 * the lab guest a large part of what the main thread's collector had to do.
 * The values, their checks and their errors, in their order, are decodeAttrs'.
 */
function decodeDestIn(buf: Buffer, start: number, end: number, serviceFamily: IpFamily): KernelDest {
  DEST_AT.fill(-1);
  forEachAttrIn(buf, start, end, noteDestAttr);
  const af = destOptional(buf, IPVS_DEST_ATTR.ADDR_FAMILY, 'dest address family', getU16At);
  const family = af === undefined ? serviceFamily : afFamily(af, 'dest address family');
  const address = destAddress(buf, family);
  const port = destScalar(buf, IPVS_DEST_ATTR.PORT, 'dest port', getBe16At);
  const fwdMethod = reverseLookup(FWD_METHODS, destScalar(buf, IPVS_DEST_ATTR.FWD_METHOD, 'dest forwarding method', getU32At) & IP_VS_CONN_F.FWD_MASK, 'dest forwarding method');
  const weight = destScalar(buf, IPVS_DEST_ATTR.WEIGHT, 'dest weight', getU32At);
  const upperThreshold = destOptional(buf, IPVS_DEST_ATTR.U_THRESH, 'dest upper threshold', getU32At) ?? 0;
  const lowerThreshold = destOptional(buf, IPVS_DEST_ATTR.L_THRESH, 'dest lower threshold', getU32At) ?? 0;
  const tunType = destOptional(buf, IPVS_DEST_ATTR.TUN_TYPE, 'dest tunnel type', getU8At);
  const tunnelType = tunType === undefined ? 'ipip' : reverseLookup(TUNNEL_TYPES, tunType, 'dest tunnel type');
  const tunnelPort = destOptional(buf, IPVS_DEST_ATTR.TUN_PORT, 'dest tunnel port', getBe16At) ?? 0;
  const tunnelFlags = destOptional(buf, IPVS_DEST_ATTR.TUN_FLAGS, 'dest tunnel flags', getU16At) ?? 0;
  const activeConns = destOptional(buf, IPVS_DEST_ATTR.ACTIVE_CONNS, 'dest active connections', getU32At) ?? 0;
  const inactConns = destOptional(buf, IPVS_DEST_ATTR.INACT_CONNS, 'dest inactive connections', getU32At) ?? 0;
  const persistConns = destOptional(buf, IPVS_DEST_ATTR.PERSIST_CONNS, 'dest persistent connections', getU32At) ?? 0;
  // The counters last, as before: a bad scalar is the error reported first.
  const stats = destStats(buf, IPVS_DEST_ATTR.STATS);
  const stats64 = destStats(buf, IPVS_DEST_ATTR.STATS64);
  return { family, address, port, fwdMethod, weight, upperThreshold, lowerThreshold, tunnelType, tunnelPort, tunnelFlags, activeConns, inactConns, persistConns, stats, stats64 };
}

/** The top-level attributes of a NEW_SERVICE reply (one per service in a dump). */
export function decodeServiceReply(attrs: Buffer): KernelService {
  return decodeService(need(decodeAttrs(attrs), IPVS_CMD_ATTR.SERVICE, 'IPVS_CMD_ATTR_SERVICE'));
}

export function decodeDestReply(attrs: Buffer, serviceFamily: IpFamily): KernelDest {
  let at = -1;
  let length = 0;
  forEachAttr(attrs, (type, offset, len) => {
    if (type !== IPVS_CMD_ATTR.DEST) return;
    at = offset;
    length = len;
  });
  if (at < 0) throw new NetlinkDecodeError('IPVS_CMD_ATTR_DEST is missing');
  return decodeDestIn(attrs, at, at + length, serviceFamily);
}

export function decodeDaemonReply(attrs: Buffer): SyncDaemon {
  const a = decodeAttrs(need(decodeAttrs(attrs), IPVS_CMD_ATTR.DAEMON, 'IPVS_CMD_ATTR_DAEMON'));
  const group4 = a.get(IPVS_DAEMON_ATTR.MCAST_GROUP);
  const group6 = a.get(IPVS_DAEMON_ATTR.MCAST_GROUP6);
  let mcastGroup = '';
  if (group6 && group6.some((b) => b !== 0)) mcastGroup = decodeAddress(6, group6);
  else if (group4 && group4.some((b) => b !== 0)) mcastGroup = decodeAddress(4, group4);
  const maxlen = a.get(IPVS_DAEMON_ATTR.SYNC_MAXLEN);
  const port = a.get(IPVS_DAEMON_ATTR.MCAST_PORT);
  const ttl = a.get(IPVS_DAEMON_ATTR.MCAST_TTL);
  return {
    state: reverseLookup(SYNC_STATES, getU32('daemon state', need(a, IPVS_DAEMON_ATTR.STATE, 'daemon state')), 'daemon state'),
    mcastIfn: getCString('daemon interface', need(a, IPVS_DAEMON_ATTR.MCAST_IFN, 'daemon interface')),
    syncId: getU32('daemon sync id', need(a, IPVS_DAEMON_ATTR.SYNC_ID, 'daemon sync id')),
    syncMaxLen: maxlen ? getU16('daemon sync maxlen', maxlen) : 0,
    mcastGroup,
    mcastPort: port ? getU16('daemon port', port) : 0,
    mcastTtl: ttl ? getU8('daemon ttl', ttl) : 0,
  };
}

export function decodeInfoReply(attrs: Buffer): IpvsInfo {
  const a = decodeAttrs(attrs);
  const versionCode = getU32('info version', need(a, IPVS_INFO_ATTR.VERSION, 'info version'));
  return {
    versionCode,
    version: `${(versionCode >> 16) & 0xff}.${(versionCode >> 8) & 0xff}.${versionCode & 0xff}`,
    connTabSize: getU32('info connection table size', need(a, IPVS_INFO_ATTR.CONN_TAB_SIZE, 'info connection table size')),
  };
}

export function decodeTimeoutsReply(attrs: Buffer): IpvsTimeouts {
  const a = decodeAttrs(attrs);
  const get = (type: number, what: string): number => {
    const v = a.get(type);
    return v ? getU32(what, v) : 0;
  };
  return {
    tcpSec: get(IPVS_CMD_ATTR.TIMEOUT_TCP, 'tcp timeout'),
    tcpFinSec: get(IPVS_CMD_ATTR.TIMEOUT_TCP_FIN, 'tcp fin timeout'),
    udpSec: get(IPVS_CMD_ATTR.TIMEOUT_UDP, 'udp timeout'),
  };
}

// ---- text, for logs and errors ----

export function formatServiceKey(key: ServiceKey): string {
  if ('fwmark' in key) return `FWM ${key.fwmark}${key.family === 6 ? ' IPv6' : ''}`;
  const host = key.family === 6 ? `[${key.address}]` : key.address;
  return `${key.protocol.toUpperCase()} ${host}:${key.port}`;
}

export function formatDestKey(dest: DestKey): string {
  return dest.family === 6 ? `[${dest.address}]:${dest.port}` : `${dest.address}:${dest.port}`;
}

export function serviceKeyId(key: ServiceKey): string {
  return 'fwmark' in key ? `fwm/${key.family}/${key.fwmark}` : `${key.protocol}/${key.family}/${key.address}/${key.port}`;
}

/**
 * Ids already worked out, by destination object: a desired destination is one
 * object from publish to publish (DesiredServiceBuilder), and a whole publish
 * of a pool of 10,000 asks for the ids of all of them, several times over.
 */
const DEST_IDS = new WeakMap<DestKey, string>();

export function destKeyId(dest: DestKey): string {
  let id = DEST_IDS.get(dest);
  if (id === undefined) {
    id = formatDestKeyId(dest);
    DEST_IDS.set(dest, id);
  }
  return id;
}

/** destKeyId's string made afresh, not kept with the object (a lookup's key for one about to die). */
export function formatDestKeyId(dest: DestKey): string {
  // join makes one flat string; a template literal made a rope of three
  // pieces and two small strings, kept as long as the destination (at
  // 10,000 servers the flat ids take 0.7 MB less of the main heap).
  return [dest.family, dest.address, dest.port].join('/');
}
