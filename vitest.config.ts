import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The hostile-message fuzz suite has its own lane: npm run test:fuzz (vitest.fuzz.config.ts); the chaos
    // run too: npm run test:chaos (vitest.chaos.config.ts).
    exclude: [...configDefaults.exclude, 'test/fuzz/**', 'test/chaos/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests start brokers and child processes: keep the 2-core machine from thrashing.
    maxWorkers: 2,
  },
});
