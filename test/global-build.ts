/**
 * Vitest's global setup: builds dist/ when a source changed since the last build.
 *
 * Integration and fault tests run bin/homelab-cmd.js as a real child process, and the bin runs the
 * compiled dist/. Without this, `npx vitest run test/integration/cli.test.ts` after an edit in src/
 * would test the code of the last `npm run build`. Cheap when nothing changed: one walk of src/
 * comparing modification times with a stamp written after the last build this setup ran (or with the
 * outputs of a whole `npm run build`, as npm ci's prepare runs it). When something did, dist/ is
 * built again (scripts/build.mjs: esbuild, under a second; types are checked by `npm run lint`).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const REPO = path.resolve(import.meta.dirname, '..');
// Outside dist/, which ships in the package; node_modules/.cache is where tools keep such files.
const CACHE = path.join(REPO, 'node_modules', '.cache', 'homelab-cmd-build');
const STAMP = path.join(CACHE, 'built');
const ENTRY = path.join(REPO, 'dist', 'cli', 'main.js');
// The tests' copy of the published bundle (scripts/bundle.mjs, unminified): what test/helpers/agent.ts
// starts. A process starts from it in about 60 % of the CPU time dist/'s 150 modules take
// (docs/performance.md § The published package), and the suite starts hundreds.
const TEST_BUNDLE = path.join(CACHE, 'bundle');
const BUNDLED = path.join(CACHE, 'bundled');
// What the build reads: the sources (directories too: a deleted or renamed file changes its
// directory's time) and the compiler settings.
const INPUTS = ['src', 'tsconfig.json', 'scripts/build.mjs', 'package-lock.json'];
// The bundle also changes with its own build script (its plugins rewrite dependencies' code).
const BUNDLE_INPUTS = [...INPUTS, 'scripts/bundle.mjs'];
// Two test runs in one checkout (a lane while a single file runs) must not build over each other.
const LOCK = path.join(
  os.tmpdir(),
  `homelab-cmd-build-${createHash('sha1').update(REPO).digest('hex').slice(0, 12)}`,
);
const LOCK_STALE_MS = 10 * 60_000;

function newestInput(p: string): number {
  const st = statSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  let newest = st.mtimeMs;
  if (st.isDirectory())
    for (const e of readdirSync(p)) newest = Math.max(newest, newestInput(path.join(p, e)));
  return newest;
}

/** The oldest output of a source that exists (0 if one is missing): a whole build rewrites them all. */
function oldestOutput(dir = 'src'): number {
  let oldest = Infinity;
  for (const e of readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) oldest = Math.min(oldest, oldestOutput(rel));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
      const out = path.join(REPO, 'dist', path.relative('src', rel).replace(/\.ts$/, '.js'));
      oldest = Math.min(oldest, statSync(out, { throwIfNoEntry: false })?.mtimeMs ?? 0);
    }
  }
  return oldest;
}

const newestOf = (inputs: string[]) => Math.max(...inputs.map((i) => newestInput(path.join(REPO, i))));

function stale(): boolean {
  if (!existsSync(ENTRY)) return true;
  const newest = newestOf(INPUTS);
  // Built here since the last change, or by a whole `npm run build` (npm ci's prepare) since then.
  const built = statSync(STAMP, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  return newest > built && newest > oldestOutput();
}

function bundleStale(): boolean {
  if (!existsSync(path.join(TEST_BUNDLE, 'run.js'))) return true;
  return newestOf(BUNDLE_INPUTS) > (statSync(BUNDLED, { throwIfNoEntry: false })?.mtimeMs ?? 0);
}

async function locked<T>(fn: () => T | Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_STALE_MS;
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = Date.now() - (statSync(LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      // A run killed mid-build leaves its lock behind: after the longest build, it is taken over.
      if (age > LOCK_STALE_MS || Date.now() > deadline) rmSync(LOCK, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

export default async function setup(): Promise<void> {
  await buildDist();
  await bundleForTests();
}

async function buildDist(): Promise<void> {
  if (!stale()) return;
  await locked(async () => {
    if (!stale()) return; // the other run built it meanwhile
    // Stamped with the time the build started: a file saved during the build is newer, so rebuilt next run.
    const started = new Date();
    const { buildDist: build } = (await import(
      pathToFileURL(path.join(REPO, 'scripts', 'build.mjs')).href
    )) as { buildDist: () => Promise<void> };
    try {
      await build();
    } catch (err) {
      throw new Error(
        `the build of dist/ failed (npm run build); fix it and run again: ${(err as Error).message}`,
      );
    }
    mkdirSync(CACHE, { recursive: true });
    writeFileSync(STAMP, 'dist/ built by test/global-build.ts; remove this file to force a rebuild\n');
    utimesSync(STAMP, started, started);
  });
}

async function bundleForTests(): Promise<void> {
  if (!bundleStale()) return;
  await locked(async () => {
    if (!bundleStale()) return;
    const started = new Date();
    const { bundle } = (await import(pathToFileURL(path.join(REPO, 'scripts', 'bundle.mjs')).href)) as {
      bundle: (o: { out: string; minify: boolean }) => Promise<unknown>;
    };
    await bundle({ out: TEST_BUNDLE, minify: false });
    // What bin/homelab-cmd.js does, with argv[1] kept as the bin, so the CLI names itself as it would
    // from a checkout (src/cli/command-form.ts).
    writeFileSync(
      path.join(TEST_BUNDLE, 'run.js'),
      `process.argv[1] = ${JSON.stringify(path.join(REPO, 'bin', 'homelab-cmd.js'))};\nconst { main } = await import('./main.js');\nprocess.exitCode = await main(process.argv.slice(2));\n`,
    );
    writeFileSync(BUNDLED, 'bundle built by test/global-build.ts; remove this file to force a rebuild\n');
    utimesSync(BUNDLED, started, started);
  });
}
