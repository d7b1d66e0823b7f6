import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pageFaultCostUs, processFaults } from '../../bench/lib/proc.js';

describe('pageFaultCostUs', () => {
  it('times the first touches of fresh pages, and this process counts them as faults', () => {
    const before = processFaults(process.pid);
    const us = pageFaultCostUs(16);
    const faults = processFaults(process.pid) - before;
    expect(Number.isFinite(us)).toBe(true);
    expect(us).toBeGreaterThan(0);
    // 16 MiB is 4,096 pages, each its own fault; with transparent huge pages always on, 2 MiB at a time.
    expect(faults).toBeGreaterThanOrEqual(hugePagesAlways() ? 8 : 2048);
  });
});

function hugePagesAlways(): boolean {
  try {
    return readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').includes('[always]');
  } catch {
    return false;
  }
}
