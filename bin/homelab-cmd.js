#!/usr/bin/env node
// The published package runs bundle/ (scripts/bundle.mjs, built by `npm pack`); a git checkout runs
// the compiled sources in dist/ (`npm ci` builds them via `prepare`), which the tests run too.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = new URL('../dist/cli/main.js', import.meta.url);
const bundle = new URL('../bundle/main.js', import.meta.url);
const main = [dist, bundle].find((u) => existsSync(fileURLToPath(u)));
if (!main) {
  process.stderr.write('homelab-cmd: dist/ is missing — run `npm run build` (npm ci runs it for you).\n');
  process.exit(2);
}
const { main: run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
