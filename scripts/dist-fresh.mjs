/**
 * Exits 0 when dist/ is up to date with what the build reads, 1 when it must be built: `prepare` is
 * `node scripts/dist-fresh.mjs || npm run build`.
 *
 * Why: docs/install.md's `npm ci && npm pack` runs `prepare` twice in a row on the same sources;
 * the second full build rebuilt what the first had just written (with tsc it was a minute on a Pi). A fresh
 * clone has no dist/, so it always builds; any source, directory (a deleted or renamed file),
 * compiler setting or lockfile newer than the oldest output of a source builds again.
 * test/global-build.ts applies the same rule before a test run.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const REPO = path.resolve(import.meta.dirname, '..');
const INPUTS = ['src', 'tsconfig.json', 'scripts/build.mjs', 'package-lock.json'];

/** The newest modification time in a tree (0 when it does not exist). */
function newest(p) {
  const st = statSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  let t = st.mtimeMs;
  if (st.isDirectory()) for (const e of readdirSync(p)) t = Math.max(t, newest(path.join(p, e)));
  return t;
}

/** The oldest output of a source in src/ (0 when one is missing: then dist/ is incomplete). */
function oldestOutput(dir = 'src') {
  let t = Infinity;
  for (const e of readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) t = Math.min(t, oldestOutput(rel));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
      const out = path.join(REPO, 'dist', path.relative('src', rel).replace(/\.ts$/, '.js'));
      t = Math.min(t, statSync(out, { throwIfNoEntry: false })?.mtimeMs ?? 0);
    }
  }
  return t;
}

const inputs = Math.max(...INPUTS.map((i) => newest(path.join(REPO, i))));
const outputs = oldestOutput();
if (outputs > inputs) {
  process.stdout.write('dist/ is up to date with src/: not built again (npm run build forces a build)\n');
  process.exit(0);
}
process.exit(1);
