import { defineConfig } from 'vitest/config';
import { LabSequencer } from './test/lab/sequencer.js';

// Two projects: `unit` runs on the host; `lab` (test/**/*.lab.test.ts) needs a
// kernel with IPVS and runs inside one User-Mode Linux guest that test/run.sh
// (or test/lab/run.sh) boots for the whole lab suite; see test/lab/README.md.
const inLabGuest = process.env.PYBAL_LAB_GUEST === '1';

export default defineConfig({
  test: {
    environment: 'node',
    pool: 'forks',
    // A test that asserts nothing is a defect.
    expect: { requireAssertions: true },
    // The lab guests share the lab files by their last durations (test/lab/sequencer.ts).
    ...(inLabGuest ? { sequence: { sequencer: LabSequencer } } : {}),
    projects: [
      inLabGuest
        ? {
            extends: true,
            test: {
              name: 'lab',
              include: ['test/**/*.lab.test.ts'],
              // The guest has one CPU: labs side by side only slow each other down.
              fileParallelism: false,
              // One worker for every file: a fresh one costs seconds in UML, and
              // lab code keeps no module-level state to leak between files.
              isolate: false,
              testTimeout: 60_000,
              hookTimeout: 120_000,
            },
          }
        : {
            extends: true,
            test: {
              name: 'unit',
              include: ['test/**/*.test.ts'],
              exclude: ['test/**/*.lab.test.ts', 'node_modules/**', 'dist/**'],
              testTimeout: 20_000,
              hookTimeout: 60_000,
            },
          },
    ],
  },
});
