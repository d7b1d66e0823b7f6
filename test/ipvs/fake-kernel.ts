/**
 * An in-memory IPVS table that answers like the kernel (same errno for the
 * same mistakes), for manager tests on hosts without IPVS. The lab tests run
 * the same scenarios against the real kernel.
 */
import type { BatchResult, IpvsKernel } from '../../src/ipvs/client.js';
import { destKeyId, formatServiceKey, serviceKeyId } from '../../src/ipvs/codec.js';
import { ipvsCmdName, IPVS_CMD } from '../../src/ipvs/constants.js';
import { opObject, type IpvsOp } from '../../src/ipvs/diff.js';
import { IpvsError } from '../../src/ipvs/errors.js';
import type { DestSpec, KernelDest, KernelService, ServiceKey, ServiceSpec } from '../../src/ipvs/types.js';
import { SCHEDULERS } from '../../src/config/types.js';

const ENOENT = 2;
const ESRCH = 3;
const EEXIST = 17;
const ERANGE = 34;

interface Entry {
  service: ServiceSpec;
  dests: Map<string, DestSpec>;
}

const CMD: Readonly<Record<IpvsOp['op'], number>> = {
  'new-service': IPVS_CMD.NEW_SERVICE,
  'set-service': IPVS_CMD.SET_SERVICE,
  'del-service': IPVS_CMD.DEL_SERVICE,
  'new-dest': IPVS_CMD.NEW_DEST,
  'set-dest': IPVS_CMD.SET_DEST,
  'del-dest': IPVS_CMD.DEL_DEST,
};

export class FakeIpvsKernel implements IpvsKernel {
  readonly table = new Map<string, Entry>();
  readonly calls = { listServices: 0, listDests: 0, apply: 0, ops: 0 };
  readonly applied: IpvsOp[] = [];
  /** When set, the next call of any kind fails with it (a socket error, a timeout). */
  failNext: Error | undefined;
  /** When set, apply() waits for it before answering. */
  gate: Promise<void> | undefined;
  /** When set, an errno (non-zero) for a request the kernel refuses, before its own checks. */
  refuse: ((op: IpvsOp) => number) | undefined;

  async listServices(): Promise<KernelService[]> {
    this.calls.listServices++;
    this.maybeFail();
    return [...this.table.values()].map((e) => ({ ...e.service, rawFlags: e.service.flags | 2, stats: undefined, stats64: undefined }));
  }

  async listDests(key: ServiceKey): Promise<KernelDest[]> {
    this.calls.listDests++;
    this.maybeFail();
    const entry = this.table.get(serviceKeyId(key));
    if (!entry) throw new IpvsError(ESRCH, 'IPVS_CMD_GET_DEST', formatServiceKey(key));
    return [...entry.dests.values()].map((d) => ({ ...d, activeConns: 0, inactConns: 0, persistConns: 0, stats: undefined, stats64: undefined }));
  }

  /** listDests (which tests may replace), mapped. */
  async mapDests<T>(key: ServiceKey, each: (dest: KernelDest) => T): Promise<T[]> {
    return (await this.listDests(key)).map(each);
  }

  async apply(ops: readonly IpvsOp[]): Promise<BatchResult> {
    this.calls.apply++;
    this.calls.ops += ops.length;
    if (this.gate) await this.gate;
    this.maybeFail();
    return ops.map((op) => {
      const errno = this.applyOne(op);
      if (errno) return new IpvsError(errno, ipvsCmdName(CMD[op.op]), opObject(op));
      this.applied.push(op);
      return undefined;
    });
  }

  /** Service spec + dests, as `ipvsadm -A/-a` by hand would set them. */
  put(service: ServiceSpec, dests: readonly DestSpec[] = []): void {
    this.table.set(serviceKeyId(service.key), { service, dests: new Map(dests.map((d) => [destKeyId(d), d])) });
  }

  dests(key: ServiceKey): DestSpec[] {
    return [...(this.table.get(serviceKeyId(key))?.dests.values() ?? [])];
  }

  private maybeFail(): void {
    const error = this.failNext;
    this.failNext = undefined;
    if (error) throw error;
  }

  private applyOne(op: IpvsOp): number {
    const refused = this.refuse?.(op) ?? 0;
    if (refused !== 0) return refused;
    switch (op.op) {
      case 'new-service':
      case 'set-service': {
        const id = serviceKeyId(op.service.key);
        const exists = this.table.has(id);
        if (op.op === 'new-service' && exists) return EEXIST;
        if (op.op === 'set-service' && !exists) return ESRCH;
        if (!(SCHEDULERS as readonly string[]).includes(op.service.scheduler)) return ENOENT;
        this.table.set(id, { service: op.service, dests: this.table.get(id)?.dests ?? new Map() });
        return 0;
      }
      case 'del-service':
        return this.table.delete(serviceKeyId(op.key)) ? 0 : ESRCH;
      default: {
        const entry = this.table.get(serviceKeyId(op.key));
        if (!entry) return ESRCH;
        const id = destKeyId(op.dest);
        if (op.op === 'del-dest') return entry.dests.delete(id) ? 0 : ENOENT;
        if (op.op === 'new-dest' && entry.dests.has(id)) return EEXIST;
        if (op.op === 'set-dest' && !entry.dests.has(id)) return ENOENT;
        if (op.dest.lowerThreshold > op.dest.upperThreshold && op.dest.upperThreshold !== 0) return ERANGE;
        entry.dests.set(id, op.dest);
        return 0;
      }
    }
  }
}
