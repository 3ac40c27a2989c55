/**
 * A broker that remembers (docs/brokers.md § What survives a broker restart): a real
 * `homelab-cmd broker` process from dist/, stopped with SIGTERM and SIGKILL in turn, keeps an
 * offline subscriber's session, its queued QoS 1 messages and the retained messages.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawnCli, runCli, type AgentProcess } from '../helpers/agent.js';
import { tempDir, writeConfig } from '../helpers/fixtures.js';
import { TestClient } from '../helpers/mqtt.js';
import { freePort } from '../helpers/net.js';
import { until, withDeadline } from '../helpers/wait.js';

const SUBSCRIBER = { clientId: 'ha-offline', clean: false, properties: { sessionExpiryInterval: 86_400 } };
const running = new Set<AgentProcess>();

async function startBroker(file: string, port: number): Promise<AgentProcess> {
  const p = spawnCli(['broker', '--config', file, '--port', String(port)]);
  running.add(p);
  await withDeadline(
    Promise.race([
      until(() => p.output().includes('embedded broker listening on'), 20_000, 'the broker to listen'),
      p.exited.then(({ code }) => {
        throw new Error(`the broker exited (${code}) before listening:\n${p.output()}`);
      }),
    ]),
    25_000,
    'the broker to listen',
  );
  return p;
}

async function stopBroker(p: AgentProcess, signal: NodeJS.Signals): Promise<void> {
  p.proc.kill(signal);
  await withDeadline(p.exited, 15_000, `the broker to exit on ${signal}`);
  running.delete(p);
}

afterEach(async () => {
  for (const p of running) {
    p.proc.kill('SIGKILL');
    await p.exited;
  }
  running.clear();
});

describe('the embedded broker keeps its state across restarts', () => {
  it('100 acknowledged QoS 1 requests to an offline persistent session survive 5 restarts (SIGTERM and SIGKILL), and so do retained messages', async () => {
    const dir = tempDir();
    // No persistence key at all: disk is the default, in <state_dir>/broker.
    const file = writeConfig(dir, { host: 'persist-broker', state_dir: `${dir}/state` });
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    let broker = await startBroker(file, port);

    // Home Assistant-like subscriber: a persistent session, then offline for the whole test.
    const first = await TestClient.connect(url, SUBSCRIBER);
    await first.client.subscribeAsync(['homelab/+/cmd/#', 'homelab/+/status'], { qos: 1 });
    await first.end();

    const sent: string[] = [];
    for (let restart = 1; restart <= 5; restart++) {
      const pub = await TestClient.connect(url);
      for (let i = 0; i < 20; i++) {
        const id = `r${restart}-${i}`;
        // publishAsync resolves on the broker's PUBACK: each of these was acknowledged to its sender.
        await pub.client.publishAsync(`homelab/h${i % 3}/cmd/restart_dns`, JSON.stringify({ id }), {
          qos: 1,
        });
        sent.push(id);
      }
      await pub.client.publishAsync(`homelab/h${restart}/status`, 'online', { qos: 1, retain: true });
      await pub.end();
      await stopBroker(broker, restart % 2 === 0 ? 'SIGTERM' : 'SIGKILL');
      broker = await startBroker(file, port);
    }

    const back = await TestClient.connect(url, SUBSCRIBER);
    expect(back.connack?.sessionPresent).toBe(true);
    const received = () =>
      new Set(
        back.messages
          .filter((m) => m.topic.includes('/cmd/'))
          .map((m) => (JSON.parse(m.text) as { id: string }).id),
      );
    await until(() => received().size === sent.length, 20_000, `all ${sent.length} queued requests`).catch(
      () => undefined,
    );
    expect(sent.filter((id) => !received().has(id))).toEqual([]);
    await back.end();

    const fresh = await TestClient.connect(url);
    await fresh.sub('homelab/+/status');
    await until(() => fresh.messages.length === 5, 10_000, 'five retained statuses').catch(() => undefined);
    expect(fresh.messages.map((m) => [m.topic, m.text, m.packet.retain]).sort()).toEqual(
      [1, 2, 3, 4, 5].map((n) => [`homelab/h${n}/status`, 'online', true]),
    );
    await fresh.end();
  }, 240_000);

  it('a queued message keeps its MQTT 5 properties across a restart: response topic, correlation data, expiry, user properties', async () => {
    // aedes-persistence-level 9 wrapped queued messages in its own aedes-packet 3, which drops
    // `properties`: an agent offline when an MQTT 5 request came never answered its response topic,
    // and a request's message expiry was lost (package.json overrides aedes-packet to 4).
    const dir = tempDir();
    const file = writeConfig(dir, { host: 'props-broker', state_dir: `${dir}/state` });
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    let broker = await startBroker(file, port);
    const sub = { ...SUBSCRIBER, clientId: 'agent-offline' };
    const first = await TestClient.connect(url, sub);
    await first.client.subscribeAsync('homelab/h/cmd/#', { qos: 1 });
    await first.end();
    const pub = await TestClient.connect(url);
    await pub.client.publishAsync('homelab/h/cmd/work', '{"id":"p1"}', {
      qos: 1,
      properties: {
        responseTopic: 'homelab/h/reply/me',
        correlationData: Buffer.from('corr-p1'),
        messageExpiryInterval: 600,
        userProperties: { client_id: 'ha' },
      },
    });
    await pub.end();
    await stopBroker(broker, 'SIGKILL');
    broker = await startBroker(file, port);
    const back = await TestClient.connect(url, sub);
    const m = await back.wait((x) => x.topic === 'homelab/h/cmd/work', 15_000, 'the queued request');
    expect(m.packet.properties?.responseTopic).toBe('homelab/h/reply/me');
    expect(m.packet.properties?.correlationData?.toString()).toBe('corr-p1');
    expect(m.packet.properties?.messageExpiryInterval).toBeGreaterThan(500);
    expect(m.packet.properties?.userProperties).toMatchObject({ client_id: 'ha' });
    await back.end();
  }, 120_000);

  it('an online persistent subscriber gets every QoS 1 message, retained ones overtaken by later ones included', async () => {
    // aedes's per-client dedupe dropped a message whose persistence steps (a retained store on disk)
    // finished after a later one's: an agent's retained final never reached an online controller
    // (src/broker/ordered-dedupe.ts; the chaos run, docs/operations.md § Chaos run).
    const dir = tempDir();
    const file = writeConfig(dir, { host: 'order-broker', state_dir: `${dir}/state` });
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    await startBroker(file, port);
    const ctl = await TestClient.connect(url, { ...SUBSCRIBER, clientId: 'ctl-online' });
    await ctl.client.subscribeAsync(['homelab/+/result/+', 'homelab/+/reply/#'], { qos: 1 });
    const a = await TestClient.connect(url);
    const b = await TestClient.connect(url);
    const N = 150;
    // Two publishers at once: retained finals from one, non-retained replies from the other.
    await withDeadline(
      Promise.all([
        ...Array.from({ length: N }, (_, i) =>
          a.client.publishAsync(`homelab/a/result/${i}`, `r${i}`, { qos: 1, retain: true }),
        ),
        ...Array.from({ length: N }, (_, i) =>
          b.client.publishAsync(`homelab/b/reply/${i}`, `p${i}`, { qos: 1 }),
        ),
      ]),
      30_000,
      'the PUBACKs',
    );
    const got = () => new Set(ctl.messages.map((m) => m.topic));
    await until(() => got().size === 2 * N, 20_000, 'every message').catch(() => undefined);
    const missing = [
      ...Array.from({ length: N }, (_, i) => `homelab/a/result/${i}`),
      ...Array.from({ length: N }, (_, i) => `homelab/b/reply/${i}`),
    ].filter((t) => !got().has(t));
    expect(missing).toEqual([]);
    // One subscription matching twice still delivers once (what aedes's dedupe was for).
    await ctl.client.subscribeAsync('homelab/#', { qos: 1 });
    const before = ctl.messages.length;
    await a.client.publishAsync('homelab/a/result/once', 'x', { qos: 1 });
    await until(() => ctl.messages.length > before, 10_000, 'the overlapping delivery');
    await until(() => ctl.on('homelab/a/result/once').length >= 2, 1_000, 'a second copy').catch(
      () => undefined,
    );
    expect(ctl.on('homelab/a/result/once').length).toBe(1);
    await Promise.all([a.end(), b.end(), ctl.end()]);
  }, 120_000);

  it('with users and ACL: a refused QoS 1 publish is answered at once, and the PUBACKs held until stored never stall a client', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, {
      state_dir: `${dir}/state`,
      broker: {
        users: [
          { username: 'agent-h', password: 'pw-agent', role: 'agent', host: 'h' },
          { username: 'ha', password: 'pw-ha', role: 'controller' },
        ],
      },
    });
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    await startBroker(file, port);
    const agent = await TestClient.connect(url, {
      username: 'agent-h',
      password: 'pw-agent',
      clientId: 'homelab-cmd-h',
    });
    await agent.sub('homelab/h/cmd/#');
    const ha = await TestClient.connect(url, { username: 'ha', password: 'pw-ha' });
    // An agent may not command another host: MQTT 5 answers PUBACK 0x87, and the client goes on.
    await expect(
      withDeadline(agent.client.publishAsync('homelab/other/cmd/x', 'no', { qos: 1 }), 10_000, 'the refusal'),
    ).rejects.toThrow(/not authorized|135/i);
    await withDeadline(
      agent.client.publishAsync('homelab/h/status', 'online', { qos: 1, retain: true }),
      10_000,
      'an allowed publish after a refused one',
    );
    // A controller's QoS 1 requests, 50 in flight at once, each acknowledged and delivered.
    await withDeadline(
      Promise.all(
        Array.from({ length: 50 }, (_, i) => ha.client.publishAsync('homelab/h/cmd/x', `r${i}`, { qos: 1 })),
      ),
      20_000,
      '50 concurrent PUBACKs',
    );
    await until(() => agent.on('homelab/h/cmd/x').length === 50, 10_000, '50 deliveries');
    await agent.end();
    await ha.end();
  }, 60_000);

  it('broker.persistence: memory forgets sessions at a restart, as before', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, { state_dir: `${dir}/state`, broker: { persistence: 'memory' } });
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    let broker = await startBroker(file, port);
    const first = await TestClient.connect(url, SUBSCRIBER);
    await first.client.subscribeAsync('homelab/+/cmd/#', { qos: 1 });
    await first.end();
    await stopBroker(broker, 'SIGTERM');
    broker = await startBroker(file, port);
    const back = await TestClient.connect(url, SUBSCRIBER);
    expect(back.connack?.sessionPresent).toBe(false);
    await back.end();
  }, 60_000);

  it('a second broker on the same broker.state_dir is one clear line, exit 2', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, { broker: { state_dir: `${dir}/broker-state` } });
    await startBroker(file, await freePort());
    const r = await runCli(['broker', '--config', file, '--port', String(await freePort())]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `the broker state in ${dir}/broker-state is in use by another homelab-cmd broker (or up) — stop that one, or give this one its own broker.state_dir (or broker.persistence: memory)`,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);
});
