/**
 * `npm run build`: src/ → dist/, one .js and its source map per .ts, in the layout tsc writes.
 *
 * esbuild strips the types file by file and checks none: `npm run lint` (tsc --noEmit) checks them,
 * and CI runs it. Why not tsc: it took 12 CPU-seconds on the 2-core machine (about a minute on a Pi)
 * in every `npm ci`, whose `prepare` builds dist/; esbuild takes under one. It is the same esbuild,
 * reading the same tsconfig.json, as the bundle that the package ships and the integration tests run
 * (scripts/bundle.mjs), so dist/ and the bundle are compiled alike. test/global-build.ts calls this too.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const REPO = path.resolve(import.meta.dirname, '..');

/** Every .ts under `dir` (relative to the repo), declaration files left out. */
function sources(dir) {
  return readdirSync(path.join(REPO, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return sources(rel);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [rel] : [];
  });
}

export async function buildDist() {
  await build({
    absWorkingDir: REPO,
    entryPoints: sources('src'),
    outdir: 'dist',
    outbase: 'src',
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: true,
    tsconfig: 'tsconfig.json',
    logLevel: 'warning',
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await buildDist();
