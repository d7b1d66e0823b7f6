import { defineConfig } from 'vitest/config';

/**
 * The ARP theft test that runs inside the director's namespace prepared by
 * test/monitors/arp-theft-netns.test.ts (started with `ip netns exec`); not
 * part of the normal run, and apart from vitest.netns.config.ts so that each
 * outer test runs only its own inner file.
 */
export default defineConfig({
  test: {
    include: ['test/monitors/netns/arp-theft.in-netns.ts'],
    environment: 'node',
    pool: 'forks',
    testTimeout: 60_000,
    expect: { requireAssertions: true },
  },
});
