/**
 * Command probes and switches end to end (issue 20 items 1–2), through the embedded broker and through a
 * real Mosquitto started here on a free port: a real agent runs the example config's systemd-unit switch
 * and temperature sensor as real child processes — a fake systemctl, sudo and cat on the test PATH
 * stand in for systemd, sudo rules and /sys/class/thermal, which cannot exist here.
 * Home Assistant is played from its discovery payloads: the switch's command is its command_template
 * rendered as HA renders it, published where HA would publish it.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import pino from 'pino';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import type { RunningBroker } from '../../src/broker/broker.js';
import { startTestBroker } from '../helpers/harness.js';
import { parseConfig, type Config } from '../../src/config/load.js';
import { buildDiscovery } from '../../src/core/discovery.js';
import type { ProbeState, Result, SwitchState } from '../../src/core/formats.js';
import { VERSION } from '../../src/version.js';
import { exampleWithSwitches } from '../helpers/example-switches.js';
import { calls, fakeBin, tempDir, testPath } from '../helpers/fixtures.js';
import { renderCommandTemplate } from '../helpers/ha-template.js';
import { MOSQUITTO, reportMissing, startMosquitto } from '../helpers/mosquitto.js';
import { TestClient, type Msg } from '../helpers/mqtt.js';

if (!MOSQUITTO) reportMissing('mosquitto', 'command probes and switches through Mosquitto');

const THERMAL = '/sys/class/thermal/thermal_zone0/temp';

interface BrokerUnderTest {
  url: string;
  close(): Promise<void>;
}

const BROKERS: [string, boolean, () => Promise<BrokerUnderTest>][] = [
  [
    'the embedded broker',
    true,
    async () => {
      const b: RunningBroker = await startTestBroker();
      return { url: `mqtt://127.0.0.1:${b.port}`, close: () => b.close() };
    },
  ],
  [
    'Mosquitto',
    MOSQUITTO !== undefined,
    async () => {
      const m = await startMosquitto();
      return { url: m.url, close: () => m.stop() };
    },
  ],
];

describe.each(BROKERS)('through %s', (label, available, start) => {
  const host = label === 'Mosquitto' ? 'sw-mosq' : 'sw-aedes';
  const P = `homelab/${host}`;
  let broker: BrokerUnderTest;
  let ha: TestClient;
  let dir = '';
  let config: Config;
  let agent: Agent | undefined;
  const logs: Record<string, unknown>[] = [];

  const startAgent = async (): Promise<Agent> => {
    const log = pino(
      { level: 'debug' },
      { write: (s: string) => logs.push(JSON.parse(s) as Record<string, unknown>) },
    );
    const a = new Agent(config, log, { backoff: { initialMs: 50, maxMs: 500 } });
    a.start();
    await a.waitConnected(10_000);
    return a;
  };
  const switchState = (pred: (s: SwitchState) => boolean, after = 0, ms = 20_000) =>
    ha
      .wait(
        (m) =>
          ha.messages.indexOf(m) >= after &&
          m.topic === `${P}/switch/nginx` &&
          m.text !== '' &&
          pred(JSON.parse(m.text) as SwitchState),
        ms,
        'a switch state',
      )
      .then((m) => JSON.parse(m.text) as SwitchState);
  const probeState = (name: string, pred: (s: ProbeState) => boolean, ms = 20_000) =>
    ha.waitJson<ProbeState>(`${P}/probe/${name}`, pred, ms);
  const discovery = (component: string, object: string) =>
    ha
      .wait((m) => m.topic === `homeassistant/${component}/${host}/${object}/config` && m.text !== '')
      .then((m) => JSON.parse(m.text) as Record<string, unknown>);
  /** What HA does when the switch is flipped: render command_template with the payload, publish it. */
  const flip = async (to: 'ON' | 'OFF', nowMs = Date.now()): Promise<Result> => {
    const sw = await discovery('switch', 'switch_nginx');
    const value = String(to === 'ON' ? sw.payload_on : sw.payload_off);
    const text = renderCommandTemplate(String(sw.command_template), { value, nowMs });
    const before = ha.messages.length;
    await ha.pub(String(sw.command_topic), text, { qos: 1, retain: false });
    const m = await ha.wait(
      (x) =>
        ha.messages.indexOf(x) >= before &&
        x.topic === `${P}/result` &&
        x.text !== '' &&
        (JSON.parse(x.text) as Result).action === value,
      20_000,
      `the result of ${value}`,
    );
    return JSON.parse(m.text) as Result;
  };

  beforeAll(async () => {
    if (!available) return;
    broker = await start();
    ha = await TestClient.connect(broker.url);
    await ha.sub('homeassistant/#', `${P}/#`);
    dir = tempDir();
    writeFileSync(`${dir}/temp`, '45312\n');
    fakeBin(dir, 'cat', `if [ "$1" = ${THERMAL} ]; then exec /bin/cat "${dir}/temp"; fi\nexec /bin/cat "$@"`);
    // systemd's exit codes: is-active 0 when active, 3 when not; a failed stop 5 with a sentence on stderr.
    const bin = fakeBin(
      dir,
      'systemctl',
      `case "$1" in
  is-active) [ -e "${dir}/nginx.on" ] && exit 0; exit 3;;
  start) [ -e "${dir}/noop" ] && exit 0; touch "${dir}/nginx.on";;
  stop) if [ -e "${dir}/broken" ]; then echo "Job for nginx.service failed because the control process exited with error code." >&2; exit 5; fi; rm -f "${dir}/nginx.on";;
esac`,
    );
    // sudo -n … -- COMMAND: the fake runs COMMAND (the example's actions are sudo: true).
    fakeBin(dir, 'sudo', 'while [ "$1" != "--" ]; do shift; done; shift; exec "$@"');
    const example = exampleWithSwitches();
    const probes = example.probes as Record<string, Record<string, unknown>>;
    config = parseConfig(
      stringify({
        host,
        state_dir: `${dir}/state`,
        mqtt: { url: broker.url },
        execution: { enabled: true, path: testPath(bin) },
        // As the example writes them: the systemd-unit switch and the temperature sensor.
        actions: { start_nginx: example.actions!.start_nginx, stop_nginx: example.actions!.stop_nginx },
        probes: {
          // A long interval: after a flip, the state comes from the check the action's result triggers.
          nginx_active: { ...probes.nginx_active, interval: '10m' },
          cpu_temp: { ...probes.cpu_temp, interval: '1s' },
          slow: { type: 'command', argv: ['sleep', '5'], parse: 'number', interval: '1s', timeout: '300ms' },
        },
        switches: { nginx: example.switches!.nginx },
      }),
      `${dir}/agent.yaml`,
      {},
    );
    expect(config.actions.start_nginx?.sudo).toBe(true);
    agent = await startAgent();
  });

  afterAll(async () => {
    if (!available) return;
    await agent?.stop();
    await ha?.end();
    await broker?.close();
  });

  it.skipIf(!available)(
    'publishes the discovery of the sensor and the switch, exactly as built, on the host device',
    async () => {
      const built = buildDiscovery({
        host,
        prefix: 'homelab',
        discoveryPrefix: 'homeassistant',
        version: VERSION,
        actions: config.actions,
        probes: config.probes,
        switches: config.switches,
      });
      for (const m of built.filter((x) => /probe_cpu_temp|switch_nginx|probe_slow/.test(x.topic))) {
        const got = await ha.wait((x) => x.topic === m.topic && x.text !== '');
        expect(JSON.parse(got.text)).toEqual(m.payload);
      }
      expect(await discovery('sensor', 'probe_cpu_temp')).toMatchObject({
        name: 'CPU temperature',
        device_class: 'temperature',
        unit_of_measurement: '°C',
        state_topic: `${P}/probe/cpu_temp`,
        device: { identifiers: [`homelab_cmd_${host}`] },
      });
      expect(await discovery('switch', 'switch_nginx')).toMatchObject({
        command_topic: `${P}/cmd`,
        state_topic: `${P}/switch/nginx`,
        optimistic: false,
        payload_on: 'start_nginx',
        payload_off: 'stop_nginx',
      });
    },
  );

  it.skipIf(!available)(
    'the temperature sensor reads /sys/class/thermal through the fake cat, in °C',
    async () => {
      const s = await probeState('cpu_temp', (x) => x.ok);
      expect(s).toMatchObject({ type: 'command', value: 45.3, unit: '°C', error: null, exit_code: 0 });
    },
  );

  it.skipIf(!available)(
    'a slow probe reads as an error state, logged once however many checks fail',
    async () => {
      const first = await probeState('slow', () => true);
      expect(first).toMatchObject({ ok: false, value: null, exit_code: null });
      expect(first.error).toBe(
        "sleep did not finish within 300ms and was killed — raise the probe's timeout, or make the command quicker",
      );
      // Two more failed checks after the first, a second apart.
      const seen = () => ha.on(`${P}/probe/slow`).length;
      const n = seen();
      await ha.next((m) => m.topic === `${P}/probe/slow` && seen() >= n + 2, 15_000, 'two more checks');
      const failing = logs.filter((l) => l.probe === 'slow' && l.msg === 'probe failing');
      expect(failing).toHaveLength(1);
    },
  );

  it.skipIf(!available)(
    'the switch is off, flips on only once the probe confirms, and off again',
    async () => {
      expect((await switchState(() => true)).state).toBe('OFF');
      const before = ha.messages.length;
      const on = await flip('ON');
      expect(on.status).toBe('succeeded');
      const s = await switchState((x) => x.state === 'ON', before);
      expect(s).toMatchObject({
        state: 'ON',
        error: null,
        last_action: 'start_nginx',
        last_status: 'succeeded',
        last_id: on.id,
      });
      // Never ON before the action's result: the state follows the probe, not the click.
      const resultAt = ha.messages.findIndex(
        (m) => m.topic === `${P}/result/${on.id}` && m.text.includes('succeeded'),
      );
      const firstOn = ha.messages.findIndex(
        (m, i) =>
          i >= before &&
          m.topic === `${P}/switch/nginx` &&
          (JSON.parse(m.text) as SwitchState).state === 'ON',
      );
      expect(resultAt).toBeGreaterThanOrEqual(0);
      expect(firstOn).toBeGreaterThan(resultAt);
    },
  );

  it.skipIf(!available)(
    'an action that succeeds without changing anything leaves the switch as the probe reads it',
    async () => {
      writeFileSync(`${dir}/noop`, '');
      rmSync(`${dir}/nginx.on`, { force: true });
      const before = ha.messages.length;
      try {
        const r = await flip('ON');
        expect(r.status).toBe('succeeded');
        const s = await switchState((x) => x.last_id === r.id, before);
        expect(s.state).toBe('OFF');
      } finally {
        rmSync(`${dir}/noop`);
      }
      await flip('ON');
      await switchState((x) => x.state === 'ON', before);
    },
  );

  it.skipIf(!available)('a failed turn_off shows as the error attribute; the switch stays on', async () => {
    writeFileSync(`${dir}/broken`, '');
    const before = ha.messages.length;
    try {
      const r = await flip('OFF');
      expect(r).toMatchObject({ status: 'failed', exit_code: 5, error_code: 'exit_nonzero' });
      const s = await switchState((x) => x.last_id === r.id, before);
      expect(s.state).toBe('ON');
      expect(s.error).toMatch(/^turning off \(stop_nginx\) ended failed: systemctl exited with code 5/);
      expect(existsSync(`${dir}/nginx.on`)).toBe(true);
    } finally {
      rmSync(`${dir}/broken`);
    }
  });

  it.skipIf(!available)(
    'a switch command that arrives late is refused expired, and shows as the error',
    async () => {
      const ran = calls(dir).length;
      const before = ha.messages.length;
      // Flipped two minutes ago by HA's clock: its ttl of 60 s has passed.
      const r = await flip('OFF', Date.now() - 120_000);
      expect(r).toMatchObject({ status: 'rejected', error_code: 'expired' });
      const s = await switchState((x) => x.last_id === r.id, before);
      expect(s).toMatchObject({ state: 'ON', last_status: 'rejected' });
      expect(s.error).toMatch(/^turning off \(stop_nginx\) ended rejected: /);
      // Nothing ran but the probes: the state check it triggered, and the temperature sensor's cat.
      expect(
        calls(dir)
          .slice(ran)
          .filter((c) => !/^(systemctl is-active|cat) /.test(c)),
      ).toEqual([]);
    },
  );

  it.skipIf(!available)('a flood of switch requests checks the probe at most once a second', async () => {
    const sw = await discovery('switch', 'switch_nginx');
    const ran = calls(dir).length;
    const t0 = performance.now();
    const before = ha.messages.length;
    const stale = renderCommandTemplate(String(sw.command_template), {
      value: String(sw.payload_off),
      nowMs: Date.now() - 120_000,
    });
    for (let i = 0; i < 30; i++) await ha.pub(String(sw.command_topic), stale);
    // The 30 refusals, then the state published after the last of them.
    await ha.wait(
      () =>
        ha.messages.slice(before).filter((m) => m.topic === `${P}/result` && m.text.includes('"expired"'))
          .length === 30,
      20_000,
      'thirty expired results',
    );
    const last = JSON.parse(ha.messages.filter((m) => m.topic === `${P}/result`).at(-1)!.text) as Result;
    await switchState((x) => x.last_id === last.id, before);
    const checks = calls(dir)
      .slice(ran)
      .filter((c) => c.startsWith('systemctl is-active')).length;
    const seconds = (performance.now() - t0) / 1000;
    expect(checks).toBeGreaterThanOrEqual(1);
    expect(checks).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
  });

  it.skipIf(!available)('the actions ran through sudo, as the example says; the probe did not', () => {
    const log = calls(dir);
    expect(log).toContain('systemctl start nginx.service');
    expect(log.filter((c) => c.startsWith('sudo ')).length).toBeGreaterThan(0);
    expect(log.filter((c) => c.startsWith('sudo ') && c.includes('is-active'))).toEqual([]);
  });

  it.skipIf(!available)(
    'stays on across an agent restart: retained, and never flipped by the new start',
    async () => {
      await agent?.stop();
      agent = undefined;
      // A client arriving while the agent is down sees the retained state: still ON.
      const late = await TestClient.connect(broker.url);
      try {
        await late.sub(`${P}/switch/nginx`);
        const held = await late.waitJson<SwitchState>(`${P}/switch/nginx`);
        expect(held.state).toBe('ON');
      } finally {
        await late.end();
      }
      const before = ha.messages.length;
      agent = await startAgent();
      const again = await switchState(() => true, before);
      expect(again.state).toBe('ON');
      // Everything published since the restart said ON.
      const since = ha.messages
        .slice(before)
        .filter((m: Msg) => m.topic === `${P}/switch/nginx` && m.text !== '');
      expect(since.map((m) => (JSON.parse(m.text) as SwitchState).state)).toEqual(since.map(() => 'ON'));
    },
  );
});
