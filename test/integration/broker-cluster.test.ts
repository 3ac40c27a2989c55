/**
 * broker.cluster: two real `homelab-cmd broker` processes over a Redis of the test's own.
 * Subscriptions, retained messages, persistent sessions and wills cross brokers; a will a
 * killed broker leaves behind never overwrites `online` from a client that moved.
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent/agent.js';
import { startAgent, runCli } from '../helpers/agent.js';
import { startCluster, startClusterBroker, type Cluster } from '../helpers/cluster.js';
import { REPO, tempDir, writeConfig } from '../helpers/fixtures.js';
import { reportMissing } from '../helpers/mosquitto.js';
import { freePort } from '../helpers/net.js';
import { REDIS_SERVER } from '../helpers/redis.js';
import { TestClient } from '../helpers/mqtt.js';
import { until, withDeadline } from '../helpers/wait.js';

if (!REDIS_SERVER) reportMissing('redis-server', 'the clustered broker tests (broker.cluster over Redis)');

it('an agent and a standalone broker load no Redis code: it is imported only with broker.cluster', async () => {
  const script = `
    import { createRequire } from 'node:module';
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).filter((k) => /ioredis|mqemitter-redis|aedes-persistence-redis/.test(k)).length;
    await import(${JSON.stringify(pathToFileURL(path.join(REPO, 'dist/agent/agent.js')).href)});
    const { startBroker } = await import(${JSON.stringify(pathToFileURL(path.join(REPO, 'dist/broker/broker.js')).href)});
    const { silentLogger } = await import(${JSON.stringify(pathToFileURL(path.join(REPO, 'dist/log.js')).href)});
    const b = await startBroker({ host: '127.0.0.1', port: 0, users: [], prefix: 'homelab', discoveryPrefix: 'homeassistant', log: silentLogger() });
    await b.close();
    const before = loaded();
    await import(${JSON.stringify(pathToFileURL(path.join(REPO, 'dist/broker/cluster.js')).href)});
    console.log(JSON.stringify({ before, after: loaded() }));`;
  const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script]);
  const { before, after } = JSON.parse(stdout) as { before: number; after: number };
  expect(before).toBe(0);
  expect(after).toBeGreaterThan(0); // the check itself sees Redis modules once they are loaded
});

it('check-config names the Redis a broker clusters over, with its password hidden, and refuses a URL that is not Redis', async () => {
  const dir = tempDir('hc-cluster-config-');
  try {
    const good = writeConfig(
      dir,
      { broker: { cluster: { redis: 'redis://:hunter2@10.0.0.5:6379/1' } } },
      'good.yaml',
    );
    const ok = await runCli(['check-config', '--config', good]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('embedded broker clustered over Redis at redis://***@10.0.0.5:6379/1');
    expect(ok.stdout).not.toContain('hunter2');
    const bad = writeConfig(dir, { broker: { cluster: { redis: 'http://10.0.0.5:6379' } } }, 'bad.yaml');
    const no = await runCli(['check-config', '--config', bad]);
    expect(no.code).toBe(1);
    expect(no.stderr).toContain('broker.cluster.redis: must be a Redis URL like redis://10.0.0.5:6379');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const execFileAsync = promisify(execFile);

const users = [
  { username: 'ha', password: 'pw-ha', role: 'controller' },
  { username: 'agent-z', password: 'pw-z', role: 'agent', host: 'zed' },
];
const ha = { username: 'ha', password: 'pw-ha' };

type ConnectOptions = Parameters<typeof TestClient.connect>[1];

/** Two brokers on a Redis of their own; `connect` clients are ended after the file. */
function clusterFixture(broker: Record<string, unknown>, defaults: ConnectOptions = {}) {
  const f = {
    dir: '',
    cluster: undefined as Cluster | undefined,
    A: '',
    B: '',
    clients: [] as TestClient[],
    async connect(url: string, opts: ConnectOptions = {}) {
      const c = await TestClient.connect(url, { ...defaults, ...opts });
      f.clients.push(c);
      return c;
    },
  };
  beforeAll(async () => {
    f.dir = tempDir('hc-cluster-');
    f.cluster = await startCluster(f.dir, 2, broker);
    [f.A, f.B] = f.cluster.brokers.map((b) => b.url) as [string, string];
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled(f.clients.map((c) => c.end()));
    await f.cluster?.stop();
    rmSync(f.dir, { recursive: true, force: true });
  });
  return f;
}

describe.skipIf(!REDIS_SERVER)('clustered embedded brokers (broker.cluster.redis), anonymous', () => {
  const f = clusterFixture({});
  const connect = (url: string, opts: ConnectOptions = {}) => f.connect(url, opts);
  let A: string;
  let B: string;
  let cluster: Cluster;
  let dir: string;
  beforeAll(() => {
    ({ A, B, dir } = f);
    cluster = f.cluster!;
  });

  it('a subscriber on one broker gets what is published on the other, MQTT 5 and 3.1.1', async () => {
    const onA = await connect(A);
    const onB = await connect(B, { protocolVersion: 4 });
    await onA.sub('t/cross/#');
    await onB.sub('t/cross/#');
    await onB.pub('t/cross/1', 'from-b');
    await onA.pub('t/cross/2', 'from-a');
    expect((await onA.wait((m) => m.topic === 't/cross/1')).text).toBe('from-b');
    expect((await onB.wait((m) => m.topic === 't/cross/2')).text).toBe('from-a');
  });

  it('a SUBSCRIBE of several topics on a persistent session completes (aedes-persistence-redis hung on it)', async () => {
    const c = await connect(A, {
      clientId: 'multi-sub',
      clean: false,
      properties: { sessionExpiryInterval: 300 },
    });
    const granted = await withDeadline(
      c.client.subscribeAsync(['t/m/1', 't/m/2', 't/m/+/x', 't/m/#'], { qos: 1 }),
      10_000,
      'the SUBACK of a 4-topic SUBSCRIBE',
    );
    expect(granted.map((g) => g.qos)).toEqual([1, 1, 1, 1]);
    const other = await connect(B);
    await other.pub('t/m/2', 'reached');
    expect((await c.wait((m) => m.topic === 't/m/2')).text).toBe('reached');
  });

  /**
   * What a fresh subscriber on `url` is given as retained for `topic`, read up to a marker it publishes
   * itself. aedes acknowledges a publish before the shared store has it, so a test polls this (until).
   */
  async function retainedOn(url: string, topic: string): Promise<string | undefined> {
    const c = await connect(url);
    await c.sub(topic);
    await c.sub('t/ret-marker');
    await c.pub('t/ret-marker', 'm');
    await c.wait((m) => m.topic === 't/ret-marker');
    const got = c.on(topic).find((m) => m.packet.retain === true);
    await c.end();
    return got?.text;
  }

  it('a retained message published on one broker is delivered by the other, and cleared on both', async () => {
    const pub = await connect(B);
    await pub.pub('t/ret/a', 'kept', { retain: true });
    await until(
      async () => (await retainedOn(A, 't/ret/a')) === 'kept',
      10_000,
      "B's retained message to be given by A",
    );
    const clearer = await connect(A);
    await clearer.pub('t/ret/a', '', { retain: true });
    await until(
      async () => (await retainedOn(B, 't/ret/a')) === undefined,
      10_000,
      'the clear made on A to hold on B',
    );
    await until(async () => (await retainedOn(A, 't/ret/a')) === undefined, 10_000, 'the clear to hold on A');
  });

  it('MQTT 5 message expiry holds across brokers: an expired retained message is not delivered by the other', async () => {
    const pub = await connect(A);
    await pub.pub('t/exp/short', 'gone-soon', { retain: true, properties: { messageExpiryInterval: 1 } });
    await pub.pub('t/exp/long', 'stays', { retain: true, properties: { messageExpiryInterval: 3600 } });
    // The expiry is the behaviour under test, so 1 s of wall time must pass.
    await new Promise((r) => setTimeout(r, 1600));
    const sub = await connect(B);
    await sub.sub('t/exp/+');
    const long = await sub.wait((m) => m.topic === 't/exp/long');
    expect(long.packet.properties?.messageExpiryInterval).toBeGreaterThan(3500);
    expect(sub.on('t/exp/short')).toHaveLength(0);
  });

  it('a persistent session moves: QoS 1 queued while offline on A is delivered after reconnecting to B', async () => {
    const opts = { clientId: 'roamer', clean: false, properties: { sessionExpiryInterval: 300 } };
    const first = await TestClient.connect(A, opts);
    await first.sub('t/queue/+');
    await first.end();
    const pub = await connect(B);
    await pub.pub('t/queue/1', 'while-away', { qos: 1 });
    const again = await connect(B, opts);
    expect(again.client.connected).toBe(true);
    expect((await again.wait((m) => m.topic === 't/queue/1')).text).toBe('while-away');
  });

  it("a killed broker's wills go out through the other — except for a client that already reconnected there", async () => {
    // A third broker to kill, so the shared A and B stay up for the other tests.
    const doomed = await startClusterBroker(cluster.configFile);
    const watcher = await connect(B);
    await watcher.sub('t/will/+');
    const will = (id: string) => ({
      topic: `t/will/${id}`,
      payload: Buffer.from('offline'),
      qos: 1 as const,
      retain: true,
    });
    const session = { clean: false, properties: { sessionExpiryInterval: 300 } };
    const gone = await TestClient.connect(doomed.url, { ...session, clientId: 'gone', will: will('gone') });
    const mover = await TestClient.connect(doomed.url, {
      ...session,
      clientId: 'mover',
      will: will('mover'),
    });
    await mover.pub('t/will/mover', 'online', { retain: true });
    await watcher.wait((m) => m.topic === 't/will/mover' && m.text === 'online');

    await doomed.kill();
    // The agent's way: reconnect to the broker still up, with the same client id and will, and say online again.
    const moved = await connect(B, { ...session, clientId: 'mover', will: will('mover') });
    const movedAt = Date.now();
    await moved.pub('t/will/mover', 'online', { retain: true });
    const back = watcher.messages.length;

    // B declares the doomed broker dead after 3 missed heartbeats (1 s each) and sweeps its wills.
    await watcher.wait(
      (m) => m.topic === 't/will/gone' && m.text === 'offline',
      20_000,
      'the will of the client that did not come back',
    );
    const redis = new Redis(cluster.redis.url);
    try {
      // The sweep's pass is over once the doomed broker has no will left in Redis (the mover's own new will stays).
      await until(
        async () =>
          (await redis.lrange('will', 0, -1)).filter((k) => k.endsWith(':mover') || k.endsWith(':gone'))
            .length === 1,
        20_000,
        'the will sweep to finish',
      );
    } finally {
      redis.disconnect();
    }
    expect(
      watcher.messages
        .slice(back)
        .filter((m) => m.topic === 't/will/mover')
        .map((m) => m.text),
    ).not.toContain('offline');
    const late = await connect(A);
    await late.sub('t/will/+');
    expect((await late.wait((m) => m.topic === 't/will/mover')).text).toBe('online');
    expect((await late.wait((m) => m.topic === 't/will/gone')).text).toBe('offline');
    const logs = [...cluster.brokers, doomed].map((b) => b.process.output()).join('\n');
    // B declares the doomed broker dead 3 heartbeats (3 s) after the kill. On a busy machine the
    // mover's reconnect can take longer than that: then its will rightly went out before it was back,
    // and what matters is that its own "online" came after it (checked above). Otherwise the sweep
    // must have dropped the will of a client that was already back.
    const sweptAt = /"time":(\d+)[^\n]*"clientId":"mover"[^\n]*publishing the will/.exec(logs)?.[1];
    if (sweptAt === undefined || Number(sweptAt) >= movedAt)
      expect(logs).toMatch(/"clientId":"mover".*dropped the will a dead broker left behind/);
    gone.client.end(true);
    mover.client.end(true);
  }, 60_000);

  it('a Redis that is down at start: one line saying what and how to fix it, exit 2, no stack trace', async () => {
    const port = await freePort();
    const file = writeConfig(
      dir,
      { broker: { cluster: { redis: `redis://127.0.0.1:${port}` } } },
      'no-redis.yaml',
    );
    const { code, stdout, stderr } = await runCli(['broker', '--config', file, '--port', '0']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.trim()).toBe(
      `homelab-cmd broker: cannot reach Redis at redis://127.0.0.1:${port} (ECONNREFUSED) for broker.cluster — start Redis there, or fix broker.cluster.redis`,
    );
  });
});

describe.skipIf(!REDIS_SERVER)(
  'clustered embedded brokers with broker.users: the ACL and a real agent',
  () => {
    const f = clusterFixture({ users }, ha);
    const connect = (url: string, opts: ConnectOptions = {}) => f.connect(url, opts);
    let A: string;
    let B: string;
    let dir: string;
    beforeAll(() => {
      ({ A, B, dir } = f);
    });

    it('the ACL holds on every broker: an agent user on B can neither command nor read another host', async () => {
      const agent = await connect(B, { username: 'agent-z', password: 'pw-z', clientId: 'homelab-cmd-zed' });
      await expect(agent.pub('homelab/other/cmd/reboot', '')).rejects.toThrow();
      await expect(agent.client.subscribeAsync('homelab/other/cmd/#', { qos: 1 })).rejects.toThrow(
        /Not authorized/,
      );
      await expect(TestClient.connect(A, { username: 'agent-z', password: 'wrong' })).rejects.toThrow(
        /Bad User Name or Password|Not authorized/i,
      );
    });

    describe('an agent on B, a controller on A', () => {
      let agent: Agent;
      beforeAll(async () => {
        ({ agent } = await startAgent({
          host: 'zed',
          state_dir: `${dir}/state-zed`,
          mqtt: { url: B, username: 'agent-z', password: 'pw-z' },
          heartbeat: { interval: '1s' },
          execution: { enabled: true },
          actions: { hello: { argv: ['echo', 'hi'], button: true } },
        }));
      });
      afterAll(() => agent?.stop());

      it('answers a request sent through the other broker, and its result is retained on both', async () => {
        const ctl = await connect(A);
        await ctl.sub('homelab/zed/result/+');
        await ctl.pub('homelab/zed/cmd/hello', JSON.stringify({ id: 'via-a-1' }));
        const result = await ctl.waitJson<{ status: string; stdout: string }>(
          'homelab/zed/result/via-a-1',
          (r) => r.status === 'succeeded',
        );
        expect(result.stdout).toBe('hi\n');
        for (const url of [A, B]) {
          const late = await connect(url);
          await late.sub('homelab/zed/result/via-a-1');
          expect((await late.waitJson<{ status: string }>('homelab/zed/result/via-a-1')).status).toBe(
            'succeeded',
          );
        }
      });

      it('status, heartbeat and discovery read the same on both brokers', async () => {
        const seen = async (url: string) => {
          const c = await connect(url);
          await c.sub('homelab/zed/status', 'homelab/zed/heartbeat', 'homeassistant/button/zed/+/config');
          await c.wait((m) => m.topic === 'homelab/zed/status' && m.text === 'online');
          await c.wait((m) => m.topic === 'homelab/zed/heartbeat');
          const button = await c.wait((m) => m.topic.startsWith('homeassistant/button/zed/'));
          return { status: 'online', button: button.topic, buttonConfig: JSON.parse(button.text) as unknown };
        };
        const [onA, onB] = [await seen(A), await seen(B)];
        expect(onA).toEqual(onB);
      });
    });
  },
);
