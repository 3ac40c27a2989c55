/**
 * MQTT over WebSocket (`mqtt.url: ws://…`, docs/configuration.md), through a real Mosquitto with a
 * websockets listener, run from the bundle the package ships. The bundle loads MQTT.js's WebSocket
 * transport only when a ws:// or wss:// URL is used (scripts/bundle.mjs, MQTT_LAZY): this is the
 * test that the lazy path still connects, for the agent and for the CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli, type AgentProcess } from '../helpers/agent.js';
import { fakeBin, tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { MOSQUITTO, reportMissing, startMosquitto, type MosquittoProcess } from '../helpers/mosquitto.js';
import { TestClient } from '../helpers/mqtt.js';
import { freePort, waitForPort } from '../helpers/net.js';

if (!MOSQUITTO) reportMissing('mosquitto', 'MQTT over WebSocket (a Mosquitto websockets listener)');

describe.skipIf(!MOSQUITTO)('MQTT over WebSocket, from the bundle', () => {
  const host = 'ws-host';
  let mosq: MosquittoProcess;
  let agent: AgentProcess | undefined;
  let wsUrl = '';

  beforeAll(async () => {
    const wsPort = await freePort();
    mosq = await startMosquitto(`listener ${wsPort} 127.0.0.1\nprotocol websockets\n`);
    await waitForPort(wsPort);
    wsUrl = `ws://127.0.0.1:${wsPort}`;
  });

  afterAll(async () => {
    agent?.proc.kill('SIGKILL');
    await agent?.exited;
    await mosq?.stop();
  });

  it('an agent on ws:// says online and runs a request sent by the CLI over ws://; a TCP client sees both', async () => {
    const dir = tempDir();
    fakeBin(dir, 'hello', 'echo hello over websocket');
    const file = writeConfig(dir, {
      host,
      state_dir: `${dir}/state`,
      mqtt: { url: wsUrl },
      heartbeat: { interval: '1h' },
      discovery: { enabled: false },
      execution: { enabled: true, run_as: false, path: testPath(`${dir}/bin`) },
      actions: { hello: { argv: ['hello'] } },
    });
    // The witness speaks plain MQTT over TCP: the messages crossed from one listener to the other.
    const tcp = await TestClient.connect(mosq.url);
    try {
      await tcp.sub(`homelab/${host}/status`, `homelab/${host}/result/#`);
      agent = spawnCli(['agent', '--config', file]);
      await tcp
        .wait((m) => m.topic === `homelab/${host}/status` && m.text === 'online', 20_000, 'online over ws://')
        .catch((e: unknown) =>
          Promise.reject(new Error(`${String(e)}\n--- agent log ---\n${agent!.output()}`)),
        );

      const sent = await runCli(['send', host, 'hello', '--url', wsUrl, '--id', 'ws-1']);
      expect(sent.code, sent.stderr).toBe(0);
      expect(JSON.parse(sent.stdout)).toMatchObject({
        id: 'ws-1',
        status: 'succeeded',
        stdout: 'hello over websocket\n',
      });
      const seen = await tcp.waitJson<{ status: string }>(
        `homelab/${host}/result/ws-1`,
        (r) => r.status === 'succeeded',
        10_000,
      );
      expect(seen.status).toBe('succeeded');
    } finally {
      await tcp.end();
    }
  });
});
