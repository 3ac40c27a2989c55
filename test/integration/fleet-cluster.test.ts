/**
 * A fleet of real agents (bench/fleet-proc.mjs: Agent objects from dist/, each with its own
 * connection, journal and state) split across two clustered brokers: a fan-out to all, then a
 * SIGKILL of one broker with requests in flight. Every run is counted by a side effect (a line
 * appended to a file by the command itself). The bench runs the same with 1,000 agents
 * (`node bench/bench.mjs --only cluster`); this test uses FLEET agents to fit CI's 2 cores.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { REPO, tempDir } from '../helpers/fixtures.js';
import { reportMissing } from '../helpers/mosquitto.js';
import { TestClient } from '../helpers/mqtt.js';
import { REDIS_SERVER } from '../helpers/redis.js';
import { until } from '../helpers/wait.js';

const FLEET = Number(process.env.HOMELAB_CMD_FLEET ?? 200);
const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'rejected', 'interrupted']);
const host = (i: number) => `fleet${String(i).padStart(4, '0')}`;

if (!REDIS_SERVER) reportMissing('redis-server', `the ${FLEET}-agent clustered fleet test`);

describe.skipIf(!REDIS_SERVER)(`a fleet of ${FLEET} agents split across two clustered brokers`, () => {
  let dir: string;
  let cluster: Cluster;
  let fleet: ChildProcess;
  let driver: TestClient;
  let runLog: string;

  /** Final results by request id: every final message seen (a duplicate would show as a second entry). */
  const finals = new Map<string, string[]>();
  const runs = (tag: string): Map<string, number> => {
    const counts = new Map<string, number>();
    const lines = existsSync(runLog) ? readFileSync(runLog, 'utf8').split('\n') : [];
    for (const line of lines) {
      const id = line.split(' ')[1];
      if (id?.startsWith(tag)) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  };
  const request = (i: number, id: string, secs = 0) =>
    driver.pub(`homelab/${host(i)}/cmd/mark`, JSON.stringify({ id, params: { tag: id, secs } }));
  const allFinal = (ids: string[]) => ids.every((id) => finals.has(id));

  beforeAll(async () => {
    dir = tempDir('hc-fleet-cluster-');
    runLog = path.join(dir, 'runs.log');
    cluster = await startCluster(dir, 2);
    const [A, B] = cluster.brokers.map((b) => b.url) as [string, string];
    fleet = spawn(
      process.execPath,
      [
        path.join(REPO, 'bench', 'fleet-proc.mjs'),
        '--url',
        `${A},${B}`,
        '--hosts',
        String(FLEET),
        '--dir',
        dir,
        '--mark-log',
        runLog,
        // Its own deadline below is the one that counts: a busy CI machine connects a batch slowly.
        '--ready-ms',
        '170000',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    fleet.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    fleet.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    await until(
      () => out.includes('ready\n') || fleet.exitCode !== null,
      180_000,
      `${FLEET} agents to connect`,
    );
    if (!out.includes('ready\n')) throw new Error(`the fleet exited: ${out}`);
    // The controller stays on A; B is the broker that will be killed.
    driver = await TestClient.connect(A);
    driver.client.on('message', (topic, payload) => {
      const m = /^homelab\/[^/]+\/result\/([^/]+)$/.exec(topic);
      if (!m?.[1] || payload.length === 0) return;
      const status = (JSON.parse(payload.toString()) as { status: string }).status;
      if (FINAL.has(status)) finals.set(m[1], [...(finals.get(m[1]) ?? []), status]);
    });
    await driver.sub('homelab/+/result/+');
  }, 240_000);

  afterAll(async () => {
    await driver?.end().catch(() => undefined);
    if (fleet && fleet.exitCode === null) {
      const gone = new Promise((r) => fleet.once('exit', r));
      fleet.kill('SIGKILL');
      await gone;
    }
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fan-out: one request to every agent, on both brokers; every result comes in, every command ran once', async () => {
    const ids = Array.from({ length: FLEET }, (_, i) => `fan-${i}`);
    const t0 = performance.now();
    await Promise.all(ids.map((id, i) => request(i, id)));
    await until(() => allFinal(ids), 120_000, `${FLEET} final results`);
    const ms = performance.now() - t0;
    process.stderr.write(
      `fleet-cluster: fan-out to ${FLEET} agents across 2 brokers: ${ms.toFixed(0)} ms until the last result\n`,
    );
    expect(ids.map((id) => finals.get(id))).toEqual(ids.map(() => ['succeeded']));
    const counted = runs('fan-');
    expect(counted.size).toBe(FLEET);
    expect([...counted.values()].every((n) => n === 1)).toBe(true);
  }, 180_000);

  it('one broker SIGKILLed with requests in flight: every agent ends on the other, no request lost or run twice', async () => {
    const ids = Array.from({ length: FLEET }, (_, i) => `kill-${i}`);
    // Each command runs 2 s: the kill lands while some run, some wait in queues, some are not yet delivered.
    await Promise.all(ids.map((id, i) => request(i, id, 2)));
    await until(() => runs('kill-').size >= FLEET / 4, 60_000, 'a quarter of the commands to start');
    const startedAtKill = runs('kill-').size;
    const finalAtKill = ids.filter((id) => finals.has(id)).length;
    const killedAt = performance.now();
    await cluster.brokers[1]!.kill();

    await until(
      () => allFinal(ids),
      120_000,
      `every final result after the kill (${ids.filter((id) => finals.has(id)).length}/${FLEET} so far)`,
    );
    const recoveredMs = performance.now() - killedAt;
    const counted = runs('kill-');
    const duplicates = ids.filter((id) => (finals.get(id)?.length ?? 0) > 1).length;
    process.stderr.write(
      `fleet-cluster: broker B SIGKILLed with ${startedAtKill}/${FLEET} commands started and ${finalAtKill} results in; all ${FLEET} final ${recoveredMs.toFixed(0)} ms later; ` +
        `runs: ${counted.size} distinct, max ${Math.max(...counted.values())} per request; requests whose final result was delivered more than once: ${duplicates}\n`,
    );
    // Exactly one outcome per request, and it is success: nothing lost, nothing interrupted.
    expect(ids.map((id) => [...new Set(finals.get(id))])).toEqual(ids.map(() => ['succeeded']));
    // Each command ran exactly once (a redelivered request gets its stored result, never a second run).
    expect(counted.size).toBe(FLEET);
    expect([...counted.values()].every((n) => n === 1)).toBe(true);

    // Every agent is on A (the only broker left): each answers a new request through it.
    const after = Array.from({ length: FLEET }, (_, i) => `after-${i}`);
    await Promise.all(after.map((id, i) => request(i, id)));
    await until(() => allFinal(after), 120_000, 'every agent to answer through the surviving broker');
    expect(after.every((id) => finals.get(id)?.[0] === 'succeeded')).toBe(true);

    // The dead broker's wills: gone (dropped, or published and then corrected) once A has swept them.
    const redis = new Redis(cluster.redis.url);
    try {
      await until(
        async () => (await redis.lrange('will', 0, -1)).length === FLEET,
        30_000,
        'the will sweep of the dead broker',
      );
    } finally {
      redis.disconnect();
    }
    const watcher = await TestClient.connect(cluster.brokers[0]!.url);
    await watcher.sub('homelab/+/status');
    const latest = () => new Map(watcher.messages.map((m) => [m.topic, m.text]));
    // A will published before its agent came back is put right by the agent (StatusGuard): wait for that, then count.
    await until(
      () => latest().size === FLEET && [...latest().values()].every((t) => t === 'online'),
      30_000,
      'every status to read online',
    );
    const corrected = new Set(watcher.messages.filter((m) => m.text === 'offline').map((m) => m.topic)).size;
    process.stderr.write(
      `fleet-cluster: statuses seen offline after the sweep, then corrected by their agent: ${corrected}\n`,
    );
    await watcher.end();
    expect(latest().size).toBe(FLEET);
  }, 300_000);
});
