#!/usr/bin/env node
/**
 * `npm run bench` — button-to-result latency, throughput, fleet fan-out,
 * footprint and per-request overhead of the agent, each side by side in the
 * same run with a naive bridge (bench/naive-bridge.mjs). Prints tables and
 * writes JSON (and the text) to bench/results/. The agent under test is the one
 * npm publishes: `npm pack` of this checkout installed with `npm install -g` into a
 * temp prefix (bundle/, bench/lib/package.mjs); the footprint also runs the compiled
 * dist/ beside it (the npm scripts build it first). Ends with every target of
 * issue 22 (and issue 8's that remain) as a row: value, limit, met or missed.
 *
 *   npm run bench                 build, then the full run (≈ 4 min on 2 cores; everything but the cluster)
 *   npm run bench:cluster         build, then 1,000 agents across two brokers clustered over Redis (≈ 1 min)
 *   npm run bench:quick           build, then ≈ 45 s: small counts, a 5 s idle window (CI runs it)
 *   node bench/bench.mjs --only e2e,spawn      some sections: e2e, fanout, cluster, footprint, overhead, spawn
 *   node bench/bench.mjs --only cluster        1,000 agents across two brokers clustered over Redis: fan-out, a broker killed
 *   node bench/bench.mjs --profile             agent processes run with --cpu-prof (bench/results/profiles/)
 *   node bench/bench.mjs --strict              exit 1 when a target is missed, not only on errors
 *   node bench/bench.mjs --agent-flags=--lite-mode   node flags for the agent under test in e2e (default: the unit's NODE_OPTIONS; empty for none)
 *   node bench/bench.mjs --agent-from dist     e2e runs the checkout's dist/ instead of the installed package
 *   node bench/bench.mjs --agent-from PATH     e2e and the footprint run another agent (PATH: the bin/homelab-cmd.js
 *                                              of an older checkout, built): a before/after on one machine
 *   node bench/bench.mjs --wait-quiet          first wait (up to 10 min) until the machine is idle
 *   node bench/bench.mjs --keep                keep the temp dirs (agent logs, state, broker configs)
 *   node bench/bench.mjs --only fanout --fanout-count 1000   one fan-out size, embedded broker only
 *                                              (raw fan-out and `send --group` to that many hosts)
 *
 * Traffic goes to 127.0.0.1 only, to brokers this script starts on free ports.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { e2eOnBroker } from './lib/e2e.mjs';
import { clusterFleet, REDIS_SERVER } from './lib/cluster.mjs';
import { fanout, maxFleet, openFilesLimit } from './lib/fanout.mjs';
import { SHIPPED_FLAGS, idle, importCosts, startToOnline } from './lib/footprint.mjs';
import { installPackage } from './lib/package.mjs';
import {
  BENCH,
  BIN,
  MOSQUITTO,
  REPO,
  cleanupAll,
  mosquittoVersion,
  startChild,
  startEmbeddedBroker,
  startMosquitto,
  tempDir,
} from './lib/proc.mjs';
import { summarize } from './lib/profile.mjs';
import { render, targets } from './lib/report.mjs';

const { values } = parseArgs({
  options: {
    help: { type: 'boolean', short: 'h', default: false },
    keep: { type: 'boolean', default: false },
    'wait-quiet': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    profile: { type: 'boolean', default: false },
    strict: { type: 'boolean', default: false },
    'agent-flags': { type: 'string' },
    'agent-from': { type: 'string', default: 'package' },
    'fanout-count': { type: 'string' },
  },
});
// Node flags for the agent processes of e2e: by default the unit's and the image's (SHIPPED_FLAGS), so
// the targets are measured on the agent as users run it; --agent-flags= (empty) runs it without.
const AGENT_FLAGS =
  values['agent-flags'] === undefined ? SHIPPED_FLAGS : values['agent-flags'].split(/\s+/).filter(Boolean);
if (values.help) {
  // The usage is this file's header comment.
  const head = readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0];
  process.stdout.write(`${head.replace(/^#!.*\n\/\*\*\n/, '').replace(/^ \* ?/gm, '')}\n`);
  process.exit(0);
}
const QUICK = values.quick;
const ALL_SECTIONS = ['overhead', 'spawn', 'e2e', 'fanout', 'cluster', 'footprint'];
// The 1,000-agent cluster takes about a minute on its own: a mode of its own (npm run bench:cluster), so the
// full run stays under issue 8's five minutes. --quick runs a small cluster too, so CI keeps it working.
const DEFAULT_SECTIONS = values.quick ? ALL_SECTIONS : ALL_SECTIONS.filter((s) => s !== 'cluster');
const SECTIONS = new Set((values.only ?? DEFAULT_SECTIONS.join(',')).split(','));
for (const s of SECTIONS) {
  if (!ALL_SECTIONS.includes(s)) {
    process.stderr.write(
      `bench: unknown section "${s}" in --only — use some of ${ALL_SECTIONS.join(', ')}\n`,
    );
    process.exit(2);
  }
}
const PROFILE_DIR = path.join(BENCH, 'results', 'profiles');
/** node flags for a process in `role` under --profile: its profiles land in bench/results/profiles/<role>/. */
const prof = (role) =>
  values.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.join(PROFILE_DIR, role)}`] : [];

// Counts per mode. Full: enough samples for a p99 and under five minutes on 2 cores; quick: seconds.
const M = QUICK
  ? {
      fast: [
        ['noop c1', 'noop', 1, 30],
        ['noop c4', 'noop', 4, 48],
        ['noop c16', 'noop', 16, 64],
        ['sleep c1', 'sleep', 1, 4],
        ['sleep c16', 'sleep', 16, 32],
      ],
      stock: [
        ['noop c1', 'noop', 1, 10],
        ['noop c16', 'noop', 16, 32],
        ['sleep c1', 'sleep', 1, 2],
        ['sleep c16', 'sleep', 16, 32],
      ],
      warmup: 10,
      pauseMs: 50,
      contrast: 0,
      fanout: [50],
      fanoutMosquitto: [],
      fanoutRounds: 1,
      cluster: { count: 40, rounds: 1, killSecs: 2 },
      startReps: 1,
      idleMs: 5000,
      overheadN: 300,
      spawn: ['--n', '30', '--tn', '64', '--warm', '5'],
      settleMs: 1000,
    }
  : {
      fast: [
        ['noop c1', 'noop', 1, 300],
        ['noop c4', 'noop', 4, 800],
        ['noop c16', 'noop', 16, 1280],
        ['sleep c1', 'sleep', 1, 30],
        ['sleep c16', 'sleep', 16, 320],
      ],
      stock: [
        ['noop c1', 'noop', 1, 80],
        ['noop c16', 'noop', 16, 160],
        ['sleep c1', 'sleep', 1, 24],
        ['sleep c16', 'sleep', 16, 96],
      ],
      // Longer than Linux's delayed-ACK minimum (40 ms): each press finds every connection idle, as HA's do.
      pauseMs: 60,
      contrast: 60,
      fanout: [500, 1000],
      fanoutMosquitto: [1000],
      fanoutRounds: 2,
      cluster: { count: 1000, rounds: 2, killSecs: 3 },
      startReps: 5,
      idleMs: 60_000,
      overheadN: 3000,
      spawn: ['--n', '300', '--tn', '800'],
      warmup: 30,
      // The idle window opens 30 s after the agent is online: past V8's start-up GC (lib/footprint.mjs).
      settleMs: 30_000,
    };

// One fan-out size on the embedded broker alone: the raw fan-out and `send --group` side by side (docs/fleet.md § Scale).
if (values['fanout-count'] !== undefined) {
  M.fanout = [Number(values['fanout-count'])];
  M.fanoutMosquitto = [];
}

const T0 = performance.now();
const log = (line) =>
  process.stderr.write(`[${((performance.now() - T0) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);
const loud = (line) => process.stderr.write(`\n*** ${line} ***\n\n`);

/** Share of all CPUs busy over `ms`, from /proc/stat — anything else running skews every figure. */
async function busyShare(ms = 2000) {
  const read = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idleTicks = (f[3] ?? 0) + (f[4] ?? 0);
    return { idle: idleTicks, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await sleep(ms);
  const b = read();
  return 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total);
}

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

async function main() {
  const t0 = performance.now();
  if (!existsSync(path.join(REPO, 'dist', 'agent', 'agent.js')))
    throw new Error('dist/ is missing — run `npm run build` first');
  if (values.profile) {
    rmSync(PROFILE_DIR, { recursive: true, force: true });
    mkdirSync(PROFILE_DIR, { recursive: true });
  }
  let busy = await busyShare(QUICK ? 1000 : 2000);
  if (values['wait-quiet']) {
    const until = Date.now() + 600_000;
    while (busy > 0.1 && Date.now() < until) {
      log(`waiting for a quiet machine: ${(busy * 100).toFixed(0)} % of the CPUs busy …`);
      busy = await busyShare(5000);
    }
  }
  if (busy > 0.1)
    loud(
      `THE MACHINE IS BUSY: ${(busy * 100).toFixed(0)} % of the CPUs were in use before the bench started — the figures will be skewed (--wait-quiet waits)`,
    );
  const haveMosquitto = existsSync(MOSQUITTO);
  if (!haveMosquitto)
    loud(
      `SKIPPED: everything through Mosquitto — ${MOSQUITTO} is not installed (apt-get install mosquitto); figures below are for the embedded broker only`,
    );
  const meta = {
    date: new Date().toISOString(),
    mode: QUICK ? 'quick' : 'full',
    nproc: sh('nproc', []) ?? String(os.availableParallelism()),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memGb: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    commit: `${sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']) ?? 'unknown'}${sh('git', ['-C', REPO, 'status', '--porcelain', '--', 'src']) ? ' (src modified)' : ''}`,
    mosquitto: haveMosquitto ? await mosquittoVersion() : 'not installed',
    profile: values.profile ? PROFILE_DIR : undefined,
    busyBeforePct: Math.round(busy * 100),
    loadavgStart: os.loadavg().map((v) => Number(v.toFixed(2))),
  };
  // The package as a user installs it; e2e and the footprint run its agent (bench/lib/package.mjs).
  let pkg;
  if (SECTIONS.has('e2e') || SECTIONS.has('footprint')) {
    log('package: bundle, npm pack, npm install -g into a temp prefix …');
    pkg = await installPackage(tempDir('hc-package-'));
  }
  const from = values['agent-from'];
  // Another agent's bin (an older checkout): the same bench, brokers and naive bridge, that agent measured.
  const otherBin = ['package', 'dist'].includes(from) ? undefined : path.resolve(from);
  if (otherBin && !existsSync(otherBin))
    throw new Error(
      `--agent-from ${from}: use package, dist, or the path of another checkout's bin/homelab-cmd.js (built: npm ci there)`,
    );
  const e2eBin = otherBin ?? (from === 'dist' || !pkg ? BIN : pkg.bin);
  meta.agentUnderTest = `${otherBin ? `${otherBin} (another agent)` : e2eBin === BIN ? 'dist/ (this checkout)' : 'the packed package (bundle/)'}, e2e with node flags: ${AGENT_FLAGS.join(' ') || 'none'}`;
  const results = {
    meta,
    package: pkg && { packages: pkg.packages, installedMb: pkg.installedMb, tarballMb: pkg.tarballMb },
    e2e: [],
    fanout: [],
    cluster: undefined,
    footprint: undefined,
    imports: undefined,
    overhead: undefined,
    spawn: undefined,
    errors: [],
    notes: [],
  };

  if (SECTIONS.has('overhead')) {
    log('overhead: parse, resolve, journal per request …');
    const p = startChild(process.execPath, [
      path.join(BENCH, 'overhead.mjs'),
      '--n',
      String(M.overheadN),
      '--dir',
      tempDir('hc-overhead-'),
    ]);
    results.overhead = JSON.parse(await p.waitLine((l) => l.startsWith('{'), 120_000, 'overhead figures'));
  }

  if (SECTIONS.has('spawn')) {
    log('spawn: execa vs node:child_process …');
    const p = startChild(process.execPath, [path.join(BENCH, 'spawn-micro.mjs'), ...M.spawn]);
    results.spawn = JSON.parse(await p.waitLine((l) => l.startsWith('{'), 180_000, 'spawn figures'));
    results.forkCost = [];
    for (const mb of [0, 50, 150]) {
      const f = startChild(process.execPath, [
        path.join(BENCH, 'fork-cost.mjs'),
        '--mb',
        String(mb),
        '--n',
        QUICK ? '40' : '200',
      ]);
      results.forkCost.push(JSON.parse(await f.waitLine((l) => l.startsWith('{'), 60_000, 'fork cost')));
    }
  }

  if (SECTIONS.has('e2e')) {
    // The noop rows of the targets are also run against the durable naive bridge (bench/lib/e2e.mjs):
    // issue 22's floor for a bridge that runs each command at most once.
    const durable = (name) => name === 'noop c1' || name === 'noop c16';
    const fast = M.fast.map(([name, action, concurrency, n]) => ({
      name,
      action,
      concurrency,
      n,
      qos: 1,
      pauseMs: 0,
      durable: durable(name),
    }));
    const stock = M.stock.map(([name, action, concurrency, n]) => ({
      name: `${name} qos0 presses`,
      action,
      concurrency,
      n,
      durable: durable(name),
      qos: 0,
      pauseMs: M.pauseMs,
    }));
    if (M.contrast)
      stock.push({
        name: 'noop c1 qos1 back-to-back',
        action: 'noop',
        concurrency: 1,
        n: M.contrast,
        qos: 1,
        pauseMs: 0,
      });
    const brokers = [['embedded', (d) => startEmbeddedBroker(d), fast]];
    if (haveMosquitto)
      brokers.push(
        ['mosquitto-nodelay', (d) => startMosquitto(d, { nodelay: true }), fast],
        ['mosquitto-stock', (d) => startMosquitto(d, { nodelay: false }), stock],
      );
    for (const [kind, start, scenarios] of brokers) {
      log(`e2e through ${kind} …`);
      const dir = tempDir(`hc-e2e-${kind}-`);
      const broker = await start(dir);
      try {
        results.e2e.push(
          ...(await e2eOnBroker(broker, scenarios, {
            dir,
            warmup: M.warmup,
            agentArgs: [...AGENT_FLAGS, ...prof(`e2e-${kind}-agent`)],
            agentBin: e2eBin,
            naiveArgs: prof(`e2e-${kind}-naive`),
            log,
          })),
        );
      } finally {
        await broker.stop();
      }
    }
  }

  if (SECTIONS.has('fanout')) {
    const limit = openFilesLimit();
    const fit = (count) => {
      if (count <= maxFleet(limit)) return count;
      const n = maxFleet(limit);
      const note = `fan-out to ${count} does not fit the open-files limit of ${limit} (ulimit -n): ran ${n} agents instead — raise it with ulimit -n ${count * 4 + 200}`;
      loud(note);
      results.notes.push(note);
      return n;
    };
    results.meta.openFilesLimit = limit;
    const runs = [
      ...M.fanout.map((c) => ['embedded', c]),
      ...(haveMosquitto ? M.fanoutMosquitto.map((c) => ['mosquitto-nodelay', c]) : []),
    ];
    for (const [kind, wanted] of runs) {
      const count = fit(wanted);
      log(`fan-out to ${count} through ${kind} …`);
      const start =
        kind === 'embedded' ? (d) => startEmbeddedBroker(d) : (d) => startMosquitto(d, { nodelay: true });
      try {
        results.fanout.push(await fanout(count, start, kind, { rounds: M.fanoutRounds, log, prof }));
      } catch (err) {
        // Too many files or connections on this machine: say so, keep the sizes that worked.
        const note = `fan-out to ${count} through ${kind} failed: ${err.message.split('\n')[0]}`;
        loud(note);
        results.errors.push(note);
      }
    }
  }

  if (SECTIONS.has('cluster')) {
    if (!REDIS_SERVER) {
      const note =
        'SKIPPED: the clustered brokers (broker.cluster) — redis-server is not installed (apt-get install redis-server)';
      loud(note);
      results.notes.push(note);
    } else {
      const count = Math.min(M.cluster.count, maxFleet(openFilesLimit()));
      log(`cluster: ${count} agents across two brokers clustered over Redis …`);
      try {
        const c = await clusterFleet(count, { ...M.cluster, log, prof });
        results.cluster = c;
        const f = c.failover;
        if (f.lost || f.ranTwiceOrMore || f.neverRan || f.afterKillAnswered !== count) {
          results.errors.push(
            `cluster failover: ${f.lost} lost, ${f.ranTwiceOrMore} ran twice, ${f.neverRan} never ran, ${count - f.afterKillAnswered} agents did not answer through the survivor`,
          );
        }
      } catch (err) {
        const note = `cluster with ${count} agents failed: ${err.message.split('\n')[0]}`;
        loud(note);
        results.errors.push(note);
      }
    }
  }

  if (SECTIONS.has('footprint')) {
    const dir = tempDir('hc-footprint-');
    const broker = haveMosquitto
      ? await startMosquitto(dir, { nodelay: true })
      : await startEmbeddedBroker(dir);
    try {
      log(`footprint: start → online (${M.startReps}×) …`);
      const start = await startToOnline(
        broker,
        dir,
        M.startReps,
        prof('start-agent'),
        otherBin ? { package: otherBin } : { package: pkg.bin, dist: BIN },
        pkg.naiveBundled,
      );
      log(`footprint: idle for ${M.idleMs / 1000} s with a 10 s heartbeat …`);
      const idleFig = await idle(broker, dir, {
        windowMs: M.idleMs,
        settleMs: M.settleMs,
        heartbeat: '10s',
        nodeArgs: prof('idle-agent'),
        bin: otherBin ?? pkg.bin,
        distBin: otherBin ?? BIN,
        naiveBundled: pkg.naiveBundled,
      });
      results.footprint = { broker: broker.kind, start, idle: idleFig };
    } finally {
      await broker.stop();
    }
    log('footprint: import costs …');
    results.imports = await importCosts(QUICK ? 1 : 3, pkg.root);
  }

  for (const r of results.e2e)
    if (r.agent.errors || r.naive.errors || r.durable?.errors)
      results.errors.push(
        `e2e ${r.broker} ${r.name}: ${r.agent.errors} agent / ${r.naive.errors} naive / ${r.durable?.errors ?? 0} durable naive requests failed or timed out`,
      );
  for (const f of results.fanout)
    if (f.agent.errors || f.naive.errors)
      results.errors.push(
        `fan-out ${f.count}: ${f.agent.errors} agent / ${f.naive.errors} naive requests failed or timed out`,
      );
  results.targets = targets(results);
  results.meta.seconds = (performance.now() - t0) / 1000;
  results.meta.loadavgEnd = os.loadavg().map((v) => Number(v.toFixed(2)));

  let text = render(results);
  if (values.profile) {
    // One profile per role is enough to see where the time goes; the files stay for a closer look.
    const summaries = [];
    for (const role of readdirSync(PROFILE_DIR).sort()) {
      const files = readdirSync(path.join(PROFILE_DIR, role))
        .filter((f) => f.endsWith('.cpuprofile'))
        .sort();
      if (files.length > 0)
        summaries.push(`[${role}] ${summarize(path.join(PROFILE_DIR, role, files[files.length - 1]), 15)}`);
    }
    text += `\n\nCPU PROFILES (node --cpu-prof; bench/results/profiles/<role>/)\n${summaries.join('\n\n')}`;
  }
  process.stdout.write(`${text}\n`);
  const outDir = path.join(BENCH, 'results');
  mkdirSync(outDir, { recursive: true });
  const stamp = results.meta.date.replace(/[:.]/g, '-');
  // Partial and profiled runs get their own names: latest-full is always a complete, unprofiled run.
  const kind = `${meta.mode}${values.only ? `-${[...SECTIONS].join('+')}` : ''}${values.profile ? '-profile' : ''}`;
  for (const name of [`${kind}-${stamp}`, `latest-${kind}`]) {
    writeFileSync(path.join(outDir, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(path.join(outDir, `${name}.txt`), `${text}\n`);
  }
  log(`wrote bench/results/${kind}-${stamp}.json and .txt (and latest-${kind}.*)`);
  if (results.errors.length > 0) {
    loud(`ERRORS:\n${results.errors.join('\n')}`);
    return 1;
  }
  if (values.strict && results.targets.some((t) => t.met === false)) return 1;
  return 0;
}

let code = 1;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    cleanupAll({ keepDirs: values.keep });
    process.exit(130);
  });
}
try {
  code = await main();
} catch (err) {
  loud(`bench failed: ${err.stack ?? err}`);
} finally {
  cleanupAll({ keepDirs: values.keep });
}
process.exit(code);
