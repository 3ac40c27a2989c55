/** Home Assistant discovery as HA sees it over a real broker: retained configs, cleanup, birth, params. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { calls, fakeBin, tempDir } from '../helpers/fixtures.js';
import { until } from '../helpers/wait.js';
import { Harness } from '../helpers/harness.js';
import { TestClient } from '../helpers/mqtt.js';
import type { Agent } from '../../src/agent/agent.js';

const h = new Harness();
let ha: TestClient;
beforeAll(async () => {
  await h.start();
  ha = await TestClient.connect(h.url);
  await ha.sub('homeassistant/#', 'homelab/+/param/#', 'homelab/+/status', 'homelab/+/heartbeat');
});
afterAll(async () => {
  await ha.end();
  await h.stop();
});

const configs = (host: string) =>
  ha.messages.filter((m) => m.topic.startsWith('homeassistant/') && m.topic.includes(`/${host}/`));

describe('discovery lifecycle', () => {
  const host = 'disco-1';
  const stateDir = `${tempDir()}/state`;
  let current: Agent;
  const actions = {
    uptime: { argv: ['uptime'], button: true, name: 'Uptime' },
    restart_dns: { argv: ['true'], button: true, name: 'Restart DNS', device_class: 'restart' },
  };

  it('publishes every config retained on connect, one device per host', async () => {
    current = (await h.agent(host, actions, { stateDir })).agent;
    await ha.wait((m) => m.topic === `homeassistant/button/${host}/run_restart_dns/config`);
    const late = await TestClient.connect(h.url);
    await late.sub(`homeassistant/+/${host}/#`);
    const btn = await late.waitJson<Record<string, unknown>>(
      `homeassistant/button/${host}/run_restart_dns/config`,
    );
    expect(btn).toMatchObject({
      name: 'Restart DNS',
      unique_id: `homelab_cmd_${host}_run_restart_dns`,
      command_topic: `homelab/${host}/cmd/restart_dns`,
      device_class: 'restart',
    });
    expect((btn.device as { identifiers: string[] }).identifiers).toEqual([`homelab_cmd_${host}`]);
    await late.wait((m) => m.topic === `homeassistant/binary_sensor/${host}/connectivity/config`);
    expect(late.messages.every((m) => m.packet.retain)).toBe(true);
    await late.end();
  });

  it("at a restart with the same config publishes nothing again, and clears a removed action's config", async () => {
    // Same config: no discovery between `online` and the first heartbeat (both published on connect, discovery between them).
    await h.stopAgent(current);
    const before = ha.messages.length;
    const { agent } = await h.agent(host, actions, { stateDir });
    await ha.wait((m) => ha.messages.indexOf(m) >= before && m.topic === `homelab/${host}/heartbeat`);
    expect(configs(host).filter((m) => ha.messages.indexOf(m) >= before)).toEqual([]);
    await h.stopAgent(agent);

    const { uptime } = actions;
    const before2 = ha.messages.length;
    current = (await h.agent(host, { uptime }, { stateDir })).agent;
    const cleared = await ha.wait(
      (m) =>
        ha.messages.indexOf(m) >= before2 &&
        m.topic === `homeassistant/button/${host}/run_restart_dns/config`,
    );
    expect(cleared.text).toBe('');
    expect(cleared.packet.retain).toBe(false); // live delivery; the broker deleted the retained copy:
    const late = await TestClient.connect(h.url);
    await late.sub(`homeassistant/button/${host}/#`);
    await late.wait((m) => m.topic === `homeassistant/button/${host}/run_uptime/config`);
    expect(late.on(`homeassistant/button/${host}/run_restart_dns/config`)).toEqual([]);
    await late.end();
  });

  it('republishes everything when HA sends its birth message', async () => {
    const before = ha.messages.length;
    await ha.pub('homeassistant/status', 'online');
    await ha.wait(
      (m) => ha.messages.indexOf(m) >= before && m.topic === `homeassistant/button/${host}/run_uptime/config`,
      5000,
      'republish after birth',
    );
    await ha.wait(
      (m) =>
        ha.messages.indexOf(m) >= before &&
        m.topic === `homeassistant/binary_sensor/${host}/connectivity/config`,
      5000,
      'republish after birth',
    );
  });

  it('discovery.enabled: false clears what the agent published before', async () => {
    const before = ha.messages.length;
    await h.stopAgent(current);
    await h.agent(host, { uptime: actions.uptime }, { stateDir, extra: { discovery: { enabled: false } } });
    await ha.wait(
      (m) =>
        ha.messages.indexOf(m) >= before &&
        m.topic === `homeassistant/button/${host}/run_uptime/config` &&
        m.text === '',
    );
    await ha.wait(
      (m) =>
        ha.messages.indexOf(m) >= before &&
        m.topic === `homeassistant/binary_sensor/${host}/connectivity/config` &&
        m.text === '',
    );
  });
});

describe('discovery read back from the broker', () => {
  /** Waits until a new subscriber is sent `n` retained discovery configs of `host`; returns their topics. */
  const retainedConfigs = async (host: string, n: number, what: string): Promise<string[]> => {
    const late = await TestClient.connect(h.url);
    await late.sub(`homeassistant/+/${host}/+/config`);
    const topics = () =>
      [...new Set(late.messages.filter((m) => m.packet.retain && m.text !== '').map((m) => m.topic))].sort();
    try {
      await until(() => topics().length >= n, 5000, what);
      return topics();
    } finally {
      await late.end();
    }
  };

  it('an agent restarted against a broker that lost its retained configs publishes them all again', async () => {
    const host = 'disco-lost';
    const stateDir = `${tempDir()}/state`;
    const actions = {
      restart_service: {
        argv: ['true', '{unit}'],
        params: { unit: { type: 'enum', values: ['nginx', 'sshd'] } },
        button: true,
      },
    };
    const first = (await h.agent(host, actions, { stateDir })).agent;
    const record = Object.keys(
      JSON.parse(readFileSync(`${stateDir}/discovery.json`, 'utf8')) as object,
    ).sort();
    expect(record.length).toBeGreaterThan(15);
    expect(await retainedConfigs(host, record.length, 'the first publication')).toEqual(record);
    await h.stopAgent(first);

    // While the agent is down the broker loses them (a fresh broker, one without persistence restarted).
    const wiper = await TestClient.connect(h.url);
    for (const topic of record) await wiper.pub(topic, '', { retain: true });
    await wiper.end();

    // Same state_dir: its record says everything was published; the read-back says otherwise. Counted:
    const again = (await h.agent(host, actions, { stateDir })).agent;
    expect(await retainedConfigs(host, record.length, 'the configs republished')).toEqual(record);
    await h.stopAgent(again);

    // Removing the action clears its configs and its param's retained value.
    const before = ha.messages.length;
    await h.agent(host, { uptime: { argv: ['uptime'] } }, { stateDir });
    const value = await ha.wait(
      (m) => ha.messages.indexOf(m) >= before && m.topic === `homelab/${host}/param/restart_service/unit`,
      5000,
      'the removed param value cleared',
    );
    expect(value.text).toBe('');
    const kept = record.filter((t) => !t.includes('restart_service'));
    const left = await retainedConfigs(host, kept.length + 1, 'the uptime stats config');
    expect(left.filter((t) => t.includes('restart_service'))).toEqual([]);
  });
});

describe('params from the dashboard', () => {
  it('a select and a number change what the button runs; a bad value is refused and the old one shown', async () => {
    const host = 'disco-params';
    const dir = tempDir();
    const bin = fakeBin(dir, 'systemctl');
    await h.agent(
      host,
      {
        restart_service: {
          argv: ['systemctl', 'restart', '{unit}', '--lines={lines}'],
          params: {
            unit: { type: 'enum', values: ['nginx', 'sshd'] },
            lines: { type: 'integer', min: 1, max: 50, default: 10 },
          },
          button: true,
        },
      },
      { binDir: bin },
    );
    const sel = await ha.waitJson<Record<string, unknown>>(
      `homeassistant/select/${host}/param_restart_service-unit/config`,
    );
    expect(sel).toMatchObject({
      options: ['nginx', 'sshd'],
      command_topic: `homelab/${host}/param/restart_service/unit/set`,
    });
    const num = await ha.waitJson<Record<string, unknown>>(
      `homeassistant/number/${host}/param_restart_service-lines/config`,
    );
    expect(num).toMatchObject({ min: 1, max: 50, step: 1 });
    // Initial values: the first enum value, the integer's default.
    expect((await ha.wait((m) => m.topic === `homelab/${host}/param/restart_service/unit`)).text).toBe(
      'nginx',
    );
    expect((await ha.wait((m) => m.topic === `homelab/${host}/param/restart_service/lines`)).text).toBe('10');

    expect((await h.press(host, 'restart_service', 'PRESS')).status).toBe('succeeded');
    expect(calls(dir).at(-1)).toBe('systemctl restart nginx --lines=10');

    const unitSet = ha.next((m) => m.topic === `homelab/${host}/param/restart_service/unit`);
    await ha.pub(`homelab/${host}/param/restart_service/unit/set`, 'sshd');
    expect((await unitSet).text).toBe('sshd');
    const linesSet = ha.next((m) => m.topic === `homelab/${host}/param/restart_service/lines`);
    await ha.pub(`homelab/${host}/param/restart_service/lines/set`, '25.0'); // HA's number may send a float
    expect((await linesSet).text).toBe('25');
    expect((await h.press(host, 'restart_service')).status).toBe('succeeded');
    expect(calls(dir).at(-1)).toBe('systemctl restart sshd --lines=25');

    const refused = ha.next((m) => m.topic === `homelab/${host}/param/restart_service/unit`);
    await ha.pub(`homelab/${host}/param/restart_service/unit/set`, 'rm -rf /');
    expect((await refused).text).toBe('sshd');
    expect((await h.press(host, 'restart_service')).status).toBe('succeeded');
    expect(calls(dir).at(-1)).toBe('systemctl restart sshd --lines=25');
  });
});

describe('a persistent session from an older version', () => {
  it('still gets every subscription this version needs (the agent subscribes even when a session is present)', async () => {
    const host = 'disco-old';
    // An "older agent" left a session holding only the command subscription.
    const old = await TestClient.connect(h.url, {
      clientId: `homelab-cmd-${host}`,
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    await old.sub(`homelab/${host}/cmd/+`);
    await old.client.endAsync();
    await h.agent(host, { uptime: { argv: ['uptime'], button: true } });
    await ha.wait((m) => m.topic === `homeassistant/button/${host}/run_uptime/config`);
    const before = ha.messages.length;
    await ha.pub('homeassistant/status', 'online');
    await ha.wait(
      (m) => ha.messages.indexOf(m) >= before && m.topic === `homeassistant/button/${host}/run_uptime/config`,
      5000,
      'republish after birth',
    );
  });
});

describe('homelab-cmd discovery', () => {
  it('prints the full set for a config, and --clear empties those topics on the broker', async () => {
    const { runCli } = await import('../helpers/agent.js');
    const { writeConfig } = await import('../helpers/fixtures.js');
    const file = writeConfig(tempDir(), {
      host: 'disco-cli',
      actions: { restart_dns: { argv: ['true'], button: true, name: 'Restart DNS' } },
    });
    const printed = await runCli(['discovery', '--config', file]);
    expect(printed.code).toBe(0);
    const topics = printed.stdout.split('\n').filter((l) => l.startsWith('homeassistant/'));
    expect(topics).toContain('homeassistant/button/disco-cli/run_restart_dns/config');
    expect(topics).toContain('homeassistant/binary_sensor/disco-cli/connectivity/config');
    // 17 fixed and per-button entities, the action's stats_restart_dns sensor, and (a host with
    // actions) the Running sensor and the Cancel button.
    expect(topics.length).toBe(20);
    expect(topics).toContain('homeassistant/button/disco-cli/cancel/config');
    expect(topics).toContain('homeassistant/sensor/disco-cli/current_run/config');
    // Publish them as an agent would, then clear them.
    await h.agent('disco-cli', { restart_dns: { argv: ['true'], button: true, name: 'Restart DNS' } });
    await ha.wait(
      (m) => m.topic === 'homeassistant/button/disco-cli/run_restart_dns/config' && m.text !== '',
    );
    const before = ha.messages.length;
    const cleared = await runCli(['discovery', '--config', file, '--clear', '--url', h.url]);
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toMatch(/cleared 20 discovery topic\(s\) of host disco-cli/);
    for (const t of topics)
      await ha.wait(
        (m) => ha.messages.indexOf(m) >= before && m.topic === t && m.text === '',
        5000,
        `${t} cleared`,
      );
  });
});
