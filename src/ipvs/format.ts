/**
 * The kernel's table as text, laid out like `ipvsadm -Ln` so that its users
 * read it at a glance (same order, columns and flag words). Pure.
 */
import { encodeAddress, prefixToMask } from './address.js';
import { formatDestKey } from './codec.js';
import { IPPROTO, IP_VS_SVC_F } from './constants.js';
import type { FwdMethod, IpvsInfo, KernelDest, KernelService, ServiceKey } from './types.js';

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

export function formatTable(snapshot: TableSnapshot): string {
  const lines = [
    `IP Virtual Server version ${snapshot.info.version} (size=${snapshot.info.connTabSize})`,
    'Prot LocalAddress:Port Scheduler Flags',
    '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
  ];
  const services = [...snapshot.services].sort((a, b) => compareServiceKeys(a.service.key, b.service.key));
  for (const { service, dests } of services) {
    lines.push(formatServiceLine(service));
    for (const d of [...dests].sort(compareDests)) lines.push(formatDestLine(d));
  }
  return lines.join('\n') + '\n';
}
