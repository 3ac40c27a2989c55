import { defineConfig } from 'vitest/config';

// `npm run test:fuzz`: the hostile-message suite (test/fuzz/), its own lane — `npm test` does not run it.
export default defineConfig({
  test: {
    // The agent under test runs the built dist/: rebuilt when a source changed (test/global-build.ts).
    globalSetup: ['test/global-build.ts'],
    include: ['test/fuzz/**/*.test.ts'],
    setupFiles: ['test/helpers/own-state.ts'],
    testTimeout: 300_000,
    hookTimeout: 60_000,
    maxWorkers: 1,
  },
});
