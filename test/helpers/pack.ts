/**
 * The package `npm pack` makes of this checkout, made once per state of its inputs and shared by the
 * test files that install it (packed.test.ts, the getting-started walkthrough). Bundling and packing
 * take seconds of CPU each time and write bundle/ in the checkout: two files doing it at once would
 * write over each other, so one makes it under a lock and the others wait for it and reuse it.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './fixtures.js';
import { until } from './wait.js';

const run = promisify(execFile);
const CACHE = path.join(REPO, 'node_modules', '.cache', 'homelab-cmd-pack');
// What the tarball is made of: the package's `files`, what bundle/ is built from, and the manifest.
const INPUTS = [
  'bin',
  'config',
  'docs',
  'homeassistant',
  'packaging',
  'examples',
  'docker',
  'src',
  'scripts',
  'patches',
  'package.json',
  'package-lock.json',
  'README.md',
  'LICENSE',
];

function stamp(p: string, hash: ReturnType<typeof createHash>): void {
  const st = statSync(p, { throwIfNoEntry: false });
  if (!st) return;
  if (st.isDirectory()) for (const e of readdirSync(p).sort()) stamp(path.join(p, e), hash);
  else hash.update(`${path.relative(REPO, p)}\0${st.size}\0${st.mtimeMs}\n`);
}

/** The path of the tarball `npm pack` makes of this checkout as it is now. */
export async function packedTarball(): Promise<string> {
  const hash = createHash('sha1');
  for (const i of INPUTS) stamp(path.join(REPO, i), hash);
  const dir = path.join(CACHE, hash.digest('hex').slice(0, 16));
  const done = path.join(dir, 'done');
  if (existsSync(done)) return tarballIn(dir);
  mkdirSync(CACHE, { recursive: true });
  const lock = path.join(CACHE, 'lock');
  let mine = false;
  // mkdir is atomic: the file that makes it packs; the others wait for `done` (or a lock left by a
  // killed run: older than the longest pack takes on a busy machine).
  await until(
    () => {
      try {
        mkdirSync(lock);
        return (mine = true);
      } catch {
        const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
        if (age > 300_000) rmSync(lock, { recursive: true, force: true });
        return existsSync(done);
      }
    },
    600_000,
    'the packed tarball (another test file is making it)',
  );
  try {
    if (!existsSync(done)) {
      const tmp = `${dir}.tmp`;
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(tmp, { recursive: true });
      // What `npm pack` runs as prepack, run first so that pack itself skips `prepare`: that would rebuild
      // dist/ under the feet of the integration tests running it.
      await run(process.execPath, ['scripts/bundle.mjs'], { cwd: REPO });
      await run('npm', ['pack', '--ignore-scripts', '--pack-destination', tmp], { cwd: REPO });
      mkdirSync(path.join(tmp, 'done'));
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
    }
  } finally {
    if (mine) rmSync(lock, { recursive: true, force: true });
  }
  return tarballIn(dir);
}

function tarballIn(dir: string): string {
  const name = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (!name) throw new Error(`${dir} holds no .tgz: remove it and run the tests again`);
  return path.join(dir, name);
}
