import { defineConfig } from 'vitest/config';

// `npm run test:chaos`: the seeded chaos run (test/chaos/), its own lane — `npm test` does not run it.
export default defineConfig({
  test: {
    // The agent under test runs the built dist/: rebuilt when a source changed (test/global-build.ts).
    globalSetup: ['test/global-build.ts'],
    include: ['test/chaos/**/*.test.ts'],
    setupFiles: ['test/helpers/own-state.ts'],
    testTimeout: 900_000,
    hookTimeout: 60_000,
    maxWorkers: 1,
    fileParallelism: false,
  },
});
