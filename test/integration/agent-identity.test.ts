/**
 * The agent's side of broker identities (docs/security.md § Broker identities): it backs off from a
 * takeover fight with one clear log line, and its audit log names the account the broker
 * authenticated — only where the broker vouches for it — apart from what the sender claims.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../src/broker/broker.js';
import { silentLogger } from '../../src/log.js';
import { spawnCli, type AgentProcess } from '../helpers/agent.js';
import { tempDir, writeConfig } from '../helpers/fixtures.js';
import { MOSQUITTO, reportMissing, startMosquitto } from '../helpers/mosquitto.js';
import { TestClient } from '../helpers/mqtt.js';
import { until } from '../helpers/wait.js';

if (!MOSQUITTO) reportMissing('mosquitto', 'the audit test through Mosquitto');

const USERS = [
  { username: 'agent-a', password: 'pw-a', role: 'agent' as const, host: 'host-a' },
  { username: 'ha', password: 'pw-ha', role: 'controller' as const },
];

interface LogLine {
  msg: string;
  retryInMs?: number;
}

function logLines(agent: AgentProcess): LogLine[] {
  return agent
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

describe('the agent and the identities the broker enforces', () => {
  let broker: RunningBroker;
  let url: string;
  const dirs: string[] = [];
  const agents: AgentProcess[] = [];
  beforeAll(async () => {
    broker = await startBroker({
      host: '127.0.0.1',
      port: 0,
      users: USERS,
      prefix: 'homelab',
      discoveryPrefix: 'homeassistant',
      log: silentLogger(),
    });
    url = `mqtt://127.0.0.1:${broker.port}`;
  });
  afterAll(async () => {
    for (const a of agents) {
      a.proc.kill('SIGKILL');
      await a.exited;
    }
    await broker.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function agentOn(brokerUrl: string, mqtt: Record<string, unknown> = {}) {
    const dir = tempDir('hc-agent-identity-');
    dirs.push(dir);
    const file = writeConfig(dir, {
      host: 'host-a',
      state_dir: `${dir}/state`,
      mqtt: { url: brokerUrl, ...mqtt },
    });
    const a = spawnCli(['agent', '--config', file]);
    agents.push(a);
    await until(() => a.output().includes('listening for requests'), 20_000, 'the agent to connect');
    return { agent: a, state: `${dir}/state` };
  }

  it('a takeover fight: the agent says once what is wrong and waits longer before taking its session back', async () => {
    const { agent } = await agentOn(url, { username: 'agent-a', password: 'pw-a' });
    // A second client on the same account and id (a second agent with this host id, or a leaked
    // password): the broker lets it take the session over; it takes it back at once whenever kicked.
    let stop = false;
    let takeovers = 0;
    let current: TestClient | undefined;
    const fight = async () => {
      while (!stop) {
        const rival = await TestClient.connect(url, {
          username: 'agent-a',
          password: 'pw-a',
          clientId: 'homelab-cmd-host-a',
        }).catch(() => undefined);
        if (rival) {
          current = rival;
          takeovers += 1;
          await new Promise<void>((r) => rival.client.once('close', () => r()));
          rival.client.end(true);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const fighting = fight();
    const line = "another client is using this agent's client id homelab-cmd-host-a";
    await until(() => agent.output().includes(line), 20_000, 'the takeover log line');
    await until(() => takeovers >= 3, 60_000, 'the agent to come back twice');
    stop = true;
    current?.client.end(true);
    await fighting;
    const lines = logLines(agent);
    expect(lines.filter((l) => l.msg.includes(line))).toHaveLength(1);
    const retries = lines
      .filter((l) => l.msg === 'connection to broker lost; reconnecting')
      .map((l) => l.retryInMs);
    // Each takeover waits longer: 5 s, then 10 s, … instead of reconnecting at once.
    expect(retries[0]).toBeGreaterThanOrEqual(5000);
    expect(retries[1]).toBeGreaterThanOrEqual(10_000);
    agent.proc.kill('SIGKILL');
    await agent.exited;
  }, 90_000);

  it("the audit log's client is the account the embedded broker authenticated; the sender's claim is kept apart", async () => {
    const { agent, state } = await agentOn(url, { username: 'agent-a', password: 'pw-a' });
    const ha = await TestClient.connect(url, { username: 'ha', password: 'pw-ha' });
    await ha.sub('homelab/host-a/result/audit-1');
    await ha.client.publishAsync('homelab/host-a/cmd', JSON.stringify({ id: 'audit-1', action: 'x' }), {
      qos: 1,
      properties: { userProperties: { client_id: 'claimed-name', 'homelab-cmd-user': 'agent-b' } },
    });
    await ha.wait((m) => m.topic === 'homelab/host-a/result/audit-1', 20_000);
    await ha.end();
    const audit = `${state}/audit.jsonl`;
    await until(
      () => existsSync(audit) && readFileSync(audit, 'utf8').includes('audit-1'),
      10_000,
      'the audit line',
    );
    const entry = JSON.parse(readFileSync(audit, 'utf8').trim().split('\n').at(-1)!) as Record<
      string,
      unknown
    >;
    expect(entry).toMatchObject({ id: 'audit-1', client: 'ha', client_claimed: 'claimed-name' });
    agent.proc.kill('SIGKILL');
    await agent.exited;
  });

  it('on a broker that does not vouch for it (Mosquitto), a sender-written account name is not believed', async () => {
    if (!MOSQUITTO) return;
    const mosquitto = await startMosquitto();
    try {
      const { agent, state } = await agentOn(mosquitto.url);
      const ha = await TestClient.connect(mosquitto.url);
      await ha.sub('homelab/host-a/result/audit-2');
      await ha.client.publishAsync('homelab/host-a/cmd', JSON.stringify({ id: 'audit-2', action: 'x' }), {
        qos: 1,
        properties: { userProperties: { client_id: 'claimed-name', 'homelab-cmd-user': 'admin' } },
      });
      await ha.wait((m) => m.topic === 'homelab/host-a/result/audit-2', 20_000);
      await ha.end();
      const audit = `${state}/audit.jsonl`;
      await until(
        () => existsSync(audit) && readFileSync(audit, 'utf8').includes('audit-2'),
        10_000,
        'the audit line',
      );
      const entry = JSON.parse(readFileSync(audit, 'utf8').trim().split('\n').at(-1)!) as Record<
        string,
        unknown
      >;
      expect(entry).toMatchObject({ id: 'audit-2', client: null, client_claimed: 'claimed-name' });
      agent.proc.kill('SIGKILL');
      await agent.exited;
    } finally {
      await mosquitto.stop();
    }
  });
});
