import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { parseConfig, type Config } from '../../src/config/load.js';
import type { ActionConfig, ParamSpec } from '../../src/config/schema.js';
import {
  buildDiscovery,
  BUTTON_COMMAND_TEMPLATE,
  BUTTON_TTL_S,
  exposedParams,
  initialParamValue,
  HA_MAX_STATE,
  type DiscoveryMessage,
} from '../../src/core/discovery.js';
import { parseDelivery } from '../../src/core/request.js';
import { staleness } from '../../src/core/freshness.js';
import { renderCommandTemplate } from '../helpers/ha-template.js';
import { makeResult, type ResultStatus } from '../../src/core/result.js';
import { VERSION } from '../../src/version.js';

// Table tests over buildDiscovery's output (docs/mqtt-api.md § Home Assistant discovery), plus the
// HA 2026 rules the contract leans on: default_entity_id (object_id is ignored since 2026.4),
// names without the device name, no entity_category "config" on sensors, states ≤ 255 characters.

const COMPONENTS = ['button', 'binary_sensor', 'sensor', 'select', 'number', 'update', 'switch'] as const;

/** Button, enum and integer params, a string param with a default, a non-button action and a custom prefix. */
const FULL = (host: string, extra = ''): string => `
host: ${host}
${extra}
actions:
  restart_dns:
    argv: [pihole, restartdns]
    button: true
    name: Restart DNS
    device_class: restart
  clear_logs:
    argv: [journalctl, "--vacuum-time={days}d"]
    params:
      days: { type: integer, min: 1, max: 365, default: 14 }
    button: true
    name: Clear old logs
  set_mode:
    argv: [tool, "{mode}", "{level}", "{offset}"]
    params:
      mode: { type: enum, values: [fast, safe, off] }
      level: { type: integer, min: 3, max: 9 }
      offset: { type: integer }
    button: true
  echo:
    argv: [echo, "{message}"]
    params:
      message: { type: string, pattern: "^[a-z ]{1,20}$", default: hello }
    button: true
    name: Echo
  restart_service:
    argv: [systemctl, "{mode}", "{unit}"]
    params:
      unit: { type: string, pattern: "^[a-z.]{1,64}$" }
      mode: { type: enum, values: [restart, reload] }
  apply_updates:
    steps: [[apt-get, update], [apt-get, -y, upgrade]]
    device_class: update
`;

const MINIMAL = (host: string): string => `host: ${host}\n`;

interface Case {
  label: string;
  yaml: string;
  config: Config;
  messages: DiscoveryMessage[];
}

function load(yaml: string): Config {
  return parseConfig(yaml, '/nonexistent/agent.yaml', {});
}

function build(config: Config): DiscoveryMessage[] {
  return buildDiscovery({
    host: config.host,
    prefix: config.mqtt.prefix,
    discoveryPrefix: config.discovery.prefix,
    version: VERSION,
    actions: config.actions,
    probes: config.probes,
    updates: config.updates,
    switches: config.switches,
  });
}

function makeCase(label: string, yaml: string): Case {
  const config = load(yaml);
  return { label, yaml, config, messages: build(config) };
}

const CASES: Case[] = [
  makeCase('pihole-1 (full)', FULL('pihole-1')),
  makeCase(
    'nas (full, custom prefixes)',
    FULL('nas', 'mqtt: { prefix: lab/agents }\ndiscovery: { prefix: ha }'),
  ),
  makeCase('media_server (minimal)', MINIMAL('media_server')),
  makeCase(
    'router0 (example config actions)',
    `host: router0
actions:
  uptime: { argv: [uptime], button: true, name: Uptime, pattern: "^uptime$" }
  disk_usage: { argv: [df, -h, /], button: true, name: Disk usage }
`,
  ),
  // Every probe kind: a binary_sensor each, and a sensor for a latency or a disk's used share.
  makeCase(
    'pihole-1 (probes)',
    `host: pihole-1
probes:
  web: { type: http, url: "http://127.0.0.1/admin/", name: Admin page }
  dns_port: { type: tcp, host: 127.0.0.1, port: 53 }
  gateway: { type: ping, host: 192.168.1.1 }
  ftl: { type: service, unit: pihole-FTL.service }
  root: { type: disk, path: /, warn_percent: 90 }
  lighttpd: { type: process, process: lighttpd }
`,
  ),
  // Command probes of every parse kind, and switches on two of them (docs/configuration.md § switches).
  makeCase(
    'pi-4 (command probes and switches)',
    `host: pi-4
actions:
  start_nginx: { argv: [systemctl, start, nginx.service], sudo: true }
  stop_nginx: { argv: [systemctl, stop, nginx.service], sudo: true }
  blocking_on: { argv: [pihole, enable], sudo: true }
  blocking_off: { argv: [pihole, disable], sudo: true }
probes:
  cpu_temp: { type: command, argv: [cat, /sys/class/thermal/thermal_zone0/temp], parse: number, scale: 0.001, unit: °C, device_class: temperature, state_class: measurement, name: CPU temperature }
  mode: { type: command, argv: [tool, mode], parse: enum, options: [eco, boost] }
  ups: { type: command, argv: [ups-status], parse: json, unit: "%", device_class: battery }
  nginx_active: { type: command, argv: [systemctl, is-active, --quiet, nginx.service], parse: exit_code, device_class: running }
  blocking: { type: command, argv: [pihole, status], parse: match, pattern: "blocking is enabled", sudo: true }
switches:
  nginx: { turn_on: start_nginx, turn_off: stop_nginx, probe: nginx_active, name: Nginx }
  blocking: { turn_on: blocking_on, turn_off: blocking_off, probe: blocking, name: Ad blocking, device_class: switch }
`,
  ),
  // OS updates (docs/updates.md): an update entity whose Install presses apply_updates, and the reboot flag.
  makeCase(
    'pi-3 (updates)',
    `host: pi-3
actions:
  apply_updates: { argv: [apt-get, -y, -o, "APT::Status-Fd=1", upgrade], sudo: true }
updates: { enabled: true, install_action: apply_updates }
`,
  ),
];

interface Row {
  label: string;
  config: Config;
  msg: DiscoveryMessage;
  component: string;
  object: string;
  p: Record<string, unknown>;
}

const P = (c: Config): string => `${c.mqtt.prefix}/${c.host}`;

/** One row per discovery message of every case; `object` is the 4th topic level. */
const ROWS: Row[] = CASES.flatMap(({ label, config, messages }) =>
  messages.map((msg) => {
    const levels = msg.topic.slice(config.discovery.prefix.length + 1).split('/');
    return {
      label: `${label}: ${msg.topic}`,
      config,
      msg,
      component: levels[0] ?? '',
      object: levels[2] ?? '',
      p: msg.payload,
    };
  }),
);

const rowsOf = (pred: (r: Row) => boolean): [string, Row][] => ROWS.filter(pred).map((r) => [r.label, r]);
const ALL = rowsOf(() => true);
const SENSORS = rowsOf((r) => r.component === 'sensor');

it('the tables are not empty: every component appears', () => {
  const seen = new Set(ROWS.map((r) => r.component));
  expect([...seen].sort()).toEqual([...COMPONENTS].sort());
  expect(ROWS.length).toBeGreaterThan(40);
});

describe('topic shape: <discovery prefix>/<component>/<host>/<object>/config', () => {
  it.each(ALL)('%s', (_l, { config, msg, component, object }) => {
    expect(msg.topic).toBe(`${config.discovery.prefix}/${component}/${config.host}/${object}/config`);
    expect(COMPONENTS).toContain(component);
    // The object id of a discovery topic is [a-zA-Z0-9_-]+ in HA.
    expect(object).toMatch(/^[a-zA-Z0-9_-]+$/);
  });
});

describe('unique_id', () => {
  it.each(ALL)('%s is homelab_cmd_<host>_<object>', (_l, { config, object, p }) => {
    expect(p.unique_id).toBe(`homelab_cmd_${config.host}_${object}`);
  });

  it.each(CASES.map((c) => [c.label, c] as const))(
    '%s: unique across the set, and topics too',
    (_l, { messages }) => {
      const ids = messages.map((m) => m.payload.unique_id);
      expect(new Set(ids).size).toBe(ids.length);
      const topics = messages.map((m) => m.topic);
      expect(new Set(topics).size).toBe(topics.length);
    },
  );

  it.each(CASES.map((c) => [c.label, c] as const))(
    '%s: identical across two builds from a re-read config (stable across restarts)',
    (_l, c) => {
      const again = build(load(c.yaml));
      expect(again.map((m) => m.payload.unique_id)).toEqual(c.messages.map((m) => m.payload.unique_id));
    },
  );

  it.each([
    ['pihole-1', 'pihole-2'],
    ['pihole-1', 'nas'],
    ['nas', 'media_server'],
    ['a', 'ab'],
    ['x-1', 'x_1'],
  ])('hosts %s and %s share no unique_id and no device identifier', (h1, h2) => {
    const [m1, m2] = [build(load(FULL(h1))), build(load(FULL(h2)))];
    const ids1 = new Set(m1.map((m) => m.payload.unique_id));
    expect(m2.filter((m) => ids1.has(m.payload.unique_id))).toEqual([]);
    const dev = (ms: DiscoveryMessage[]) =>
      new Set(ms.flatMap((m) => (m.payload.device as { identifiers: string[] }).identifiers));
    const d1 = dev(m1);
    expect([...dev(m2)].filter((d) => d1.has(d))).toEqual([]);
  });

  // Regression: the object of a param entity was `param_<action>_<param>`,
  // and both names may contain "_", so action "a_b" param "c" and action "a" param "b_c" give the
  // same object, topic and unique_id — the second entity overwrites the first in HA.
  it('two exposed params of one host never share a unique_id, even when names contain "_"', () => {
    // Such a config is refused at load now (their entity ids clash: test/unit/entity-ids.test.ts), so
    // the two actions come from two configs: the unique ids must differ whatever reaches discovery.
    const one = load(`host: pihole-1
actions:
  set_a_b:
    argv: [tool, "{c}"]
    params: { c: { type: enum, values: [x, y] } }
    button: true
`);
    const two = load(`host: pihole-1
actions:
  set_a:
    argv: [tool, "{b_c}"]
    params: { b_c: { type: enum, values: [x, y] } }
    button: true
`);
    const msgs = build({ ...one, actions: { ...one.actions, ...two.actions } });
    const ids = msgs.map((m) => m.payload.unique_id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  // KNOWN CONTRACT LIMIT: `homelab_cmd_H_<object>` with "_" allowed in H is ambiguous across hosts:
  // host "nas" with action "run_backup" → object run_run_backup → homelab_cmd_nas_run_run_backup;
  // host "nas_run" with action "backup" → object run_backup → homelab_cmd_nas_run_run_backup.
  it.fails('hosts whose ids differ by an "_<word>" suffix never share a unique_id', () => {
    const a = build(load('host: nas\nactions:\n  run_backup: { argv: [backup], button: true }\n'));
    const b = build(load('host: nas_run\nactions:\n  backup: { argv: [backup], button: true }\n'));
    const ids = new Set(a.map((m) => m.payload.unique_id));
    expect(b.filter((m) => ids.has(m.payload.unique_id))).toEqual([]);
  });
});

describe('availability: only while P/H/status is online, except connectivity and last result', () => {
  const WITHOUT = new Set(['binary_sensor/connectivity', 'sensor/last_result']);
  // The Cancel button is available only while something runs as well (test/unit/discovery-running.test.ts).
  const OWN = new Set(['button/cancel']);
  it.each(
    rowsOf((r) => !WITHOUT.has(`${r.component}/${r.object}`) && !OWN.has(`${r.component}/${r.object}`)),
  )('%s has availability_topic P/H/status', (_l, { config, p }) => {
    expect(p.availability_topic).toBe(`${P(config)}/status`);
    expect(p.payload_available).toBe('online');
    expect(p.payload_not_available).toBe('offline');
    expect(p).not.toHaveProperty('availability');
  });

  it.each(rowsOf((r) => WITHOUT.has(`${r.component}/${r.object}`)))(
    '%s has no availability (HA shows "disconnected" / keeps the last result)',
    (_l, { p }) => {
      for (const key of [
        'availability_topic',
        'availability',
        'availability_template',
        'payload_available',
        'payload_not_available',
      ]) {
        expect(p).not.toHaveProperty(key);
      }
    },
  );

  it.each(CASES.map((c) => [c.label, c] as const))(
    '%s: the connectivity binary_sensor and the last-result sensor both exist',
    (_l, { config, messages }) => {
      const conn = messages.find((m) =>
        m.topic.endsWith('/binary_sensor/' + config.host + '/connectivity/config'),
      );
      expect(conn?.payload).toMatchObject({
        state_topic: `${P(config)}/status`,
        payload_on: 'online',
        payload_off: 'offline',
        device_class: 'connectivity',
      });
      const last = messages.find((m) => m.topic.endsWith('/sensor/' + config.host + '/last_result/config'));
      expect(last?.payload).toMatchObject({
        state_topic: `${P(config)}/result`,
        json_attributes_topic: `${P(config)}/result`,
      });
    },
  );
});

describe('device and origin blocks', () => {
  it.each(ALL)('%s', (_l, { config, p }) => {
    const device = p.device as Record<string, unknown>;
    expect(device.identifiers).toEqual([`homelab_cmd_${config.host}`]);
    expect(device.name).toBe(config.host);
    expect(device.model).toEqual(expect.any(String));
    expect(device.model).not.toBe('');
    expect(device.sw_version).toBe(VERSION);
    const origin = p.origin as Record<string, unknown>;
    expect(origin.name).toBe('homelab-cmd');
  });

  it.each(CASES.map((c) => [c.label, c] as const))(
    '%s: every entity carries the same device block',
    (_l, { messages }) => {
      const blocks = new Set(messages.map((m) => JSON.stringify(m.payload.device)));
      expect(blocks.size).toBe(1);
    },
  );
});

/** Every key at any depth. */
function keysDeep(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(keysDeep);
  if (typeof value === 'object' && value !== null)
    return Object.entries(value).flatMap(([k, v]) => [k, ...keysDeep(v)]);
  return [];
}

// homeassistant/helpers/config_validation.py valid_entity_id: no leading, trailing or double "_".
const HA_ENTITY_ID = /^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$/;

describe('entity ids: no object_id (ignored since HA 2026.4), default_entity_id "<component>.<slug>"', () => {
  it.each(ALL)('%s', (_l, { config, component, object, p }) => {
    expect(keysDeep(p)).not.toContain('object_id');
    expect(p.default_entity_id).toEqual(expect.stringMatching(new RegExp(`^${component}\\.`)));
    expect(p.default_entity_id).toMatch(HA_ENTITY_ID);
    expect(p.default_entity_id).toBe(`${component}.${`${config.host}_${object}`.replace(/-/g, '_')}`);
  });

  it.each(CASES.map((c) => [c.label, c] as const))(
    '%s: default_entity_ids are unique',
    (_l, { messages }) => {
      const ids = messages.map((m) => m.payload.default_entity_id);
      expect(new Set(ids).size).toBe(ids.length);
    },
  );
});

// HA's sensor rules (homeassistant/components/sensor/const.py DEVICE_CLASS_UNITS and
// DEVICE_CLASS_STATE_CLASSES), for the device classes a homelab agent could use.
const SENSOR_DEVICE_CLASSES: Record<string, { units: (string | undefined)[]; stateClasses: string[] }> = {
  duration: {
    units: ['d', 'h', 'min', 's', 'ms', 'µs'],
    stateClasses: ['measurement', 'total', 'total_increasing'],
  },
  data_size: {
    units: ['bit', 'kbit', 'Mbit', 'Gbit', 'B', 'kB', 'MB', 'GB', 'TB', 'KiB', 'MiB', 'GiB', 'TiB'],
    stateClasses: ['measurement', 'total', 'total_increasing'],
  },
  timestamp: { units: [undefined], stateClasses: [] },
  enum: { units: [undefined], stateClasses: [] },
  battery: { units: ['%'], stateClasses: ['measurement'] },
  humidity: { units: ['%'], stateClasses: ['measurement'] },
  temperature: { units: ['°C', '°F', 'K'], stateClasses: ['measurement'] },
};
const STATE_CLASSES = ['measurement', 'total', 'total_increasing', 'measurement_angle'];
const BINARY_SENSOR_DEVICE_CLASSES = ['connectivity', 'problem', 'running', 'update'];
const BUTTON_DEVICE_CLASSES = ['restart', 'identify', 'update'];

describe('device_class / state_class / unit combinations HA accepts', () => {
  it.each(SENSORS)('%s', (_l, { p }) => {
    const dc = p.device_class as string | undefined;
    const sc = p.state_class as string | undefined;
    const unit = p.unit_of_measurement as string | undefined;
    if (sc !== undefined) expect(STATE_CLASSES).toContain(sc);
    if (dc !== undefined) {
      const rule = SENSOR_DEVICE_CLASSES[dc];
      expect(rule, `device_class ${dc}`).toBeDefined();
      expect(rule!.units).toContain(unit);
      if (sc !== undefined) expect(rule!.stateClasses).toContain(sc);
    }
    // "%" without a device class, or with one whose unit it is.
    if (unit === '%' && dc !== undefined) expect(SENSOR_DEVICE_CLASSES[dc]?.units).toContain('%');
    // A counter is unit-less, or carries a unit valid for its device class.
    if (sc === 'total_increasing' && unit !== undefined)
      expect(dc !== undefined && SENSOR_DEVICE_CLASSES[dc]?.units.includes(unit)).toBe(true);
    // A unit or state class means a numeric state: the template must not read the textual status.
    if (unit !== undefined || sc !== undefined) expect(p.value_template).not.toMatch(/value_json\.status/);
  });

  it.each(SENSORS)('%s has no entity_category config (HA refuses it on sensors)', (_l, { p }) => {
    expect([undefined, 'diagnostic']).toContain(p.entity_category);
  });

  it.each(rowsOf((r) => r.component === 'binary_sensor'))(
    '%s: a binary_sensor device_class HA knows, never entity_category config',
    (_l, { p }) => {
      // A command probe's binary_sensor may have none (HA then shows on/off).
      expect([undefined, ...BINARY_SENSOR_DEVICE_CLASSES]).toContain(p.device_class);
      expect([undefined, 'diagnostic']).toContain(p.entity_category);
    },
  );

  it.each(rowsOf((r) => r.component === 'button'))(
    '%s: a button device_class HA knows, if any',
    (_l, { p }) => {
      expect([undefined, ...BUTTON_DEVICE_CLASSES]).toContain(p.device_class);
    },
  );

  it('the expected units are there: uptime in s, average duration in ms, memory and disk in %', () => {
    const by = new Map(CASES[0]!.messages.map((m) => [m.payload.default_entity_id, m.payload]));
    expect(by.get('sensor.pihole_1_uptime')).toMatchObject({
      device_class: 'duration',
      unit_of_measurement: 's',
    });
    expect(by.get('sensor.pihole_1_avg_duration')).toMatchObject({
      device_class: 'duration',
      unit_of_measurement: 'ms',
    });
    expect(by.get('sensor.pihole_1_memory_use')).toMatchObject({ unit_of_measurement: '%' });
    expect(by.get('sensor.pihole_1_disk_use')).toMatchObject({ unit_of_measurement: '%' });
    expect(by.get('sensor.pihole_1_executed')).toMatchObject({ state_class: 'total_increasing' });
  });
});

// docs/mqtt-api.md § Status and heartbeat, plus the `actions` extension (docs/mqtt-api.md), keyed by action name.
const HEARTBEAT_FIELDS = [
  'ts',
  'host',
  'version',
  'uptime_s',
  'load',
  'memory',
  'disk',
  'running',
  'queued',
  'pending_results',
  'stats',
  'actions',
];
const HEARTBEAT_SUBFIELDS: Record<string, string[]> = {
  memory: ['used', 'total'],
  disk: ['used', 'total'],
  stats: ['executed', 'succeeded', 'failed', 'timed_out', 'rejected', 'avg_duration_ms'],
};

describe('heartbeat sensors read only fields of the heartbeat object', () => {
  it.each(rowsOf((r) => r.component === 'sensor' && String(r.p.state_topic).endsWith('/heartbeat')))(
    '%s',
    (_l, { config, p }) => {
      expect(p.state_topic).toBe(`${P(config)}/heartbeat`);
      const refs = [...String(p.value_template).matchAll(/value_json\.(\w+)(?:\.(\w+))?/g)];
      expect(refs.length).toBeGreaterThan(0);
      for (const [, field, sub] of refs) {
        expect(HEARTBEAT_FIELDS).toContain(field);
        if (sub !== undefined) expect(HEARTBEAT_SUBFIELDS[field!]).toContain(sub);
      }
    },
  );
});

describe('names never contain the host name (HA prefixes the device name)', () => {
  const hosts = ['pihole-1', 'nas', 'media_server', 'backup-box'];
  const rows = hosts.flatMap((h) =>
    build(load(FULL(h))).map((m) => [`${h}: ${m.topic}`, h, m.payload.name] as const),
  );
  it.each(rows)('%s', (_l, host, name) => {
    expect(name).toEqual(expect.any(String));
    expect(name).not.toBe('');
    expect(String(name).toLowerCase()).not.toContain(host.toLowerCase());
    expect(String(name).toLowerCase()).not.toContain(host.replace(/[-_]/g, ' ').toLowerCase());
  });
});

describe('last-result state ≤ 255 characters for the longest possible result', () => {
  const statuses: ResultStatus[] = [
    'running',
    'scheduled',
    'succeeded',
    'failed',
    'timed_out',
    'rejected',
    'interrupted',
  ];
  const last = CASES[0]!.messages.find((m) => m.payload.default_entity_id === 'sensor.pihole_1_last_result')!;

  it('the state is value_json.status and the attributes the whole result', () => {
    expect(last.payload.value_template).toBe('{{ value_json.status }}');
    expect(last.payload.json_attributes_topic).toBe(last.payload.state_topic);
    expect(HA_MAX_STATE).toBe(255);
  });

  it.each(statuses)('status %s', (status) => {
    // execution.max_output (10,000 bytes) of stdout and of stderr, multi-byte, the longest error and id.
    const big = 'é'.repeat(5_000);
    const result = makeResult(
      'h'.repeat(63),
      { id: 'i'.repeat(64), action: 'a'.repeat(63), transaction: 't'.repeat(64) },
      {
        status,
        exit_code: 127,
        stdout: big,
        stderr: big,
        stdout_truncated: true,
        stderr_truncated: true,
        error_code: 'shutting_down',
        error: 'e'.repeat(2_000),
        executed_at: new Date(0).toISOString(),
        completed_at: new Date(0).toISOString(),
        duration_ms: 1_800_000,
        run_at: new Date(0).toISOString(),
        steps: [{ argv: ['x'.repeat(4096)], exit_code: 1, duration_ms: 1 }],
      },
    );
    const wire = JSON.stringify(result);
    expect(Buffer.byteLength(wire)).toBeGreaterThan(20_000);
    // `{{ value_json.status }}`, evaluated: the status field of the published JSON.
    const state = String((JSON.parse(wire) as { status: unknown }).status);
    expect(state).toBe(status);
    expect(state.length).toBeLessThanOrEqual(HA_MAX_STATE);
  });
});

describe('key order is stable', () => {
  it.each(CASES.map((c) => [c.label, c] as const))(
    '%s: two builds are byte-identical',
    (_l, { config, messages }) => {
      expect(JSON.stringify(build(config))).toBe(JSON.stringify(messages));
    },
  );

  it.each(ALL)('%s starts with name, unique_id, default_entity_id', (_l, { p }) => {
    expect(Object.keys(p).slice(0, 3)).toEqual(['name', 'unique_id', 'default_entity_id']);
  });
});

/** The config's actions, as [label, config, action name, action] rows. */
const ACTIONS = CASES.flatMap(({ label, config }) =>
  Object.entries(config.actions).map(([name, a]) => [`${label}: ${name}`, config, name, a] as const),
);

describe('buttons', () => {
  it.each(ACTIONS)('%s: a button exactly when button: true', (_l, config, name, action) => {
    const c = CASES.find((x) => x.config === config)!;
    const buttons = c.messages.filter(
      (m) => m.topic === `${config.discovery.prefix}/button/${config.host}/run_${name}/config`,
    );
    expect(buttons).toHaveLength(action.button ? 1 : 0);
  });

  it.each(rowsOf((r) => r.component === 'button' && r.object.startsWith('run_')))(
    '%s: command topic, a press the agent accepts, device_class from the action',
    (_l, { config, object, p }) => {
      const name = object.replace(/^run_/, '');
      const action = config.actions[name];
      expect(action?.button).toBe(true);
      expect(p.command_topic).toBe(`${P(config)}/cmd/${name}`);
      expect(p.retain).toBe(false);
      expect(p.payload_press).toEqual(expect.any(String));
      const outcome = parseDelivery(
        { topicAction: name, payload: Buffer.from(String(p.payload_press)), retained: false },
        0,
        () => 'gen-1',
      );
      expect(outcome.ok && outcome.request.press && outcome.request.action === name).toBe(true);
      // What HA publishes at a press: the command_template rendered with value = payload_press.
      expect(p.command_template).toBe(BUTTON_COMMAND_TEMPLATE);
      const pressedAt = 1_765_090_800_123;
      const wire = renderCommandTemplate(String(p.command_template), {
        value: String(p.payload_press),
        nowMs: pressedAt,
      });
      const body = JSON.parse(wire) as Record<string, unknown>;
      expect(Object.keys(body)).toEqual(['press', 'ts', 'ttl']);
      expect(body.press).toBe(true);
      expect(Number.isInteger(body.ts)).toBe(true);
      expect(Math.abs((body.ts as number) - pressedAt)).toBeLessThanOrEqual(1);
      expect(body.ttl).toBe(BUTTON_TTL_S);
      const pressed = parseDelivery(
        { topicAction: name, payload: Buffer.from(wire), retained: false },
        pressedAt + 500,
        () => 'gen-2',
      );
      expect(pressed.ok && pressed.request.press && pressed.request.action === name).toBe(true);
      // Fresh at once; expired when it reaches the agent after its ttl (held in the session while the host was down).
      const req = pressed.ok ? pressed.request : undefined;
      expect(req && staleness(req, pressedAt + 500, 300_000)).toBeUndefined();
      expect(req && staleness(req, pressedAt + BUTTON_TTL_S * 1000 + 1000, 300_000)?.code).toBe('expired');
      if (action?.device_class === undefined) expect(p).not.toHaveProperty('device_class');
      else expect(p.device_class).toBe(action.device_class);
      expect(p.name).toBe(action?.name ?? name.charAt(0).toUpperCase() + name.slice(1).replace(/_/g, ' '));
    },
  );
});

describe('params of button actions: enum → select, integer → number', () => {
  const PARAMS = ACTIONS.flatMap(([label, config, name, action]) =>
    Object.entries(action.params).map(
      ([param, spec]) => [`${label}.${param} (${spec.type})`, config, name, action, param, spec] as const,
    ),
  );

  it.each(PARAMS)('%s', (_l, config, name, action, param, spec) => {
    const c = CASES.find((x) => x.config === config)!;
    const object = `param_${name}-${param}`;
    const found = c.messages.filter((m) => m.topic.split('/')[3] === object);
    const shown = action.button && (spec.type === 'enum' || spec.type === 'integer');
    expect(found).toHaveLength(shown ? 1 : 0);
    if (!shown) return;
    const msg = found[0]!;
    const state = `${P(config)}/param/${name}/${param}`;
    expect(msg.topic).toBe(
      `${config.discovery.prefix}/${spec.type === 'enum' ? 'select' : 'number'}/${config.host}/${object}/config`,
    );
    expect(msg.payload).toMatchObject({ state_topic: state, command_topic: `${state}/set`, retain: false });
    if (spec.type === 'enum') {
      expect(msg.payload.options).toEqual(spec.values);
    } else if (spec.type === 'integer') {
      if (spec.min !== undefined) expect(msg.payload.min).toBe(spec.min);
      if (spec.max !== undefined) expect(msg.payload.max).toBe(spec.max);
      expect(msg.payload.step).toBe(1);
      // The starting value is inside the entity's range, so HA shows it.
      const start = Number(initialParamValue(spec));
      expect(start).toBeGreaterThanOrEqual(msg.payload.min as number);
      expect(start).toBeLessThanOrEqual(msg.payload.max as number);
    }
  });

  it('the table covers a select, a number with min/max and a number without', () => {
    const objs = CASES[0]!.messages.map((m) => m.topic.split('/').slice(1, 4).join('/'));
    expect(objs).toEqual(
      expect.arrayContaining([
        'select/pihole-1/param_set_mode-mode',
        'number/pihole-1/param_set_mode-level',
        'number/pihole-1/param_set_mode-offset',
        'number/pihole-1/param_clear_logs-days',
      ]),
    );
    // No param entities for them (every action, button or not, has its stats_ sensor: not a param).
    expect(
      objs.filter(
        (o) => !o.includes('/stats_') && (o.includes('restart_service') || o.includes('echo_message')),
      ),
    ).toEqual([]);
  });
});

const param = (yaml: string): ParamSpec => {
  const c = load(`actions:\n  a:\n    argv: [x, "{p}"]\n    params:\n      p: ${yaml}\n`);
  return c.actions.a!.params.p!;
};

describe('initialParamValue', () => {
  it.each([
    ['enum with default', '{ type: enum, values: [a, b, c], default: b }', 'b'],
    ['enum without default → first value', '{ type: enum, values: [c, a] }', 'c'],
    ['integer with default', '{ type: integer, min: 1, max: 9, default: 4 }', '4'],
    ['integer default 0', '{ type: integer, min: -5, max: 5, default: 0 }', '0'],
    ['integer with min → min', '{ type: integer, min: 3, max: 9 }', '3'],
    ['integer with only max ≥ 0 → 0', '{ type: integer, max: 10 }', '0'],
    ['integer with only max < 0 → max', '{ type: integer, max: -7 }', '-7'],
    ['integer without bounds → 0', '{ type: integer }', '0'],
    ['integer with negative min', '{ type: integer, min: -3 }', '-3'],
    ['string with default', '{ type: string, pattern: "^[a-z]+$", default: abc }', 'abc'],
    ['string without default → empty', '{ type: string, pattern: "^[a-z]+$" }', ''],
  ])('%s → %j', (_l, yaml, expected) => {
    expect(initialParamValue(param(yaml))).toBe(expected);
  });
});

const action = (yaml: string): ActionConfig =>
  load(`actions:\n  a:\n${yaml.replace(/^/gm, '    ')}\n`).actions.a!;

describe('exposedParams', () => {
  it.each([
    ['a non-button action shows nothing', 'argv: [x, "{e}"]\nparams:\n  e: { type: enum, values: [a] }', []],
    ['a button without params shows nothing', 'argv: [x]\nbutton: true', []],
    [
      'enum and integer are shown, string is not, in declared order',
      'argv: [x, "{s}", "{n}", "{e}"]\nparams:\n  s: { type: string, pattern: "^a$", default: a }\n  n: { type: integer }\n  e: { type: enum, values: [a] }\nbutton: true',
      ['n', 'e'],
    ],
    [
      'a string param with a default alone shows nothing',
      'argv: [x, "{s}"]\nparams:\n  s: { type: string, pattern: "^a$", default: a }\nbutton: true',
      [],
    ],
  ])('%s', (_l, yaml, expected) => {
    expect(exposedParams(action(yaml)).map(([name]) => name)).toEqual(expected);
  });
});

describe('the button command_template, rendered as Home Assistant renders it', () => {
  it('is exactly the documented template, and renders one JSON object with an integer ts', () => {
    // docs/home-assistant.md § What a button sends shows this template and this rendering.
    expect(BUTTON_COMMAND_TEMPLATE).toBe(
      '{"press": true, "ts": {{ (as_timestamp(now()) * 1000) | int }}, "ttl": 60}',
    );
    expect(renderCommandTemplate(BUTTON_COMMAND_TEMPLATE, { value: 'PRESS', nowMs: 1_765_090_800_000 })).toBe(
      '{"press": true, "ts": 1765090800000, "ttl": 60}',
    );
    const doc = readFileSync(new URL('../../docs/home-assistant.md', import.meta.url), 'utf8');
    expect(doc).toContain(BUTTON_COMMAND_TEMPLATE);
    // The rendering docs/home-assistant.md shows, for a press at 2025-12-07 07:00:00.123 UTC.
    expect(doc).toContain(
      renderCommandTemplate(BUTTON_COMMAND_TEMPLATE, { value: 'PRESS', nowMs: 1_765_090_800_123 }),
    );
  });

  it.each([
    ['an unknown variable', '{{ host }}'],
    ['a filter outside the subset', '{{ now() | string }}'],
    ['a datetime rendered as text', '{{ now() }}'],
    ['a statement', '{% if true %}x{% endif %}'],
  ])('the renderer refuses %s rather than guess', (_l, template) => {
    expect(() => renderCommandTemplate(template, { value: 'PRESS', nowMs: 0 })).toThrow();
  });
});

// HA's MQTT update platform (components/mqtt/update.py PLATFORM_SCHEMA_MODERN): command_topic,
// payload_install (a fixed string — no command_template), device_class only "firmware", the
// state JSON's keys given by value_template; and the reboot flag is a binary_sensor.
const UPDATE_KEYS = new Set([
  'name',
  'unique_id',
  'default_entity_id',
  'state_topic',
  'value_template',
  'json_attributes_topic',
  'json_attributes_template',
  'command_topic',
  'payload_install',
  'qos',
  'retain',
  'availability_topic',
  'payload_available',
  'payload_not_available',
  'device',
  'origin',
]);
// HA's MQTT switch platform (components/mqtt/switch.py PLATFORM_SCHEMA_MODERN plus the shared entity
// and availability schemas): the keys it knows, state_on/state_off apart from the payloads it sends.
const SWITCH_KEYS = new Set([
  'name',
  'unique_id',
  'default_entity_id',
  'command_topic',
  'command_template',
  'payload_on',
  'payload_off',
  'state_topic',
  'value_template',
  'state_on',
  'state_off',
  'optimistic',
  'json_attributes_topic',
  'json_attributes_template',
  'qos',
  'retain',
  'device_class',
  'availability_topic',
  'payload_available',
  'payload_not_available',
  'device',
  'origin',
]);
describe('switch entities', () => {
  const rows = rowsOf((r) => r.component === 'switch');
  it('one per configured switch', () => {
    expect(rows.map(([l]) => l)).toEqual([
      'pi-4 (command probes and switches): homeassistant/switch/pi-4/switch_nginx/config',
      'pi-4 (command probes and switches): homeassistant/switch/pi-4/switch_blocking/config',
    ]);
  });
  it.each(rows)(
    '%s: only keys HA knows; not optimistic; commands stamped on P/H/cmd',
    (_l, { p, config }) => {
      for (const k of Object.keys(p)) expect(SWITCH_KEYS, k).toContain(k);
      expect(p).toMatchObject({
        command_topic: `${P(config)}/cmd`,
        optimistic: false,
        qos: 1,
        retain: false,
      });
      expect(String(p.state_topic)).toMatch(new RegExp(`^${P(config)}/switch/[a-z0-9_]+$`));
      expect([undefined, 'switch', 'outlet']).toContain(p.device_class);
      // Either payload rendered as HA renders it is a request for that action, valid for 60 s.
      for (const payload of [p.payload_on, p.payload_off]) {
        const text = renderCommandTemplate(String(p.command_template), {
          value: String(payload),
          nowMs: 1000,
        });
        const d = parseDelivery(
          { topicAction: undefined, payload: Buffer.from(text), retained: false },
          2000,
          () => 'x',
        );
        expect(d.ok && d.request.action).toBe(payload);
        expect(config.actions[String(payload)]).toBeDefined();
      }
    },
  );
});

describe('update entity (OS packages)', () => {
  const rows = rowsOf((r) => r.component === 'update');
  it('exists once, on the host with updates enabled', () => {
    expect(rows.map(([l]) => l)).toEqual(['pi-3 (updates): homeassistant/update/pi-3/os_updates/config']);
  });
  it.each(rows)(
    '%s: only keys HA knows; Install presses the action at QoS 0, never retained',
    (_l, { p, config }) => {
      for (const k of Object.keys(p)) expect(UPDATE_KEYS, k).toContain(k);
      expect(p).toMatchObject({
        state_topic: `${P(config)}/updates`,
        command_topic: `${P(config)}/cmd/apply_updates`,
        payload_install: 'PRESS',
        qos: 0,
        retain: false,
      });
      // A plain-text payload on cmd/ACTION is a press (docs/mqtt-api.md), the button's path.
      const d = parseDelivery(
        { topicAction: 'apply_updates', payload: Buffer.from(p.payload_install as string), retained: false },
        Date.now(),
        () => 'id-1',
      );
      expect(d.ok && d.request.press).toBe(true);
    },
  );
  it('the reboot flag is a problem binary_sensor on P/H/reboot_required', () => {
    const [, r] = rowsOf((x) => x.object === 'reboot_required')[0]!;
    expect(r.component).toBe('binary_sensor');
    expect(r.p).toMatchObject({ state_topic: 'homelab/pi-3/reboot_required', device_class: 'problem' });
  });
});
