import { defineConfig } from 'vitest/config';

// `npm run test:fuzz`: the hostile-message suite and the 10,000-request flood (test/fuzz/), their own lane —
// `npm test` does not run them; .ci/run runs this right after it.
export default defineConfig({
  test: {
    // The agents under test run the built code: rebuilt when a source changed (test/global-build.ts).
    globalSetup: ['test/global-build.ts'],
    include: ['test/fuzz/**/*.test.ts'],
    setupFiles: ['test/helpers/own-state.ts'],
    testTimeout: 300_000,
    hookTimeout: 60_000,
    maxWorkers: 1,
  },
});
