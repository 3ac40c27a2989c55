/**
 * How the synchronous part of spawn() (fork + exec in libuv, on the main
 * thread) grows with the parent's resident memory: the same /bin/true spawn
 * from a process carrying extra MB of touched memory. The agent's RSS is paid
 * on every request it runs.
 *
 *   node bench/fork-cost.mjs --mb 50 [--n 200]      prints one JSON line
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { mb: { type: 'string', default: '0' }, n: { type: 'string', default: '200' } },
});
const ballast = [];
for (let i = 0; i < Number(values.mb); i++) ballast.push(Buffer.alloc(1 << 20, 1));
const env = { PATH: '/usr/bin:/bin' };
const one = async () => {
  const t0 = performance.now();
  const child = spawn('/bin/true', [], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const call = performance.now() - t0;
  await new Promise((resolve) => child.once('close', resolve));
  return call;
};
for (let i = 0; i < 20; i++) await one();
const calls = [];
for (let i = 0; i < Number(values.n); i++) calls.push(await one());
calls.sort((a, b) => a - b);
process.stdout.write(
  `${JSON.stringify({ extraMb: Number(values.mb), rssMb: process.memoryUsage().rss / 2 ** 20, spawnCallP50: calls[Math.floor(calls.length / 2)], spawnCallP90: calls[Math.floor(calls.length * 0.9)], ballast: ballast.length })}\n`,
);
