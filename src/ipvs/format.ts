/**
 * The kernel's table as text, laid out like `ipvsadm -Ln` so that its users
 * read it at a glance (same order, columns and flag words). Pure.
 */
import { encodeAddress, prefixToMask } from './address.js';
import { formatDestKey } from './codec.js';
import { IPPROTO, IP_VS_SVC_F } from './constants.js';
import type { FwdMethod, IpvsInfo, KernelDest, KernelService, ServiceKey, Stats } from './types.js';

export interface TableSnapshot {
  readonly info: IpvsInfo;
  readonly services: readonly { readonly service: KernelService; readonly dests: readonly KernelDest[] }[];
}

const FWD_WORD: Readonly<Record<FwdMethod, string>> = { masq: 'Masq', local: 'Local', tunnel: 'Tunnel', droute: 'Route', bypass: 'Bypass' };

function compareBytes(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b);
}

/** ipvsadm's order: address services before fwmark ones, then family, protocol, address, port. */
export function compareServiceKeys(a: ServiceKey, b: ServiceKey): number {
  const markA = 'fwmark' in a ? a.fwmark : 0;
  const markB = 'fwmark' in b ? b.fwmark : 0;
  if (markA !== markB) return markA - markB;
  if (a.family !== b.family) return a.family - b.family;
  if ('fwmark' in a || 'fwmark' in b) return 0;
  if (a.protocol !== b.protocol) return IPPROTO[a.protocol] - IPPROTO[b.protocol];
  const byAddr = compareBytes(encodeAddress(a.family, a.address), encodeAddress(b.family, b.address));
  return byAddr !== 0 ? byAddr : a.port - b.port;
}

function compareDests(a: KernelDest, b: KernelDest): number {
  if (a.family !== b.family) return a.family - b.family;
  const byAddr = compareBytes(encodeAddress(a.family, a.address), encodeAddress(b.family, b.address));
  return byAddr !== 0 ? byAddr : a.port - b.port;
}

function schedulerFlagWords(s: KernelService): string {
  const bits = [IP_VS_SVC_F.SCHED1, IP_VS_SVC_F.SCHED2, IP_VS_SVC_F.SCHED3];
  const names =
    s.scheduler === 'sh' ? ['sh-fallback', 'sh-port'] : s.scheduler === 'mh' ? ['mh-fallback', 'mh-port'] : ['flag-1', 'flag-2', 'flag-3'];
  const words = bits.flatMap((bit, i) => ((s.flags & bit) !== 0 ? [names[i] ?? `flag-${i + 1}`] : []));
  return words.length ? ` (${words.join(',')})` : '';
}

export function formatServiceLine(s: KernelService): string {
  const key = s.key;
  let line: string;
  if ('fwmark' in key) line = `FWM  ${key.fwmark} ${key.family === 6 ? 'IPv6 ' : ''}${s.scheduler}`;
  else line = `${key.protocol.toUpperCase().padEnd(4)} ${formatDestKey({ family: key.family, address: key.address, port: key.port })} ${s.scheduler}`;
  line += schedulerFlagWords(s);
  if (s.flags & IP_VS_SVC_F.ONEPACKET) line += ' ops';
  if (s.flags & IP_VS_SVC_F.PERSISTENT) {
    line += ` persistent ${s.timeoutSec}`;
    if (key.family === 4 && s.netmask !== 32) {
      const m = prefixToMask(s.netmask);
      line += ` mask ${m >>> 24}.${(m >>> 16) & 0xff}.${(m >>> 8) & 0xff}.${m & 0xff}`;
    }
    if (key.family === 6 && s.netmask !== 128) line += ` mask ${s.netmask}`;
  }
  if (s.peName) line += ` pe ${s.peName}`;
  return line;
}

export function formatDestLine(d: KernelDest): string {
  return `  -> ${formatDestKey(d).padEnd(28)} ${FWD_WORD[d.fwdMethod].padEnd(7)} ${String(d.weight).padEnd(6)} ${String(d.activeConns).padEnd(10)} ${String(d.inactConns).padEnd(10)}`;
}

/** Which of ipvsadm's listings: the table (`-Ln`), the counters (`--stats`) or the kernel's rate estimates (`--rate`). */
export type TableView = 'table' | 'stats' | 'rate';

export interface TableFormatOptions {
  readonly view?: TableView;
  /** `--exact`: numbers in full, never shortened to K, M, G or T. */
  readonly exact?: boolean;
}

/** The 64-bit counters when the kernel sent them (since 4.1), else the 32-bit ones; zeros when neither. */
export function statsOf(entry: { readonly stats: Stats | undefined; readonly stats64: Stats | undefined }): Stats {
  return entry.stats64 ?? entry.stats ?? ZERO_STATS;
}

export const ZERO_STATS: Stats = { conns: 0n, inPkts: 0n, outPkts: 0n, inBytes: 0n, outBytes: 0n, cps: 0n, inPps: 0n, outPps: 0n, inBps: 0n, outBps: 0n };

/**
 * One number of `--stats` and `--rate` as ipvsadm's print_largenum writes it:
 * nine columns (a space and eight digits); from 100 million on, the value is
 * divided (rounding down) and suffixed, in eight columns plus the letter: K
 * below a billion, M below 100 billion, G below 100 trillion, else T. With
 * `exact`, the whole number, right-aligned in nine columns or one more than
 * it has digits.
 */
export function formatLargeNumber(n: bigint, exact = false): string {
  const digits = n.toString();
  if (exact) return digits.padStart(digits.length <= 8 ? 9 : digits.length + 1);
  if (n < 100_000_000n) return digits.padStart(9);
  if (n < 1_000_000_000n) return `${(n / 1_000n).toString().padStart(8)}K`;
  if (n < 100_000_000_000n) return `${(n / 1_000_000n).toString().padStart(8)}M`;
  if (n < 100_000_000_000_000n) return `${(n / 1_000_000_000n).toString().padStart(8)}G`;
  return `${(n / 1_000_000_000_000n).toString().padStart(8)}T`;
}

/** A service's name as the counter listings print it (ipvsadm's `%-4s %s` or `FWM  %d`), padded to 33 columns. */
function serviceName(key: ServiceKey): string {
  const name =
    'fwmark' in key
      ? `FWM  ${key.fwmark}${key.family === 6 ? ' IPv6' : ''}`
      : `${key.protocol.toUpperCase().padEnd(4)} ${formatDestKey({ family: key.family, address: key.address, port: key.port })}`;
  return name.padEnd(33);
}

function numbers(values: readonly bigint[], exact: boolean): string {
  return values.map((v) => formatLargeNumber(v, exact)).join('');
}

/** A service's line of `ipvsadm -Ln --stats` (view 'stats') or `--rate` (view 'rate'). */
export function formatServiceCounters(s: KernelService, view: 'stats' | 'rate', exact = false): string {
  const st = statsOf(s);
  const values = view === 'stats' ? [st.conns, st.inPkts, st.outPkts, st.inBytes, st.outBytes] : [st.cps, st.inPps, st.outPps, st.inBps, st.outBps];
  return serviceName(s.key) + numbers(values, exact);
}

/**
 * A destination's line of `--stats` or `--rate`. ipvsadm writes a
 * destination's connection and packet rates as plain `%8llu` (never
 * shortened, whatever `--exact` says), its byte rates and every counter
 * as print_largenum does.
 */
export function formatDestCounters(d: KernelDest, view: 'stats' | 'rate', exact = false): string {
  const st = statsOf(d);
  const name = `  -> ${formatDestKey(d).padEnd(28)}`;
  if (view === 'stats') return name + numbers([st.conns, st.inPkts, st.outPkts, st.inBytes, st.outBytes], exact);
  const plain = [st.cps, st.inPps, st.outPps].map((v) => ` ${v.toString().padStart(8)}`).join('');
  return name + plain + numbers([st.inBps, st.outBps], exact);
}

const HEADERS: Readonly<Record<TableView, readonly string[]>> = {
  table: ['Prot LocalAddress:Port Scheduler Flags', '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn'],
  stats: [`${'Prot LocalAddress:Port'.padEnd(33)} ${['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'].map((h) => h.padStart(8)).join(' ')}`, '  -> RemoteAddress:Port'],
  rate: [`${'Prot LocalAddress:Port'.padEnd(33)} ${['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'].map((h) => h.padStart(8)).join(' ')}`, '  -> RemoteAddress:Port'],
};

export function formatTable(snapshot: TableSnapshot, options: TableFormatOptions = {}): string {
  const view = options.view ?? 'table';
  const exact = options.exact ?? false;
  const lines = [`IP Virtual Server version ${snapshot.info.version} (size=${snapshot.info.connTabSize})`, ...HEADERS[view]];
  const services = [...snapshot.services].sort((a, b) => compareServiceKeys(a.service.key, b.service.key));
  for (const { service, dests } of services) {
    lines.push(view === 'table' ? formatServiceLine(service) : formatServiceCounters(service, view, exact));
    for (const d of [...dests].sort(compareDests)) lines.push(view === 'table' ? formatDestLine(d) : formatDestCounters(d, view, exact));
  }
  return lines.join('\n') + '\n';
}
