#!/usr/bin/env node
// The published entry point runs the compiled sources; `npm ci` builds them via `prepare`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('homelab-cmd: dist/ is missing — run `npm run build` (npm ci runs it for you).\n');
  process.exit(2);
}
const { main: run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
