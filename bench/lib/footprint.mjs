/**
 * Footprint of one agent process: time from process start to `online`, against
 * the time bare Node takes to run a line of code; then idle RSS and CPU over a
 * window, beside a bare MQTT.js client (the naive bridge, one host) and bare
 * Node, measured over the same window. Plus what each import costs a fresh Node.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { startAgentProcess } from './agent-proc.mjs';
import { Driver, side } from './driver.mjs';
import { BENCH, BIN, REPO, cpuSecondsOf, memOf, startChild } from './proc.mjs';
import { median } from './stats.mjs';

/** ms from spawn to the first stdout line of `node -e` — Node being up, running user code. */
async function nodeUpMs() {
  const t0 = performance.now();
  const p = startChild(process.execPath, ['-e', 'process.stdout.write("up\\n")']);
  await p.waitLine((l) => l === 'up', 10_000, 'bare node');
  const ms = performance.now() - t0;
  await p.exited;
  return ms;
}

/**
 * Spawn → retained `online`, `reps` times for each bin in turn (the package's bundle and the
 * checkout's dist/ alternate, so drift on the machine hits both), beside bare Node's start.
 * Returns the figures of the first bin, and each bin's under `byBin`. With `floorBin` (the naive bridge
 * bundled as the agent is), also its spawn → subscribed: the floor of a bundled MQTT.js process.
 */
export async function startToOnline(broker, dir, reps, nodeArgs = [], bins = { dist: BIN }, floorBin) {
  const driver = await Driver.connect(broker.url);
  const online = Object.fromEntries(Object.keys(bins).map((k) => [k, []]));
  const nodeUp = [];
  const floor = [];
  try {
    for (let k = 0; k < reps; k++) {
      nodeUp.push(await nodeUpMs());
      if (floorBin) {
        const c = startChild(process.execPath, [
          floorBin,
          '--url',
          broker.url,
          '--host-prefix',
          `fp-floor-${k}`,
        ]);
        await c.waitLine((l) => l === 'ready', 20_000, 'the bundled naive bridge');
        floor.push(performance.now() - c.startedAt);
        c.proc.kill('SIGTERM');
        await c.exited;
      }
      for (const [name, bin] of Object.entries(bins)) {
        const host = `fp-start-${name}-${k}`;
        const s = side('agent', 'homelab', host);
        const seen = driver.waitFor(s.statusTopic(), (t) => t === 'online', 20_000);
        await driver.subscribe(s.statusTopic());
        const agent = startAgentProcess({ url: broker.url, dir, host, nodeArgs, bin });
        const at = await seen;
        online[name].push(at - agent.startedAt);
        await agent.stop();
      }
    }
  } finally {
    await driver.end().catch(() => undefined);
  }
  const figures = (all) => ({
    onlineMs: median(all),
    afterNodeUpMs: median(all) - median(nodeUp),
    allOnline: all,
  });
  const byBin = Object.fromEntries(Object.entries(online).map(([k, all]) => [k, figures(all)]));
  return {
    ...Object.values(byBin)[0],
    nodeUpMs: median(nodeUp),
    allNodeUp: nodeUp,
    byBin,
    ...(floor.length > 0 && { floor: figures(floor) }),
  };
}

/**
 * The Node flags the systemd unit runs the agent with (its NODE_OPTIONS; docker/Dockerfile sets the
 * same), read from packaging/homelab-cmd.service so that the bench measures what ships.
 */
export const SHIPPED_FLAGS = (() => {
  const unit = readFileSync(path.join(REPO, 'packaging', 'homelab-cmd.service'), 'utf8');
  const m = /^Environment="?NODE_OPTIONS=([^"\n]*)"?$/m.exec(unit);
  // Not a silent "no flags": the rows "as the unit runs it" would then measure something else.
  if (!m)
    throw new Error(
      'packaging/homelab-cmd.service has no Environment=NODE_OPTIONS=… line: update SHIPPED_FLAGS in bench/lib/footprint.mjs to where the unit sets its Node flags',
    );
  return m[1].trim().split(/\s+/);
})();

export const V8_VARIANTS = [
  ['shipped', SHIPPED_FLAGS],
  ['semi1', ['--max-semi-space-size=1']],
  ['lite', ['--lite-mode']],
];

/**
 * Idle RSS and CPU over one window: the agent from `bin` (the package's bundle), the same with V8
 * flags, the same agent from the checkout's dist/ (when `distBin` differs), a bare MQTT.js client
 * and bare Node, all at once.
 */
export async function idle(
  broker,
  dir,
  { windowMs, settleMs = 2000, heartbeat, nodeArgs = [], bin = BIN, distBin = BIN, naiveBundled },
) {
  const driver = await Driver.connect(broker.url);
  const s = side('agent', 'homelab', 'fp-idle');
  const seen = driver.waitFor(s.statusTopic(), (t) => t === 'online', 20_000);
  await driver.subscribe(s.statusTopic());
  const agent = startAgentProcess({ url: broker.url, dir, host: 'fp-idle', heartbeat, nodeArgs, bin });
  // The same agent with V8 flags that trade peak speed for memory (the issue asks to consider them).
  const variants = [
    ...V8_VARIANTS.map(([key, flags]) => [key, flags, bin]),
    ...(distBin !== bin ? [['dist', [], distBin]] : []),
  ];
  const flagged = Object.fromEntries(
    variants.map(([key, flags, variantBin]) => {
      const vs = side('agent', 'homelab', `fp-idle-${key}`);
      return [
        key,
        {
          s: vs,
          seen: driver.waitFor(vs.statusTopic(), (t) => t === 'online', 20_000),
          proc: startAgentProcess({
            url: broker.url,
            dir,
            host: `fp-idle-${key}`,
            heartbeat,
            nodeArgs: [...nodeArgs, ...flags],
            bin: variantBin,
          }),
        },
      ];
    }),
  );
  for (const f of Object.values(flagged)) await driver.subscribe(f.s.statusTopic());
  const naive = startChild(process.execPath, [
    path.join(BENCH, 'naive-bridge.mjs'),
    '--url',
    broker.url,
    '--host-prefix',
    'fp-naive',
  ]);
  // The same client bundled as the agent is: the floor for a bundled process holding one MQTT.js client.
  const naiveB =
    naiveBundled &&
    startChild(process.execPath, [naiveBundled, '--url', broker.url, '--host-prefix', 'fp-naive-b']);
  const bare = startChild(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)']);
  try {
    await Promise.all([
      seen,
      ...Object.values(flagged).map((f) => f.seen),
      naive.waitLine((l) => l === 'ready', 20_000, 'the naive bridge'),
      ...(naiveB ? [naiveB.waitLine((l) => l === 'ready', 20_000, 'the bundled naive bridge')] : []),
    ]);
    const procs = {
      agent,
      ...Object.fromEntries(Object.entries(flagged).map(([k, f]) => [k, f.proc])),
      naive,
      ...(naiveB && { naiveBundled: naiveB }),
      bare,
    };
    // Past start-up work before the window opens: JIT, the first heartbeat, and V8's memory reducer,
    // which runs one full GC of the start-up garbage about 8 s after start (strace of an idle agent:
    // 1,700 syscalls in the 2 s around it, 5 in the 18 s after). Its CPU is reported on its own
    // (startTailPct), not counted as idle.
    const cpuOnline = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, cpuSecondsOf(p.pid)]));
    const tOnline = performance.now();
    await sleep(settleMs);
    const cpu0 = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, cpuSecondsOf(p.pid)]));
    const settleSeconds = (performance.now() - tOnline) / 1000;
    const t0 = performance.now();
    const rssSamples = Object.fromEntries(Object.keys(procs).map((k) => [k, []]));
    while (performance.now() - t0 < windowMs) {
      await sleep(Math.min(1000, windowMs - (performance.now() - t0)));
      for (const [k, p] of Object.entries(procs)) rssSamples[k].push(memOf(p.pid).rssMb);
    }
    const seconds = (performance.now() - t0) / 1000;
    const out = {};
    for (const [k, p] of Object.entries(procs)) {
      const m = memOf(p.pid);
      out[k] = {
        rssMb: m.rssMb,
        rssMaxMb: Math.max(...rssSamples[k]),
        peakMb: m.peakMb,
        cpuPct: ((cpuSecondsOf(p.pid) - cpu0[k]) / seconds) * 100,
        startTailPct: ((cpu0[k] - cpuOnline[k]) / settleSeconds) * 100,
      };
    }
    return { windowSeconds: seconds, settleSeconds, heartbeat, ...out };
  } finally {
    await driver.end().catch(() => undefined);
    await Promise.all([
      agent.stop(),
      ...Object.values(flagged).map((f) => f.proc.stop()),
      naive.stop(),
      ...(naiveB ? [naiveB.stop()] : []),
      bare.stop(),
    ]);
  }
}

/** What importing a module costs a fresh Node: ms and RSS after the import (bare Node first). */
export async function importCosts(runs = 3, packageRoot = undefined) {
  const dist = (...files) => files.map((f) => path.join(REPO, 'dist', f));
  // Each row imports its specifiers in order into a fresh node; rows whose files this build lacks are left out.
  const specs = [
    ['(bare node)', []],
    [
      'dist/cli/main.js + dist/cli/agent.js (what `homelab-cmd agent` loads)',
      dist('cli/main.js', 'cli/agent.js'),
    ],
    ['dist/cli/main.js + dist/cli/run.js (what `homelab-cmd up` loads)', dist('cli/main.js', 'cli/run.js')],
    ['dist/agent/agent.js (the Agent class alone)', dist('agent/agent.js')],
    ['dist/broker/broker.js (aedes)', dist('broker/broker.js')],
    ['mqtt', ['mqtt']],
    ['execa', ['execa']],
    ['pino', ['pino']],
    ['zod', ['zod']],
    ['yaml', ['yaml']],
  ].filter(([, files]) =>
    files.every((f) => (path.isAbsolute(f) ? existsSync(f) : existsSync(path.join(REPO, 'node_modules', f)))),
  );
  // The installed package: its chunks have hashed names, so the verb loads them as it does in production
  // (`agent --help` loads the agent verb and the Agent, then prints its usage).
  if (packageRoot) {
    const main = path.join(packageRoot, 'bundle', 'main.js');
    specs.splice(
      2,
      0,
      ['bundle/main.js + the agent verb (what the installed `homelab-cmd agent` loads)', [main], ['agent']],
      ['bundle/main.js + the up verb (what the installed `homelab-cmd up` loads)', [main], ['up']],
    );
  }
  const rows = [];
  for (const [name, files, verb] of specs) {
    const imports = files
      .map((f) => `await import(${JSON.stringify(path.isAbsolute(f) ? pathToFileURL(f).href : f)});`)
      .join(' ')
      .replace(/^await import/, verb ? 'const m = await import' : 'await import');
    const help = verb ? ` await m.main([${JSON.stringify(verb[0])}, '--help']);` : '';
    const code = `const t = performance.now(); ${imports}${help} const ms = performance.now() - t; process.stdout.write(JSON.stringify({ ms, rss: process.memoryUsage().rss }) + "\\n");`;
    const samples = [];
    for (let i = 0; i < runs; i++) {
      const out = await new Promise((resolve, reject) => {
        const p = spawn(process.execPath, ['--input-type=module', '-e', code], {
          cwd: REPO,
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let text = '';
        p.stdout.on('data', (c) => (text += c));
        p.once('error', reject);
        p.once('exit', () => resolve(text));
      });
      // The last line: a verb's --help prints its usage first.
      samples.push(JSON.parse(out.trim().split('\n').at(-1)));
    }
    rows.push({
      module: name,
      ms: median(samples.map((r) => r.ms)),
      rssMb: median(samples.map((r) => r.rss)) / 1024 / 1024,
    });
  }
  return rows;
}
