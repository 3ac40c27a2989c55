/**
 * The agent's session as users see it: a real `homelab-cmd agent` process
 * against the embedded broker and against a real Mosquitto.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../src/broker/broker.js';
import { silentLogger } from '../../src/log.js';
import { spawnCli, type AgentProcess } from '../helpers/agent.js';
import { tempDir, writeConfig } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt.js';
import { MOSQUITTO, reportMissing, startMosquitto, type MosquittoProcess } from '../helpers/mosquitto.js';
import { freePort } from '../helpers/net.js';
import { until, withDeadline } from '../helpers/wait.js';

interface BrokerUnderTest {
  url: string;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function aedesBroker(): Promise<BrokerUnderTest> {
  const port = await freePort();
  const start = () =>
    startBroker({
      host: '127.0.0.1',
      port,
      users: [],
      prefix: 'homelab',
      discoveryPrefix: 'homeassistant',
      log: silentLogger(),
    });
  let b: RunningBroker = await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async restart() {
      await b.close();
      b = await start();
    },
    stop: () => b.close(),
  };
}

async function mosquittoBroker(): Promise<BrokerUnderTest> {
  const m: MosquittoProcess = await startMosquitto();
  return { url: m.url, restart: () => m.restart(), stop: () => m.stop() };
}

if (!MOSQUITTO) reportMissing('mosquitto', 'session tests against Mosquitto');

const brokers: [string, () => Promise<BrokerUnderTest>, boolean][] = [
  ['embedded aedes', aedesBroker, true],
  ['Mosquitto', mosquittoBroker, MOSQUITTO !== undefined],
];

describe.each(brokers)('agent session against %s', (_name, makeBroker, available) => {
  let broker: BrokerUnderTest;
  let observer: TestClient;
  const agents: AgentProcess[] = [];

  beforeAll(async () => {
    if (!available) return;
    broker = await makeBroker();
    observer = await TestClient.connect(broker.url);
    await observer.sub('homelab/+/status', 'homelab/+/heartbeat');
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) {
      if (a.proc.exitCode === null && a.proc.signalCode === null) {
        a.proc.kill('SIGKILL');
        await a.exited;
      }
    }
  });
  afterAll(async () => {
    if (!available) return;
    await observer.end();
    await broker.stop();
  });

  function agent(host: string, extra: Record<string, unknown> = {}): AgentProcess {
    const dir = tempDir();
    const file = writeConfig(dir, {
      host,
      state_dir: `${dir}/state`,
      mqtt: { url: broker.url, keepalive: '2s' },
      heartbeat: { interval: '1s' },
      ...extra,
    });
    const a = spawnCli(['agent', '--config', file]);
    agents.push(a);
    return a;
  }

  const status = (host: string, value: string) => (m: { topic: string; text: string }) =>
    m.topic === `homelab/${host}/status` && m.text === value;

  it.skipIf(!available)('publishes online, retained, on connect', async () => {
    agent('sess-online');
    await observer.wait(status('sess-online', 'online'));
    // A client that subscribes later still sees it: it is retained.
    const late = await TestClient.connect(broker.url);
    await late.sub('homelab/sess-online/status');
    const m = await late.wait((x) => x.topic === 'homelab/sess-online/status');
    expect(m.text).toBe('online');
    expect(m.packet.retain).toBe(true);
    await late.end();
  });

  it.skipIf(!available)('publishes a retained heartbeat with every field of the contract', async () => {
    agent('sess-hb');
    const hb = await observer.waitJson<Record<string, unknown>>('homelab/sess-hb/heartbeat');
    // The contract's fields, plus the `actions` extension (docs/mqtt-api.md; empty: this agent has no actions).
    expect(Object.keys(hb).sort()).toEqual(
      [
        'actions',
        'disk',
        'host',
        'load',
        'memory',
        'pending_results',
        'queued',
        'running',
        'stats',
        'ts',
        'uptime_s',
        'version',
      ].sort(),
    );
    expect(hb.actions).toEqual({});
    expect(hb.host).toBe('sess-hb');
    expect(Number.isNaN(Date.parse(String(hb.ts)))).toBe(false);
    expect(hb.load).toHaveLength(3);
    expect((hb.memory as { total: number }).total).toBeGreaterThan(0);
    expect((hb.disk as { total: number }).total).toBeGreaterThan(0);
    expect(Object.keys(hb.stats as object).sort()).toEqual([
      'avg_duration_ms',
      'executed',
      'failed',
      'rejected',
      'succeeded',
      'timed_out',
    ]);
    const late = await TestClient.connect(broker.url);
    await late.sub('homelab/sess-hb/heartbeat');
    expect((await late.wait((x) => x.topic === 'homelab/sess-hb/heartbeat')).packet.retain).toBe(true);
    await late.end();
  });

  it.skipIf(!available)('SIGKILL of the agent gives offline through the last will', async () => {
    const a = agent('sess-kill');
    await observer.wait(status('sess-kill', 'online'));
    const offline = observer.next(status('sess-kill', 'offline'), 10_000, 'the last will');
    a.proc.kill('SIGKILL');
    await a.exited;
    const will = await offline;
    expect(will.packet.retain).toBe(false); // delivered live to an existing subscriber; retained for late ones:
    const late = await TestClient.connect(broker.url);
    await late.sub('homelab/sess-kill/status');
    expect((await late.wait((x) => x.topic === 'homelab/sess-kill/status')).text).toBe('offline');
    await late.end();
  });

  it.skipIf(!available)('SIGTERM gives offline at once and exit code 0', async () => {
    const a = agent('sess-term');
    await observer.wait(status('sess-term', 'online'));
    const offline = observer.next(status('sess-term', 'offline'), 5000, 'offline on SIGTERM');
    a.proc.kill('SIGTERM');
    const [exit] = await Promise.all([withDeadline(a.exited, 5000, 'the agent to exit'), offline]);
    expect(exit.code).toBe(0);
  });

  it.skipIf(!available)(
    'comes back online after its broker restarts, and logs why it reconnected',
    async () => {
      const a = agent('sess-restart');
      await observer.wait(status('sess-restart', 'online'));
      await observer.end();
      await broker.restart();
      observer = await TestClient.connect(broker.url);
      await observer.sub('homelab/+/status', 'homelab/+/heartbeat');
      await observer.wait(status('sess-restart', 'online'), 15_000, 'online after the broker restart');
      // The log lines travel through a pipe: wait for them rather than race them.
      await until(() => /reconnected to broker/.test(a.output()), 5000, 'the reconnect log line');
      expect(a.output()).toMatch(/connection to broker lost; reconnecting/);
    },
  );
});
