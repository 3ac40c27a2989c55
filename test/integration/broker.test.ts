import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../src/broker/broker.js';
import { PortInUseError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { TestClient } from '../helpers/mqtt.js';

const base = {
  host: '127.0.0.1',
  port: 0,
  prefix: 'homelab',
  discoveryPrefix: 'homeassistant',
  log: silentLogger(),
};

describe('embedded broker (aedes 2.0.0-beta.1): the MQTT 5 features we rely on', () => {
  let broker: RunningBroker;
  let url: string;
  beforeAll(async () => {
    broker = await startBroker({ ...base, users: [] });
    url = `mqtt://127.0.0.1:${broker.port}`;
  });
  afterAll(() => broker.close());

  it('accepts MQTT 5 and MQTT 3.1.1 clients, and they talk to each other', async () => {
    const v5 = await TestClient.connect(url, { protocolVersion: 5 });
    const v4 = await TestClient.connect(url, { protocolVersion: 4 });
    expect(v5.client.options.protocolVersion).toBe(5);
    await v4.sub('t/interop');
    await v5.pub('t/interop', 'from-v5');
    expect((await v4.wait((m) => m.topic === 't/interop')).text).toBe('from-v5');
    await v5.end();
    await v4.end();
  });

  it('forwards response topic and correlation data (request/response, mosquitto_rr)', async () => {
    const responder = await TestClient.connect(url);
    const requester = await TestClient.connect(url);
    await responder.sub('t/req');
    await requester.sub('t/reply/1');
    responder.client.on('message', (_t, _p, packet) => {
      const rt = packet.properties?.responseTopic;
      if (rt)
        void responder.pub(rt, 'pong', {
          properties: { correlationData: packet.properties?.correlationData },
        });
    });
    await requester.pub('t/req', 'ping', {
      properties: { responseTopic: 't/reply/1', correlationData: Buffer.from('corr-42') },
    });
    const reply = await requester.wait((m) => m.topic === 't/reply/1');
    expect(reply.text).toBe('pong');
    expect(reply.packet.properties?.correlationData?.toString()).toBe('corr-42');
    await responder.end();
    await requester.end();
  });

  it('honours message expiry: an expired retained message is not delivered', async () => {
    const pub = await TestClient.connect(url);
    await pub.pub('t/exp/short', 'gone-soon', { retain: true, properties: { messageExpiryInterval: 1 } });
    await pub.pub('t/exp/marker', 'stays', { retain: true });
    // The expiry is the behaviour under test, so the test must let 1 s of wall time pass.
    await new Promise((r) => setTimeout(r, 1600));
    const sub = await TestClient.connect(url);
    await sub.sub('t/exp/#');
    await sub.wait((m) => m.topic === 't/exp/marker');
    expect(sub.on('t/exp/short')).toHaveLength(0);
    // And one that has not expired is delivered with its remaining lifetime.
    await pub.pub('t/exp/long', 'still-here', { retain: true, properties: { messageExpiryInterval: 3600 } });
    const sub2 = await TestClient.connect(url);
    await sub2.sub('t/exp/long');
    const got = await sub2.wait((m) => m.topic === 't/exp/long');
    expect(got.packet.properties?.messageExpiryInterval).toBeLessThanOrEqual(3600);
    expect(got.packet.properties?.messageExpiryInterval).toBeGreaterThan(3500);
    await Promise.all([pub.end(), sub.end(), sub2.end()]);
  });

  it('gives a clear error when the port is in use', async () => {
    const err = await startBroker({ ...base, port: broker.port, users: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortInUseError);
    expect((err as Error).message).toBe(
      `127.0.0.1:${broker.port} is in use — is Mosquitto running? Use --port, or point mqtt.url at it`,
    );
  });
});

describe('embedded broker with users: authentication and the role ACL', () => {
  let broker: RunningBroker;
  let url: string;
  beforeAll(async () => {
    broker = await startBroker({
      ...base,
      users: [
        { username: 'agent-a', password: 'pw-a', role: 'agent', host: 'host-a' },
        { username: 'agent-b', password: 'pw-b', role: 'agent', host: 'host-b' },
        { username: 'ha', password: 'pw-ha', role: 'controller' },
      ],
    });
    url = `mqtt://127.0.0.1:${broker.port}`;
  });
  afterAll(() => broker.close());

  it('refuses a wrong password and anonymous clients', async () => {
    await expect(TestClient.connect(url, { username: 'agent-a', password: 'wrong' })).rejects.toThrow(
      /Bad User Name or Password|Not authorized/i,
    );
    await expect(TestClient.connect(url, {})).rejects.toThrow(/Bad User Name or Password|Not authorized/i);
    await expect(
      TestClient.connect(url, { username: 'nobody', password: 'x', protocolVersion: 4 }),
    ).rejects.toThrow(/Bad username or password|Not authorized/i);
  });

  it("an agent cannot publish to another host's cmd topic, nor its own; a controller can", async () => {
    const a = await TestClient.connect(url, {
      username: 'agent-a',
      password: 'pw-a',
      clientId: 'homelab-cmd-host-a',
    });
    const b = await TestClient.connect(url, {
      username: 'agent-b',
      password: 'pw-b',
      clientId: 'homelab-cmd-host-b',
    });
    const ha = await TestClient.connect(url, { username: 'ha', password: 'pw-ha' });
    await b.sub('homelab/host-b/cmd/#');
    // MQTT 5: an unauthorised QoS 1 publish is answered with PUBACK 0x87, which MQTT.js raises.
    await expect(a.pub('homelab/host-b/cmd/reboot', '')).rejects.toThrow();
    await expect(a.pub('homelab/host-a/cmd/reboot', '')).rejects.toThrow();
    await ha.pub('homelab/host-b/cmd/uptime', 'PRESS');
    const got = await b.wait((m) => m.topic.startsWith('homelab/host-b/cmd/'));
    expect(got.topic).toBe('homelab/host-b/cmd/uptime');
    expect(b.messages.map((m) => m.topic)).not.toContain('homelab/host-b/cmd/reboot');
    // Its own status, results and discovery it may write.
    await a.pub('homelab/host-a/status', 'online', { retain: true });
    await a.pub('homeassistant/button/host-a/uptime/config', '{}', { retain: true });
    await expect(a.pub('homeassistant/button/host-b/uptime/config', '{}')).rejects.toThrow();
    await Promise.all([a.end(), b.end(), ha.end()]);
  });

  it('only agent H may write P/H/reply/#: not another agent, not a controller (a reply cannot be forged)', async () => {
    const a = await TestClient.connect(url, {
      username: 'agent-a',
      password: 'pw-a',
      clientId: 'homelab-cmd-host-a',
    });
    const b = await TestClient.connect(url, {
      username: 'agent-b',
      password: 'pw-b',
      clientId: 'homelab-cmd-host-b',
    });
    const ha = await TestClient.connect(url, { username: 'ha', password: 'pw-ha' });
    await ha.sub('homelab/#');
    await expect(b.pub('homelab/host-a/reply/cli-1', 'forged')).rejects.toThrow();
    await expect(ha.pub('homelab/host-a/reply/cli-1', 'forged')).rejects.toThrow();
    // The old shared reply space is nobody's any more.
    await expect(a.pub('homelab/_reply/cli-1', 'forged')).rejects.toThrow();
    await expect(ha.pub('homelab/_reply/cli-1', 'forged')).rejects.toThrow();
    await a.pub('homelab/host-a/reply/cli-1', 'real');
    await ha.wait((m) => m.topic === 'homelab/host-a/reply/cli-1' && m.text === 'real');
    expect(ha.messages.filter((m) => m.text === 'forged')).toEqual([]);
    await Promise.all([a.end(), b.end(), ha.end()]);
  });

  it("an agent cannot read another host's commands; a controller reads everything", async () => {
    const a = await TestClient.connect(url, {
      username: 'agent-a',
      password: 'pw-a',
      clientId: 'homelab-cmd-host-a',
    });
    // MQTT 5: SUBACK 0x87 (Not authorized), which MQTT.js raises.
    await expect(a.client.subscribeAsync('homelab/host-b/cmd/#', { qos: 1 })).rejects.toThrow(
      /Not authorized/,
    );
    await expect(a.client.subscribeAsync('homelab/#', { qos: 1 })).rejects.toThrow(/Not authorized/);
    const own = await a.client.subscribeAsync('homelab/host-a/cmd/#', { qos: 1 });
    expect(own[0]?.qos).toBe(1);
    const ha = await TestClient.connect(url, { username: 'ha', password: 'pw-ha' });
    const all = await ha.client.subscribeAsync('#', { qos: 1 });
    expect(all[0]?.qos).toBe(1);
    await Promise.all([a.end(), ha.end()]);
  });
});

describe('embedded broker without users', () => {
  it('accepts anonymous loopback clients', async () => {
    const broker = await startBroker({ ...base, users: [] });
    const c = await TestClient.connect(`mqtt://127.0.0.1:${broker.port}`);
    expect(c.client.connected).toBe(true);
    await c.end();
    await broker.close();
  });

  it('closes cleanly: the port is free again afterwards', async () => {
    const broker = await startBroker({ ...base, users: [] });
    const port = broker.port;
    await TestClient.connect(`mqtt://127.0.0.1:${port}`);
    await broker.close();
    const again = await new Promise<boolean>((resolve) => {
      const s = net.createServer().once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    expect(again).toBe(true);
  });
});
