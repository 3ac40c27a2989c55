/**
 * The interop matrix (docs/brokers.md): one scenario, through a real
 * `homelab-cmd agent` process, against every broker this machine can start on
 * free loopback ports — the embedded aedes (MQTT 5), Mosquitto 2 speaking
 * MQTT 5 and 3.1.1, and RabbitMQ's MQTT plugin (3.1.1 only before 3.13: the
 * agent's fallback from 5 to 3.1.1, and what is lost without MQTT 5).
 * A broker whose binary is missing is skipped, loudly.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/core/result.js';
import { runCli, spawnCli, type AgentProcess } from '../helpers/agent.js';
import { tempDir, writeConfig } from '../helpers/fixtures.js';
import { MOSQUITTO, reportMissing, startMosquitto } from '../helpers/mosquitto.js';
import { TestClient, type Msg } from '../helpers/mqtt.js';
import { ProtocolGate } from '../helpers/protocol-gate.js';
import {
  RABBITMQ_SERVER,
  rabbitVersion,
  speaksMqtt5,
  startRabbitMQ,
  type RabbitNode,
} from '../helpers/rabbitmq.js';
import { until, withDeadline } from '../helpers/wait.js';
import { startTestBroker } from '../helpers/harness.js';

interface Server {
  /** Where the agent and the CLI connect (a gate may stand in front of the broker). */
  url: string;
  /** Where the test's own clients connect, and with which MQTT version. */
  observeUrl: string;
  observerVersion: 4 | 5;
  /** The MQTT version the agent must end up speaking. */
  agentVersion: 4 | 5;
  /** What the agent logs about the version it chose. */
  versionLog: RegExp;
  /** A new wildcard subscription gets the retained messages it matches. */
  wildcardRetained: boolean;
  /** A "." in a topic level comes back as "/" (RabbitMQ maps "/" to "." internally). */
  dotsBecomeLevels: boolean;
  stop(): Promise<void>;
}

const FINAL = ['succeeded', 'failed', 'timed_out', 'rejected', 'interrupted'];
const V5_LOG = /"protocolVersion":5,"sessionPresent":false,"msg":"connected to broker"/;

// RabbitMQ takes seconds to boot: it starts now, while the other brokers' scenarios run.
const RABBIT_VERSION = rabbitVersion();
const rabbitBoot: Promise<RabbitNode> | undefined =
  RABBITMQ_SERVER && RABBIT_VERSION ? startRabbitMQ() : undefined;
rabbitBoot?.catch(() => undefined); // reported by the RabbitMQ scenario's beforeAll
afterAll(async () => {
  const node = await rabbitBoot?.catch(() => undefined);
  await node?.stop();
}, 60_000);

if (!MOSQUITTO) reportMissing('mosquitto', 'the interop matrix rows for Mosquitto 2 (MQTT 5 and 3.1.1)');
if (!RABBITMQ_SERVER || !RABBIT_VERSION) {
  process.stderr.write(
    `\n*** SKIPPED: the interop matrix row for RabbitMQ's MQTT plugin — "rabbitmq-server" is not installed (CI does not install it: docs/brokers.md § Running the matrix) ***\n\n`,
  );
}

const servers: [string, () => Promise<Server>, boolean][] = [
  [
    'embedded aedes (MQTT 5)',
    async () => {
      const b = await startTestBroker();
      const url = `mqtt://127.0.0.1:${b.port}`;
      return {
        url,
        observeUrl: url,
        observerVersion: 5,
        agentVersion: 5,
        versionLog: V5_LOG,
        wildcardRetained: true,
        dotsBecomeLevels: false,
        stop: () => b.close(),
      };
    },
    true,
  ],
  [
    'Mosquitto 2 (MQTT 5)',
    async () => {
      const m = await startMosquitto();
      return {
        url: m.url,
        observeUrl: m.url,
        observerVersion: 5,
        agentVersion: 5,
        versionLog: V5_LOG,
        wildcardRetained: true,
        dotsBecomeLevels: false,
        stop: () => m.stop(),
      };
    },
    MOSQUITTO !== undefined,
  ],
  [
    'Mosquitto 2 (MQTT 3.1.1)',
    async () => {
      // Mosquitto 2 cannot turn MQTT 5 off; the gate refuses a v5 CONNECT as a 3.1.1-only broker
      // does (CONNACK return code 1) and passes 3.1.1 through to the real Mosquitto.
      const m = await startMosquitto();
      const gate = new ProtocolGate(m.port, 'refuse');
      await gate.start();
      return {
        url: gate.url,
        observeUrl: m.url,
        observerVersion: 5,
        agentVersion: 4,
        versionLog: /the broker refused MQTT 5; falling back to MQTT 3\.1\.1/,
        wildcardRetained: true,
        dotsBecomeLevels: false,
        stop: async () => {
          await gate.stop();
          await m.stop();
        },
      };
    },
    MOSQUITTO !== undefined,
  ],
  [
    `RabbitMQ ${RABBIT_VERSION ?? '(not installed)'} MQTT plugin (${RABBIT_VERSION && speaksMqtt5(RABBIT_VERSION) ? 'MQTT 5' : 'MQTT 3.1.1 only'})`,
    async () => {
      const node = await rabbitBoot!;
      const v5 = speaksMqtt5(node.version);
      return {
        url: node.url,
        observeUrl: node.url,
        observerVersion: v5 ? 5 : 4,
        agentVersion: v5 ? 5 : 4,
        // Before 3.13 it answers an MQTT 5 CONNECT by closing the connection, without a CONNACK.
        versionLog: v5 ? V5_LOG : /closed the connection without answering the MQTT 5 CONNECT/,
        // Its retained store answers exact topics only (up to 3.12).
        wildcardRetained: v5,
        dotsBecomeLevels: true,
        stop: async () => undefined, // the node is shared by the file and stopped in afterAll
      };
    },
    rabbitBoot !== undefined,
  ],
];

describe.each(servers)('interop: %s', (name, make, available) => {
  const host = `io-${name.split(' ')[0]!.toLowerCase()}-${name.includes('3.1.1') ? 'v4' : 'v5'}`;
  const t = (leaf: string) => `homelab/${host}/${leaf}`;
  let server: Server;
  let ctl: TestClient;
  let agent: AgentProcess;
  const clients: TestClient[] = [];

  const connect = async (opts: { protocolVersion?: 4 | 5 } = {}) => {
    const c = await TestClient.connect(server.observeUrl, {
      protocolVersion: opts.protocolVersion ?? server.observerVersion,
    });
    clients.push(c);
    return c;
  };
  /** The retained message on an exact topic (every broker of the matrix serves those), via a new client. */
  const retained = async (topic: string): Promise<Msg> => {
    const late = await connect();
    await late.sub(topic);
    return late.wait((m) => m.topic === topic, 10_000, `the retained message on ${topic}`);
  };
  const fail = (e: unknown) =>
    Promise.reject(new Error(`${String(e)}\n--- agent log ---\n${agent.output()}`));
  const request = async (
    topic: string,
    body: Record<string, unknown>,
    opts: Parameters<TestClient['pub']>[2] = {},
  ): Promise<Result> => {
    const id = String(body.id);
    const done = ctl.next(
      (m) =>
        m.topic.startsWith(t('result/')) &&
        m.text !== '' &&
        (JSON.parse(m.text) as Result).id === id &&
        FINAL.includes((JSON.parse(m.text) as Result).status),
      15_000,
      `the final result of ${id}`,
    );
    await ctl.pub(topic, JSON.stringify(body), opts);
    return JSON.parse((await done.catch(fail)).text) as Result;
  };

  beforeAll(async () => {
    if (!available) return;
    server = await make();
    ctl = await connect();
    await ctl.sub(t('status'), t('result/#'), t('heartbeat'));
    // Waiting before the agent subscribes: a retained command on the exact topic P/H/cmd.
    await ctl.pub(
      t('cmd'),
      JSON.stringify({ id: 'io-retained-before', action: 'echo', params: { m: 'never' } }),
      { retain: true },
    );
    const dir = tempDir();
    const file = writeConfig(dir, {
      host,
      state_dir: `${dir}/state`,
      mqtt: { url: server.url, keepalive: '2s' },
      heartbeat: { interval: '1h' },
      execution: { enabled: true },
      actions: {
        echo: {
          argv: ['echo', '{m}'],
          params: { m: { type: 'string', pattern: '^[a-z]{1,12}$' } },
          pattern: '^echo (?<m>[a-z]{1,12})$',
        },
      },
    });
    agent = spawnCli(['agent', '--config', file]);
    await ctl
      .wait((m) => m.topic === t('status') && m.text === 'online', 20_000, `${host} online`)
      .catch(fail);
  }, 120_000);

  afterAll(async () => {
    if (!available) return;
    if (agent.proc.exitCode === null && agent.proc.signalCode === null) {
      agent.proc.kill('SIGKILL');
      await agent.exited;
    }
    for (const c of clients.splice(0)) await c.end();
    await server.stop();
  }, 60_000);

  describe.skipIf(!available)('the same scenario', () => {
    it(`the agent ends up on MQTT ${name.includes('3.1.1') ? '3.1.1' : 'as the broker allows'} and logs how it chose`, () => {
      const log = agent.output();
      expect(log).toMatch(server.versionLog);
      expect(log).toContain(`"protocolVersion":${server.agentVersion},"sessionPresent":false`);
    });

    it('online is retained on P/H/status', async () => {
      expect((await retained(t('status'))).text).toBe('online');
    });

    it('a retained command that waited for the agent is refused, not run', async () => {
      const r = await ctl
        .waitJson<Result>(t('result/io-retained-before'), (x) => FINAL.includes(x.status), 10_000)
        .catch(fail);
      expect(r).toMatchObject({ status: 'rejected', error_code: 'retained_ignored' });
    });

    it('request → result', async () => {
      expect(await request(t('cmd/echo'), { id: 'io-req', params: { m: 'hello' } })).toMatchObject({
        status: 'succeeded',
        stdout: 'hello\n',
        host,
      });
    });

    it('a raw command', async () => {
      expect(await request(t('cmd'), { id: 'io-raw', command: 'echo world' })).toMatchObject({
        status: 'succeeded',
        action: 'echo',
        stdout: 'world\n',
      });
    });

    it(`a retained command published while the agent listens is ${name.includes('3.1.1') ? 'run (3.1.1 clears the retain flag on live delivery)' : 'refused'}`, async () => {
      const r = await request(
        t('cmd/echo'),
        { id: 'io-retained-live', params: { m: 'live' } },
        { retain: true },
      );
      if (server.agentVersion === 5)
        expect(r).toMatchObject({ status: 'rejected', error_code: 'retained_ignored' });
      else expect(r).toMatchObject({ status: 'succeeded', stdout: 'live\n' });
    });

    it('the heartbeat is retained', async () => {
      const hb = JSON.parse((await retained(t('heartbeat'))).text) as { host: string; version: string };
      expect(hb.host).toBe(host);
      expect(hb.version).toMatch(/^\d+\.\d+\.\d+/);
    });

    it(`discovery is retained${name.includes('RabbitMQ') ? ' (exact topics only: a wildcard subscription gets none)' : ''}`, async () => {
      const late = await connect();
      const wildcard = `homeassistant/sensor/${host}/+/config`;
      const exact = `homeassistant/binary_sensor/${host}/connectivity/config`;
      await late.sub(wildcard);
      await late.sub(exact);
      const conn = await late.wait((m) => m.topic === exact, 10_000, 'the connectivity binary_sensor config');
      expect(JSON.parse(conn.text)).toMatchObject({ device_class: 'connectivity', state_topic: t('status') });
      const sensors = () => late.messages.filter((m) => m.topic.startsWith(`homeassistant/sensor/${host}/`));
      // The last-result sensor and the heartbeat's (load, memory, disk, …).
      if (server.wildcardRetained)
        await until(() => sensors().length >= 4, 10_000, 'the sensor configs through the wildcard');
      // RabbitMQ answers each SUBSCRIBE in order: the wildcard's retained messages, had there been
      // any, would have come before the exact topic's.
      else expect(sensors()).toHaveLength(0);
    });

    it(`the CLI: send works${name.includes('RabbitMQ') ? '; status finds no hosts (it reads retained messages through wildcards)' : ', and status lists the host online'}`, async () => {
      const sent = await runCli([
        'send',
        host,
        'echo',
        '--param',
        'm=cli',
        '--url',
        server.url,
        '--wait',
        '20',
      ]);
      expect(sent.code, sent.stderr).toBe(0);
      expect(JSON.parse(sent.stdout)).toMatchObject({ status: 'succeeded', stdout: 'cli\n' });
      const status = await runCli(['status', '--url', server.url, '--json']);
      expect(status.code, status.stderr).toBe(0);
      const rows = JSON.parse(status.stdout) as { host: string; status: string }[];
      if (server.wildcardRetained)
        expect(rows).toContainEqual(expect.objectContaining({ host, status: 'online' }));
      else expect(rows).toEqual([]);
    });

    it(`a request id with a dot ${name.includes('RabbitMQ') ? 'comes back split into topic levels (result/a/b)' : 'keeps its topic (result/a.b)'}`, async () => {
      const r = await request(t('cmd/echo'), { id: 'io.dot', params: { m: 'dot' } });
      expect(r.status).toBe('succeeded');
      const topics = ctl.messages.filter((m) => m.text.includes('"io.dot"')).map((m) => m.topic);
      expect(topics).toContain(server.dotsBecomeLevels ? t('result/io/dot') : t('result/io.dot'));
      expect(topics).not.toContain(server.dotsBecomeLevels ? t('result/io.dot') : t('result/io/dot'));
    });

    it(`MQTT 5: ${name.includes('RabbitMQ') && !name.includes('MQTT 5') ? 'an MQTT 5 client cannot connect at all' : name.includes('3.1.1') ? 'no response topic, no message expiry (the agent speaks 3.1.1)' : 'response topic with correlation data; per-id results expire'}`, async () => {
      if (server.observerVersion === 4) {
        // Home Assistant from 2027.1 speaks MQTT 5 only: it could not use this broker.
        const v5 = mqtt.connect(server.observeUrl, {
          protocolVersion: 5,
          reconnectPeriod: 0,
          connectTimeout: 10_000,
        });
        const answer = new Promise<string>((resolve) => {
          v5.once('connect', () => resolve('CONNACK'));
          v5.once('close', () => resolve('closed without CONNACK'));
        });
        expect(await withDeadline(answer, 15_000, 'the answer to an MQTT 5 CONNECT')).toBe(
          'closed without CONNACK',
        );
        v5.end(true);
        return;
      }
      const rr = await connect({ protocolVersion: 5 });
      await rr.sub(t('reply/io-test'));
      const props = { responseTopic: t('reply/io-test'), correlationData: Buffer.from('corr-7') };
      const r = await request(t('cmd/echo'), { id: 'io-rr', params: { m: 'rr' } }, { properties: props });
      expect(r.status).toBe('succeeded');
      const late = await retained(t('result/io-rr'));
      if (server.agentVersion === 5) {
        const reply = await rr.wait((m) => m.topic === t('reply/io-test'), 10_000, 'the response');
        expect(reply.packet.properties?.correlationData?.toString()).toBe('corr-7');
        expect(JSON.parse(reply.text)).toMatchObject({ id: 'io-rr', status: 'succeeded' });
        const expiry = late.packet.properties?.messageExpiryInterval;
        expect(expiry).toBeGreaterThan(86_000);
        expect(expiry).toBeLessThanOrEqual(86_400);
      } else {
        // Another round trip after it: a reply to io-rr would have come first.
        await request(t('cmd/echo'), { id: 'io-rr-marker', params: { m: 'marker' } });
        expect(rr.on(t('reply/io-test'))).toHaveLength(0);
        expect(late.packet.properties?.messageExpiryInterval).toBeUndefined();
      }
    });

    it('SIGKILL of the agent: the broker publishes the retained last will, offline', async () => {
      const mark = ctl.messages.length;
      agent.proc.kill('SIGKILL');
      await agent.exited;
      await ctl.wait(
        (m) => ctl.messages.indexOf(m) >= mark && m.topic === t('status') && m.text === 'offline',
        15_000,
        'the last will',
      );
      expect((await retained(t('status'))).text).toBe('offline');
    });
  });
});
