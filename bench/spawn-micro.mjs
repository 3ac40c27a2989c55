/**
 * Is execa the ceiling on the hot path? Spawns /bin/true the way
 * src/exec/spawn.ts does (own process group, stdin ignored, stdout/stderr
 * piped, a clean environment) through:
 *   runner         runCommand from dist/exec/spawn.js, whatever it uses, with its private mkdtemp cwd
 *   execa          execa 9 with the options the spawn layer gave it when it used execa, cwd fixed (no mkdtemp)
 *   child_process  node:child_process spawn with the same options, cwd fixed
 *   cp+tmpdir      child_process plus the runner's mkdtemp/rm of a private cwd
 * Each: sequential latency (exit and both pipes closed), then throughput with
 * 1, 4 and 16 at once, and the parent's CPU per spawn. Variants alternate in rounds.
 * execa is a devDependency kept for this comparison; without it that row is left out.
 *
 *   node bench/spawn-micro.mjs [--n 300] [--tn 600] [--warm 30]     prints one JSON line
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { parseArgs } from 'node:util';
import { runCommand } from '../dist/exec/spawn.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '300' },
    tn: { type: 'string', default: '600' },
    warm: { type: 'string', default: '30' },
  },
});
const N = Number(values.n);
const TN = Number(values.tn);
const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };
const cwd = os.tmpdir();

function closed(stream) {
  return new Promise((resolve) => {
    stream.once('close', resolve);
    stream.once('end', resolve);
  });
}

/** Like the runner: resolve when the child has exited and both pipes are drained. */
async function finish(child) {
  const out = [];
  child.stdout.on('data', (c) => out.push(c));
  child.stderr.on('data', (c) => out.push(c));
  const streams = Promise.all([closed(child.stdout), closed(child.stderr)]);
  await new Promise((resolve, reject) => {
    child.once('exit', resolve);
    child.once('error', reject);
  });
  await streams;
}

// A devDependency: an install without dev packages has no execa, and the bench says so instead of failing.
const execa = await import('execa').then(
  (m) => m.execa,
  () => undefined,
);

const variants = {
  runner: () => runCommand({ argv: ['/bin/true'], env, timeoutMs: 30_000, maxOutput: 10_000 }),
  execa:
    execa &&
    (async () => {
      const child = execa('/bin/true', [], {
        cwd,
        env,
        extendEnv: false,
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
        buffer: false,
        reject: false,
        detached: true,
        cleanup: false,
        encoding: 'buffer',
      });
      child.catch(() => undefined);
      await finish(child);
    }),
  child_process: () =>
    finish(spawn('/bin/true', [], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })),
  'cp+tmpdir': async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'homelab-cmd-'));
    try {
      await finish(
        spawn('/bin/true', [], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true }),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
if (!variants.execa) delete variants.execa;
const names = Object.keys(variants);

async function closedLoop(fn, n, concurrency) {
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        await fn();
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { perSec: n / seconds, cpuMsPerSpawn: (cpu.user + cpu.system) / 1000 / n };
}

// Warm-up: JIT, execa's lazy imports, the page cache for /bin/true.
for (const name of names) for (let i = 0; i < Number(values.warm); i++) await variants[name]();

const latency = Object.fromEntries(names.map((n) => [n, []]));
const ROUND = 50;
for (let done = 0; done < N; done += ROUND) {
  for (const name of names) {
    for (let i = 0; i < Math.min(ROUND, N - done); i++) {
      const t0 = performance.now();
      await variants[name]();
      latency[name].push(performance.now() - t0);
    }
  }
}

const throughput = Object.fromEntries(names.map((n) => [n, {}]));
for (const c of [1, 4, 16]) {
  // Two halves per variant, alternating, so drift on the machine hits every variant alike.
  const acc = Object.fromEntries(names.map((n) => [n, []]));
  for (let half = 0; half < 2; half++)
    for (const name of names) acc[name].push(await closedLoop(variants[name], Math.round(TN / 2), c));
  for (const name of names) {
    const rs = acc[name];
    throughput[name][c] = {
      perSec: rs.reduce((a, r) => a + r.perSec, 0) / rs.length,
      cpuMsPerSpawn: rs.reduce((a, r) => a + r.cpuMsPerSpawn, 0) / rs.length,
    };
  }
}

const pct = (a, p) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
const result = Object.fromEntries(
  names.map((n) => [
    n,
    {
      p50: pct(latency[n], 50),
      p90: pct(latency[n], 90),
      p99: pct(latency[n], 99),
      throughput: throughput[n],
    },
  ]),
);
process.stdout.write(`${JSON.stringify(result)}\n`);
