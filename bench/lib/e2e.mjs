/**
 * End-to-end latency and throughput through one broker: the agent process and
 * the naive bridge process both connected, the measuring client sending to one
 * side at a time in ABBA order (agent, naive, naive, agent) so drift on the
 * machine hits both alike. Scenarios marked `durable` also run a third side,
 * the naive bridge with --journal (one fsynced line before each spawn: the
 * floor of a bridge that runs a command at most once across a power loss), in
 * the order agent, naive, durable, durable, naive, agent.
 */
import path from 'node:path';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAgentProcess } from './agent-proc.mjs';
import { Driver, side } from './driver.mjs';
import { BENCH, memOf, startChild } from './proc.mjs';
import { summary } from './stats.mjs';

export const AGENT_HOST = 'bench-agent';
export const NAIVE_HOST = 'bench-naive';
export const DURABLE_HOST = 'bench-durable';

/**
 * scenarios: [{ name, action, concurrency, n, qos, pauseMs }]. Returns one row per scenario
 * with agent and naive latency summaries, throughput and errors.
 */
export async function e2eOnBroker(
  broker,
  scenarios,
  { dir, warmup = 30, agentArgs = [], naiveArgs = [], agentBin, log },
) {
  const agentSide = side('agent', 'homelab', AGENT_HOST);
  const naiveSide = side('naive', 'naive', NAIVE_HOST);
  const durableSide = side('durable', 'naive', DURABLE_HOST);
  const driver = await Driver.connect(broker.url);
  const agent = startAgentProcess({
    url: broker.url,
    dir,
    host: AGENT_HOST,
    nodeArgs: agentArgs,
    ...(agentBin && { bin: agentBin }),
  });
  const bridge = (host, nodeArgs, extra, log) =>
    startChild(
      process.execPath,
      [
        ...nodeArgs,
        path.join(BENCH, 'naive-bridge.mjs'),
        '--url',
        broker.url,
        '--host-prefix',
        host,
        ...extra,
      ],
      { logFile: path.join(dir, log) },
    );
  const naive = bridge(NAIVE_HOST, naiveArgs, [], 'naive.log');
  const durable = bridge(
    DURABLE_HOST,
    [],
    ['--journal', path.join(dir, 'durable-journal.jsonl')],
    'durable.log',
  );
  try {
    const online = driver.waitFor(agentSide.statusTopic(), (t) => t === 'online', 20_000);
    await driver.subscribe(
      agentSide.statusTopic(),
      agentSide.resultFilter(),
      naiveSide.resultFilter(),
      durableSide.resultFilter(),
    );
    await Promise.all([
      online,
      naive.waitLine((l) => l === 'ready', 20_000, 'the naive bridge to subscribe'),
      durable.waitLine((l) => l === 'ready', 20_000, 'the durable naive bridge to subscribe'),
    ]);
    // Let the agent's connect-time publishes (discovery, heartbeat) settle, then warm both sides up.
    await sleep(300);
    for (const s of [agentSide, naiveSide, durableSide])
      await driver.run(s, 'noop', { n: warmup, concurrency: 4, tag: 'warm' });

    const rows = [];
    for (const sc of scenarios) {
      const acc = {
        agent: { samples: [], errors: 0, seconds: 0 },
        naive: { samples: [], errors: 0, seconds: 0 },
        durable: { samples: [], errors: 0, seconds: 0 },
      };
      const half = Math.max(sc.concurrency, Math.round(sc.n / 2 / sc.concurrency) * sc.concurrency);
      const order = sc.durable
        ? [agentSide, naiveSide, durableSide, durableSide, naiveSide, agentSide]
        : [agentSide, naiveSide, naiveSide, agentSide];
      for (const s of order) {
        const r = await driver.run(s, sc.action, {
          n: half,
          concurrency: sc.concurrency,
          qos: sc.qos,
          pauseMs: sc.pauseMs,
          tag: `${sc.name}-${s.name}`,
        });
        const a = acc[s.name];
        a.samples.push(...r.samples);
        a.errors += r.errors;
        a.seconds += r.seconds;
      }
      const rss = { agentRssMb: memOf(agent.pid).rssMb, naiveRssMb: memOf(naive.pid).rssMb };
      const row = {
        broker: broker.kind,
        ...sc,
        ...rss,
        agent: {
          ...summary(acc.agent.samples),
          errors: acc.agent.errors,
          perSec: acc.agent.samples.length / acc.agent.seconds,
        },
        naive: {
          ...summary(acc.naive.samples),
          errors: acc.naive.errors,
          perSec: acc.naive.samples.length / acc.naive.seconds,
        },
        ...(sc.durable && {
          durable: {
            ...summary(acc.durable.samples),
            errors: acc.durable.errors,
            perSec: acc.durable.samples.length / acc.durable.seconds,
          },
        }),
      };
      log(
        `  ${broker.kind} ${sc.name}: agent p50 ${row.agent.p50.toFixed(2)} ms, naive p50 ${row.naive.p50.toFixed(2)} ms` +
          (row.durable ? `, durable naive p50 ${row.durable.p50.toFixed(2)} ms` : '') +
          (row.agent.errors + row.naive.errors + (row.durable?.errors ?? 0)
            ? ` — ERRORS agent ${row.agent.errors} naive ${row.naive.errors} durable ${row.durable?.errors ?? 0}`
            : ''),
      );
      rows.push(row);
    }
    return rows;
  } finally {
    await driver.end().catch(() => undefined);
    await Promise.all([agent.stop(), naive.stop(), durable.stop()]);
  }
}
