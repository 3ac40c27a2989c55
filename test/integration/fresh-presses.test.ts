/**
 * Late requests never run (docs/mqtt-api.md § Late requests), against a real Mosquitto and a real
 * outage: a `homelab-cmd agent` process with a persistent session is killed, requests are published
 * with QoS 1 while it is down, and it gets them from its session when it comes back. "Time passes"
 * is a ts in the past, not a sleep. A marker file written by the fake command proves what ran.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/core/result.js';
import { runCli, spawnCli, type AgentProcess } from '../helpers/agent.js';
import { calls, fakeBin, tempDir, testPath, writeConfig } from '../helpers/fixtures.js';
import { renderCommandTemplate } from '../helpers/ha-template.js';
import { MOSQUITTO, reportMissing, startMosquitto, type MosquittoProcess } from '../helpers/mosquitto.js';
import { TestClient, type Msg } from '../helpers/mqtt.js';

if (!MOSQUITTO) reportMissing('mosquitto', 'late requests after an outage against Mosquitto');

const HOST = 'fresh-1';
const FINAL = ['succeeded', 'failed', 'timed_out', 'rejected', 'interrupted', 'cancelled'];

describe.skipIf(!MOSQUITTO)('late requests after an outage, against Mosquitto', () => {
  let mosq: MosquittoProcess;
  let ctl: TestClient;
  let dir: string;
  let config: string;
  let agent: AgentProcess | undefined;

  beforeAll(async () => {
    mosq = await startMosquitto();
    ctl = await TestClient.connect(mosq.url);
    await ctl.sub(
      `homelab/${HOST}/result/#`,
      `homelab/${HOST}/status`,
      `homelab/${HOST}/param/#`,
      `homelab/${HOST}/cmd/#`,
      `homeassistant/button/${HOST}/#`,
    );
    dir = tempDir();
    // `marker` appends "marker <argv>" to calls.log: a line there is a command that ran.
    const bin = fakeBin(dir, 'marker');
    config = writeConfig(dir, {
      host: HOST,
      state_dir: `${dir}/state`,
      mqtt: { url: mosq.url, keepalive: '2s' },
      execution: { enabled: true, path: testPath(bin) },
      actions: {
        reboot_host: {
          argv: ['marker', '{mode}'],
          params: { mode: { type: 'enum', values: ['soft', 'hard'], default: 'soft' } },
          button: true,
        },
      },
    });
  });

  afterAll(async () => {
    if (agent && agent.proc.exitCode === null && agent.proc.signalCode === null) {
      agent.proc.kill('SIGKILL');
      await agent.exited;
    }
    await ctl?.end();
    await mosq?.stop();
  });

  const online = (value: string) => (m: Msg) => m.topic === `homelab/${HOST}/status` && m.text === value;
  const final = (id: string, ms = 20_000) =>
    ctl
      .wait(
        (m) =>
          m.topic === `homelab/${HOST}/result/${id}` &&
          m.text !== '' &&
          FINAL.includes((JSON.parse(m.text) as Result).status),
        ms,
        `the final result of ${id}`,
      )
      .then((m) => JSON.parse(m.text) as Result);
  const start = async () => {
    const before = ctl.messages.length;
    agent = spawnCli(['agent', '--config', config]);
    await ctl.wait(
      (m) => ctl.messages.indexOf(m) >= before && online('online')(m),
      20_000,
      'the agent online',
    );
  };

  it("a fresh press — the discovered button, rendered as HA renders it — runs with the HA entities' params", async () => {
    await start();
    // HA's select entity is moved to "hard": the agent echoes the value in force, retained.
    await ctl.pub(`homelab/${HOST}/param/reboot_host/mode/set`, 'hard');
    await ctl.wait(
      (m) => m.topic === `homelab/${HOST}/param/reboot_host/mode` && m.text === 'hard',
      10_000,
      'the param value in force',
    );
    const button = await ctl.waitJson<{
      command_topic: string;
      command_template: string;
      payload_press: string;
      qos: number;
    }>(`homeassistant/button/${HOST}/run_reboot_host/config`);
    const wire = renderCommandTemplate(button.command_template, {
      value: button.payload_press,
      nowMs: Date.now(),
    });
    const before = ctl.messages.length;
    await ctl.pub(button.command_topic, wire, { qos: button.qos as 0 | 1 });
    // A press carries no id: its result is the next final one on P/H/result.
    const res = await ctl.wait(
      (m) =>
        ctl.messages.indexOf(m) >= before &&
        m.topic === `homelab/${HOST}/result` &&
        m.text !== '' &&
        FINAL.includes((JSON.parse(m.text) as Result).status),
      20_000,
      'the result of the press',
    );
    expect(JSON.parse(res.text)).toMatchObject({ action: 'reboot_host', status: 'succeeded' });
    expect(calls(dir)).toEqual(['marker hard']);
  }, 60_000);

  it('requests published while the agent is down are expired when the session delivers them; a fresh one runs', async () => {
    // The outage: the agent dies; its persistent session stays at the broker, subscribed with QoS 1.
    const offline = ctl.next(online('offline'), 15_000, 'offline (last will)');
    agent!.proc.kill('SIGKILL');
    await agent!.exited;
    await offline;

    const now = Date.now();
    const pub = (id: string, body: Record<string, unknown>) =>
      ctl.pub(`homelab/${HOST}/cmd/reboot_host`, JSON.stringify({ id, ...body }), { qos: 1 });
    // A ts older than its ttl: what "sent 2 minutes ago, host still down" looks like when it arrives.
    await pub('late-ttl', { params: { mode: 'soft' }, ts: now - 120_000, ttl: 30 });
    // The HA button pressed 10 minutes ago (HA cannot set message expiry, so the broker kept it).
    await pub('late-press', { press: true, ts: now - 600_000, ttl: 60 });
    // ts and no ttl: execution.max_age (default 5 min) applies.
    await pub('late-max-age', { params: { mode: 'soft' }, ts: now - 360_000 });
    // A dated ts beyond the clock-skew allowance is refused too.
    await pub('future-ts', { params: { mode: 'soft' }, ts: now + 3_600_000, ttl: 30 });
    // `send` giving up after --wait 1: its ttl and MQTT 5 message expiry end with the wait.
    const sent = await runCli([
      'send',
      HOST,
      'reboot_host',
      '--param',
      'mode=hard',
      '--wait',
      '1',
      '--id',
      'sent-while-down',
      '--url',
      mosq.url,
    ]);
    expect(sent.code).toBe(1);
    expect(sent.stderr).toMatch(/will not run when \S+ comes back/);
    const sentCmd = ctl.on(`homelab/${HOST}/cmd/reboot_host`).find((m) => m.text.includes('sent-while-down'));
    expect(JSON.parse(sentCmd!.text)).toMatchObject({
      id: 'sent-while-down',
      ttl: 1,
      ts: expect.any(Number),
    });
    expect(sentCmd!.packet.properties?.messageExpiryInterval).toBeLessThanOrEqual(1);
    // Fresh, and last in the queue: proves the session delivered the rest before it.
    await pub('fresh-after', { params: { mode: 'soft' }, ts: Date.now(), ttl: 600 });

    await start();
    expect(await final('fresh-after')).toMatchObject({ status: 'succeeded' });
    for (const id of ['late-ttl', 'late-press', 'late-max-age', 'future-ts'])
      expect(await final(id), id).toMatchObject({ status: 'rejected', error_code: 'expired', exit_code: -1 });
    expect((await final('late-ttl')).error).toMatch(/expired \d+ s ago \(ts \+ ttl is in the past/);
    expect((await final('late-max-age')).error).toMatch(/without a ttl, and max_age is 300 s/);
    expect((await final('future-ts')).error).toMatch(/in the future/);
    // The send that gave up: dropped by the broker (message expiry) or answered expired — never run.
    const sentResults = ctl.on(`homelab/${HOST}/result/sent-while-down`).filter((m) => m.text !== '');
    for (const m of sentResults) expect(JSON.parse(m.text)).toMatchObject({ error_code: 'expired' });
    // What ran: the press of the first test, and fresh-after. Nothing late, nothing twice.
    expect(calls(dir)).toEqual(['marker hard', 'marker soft']);
  }, 90_000);
});
