/**
 * What the kernel has pooled before pybal writes anything: for each
 * configured service, the real-server addresses with a weight above 0. A
 * restart uses it so that servers the kernel was already balancing to are
 * not depooled by the first failed check of a busy start (they need `fall`
 * failures, as if pybal had been running all along).
 */
import type { ServiceConfig } from '../config/types.js';
import type { IpvsKernel } from './client.js';
import { canonicalAddress } from './address.js';
import { serviceKeyId } from './codec.js';
import { serviceKeyFromConfig } from './desired.js';

/** Pooled addresses by service name; a service the kernel lacks has none. */
export type PooledAtStart = ReadonlyMap<string, ReadonlySet<string>>;

export async function readPooledAtStart(kernel: Pick<IpvsKernel, 'listServices' | 'listDests'>, services: readonly ServiceConfig[]): Promise<PooledAtStart> {
  const byKey = new Map<string, ServiceConfig[]>();
  for (const service of services) {
    const id = serviceKeyId(serviceKeyFromConfig(service));
    byKey.set(id, [...(byKey.get(id) ?? []), service]);
  }
  const out = new Map<string, Set<string>>();
  for (const svc of await kernel.listServices()) {
    const configured = byKey.get(serviceKeyId(svc.key));
    if (!configured) continue;
    const pooled = new Set<string>();
    for (const dest of await kernel.listDests(svc.key)) if (dest.weight > 0) pooled.add(canonicalAddress(dest.address));
    for (const service of configured) out.set(service.name, pooled);
  }
  return out;
}

/** Whether `address` was pooled in the service at start. */
export function wasPooledAtStart(pooled: PooledAtStart, serviceName: string, address: string): boolean {
  return pooled.get(serviceName)?.has(canonicalAddress(address)) ?? false;
}
