/**
 * What `pybal import` reads out of a keepalived.conf or an ldirectord.cf: LVS
 * services as both tools describe them, already reduced to what one pybal
 * service can hold (one set of health checks for every server, one forwarding
 * method), plus a note for everything of the source that is not carried over
 * or is carried over differently. The readers produce it; convert.ts turns it
 * into pybal.conf and pool files. Plain values only.
 */

import type { Problem } from '../runtime/errors.js';
import type { AddressFamily, CommandArgument, Protocol } from '../config/types.js';

export const IMPORT_FORMATS = ['keepalived', 'ldirectord'] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

/** A place in a source file; `endLine` when it is a whole block. */
export interface SourceRef {
  readonly file: string;
  readonly line: number;
  readonly endLine?: number;
}

/** Something of the source that pybal.conf does not carry, or carries differently: one comment in the output. */
export interface ImportNote {
  readonly at: SourceRef;
  readonly message: string;
}

/** What a reader needs beyond the file's text. */
export interface ReadOptions {
  /** The VIP of a firewall-mark service, whose source names no address (`--fwmark-ip`). */
  readonly fwmarkIp?: (mark: number) => string | undefined;
}

export type Forwarding = 'dr' | 'nat' | 'tunnel';

/** keepalived's `lvs_method TUN type ...`: kept only when not plain IPIP. */
export interface TunnelSpec {
  readonly type: 'ipip' | 'gue' | 'gre';
  readonly port?: number;
  readonly checksum?: 'none' | 'csum' | 'remcsum';
}

export type SchedulerFlag = 'sh-port' | 'sh-fallback' | 'mh-port' | 'mh-fallback';

export interface LvsServer {
  readonly at: SourceRef;
  /** An IP address, or a host name (pool files take both). */
  readonly host: string;
  /** Undefined when the source gives none (the service's port applies). */
  readonly port: number | undefined;
  readonly weight: number;
  readonly enabled: boolean;
}

/** Timing every periodic check has, in pybal's terms. */
export interface CheckTiming {
  readonly intervalSec: number;
  readonly timeoutSec: number;
  /** Consecutive failures before a server is down. */
  readonly fall: number;
}

/** One health check, the same for every server of the service. */
export type LvsCheck =
  | (CheckTiming & {
      readonly kind: 'http';
      readonly at: SourceRef;
      /** Full URLs: the host sets only the Host header (and SNI); pybal connects to the server. */
      readonly urls: readonly string[];
      /** 301, 302 or 303 when a redirect is expected; otherwise undefined (any 2xx passes). */
      readonly redirectStatus?: number;
      readonly expectBody?: string;
      readonly expectBodyRegex?: string;
    })
  | (CheckTiming & { readonly kind: 'tcp'; readonly at: SourceRef })
  | (CheckTiming & {
      readonly kind: 'command';
      readonly at: SourceRef;
      readonly command: string;
      readonly arguments: readonly CommandArgument[];
    })
  | (CheckTiming & { readonly kind: 'ping'; readonly at: SourceRef; readonly count: number })
  | (CheckTiming & { readonly kind: 'udp'; readonly at: SourceRef })
  | (CheckTiming & { readonly kind: 'dns'; readonly at: SourceRef; readonly hostnames: readonly string[] });

export type LvsCheckKind = LvsCheck['kind'];

export interface LvsService {
  /** The `virtual_server` or `virtual=` line. */
  readonly at: SourceRef;
  /** How the source names it, for messages (`virtual_server fwmark 1`). */
  readonly label: string;
  /** A name the source gives it (keepalived's snmp_name), if any. */
  readonly nameHint?: string;
  /** The VIP; undefined for a firewall-mark service whose address the source does not give. */
  readonly ip: string | undefined;
  readonly family: AddressFamily;
  /** The VIP's port; for a firewall-mark service, the port checks connect to. Undefined when unknown. */
  readonly port: number | undefined;
  readonly fwmark?: number;
  readonly protocol: Protocol;
  readonly scheduler: string;
  readonly schedulerFlags: readonly SchedulerFlag[];
  readonly ops: boolean;
  readonly forwarding: Forwarding;
  readonly tunnel?: TunnelSpec;
  /** The real servers' port when it differs from the VIP's (NAT). */
  readonly realPort?: number;
  readonly persistence?: { readonly timeoutSec: number; readonly netmask?: string; readonly engine?: string };
  readonly upperThreshold?: number;
  readonly lowerThreshold?: number;
  readonly servers: readonly LvsServer[];
  readonly checks: readonly LvsCheck[];
  /** Notes that belong to this service, in source order. */
  readonly notes: readonly ImportNote[];
}

export interface LvsImport {
  readonly format: ImportFormat;
  /** The file read (as named to the reader). */
  readonly file: string;
  readonly services: readonly LvsService[];
  /** Notes that belong to no service (global settings, VRRP...). */
  readonly notes: readonly ImportNote[];
  /** The file cannot be converted: each names file:line. */
  readonly errors: readonly Problem[];
}

/** `file:line` or `file:line-end`. */
export function formatSourceRef(at: SourceRef): string {
  return at.endLine !== undefined && at.endLine !== at.line ? `${at.file}:${at.line}-${at.endLine}` : `${at.file}:${at.line}`;
}
