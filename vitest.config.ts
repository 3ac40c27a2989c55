import { configDefaults, defineConfig } from 'vitest/config';

// The lanes (CONTRIBUTING.md § Tests): `npm test` runs all three projects in one run; `npm run test:unit`,
// `test:integration`, `test:docs` run one. The hostile-message fuzz suite and the chaos run have lanes of
// their own: npm run test:fuzz (vitest.fuzz.config.ts), npm run test:chaos (vitest.chaos.config.ts).
const DOCS = ['test/integration/docs-*.test.ts', 'test/unit/docs*.test.ts'];
// Deadlines, not speed limits: a test that passes in 2 s on a quiet machine may take 20 s on a busy one.
const limits = { testTimeout: 120_000, hookTimeout: 120_000 };

export default defineConfig({
  test: {
    // Integration tests run the built dist/ and the tests' bundle: both rebuilt here when a source changed.
    globalSetup: ['test/global-build.ts'],
    // Three files at once on the 2-core machine: much of an integration test is waiting (a stagger
    // interval, a broker's keepalive, a reboot), and a third file fills that time. Measured on the same
    // machine, same tree: 412 s with 2 workers, 325 s with 3 (CPU time the same, 592 and 578 s).
    // Order (vitest's sequencer): projects by name, then the files that took longest in the last run
    // (node_modules/.vite/vitest) first. So the docs walkthroughs (minutes each) start at once, and the
    // short unit files fill the tail instead of one long file running alone at the end.
    maxWorkers: 3,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...DOCS],
          // Pure code: no mocks, no env or cwd changes, no global mutable state in src/. The files share
          // their workers instead of a fresh process each. Measured: the unit lane's CPU time halves
          // (68 s → 33 s user+sys; most of it was re-importing the runtime and modules per file).
          isolate: false,
          ...limits,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/faults/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...DOCS],
          // A default state dir of its own per file: spawned brokers never share one (test/helpers/own-state.ts).
          setupFiles: ['test/helpers/own-state.ts'],
          // Files share their workers, as the unit lane's do: each file still gets its own broker, state
          // dirs and XDG dirs (the setup file runs per file); src/ keeps no mutable module state but a cache of
          // compiled patterns, and the umask an in-process agent sets (077) is the one every agent runs with. Measured on
          // the 2-core machine: the lane's CPU 348 → 314 s, module import 60 → 12 s of worker time.
          isolate: false,
          ...limits,
        },
      },
      // The walkthroughs run npm, sudo, visudo and systemd-analyze in a throwaway root: minutes on a busy machine.
      { test: { name: 'docs', include: DOCS, testTimeout: 360_000, hookTimeout: 360_000 } },
    ],
  },
});
