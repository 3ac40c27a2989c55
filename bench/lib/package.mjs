/**
 * The package as npm publishes it, installed as a user installs it: scripts/bundle.mjs (what
 * `npm pack` runs as prepack), `npm pack`, then `npm install -g --prefix <tmp>` of the tarball.
 * The bench runs its agent from there (the bundle), and reports what the install weighs.
 */
import { execFile } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { promisify } from 'node:util';
import { REPO } from './proc.mjs';

const run = promisify(execFile);

function bytesUnder(p) {
  const st = statSync(p);
  if (!st.isDirectory()) return st.size;
  return readdirSync(p).reduce((n, e) => n + bytesUnder(path.join(p, e)), 0);
}

/** Every package under a node_modules directory, nested ones included (scoped ones by their @scope/name). */
function packagesUnder(nodeModules) {
  let n = 0;
  let entries;
  try {
    entries = readdirSync(nodeModules, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    const dirs = e.name.startsWith('@')
      ? readdirSync(path.join(nodeModules, e.name)).map((s) => path.join(nodeModules, e.name, s))
      : [path.join(nodeModules, e.name)];
    for (const d of dirs) n += 1 + packagesUnder(path.join(d, 'node_modules'));
  }
  return n;
}

/**
 * The naive bridge bundled as the agent is (esbuild, minified, one file): the floor for the idle
 * RSS of a process that holds one MQTT.js client, measured beside the bundled agent.
 */
export async function bundleNaiveBridge(dir) {
  const { build } = await import('esbuild');
  const outfile = path.join(dir, 'naive-bridge.bundled.mjs');
  await build({
    entryPoints: [path.join(REPO, 'bench', 'naive-bridge.mjs')],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    minify: true,
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  return outfile;
}

/**
 * Packs and installs into `dir`. Returns the installed bin (a JS file, for `node [flags] bin`), the
 * package count and bytes of the install, and the tarball's bytes.
 */
export async function installPackage(dir) {
  await run(process.execPath, ['scripts/bundle.mjs'], { cwd: REPO });
  // --ignore-scripts: the bundle is built above; prepare would only rebuild dist/.
  const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: REPO,
  });
  const [{ filename }] = JSON.parse(packed.stdout);
  const tarball = path.join(dir, filename);
  const prefix = path.join(dir, 'prefix');
  // --offline: the package has no dependencies to download (test/integration/packed.test.ts checks it).
  await run('npm', ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', tarball], {
    cwd: dir,
  });
  const root = path.join(prefix, 'lib', 'node_modules');
  return {
    naiveBundled: await bundleNaiveBridge(dir),
    bin: path.join(root, 'homelab-cmd', 'bin', 'homelab-cmd.js'),
    root: path.join(root, 'homelab-cmd'),
    packages: packagesUnder(root),
    installedMb: bytesUnder(root) / 1024 / 1024,
    tarballMb: statSync(tarball).size / 1024 / 1024,
  };
}
