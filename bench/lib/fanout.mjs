/**
 * Fan-out: N agents in one process (real Agent objects, each with its own MQTT
 * connection and state_dir), one request to each at once; the time until every
 * final result is in, against N naive agents in one process. Each side gets a
 * fresh broker, so the broker's RSS is what that many clients cost it.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Driver, side } from './driver.mjs';
import { BENCH, memOf, startChild, tempDir } from './proc.mjs';

const hostName = (prefix, i) => `${prefix}${String(i).padStart(4, '0')}`;

async function oneSide(kind, count, startBroker, rounds, prof) {
  const dir = tempDir(`hc-fan-${kind}-`);
  const broker = await startBroker(dir);
  const emptyBrokerMb = memOf(broker.pid).rssMb;
  const driver = await Driver.connect(broker.url);
  const s = kind === 'agent' ? side('agent', 'homelab', 'fleet0000') : side('naive', 'naive', 'nfleet0000');
  const hostPrefix = kind === 'agent' ? 'fleet' : 'nfleet';
  await driver.subscribe(`${kind === 'agent' ? 'homelab' : 'naive'}/+/result/+`);
  const t0 = performance.now();
  const proc =
    kind === 'agent'
      ? startChild(
          process.execPath,
          [
            ...prof(`fanout-${count}-agents`),
            path.join(BENCH, 'fleet-proc.mjs'),
            '--url',
            broker.url,
            '--hosts',
            String(count),
            '--dir',
            dir,
            '--host-prefix',
            hostPrefix,
          ],
          { logFile: path.join(dir, 'fleet.log') },
        )
      : startChild(
          process.execPath,
          [
            ...prof(`fanout-${count}-naive`),
            path.join(BENCH, 'naive-bridge.mjs'),
            '--url',
            broker.url,
            '--hosts',
            String(count),
            '--host-prefix',
            hostPrefix,
          ],
          { logFile: path.join(dir, 'naive.log') },
        );
  try {
    await proc.waitLine((l) => l === 'ready', 180_000, `${count} ${kind}s to connect`);
    const readySeconds = (performance.now() - t0) / 1000;
    // Warm-up on a few hosts (JIT, page cache), off the clock.
    await Promise.allSettled(
      Array.from({ length: Math.min(count, 20) }, (_, i) =>
        driver.request(s, 'noop', { host: hostName(hostPrefix, i), tag: 'fanwarm', timeoutMs: 60_000 }),
      ),
    );
    await sleep(500);
    const idle = { broker: memOf(broker.pid).rssMb, proc: memOf(proc.pid).rssMb };
    const times = [];
    let errors = 0;
    for (let r = 0; r < rounds; r++) {
      const start = performance.now();
      const results = await Promise.allSettled(
        Array.from({ length: count }, (_, i) =>
          driver.request(s, 'noop', { host: hostName(hostPrefix, i), tag: `fan${r}`, timeoutMs: 60_000 }),
        ),
      );
      errors += results.filter((x) => x.status === 'rejected' || x.value.status !== 'succeeded').length;
      const last = Math.max(
        ...results.map((x) => (x.status === 'fulfilled' ? x.value.at : performance.now())),
      );
      times.push(last - start);
      await sleep(300);
    }
    // The same fan-out through the CLI: `send --group bench noop`, every host's result collected.
    const cli = kind === 'agent' ? await fleetSend(broker.url, count) : undefined;
    const after = { broker: memOf(broker.pid), proc: memOf(proc.pid) };
    return {
      kind,
      count,
      readySeconds,
      ms: times.reduce((a, b) => a + b, 0) / times.length,
      all: times,
      errors,
      emptyBrokerMb,
      idleBrokerMb: idle.broker,
      idleProcMb: idle.proc,
      brokerMb: after.broker.rssMb,
      brokerPeakMb: after.broker.peakMb,
      procMb: after.proc.rssMb,
      procPeakMb: after.proc.peakMb,
      cli,
    };
  } finally {
    await driver.end().catch(() => undefined);
    await proc.stop(30_000);
    await broker.stop();
  }
}

/**
 * `homelab-cmd send --group bench noop --json` as a child under /usr/bin/time (its max RSS): the
 * fan-out part (`elapsed_ms`, first request to last result, as the raw fan-out measures), the whole
 * command's wall time (node start-up and reading the groups included), and whether every host succeeded.
 */
async function fleetSend(url, count) {
  const bin = path.join(BENCH, '..', 'bin', 'homelab-cmd.js');
  const t0 = performance.now();
  const child = spawn(
    '/usr/bin/time',
    [
      '-f',
      'maxrss_kb %M',
      process.execPath,
      bin,
      'send',
      '--group',
      'bench',
      'noop',
      '--json',
      '--wait',
      '120',
      '--url',
      url,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  const wallMs = performance.now() - t0;
  const rss = /maxrss_kb (\d+)/.exec(stderr);
  let summary;
  try {
    summary = JSON.parse(stdout);
  } catch {
    summary = undefined;
  }
  return {
    code,
    wallMs,
    ms: summary?.elapsed_ms ?? NaN,
    succeeded: summary?.counts?.succeeded ?? 0,
    hosts: summary?.hosts?.length ?? 0,
    errors: count - (summary?.counts?.succeeded ?? 0),
    maxRssMb: rss ? Number(rss[1]) / 1024 : NaN,
  };
}

/** The soft limit on open files; each agent needs its socket, and pipes and a journal fd while it runs a command. */
export function openFilesLimit() {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/** The largest fleet the fd limit allows: ~4 fds per agent in the fleet process, 1 per client in the broker. */
export function maxFleet(limit = openFilesLimit()) {
  return Math.floor((limit - 200) / 4);
}

export async function fanout(count, startBroker, brokerKind, { rounds, log, prof = () => [] }) {
  const agent = await oneSide('agent', count, startBroker, rounds, prof);
  const naive = await oneSide('naive', count, startBroker, rounds, prof);
  log(
    `  fan-out ${count} (${brokerKind}): agents ${agent.ms.toFixed(0)} ms, naive ${naive.ms.toFixed(0)} ms${agent.errors + naive.errors ? ` — ERRORS agent ${agent.errors} naive ${naive.errors}` : ''}`,
  );
  const c = agent.cli;
  if (c)
    log(
      `  send --group to ${count} (${brokerKind}): ${c.ms.toFixed(0)} ms fan-out (${c.wallMs.toFixed(0)} ms whole command), ${c.succeeded}/${count} succeeded, exit ${c.code}, CLI max RSS ${c.maxRssMb.toFixed(0)} MB`,
    );
  return { broker: brokerKind, count, agent, naive };
}
