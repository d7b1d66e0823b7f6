/**
 * Desired IPVS state vs the kernel's (pure): the ordered operations that make
 * the kernel match, and the bookkeeping of a table model as they succeed.
 */
import { destKeyId, formatDestKey, formatServiceKey, ipvsRequests, serviceKeyId, type IpvsRequest } from './codec.js';
import { IP_VS_SVC_F } from './constants.js';
import { finish } from '../runtime/sliced.js';
import type { DestKey, DestSettings, DestSpec, ServiceKey, ServiceSettings, ServiceSpec } from './types.js';

/** What the coordinators want for one virtual service. */
export interface DesiredService extends ServiceSpec {
  readonly destinations: readonly DestSpec[];
  /**
   * What changed since `patch.base`, the service published before this one
   * (see DesiredServiceBuilder): a manager that has `base` applies only
   * these, so that one weight changed in a pool of 100,000 costs one
   * destination, not a rebuild of 100,000. Without it, or for a manager that
   * has another base, `destinations` is the whole truth.
   */
  patch?: DesiredPatch;
  /**
   * `destinations` by destKeyId, every one checked (normalizeDest), made by
   * the builder in its slices for the IPVS manager to keep as its own when
   * it takes the service whole (it then changes the map with later patches;
   * nothing else reads it): a first pool of 100,000 then costs the manager
   * no pass over its destinations in one turn.
   */
  readonly byId?: ReadonlyMap<string, DestSpec>;
}

/** The destinations that differ from the base service: those added or changed, and those gone. */
export interface DesiredPatch {
  readonly base: DesiredService;
  readonly set: readonly DestSpec[];
  readonly removed: readonly DestSpec[];
}

/** One service of a table model: its settings and its destinations by destKeyId. */
export interface TableEntry {
  readonly service: ServiceSpec;
  readonly dests: ReadonlyMap<string, DestSpec>;
}

/**
 * What the model keeps of a dumped service: its settings, not the counters
 * and flags the dump also carries (at 10,000 destinations those were twenty
 * bigints and two objects each, kept between resyncs for nothing).
 */
export function serviceSpecOf(s: ServiceSpec): ServiceSpec {
  return { key: s.key, scheduler: s.scheduler, flags: s.flags, timeoutSec: s.timeoutSec, netmask: s.netmask, peName: s.peName };
}

/** What the model keeps of a dumped destination (see serviceSpecOf). */
export function destSpecOf(d: DestSpec): DestSpec {
  return {
    family: d.family,
    address: d.address,
    port: d.port,
    fwdMethod: d.fwdMethod,
    weight: d.weight,
    upperThreshold: d.upperThreshold,
    lowerThreshold: d.lowerThreshold,
    tunnelType: d.tunnelType,
    tunnelPort: d.tunnelPort,
    tunnelFlags: d.tunnelFlags,
  };
}

/** A model of (part of) the kernel table, by serviceKeyId. */
export type Table = ReadonlyMap<string, TableEntry>;

export type IpvsOp =
  | { readonly op: 'new-service'; readonly service: ServiceSpec }
  | { readonly op: 'set-service'; readonly service: ServiceSpec; readonly before: ServiceSettings }
  | { readonly op: 'del-service'; readonly key: ServiceKey }
  | { readonly op: 'new-dest'; readonly key: ServiceKey; readonly dest: DestSpec }
  | { readonly op: 'set-dest'; readonly key: ServiceKey; readonly dest: DestSpec; readonly before: DestSettings }
  | { readonly op: 'del-dest'; readonly key: ServiceKey; readonly dest: DestKey };

export function tableFromDesired(services: readonly DesiredService[]): Table {
  const table = new Map<string, TableEntry>();
  for (const s of services) {
    const { destinations, ...service } = s;
    table.set(serviceKeyId(s.key), { service, dests: new Map(destinations.map((d) => [destKeyId(d), d])) });
  }
  return table;
}

/** Persistence timeout and netmask mean nothing (and the kernel keeps whatever was sent) unless the service is persistent. */
function persistent(s: ServiceSettings): boolean {
  return (s.flags & IP_VS_SVC_F.PERSISTENT) !== 0;
}

export function sameServiceSettings(a: ServiceSettings, b: ServiceSettings): boolean {
  const flagsA = a.flags & ~IP_VS_SVC_F.HASHED;
  const flagsB = b.flags & ~IP_VS_SVC_F.HASHED;
  if (a.scheduler !== b.scheduler || flagsA !== flagsB || a.peName !== b.peName) return false;
  if (persistent(a) && (a.timeoutSec !== b.timeoutSec || a.netmask !== b.netmask)) return false;
  return true;
}

export function sameDestSettings(a: DestSettings, b: DestSettings): boolean {
  if (a.fwdMethod !== b.fwdMethod || a.weight !== b.weight) return false;
  if (a.upperThreshold !== b.upperThreshold || a.lowerThreshold !== b.lowerThreshold) return false;
  if (a.fwdMethod === 'tunnel') {
    return a.tunnelType === b.tunnelType && a.tunnelPort === b.tunnelPort && a.tunnelFlags === b.tunnelFlags;
  }
  return true;
}

/**
 * The operations that turn `kernel` into `desired` for the desired services,
 * plus the deletion of `remove` (services we manage that are no longer
 * wanted). Nothing else in the kernel is touched. Order: service deletions,
 * then per service its creation or change, destination deletions, changes,
 * additions. A destination whose settings changed is edited in place
 * (SET_DEST), never deleted and re-added, so its connections survive.
 */
export function diffTables(desired: Table, kernel: Table, remove: readonly ServiceKey[] = []): IpvsOp[] {
  return finish(diffSteps(desired, kernel, remove));
}

/** Destinations looked at between two chances for a sliced runner to pause. */
const DESTS_PER_STEP = 256;

/** diffTables as a job for a sliced runner (src/runtime/sliced.ts): it yields every few hundred destinations. */
export function* diffSteps(desired: Table, kernel: Table, remove: readonly ServiceKey[] = []): Generator<unknown, IpvsOp[], undefined> {
  const ops: IpvsOp[] = [];
  let n = 0;
  const pause = (): boolean => ++n % DESTS_PER_STEP === 0;
  for (const key of remove) {
    const id = serviceKeyId(key);
    if (kernel.has(id) && !desired.has(id)) ops.push({ op: 'del-service', key });
  }
  for (const [id, want] of desired) {
    const have = kernel.get(id);
    const key = want.service.key;
    if (!have) {
      ops.push({ op: 'new-service', service: want.service });
      for (const dest of want.dests.values()) {
        ops.push({ op: 'new-dest', key, dest });
        if (pause()) yield;
      }
      continue;
    }
    if (!sameServiceSettings(want.service, have.service)) ops.push({ op: 'set-service', service: want.service, before: have.service });
    for (const [destId, dest] of have.dests) {
      if (!want.dests.has(destId)) ops.push({ op: 'del-dest', key, dest });
      if (pause()) yield;
    }
    for (const [destId, dest] of want.dests) {
      const before = have.dests.get(destId);
      if (before && !sameDestSettings(dest, before)) ops.push({ op: 'set-dest', key, dest, before });
      if (pause()) yield;
    }
    for (const [destId, dest] of want.dests) {
      if (!have.dests.has(destId)) ops.push({ op: 'new-dest', key, dest });
      if (pause()) yield;
    }
  }
  return ops;
}

/**
 * The operations for some destinations only (`ids`: destKeyIds by service
 * id) of services both tables have: for each service, deletions, then
 * changes, then additions, as diffSteps orders them. What a patch costs: the
 * destinations it names, not the service's others.
 */
export function diffDestinations(desired: Table, kernel: Table, ids: ReadonlyMap<string, ReadonlySet<string>>): IpvsOp[] {
  const ops: IpvsOp[] = [];
  for (const [id, destIds] of ids) {
    const want = desired.get(id);
    const have = kernel.get(id);
    if (want === undefined || have === undefined) continue;
    const key = want.service.key;
    const changes: IpvsOp[] = [];
    const additions: IpvsOp[] = [];
    for (const destId of destIds) {
      const dest = want.dests.get(destId);
      const before = have.dests.get(destId);
      if (dest === undefined) {
        if (before !== undefined) ops.push({ op: 'del-dest', key, dest: before });
      } else if (before === undefined) additions.push({ op: 'new-dest', key, dest });
      else if (!sameDestSettings(dest, before)) changes.push({ op: 'set-dest', key, dest, before });
    }
    ops.push(...changes, ...additions);
  }
  return ops;
}

/**
 * Destination operations that succeeded, applied to the table's own
 * destination maps in place (applyOpsSteps copies a service it changes):
 * for a model whose maps no one else holds, one destination costs one.
 */
export function applyDestOpsInPlace(table: Table, ops: readonly IpvsOp[]): void {
  for (const op of ops) {
    if (op.op !== 'new-dest' && op.op !== 'set-dest' && op.op !== 'del-dest') continue;
    const dests = table.get(serviceKeyId(op.key))?.dests as Map<string, DestSpec> | undefined;
    if (dests === undefined) continue;
    if (op.op === 'del-dest') dests.delete(destKeyId(op.dest));
    else dests.set(destKeyId(op.dest), op.dest);
  }
}

/** The model after `op` succeeded. Returns a new map; entries are shared where unchanged. */
export function applyOp(table: Table, op: IpvsOp): Map<string, TableEntry> {
  return applyOps(table, [op]);
}

/**
 * The model after every op of `ops` succeeded, in order. Returns a new map;
 * each service an op touches gets its own copy of its destinations once, so
 * the cost is the ops plus the touched services' sizes (one op at a time,
 * 100,000 new servers of one service would copy it 100,000 times).
 */
export function applyOps(table: Table, ops: Iterable<IpvsOp>): Map<string, TableEntry> {
  return finish(applyOpsSteps(table, ops));
}

/** applyOps as a job for a sliced runner: it yields every few hundred operations (and within a large copy). */
export function* applyOpsSteps(table: Table, ops: Iterable<IpvsOp>): Generator<unknown, Map<string, TableEntry>, undefined> {
  const next = new Map(table);
  let n = 0;
  /** Services whose destination map is already this call's own copy. */
  const owned = new Set<string>();
  // A copy of a service's destinations, made in steps (100,000 of them are a long copy).
  const copySteps = function* (entry: TableEntry): Generator<unknown, Map<string, DestSpec>, undefined> {
    const dests = new Map<string, DestSpec>();
    let copied = 0;
    for (const [destId, dest] of entry.dests) {
      dests.set(destId, dest);
      if (++copied % DESTS_PER_STEP === 0) yield;
    }
    return dests;
  };
  // Ops of one service share its key object (diffTables): its id is worked out once per run of them.
  let lastKey: ServiceKey | undefined;
  let lastId = '';
  const idOf = (key: ServiceKey): string => {
    if (key !== lastKey) {
      lastKey = key;
      lastId = serviceKeyId(key);
    }
    return lastId;
  };
  for (const op of ops) {
    switch (op.op) {
      case 'new-service':
      case 'set-service': {
        const id = serviceKeyId(op.service.key);
        const entry = next.get(id);
        if (entry) next.set(id, { service: op.service, dests: entry.dests });
        else {
          next.set(id, { service: op.service, dests: new Map() });
          owned.add(id);
        }
        break;
      }
      case 'del-service': {
        const id = serviceKeyId(op.key);
        next.delete(id);
        owned.delete(id);
        break;
      }
      case 'new-dest':
      case 'set-dest':
      case 'del-dest': {
        const id = idOf(op.key);
        const entry = next.get(id);
        if (!entry) break;
        let dests = entry.dests as Map<string, DestSpec>;
        if (!owned.has(id)) {
          dests = yield* copySteps(entry);
          owned.add(id);
          next.set(id, { service: entry.service, dests });
        }
        if (op.op === 'del-dest') dests.delete(destKeyId(op.dest));
        else dests.set(destKeyId(op.dest), op.dest);
        break;
      }
    }
    if (++n % DESTS_PER_STEP === 0) yield;
  }
  return next;
}

export function requestForOp(op: IpvsOp): IpvsRequest {
  switch (op.op) {
    case 'new-service':
      return ipvsRequests.newService(op.service);
    case 'set-service':
      return ipvsRequests.setService(op.service);
    case 'del-service':
      return ipvsRequests.delService(op.key);
    case 'new-dest':
      return ipvsRequests.newDest(op.key, op.dest);
    case 'set-dest':
      return ipvsRequests.setDest(op.key, op.dest);
    case 'del-dest':
      return ipvsRequests.delDest(op.key, op.dest);
  }
}

const FWD_TEXT: Readonly<Record<DestSettings['fwdMethod'], string>> = {
  masq: 'masq',
  local: 'local',
  tunnel: 'tunnel',
  droute: 'route',
  bypass: 'bypass',
};

export function formatDestSettings(d: DestSettings): string {
  let text = `${FWD_TEXT[d.fwdMethod]} weight ${d.weight}`;
  if (d.fwdMethod === 'tunnel') text += ` ${d.tunnelType}${d.tunnelPort ? ` port ${d.tunnelPort}` : ''}`;
  if (d.upperThreshold || d.lowerThreshold) text += ` thresholds ${d.lowerThreshold}..${d.upperThreshold}`;
  return text;
}

export function formatServiceSettings(s: ServiceSettings): string {
  let text = `scheduler ${s.scheduler}`;
  const flags = s.flags & ~(IP_VS_SVC_F.HASHED | IP_VS_SVC_F.PERSISTENT);
  if (flags) text += ` flags 0x${flags.toString(16)}`;
  if (persistent(s)) text += ` persistent ${s.timeoutSec}s mask /${s.netmask}`;
  if (s.peName) text += ` pe ${s.peName}`;
  return text;
}

/** The object an operation is about, as an `ipvsadm -Ln` user would name it. */
export function opObject(op: IpvsOp): string {
  switch (op.op) {
    case 'new-service':
    case 'set-service':
      return formatServiceKey(op.service.key);
    case 'del-service':
      return formatServiceKey(op.key);
    default:
      return `${formatServiceKey(op.key)} -> ${formatDestKey(op.dest)}`;
  }
}

/** One line for logs: what the operation does. */
export function describeOp(op: IpvsOp): string {
  switch (op.op) {
    case 'new-service':
      return `add service ${opObject(op)} ${formatServiceSettings(op.service)}`;
    case 'set-service':
      return `edit service ${opObject(op)}: ${formatServiceSettings(op.before)} => ${formatServiceSettings(op.service)}`;
    case 'del-service':
      return `delete service ${opObject(op)}`;
    case 'new-dest':
      return `add server ${opObject(op)} ${formatDestSettings(op.dest)}`;
    case 'set-dest':
      return `edit server ${opObject(op)}: ${formatDestSettings(op.before)} => ${formatDestSettings(op.dest)}`;
    case 'del-dest':
      return `delete server ${opObject(op)}`;
  }
}
