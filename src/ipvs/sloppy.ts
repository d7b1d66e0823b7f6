/**
 * IPVS's sloppy sysctls (net.ipv4.vs.sloppy_tcp, net.ipv4.vs.sloppy_sctp),
 * which decide what a director does with a packet of a connection it has
 * never seen, one the routers moved here from another director (ECMP: a
 * director added or removed; a failover).
 *
 * At 0 (the kernel's default) IPVS schedules a TCP connection only on its
 * SYN (an SCTP one only on its INIT): a mid-connection packet finds no IPVS
 * entry, reaches the director's own stack, which holds the VIP and listens on
 * nothing there, and is answered with a reset. At 1 IPVS schedules any packet,
 * so with a scheduler that maps a connection the same way on every director
 * (mh or sh, the same pool) the moved connection reaches the real server it
 * had, and lives on. The sync daemons (ipvs-sync-daemon) carry connections
 * across too, but only those already synced.
 *
 * The sysctls are per network namespace and belong to the kernel, not to a
 * service: pybal changes them only when pybal.conf says so
 * (`ipvs-sloppy-tcp = yes|no`, `ipvs-sloppy-sctp = yes|no`), at start, at each
 * reload and at each IPVS resync (a value changed by hand is put back, and
 * said). Without the key it leaves the kernel's value and, when an mh or sh
 * service of that protocol runs with it at 0, warns in the log (at start, at
 * each reload, and when the value changes) and in /status, which makes
 * `pybal status` and `pybal check` report a warning. With the key at `no`
 * the operator has decided: the log says once what it costs, /status shows it,
 * and health is not degraded for it. pybal leaves the value as it is when it
 * stops, as it leaves the IPVS table.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GlobalConfig, ServiceConfig } from '../config/types.js';
import { errorMessage } from '../runtime/errors.js';
import type { Logger } from '../runtime/logger.js';

export const IPVS_SYSCTL_DIR = '/proc/sys/net/ipv4/vs';

export const SLOPPY_PROTOCOLS = ['tcp', 'sctp'] as const;
export type SloppyProtocol = (typeof SLOPPY_PROTOCOLS)[number];

/** One sloppy sysctl as /status shows it. */
export interface SloppyStatus {
  /** `net.ipv4.vs.sloppy_tcp`. */
  readonly sysctl: string;
  /** The pybal.conf key that sets it. */
  readonly key: string;
  /** What pybal.conf says: `yes` or `no` (pybal sets it), `unset` (pybal leaves the kernel's value). */
  readonly setting: 'yes' | 'no' | 'unset';
  /** The kernel's value as last read or written; undefined when it could not be read. */
  readonly value: 0 | 1 | undefined;
  /** The mh and sh services of this protocol (those that can carry a moved connection on). */
  readonly services: readonly string[];
  /** True when a connection moved here from another director is reset (the sysctl at 0 with mh or sh services). */
  readonly movedConnectionsReset: boolean;
  /** A problem `pybal status` and `pybal check` report as a warning. */
  readonly warning: string | undefined;
}

/** Reads and writes the sysctl files (a fake in unit tests). */
export interface SysctlFiles {
  read(name: string): Promise<string>;
  write(name: string, value: string): Promise<void>;
}

export function procSysctlFiles(dir = IPVS_SYSCTL_DIR): SysctlFiles {
  return {
    read: (name) => readFile(join(dir, name), 'utf8'),
    write: (name, value) => writeFile(join(dir, name), `${value}\n`),
  };
}

export function sysctlName(protocol: SloppyProtocol): string {
  return `net.ipv4.vs.sloppy_${protocol}`;
}

export function sloppyKey(protocol: SloppyProtocol): 'ipvs-sloppy-tcp' | 'ipvs-sloppy-sctp' {
  return protocol === 'tcp' ? 'ipvs-sloppy-tcp' : 'ipvs-sloppy-sctp';
}

function wanted(global: GlobalConfig, protocol: SloppyProtocol): boolean | undefined {
  return protocol === 'tcp' ? global.ipvsSloppyTcp : global.ipvsSloppySctp;
}

/** The services that hash a connection to a real server the same way on every director with the same pool: mh and sh. */
export function consistentServices(services: readonly ServiceConfig[], protocol: SloppyProtocol): string[] {
  return services.filter((s) => (s.scheduler === 'mh' || s.scheduler === 'sh') && s.protocol === protocol).map((s) => s.name);
}

/** What resetting costs, in the words of the log and /status. */
export function resetConsequence(protocol: SloppyProtocol, services: readonly string[]): string {
  const what = protocol === 'tcp' ? 'a SYN' : 'an INIT';
  return (
    `with ${sysctlName(protocol)} = 0, a ${protocol.toUpperCase()} connection the routers move to this director from another ` +
    `(ECMP: a director added or removed; a failover) is reset, unless a sync daemon brought it here: IPVS schedules only ${what}, ` +
    `although ${services.join(', ')} (${services.length === 1 ? 'an mh or sh service' : 'mh or sh services'}) would send it to the same real server as the other directors`
  );
}

/** The status of one protocol's sysctl, from the configuration and the value read (pure). */
export function assessSloppy(
  global: GlobalConfig,
  services: readonly ServiceConfig[],
  protocol: SloppyProtocol,
  value: 0 | 1 | undefined,
  problem?: string,
): SloppyStatus {
  const want = wanted(global, protocol);
  const consistent = consistentServices(services, protocol);
  const setting = want === undefined ? 'unset' : want ? 'yes' : 'no';
  const movedConnectionsReset = consistent.length > 0 && value === 0;
  let warning = problem;
  if (warning === undefined && setting === 'unset' && movedConnectionsReset) {
    warning = `${sysctlName(protocol)} = 0: connections moved here from another director are reset (${consistent.join(', ')}); set ${sloppyKey(protocol)} = yes, or = no if meant`;
  }
  return { sysctl: sysctlName(protocol), key: sloppyKey(protocol), setting, value, services: consistent, movedConnectionsReset, warning };
}

export interface SloppyKeeperOptions {
  readonly files?: SysctlFiles;
  readonly logger: Logger;
  /** Say what would change, change nothing. */
  readonly dryRun: boolean;
}

/** Why it is checked: `start` and `reload` always log their warning; `resync` only logs what changed. */
export type SloppyOccasion = 'start' | 'reload' | 'resync';

/** Keeps the sloppy sysctls as pybal.conf says, and says what a value of 0 costs (see the module comment). */
export class SloppyKeeper {
  private readonly files: SysctlFiles;
  private readonly log: Logger;
  private readonly dryRun: boolean;
  private readonly statuses = new Map<SloppyProtocol, SloppyStatus>();
  private checking: Promise<void> = Promise.resolve();

  constructor(options: SloppyKeeperOptions) {
    this.files = options.files ?? procSysctlFiles();
    this.log = options.logger;
    this.dryRun = options.dryRun;
  }

  /** The last status of each sysctl pybal has something to say about (configured, or needed by a service). */
  status(): SloppyStatus[] {
    return SLOPPY_PROTOCOLS.flatMap((p) => {
      const s = this.statuses.get(p);
      return s !== undefined && (s.setting !== 'unset' || s.services.length > 0) ? [s] : [];
    });
  }

  /** Reads (and, as configured, writes) both sysctls; one check at a time. */
  check(global: GlobalConfig, services: readonly ServiceConfig[], occasion: SloppyOccasion): Promise<void> {
    this.checking = this.checking.then(async () => {
      for (const protocol of SLOPPY_PROTOCOLS) await this.checkOne(global, services, protocol, occasion);
    });
    return this.checking;
  }

  private async read(protocol: SloppyProtocol): Promise<0 | 1 | undefined> {
    const text = (await this.files.read(`sloppy_${protocol}`)).trim();
    return text === '0' ? 0 : text === '' ? undefined : 1;
  }

  private async checkOne(global: GlobalConfig, services: readonly ServiceConfig[], protocol: SloppyProtocol, occasion: SloppyOccasion): Promise<void> {
    const name = sysctlName(protocol);
    const key = sloppyKey(protocol);
    const want = wanted(global, protocol);
    const consistent = consistentServices(services, protocol);
    const previous = this.statuses.get(protocol);
    if (want === undefined && consistent.length === 0) {
      // Nothing to set and nothing that depends on it.
      this.statuses.delete(protocol);
      return;
    }
    let value: 0 | 1 | undefined;
    let problem: string | undefined;
    try {
      value = await this.read(protocol);
    } catch (error) {
      problem = `cannot read ${name} (${errorMessage(error)}; is IPVS loaded?)`;
    }
    if (value !== undefined && want !== undefined && value !== (want ? 1 : 0)) {
      const target = want ? 1 : 0;
      const why = occasion === 'resync' && previous?.value === target ? `it was changed to ${value} behind pybal's back` : `it was ${value}`;
      if (this.dryRun) {
        this.log.info(`dry run: would set ${name} = ${target} (${key} = ${want ? 'yes' : 'no'}; ${why})`);
      } else {
        try {
          await this.files.write(`sloppy_${protocol}`, String(target));
          this.log.info(`Set ${name} = ${target} (${key} = ${want ? 'yes' : 'no'}; ${why})`);
          value = target;
        } catch (error) {
          problem = `could not set ${name} = ${target} (${key} = ${want ? 'yes' : 'no'}): ${errorMessage(error)}`;
        }
      }
    }
    else if (value !== undefined && want !== undefined && occasion !== 'resync') this.log.info(`${name} is ${value} (${key} = ${want ? 'yes' : 'no'})`);
    const status = assessSloppy(global, services, protocol, value, problem);
    this.statuses.set(protocol, status);
    const changed = previous === undefined || previous.warning !== status.warning || previous.value !== status.value || previous.setting !== status.setting;
    if (occasion === 'resync' && !changed) return;
    if (status.warning !== undefined && problem !== undefined) this.log.error(`${problem[0]!.toUpperCase()}${problem.slice(1)}`);
    else if (status.warning !== undefined) {
      this.log.warn(`${resetConsequence(protocol, status.services)}. Set ${key} = yes in [global] (pybal sets the sysctl) or ${name}=1 yourself; ${key} = no says the resets are meant and ends this warning`);
    } else if (status.movedConnectionsReset && (occasion !== 'resync' || changed)) {
      this.log.info(`${key} = no: ${resetConsequence(protocol, status.services)}`);
    } else if (occasion === 'resync' && previous?.warning !== undefined) {
      this.log.info(`${name} is now ${String(status.value)}: connections moved here from another director are no longer reset`);
    }
  }
}
