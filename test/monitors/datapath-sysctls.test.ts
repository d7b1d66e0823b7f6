// What data-path checks need of the director's sysctls, read from a /proc-like tree.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acceptLocalInterfaces, connectionRateWarning, connectionsPerSecondToOneAddress } from '../../src/monitors/datapath-sysctls.js';
import { testDir } from '../support/temp-dir.js';

describe('data-path sysctls', () => {
  // Each tree is removed when its test ends (a test may make several).
  const tree = (files: Record<string, string>): string => {
    const root = testDir('pybal-sysctl-');
    for (const [path, value] of Object.entries(files)) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), `${value}\n`);
    }
    return root;
  };

  it('names the interfaces that accept replies from their own addresses (all counts, default does not)', () => {
    const conf = tree({ 'all/accept_local': '0', 'default/accept_local': '1', 'eth0/accept_local': '1', 'lo/accept_local': '0' });
    expect(acceptLocalInterfaces(conf)?.sort()).toEqual(['eth0']);
    expect(acceptLocalInterfaces(join(conf, 'missing'))).toBeUndefined();
  });

  it('works out the connections a second to one address the local ports allow, unbounded with tcp_tw_reuse = 1', () => {
    expect(connectionsPerSecondToOneAddress(tree({ tcp_tw_reuse: '2', ip_local_port_range: '32768\t60999' }))).toBeCloseTo(470.5, 1);
    expect(connectionsPerSecondToOneAddress(tree({ tcp_tw_reuse: '1', ip_local_port_range: '32768 60999' }))).toBe(Number.POSITIVE_INFINITY);
  });

  it('warns above four fifths of it, naming the service, the figures and the fix', () => {
    expect(connectionRateWarning('web', 300, 470)).toBeUndefined();
    expect(connectionRateWarning('web', 1000, Number.POSITIVE_INFINITY)).toBeUndefined();
    expect(connectionRateWarning('web', 1000, undefined)).toBeUndefined();
    expect(connectionRateWarning('web', 400, 470)).toMatch(/^\[web\] its data-path checks open about 400 connections a second .* about 470 a second .*tcp_tw_reuse = 1/);
  });
});
