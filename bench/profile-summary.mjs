#!/usr/bin/env node
/**
 * Summarises `node --cpu-prof` profiles (e.g. from `node bench/bench.mjs --profile`):
 * self time by package or source area, and the top functions by self time.
 *
 *   node bench/profile-summary.mjs FILE.cpuprofile... [--top 25]
 */
import process from 'node:process';
import { parseArgs } from 'node:util';
import { summarize } from './lib/profile.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' } },
});
if (positionals.length === 0) {
  process.stderr.write('usage: node bench/profile-summary.mjs FILE.cpuprofile... [--top N]\n');
  process.exit(2);
}
for (const file of positionals) process.stdout.write(`${summarize(file, Number(values.top))}\n\n`);
