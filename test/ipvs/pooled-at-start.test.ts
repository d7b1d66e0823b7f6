import { describe, expect, it } from 'vitest';
import { readPooledAtStart, wasPooledAtStart } from '../../src/ipvs/pooled-at-start.js';
import type { KernelDest, KernelService, ServiceKey } from '../../src/ipvs/types.js';
import { serviceConfig } from '../support/config-fixtures.js';

function kernelWith(table: { key: ServiceKey; dests: { address: string; weight: number }[] }[]) {
  const asked: string[] = [];
  return {
    asked,
    listServices: async () => table.map((t) => ({ key: t.key }) as unknown as KernelService),
    listDests: async (key: ServiceKey) => {
      asked.push(JSON.stringify(key));
      const entry = table.find((t) => JSON.stringify(t.key) === JSON.stringify(key));
      return (entry?.dests ?? []).map((d) => ({ family: d.address.includes(':') ? 6 : 4, port: 80, ...d }) as unknown as KernelDest);
    },
  };
}

describe('readPooledAtStart', () => {
  it('reads the configured services only, and counts only servers with a weight above 0', async () => {
    const web = serviceConfig('web', '203.0.113.1', { port: 80 });
    const v6 = serviceConfig('web6', '2001:db8:3::1', { port: 80 });
    const kernel = kernelWith([
      { key: { family: 4, protocol: 'tcp', address: '203.0.113.1', port: 80 }, dests: [{ address: '10.0.0.1', weight: 10 }, { address: '10.0.0.2', weight: 0 }] },
      { key: { family: 6, protocol: 'tcp', address: '2001:db8:3::1', port: 80 }, dests: [{ address: '2001:db8:1::11', weight: 1 }] },
      // Someone else's service: never read.
      { key: { family: 4, protocol: 'tcp', address: '203.0.113.9', port: 80 }, dests: [{ address: '10.0.0.9', weight: 10 }] },
    ]);
    const pooled = await readPooledAtStart(kernel, [web, v6]);
    expect(wasPooledAtStart(pooled, 'web', '10.0.0.1')).toBe(true);
    expect(wasPooledAtStart(pooled, 'web', '10.0.0.2')).toBe(false);
    expect(wasPooledAtStart(pooled, 'web', '10.0.0.9')).toBe(false);
    // The same address however it is written.
    expect(wasPooledAtStart(pooled, 'web6', '2001:0db8:0001:0000:0000:0000:0000:0011')).toBe(true);
    expect(wasPooledAtStart(pooled, 'other', '10.0.0.1')).toBe(false);
    expect(kernel.asked).toHaveLength(2);
  });

  it('finds a firewall-mark service by its mark, not by the VIP and port it is checked on', async () => {
    const marked = serviceConfig('marked', '203.0.113.1', { port: 80, fwmark: 3 });
    const kernel = kernelWith([
      { key: { family: 4, protocol: 'tcp', address: '203.0.113.1', port: 80 }, dests: [{ address: '10.0.0.1', weight: 10 }] },
      { key: { family: 4, fwmark: 3 }, dests: [{ address: '10.0.0.3', weight: 10 }] },
    ]);
    const pooled = await readPooledAtStart(kernel, [marked]);
    expect(wasPooledAtStart(pooled, 'marked', '10.0.0.3')).toBe(true);
    expect(wasPooledAtStart(pooled, 'marked', '10.0.0.1')).toBe(false);
  });
});
