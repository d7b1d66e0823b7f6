import { defineConfig } from 'vitest/config';

/**
 * Tests that must run inside a network namespace prepared by an outer test
 * (test/monitors/keepalive.test.ts starts them with `ip netns exec`); they are
 * not part of the normal run.
 */
export default defineConfig({
  test: {
    include: ['test/monitors/netns/*.netns.ts'],
    environment: 'node',
    pool: 'forks',
    testTimeout: 60_000,
    expect: { requireAssertions: true },
  },
});
