import type { DesiredService } from '../../src/ipvs/diff.js';
import type { DestSpec, ServiceSpec } from '../../src/ipvs/types.js';

export function svc(port: number, extra: Partial<ServiceSpec> = {}): ServiceSpec {
  return { key: { family: 4, protocol: 'tcp', address: '192.0.2.1', port }, scheduler: 'wrr', flags: 0, timeoutSec: 0, netmask: 32, peName: '', ...extra };
}

export function dest(n: number, extra: Partial<DestSpec> = {}): DestSpec {
  return {
    family: 4,
    address: `198.51.${100 + Math.floor(n / 250)}.${(n % 250) + 1}`,
    port: 80,
    fwdMethod: 'droute',
    weight: 10,
    upperThreshold: 0,
    lowerThreshold: 0,
    tunnelType: 'ipip',
    tunnelPort: 0,
    tunnelFlags: 0,
    ...extra,
  };
}

export function desired(spec: ServiceSpec, dests: readonly DestSpec[]): DesiredService {
  return { ...spec, destinations: dests };
}

/** services × dests, ports from 1000. */
export function bigTable(services: number, dests: number): DesiredService[] {
  return Array.from({ length: services }, (_, s) =>
    desired(
      svc(1000 + s),
      Array.from({ length: dests }, (_, d) => dest(d)),
    ),
  );
}
