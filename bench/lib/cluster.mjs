/**
 * The clustered fleet: N real agents (bench/fleet-proc.mjs) split across two
 * `homelab-cmd broker` processes clustered over a Redis of our own, beside the
 * same fleet on one standalone embedded broker.
 *
 *  - fan-out: one request to every agent, ms until the last final result;
 *  - failover: N requests whose commands run `killSecs` s, one broker SIGKILLed
 *    once a quarter of them have started; then: how long until every request
 *    has a final result, how often each command ran (a line per run in a file),
 *    how many results came twice, whether every agent answers through the
 *    broker left, and whether every status reads `online` after its will sweep.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import { table } from './stats.mjs';
import {
  BENCH,
  BIN,
  freePort,
  memOf,
  startChild,
  startEmbeddedBroker,
  tempDir,
  waitForPort,
} from './proc.mjs';

export const REDIS_SERVER = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) =>
  existsSync(p),
);
const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'rejected', 'interrupted']);
const host = (i) => `fleet${String(i).padStart(4, '0')}`;

async function until(check, ms, what) {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

async function startRedis(dir) {
  const port = await freePort();
  const child = startChild(
    REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { logFile: path.join(dir, 'redis.log') },
  );
  await waitForPort(port);
  return { url: `redis://127.0.0.1:${port}`, port, pid: child.pid, stop: () => child.stop() };
}

async function startClusterBroker(dir, configFile, name) {
  const child = startChild(process.execPath, [BIN, 'broker', '--config', configFile, '--port', '0'], {
    logFile: path.join(dir, `broker-${name}.log`),
    env: { HOMELAB_CMD_LOG_LEVEL: 'info' },
  });
  const line = await child.waitLine(
    (l) => l.includes('embedded broker listening on'),
    30_000,
    `broker ${name} to listen`,
  );
  const port = Number(/:(\d+)/.exec(line.split('listening on ')[1])?.[1]);
  // Info logs are few: start-up, and one line per will a dead broker left (dropped, or published).
  const wills = () => {
    const log = readFileSync(path.join(dir, `broker-${name}.log`), 'utf8');
    return {
      dropped: log.split('dropped the will a dead broker left behind').length - 1,
      published: log.split('publishing the will of a client of a dead broker').length - 1,
    };
  };
  return {
    name,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid,
    child,
    wills,
    kill: () => child.proc.kill('SIGKILL'),
    stop: () => child.stop(),
  };
}

/** A controller on one broker: publishes requests, records every final result per id (a duplicate shows as a second entry). */
class Controller {
  static async connect(url) {
    const client = await mqtt.connectAsync(url, {
      protocolVersion: 5,
      clientId: `bench-cluster-${process.pid}`,
      reconnectPeriod: 0,
      keepalive: 60,
    });
    client.stream.setNoDelay(true);
    const c = new Controller(client);
    await client.subscribeAsync('homelab/+/result/+', { qos: 1 });
    return c;
  }

  constructor(client) {
    this.client = client;
    this.finals = new Map();
    client.on('message', (topic, payload) => {
      const id = /^homelab\/[^/]+\/result\/([^/]+)$/.exec(topic)?.[1];
      if (!id || payload.length === 0) return;
      const { status } = JSON.parse(payload.toString());
      if (!FINAL.has(status)) return;
      const list = this.finals.get(id) ?? [];
      list.push({ status, at: performance.now() });
      this.finals.set(id, list);
    });
  }

  request(i, action, id, params) {
    return this.client.publishAsync(
      `homelab/${host(i)}/cmd/${action}`,
      JSON.stringify({ id, ...(params && { params }) }),
      { qos: 1 },
    );
  }

  /** ms from the first publish until every final result is in. */
  async fanout(count, action, tag, params, timeoutMs = 180_000) {
    const ids = Array.from({ length: count }, (_, i) => `${tag}-${i}`);
    const t0 = performance.now();
    await Promise.all(ids.map((id, i) => this.request(i, action, id, params?.(id))));
    await until(() => ids.every((id) => this.finals.has(id)), timeoutMs, `${count} final results (${tag})`);
    return { ids, ms: Math.max(...ids.map((id) => this.finals.get(id)[0].at)) - t0 };
  }

  end() {
    return this.client.endAsync(true);
  }
}

function runCounts(runLog, tag) {
  const counts = new Map();
  if (!existsSync(runLog)) return counts;
  for (const line of readFileSync(runLog, 'utf8').split('\n')) {
    const id = line.split(' ')[1];
    if (id?.startsWith(`${tag}-`)) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

async function startFleet(dir, urls, count, runLog, prof) {
  const fleet = startChild(
    process.execPath,
    [
      ...prof,
      path.join(BENCH, 'fleet-proc.mjs'),
      '--url',
      urls.join(','),
      '--hosts',
      String(count),
      '--dir',
      dir,
      '--mark-log',
      runLog,
    ],
    { logFile: path.join(dir, 'fleet.log') },
  );
  const t0 = performance.now();
  await fleet.waitLine((l) => l === 'ready', 300_000, `${count} agents to connect`);
  return { fleet, readySeconds: (performance.now() - t0) / 1000 };
}

/** The same fleet on one standalone embedded broker: the baseline, measured in the same run. */
async function standalone(count, rounds, prof) {
  const dir = tempDir('hc-cluster-base-');
  const broker = await startEmbeddedBroker(dir);
  const { fleet, readySeconds } = await startFleet(
    dir,
    [broker.url],
    count,
    path.join(dir, 'runs.log'),
    prof,
  );
  const ctl = await Controller.connect(broker.url);
  try {
    const times = [];
    for (let r = 0; r < rounds; r++) times.push((await ctl.fanout(count, 'noop', `base${r}`)).ms);
    return {
      readySeconds,
      ms: mean(times),
      all: times,
      brokerMb: memOf(broker.pid).rssMb,
      fleetMb: memOf(fleet.pid).rssMb,
    };
  } finally {
    await ctl.end().catch(() => undefined);
    await fleet.stop(30_000);
    await broker.stop();
  }
}

export async function clusterFleet(count, { rounds, killSecs, log, prof = () => [] }) {
  log(`  cluster: baseline, ${count} agents on one standalone embedded broker …`);
  const base = await standalone(count, rounds, prof('cluster-base-agents'));
  const dir = tempDir('hc-cluster-');
  const redis = await startRedis(dir);
  const configFile = path.join(dir, 'broker.yaml');
  writeFileSync(configFile, `broker:\n  cluster:\n    redis: ${redis.url}\n    heartbeat: 1s\n`);
  const A = await startClusterBroker(dir, configFile, 'a');
  const B = await startClusterBroker(dir, configFile, 'b');
  const emptyBrokerMb = memOf(A.pid).rssMb;
  const runLog = path.join(dir, 'runs.log');
  log(`  cluster: ${count} agents split across two brokers over Redis …`);
  const { fleet, readySeconds } = await startFleet(
    dir,
    [A.url, B.url],
    count,
    runLog,
    prof('cluster-agents'),
  );
  const ctl = await Controller.connect(A.url);
  try {
    const times = [];
    for (let r = 0; r < rounds; r++) times.push((await ctl.fanout(count, 'noop', `fan${r}`)).ms);
    const mem = {
      brokerAMb: memOf(A.pid).rssMb,
      brokerBMb: memOf(B.pid).rssMb,
      redisMb: memOf(redis.pid).rssMb,
      fleetMb: memOf(fleet.pid).rssMb,
    };
    log(
      `  cluster: fan-out ${mean(times).toFixed(0)} ms (standalone ${base.ms.toFixed(0)} ms); killing broker B with ${count} ${killSecs} s commands in flight …`,
    );

    const ids = Array.from({ length: count }, (_, i) => `kill-${i}`);
    const t0 = performance.now();
    await Promise.all(ids.map((id, i) => ctl.request(i, 'mark', id, { tag: id, secs: killSecs })));
    await until(
      () => runCounts(runLog, 'kill').size >= count / 4,
      120_000,
      'a quarter of the commands to start',
    );
    const atKill = {
      started: runCounts(runLog, 'kill').size,
      final: ids.filter((id) => ctl.finals.has(id)).length,
      sinceFirstPublishMs: performance.now() - t0,
    };
    const sweep = await watchSweep(redis.url);
    const killedAt = performance.now();
    B.kill();
    await B.child.exited;
    await until(() => ids.every((id) => ctl.finals.has(id)), 300_000, 'every final result after the kill');
    const allFinalMs = performance.now() - killedAt;
    const runs = runCounts(runLog, 'kill');
    const statuses = {};
    for (const id of ids)
      for (const s of new Set(ctl.finals.get(id).map((f) => f.status))) statuses[s] = (statuses[s] ?? 0) + 1;
    const after = await ctl.fanout(count, 'noop', 'after');
    const afterOk = after.ids.filter((id) => ctl.finals.get(id)[0].status === 'succeeded').length;
    const afterSweep = await statusesAfterSweep(A.url, count, sweep.done);
    const willsSweptMs = (await sweep.done) - killedAt;
    const failover = {
      killSecs,
      atKill,
      allFinalMs,
      finalStatuses: statuses,
      lost: ids.filter((id) => !ctl.finals.has(id)).length,
      ranOnce: [...runs.values()].filter((n) => n === 1).length,
      ranTwiceOrMore: [...runs.values()].filter((n) => n > 1).length,
      neverRan: count - runs.size,
      deliveredTwice: ids.filter((id) => ctl.finals.get(id).length > 1).length,
      afterKillFanoutMs: after.ms,
      afterKillAnswered: afterOk,
      willsSweptMs,
      willsOfDeadBroker: A.wills(),
      ...afterSweep,
      survivorMb: memOf(A.pid).rssMb,
    };
    return {
      count,
      base,
      cluster: { readySeconds, ms: mean(times), all: times, emptyBrokerMb, ...mem },
      failover,
    };
  } finally {
    await ctl.end().catch(() => undefined);
    await fleet.stop(30_000);
    await A.stop();
    await B.stop();
    await redis.stop();
  }
}

/**
 * Resolves (with the time) when Redis holds no will of broker B any more: the survivor has swept
 * them, 3 to 7 heartbeats (of 1 s) after the kill. B is the first broker of agent 1's list
 * (fleet-proc rotates the list), so B's id is in the key of agent 1's will.
 */
async function watchSweep(redisUrl) {
  const redis = new Redis(redisUrl);
  const keys = await redis.lrange('will', 0, -1);
  const deadId = keys.find((k) => k.endsWith(':homelab-cmd-fleet0001'))?.split(':')[1];
  if (!deadId) throw new Error('no will of agent fleet0001 in Redis: cannot tell which broker id to watch');
  const swept = async () => !(await redis.lrange('will', 0, -1)).some((k) => k.startsWith(`will:${deadId}:`));
  const poll = async () => {
    // Every 250 ms, not every 20: reading 1,500 keys in a tight loop would load the Redis being measured.
    for (const deadline = performance.now() + 120_000; !(await swept()); await sleep(250)) {
      if (performance.now() > deadline)
        throw new Error("timed out after 120000 ms waiting for the dead broker's wills to be swept");
    }
    return performance.now();
  };
  const done = poll().finally(() => redis.disconnect());
  done.catch(() => undefined);
  return { done };
}

/** How many statuses read `online` once the wills are swept, and a few seconds on (an agent puts right a will that went out before it was back). */
async function statusesAfterSweep(url, count, swept) {
  await swept;
  const c = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 });
  const latest = new Map();
  const offlineSeen = new Set();
  c.on('message', (topic, payload) => {
    latest.set(topic, payload.toString());
    if (payload.toString() === 'offline') offlineSeen.add(topic);
  });
  await c.subscribeAsync('homelab/+/status', { qos: 1 });
  await until(() => latest.size >= count, 30_000, 'every retained status').catch(() => undefined);
  const onlineAtSweep = [...latest.values()].filter((v) => v === 'online').length;
  await until(() => [...latest.values()].every((v) => v === 'online'), 10_000, 'every status online').catch(
    () => undefined,
  );
  await c.endAsync(true);
  return {
    onlineAtSweep,
    onlineAfter: [...latest.values()].filter((v) => v === 'online').length,
    offlineSeen: offlineSeen.size,
  };
}

export function renderCluster(c) {
  const f = c.failover;
  const a = f.atKill;
  const st = Object.entries(f.finalStatuses)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
  return [
    `CLUSTER, ${c.count} real agents split across two \`homelab-cmd broker\` processes over one Redis (broker.cluster), vs the same fleet on one standalone embedded broker; RSS in MB`,
    table(
      ['setup', 'connect s', 'fan-out ms (mean)', 'rounds', 'broker RSS', 'Redis RSS', 'fleet RSS'],
      [
        [
          'standalone embedded broker',
          c.base.readySeconds.toFixed(1),
          c.base.ms.toFixed(0),
          c.base.all.map((t) => t.toFixed(0)).join(' '),
          c.base.brokerMb.toFixed(0),
          '—',
          c.base.fleetMb.toFixed(0),
        ],
        [
          '2 clustered brokers (A + B)',
          c.cluster.readySeconds.toFixed(1),
          c.cluster.ms.toFixed(0),
          c.cluster.all.map((t) => t.toFixed(0)).join(' '),
          `${c.cluster.brokerAMb.toFixed(0)} + ${c.cluster.brokerBMb.toFixed(0)} (empty ${c.cluster.emptyBrokerMb.toFixed(0)})`,
          c.cluster.redisMb.toFixed(0),
          c.cluster.fleetMb.toFixed(0),
        ],
      ],
    ),
    `FAILOVER: ${c.count} requests whose commands run ${f.killSecs} s; broker B SIGKILLed ${a.sinceFirstPublishMs.toFixed(0)} ms after the first publish, with ${a.started} commands started and ${a.final} final results in.`,
    `  every request had a final result ${f.allFinalMs.toFixed(0)} ms after the kill: ${st}; lost ${f.lost}; results delivered twice ${f.deliveredTwice}`,
    `  commands ran once ${f.ranOnce}, twice or more ${f.ranTwiceOrMore}, never ${f.neverRan}`,
    `  afterwards a new fan-out through A alone: ${f.afterKillAnswered}/${c.count} answered in ${f.afterKillFanoutMs.toFixed(0)} ms; survivor RSS ${f.survivorMb.toFixed(0)} MB`,
    `  dead broker's wills swept ${f.willsSweptMs.toFixed(0)} ms after the kill (±250 ms): ${f.willsOfDeadBroker.dropped} dropped (their agent had moved), ${f.willsOfDeadBroker.published} published; statuses online when read after that ${f.onlineAtSweep}/${c.count}, a moment later ${f.onlineAfter}/${c.count} (offline seen on ${f.offlineSeen})`,
  ].join('\n');
}

function mean(xs) {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
