import { defineConfig } from 'vitest/config';

// `npm run test:chaos`: the seeded chaos run (test/chaos/), its own lane — `npm test` does not run it.
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.test.ts'],
    testTimeout: 900_000,
    hookTimeout: 60_000,
    maxWorkers: 1,
    fileParallelism: false,
  },
});
