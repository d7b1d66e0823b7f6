import { defineConfig } from 'vitest/config';

/**
 * Tests that must run inside a network namespace prepared by an outer test
 * (test/monitors/keepalive.test.ts and marked-socket.test.ts each start theirs
 * with `ip netns exec`, naming its file); they are not part of the normal run.
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
